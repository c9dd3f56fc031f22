// dgram.udp over real loopback sockets, IPv4 and IPv6; ports are picked by binding port 0.
#include <catch2/catch.hpp>

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <numeric>
#include <set>
#include <span>
#include <system_error>
#include <vector>

import dgram;

using namespace std::chrono_literals;

namespace {

std::vector<std::byte> pattern(std::size_t size) {
  std::vector<std::byte> out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>((i * 131 + size) & 0xff);
  return out;
}

dgram::UdpSocket bound(dgram::Family family) {
  return dgram::UdpSocket::bind(dgram::Endpoint::loopback(family, 0));
}

dgram::Endpoint local(const dgram::UdpSocket& socket) {
  std::error_code ec;
  const auto endpoint = socket.local_endpoint(ec);
  REQUIRE(!ec);
  return endpoint;
}

const auto families = {dgram::Family::ipv4, dgram::Family::ipv6};

}  // namespace

TEST_CASE("bind port 0 gives a real port on loopback", "[udp]") {
  for (auto family : families) {
    auto socket = bound(family);
    const auto endpoint = local(socket);
    CHECK(endpoint.port() != 0);
    CHECK(endpoint.is_loopback());
    CHECK(endpoint.family() == family);
  }
}

TEST_CASE("byte-exact round trips from 0 bytes to the largest datagram", "[udp]") {
  for (auto family : families) {
    auto server = bound(family);
    auto client = dgram::UdpSocket::connect(local(server));
    const std::size_t largest = family == dgram::Family::ipv4 ? 65507 : 65527;
    CHECK(client.max_datagram_size() == largest);
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1472}, std::size_t{65507}, largest}) {
      INFO("family " << (family == dgram::Family::ipv4 ? 4 : 6) << " size " << size);
      const auto sent = pattern(size);
      std::error_code ec;
      client.send_to(sent, {}, ec);
      REQUIRE(!ec);
      std::vector<std::byte> buffer(65536);
      const auto got = server.receive_from(buffer, dgram::Deadline::after(5s), ec);
      REQUIRE(!ec);
      CHECK(got.peer == local(client));
      REQUIRE(got.size == size);
      CHECK(std::equal(sent.begin(), sent.end(), buffer.begin()));
      server.send_to(std::span(buffer).first(got.size), got.peer, ec);   // and back
      REQUIRE(!ec);
      std::vector<std::byte> reply(65536);
      const auto back = client.receive_from(reply, dgram::Deadline::after(5s), ec);
      REQUIRE(!ec);
      REQUIRE(back.size == size);
      CHECK(std::equal(sent.begin(), sent.end(), reply.begin()));
    }
  }
}

TEST_CASE("one byte more than the largest datagram is a clear error", "[udp]") {
  auto v4 = bound(dgram::Family::ipv4);
  std::error_code ec;
  v4.send_to(pattern(65508), local(v4), ec);
  CHECK(ec == dgram::errc::message_too_large);
  CHECK(ec.message() == "datagram too large for the transport");
  auto v6 = bound(dgram::Family::ipv6);
  v6.send_to(pattern(65528), local(v6), ec);
  CHECK(ec == dgram::errc::message_too_large);
}

TEST_CASE("a receive deadline that passes gives timeout; one already passed gives would_block", "[udp]") {
  auto socket = bound(dgram::Family::ipv4);
  std::vector<std::byte> buffer(100);
  std::error_code ec;
  for (auto wait : {5ms, 120ms}) {   // the precise (ppoll) path and the SO_RCVTIMEO path
    const auto deadline = dgram::Deadline::after(wait);
    socket.receive_from(buffer, deadline, ec);
    CHECK(ec == dgram::errc::timeout);
    CHECK(dgram::Clock::now() >= deadline.point());   // never gives up early
  }
  socket.receive_from(buffer, dgram::Deadline::now_or_never(), ec);
  CHECK(ec == dgram::errc::would_block);
  std::vector<dgram::ReceiveSlot> slots(4);
  for (auto& slot : slots) slot.buffer = buffer;
  CHECK(socket.receive_batch(slots, dgram::Deadline::after(20ms), ec) == 0);
  CHECK(ec == dgram::errc::timeout);
}

TEST_CASE("a datagram already queued is taken even with a passed deadline", "[udp]") {
  auto socket = bound(dgram::Family::ipv6);
  std::error_code ec;
  socket.send_to(pattern(3), local(socket), ec);
  REQUIRE(!ec);
  std::vector<std::byte> buffer(10);
  const auto got = socket.receive_from(buffer, dgram::Deadline::now_or_never(), ec);
  CHECK(!ec);
  CHECK(got.size == 3);
}

TEST_CASE("a connected socket to a closed port reports connection refused", "[udp]") {
  for (auto family : families) {
    dgram::Endpoint closed;
    {
      auto probe = bound(family);
      closed = local(probe);
    }   // closed again: nothing listens on that port now
    auto client = dgram::UdpSocket::connect(closed);
    std::error_code ec;
    client.send_to(pattern(4), closed, ec);
    REQUIRE(!ec);
    std::vector<std::byte> buffer(16);
    client.receive_from(buffer, dgram::Deadline::after(2s), ec);
    CHECK(ec == std::errc::connection_refused);
  }
}

