// dgram.dtls.event_server: the event loop, the session table and the timers.
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
#include <unordered_map>
#include <utility>
#include <vector>
module dgram.dtls.event_server;

import dgram.dtls.record;
import dgram.fd;
import dgram.timer_queue;

namespace dgram::dtls {

void accumulate(EventServerStats& total, const EventServerStats& worker) noexcept {
  total.sessions_open += worker.sessions_open;
  total.sessions_total += worker.sessions_total;
  total.handshakes_full += worker.handshakes_full;
  total.handshakes_resumed += worker.handshakes_resumed;
  total.handshakes_failed += worker.handshakes_failed;
  total.handshake_timeouts += worker.handshake_timeouts;
  total.idle_timeouts += worker.idle_timeouts;
  total.cookies_sent += worker.cookies_sent;
  total.bad_cookies += worker.bad_cookies;
  total.dropped_garbage += worker.dropped_garbage;
  total.dropped_no_session += worker.dropped_no_session;
  total.dropped_over_limit += worker.dropped_over_limit;
  total.dropped_undecryptable += worker.dropped_undecryptable;
  total.sessions_replaced += worker.sessions_replaced;
  total.address_changes += worker.address_changes;
  total.dropped_unknown_connection_id += worker.dropped_unknown_connection_id;
  total.datagrams_in += worker.datagrams_in;
  total.datagrams_out += worker.datagrams_out;
  total.messages_in += worker.messages_in;
  total.messages_out += worker.messages_out;
}

void SessionHandler::on_established(EventServer&, SessionId, const SessionInfo&) {}
void SessionHandler::on_ended(EventServer&, const SessionSummary&) {}
void SessionHandler::on_handshake_failed(EventServer&, const Endpoint&, FailureKind, const std::string&) {}
void SessionHandler::on_stats(EventServer&, const EventServerStats&) {}

namespace {

// Datagrams read per wake-up before timers get their turn: 16 batches of 64.
constexpr int batches_per_wakeup = 16;

std::error_code last_error() noexcept { return {errno, std::system_category()}; }


struct Slot {
  std::optional<Engine> engine;   // empty: a free slot
  std::uint32_t generation{0};
  TimePoint started{};
  TimePoint last_activity{};
  TimePoint scheduled{TimePoint::max()};   // the time of this slot's live timer-heap entry
  std::uint64_t messages_in{0};
  std::uint64_t messages_out{0};
  std::uint64_t engine_dropped{0};         // engine drops already counted in the stats
  std::array<std::byte, 32> client_random{};   // of the ClientHello that opened it: tells a new handshake
  bool dirty{false};                       // has outgoing datagrams, listed in Impl::dirty
  bool open{false};                        // established and counted in sessions_open: ends with on_ended
  std::optional<std::uint64_t> connection_id;   // its key in by_connection_id
  std::optional<Endpoint> arriving_from;   // a datagram for it came from another address: moved once it decrypts
  std::uint64_t address_changes{0};
};

// A Connection ID as a map key (dgram's CIDs are 8 bytes).
std::uint64_t connection_id_key(std::span<const std::byte> id) {
  std::uint64_t key = 0;
  for (const std::byte b : id) key = key << 8 | static_cast<std::uint64_t>(b);
  return key;
}

}  // namespace

struct EventServer::Impl {
  Impl(EventServer& owner, std::shared_ptr<DtlsContext> dtls, EventServerSettings options, SessionHandler& callbacks)
      : server{owner}, context{std::move(dtls)}, settings{std::move(options)}, handler{callbacks} {}

  EventServer& server;
  std::shared_ptr<DtlsContext> context;
  EventServerSettings settings;
  SessionHandler& handler;
  UdpSocket socket;
  detail::UniqueFd epoll;
  detail::UniqueFd wake;   // eventfd: stop() and post()
  std::optional<Listener> listener;
  bool opened{false};   // open() succeeded: run() may start
  std::atomic<bool> stop_requested{false};
  std::mutex posted_mutex;
  std::vector<std::function<void(EventServer&)>> posted;

