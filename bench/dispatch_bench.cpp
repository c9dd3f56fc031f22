// Dispatch designs for a multi-threaded server, measured on raw UDP echo at 1,000 sessions with 2 server
// threads: (a) one SO_REUSEPORT socket per thread, the kernel hashing each peer to one of them (what
// ThreadedServer does); (b) one connected socket per session on the server's port (the tutorial's idea made
// race-free), each thread polling its share. On Linux every connected UDP socket of one local port sits in one
// hash chain that the kernel walks for every datagram, so (b) is also measured at 50 sessions to show the
// growth. Reported: echoed datagrams per second and the CPU time per datagram of the whole process (on
// loopback the kernel's receive path, socket lookup included, runs in the sender's system call: in the
// clients' thread for requests, the server's for replies; the clients' own share is the same in every design).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include "bench.hpp"

namespace dgram::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int server_threads = 2;
constexpr std::size_t burst = 100;   // datagrams in flight at once (fits the socket buffers: no loss)

enum class Design { reuseport, connected };

struct Result {
  double rate;           // echoed datagrams/s
  double cpu_us;         // CPU microseconds per echoed datagram, whole process
};

class Fd {
 public:
  explicit Fd(int fd) : fd_{fd} {
    if (fd_ < 0) throw std::runtime_error("dispatch bench: socket");
  }
  Fd(Fd&& other) noexcept : fd_{std::exchange(other.fd_, -1)} {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in loopback(unsigned short port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

Fd udp_socket(unsigned short port, int reuse_option) {
  Fd fd{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  const int one = 1;
  if (reuse_option) ::setsockopt(fd.get(), SOL_SOCKET, reuse_option, &one, sizeof one);
  const sockaddr_in address = loopback(port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("dispatch bench: bind");
  return fd;
}

unsigned short port_of(int fd) {
  sockaddr_in address{};
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  return ntohs(address.sin_port);
}

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Echoes on every socket of `fds` (all readable through one epoll) until `stop`.
void echo_thread(const std::vector<int>& fds, bool connected, const std::atomic<bool>& stop) {
  Fd epoll{::epoll_create1(EPOLL_CLOEXEC)};
  for (const int fd : fds) {
    epoll_event event{EPOLLIN, {.fd = fd}};
    ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event);
  }
  std::vector<epoll_event> ready(64);
  char buffer[2048];
  while (!stop.load(std::memory_order_relaxed)) {
    const int count = ::epoll_wait(epoll.get(), ready.data(), static_cast<int>(ready.size()), 20);
    for (int i = 0; i < count; ++i) {
      const int fd = ready[static_cast<std::size_t>(i)].data.fd;
      for (;;) {   // drain the socket
        sockaddr_in peer{};
        socklen_t size = sizeof peer;
        const ssize_t got = ::recvfrom(fd, buffer, sizeof buffer, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&peer), &size);
        if (got < 0) break;
        if (connected) {
          ::send(fd, buffer, static_cast<std::size_t>(got), 0);
        } else {
          ::sendto(fd, buffer, static_cast<std::size_t>(got), 0, reinterpret_cast<const sockaddr*>(&peer), size);
        }
      }
    }
  }
}

Result run(Design design, std::size_t sessions, std::chrono::milliseconds duration) {
  // The server's sockets.
  std::vector<Fd> server;
  const int reuse = design == Design::reuseport ? SO_REUSEPORT : SO_REUSEADDR;
  server.push_back(udp_socket(0, reuse));
  const unsigned short port = port_of(server.front().get());
  if (design == Design::reuseport)
    for (int i = 1; i < server_threads; ++i) server.push_back(udp_socket(port, reuse));
  // The clients, and for the connected design one server socket per client, connected to it.
  std::vector<Fd> clients;
  const sockaddr_in server_address = loopback(port);
  for (std::size_t i = 0; i < sessions; ++i) {
    clients.push_back(udp_socket(0, 0));
    ::connect(clients.back().get(), reinterpret_cast<const sockaddr*>(&server_address), sizeof server_address);
    if (design == Design::connected) {
      server.push_back(udp_socket(port, reuse));
      const sockaddr_in client_address = loopback(port_of(clients.back().get()));
      ::connect(server.back().get(), reinterpret_cast<const sockaddr*>(&client_address), sizeof client_address);
    }
  }
  // Each server thread takes every server_threads-th socket.
  std::vector<std::vector<int>> shares(server_threads);
  for (std::size_t i = 0; i < server.size(); ++i) shares[i % server_threads].push_back(server[i].get());
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (const auto& share : shares)
    threads.emplace_back(echo_thread, std::cref(share), design == Design::connected, std::cref(stop));

  // Bursts of datagrams from successive clients; each burst waits for its echoes (bounded by 1 s).
  char payload[100] = {'d'};
  char reply[2048];
  std::size_t echoed = 0, next = 0;
  const auto start = Clock::now();
  const double cpu_before = process_cpu_seconds();
  while (Clock::now() - start < duration) {
    std::vector<int> waiting;
    for (std::size_t i = 0; i < burst; ++i, next = (next + 1) % sessions) {
      ::send(clients[next].get(), payload, sizeof payload, 0);
      waiting.push_back(clients[next].get());
    }
    for (const int fd : waiting) {
      pollfd entry{fd, POLLIN, 0};
      if (::poll(&entry, 1, 1000) == 1 && ::recv(fd, reply, sizeof reply, 0) > 0) ++echoed;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = process_cpu_seconds() - cpu_before;
  stop = true;
  for (auto& thread : threads) thread.join();
  if (echoed == 0) throw std::runtime_error("dispatch bench: nothing echoed");
  return {static_cast<double>(echoed) / seconds, 1e6 * cpu / static_cast<double>(echoed)};
}

}  // namespace

std::vector<Row> dispatch_benchmarks(int repetitions) {
  using namespace std::chrono_literals;
  struct Series {
    Design design;
    std::size_t sessions;
    std::vector<double> rates, cpus;
  };
  std::vector<Series> series{{Design::reuseport, 1000, {}, {}}, {Design::connected, 1000, {}, {}},
                             {Design::connected, 50, {}, {}}};
  for (int r = 0; r < repetitions; ++r) {
    for (std::size_t k = 0; k < series.size(); ++k) {   // a different design goes first each run
      Series& s = series[(k + static_cast<std::size_t>(r)) % series.size()];
      const Result result = run(s.design, s.sessions, 700ms);
      s.rates.push_back(result.rate);
      s.cpus.push_back(result.cpu_us);
    }
  }
  const auto rate = [&](std::size_t i) { return median(series[i].rates); };
  const auto cpu = [&](std::size_t i) { return median(series[i].cpus); };
  return {
      // The rate is bounded by the one client thread here, so the CPU per datagram decides.
      Row{"dispatch reuseport, 1000 sess", "datagrams/s", rate(0), rate(1), "connected, 1000 sess", 0.0},
      Row{"dispatch CPU reuseport, 1000 sess", "us/datagram", cpu(0), cpu(1), "connected, 1000 sess", 1.0, true},
      Row{"dispatch CPU connected, 1000 sess", "us/datagram", cpu(1), cpu(2), "connected, 50 sess", 0.0, true},
  };
}

}  // namespace dgram::bench