TEST_CASE("a datagram larger than the buffer is reported as truncated", "[udp]") {
  auto socket = bound(dgram::Family::ipv4);
  std::error_code ec;
  socket.send_to(pattern(100), local(socket), ec);
  std::vector<std::byte> small(10);
  const auto got = socket.receive_from(small, dgram::Deadline::after(2s), ec);
  CHECK(ec == dgram::errc::truncated);
  CHECK(got.size == 10);
}

TEST_CASE("batch receive returns several datagrams with their peers", "[udp]") {
  for (auto family : families) {
    auto server = bound(family);
    std::vector<dgram::UdpSocket> clients;
    for (int i = 0; i < 5; ++i) clients.push_back(dgram::UdpSocket::connect(local(server)));
    std::set<std::uint16_t> client_ports;
    for (std::size_t i = 0; i < clients.size(); ++i) {
      std::error_code ec;
      clients[i].send_to(pattern(10 + i), {}, ec);
      REQUIRE(!ec);
      client_ports.insert(local(clients[i]).port());
    }
    std::vector<std::byte> storage(5 * 2048);
    std::vector<dgram::ReceiveSlot> slots(8);
    for (std::size_t i = 0; i < slots.size(); ++i)
      slots[i].buffer = std::span(storage).subspan((i % 5) * 2048, 2048);
    std::set<std::uint16_t> seen;
    std::set<std::size_t> sizes;
    std::error_code ec;
    const auto deadline = dgram::Deadline::after(5s);
    while (seen.size() < 5 && !ec) {
      const std::size_t count = server.receive_batch(std::span(slots).first(5), deadline, ec);
      for (std::size_t i = 0; i < count; ++i) {
        seen.insert(slots[i].peer.port());
        sizes.insert(slots[i].size);
        CHECK(!slots[i].truncated);
      }
    }
    CHECK(!ec);
    CHECK(seen == client_ports);
    CHECK(sizes == std::set<std::size_t>{10, 11, 12, 13, 14});
  }
}

TEST_CASE("batch send delivers each datagram to its peer, in order", "[udp]") {
  auto server = bound(dgram::Family::ipv4);
  auto a = bound(dgram::Family::ipv4);
  auto b = bound(dgram::Family::ipv4);
  const auto one = pattern(1), two = pattern(2), three = pattern(3);
  const std::vector<dgram::SendSlot> batch{{one, local(a)}, {two, local(b)}, {three, local(a)}};
  std::error_code ec;
  CHECK(server.send_batch(batch, ec) == 3);
  CHECK(!ec);
  std::vector<std::byte> buffer(10);
  CHECK(a.receive_from(buffer, dgram::Deadline::after(2s), ec).size == 1);
  CHECK(a.receive_from(buffer, dgram::Deadline::after(2s), ec).size == 3);
  CHECK(b.receive_from(buffer, dgram::Deadline::after(2s), ec).size == 2);
  const auto too_big = pattern(70000);
  const std::vector<dgram::SendSlot> bad{{one, local(a)}, {too_big, local(a)}};
  CHECK(server.send_batch(bad, ec) == 1);
  CHECK(ec == dgram::errc::message_too_large);
}

TEST_CASE("a socket moves and closes once", "[udp]") {
  auto socket = bound(dgram::Family::ipv4);
  const int fd = socket.native_handle();
  dgram::UdpSocket moved = std::move(socket);
  CHECK(moved.native_handle() == fd);
  CHECK(!socket.is_open());   // NOLINT(bugprone-use-after-move): the moved-from state is specified
  std::error_code ec;
  std::vector<std::byte> buffer(1);
  socket.receive_from(buffer, dgram::Deadline::now_or_never(), ec);
  CHECK(ec == std::errc::bad_file_descriptor);
}

TEST_CASE("plain handshaker: accept takes the first datagram's peer; others are dropped and counted", "[udp][handshaker]") {
  auto server = bound(dgram::Family::ipv4);
  auto client = dgram::UdpSocket::connect(local(server));
  auto stranger = dgram::UdpSocket::connect(local(server));
  dgram::PlainHandshaker handshaker;
  std::error_code ec;
  const auto first = pattern(7);
  client.send_to(first, {}, ec);
  auto channel = handshaker.accept(server, dgram::Deadline::after(2s), ec);
  REQUIRE(!ec);
  REQUIRE(channel);
  CHECK(channel->peer() == local(client));
  stranger.send_to(pattern(5), {}, ec);
  client.send_to(pattern(9), {}, ec);
  std::vector<std::byte> buffer(100);
  CHECK(channel->receive(buffer, dgram::Deadline::after(2s), ec) == 7);   // the first datagram, kept by accept
  CHECK(std::equal(first.begin(), first.end(), buffer.begin()));
  CHECK(channel->receive(buffer, dgram::Deadline::after(2s), ec) == 9);   // the stranger's 5 bytes are skipped
  CHECK(channel->foreign_datagrams() == 1);
  channel->send(pattern(4), ec);
  CHECK(client.receive_from(buffer, dgram::Deadline::after(2s), ec).size == 4);
  channel->close(ec);
  channel->send(pattern(4), ec);
  CHECK(ec == dgram::errc::closed);
}