  std::vector<Slot> slots;
  std::vector<std::uint32_t> free_slots;
  std::unordered_map<Endpoint, std::uint32_t, EndpointHash> by_peer;
  std::unordered_map<std::uint64_t, std::uint32_t> by_connection_id;   // DTLS 1.3 sessions with a CID
  std::shared_ptr<std::atomic<std::size_t>> sessions_in_use;   // this server's by_peer entries, or with
                                                              // settings.shared_session_count every worker's
  TimerQueue timers;
  std::vector<std::uint32_t> dirty;                   // slots with outgoing datagrams
  std::vector<std::vector<std::byte>> replies;        // the Listener's answers, sent with the next flush
  std::vector<std::pair<std::size_t, Endpoint>> reply_peers;   // index into replies, and where it goes
  std::size_t replies_used{0};
  EventServerStats stats;
  std::optional<TimePoint> next_stats;

  // Receive buffers for one batch, and the message buffer for take_message.
  std::vector<std::byte> receive_storage = std::vector<std::byte>(UdpSocket::max_batch * max_datagram_size);
  std::array<ReceiveSlot, UdpSocket::max_batch> receive_slots{};
  std::vector<std::byte> message = std::vector<std::byte>(max_datagram_size);
  std::vector<SendSlot> send_slots;

  bool open(const Endpoint& local, std::error_code& ec);
  void loop(std::error_code& ec);
  void drain_wake();
  void receive_all(std::error_code& ec);
  void on_datagram(std::span<const std::byte> datagram, const Endpoint& peer, TimePoint now);
  void on_new_peer(std::span<const std::byte> datagram, const Endpoint& peer, TimePoint now);
  // A record with a Connection ID: to its session wherever it came from (or to the worker that issued it).
  void on_connection_id(std::span<const std::byte> datagram, std::span<const std::byte> id, const Endpoint& peer,
                        TimePoint now);
  // The session's peer moved to `to` (a record from there decrypted): the table and replies follow.
  void move_peer(std::uint32_t index, const Endpoint& to);
  void deliver(std::uint32_t index, std::span<const std::byte> datagram, TimePoint now);
  void take_messages(std::uint32_t index);
  void after_engine_call(std::uint32_t index, TimePoint now, bool was_handshaking, const std::error_code& ec);
  void run_timers(TimePoint now);
  void on_timer(std::uint32_t index, TimePoint now);
  Deadline due(const Slot& slot) const;
  void reschedule(std::uint32_t index);
  void mark_dirty(std::uint32_t index);
  void queue_reply(std::span<const std::byte> datagram, const Endpoint& peer);
  void flush();
  void end_session(std::uint32_t index, SessionEnd why);
  // Ends an open session (on_ended) or drops one still handshaking (nothing to report).
  void remove_session(std::uint32_t index, SessionEnd why);
  void fail_handshake(std::uint32_t index, FailureKind kind, const std::string& why);
  void free_slot(std::uint32_t index);
  void shutdown();
  Slot* find(SessionId id);
};

bool EventServer::Impl::open(const Endpoint& local, std::error_code& ec) {
  if (context->config().role != Role::server) {
    ec = make_error_code(errc::invalid_argument);
    return false;
  }
  UdpOptions options = settings.socket;
  options.nonblocking_send = true;
  socket = UdpSocket::bind(local, ec, options);
  if (ec) return false;
  listener.emplace(context, ec, settings.cookie_secrets, static_cast<std::uint8_t>(settings.worker));
  if (ec) return false;
  sessions_in_use = settings.shared_session_count ? settings.shared_session_count
                                                  : std::make_shared<std::atomic<std::size_t>>(0);
  epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll || !wake) {
    ec = last_error();
    return false;
  }
  epoll_event socket_event{EPOLLIN, {.u32 = 0}};
  epoll_event wake_event{EPOLLIN, {.u32 = 1}};
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, socket.native_handle(), &socket_event) != 0 ||
      ::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &wake_event) != 0) {
    ec = last_error();
    return false;
  }
  for (std::size_t i = 0; i < receive_slots.size(); ++i)
    receive_slots[i].buffer = std::span(receive_storage).subspan(i * max_datagram_size, max_datagram_size);
  opened = true;
  return true;
}

