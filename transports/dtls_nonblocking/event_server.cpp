// dgram.dtls.event_server: the event loop around a ServerEndpoint.
module;
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
  dgram::detail::UniqueFd epoll;
  dgram::detail::UniqueFd wake;   // eventfd: stop() and post()
  bool opened{false};   // open() succeeded: run() may start
  std::atomic<bool> stop_requested{false};
  std::mutex posted_mutex;
  std::vector<std::function<void(EventServer&)>> posted;
  std::optional<TimePoint> next_stats;

  // Receive buffers for one batch.
  std::vector<std::byte> receive_storage = std::vector<std::byte>(UdpSocket::max_batch * max_datagram_size);
  std::array<ReceiveSlot, UdpSocket::max_batch> receive_slots{};

  void open(std::shared_ptr<DtlsContext> context, const Endpoint& local, std::error_code& ec);
  void loop(std::error_code& ec);
  void drain_wake();
  void receive_all(std::error_code& ec);
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
  for (std::size_t i = 0; i < receive_slots.size(); ++i)
    receive_slots[i].buffer = std::span(receive_storage).subspan(i * max_datagram_size, max_datagram_size);
  opened = true;
}

void EventServer::Impl::loop(std::error_code& ec) {
  if (settings.stats_interval.count() > 0) next_stats = Clock::now() + settings.stats_interval;
  while (!stop_requested.load(std::memory_order_acquire)) {
    Deadline next = endpoint->next_timer();
    if (next_stats) next = next.min(Deadline::at(*next_stats));
    std::array<epoll_event, 2> events;
    const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), next.poll_timeout_ms(Clock::now()));
    if (ready < 0 && errno != EINTR) {
      ec = last_error();
      return;
    }
    for (int i = 0; i < ready; ++i) {
      if (events[static_cast<std::size_t>(i)].data.u32 == 1) drain_wake();
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

void EventServer::Impl::receive_all(std::error_code& ec) {
  for (int batch = 0; batch < batches_per_wakeup; ++batch) {
    const std::size_t count = socket.receive_batch(receive_slots, Deadline::now_or_never(), ec);
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
    endpoint->note_receive_overflows(socket.receive_overflows());
    const TimePoint now = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      const ReceiveSlot& slot = receive_slots[i];
      if (slot.truncated) {   // larger than any DTLS datagram
        endpoint->note_truncated();
        continue;
      }
      const auto datagram = slot.buffer.first(slot.size);
      if (const auto owner = endpoint->handle(now, slot.peer, datagram)) {   // another worker's session
        if (!port.forward || !port.forward(*owner, datagram, slot.peer)) endpoint->note_unknown_connection_id();
      }
      dispatch();
    }
    flush();
    if (count < UdpSocket::max_batch) return;
  }
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
  const std::span<const SendSlot> datagrams = endpoint->transmits();
  if (datagrams.size() == 1) {   // sendto is cheaper than a sendmmsg of one (the ping-pong case)
    std::error_code ec;
    socket.send_to(datagrams.front().payload, datagrams.front().peer, ec);
  }
  for (std::size_t sent = 0; datagrams.size() > 1 && sent < datagrams.size();) {
    std::error_code ec;
    sent += socket.send_batch(datagrams.subspan(sent), ec);
    if (ec) ++sent;
  }
  endpoint->clear_transmits();
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
