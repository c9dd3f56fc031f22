// UDP benchmarks: ping-pong (one datagram in flight) and flood (receive rate under a saturating sender),
// dgram's UdpSocket against the same work written as plain socket calls.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "bench.hpp"

import dgram;

namespace dgram::bench {
namespace {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

constexpr int round_trips = 20000;
constexpr int flood_datagrams = 200000;
constexpr std::size_t payload_size = 64;

// ---- plain socket helpers (the baseline) -------------------------------------------------------------

struct PlainSocket {
  int fd;
  sockaddr_in address{};
  PlainSocket() : fd{::socket(AF_INET, SOCK_DGRAM, 0)} {
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::system_error(errno, std::system_category(), "baseline socket");
  }
  PlainSocket(const PlainSocket&) = delete;
  ~PlainSocket() { ::close(fd); }
  void receive_timeout(std::chrono::microseconds timeout) const {
    const timeval tv{0, static_cast<suseconds_t>(timeout.count())};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
};

Endpoint endpoint_of(const PlainSocket& socket) { return Endpoint::loopback(Family::ipv4, ntohs(socket.address.sin_port)); }

// The sender of the flood, the same for both sides: sendmmsg in batches of 64 as fast as the kernel takes them.
void flood(const Endpoint& target, std::atomic<bool>& done) {
  PlainSocket sender;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(target.port());
  std::array<std::byte, payload_size> payload{};
  std::array<iovec, 64> vectors;
  std::array<mmsghdr, 64> headers{};
  for (std::size_t i = 0; i < 64; ++i) {
    vectors[i] = {payload.data(), payload.size()};
    headers[i].msg_hdr.msg_name = &to;
    headers[i].msg_hdr.msg_namelen = sizeof to;
    headers[i].msg_hdr.msg_iov = &vectors[i];
    headers[i].msg_hdr.msg_iovlen = 1;
  }
  for (int sent = 0; sent < flood_datagrams;) {
    const int got = ::sendmmsg(sender.fd, headers.data(), 64, 0);
    if (got > 0) sent += got;
  }
  done = true;
}

// Counts datagrams from the first to the last that arrives; `receive` returns how many one call took (0 when
// its short wait passed).
template <typename Receive>
double receive_rate(std::atomic<bool>& done, Receive receive) {
  long received = 0;
  auto first = Clock::now(), last = first;
  for (;;) {
    const long got = receive();
    if (got > 0) {
      if (received == 0) first = Clock::now();
      received += got;
      last = Clock::now();
      if (received >= flood_datagrams) break;
    } else if (done) {
      break;   // the sender finished and nothing more came in a short wait: the rest was dropped
    }
  }
  return received / Seconds(last - first).count();
}

// ---- ping-pong -----------------------------------------------------------------------------------------

double dgram_ping_pong() {
  UdpSocket server = UdpSocket::bind(Endpoint::loopback(Family::ipv4, 0));
  UdpSocket client = UdpSocket::bind(Endpoint::loopback(Family::ipv4, 0));
  std::error_code ec;
  const Endpoint server_endpoint = server.local_endpoint(ec);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    std::array<std::byte, 2048> buffer;
    while (!stop) {
      std::error_code error;
      const Received got = server.receive_from(buffer, Deadline::after(200ms), error);
      if (!error) server.send_to(std::span(buffer).first(got.size), got.peer, error);
    }
  });
  std::array<std::byte, payload_size> message{};
  std::array<std::byte, 2048> reply;
  const auto start = Clock::now();
  for (int i = 0; i < round_trips; ++i) {
    client.send_to(message, server_endpoint, ec);
    client.receive_from(reply, Deadline::after(1s), ec);
    if (ec) throw std::system_error(ec, "dgram ping-pong");
  }
  const double rate = round_trips / Seconds(Clock::now() - start).count();
  stop = true;
  echo.join();
  return rate;
}

double plain_ping_pong() {
  PlainSocket server, client;
  server.receive_timeout(200ms);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    std::array<std::byte, 2048> buffer;
    while (!stop) {
      sockaddr_in from{};
      socklen_t length = sizeof from;
      const ssize_t got = ::recvfrom(server.fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
      if (got >= 0) ::sendto(server.fd, buffer.data(), static_cast<std::size_t>(got), 0, reinterpret_cast<sockaddr*>(&from), length);
    }
  });
  std::array<std::byte, payload_size> message{};
  std::array<std::byte, 2048> reply;
  const auto start = Clock::now();
  for (int i = 0; i < round_trips; ++i) {
    ::sendto(client.fd, message.data(), message.size(), 0, reinterpret_cast<const sockaddr*>(&server.address), sizeof server.address);
    sockaddr_in from{};
    socklen_t length = sizeof from;
    if (::recvfrom(client.fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), &length) < 0)
      throw std::system_error(errno, std::system_category(), "plain ping-pong");
  }
  const double rate = round_trips / Seconds(Clock::now() - start).count();
  stop = true;
  echo.join();
  return rate;
}

// ---- flood ---------------------------------------------------------------------------------------------

double dgram_flood() {
  UdpSocket receiver = UdpSocket::bind(Endpoint::loopback(Family::ipv4, 0));
  std::error_code ec;
  const Endpoint target = receiver.local_endpoint(ec);
  std::vector<std::byte> storage(64 * 2048);
  std::array<ReceiveSlot, 64> slots;
  for (std::size_t i = 0; i < slots.size(); ++i) slots[i].buffer = std::span(storage).subspan(i * 2048, 2048);
  std::atomic<bool> done{false};
  std::thread sender(flood, target, std::ref(done));
  const double rate = receive_rate(done, [&] {
    std::error_code error;
    return static_cast<long>(receiver.receive_batch(slots, Deadline::after(50ms), error));
  });
  sender.join();
  return rate;
}

double plain_flood() {
  PlainSocket receiver;
  receiver.receive_timeout(50ms);
  std::vector<std::byte> storage(64 * 2048);
  std::array<iovec, 64> vectors;
  std::array<sockaddr_in, 64> peers;
  std::array<mmsghdr, 64> headers;
  std::atomic<bool> done{false};
  std::thread sender(flood, endpoint_of(receiver), std::ref(done));
  const double rate = receive_rate(done, [&] {
    for (std::size_t i = 0; i < 64; ++i) {
      vectors[i] = {storage.data() + i * 2048, 2048};
      headers[i] = {};
      headers[i].msg_hdr.msg_name = &peers[i];
      headers[i].msg_hdr.msg_namelen = sizeof peers[i];
      headers[i].msg_hdr.msg_iov = &vectors[i];
      headers[i].msg_hdr.msg_iovlen = 1;
    }
    return static_cast<long>(std::max(0, ::recvmmsg(receiver.fd, headers.data(), 64, MSG_WAITFORONE, nullptr)));
  });
  sender.join();
  return rate;
}

}  // namespace

std::vector<Row> udp_benchmarks(int repetitions) {
  return {
      compare("udp ping-pong", "round trips/s", "recvfrom/sendto", 0.97, repetitions, dgram_ping_pong,
              plain_ping_pong),
      compare("udp flood receive", "datagrams/s", "recvmmsg", 1.0, repetitions, dgram_flood, plain_flood),
  };
}

}  // namespace dgram::bench