void EventServer::Impl::loop(std::error_code& ec) {
  if (settings.stats_interval.count() > 0) next_stats = Clock::now() + settings.stats_interval;
  while (!stop_requested.load(std::memory_order_acquire)) {
    Deadline next = timers.next();
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
    run_timers(now);
    if (next_stats && now >= *next_stats) {
      handler.on_stats(server, stats);
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
  for (auto& task : tasks) task(server);
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
    const TimePoint now = Clock::now();
    for (std::size_t i = 0; i < count; ++i) {
      const ReceiveSlot& slot = receive_slots[i];
      ++stats.datagrams_in;
      if (slot.truncated) {   // larger than any DTLS datagram
        ++stats.dropped_garbage;
        continue;
      }
      on_datagram(slot.buffer.first(slot.size), slot.peer, now);
    }
    flush();
    if (count < UdpSocket::max_batch) return;
  }
}

void EventServer::Impl::on_datagram(std::span<const std::byte> datagram, const Endpoint& peer, TimePoint now) {
  if (!record::well_formed(datagram)) {
    ++stats.dropped_garbage;
    return;
  }
  if (const auto id = record::connection_id(datagram); !id.empty()) {
    on_connection_id(datagram, id, peer, now);
    return;
  }
  if (const auto found = by_peer.find(peer); found != by_peer.end()) {
    // Application data (the common case) skips the ClientHello parse.
    const auto hello = datagram[0] == std::byte{22} ? record::client_hello(datagram) : std::nullopt;
    if (!hello || hello->random == slots[found->second].client_random) {   // the session's, or a retransmission
      deliver(found->second, datagram, now);
      return;
    }
    // A new handshake from a session's address (RFC 6347 4.2.8): answered statelessly like any new peer; the
    // old session gives way only when the cookie proves the peer owns the address (on_new_peer).
  }
  on_new_peer(datagram, peer, now);
}

void EventServer::Impl::on_connection_id(std::span<const std::byte> datagram, std::span<const std::byte> id,
                                         const Endpoint& peer, TimePoint now) {
  const auto owner = static_cast<std::uint8_t>(id[0]);   // the issuing worker (the Listener's prefix)
  if (owner != static_cast<std::uint8_t>(settings.worker) && settings.foreign_connection_id) {
    if (!settings.foreign_connection_id(owner, datagram, peer)) ++stats.dropped_unknown_connection_id;
    return;
  }
  const auto found = by_connection_id.find(connection_id_key(id));
  if (found == by_connection_id.end()) {
    ++stats.dropped_unknown_connection_id;
    return;
  }
  Slot& slot = slots[found->second];
  // From a new address the session follows only once a record from there decrypts (take_messages): a forged
  // or replayed record moves nothing.
  if (peer != slot.engine->peer()) slot.arriving_from = peer;
  deliver(found->second, datagram, now);
  slot.arriving_from.reset();   // (the slot stays where it is: a delivery adds none)
}

void EventServer::Impl::move_peer(std::uint32_t index, const Endpoint& to) {
  // Not onto an address another session holds: that peer may still be there (a replayed record could claim
  // it), and ending a session here would call the handler in the middle of this one's message.
  if (by_peer.contains(to)) return;
  Slot& slot = slots[index];
  by_peer.erase(slot.engine->peer());
  by_peer.emplace(to, index);   // one entry out, one in: the count of sessions stays
  slot.engine->set_peer(to);
  ++slot.address_changes;
  ++stats.address_changes;
}

// A peer without a session: only a ClientHello may start one, through the stateless cookie exchange.
void EventServer::Impl::on_new_peer(std::span<const std::byte> datagram, const Endpoint& peer, TimePoint now) {
  const auto hello = record::client_hello(datagram);
  if (!hello) {
    ++stats.dropped_no_session;
    return;
  }
  const auto existing = by_peer.find(peer);
  // At the limit: no state, no answer; the peer retransmits and is served once a slot frees.
  if (existing == by_peer.end() && sessions_in_use->load(std::memory_order_relaxed) >= settings.max_sessions) {
    ++stats.dropped_over_limit;
    return;
  }
  const ListenerStats before = listener->stats();
  std::error_code ec;
  std::optional<Engine> engine = listener->on_datagram(peer, datagram, now, ec);
  const ListenerStats& after = listener->stats();
  stats.cookies_sent += after.hello_verify_requests - before.hello_verify_requests;
  stats.bad_cookies += after.bad_cookies - before.bad_cookies;
  for (const auto& reply : listener->replies()) queue_reply(reply, peer);
  listener->clear_replies();
  if (ec && !listener->failure().empty()) {
    ++stats.handshakes_failed;
    handler.on_handshake_failed(server, peer, listener->failure_kind(), listener->failure());
  }
  if (!engine) return;
  if (existing != by_peer.end()) {   // the Listener does not touch the table: the lookup above still holds
    ++stats.sessions_replaced;
    remove_session(existing->second, SessionEnd::replaced);
  }
  std::uint32_t index;
  if (!free_slots.empty()) {
    index = free_slots.back();
    free_slots.pop_back();
  } else {
    index = static_cast<std::uint32_t>(slots.size());
    slots.emplace_back();
  }
  Slot& slot = slots[index];
  slot.engine.emplace(std::move(*engine));
  slot.started = slot.last_activity = now;
  slot.messages_in = slot.messages_out = 0;
  slot.engine_dropped = slot.engine->stats().dropped_datagrams;   // the Listener's, before it had a session
  slot.client_random = hello->random;
  slot.address_changes = 0;
  if (const auto id = slot.engine->receive_connection_id(); id.size() == record::connection_id_size) {
    // Random, so a clash is a 2^-56 event: the older session keeps the ID, this one is reached by address.
    if (by_connection_id.emplace(connection_id_key(id), index).second) slot.connection_id = connection_id_key(id);
  }
  if (by_peer.emplace(peer, index).second) sessions_in_use->fetch_add(1, std::memory_order_relaxed);
  mark_dirty(index);
  reschedule(index);
}

void EventServer::Impl::deliver(std::uint32_t index, std::span<const std::byte> datagram, TimePoint now) {
  Slot& slot = slots[index];
  Engine& engine = *slot.engine;
  const bool was_handshaking = engine.state() == EngineState::handshaking;
  std::error_code ec;
  engine.on_datagram(datagram, now, ec);
  after_engine_call(index, now, was_handshaking, ec);
}

// After the engine took a datagram or a timer: report a finished or failed handshake, hand decrypted
// messages to the handler, count drops, send what it queued, and end the session if it is over.
void EventServer::Impl::after_engine_call(std::uint32_t index, TimePoint now, bool was_handshaking,
                                          const std::error_code& ec) {
  const std::uint32_t generation = slots[index].generation;
  // Callbacks may end this session (close()); after each one, go on only while it is still there.
  const auto alive = [&] { return slots[index].generation == generation && slots[index].engine.has_value(); };
  Engine& engine = *slots[index].engine;
  const std::uint64_t dropped_before = slots[index].engine_dropped;
  if (ec || engine.state() == EngineState::failed) {
    if (was_handshaking) {
      fail_handshake(index, engine.failure_kind(), engine.failure().empty() ? ec.message() : engine.failure());
    } else {
      end_session(index, SessionEnd::failed);
    }
    return;
  }
  if (was_handshaking && engine.state() == EngineState::established) {
    slots[index].last_activity = now;
    slots[index].open = true;
    ++stats.sessions_open;
    ++stats.sessions_total;
    ++(engine.resumed() ? stats.handshakes_resumed : stats.handshakes_full);
    handler.on_established(server, SessionId{index, generation, settings.worker}, engine.info());
    if (!alive()) return;
  }
  if (engine.state() == EngineState::established) take_messages(index);
  if (!alive()) return;
  Slot& slot = slots[index];
  const std::uint64_t dropped_now = engine.stats().dropped_datagrams;
  stats.dropped_undecryptable += dropped_now - dropped_before;
  slot.engine_dropped = dropped_now;
  if (dropped_now == dropped_before) slot.last_activity = now;   // a real datagram, not a replay or forgery
  if (engine.state() == EngineState::closed || engine.state() == EngineState::failed) {   // close_notify, or
    // a fatal alert or error while decrypting
    end_session(index, engine.state() == EngineState::closed ? SessionEnd::closed_by_peer : SessionEnd::failed);
    return;
  }
  if (!engine.outgoing().empty()) mark_dirty(index);
  reschedule(index);
}

void EventServer::Impl::take_messages(std::uint32_t index) {
  const std::uint32_t generation = slots[index].generation;
  for (;;) {
    Slot& slot = slots[index];
    if (slot.generation != generation || !slot.engine) return;
    std::error_code ec;
    const auto size = slot.engine->take_message(message, ec);
    if (!size) return;   // nothing more (a close_notify or failure shows in the state)
    if (slot.arriving_from) {   // it decrypted: the peer did move
      move_peer(index, *slot.arriving_from);
      slot.arriving_from.reset();
    }
    ++slot.messages_in;
    ++stats.messages_in;
    handler.on_message(server, SessionId{index, generation, settings.worker}, std::span(message).first(*size));
  }
}

Deadline EventServer::Impl::due(const Slot& slot) const {
  const Engine& engine = *slot.engine;
  if (engine.state() == EngineState::handshaking)
    return engine.next_timer().min(Deadline::at(slot.started + context->config().handshake_timeout));
  return Deadline::at(slot.last_activity + settings.idle_timeout);
}

void EventServer::Impl::reschedule(std::uint32_t index) {
  Slot& slot = slots[index];
  const Deadline deadline = due(slot);
  if (deadline.is_never() || deadline.point() >= slot.scheduled) return;   // the live entry comes first
  slot.scheduled = deadline.point();
  timers.schedule(index, slot.generation, slot.scheduled);
}

void EventServer::Impl::run_timers(TimePoint now) {
  while (const auto entry = timers.pop_due(now)) {
    Slot& slot = slots[entry->key];
    if (slot.generation != entry->generation || !slot.engine || slot.scheduled != entry->when) continue;   // stale
    slot.scheduled = TimePoint::max();
    on_timer(entry->key, now);
  }
}

void EventServer::Impl::on_timer(std::uint32_t index, TimePoint now) {
  Slot& slot = slots[index];
  Engine& engine = *slot.engine;
  if (engine.state() == EngineState::handshaking) {
    if (now >= slot.started + context->config().handshake_timeout) {
      ++stats.handshake_timeouts;
      fail_handshake(index, FailureKind::timed_out, "the handshake did not finish in time (the peer stopped answering)");
      return;
    }
    if (engine.next_timer().passed(now)) {
      std::error_code ec;
      engine.on_timer(now, ec);   // retransmits the last flight
      after_engine_call(index, now, true, ec);
      return;
    }
  } else if (now >= slot.last_activity + settings.idle_timeout) {
    ++stats.idle_timeouts;
    end_session(index, SessionEnd::idle);
    return;
  }
  reschedule(index);
}

void EventServer::Impl::mark_dirty(std::uint32_t index) {
  Slot& slot = slots[index];
  if (slot.dirty) return;
  slot.dirty = true;
  dirty.push_back(index);
}

void EventServer::Impl::queue_reply(std::span<const std::byte> datagram, const Endpoint& peer) {
  if (replies_used == replies.size()) replies.emplace_back();
  replies[replies_used].assign(datagram.begin(), datagram.end());   // reuses the buffer's capacity
  reply_peers.emplace_back(replies_used++, peer);
}

// Sends everything queued in as few sendmmsg calls as it takes. A datagram the kernel refuses (a full buffer,
// an unreachable peer) is skipped: DTLS retransmits what matters.
void EventServer::Impl::flush() {
  send_slots.clear();
  for (const auto& [reply, peer] : reply_peers) send_slots.push_back({replies[reply], peer});
  for (const std::uint32_t index : dirty) {
    const Slot& slot = slots[index];
    if (!slot.engine) continue;
    for (const auto& datagram : slot.engine->outgoing()) send_slots.push_back({datagram, slot.engine->peer()});
  }
  if (send_slots.size() == 1) {   // sendto is cheaper than a sendmmsg of one (the ping-pong case)
    std::error_code ec;
    socket.send_to(send_slots.front().payload, send_slots.front().peer, ec);
  }
  for (std::size_t sent = 0; send_slots.size() > 1 && sent < send_slots.size();) {
    std::error_code ec;
    sent += socket.send_batch(std::span(send_slots).subspan(sent), ec);
    if (ec) ++sent;
  }
  stats.datagrams_out += send_slots.size();
  for (const std::uint32_t index : dirty) {
    Slot& slot = slots[index];
    slot.dirty = false;
    if (slot.engine) slot.engine->clear_outgoing();
  }
  dirty.clear();
  reply_peers.clear();
  replies_used = 0;
}

void EventServer::Impl::fail_handshake(std::uint32_t index, FailureKind kind, const std::string& why) {
  Slot& slot = slots[index];
  const Endpoint peer = slot.engine->peer();
  ++stats.handshakes_failed;
  for (const auto& datagram : slot.engine->outgoing()) queue_reply(datagram, peer);   // the alert, if any
  free_slot(index);
  handler.on_handshake_failed(server, peer, kind, why);
}

void EventServer::Impl::end_session(std::uint32_t index, SessionEnd why) {
  Slot& slot = slots[index];
  Engine& engine = *slot.engine;
  for (const auto& datagram : engine.outgoing()) queue_reply(datagram, engine.peer());   // close_notify, alerts
  stats.dropped_undecryptable += engine.stats().dropped_datagrams - slot.engine_dropped;
  const SessionSummary summary{SessionId{index, slot.generation, settings.worker}, engine.peer(), engine.resumed(),
                               engine.cipher(), slot.messages_in, slot.messages_out, why, engine.version(),
                               engine.connection_id_in_use(), slot.address_changes, engine.psk_identity(),
                               engine.peer_key_sha256()};
  --stats.sessions_open;
  free_slot(index);
  handler.on_ended(server, summary);
}

void EventServer::Impl::remove_session(std::uint32_t index, SessionEnd why) {
  if (slots[index].open) {
    end_session(index, why);
  } else {
    free_slot(index);
  }
}

void EventServer::Impl::free_slot(std::uint32_t index) {
  Slot& slot = slots[index];
  if (by_peer.erase(slot.engine->peer()) > 0) sessions_in_use->fetch_sub(1, std::memory_order_relaxed);
  if (slot.connection_id) by_connection_id.erase(*slot.connection_id);
  slot.connection_id.reset();
  slot.arriving_from.reset();
  slot.engine.reset();
  ++slot.generation;   // stale timer entries and SessionIds of this session no longer match
  slot.scheduled = TimePoint::max();
  slot.open = false;
  free_slots.push_back(index);
}

void EventServer::Impl::shutdown() {
  for (std::uint32_t index = 0; index < slots.size(); ++index) {
    Slot& slot = slots[index];
    if (!slot.engine) continue;
    slot.engine->close();   // close_notify, when established
    remove_session(index, SessionEnd::server_stopping);
  }
  flush();
}

Slot* EventServer::Impl::find(SessionId id) {
  if (id.worker != settings.worker || id.index >= slots.size()) return nullptr;
  Slot& slot = slots[id.index];
  return slot.engine && slot.generation == id.generation ? &slot : nullptr;
}

EventServer::EventServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, EventServerSettings settings,
                         SessionHandler& handler, std::error_code& ec)
    : impl_{std::make_unique<Impl>(*this, std::move(context), std::move(settings), handler)} {
  ec.clear();
  impl_->open(local, ec);
}

