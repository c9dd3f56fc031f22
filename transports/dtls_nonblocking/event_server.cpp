// dgram.dtls.event_server: the event loop around a ServerEndpoint.
module;
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>
module dgram.dtls.event_server;

import dgram.fd;

namespace dgram::dtls {

void SessionHandler::on_established(EventServer&, SessionId, const SessionInfo&) {}
void SessionHandler::on_ended(EventServer&, const SessionSummary&) {}
void SessionHandler::on_handshake_failed(EventServer&, const Endpoint&, FailureKind, const std::string&) {}
void SessionHandler::on_stats(EventServer&, const EventServerStats&) {}

namespace {

// Datagrams read per wake-up before timers get their turn: 16 batches of 64.
constexpr int batches_per_wakeup = 16;

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

}  // namespace

struct EventServer::Impl {
  Impl(EventServer& owner, EventServerSettings options, SessionHandler& callbacks, detail::PortWorker wiring)
      : server{owner}, settings{std::move(options)}, handler{callbacks}, port{std::move(wiring)} {}

  EventServer& server;
  EventServerSettings settings;
  SessionHandler& handler;
  detail::PortWorker port;
  std::optional<ServerEndpoint> endpoint;
  UdpSocket socket;
  std::optional<UdpSocket> cluster_socket;   // a cluster node's: forwards to and from the other nodes
  dgram::detail::UniqueFd epoll;
  dgram::detail::UniqueFd wake;   // eventfd: stop() and post()
  bool opened{false};   // open() succeeded: run() may start
  std::atomic<bool> stop_requested{false};
  // drain(): the deadline asked for, in ms (negative: none asked); the loop starts draining at its next turn.
  std::atomic<std::int64_t> drain_requested_ms{-1};
  std::optional<TimePoint> drain_until;
  // While draining, a cluster node also waits until it has passed on nothing for other nodes for a while: a
  // moved client whose flow the balancer keeps on this node reaches its session's node through it.
  static constexpr std::chrono::milliseconds relay_quiet{1000};
  static constexpr std::chrono::milliseconds drain_check{100};   // (other workers' sessions, relays going quiet)
  std::uint64_t relayed_seen{0};
  TimePoint last_relay{};
  std::mutex posted_mutex;
  std::vector<std::function<void(EventServer&)>> posted;
  std::optional<TimePoint> next_stats;

  // Receive buffers for one batch.
  std::vector<std::byte> receive_storage = std::vector<std::byte>(UdpSocket::max_batch * max_datagram_size);
  std::array<ReceiveSlot, UdpSocket::max_batch> receive_slots{};

  void open(std::shared_ptr<DtlsContext> context, const Endpoint& local, std::error_code& ec);
  void loop(std::error_code& ec);
  void drain_wake();
  template <class Handle>
  void receive_batches(UdpSocket& from, std::error_code& ec, Handle handle);
  void receive_all(std::error_code& ec);
  void receive_cluster(std::error_code& ec);
  void hand_over(std::uint32_t owner, std::span<const std::byte> datagram, const Endpoint& from,
                 std::optional<std::uint32_t> via);
  bool drained(TimePoint now);
  void send_all(UdpSocket& through, std::span<const SendSlot> datagrams);
  void dispatch();
  void flush();
};

void EventServer::Impl::open(std::shared_ptr<DtlsContext> context, const Endpoint& local, std::error_code& ec) {
  endpoint.emplace(std::move(context), settings, ec, port.share);
  if (ec) return;
  UdpOptions options = settings.socket;
  options.nonblocking_send = true;
  options.count_receive_overflows = true;   // (the kernel adds the count only once it has dropped a datagram)
  socket = UdpSocket::bind(local, ec, options);
  if (ec) return;
  epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll || !wake) {
    ec = last_error();
    return;
  }
  epoll_event socket_event{EPOLLIN, {.u32 = 0}};
  epoll_event wake_event{EPOLLIN, {.u32 = 1}};
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, socket.native_handle(), &socket_event) != 0 ||
      ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &wake_event) != 0) {
    ec = last_error();
    return;
  }
  if (const auto& cluster = settings.cluster) {   // (the endpoint checked the node number)
    UdpOptions cluster_options;
    cluster_options.nonblocking_send = true;
    cluster_options.reuse_port = options.reuse_port;   // a ThreadedServer's workers share it too
    cluster_options.receive_buffer_bytes = options.receive_buffer_bytes;
    cluster_socket = UdpSocket::bind(cluster->nodes[cluster->node], ec, cluster_options);
    if (ec) return;
    epoll_event cluster_event{EPOLLIN, {.u32 = 2}};
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, cluster_socket->native_handle(), &cluster_event) != 0) {
      ec = last_error();
      return;
    }
  }
  for (std::size_t i = 0; i < receive_slots.size(); ++i)
    receive_slots[i].buffer = std::span(receive_storage).subspan(i * max_datagram_size, max_datagram_size);
  opened = true;
}