TEST_CASE("a dual-stack IPv6 socket names IPv4 peers as IPv4 and answers them", "[udp]") {
  dgram::UdpOptions options;
  options.dual_stack = true;
  auto server = dgram::UdpSocket::bind(dgram::Endpoint::any(dgram::Family::ipv6, 0), options);
  std::error_code ec;
  const auto port = server.local_endpoint(ec).port();
  auto client = dgram::UdpSocket::connect(dgram::Endpoint::loopback(dgram::Family::ipv4, port));
  const std::vector<std::byte> ping{std::byte{1}, std::byte{2}};
  client.send_to(ping, {}, ec);
  REQUIRE(!ec);
  std::vector<std::byte> buffer(16);
  const auto got = server.receive_from(buffer, dgram::Deadline::after(5s), ec);
  REQUIRE(!ec);
  CHECK(got.peer == client.local_endpoint(ec));   // 127.0.0.1:port, not ::ffff:127.0.0.1
  CHECK(got.peer.family() == dgram::Family::ipv4);
  server.send_to(std::span(buffer).first(got.size), got.peer, ec);
  REQUIRE(!ec);
  CHECK(client.receive_from(buffer, dgram::Deadline::after(5s), ec).size == 2);
  CHECK(!ec);
}

namespace {

// The drops the kernel counted for the loopback socket on `port` (/proc/net/udp{,6}, its last column); -1 when
// the socket is not listed.
long proc_drops(dgram::Family family, std::uint16_t port) {
  std::ifstream table(family == dgram::Family::ipv4 ? "/proc/net/udp" : "/proc/net/udp6");
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, ":%04X", port);
  std::string line;
  std::getline(table, line);   // the header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local_address, field, last;
    fields >> slot >> local_address;
    if (!local_address.ends_with(suffix)) continue;
    while (fields >> field) last = field;
    return std::stol(last);
  }
  return -1;
}

// Keeps the calling thread on the CPU it runs on while it lives: loopback datagrams sent from one CPU reach the
// receiving socket in the order they were sent.
class PinnedToThisCpu {
 public:
  PinnedToThisCpu() {
    REQUIRE(sched_getaffinity(0, sizeof before_, &before_) == 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  }
  ~PinnedToThisCpu() { sched_setaffinity(0, sizeof before_, &before_); }
  PinnedToThisCpu(const PinnedToThisCpu&) = delete;
  PinnedToThisCpu& operator=(const PinnedToThisCpu&) = delete;

 private:
  cpu_set_t before_;
};

}  // namespace

TEST_CASE("datagrams the kernel drops for a full receive buffer are counted (SO_RXQ_OVFL)", "[udp]") {
  for (const auto family : families) {
    INFO((family == dgram::Family::ipv4 ? "IPv4" : "IPv6"));
    dgram::UdpOptions options;
    options.receive_buffer_bytes = 4096;   // (the kernel's minimum is about this): a few datagrams fill it
    options.count_receive_overflows = true;
    auto receiver = dgram::UdpSocket::bind(dgram::Endpoint::loopback(family, 0), options);
    CHECK(receiver.receive_buffer_size() > 0);
    CHECK(receiver.receive_buffer_size() < 16384);
    const auto address = local(receiver);
    auto sender = dgram::UdpSocket::connect(address);
    const PinnedToThisCpu pinned;
    constexpr int burst = 300;
    const auto payload = pattern(200);
    std::error_code ec;
    for (int i = 0; i < burst; ++i) sender.send_to(payload, {}, ec);
    REQUIRE(!ec);
    // A marker after the burst, again until one gets in (a full buffer drops it too): once it is read, every
    // datagram before it was either queued or dropped, and the marker carries the drop count as of then.
    const std::vector<std::byte> marker(1, std::byte{0x4d});
    std::vector<std::byte> buffer(512);
    int received = 0;
    int markers_sent = 0;
    bool marker_seen = false;
    for (int round = 0; round < 20 && !marker_seen; ++round) {
      sender.send_to(marker, {}, ec);
      REQUIRE(!ec);
      ++markers_sent;
      while (true) {
        const auto got = receiver.receive_from(buffer, dgram::Deadline::after(2s), ec);
        if (ec) break;   // a timeout: this marker was dropped, send another
        if (got.size == 1) {
          marker_seen = true;
          break;
        }
        ++received;
      }
    }
    REQUIRE(marker_seen);
    const long dropped = proc_drops(family, address.port());
    INFO("received " << received << " of " << burst << ", dropped " << dropped << ", markers sent " << markers_sent);
    CHECK(dropped > 0);
    CHECK(received + 1 + dropped == burst + markers_sent);
    CHECK(receiver.receive_overflows() == static_cast<std::uint64_t>(dropped));
  }
}