EventServer::~EventServer() = default;

std::uint32_t EventServer::worker() const noexcept { return impl_->settings.worker; }

Endpoint EventServer::local_endpoint() const {
  std::error_code ec;
  return impl_->socket.local_endpoint(ec);
}

void EventServer::run(std::error_code& ec) {
  ec.clear();
  if (!impl_->opened) {   // the constructor failed and said so
    ec = make_error_code(errc::not_connected);
    return;
  }
  impl_->loop(ec);
  if (!ec) {   // what peers sent before the stop is taken first (a client's alert, its last message)
    impl_->receive_all(ec);
    impl_->run_timers(Clock::now());
  }
  impl_->shutdown();
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
  ec.clear();
  Slot* slot = impl_->find(id);
  if (!slot) {
    ec = make_error_code(errc::not_connected);
    return;
  }
  slot->engine->send(message, ec);
  if (slot->engine->state() == EngineState::failed) {   // wolfSSL could not encrypt: the session is over
    impl_->remove_session(id.index, SessionEnd::failed);
    return;
  }
  if (ec) return;
  ++slot->messages_out;
  ++impl_->stats.messages_out;
  impl_->mark_dirty(id.index);
}

void EventServer::close(SessionId id) {
  Slot* slot = impl_->find(id);
  if (!slot) return;
  slot->engine->close();   // queues close_notify (when established), which end_session sends
  impl_->remove_session(id.index, SessionEnd::closed_by_server);
}

void EventServer::take_forwarded(std::span<const std::byte> datagram, const Endpoint& from) {
  // (counted in datagrams_in by the server whose socket received it)
  impl_->on_datagram(datagram, from, Clock::now());
}

const EventServerStats& EventServer::stats() const noexcept { return impl_->stats; }

}  // namespace dgram::dtls