void EventServer::Impl::loop(std::error_code& ec) {
  if (settings.stats_interval.count() > 0) next_stats = Clock::now() + settings.stats_interval;
  while (!stop_requested.load(std::memory_order_acquire) && !drained(Clock::now())) {
    Deadline next = endpoint->next_timer();
    if (next_stats) next = next.min(Deadline::at(*next_stats));
    if (drain_until) next = next.min(Deadline::at(std::min(*drain_until, Clock::now() + drain_check)));
    std::array<epoll_event, 3> events;
    const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), next.poll_timeout_ms(Clock::now()));
    if (ready < 0 && errno != EINTR) {
      ec = last_error();
      return;
    }
    for (int i = 0; i < ready; ++i) {
      const std::uint32_t source = events[static_cast<std::size_t>(i)].data.u32;
      if (source == 1) drain_wake();
      else if (source == 2) receive_cluster(ec);
      else receive_all(ec);
      if (ec) return;
    }
    const TimePoint now = Clock::now();
    endpoint->on_timer(now);
    dispatch();
    if (next_stats && now >= *next_stats) {
      handler.on_stats(server, endpoint->stats());
      next_stats = now + settings.stats_interval;
    }
    flush();
  }
}

void EventServer::Impl::drain_wake() {
  std::uint64_t count = 0;
  [[maybe_unused]] const auto got = ::read(wake.get(), &count, sizeof count);
  std::vector<std::function<void(EventServer&)>> tasks;
  {
    const std::lock_guard lock(posted_mutex);
    tasks.swap(posted);
  }
  for (auto& task : tasks) {
    task(server);
    dispatch();
  }
}

// Reads `from` in batches until it has nothing more (at most batches_per_wakeup of them, then timers get their
// turn), giving each datagram to `handle`, the handler the events after each, and sending after each batch.
template <class Handle>
void EventServer::Impl::receive_batches(UdpSocket& from, std::error_code& ec, Handle handle) {
  for (int batch = 0; batch < batches_per_wakeup; ++batch) {
    const std::size_t count = from.receive_batch(receive_slots, Deadline::now_or_never(), ec);
    if (ec == errc::would_block || ec == errc::timeout || ec == errc::interrupted) {
      ec.clear();
      return;
    }
    if (ec) {   // an ICMP error of one peer (connection refused) surfaces here: not the server's failure
      if (ec.category() == std::system_category() && ec != std::errc::bad_file_descriptor) {
        ec.clear();
        continue;
      }
      return;
    }
    const TimePoint now = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      handle(receive_slots[i], now);
      dispatch();
    }
    flush();
    if (count < UdpSocket::max_batch) return;
  }
}

void EventServer::Impl::receive_all(std::error_code& ec) {
  receive_batches(socket, ec, [this](const ReceiveSlot& slot, TimePoint now) {
    if (slot.truncated) {   // larger than any DTLS datagram
      endpoint->note_truncated();
      return;
    }
    const auto datagram = slot.buffer.first(slot.size);
    if (const auto owner = endpoint->handle(now, slot.peer, datagram))   // another worker's session
      hand_over(*owner, datagram, slot.peer, std::nullopt);
  });
  endpoint->note_receive_overflows(socket.receive_overflows());
}

// What other nodes of the cluster sent: clients' records for our sessions, and our clients' replies to pass on.
void EventServer::Impl::receive_cluster(std::error_code& ec) {
  receive_batches(*cluster_socket, ec, [this](const ReceiveSlot& slot, TimePoint now) {
    // (A truncated one fails its MAC: refused and counted.)
    if (const auto handoff = endpoint->handle_cluster(now, slot.peer, slot.buffer.first(slot.size)))
      hand_over(handoff->worker, handoff->datagram, handoff->peer, handoff->via);
  });
}

void EventServer::Impl::hand_over(std::uint32_t owner, std::span<const std::byte> datagram, const Endpoint& from,
                                  std::optional<std::uint32_t> via) {
  if (!port.forward || !port.forward(owner, datagram, from, via)) endpoint->note_unknown_connection_id();
}

// Whether a drain is over: its deadline passed, or no session is left on the whole port (a ThreadedServer's
// workers stop together: a worker that stopped early would leave its share of the port's datagrams unread) and,
// on a cluster node, nothing passed through for other nodes lately. Starts a drain that drain() asked for.
bool EventServer::Impl::drained(TimePoint now) {
  const std::int64_t asked = drain_requested_ms.load(std::memory_order_acquire);
  if (asked < 0) return false;
  const ServerStats& counted = endpoint->stats();
  const std::uint64_t relayed = counted.forwarded_to_owner + counted.replies_for_nodes;
  if (!drain_until) {
    endpoint->drain();
    drain_until = now + std::chrono::milliseconds(asked);
    last_relay = now;
    relayed_seen = relayed;
  }
  if (now >= *drain_until) return true;
  if (relayed != relayed_seen) {
    relayed_seen = relayed;
    last_relay = now;
  }
  const std::size_t open = port.share.session_count ? port.share.session_count->load(std::memory_order_relaxed)
                                                    : endpoint->sessions();
  return open == 0 && (!settings.cluster || now - last_relay >= relay_quiet);
}

