#include "udp_relay.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dgram::testing {
namespace {

using Clock = std::chrono::steady_clock;
using Datagram = std::vector<std::byte>;
constexpr std::size_t max_clients = 4096;
constexpr auto reorder_hold = std::chrono::milliseconds{20};

// Owns one file descriptor; move-only so no socket is ever closed twice or leaked on an exception.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_{fd} {}
  Fd(Fd&& other) noexcept : fd_{std::exchange(other.fd_, -1)} {}
  Fd& operator=(Fd other) noexcept { std::swap(fd_, other.fd_); return *this; }   // `other` closes our old fd
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
 private:
  int fd_;
};

struct Address {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

Address resolve(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;   // tests use literal addresses: never touch DNS
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const int status = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (status != 0) throw std::runtime_error("relay: bad address " + host + ": " + ::gai_strerror(status));
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner{found, &::freeaddrinfo};
  Address address;
  std::memcpy(&address.storage, found->ai_addr, found->ai_addrlen);
  address.length = found->ai_addrlen;
  return address;
}

// Non-blocking, so neither a receive nor a send can stall the relay thread. A large receive buffer (the kernel
// caps it at rmem_max) absorbs a burst of handshakes while the relay is slow, e.g. under ASan: a datagram the
// kernel drops there would be lost without being counted.
Fd udp_socket(int family) {
  Fd socket{::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  const int size = 4 << 20;
  if (socket) ::setsockopt(socket.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  return socket;
}

std::uint16_t port_of(const Address& address) {
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(address.get());
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(address.get());
  return ntohs(address.storage.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
}

// The identity of a client: the address bytes recvfrom wrote. Linux zeroes sin_zero and sin6_flowinfo there,
// and Address starts zeroed, so one client always gives the same key.
std::string key_of(const Address& address) {
  return {reinterpret_cast<const char*>(&address.storage), static_cast<std::size_t>(address.length)};
}

// A socket bound to `address`, whose port (0 asks the kernel for one) is updated to the one bound.
Fd bound_socket(Address& address) {
  Fd socket = udp_socket(address.storage.ss_family);
  if (!socket || ::bind(socket.get(), address.get(), address.length) != 0) return Fd{};
  address.length = sizeof address.storage;
  return ::getsockname(socket.get(), address.get(), &address.length) == 0 ? std::move(socket) : Fd{};
}

struct Pending {
  Datagram bytes;
  int copies;
  Clock::time_point release_at;
};

// One direction of one client's traffic: reordering happens within a flow, as a receiver would see it.
struct Flow {
  int fd;                          // the socket to send from
  const Address* to;               // nullptr: fd is connected to the destination
  std::optional<Pending> held;     // at most one datagram waits for the next one
};

struct Client {
  Address address;
  Fd upstream;   // connected to the server, so the kernel filters out anyone else
  Flow to_server;
  Flow to_client;
};

}  // namespace

struct UdpRelay::Impl {
  RelayFaults faults;
  Address server;
  Fd listener;
  Fd stop_event;
  std::uint16_t port = 0;
  std::mt19937_64 random;   // relay thread only
  std::vector<std::unique_ptr<Client>> clients_by_index;   // unique_ptr: Flow::to points into a Client
  std::unordered_map<std::string, Client*> clients_by_key;
  Fd move_event;                // move_clients(): give every client a new upstream port
  std::uint64_t moves_done = 0; // guarded by mutex; move_clients waits for it to grow
  struct MoveTrigger {
    std::uint8_t first_byte;
    std::size_t remaining;   // datagrams with that first byte until the move
  };
  std::optional<MoveTrigger> move_trigger;   // guarded by mutex
  std::condition_variable moved;
  std::vector<pollfd> polled;   // stop_event, move_event, listener, then each client's upstream in
                                // clients_by_index order
  std::size_t held_count = 0;
  std::array<std::byte, 65536> buffer;
  mutable std::mutex mutex;   // guards counts: one lock, so a snapshot is consistent across the fields
  RelayCounts counts;
  std::atomic<std::size_t> client_count = 0;
  std::thread thread;   // last: starts after everything above exists

  void bump(std::uint64_t RelayCounts::*counter) { const std::lock_guard lock{mutex}; ++(counts.*counter); }
  bool chance(double probability) { return std::uniform_real_distribution<double>{0, 1}(random) < probability; }
  std::size_t between(std::size_t low, std::size_t high) {
    return std::uniform_int_distribution<std::size_t>{low, high}(random);
  }

  void run() {
    for (int timeout = -1;; timeout = release_due()) {
      if (::poll(polled.data(), polled.size(), timeout) < 0 && errno != EINTR) return;   // only on a bug
      if (polled[0].revents != 0) return;   // the destructor asked us to stop
      if (polled[1].revents != 0) on_move_event();
      if (polled[2].revents != 0) from_client();
      // Indexes, not iterators: from_client may have appended a client (whose revents is still 0).
      for (std::size_t i = first_client_poll; i < polled.size(); ++i)
        if (polled[i].revents != 0) from_server(*clients_by_index[i - first_client_poll]);
    }
  }

  // Sends the held-back datagrams that are due; returns how long poll may then wait: until the next one is due,
  // or without limit (until a datagram or the stop event) when none is held.
  int release_due() {
    if (held_count == 0) return -1;
    const auto now = Clock::now();
    auto earliest = Clock::time_point::max();
    for (auto& client : clients_by_index)
      for (Flow* flow : {&client->to_server, &client->to_client})
        if (flow->held && flow->held->release_at <= now) release(*flow, take(*flow));
        else if (flow->held) earliest = std::min(earliest, flow->held->release_at);
    if (held_count == 0) return -1;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(earliest - now).count());
  }

  std::optional<Pending> take(Flow& flow) {
    std::optional<Pending> held = std::exchange(flow.held, std::nullopt);
    if (held) --held_count;
    return held;
  }
  void release(const Flow& flow, const std::optional<Pending>& held) {
    if (held) deliver(flow, held->bytes, held->copies);
  }

  void from_client() {
    Address from;
    const ssize_t got = ::recvfrom(listener.get(), buffer.data(), buffer.size(), 0, from.get(), &from.length);
    if (got < 0) return;   // EAGAIN or a transient error: poll tells us again when there is more
    Client* client = admit(from);
    if (client == nullptr) return bump(&RelayCounts::dropped);
    if (got > 0 && triggers_move(static_cast<std::uint8_t>(buffer[0]))) move_all();
    on_datagram(client->to_server, Datagram(buffer.begin(), buffer.begin() + got));
  }

  void from_server(Client& client) {
    // Also clears a pending ICMP error (ECONNREFUSED while the server is gone), so POLLERR cannot spin.
    const ssize_t got = ::recv(client.upstream.get(), buffer.data(), buffer.size(), 0);
    if (got >= 0) on_datagram(client.to_client, Datagram(buffer.begin(), buffer.begin() + got));
  }

  static constexpr std::size_t first_client_poll = 3;

  bool triggers_move(std::uint8_t first_byte) {
    const std::lock_guard lock{mutex};
    if (!move_trigger || move_trigger->first_byte != first_byte || --move_trigger->remaining > 0) return false;
    move_trigger.reset();
    return true;
  }

  // Every client's traffic leaves from a new port from now on, as behind a NAT that rebinds.
  void on_move_event() {
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t got = ::read(move_event.get(), &count, sizeof count);
    move_all();
  }
  void move_all() {
    for (std::size_t i = 0; i < clients_by_index.size(); ++i) {
      Client& client = *clients_by_index[i];
      Fd upstream = udp_socket(server.storage.ss_family);
      if (!upstream || ::connect(upstream.get(), server.get(), server.length) != 0) continue;
      client.upstream = std::move(upstream);
      client.to_server.fd = client.upstream.get();
      polled[first_client_poll + i].fd = client.upstream.get();
    }
    const std::lock_guard lock{mutex};
    ++moves_done;
    moved.notify_all();
  }

  // The client for `address`, made on first sight; nullptr past the cap or when no socket can be had.
  Client* admit(const Address& address) {
    std::string key = key_of(address);
    if (const auto found = clients_by_key.find(key); found != clients_by_key.end()) return found->second;
    if (clients_by_index.size() >= max_clients) return nullptr;
    Fd upstream = udp_socket(server.storage.ss_family);
    if (!upstream || ::connect(upstream.get(), server.get(), server.length) != 0) return nullptr;
    auto& client = clients_by_index.emplace_back(std::make_unique<Client>(address, std::move(upstream)));
    client->to_server = Flow{client->upstream.get(), nullptr, std::nullopt};
    client->to_client = Flow{listener.get(), &client->address, std::nullopt};
    polled.push_back(pollfd{client->upstream.get(), POLLIN, 0});
    clients_by_key.emplace(std::move(key), client.get());
    client_count = clients_by_index.size();
    return client.get();
  }

  // A datagram arriving in a flow releases the one held there, after itself: that is the reordering. One
  // datagram at most is held per flow, so the new one may be held only if none was.
  void on_datagram(Flow& flow, Datagram bytes) {
    const std::optional<Pending> earlier = take(flow);
    pass(flow, std::move(bytes), !earlier);
    release(flow, earlier);
  }

  void pass(Flow& flow, Datagram bytes, bool may_hold) {
    if (chance(faults.drop)) return bump(&RelayCounts::dropped);
    if (chance(faults.corrupt)) {
      mutate(bytes);
      bump(&RelayCounts::corrupted);
    }
    const int copies = chance(faults.duplicate) ? 2 : 1;
    if (may_hold && chance(faults.reorder)) {
      flow.held = Pending{std::move(bytes), copies, Clock::now() + reorder_hold};
      ++held_count;
      return bump(&RelayCounts::reordered);
    }
    deliver(flow, bytes, copies);
  }

  // A send the kernel refuses (full buffer, too long after appending) is a loss like any other: counted so.
  void deliver(const Flow& flow, const Datagram& bytes, int copies) {
    const auto send_once = [&] {
      return (flow.to ? ::sendto(flow.fd, bytes.data(), bytes.size(), 0, flow.to->get(), flow.to->length)
                      : ::send(flow.fd, bytes.data(), bytes.size(), 0)) >= 0;
    };
    if (!send_once()) return bump(&RelayCounts::dropped);
    bump(&RelayCounts::forwarded);
    if (copies > 1 && send_once()) bump(&RelayCounts::duplicated);
  }

  // Each mutation is one a real path (or an attacker) could make; a choice that cannot apply to a datagram
  // this short falls back to appending, so a "corrupted" datagram always differs from the original.
  void mutate(Datagram& bytes) {
    const std::size_t kind = between(0, 2);
    if (kind == 0 && !bytes.empty()) return flip_bits(bytes);
    if (kind == 1 && bytes.size() >= 2) return bytes.resize(between(1, bytes.size() - 1));
    for (std::size_t extra = between(1, 16); extra > 0; --extra)
      bytes.push_back(static_cast<std::byte>(between(0, 255)));
  }

  // Distinct bits: flipping one bit twice would undo a corruption that was counted.
  void flip_bits(Datagram& bytes) {
    const std::size_t bits = bytes.size() * 8;
    std::array<std::size_t, 3> chosen{};
    const std::size_t count = std::min<std::size_t>(between(1, 3), bits);
    for (std::size_t n = 0; n < count;) {
      const std::size_t bit = between(0, bits - 1);
      if (std::find(chosen.begin(), chosen.begin() + n, bit) != chosen.begin() + n) continue;
      chosen[n++] = bit;
      bytes[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    }
  }
};

UdpRelay::UdpRelay(const std::string& server_host, std::uint16_t server_port, RelayFaults faults,
                   const std::string& listen_host)
    : impl_{std::make_unique<Impl>()} {
  for (const double p : {faults.drop, faults.duplicate, faults.reorder, faults.corrupt})
    if (!(p >= 0 && p <= 1)) throw std::invalid_argument("relay: a fault probability must be in [0, 1]");
  Impl& impl = *impl_;
  impl.faults = faults;
  impl.random.seed(faults.seed);
  impl.server = resolve(server_host, server_port);
  Address listen = resolve(listen_host, 0);
  impl.listener = bound_socket(listen);
  if (const int error = errno; !impl.listener)
    throw std::runtime_error("relay: cannot listen on " + listen_host + ": " + std::strerror(error));
  impl.port = port_of(listen);
  impl.stop_event = Fd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  if (const int error = errno; !impl.stop_event)
    throw std::runtime_error(std::string("relay: eventfd: ") + std::strerror(error));
  impl.move_event = Fd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  if (const int error = errno; !impl.move_event)
    throw std::runtime_error(std::string("relay: eventfd: ") + std::strerror(error));
  impl.polled = {pollfd{impl.stop_event.get(), POLLIN, 0}, pollfd{impl.move_event.get(), POLLIN, 0},
                 pollfd{impl.listener.get(), POLLIN, 0}};
  impl.thread = std::thread([&impl] { impl.run(); });
}

UdpRelay::~UdpRelay() {
  const std::uint64_t one = 1;
  // Cannot fail: the counter is far from overflow. The thread wakes at once, so join is bounded.
  [[maybe_unused]] const ssize_t written = ::write(impl_->stop_event.get(), &one, sizeof one);
  impl_->thread.join();
}

std::uint16_t UdpRelay::port() const { return impl_->port; }

RelayCounts UdpRelay::counts() const {
  const std::lock_guard lock{impl_->mutex};
  return impl_->counts;
}

std::size_t UdpRelay::clients() const { return impl_->client_count; }

void UdpRelay::move_clients_before(std::uint8_t first_byte, std::size_t nth) {
  const std::lock_guard lock{impl_->mutex};
  impl_->move_trigger = Impl::MoveTrigger{first_byte, std::max<std::size_t>(nth, 1)};
}

std::uint64_t UdpRelay::moves() const {
  const std::lock_guard lock{impl_->mutex};
  return impl_->moves_done;
}

bool UdpRelay::move_clients() {
  std::unique_lock lock{impl_->mutex};
  const std::uint64_t before = impl_->moves_done;
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = ::write(impl_->move_event.get(), &one, sizeof one);
  return impl_->moved.wait_for(lock, std::chrono::seconds(5), [&] { return impl_->moves_done > before; });
}

}  // namespace dgram::testing