// Hands the endpoint's events to the program, after the endpoint call that made them. A callback may call
// send() or close(): those go to the endpoint, and what they cause is dispatched in this same loop.
void EventServer::Impl::dispatch() {
  while (auto event = endpoint->next_event()) {
    std::visit([this](auto& happened) {
      using Kind = std::decay_t<decltype(happened)>;
      if constexpr (std::is_same_v<Kind, SessionEstablished>) {
        handler.on_established(server, happened.id, happened.session);
      } else if constexpr (std::is_same_v<Kind, SessionMessage>) {
        handler.on_message(server, happened.id, happened.message);
      } else if constexpr (std::is_same_v<Kind, SessionEnded>) {
        handler.on_ended(server, happened.summary);
      } else {
        handler.on_handshake_failed(server, happened.peer, happened.kind, happened.why);
      }
    }, *event);
  }
}

// Sends everything the endpoint queued in as few sendmmsg calls as it takes. A datagram the kernel refuses (a
// full buffer, an unreachable peer) is skipped: DTLS retransmits what matters.
void EventServer::Impl::flush() {
  send_all(socket, endpoint->transmits());
  if (cluster_socket) send_all(*cluster_socket, endpoint->cluster_transmits());
  endpoint->clear_transmits();
}

void EventServer::Impl::send_all(UdpSocket& through, std::span<const SendSlot> datagrams) {
  if (datagrams.size() == 1) {   // sendto is cheaper than a sendmmsg of one (the ping-pong case)
    std::error_code ec;
    through.send_to(datagrams.front().payload, datagrams.front().peer, ec);
  }
  for (std::size_t sent = 0; datagrams.size() > 1 && sent < datagrams.size();) {
    std::error_code ec;
    sent += through.send_batch(datagrams.subspan(sent), ec);
    if (ec) ++sent;
  }
}

EventServer::EventServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, EventServerSettings settings,
                         SessionHandler& handler, std::error_code& ec)
    : EventServer(std::move(context), local, std::move(settings), handler, ec, detail::PortWorker{}) {}

EventServer::EventServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, EventServerSettings settings,
                         SessionHandler& handler, std::error_code& ec, detail::PortWorker port)
    : impl_{std::make_unique<Impl>(*this, std::move(settings), handler, std::move(port))} {
  ec.clear();
  impl_->open(std::move(context), local, ec);
}

EventServer::~EventServer() = default;

std::uint32_t EventServer::worker() const noexcept { return impl_->port.share.worker; }

Endpoint EventServer::local_endpoint() const {
  std::error_code ec;
  return impl_->socket.local_endpoint(ec);
}

void EventServer::run(std::error_code& ec) {
  ec.clear();
  if (!impl_->opened) {   // the constructor failed and said so
    ec = make_error_code(errc::not_set_up);
    return;
  }
  impl_->loop(ec);
  if (!ec) {   // what peers sent before the stop is taken first (a client's alert, its last message)
    impl_->receive_all(ec);
    impl_->endpoint->on_timer(Clock::now());
    impl_->dispatch();
  }
  impl_->endpoint->shutdown();
  impl_->dispatch();
  impl_->flush();
}

void EventServer::stop() noexcept {
  impl_->stop_requested.store(true, std::memory_order_release);
  if (!impl_->wake) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(impl_->wake.get(), &one, sizeof one);
}

void EventServer::drain(std::chrono::milliseconds deadline) noexcept {
  impl_->drain_requested_ms.store(std::max<std::int64_t>(deadline.count(), 0), std::memory_order_release);
  if (!impl_->wake) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(impl_->wake.get(), &one, sizeof one);
}

void EventServer::post(std::function<void(EventServer&)> task) {
  {
    const std::lock_guard lock(impl_->posted_mutex);
    impl_->posted.push_back(std::move(task));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(impl_->wake.get(), &one, sizeof one);
}

void EventServer::send(SessionId id, std::span<const std::byte> message, std::error_code& ec) {
  impl_->endpoint->send(id, message, ec);
}

void EventServer::close(SessionId id) { impl_->endpoint->close(id); }

int EventServer::receive_buffer_size() const noexcept { return impl_->socket.receive_buffer_size(); }

std::optional<SessionCounters> EventServer::counters(SessionId id) const noexcept {
  return impl_->endpoint->counters(id);
}

const Engine* EventServer::engine(SessionId id) const noexcept { return impl_->endpoint->engine(id); }

ServerEndpoint& EventServer::endpoint() noexcept { return *impl_->endpoint; }

const EventServerStats& EventServer::stats() const noexcept { return impl_->endpoint->stats(); }

}  // namespace dgram::dtls
