// dgram.dtls.server_endpoint: the session table, the routing rules, the limits and the timers of a server port.
module;
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>
#include "keyed_hash.hpp"
#include "random.hpp"
#include "shared_keys.hpp"
module dgram.dtls.server_endpoint;

import dgram.dtls.record;
import dgram.timer_queue;

#include "cluster_forward.hpp"

namespace dgram::dtls {

void accumulate(ServerStats& total, const ServerStats& part) noexcept {
  total.sessions_open += part.sessions_open;
  total.sessions_total += part.sessions_total;
  total.handshakes_full += part.handshakes_full;
  total.handshakes_resumed += part.handshakes_resumed;
  total.handshakes_failed += part.handshakes_failed;
  total.handshake_timeouts += part.handshake_timeouts;
  total.handshakes_crowded_out += part.handshakes_crowded_out;
  total.idle_timeouts += part.idle_timeouts;
  total.cookies_sent += part.cookies_sent;
  total.bad_cookies += part.bad_cookies;
  total.replayed_hellos += part.replayed_hellos;
  total.served_without_cookie += part.served_without_cookie;
  total.answers_withheld += part.answers_withheld;
  total.dropped_garbage += part.dropped_garbage;
  total.dropped_no_session += part.dropped_no_session;
  total.dropped_over_limit += part.dropped_over_limit;
  total.dropped_undecryptable += part.dropped_undecryptable;
  total.dropped_over_handshake_budget += part.dropped_over_handshake_budget;
  total.sessions_replaced += part.sessions_replaced;
  total.address_changes += part.address_changes;
  total.address_changes_refused += part.address_changes_refused;
  total.paths_confirmed += part.paths_confirmed;
  total.replies_withheld_unproven += part.replies_withheld_unproven;
  total.dropped_unknown_connection_id += part.dropped_unknown_connection_id;
  total.dropped_receive_overflow += part.dropped_receive_overflow;
  total.forwarded_to_owner += part.forwarded_to_owner;
  total.forwards_received += part.forwards_received;
  total.forwards_unroutable += part.forwards_unroutable;
  total.forwards_refused += part.forwards_refused;
  total.replies_through_nodes += part.replies_through_nodes;
  total.replies_for_nodes += part.replies_for_nodes;
  total.refused_draining += part.refused_draining;
  total.drained_sessions += part.drained_sessions;
  total.drain_cut_sessions += part.drain_cut_sessions;
  total.datagrams_in += part.datagrams_in;
  total.datagrams_out += part.datagrams_out;
  total.messages_in += part.messages_in;
  total.messages_out += part.messages_out;
}

namespace {

using ClientRandom = std::array<std::byte, 32>;

// Where handshakes come from, for the per-source limit: an IPv4 address, or an IPv6 /64 (one host's share).
struct Source {
  std::array<std::uint8_t, 8> prefix{};
  bool ipv6{false};
  friend bool operator==(const Source&, const Source&) = default;
};

Source source_of(const Endpoint& peer) {
  Source source;
  source.ipv6 = peer.family() == Family::ipv6;
  const auto bytes = peer.address_bytes();
  std::copy_n(bytes.begin(), std::min<std::size_t>(bytes.size(), source.ipv6 ? 8 : 4), source.prefix.begin());
  return source;
}

// A ClientHello that opened a session: its address and random.
struct HelloKey {
  Endpoint peer;
  ClientRandom random{};
  friend bool operator==(const HelloKey&, const HelloKey&) = default;
};

// The tables' hashes, keyed per endpoint (see keyed_hash.hpp).
struct KeyedHash {
  detail::HashKey key;

  std::size_t operator()(const Endpoint& peer) const noexcept {
    std::array<std::byte, 16 + 2 + 4 + 1> bytes{};
    const auto address = peer.address_bytes();
    std::memcpy(bytes.data(), address.data(), address.size());
    const std::uint16_t port = peer.port();
    const std::uint32_t scope = peer.scope_id();
    std::memcpy(bytes.data() + 16, &port, 2);
    std::memcpy(bytes.data() + 18, &scope, 4);
    bytes[22] = static_cast<std::byte>(peer.family());
    return detail::siphash13(key, bytes);
  }
  std::size_t operator()(const Source& source) const noexcept {
    std::array<std::byte, 9> bytes{};
    std::memcpy(bytes.data(), source.prefix.data(), 8);
    bytes[8] = static_cast<std::byte>(source.ipv6);
    return detail::siphash13(key, bytes);
  }
  std::size_t operator()(const HelloKey& hello) const noexcept {
    std::array<std::byte, 40> bytes{};
    std::memcpy(bytes.data(), hello.random.data(), hello.random.size());
    const std::uint64_t peer = (*this)(hello.peer);
    std::memcpy(bytes.data() + 32, &peer, 8);
    return detail::siphash13(key, bytes);
  }
};

// A slot and the generation it had: a reference that goes stale when the session ends.
struct SlotRef {
  std::uint32_t index;
  std::uint32_t generation;
  friend bool operator==(SlotRef, SlotRef) = default;
};

struct Slot {
  std::optional<Engine> engine;   // empty: a free slot
  std::uint32_t generation{0};
  TimePoint started{};
  TimePoint last_activity{};
  TimePoint scheduled{TimePoint::max()};   // the time of this slot's live timer-heap entry
  std::uint64_t messages_in{0};
  std::uint64_t messages_out{0};
  std::uint64_t engine_dropped{0};         // engine drops already counted in the stats
  std::uint64_t engine_over_budget{0};
  ClientRandom client_random{};            // of the ClientHello that opened it: tells a new handshake
  Source source;                           // where its handshake came from
  bool dirty{false};                       // has outgoing datagrams, listed in Impl::dirty
  bool open{false};                        // established and counted in sessions_open: ends with an event
  std::optional<std::uint64_t> connection_id;   // its key in by_connection_id
  std::uint64_t address_changes{0};
  // After a move, until the peer shows that it receives at the new address (Engine::check_path): what came
  // from there and what went there, which may be at most three times as much (anti-amplification, as QUIC's).
  struct UnprovenPath {
    std::uint64_t received{0};
    std::uint64_t sent{0};
  };
  std::optional<UnprovenPath> unproven;
  // In a cluster: the node its peer's records come in by (they name this node but the balancer sends them to
  // that one): what goes to the peer goes back through it. Unset: straight to the peer.
  std::optional<std::uint32_t> relay;
};


// How many of a session's outgoing datagrams may go now: all, or as many (in order) as fit the unproven path's
// budget.
std::size_t sendable(const Slot& slot) {
  const auto outgoing = slot.engine->outgoing();
  if (!slot.unproven) return outgoing.size();
  const std::uint64_t budget = anti_amplification_factor * slot.unproven->received;
  std::uint64_t spent = slot.unproven->sent;
  std::size_t count = 0;
  for (const auto& datagram : outgoing) {
    if (spent + datagram.size() > budget) break;
    spent += datagram.size();
    ++count;
  }
  return count;
}

// A Connection ID as a map key (dgram's CIDs are 8 bytes, random past the first).
std::uint64_t connection_id_key(std::span<const std::byte> id) {
  std::uint64_t key = 0;
  for (const std::byte b : id) key = key << 8 | static_cast<std::uint64_t>(b);
  return key;
}

}  // namespace

struct ServerEndpoint::Impl {
  Impl(std::shared_ptr<DtlsContext> dtls, ServerEndpointSettings options, PortShare port, detail::HashKey key)
      : context{std::move(dtls)},
        settings{std::move(options)},
        share{std::move(port)},
        by_peer{0, KeyedHash{key}},
        handshakes_by_source{0, KeyedHash{key}},
        recent_hellos{0, KeyedHash{key}} {}

  std::shared_ptr<DtlsContext> context;
  ServerEndpointSettings settings;
  PortShare share;
  std::optional<Listener> listener;
  std::size_t max_handshakes{1};
  std::size_t max_handshakes_per_source{1};
  std::chrono::milliseconds hello_memory{};   // how long a used ClientHello is refused (its cookie's life)

  std::vector<Slot> slots;
  std::vector<std::uint32_t> free_slots;
  std::unordered_map<Endpoint, std::uint32_t, KeyedHash> by_peer;
  std::unordered_map<std::uint64_t, std::uint32_t> by_connection_id;   // keys are our own random CIDs
  // Handshakes under way: per source (oldest first), and all of them in the order they began (stale entries
  // are skipped when they reach the front, and swept when they outnumber the live ones).
  std::unordered_map<Source, std::vector<SlotRef>, KeyedHash> handshakes_by_source;
  std::deque<SlotRef> handshakes_in_order;
  std::size_t handshakes{0};
  // A session's split flight waits for the timer (Listener::split_flights): the next probe is made after that
  // second part has gone out, not before it.
  bool split_flight_waiting{false};
  // ClientHellos that opened a session lately, with when: a copy of one is refused.
  std::unordered_map<HelloKey, TimePoint, KeyedHash> recent_hellos;
  std::deque<std::pair<HelloKey, TimePoint>> recent_hellos_in_order;

  TimerQueue timers;
  std::vector<std::uint32_t> dirty;                   // slots with outgoing datagrams
  std::vector<std::vector<std::byte>> replies;        // answers without a session, sent with the next transmits
  struct ReplyTo {
    std::size_t reply;                    // index into replies
    Endpoint peer;
    std::optional<std::uint32_t> relay;   // through that node of the cluster
  };
  std::vector<ReplyTo> reply_peers;
  std::size_t replies_used{0};
  std::vector<SendSlot> send_slots;

  // A cluster's (settings.cluster): how IDs name nodes and workers, the forwards' MAC key, and what goes to
  // other nodes: records forwarded during handle (kept until clear_transmits) and, gathered by transmits(),
  // replies sent back through the node their client came in by.
  ConnectionIdLayout layout;
  detail::Key256 forward_key{};
  struct SealedPool {   // buffers reused from call to call
    std::vector<std::vector<std::byte>> buffers;
    std::size_t used{0};
  };
  SealedPool sealed_forwards;
  SealedPool sealed_replies;
  std::vector<SendSlot> forwarded;
  std::vector<SendSlot> cluster_slots;
  std::optional<std::uint32_t> arriving_via;   // during handle_relayed: the node the datagram came in by
  bool draining{false};

  std::vector<ServerEvent> events;
  std::size_t next_event_index{0};
  std::vector<std::vector<std::byte>> message_buffers;   // the bytes of SessionMessage events
  std::size_t message_buffers_used{0};
  ServerStats stats;

  std::size_t sessions_in_use() const {
    return share.session_count ? share.session_count->load(std::memory_order_relaxed) : by_peer.size();
  }
  SessionId id_of(std::uint32_t index) const { return SessionId{index, slots[index].generation, share.worker}; }
  bool live(SlotRef ref) const {
    const Slot& slot = slots[ref.index];
    return slot.engine && slot.generation == ref.generation;
  }

  std::optional<std::uint32_t> route(TimePoint now, const Endpoint& peer, std::span<const std::byte> datagram);
  std::optional<std::uint32_t> route(TimePoint now, const Endpoint& peer, const record::DatagramView& read);
  // route() for a datagram that node `via` received and sent on: the session's replies go back through it.
  template <class Datagram>
  std::optional<std::uint32_t> route_relayed(TimePoint now, const Endpoint& peer, const Datagram& datagram,
                                             std::uint32_t via) {
    arriving_via = via;
    const auto owner = route(now, peer, datagram);
    arriving_via.reset();
    return owner;
  }
  void on_connection_id(const record::DatagramView& datagram, const Endpoint& peer, TimePoint now);
  void forward_to_node(std::uint32_t node, const Endpoint& peer, std::span<const std::byte> datagram);
  std::span<const std::byte> seal(SealedPool& pool, forward::Kind kind, const Endpoint& client,
                                  std::span<const std::byte> datagram);
  // (`datagram` has a ClientHello.)
  void on_new_peer(const record::DatagramView& datagram, const Endpoint& peer, TimePoint now);
  bool make_room(const Source& source, TimePoint now);
  void start_session(Engine engine, const record::ClientHelloFacts& hello, std::size_t hello_size, const Endpoint& peer,
                     TimePoint now);
  bool recently_opened(const HelloKey& hello, TimePoint now);
  void remember_hello(const HelloKey& hello, TimePoint now);
  void deliver(std::uint32_t index, const record::DatagramView& datagram, TimePoint now);
  // `from_peer`: the call handed the engine a datagram (not a timer): activity that keeps the session alive.
  void after_engine_call(std::uint32_t index, TimePoint now, bool was_handshaking, const std::error_code& ec,
                         bool from_peer = true);
  void take_messages(std::uint32_t index);
  void count_engine_drops(Slot& slot);
  void note_received(std::uint32_t index, const record::DatagramView& datagram);
  bool move_peer(std::uint32_t index, const Endpoint& to, std::size_t received, TimePoint now);
  Deadline due(const Slot& slot) const;
  void reschedule(std::uint32_t index);
  void on_timer(std::uint32_t index, TimePoint now);
  void mark_dirty(std::uint32_t index);
  void queue_reply(std::span<const std::byte> datagram, const Endpoint& peer,
                   std::optional<std::uint32_t> relay = std::nullopt);
  std::size_t spend_budget(Slot& slot);
  void queue_last_output(Slot& slot);
  void fail_handshake(std::uint32_t index, FailureKind kind, std::string why);
  void end_session(std::uint32_t index, SessionEnd why);
  void remove_session(std::uint32_t index, SessionEnd why);
  // Frees the slot; its engine is destroyed, or moved into `taken`.
  void free_slot(std::uint32_t index, std::optional<Engine>* taken = nullptr);
  void add_handshake(std::uint32_t index);
  void remove_handshake(std::uint32_t index);
  std::optional<SlotRef> oldest_handshake();
  std::span<std::byte> message_buffer();
  Slot* find(SessionId id);
};

// ---- Routing ----------------------------------------------------------------------------------------------

std::optional<std::uint32_t> ServerEndpoint::handle(TimePoint now, const Endpoint& peer,
                                                    std::span<const std::byte> datagram) {
  ++impl_->stats.datagrams_in;
  return impl_->route(now, peer, datagram);
}

std::optional<std::uint32_t> ServerEndpoint::handle_relayed(TimePoint now, const Endpoint& peer,
                                                            std::span<const std::byte> datagram, std::uint32_t via) {
  return impl_->route_relayed(now, peer, datagram, via);
}

std::optional<Handoff> ServerEndpoint::handle_cluster(TimePoint now, const Endpoint&, std::span<const std::byte> datagram) {
  Impl& self = *impl_;
  ++self.stats.datagrams_in;
  const auto opened = self.settings.cluster ? forward::open(self.forward_key, datagram) : std::nullopt;
  const auto& cluster = self.settings.cluster;
  if (!opened || opened->from_node >= cluster->nodes.size() || opened->from_node == cluster->node) {
    ++self.stats.forwards_refused;
    return std::nullopt;
  }
  if (opened->kind == forward::Kind::reply) {   // ours to send on to the client, as if we had sent it
    ++self.stats.replies_for_nodes;
    self.queue_reply(opened->datagram, opened->client);
    return std::nullopt;
  }
  // A client's record for a session of ours: it must name this node (a node does not forward on).
  const auto read = record::view(opened->datagram);
  if (!read || read->connection_id.empty() || self.layout.node_of(read->connection_id) != cluster->node) {
    ++self.stats.forwards_refused;
    return std::nullopt;
  }
  const std::uint32_t worker = self.layout.worker_of(read->connection_id);
  if (worker != self.share.worker && worker < self.share.workers)
    return Handoff{worker, opened->client, opened->datagram, opened->from_node};
  self.route_relayed(now, opened->client, *read, opened->from_node);   // (read once, as any datagram)
  return std::nullopt;
}

std::optional<std::uint32_t> ServerEndpoint::Impl::route(TimePoint now, const Endpoint& peer,
                                                         std::span<const std::byte> datagram) {
  const auto read = record::view(datagram);   // the one parse: passed down to the Listener and the engine
  if (!read) {
    ++stats.dropped_garbage;
    return std::nullopt;
  }
  return route(now, peer, *read);
}

std::optional<std::uint32_t> ServerEndpoint::Impl::route(TimePoint now, const Endpoint& peer,
                                                         const record::DatagramView& datagram) {
  Impl& self = *this;
  if (const auto id = datagram.connection_id; !id.empty()) {
    // The issuing node and endpoint, from the ID's leading bits (the Listener's prefix).
    if (self.settings.cluster && self.layout.node_of(id) != self.settings.cluster->node) {
      self.forward_to_node(self.layout.node_of(id), peer, datagram.bytes);
      return std::nullopt;
    }
    const std::uint32_t owner = self.layout.worker_of(id);
    if (owner != self.share.worker && owner < self.share.workers) return owner;
    self.on_connection_id(datagram, peer, now);
    return std::nullopt;
  }
  const auto& hello = datagram.hello;
  if (const auto found = self.by_peer.find(peer); found != self.by_peer.end()) {
    if (!hello || hello->random == self.slots[found->second].client_random) {   // the session's, or a resend
      self.note_received(found->second, datagram);
      self.deliver(found->second, datagram, now);
      return std::nullopt;
    }
    // A new handshake from a session's address (RFC 6347 4.2.8): answered statelessly like any new peer; the
    // old session gives way only when the cookie proves the peer owns the address (start_session).
  }
  if (!hello) {
    ++self.stats.dropped_no_session;
    return std::nullopt;
  }
  self.on_new_peer(datagram, peer, now);
  return std::nullopt;
}

// A record whose Connection ID names another node (the balancer sent a moved client's datagram here): sealed with
// the client's address, for that node's cluster port.
void ServerEndpoint::Impl::forward_to_node(std::uint32_t node, const Endpoint& peer, std::span<const std::byte> datagram) {
  if (node >= settings.cluster->nodes.size() || arriving_via) {   // (a forwarded record is never forwarded on)
    ++stats.forwards_unroutable;
    return;
  }
  const auto sealed_forward = seal(sealed_forwards, forward::Kind::record, peer, datagram);
  if (sealed_forward.empty()) return;
  ++stats.forwarded_to_owner;
  forwarded.push_back({sealed_forward, settings.cluster->nodes[node]});
}

// A sealed forward in a reused buffer (valid until clear_transmits); empty when no MAC could be made.
std::span<const std::byte> ServerEndpoint::Impl::seal(SealedPool& pool, forward::Kind kind, const Endpoint& client,
                                                      std::span<const std::byte> datagram) {
  if (pool.used == pool.buffers.size()) pool.buffers.emplace_back();
  std::vector<std::byte>& out = pool.buffers[pool.used];
  if (!forward::seal(out, forward_key, kind, settings.cluster->node, client, datagram)) return {};
  ++pool.used;
  return out;
}

void ServerEndpoint::note_unknown_connection_id() { ++impl_->stats.dropped_unknown_connection_id; }
void ServerEndpoint::note_truncated() {
  ++impl_->stats.datagrams_in;
  ++impl_->stats.dropped_garbage;
}

void ServerEndpoint::note_receive_overflows(std::uint64_t total) noexcept { impl_->stats.dropped_receive_overflow = total; }

void ServerEndpoint::Impl::on_connection_id(const record::DatagramView& datagram, const Endpoint& peer,
                                            TimePoint now) {
  const auto found = by_connection_id.find(connection_id_key(datagram.connection_id));
  if (found == by_connection_id.end()) {   // (a forward for a session that has ended meanwhile, too)
    ++(arriving_via ? stats.forwards_refused : stats.dropped_unknown_connection_id);
    return;
  }
  if (arriving_via) ++stats.forwards_received;
  const std::uint32_t index = found->second;
  Slot& slot = slots[index];
  // From another address (or through another node) the session follows only a record newer than any it had
  // (RFC 9146 section 6): a forgery does not authenticate, and a genuine record held back and sent on from
  // elsewhere is not the newest.
  const auto newest_before = slot.engine->newest_peer_record();
  const std::uint64_t dropped_before = slot.engine_dropped;
  const SlotRef ref{index, slot.generation};
  const bool same_peer = peer == slot.engine->peer();
  if (same_peer) note_received(index, datagram);
  deliver(index, datagram, now);
  if (!live(ref)) return;
  const auto newest = slots[index].engine->newest_peer_record();
  const bool newer = newest && (!newest_before || *newest > *newest_before);
  if (same_peer) {
    if (newer) slots[index].relay = arriving_via;   // the balancer now sends it here, or through another node
    return;
  }
  // (Not while handshaking: the path check needs an established session.)
  if (newer && slots[index].open) {
    const auto relay_before = slots[index].relay;
    slots[index].relay = arriving_via;   // (before the path check is queued: it goes the new way)
    if (move_peer(index, peer, datagram.bytes.size(), now)) return;
    if (live(ref)) slots[index].relay = relay_before;
  }
  if (slots[index].engine_dropped == dropped_before) ++stats.address_changes_refused;   // authentic, not moved
}

// A peer without a session (or a new handshake from a session's address): only a ClientHello may start one,
// through the stateless cookie exchange, and only while the limits leave room.
void ServerEndpoint::Impl::on_new_peer(const record::DatagramView& datagram, const Endpoint& peer, TimePoint now) {
  const record::ClientHelloFacts& hello = *datagram.hello;
  if (draining) {   // no answer: the balancer sends new clients elsewhere, and this one retries there or here
    ++stats.refused_draining;
    return;
  }
  const bool replacing = by_peer.contains(peer);
  // Every slot holds an established session: no state, no answer; the peer retransmits and is served once a
  // slot frees. (While handshakes hold some, a newcomer with a valid cookie takes the oldest one's place.)
  if (!replacing && sessions_in_use() >= settings.max_sessions && handshakes == 0) {
    ++stats.dropped_over_limit;
    return;
  }
  // A copy of a ClientHello that opened a session lately (its cookie still verifies): refused before wolfSSL
  // spends a session object on it.
  if (hello.has_cookie && recently_opened(HelloKey{peer, hello.random}, now)) {
    ++stats.replayed_hellos;
    return;
  }
  // A DTLS 1.3 hello keyed by a pre-shared key may be served without the cookie round trip
  // (DtlsConfig::resumption_skips_cookie) the first time only: a copy, from any address, is challenged, as is
  // one from a live session's address (without a cookie, a replayed hello would otherwise replace the session).
  const bool without_cookie = !hello.has_cookie && hello.has_pre_shared_key && !replacing &&
                              !recently_opened(HelloKey{Endpoint{}, hello.random}, now);
  std::error_code ec;
  listener->split_flights(handshakes == 0);   // (an otherwise idle server: see Listener::split_flights)
  std::optional<Engine> engine = listener->on_datagram(peer, datagram, now, ec, without_cookie);
  for (const auto& reply : listener->replies()) queue_reply(reply, peer);
  listener->clear_replies();
  if (listener->last_cookie_bad()) ++stats.bad_cookies;
  switch (listener->last_verdict()) {
    case HelloVerdict::challenged: ++stats.cookies_sent; break;
    case HelloVerdict::withheld: ++stats.answers_withheld; break;
    case HelloVerdict::failed:
      ++stats.handshakes_failed;
      events.emplace_back(HandshakeFailed{peer, listener->failure_kind(), listener->failure()});
      break;
    case HelloVerdict::dropped: ++stats.dropped_no_session; break;
    case HelloVerdict::refused:
    case HelloVerdict::started: break;
  }
  if (!engine) return;
  split_flight_waiting = split_flight_waiting || engine->next_timer().passed(now);
  start_session(std::move(*engine), hello, datagram.bytes.size(), peer, now);
}

bool ServerEndpoint::Impl::recently_opened(const HelloKey& hello, TimePoint now) {
  while (!recent_hellos_in_order.empty() && recent_hellos_in_order.front().second + hello_memory <= now) {
    recent_hellos.erase(recent_hellos_in_order.front().first);
    recent_hellos_in_order.pop_front();
  }
  return recent_hellos.contains(hello);
}

void ServerEndpoint::Impl::remember_hello(const HelloKey& hello, TimePoint now) {
  // Bounded: past twice max_sessions the oldest is forgotten early (its cookie is then likely stale anyway).
  if (recent_hellos_in_order.size() >= 2 * settings.max_sessions + 64) {
    recent_hellos.erase(recent_hellos_in_order.front().first);
    recent_hellos_in_order.pop_front();
  }
  if (recent_hellos.emplace(hello, now).second) recent_hellos_in_order.emplace_back(hello, now);
}

// Room for one more handshake from `source`: the oldest of its own past the per-source limit, the oldest of all
// past the handshake limit or the session limit, give way; under pressure (three quarters of the handshake
// limit) handshakes older than a quarter of the timeout are given up. False when every slot holds an
// established session.
bool ServerEndpoint::Impl::make_room(const Source& source, TimePoint now) {
  const auto crowd_out = [&](SlotRef oldest) {
    ++stats.handshakes_crowded_out;
    fail_handshake(oldest.index, FailureKind::crowded_out,
                   "the server dropped the unfinished handshake for a newer one (too many handshakes under way)");
  };
  for (auto own = handshakes_by_source.find(source);
       own != handshakes_by_source.end() && own->second.size() >= max_handshakes_per_source;
       own = handshakes_by_source.find(source)) {   // (crowding out may erase the entry)
    crowd_out(own->second.front());
  }
  if (handshakes * 4 >= max_handshakes * 3) {
    const auto short_timeout = context->config().handshake_timeout / 4;
    while (const auto oldest = oldest_handshake()) {
      if (slots[oldest->index].started + short_timeout > now) break;
      ++stats.handshake_timeouts;
      fail_handshake(oldest->index, FailureKind::timed_out,
                     "the handshake did not finish within a quarter of the handshake timeout, which applies while "
                     "handshakes crowd the server's limit");
    }
  }
  while (handshakes >= max_handshakes || sessions_in_use() >= settings.max_sessions) {
    const auto oldest = oldest_handshake();
    if (!oldest) return false;
    crowd_out(*oldest);
  }
  return true;
}

void ServerEndpoint::Impl::start_session(Engine engine, const record::ClientHelloFacts& hello, std::size_t hello_size,
                                         const Endpoint& peer,
                                         TimePoint now) {
  if (const auto existing = by_peer.find(peer); existing != by_peer.end()) {
    if (slots[existing->second].open) ++stats.sessions_replaced;
    remove_session(existing->second, SessionEnd::replaced);
  }
  const Source source = source_of(peer);
  if (!make_room(source, now)) {
    ++stats.dropped_over_limit;
    return;
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
  slot.engine.emplace(std::move(engine));
  slot.started = slot.last_activity = now;
  slot.messages_in = slot.messages_out = 0;
  slot.engine_dropped = slot.engine->stats().dropped_datagrams;   // the Listener's, before it had a session
  slot.engine_over_budget = 0;
  slot.client_random = hello.random;
  slot.source = source;
  slot.address_changes = 0;
  if (const auto id = slot.engine->receive_connection_id(); id.size() == record::connection_id_size) {
    // Random, so a clash is a 2^-56 event: the older session keeps the ID, this one is reached by address.
    if (by_connection_id.emplace(connection_id_key(id), index).second) slot.connection_id = connection_id_key(id);
  }
  by_peer.emplace(peer, index);
  if (share.session_count) share.session_count->fetch_add(1, std::memory_order_relaxed);
  add_handshake(index);
  remember_hello(HelloKey{peer, hello.random}, now);
  if (!hello.has_cookie) {   // served without a cookie: once, and its address unproven until the handshake ends
    ++stats.served_without_cookie;
    remember_hello(HelloKey{Endpoint{}, hello.random}, now);
    slot.unproven = Slot::UnprovenPath{hello_size, 0};   // (its flight's retransmissions within three times)
  }
  mark_dirty(index);
  reschedule(index);
}

// ---- Sessions -----------------------------------------------------------------------------------------------

void ServerEndpoint::Impl::deliver(std::uint32_t index, const record::DatagramView& datagram, TimePoint now) {
  Engine& engine = *slots[index].engine;
  const bool was_handshaking = engine.state() == EngineState::handshaking;
  std::error_code ec;
  engine.on_datagram(datagram, now, ec);
  after_engine_call(index, now, was_handshaking, ec);
}

// After the engine took a datagram or a timer: note a finished or failed handshake, take the decrypted
// messages, count drops, and end the session if it is over. Events only: the program hears of it afterwards.
void ServerEndpoint::Impl::after_engine_call(std::uint32_t index, TimePoint now, bool was_handshaking,
                                             const std::error_code& ec, bool from_peer) {
  Slot& slot = slots[index];
  Engine& engine = *slot.engine;
  if (ec || engine.state() == EngineState::failed) {
    if (!was_handshaking) {
      end_session(index, SessionEnd::failed);
      return;
    }
    if (engine.failure_kind() == FailureKind::timed_out) ++stats.handshake_timeouts;
    fail_handshake(index, engine.failure_kind(), engine.failure().empty() ? ec.message() : engine.failure());
    return;
  }
  if (was_handshaking && engine.state() == EngineState::established) {
    remove_handshake(index);
    slot.unproven.reset();   // (a session served without a cookie: its client's Finished proves the address)
    slot.last_activity = now;
    slot.open = true;
    ++stats.sessions_open;
    ++stats.sessions_total;
    ++(engine.resumed() ? stats.handshakes_resumed : stats.handshakes_full);
    events.emplace_back(SessionEstablished{id_of(index), engine.info()});
  }
  const std::uint64_t dropped_before = slot.engine_dropped;
  if (engine.state() == EngineState::established) take_messages(index);
  count_engine_drops(slot);
  if (from_peer && slot.engine_dropped == dropped_before) slot.last_activity = now;   // a real datagram, not a
  // replay or forgery
  if (slot.unproven && engine.path_confirmed()) {
    slot.unproven.reset();
    ++stats.paths_confirmed;
  }
  if (engine.state() == EngineState::closed || engine.state() == EngineState::failed) {   // close_notify, or
    // a fatal alert or error while decrypting
    end_session(index, engine.state() == EngineState::closed ? SessionEnd::closed_by_peer : SessionEnd::failed);
    return;
  }
  if (!engine.outgoing().empty()) mark_dirty(index);
  reschedule(index);
}

void ServerEndpoint::Impl::count_engine_drops(Slot& slot) {
  const EngineStats& counted = slot.engine->stats();
  stats.dropped_undecryptable += counted.dropped_datagrams - slot.engine_dropped;
  stats.dropped_over_handshake_budget += counted.over_handshake_budget - slot.engine_over_budget;
  slot.engine_dropped = counted.dropped_datagrams;
  slot.engine_over_budget = counted.over_handshake_budget;
}

std::span<std::byte> ServerEndpoint::Impl::message_buffer() {
  if (message_buffers_used == message_buffers.size()) message_buffers.emplace_back(max_datagram_size);
  return message_buffers[message_buffers_used++];
}

void ServerEndpoint::Impl::take_messages(std::uint32_t index) {
  Slot& slot = slots[index];
  for (;;) {
    const std::span<std::byte> buffer = message_buffer();
    std::error_code ec;
    const auto size = slot.engine->take_message(buffer, ec);
    if (!size) {   // nothing more (a close_notify or failure shows in the state)
      --message_buffers_used;
      return;
    }
    ++slot.messages_in;
    ++stats.messages_in;
    events.emplace_back(SessionMessage{id_of(index), buffer.first(*size)});
  }
}

// What came from a session's own address counts toward the budget of an unproven one.
void ServerEndpoint::Impl::note_received(std::uint32_t index, const record::DatagramView& datagram) {
  if (Slot& slot = slots[index]; slot.unproven) slot.unproven->received += datagram.bytes.size();
}

// The peer moved to `to`, from where `received` bytes came: until it shows that it receives there, what goes
// there is limited (see sendable); the engine asks it to show that. False when it may not move there.
bool ServerEndpoint::Impl::move_peer(std::uint32_t index, const Endpoint& to, std::size_t received, TimePoint now) {
  // Not onto an address another session holds: that peer may still be there (a replayed record could claim it).
  if (by_peer.contains(to)) return false;
  Slot& slot = slots[index];
  by_peer.erase(slot.engine->peer());
  by_peer.emplace(to, index);   // one entry out, one in: the count of sessions stays
  slot.engine->set_peer(to);
  ++slot.address_changes;
  ++stats.address_changes;
  slot.unproven = Slot::UnprovenPath{received, 0};
  std::error_code ec;
  slot.engine->check_path(now, ec);
  after_engine_call(index, now, false, ec, false);
  return true;
}

void ServerEndpoint::Impl::fail_handshake(std::uint32_t index, FailureKind kind, std::string why) {
  Slot& slot = slots[index];
  const Endpoint peer = slot.engine->peer();
  ++stats.handshakes_failed;
  queue_last_output(slot);   // the alert, if any
  count_engine_drops(slot);
  free_slot(index);
  events.emplace_back(HandshakeFailed{peer, kind, std::move(why)});
}

void ServerEndpoint::Impl::end_session(std::uint32_t index, SessionEnd why) {
  Slot& slot = slots[index];
  Engine& engine = *slot.engine;
  queue_last_output(slot);   // close_notify, alerts, what the program sent last
  count_engine_drops(slot);
  SessionSummary summary{id_of(index), engine.info(), {slot.messages_in, slot.messages_out, slot.address_changes}, why};
  --stats.sessions_open;
  if (draining) ++(why == SessionEnd::server_stopping ? stats.drain_cut_sessions : stats.drained_sessions);
  free_slot(index);
  events.emplace_back(SessionEnded{std::move(summary)});
}

void ServerEndpoint::Impl::remove_session(std::uint32_t index, SessionEnd why) {
  if (slots[index].open) {
    end_session(index, why);
  } else {
    free_slot(index);
  }
}

void ServerEndpoint::Impl::free_slot(std::uint32_t index, std::optional<Engine>* taken) {
  Slot& slot = slots[index];
  if (!slot.open) remove_handshake(index);
  if (by_peer.erase(slot.engine->peer()) > 0 && share.session_count)
    share.session_count->fetch_sub(1, std::memory_order_relaxed);
  if (slot.connection_id) by_connection_id.erase(*slot.connection_id);
  slot.connection_id.reset();
  slot.unproven.reset();
  slot.relay.reset();
  if (taken) *taken = std::move(slot.engine);
  slot.engine.reset();
  ++slot.generation;   // stale timer entries, SessionIds and SlotRefs of this session no longer match
  slot.scheduled = TimePoint::max();
  slot.open = false;
  free_slots.push_back(index);
}

// ---- Handshakes under way --------------------------------------------------------------------------------

void ServerEndpoint::Impl::add_handshake(std::uint32_t index) {
  const SlotRef ref{index, slots[index].generation};
  handshakes_by_source[slots[index].source].push_back(ref);
  handshakes_in_order.push_back(ref);
  ++handshakes;
}

// When a handshake ends (established, failed, replaced) while its slot is still live.
void ServerEndpoint::Impl::remove_handshake(std::uint32_t index) {
  const SlotRef ref{index, slots[index].generation};
  const auto own = handshakes_by_source.find(slots[index].source);
  if (own == handshakes_by_source.end()) return;
  const auto at = std::ranges::find(own->second, ref);
  if (at == own->second.end()) return;
  own->second.erase(at);
  if (own->second.empty()) handshakes_by_source.erase(own);
  --handshakes;
  // The order list keeps a stale entry; sweep them when they outnumber the live ones.
  if (handshakes_in_order.size() > 2 * handshakes + 64) {
    std::erase_if(handshakes_in_order, [&](SlotRef entry) {
      return entry == ref || !live(entry) || slots[entry.index].open;
    });
  }
}

std::optional<SlotRef> ServerEndpoint::Impl::oldest_handshake() {
  while (!handshakes_in_order.empty()) {
    const SlotRef front = handshakes_in_order.front();
    if (live(front) && !slots[front.index].open) return front;
    handshakes_in_order.pop_front();
  }
  return std::nullopt;
}

// ---- Timers ----------------------------------------------------------------------------------------------

Deadline ServerEndpoint::Impl::due(const Slot& slot) const {
  if (slot.engine->state() == EngineState::handshaking) return slot.engine->next_timer();
  return slot.engine->next_timer().min(Deadline::at(slot.last_activity + settings.idle_timeout));   // (a path check)
}

void ServerEndpoint::Impl::reschedule(std::uint32_t index) {
  Slot& slot = slots[index];
  const Deadline deadline = due(slot);
  if (deadline.is_never() || deadline.point() >= slot.scheduled) return;   // the live entry comes first
  slot.scheduled = deadline.point();
  timers.schedule(index, slot.generation, slot.scheduled);
}

Deadline ServerEndpoint::next_timer() const noexcept { return impl_->timers.next(); }

void ServerEndpoint::on_timer(TimePoint now) {
  Impl& self = *impl_;
  self.split_flight_waiting = false;   // (its second part goes out with this call's transmits)
  while (const auto entry = self.timers.pop_due(now)) {
    Slot& slot = self.slots[entry->key];
    if (slot.generation != entry->generation || !slot.engine || slot.scheduled != entry->when) continue;   // stale
    slot.scheduled = TimePoint::max();
    self.on_timer(entry->key, now);
  }
}

void ServerEndpoint::Impl::on_timer(std::uint32_t index, TimePoint now) {
  Slot& slot = slots[index];
  Engine& engine = *slot.engine;
  const bool handshaking = engine.state() == EngineState::handshaking;
  if (engine.next_timer().passed(now)) {
    std::error_code ec;
    engine.on_timer(now, ec);   // retransmits the last flight (or a path check), or ends a handshake past its
                                // deadline
    after_engine_call(index, now, handshaking, ec, false);
    return;
  }
  if (!handshaking && now >= slot.last_activity + settings.idle_timeout) {
    ++stats.idle_timeouts;
    end_session(index, SessionEnd::idle);
    return;
  }
  reschedule(index);
}

// ---- Output ----------------------------------------------------------------------------------------------

void ServerEndpoint::Impl::mark_dirty(std::uint32_t index) {
  Slot& slot = slots[index];
  if (slot.dirty) return;
  slot.dirty = true;
  dirty.push_back(index);
}

// Takes the session's sendable datagrams (see sendable) out of an unproven address's budget and counts the
// rest as withheld (dropped: as if lost on the way); returns how many go.
std::size_t ServerEndpoint::Impl::spend_budget(Slot& slot) {
  const auto outgoing = slot.engine->outgoing();
  const std::size_t sent = sendable(slot);
  if (slot.unproven) {
    for (const auto& datagram : outgoing.first(sent)) slot.unproven->sent += datagram.size();
    stats.replies_withheld_unproven += outgoing.size() - sent;
  }
  return sent;
}

// A session's last datagrams, as it ends: within an unproven address's budget like any others.
void ServerEndpoint::Impl::queue_last_output(Slot& slot) {
  for (const auto& datagram : slot.engine->outgoing().first(spend_budget(slot)))
    queue_reply(datagram, slot.engine->peer(), slot.relay);
  slot.engine->clear_outgoing();
}

void ServerEndpoint::Impl::queue_reply(std::span<const std::byte> datagram, const Endpoint& peer,
                                       std::optional<std::uint32_t> relay) {
  if (replies_used == replies.size()) replies.emplace_back();
  replies[replies_used].assign(datagram.begin(), datagram.end());   // reuses the buffer's capacity
  reply_peers.push_back(ReplyTo{replies_used++, peer, relay});
}

std::span<const SendSlot> ServerEndpoint::transmits() {
  Impl& self = *impl_;
  self.send_slots.clear();
  self.cluster_slots = self.forwarded;
  self.sealed_replies.used = 0;   // (sealed anew at every call)
  // A datagram for a client that comes in through another node goes back through it (see ClusterSettings).
  const auto add = [&self](std::span<const std::byte> datagram, const Endpoint& peer, std::optional<std::uint32_t> relay) {
    if (!relay) {
      self.send_slots.push_back({datagram, peer});
      return;
    }
    if (const auto sealed_reply = self.seal(self.sealed_replies, forward::Kind::reply, peer, datagram); !sealed_reply.empty())
      self.cluster_slots.push_back({sealed_reply, self.settings.cluster->nodes[*relay]});
  };
  for (const auto& [reply, peer, relay] : self.reply_peers) add(self.replies[reply], peer, relay);
  for (const std::uint32_t index : self.dirty) {
    const Slot& slot = self.slots[index];
    if (!slot.engine) continue;
    for (const auto& datagram : slot.engine->outgoing().first(sendable(slot))) add(datagram, slot.engine->peer(), slot.relay);
  }
  return self.send_slots;
}

std::span<const SendSlot> ServerEndpoint::cluster_transmits() { return impl_->cluster_slots; }

void ServerEndpoint::clear_transmits() {
  Impl& self = *impl_;
  for (const auto& [reply, peer, relay] : self.reply_peers) self.stats.replies_through_nodes += relay ? 1 : 0;
  self.forwarded.clear();
  self.cluster_slots.clear();
  self.sealed_forwards.used = self.sealed_replies.used = 0;
  self.stats.datagrams_out += self.reply_peers.size();
  for (const std::uint32_t index : self.dirty) {
    Slot& slot = self.slots[index];
    slot.dirty = false;
    if (!slot.engine) continue;
    const std::size_t sent = self.spend_budget(slot);
    self.stats.datagrams_out += sent;
    if (slot.relay) self.stats.replies_through_nodes += sent;
    slot.engine->clear_outgoing();
  }
  self.dirty.clear();
  self.reply_peers.clear();
  self.replies_used = 0;
  self.send_slots.clear();
  // (What was sent is on its way: the next probe costs no wait now, unless the rest of a flight is due.)
  if (self.listener && !self.split_flight_waiting) self.listener->prepare();
}

std::optional<ServerEvent> ServerEndpoint::next_event() {
  Impl& self = *impl_;
  while (self.next_event_index < self.events.size()) {
    ServerEvent& event = self.events[self.next_event_index++];
    if (const auto* message = std::get_if<SessionMessage>(&event); message && !alive(message->id)) continue;
    return std::move(event);
  }
  self.events.clear();
  self.next_event_index = 0;
  self.message_buffers_used = 0;
  return std::nullopt;
}

// ---- The program's calls -----------------------------------------------------------------------------------

Slot* ServerEndpoint::Impl::find(SessionId id) {
  if (id.worker != share.worker || id.index >= slots.size()) return nullptr;
  Slot& slot = slots[id.index];
  return slot.engine && slot.generation == id.generation ? &slot : nullptr;
}

bool ServerEndpoint::alive(SessionId id) const noexcept { return impl_->find(id) != nullptr; }

std::optional<SessionCounters> ServerEndpoint::counters(SessionId id) const noexcept {
  const Slot* slot = impl_->find(id);
  if (!slot || !slot->open) return std::nullopt;
  return SessionCounters{slot->messages_in, slot->messages_out, slot->address_changes};
}

const Engine* ServerEndpoint::engine(SessionId id) const noexcept {
  const Slot* slot = impl_->find(id);
  return slot && slot->open ? &*slot->engine : nullptr;
}

std::string to_string(SessionEnd end) {
  switch (end) {
    case SessionEnd::closed_by_peer: return "closed by the peer";
    case SessionEnd::closed_by_server: return "closed by the server";
    case SessionEnd::idle: return "idle, dropped";
    case SessionEnd::server_stopping: return "server stopping";
    case SessionEnd::failed: return "failed";
    case SessionEnd::replaced: return "replaced by a new handshake from its address";
  }
  return "ended";
}

void ServerEndpoint::send(SessionId id, std::span<const std::byte> message, std::error_code& ec) {
  ec.clear();
  Slot* slot = impl_->find(id);
  if (!slot || !slot->open) {
    ec = make_error_code(slot ? errc::not_connected : errc::no_such_session);
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

void ServerEndpoint::close(SessionId id) {
  Slot* slot = impl_->find(id);
  if (!slot) return;
  slot->engine->close();   // queues close_notify (when established), which end_session sends
  impl_->remove_session(id.index, SessionEnd::closed_by_server);
}

std::optional<Engine> ServerEndpoint::release(SessionId id) {
  Impl& self = *impl_;
  Slot* slot = self.find(id);
  if (!slot || !slot->open) return std::nullopt;
  self.count_engine_drops(*slot);
  --self.stats.sessions_open;
  std::optional<Engine> engine;
  self.free_slot(id.index, &engine);
  return engine;
}

void ServerEndpoint::drain() { impl_->draining = true; }
bool ServerEndpoint::draining() const noexcept { return impl_->draining; }

void ServerEndpoint::shutdown() {
  Impl& self = *impl_;
  for (std::uint32_t index = 0; index < self.slots.size(); ++index) {
    Slot& slot = self.slots[index];
    if (!slot.engine) continue;
    slot.engine->close();   // close_notify, when established
    self.remove_session(index, SessionEnd::server_stopping);
  }
}

// ---- Set-up ----------------------------------------------------------------------------------------------

namespace {

// A cluster needs Connection IDs (they name the node) and shared keys (for the forwards' MAC, and so that
// cookies and tickets verify on every node), and its numbers must fit the ID's bits.
bool cluster_settings_valid(const ClusterSettings& cluster, const DtlsConfig& config, const PortShare& share) {
  const ConnectionIdLayout& layout = cluster.layout;
  return config.connection_id && config.shared_keys && layout.node_bits > 0 && layout.fits() &&
         cluster.node < cluster.nodes.size() && cluster.nodes.size() <= layout.max_nodes() &&
         std::max<std::uint32_t>(share.workers, 1) <= layout.max_workers();
}

}  // namespace

ServerEndpoint::ServerEndpoint(std::shared_ptr<DtlsContext> context, ServerEndpointSettings settings,
                               std::error_code& ec, PortShare share) {
  ec.clear();
  detail::HashKey key;
  if (context->config().role != Role::server) {
    ec = make_error_code(errc::invalid_argument);
  } else if (detail::fill_random(std::as_writable_bytes(std::span(&key, 1)))) {
    ec = make_error_code(errc::no_randomness);
  }
  if (!settings.cookie_secrets) settings.cookie_secrets = CookieSecrets::for_config(context->config());
  impl_ = std::make_unique<Impl>(std::move(context), std::move(settings), std::move(share), key);
  if (ec) return;
  Impl& self = *impl_;
  // The handshake limits are the port's: each of its endpoints takes its share (SO_REUSEPORT spreads a source's
  // ports over them), and small limits are not cut finer than 16 (a burst of clients lands unevenly).
  const std::size_t workers = std::max<std::uint32_t>(self.share.workers, 1);
  const auto share_of = [workers](std::size_t limit) {
    return std::max((limit + workers - 1) / workers, std::min<std::size_t>(limit, 16));
  };
  const std::size_t sessions = std::max<std::size_t>(self.settings.max_sessions, 1);
  const std::size_t handshakes = self.settings.max_handshakes
                                     ? self.settings.max_handshakes
                                     : std::max(sessions / 2, std::min<std::size_t>(sessions, 16));
  const std::size_t per_source = self.settings.max_handshakes_per_source
                                     ? self.settings.max_handshakes_per_source
                                     : std::max(handshakes / 8, std::min<std::size_t>(handshakes, 16));
  self.max_handshakes = share_of(handshakes);
  self.max_handshakes_per_source = share_of(per_source);
  self.hello_memory = 2 * self.settings.cookie_secrets->rotation_interval() + self.context->config().handshake_timeout;
  std::uint32_t node = 0;
  if (const auto& cluster = self.settings.cluster) {
    if (!cluster_settings_valid(*cluster, self.context->config(), self.share)) {
      ec = make_error_code(errc::invalid_argument);
      return;
    }
    self.layout = cluster->layout;
    self.forward_key = forward::key_from(*self.context->config().shared_keys);
    node = cluster->node;
  }
  self.listener.emplace(self.context, ec, self.settings.cookie_secrets,
                        ConnectionIdPrefix{self.layout.prefix(node, self.share.worker),
                                           static_cast<std::uint8_t>(self.layout.prefix_bits())});
}

ServerEndpoint::~ServerEndpoint() = default;
ServerEndpoint::ServerEndpoint(ServerEndpoint&&) noexcept = default;
ServerEndpoint& ServerEndpoint::operator=(ServerEndpoint&&) noexcept = default;

std::size_t ServerEndpoint::sessions() const noexcept { return impl_->by_peer.size(); }
std::size_t ServerEndpoint::handshakes() const noexcept { return impl_->handshakes; }

std::string ServerEndpoint::audit() const {
  const Impl& self = *impl_;
  std::size_t live = 0;
  std::size_t open = 0;
  std::size_t handshaking = 0;
  for (std::uint32_t index = 0; index < self.slots.size(); ++index) {
    const Slot& slot = self.slots[index];
    if (!slot.engine) continue;
    ++live;
    open += slot.open ? 1 : 0;
    handshaking += slot.open ? 0 : 1;
    const auto by_address = self.by_peer.find(slot.engine->peer());
    if (by_address == self.by_peer.end() || by_address->second != index)
      return "session " + std::to_string(index) + " is not reached by its address " + slot.engine->peer().to_string();
    if (slot.connection_id) {
      const auto by_id = self.by_connection_id.find(*slot.connection_id);
      if (by_id == self.by_connection_id.end() || by_id->second != index)
        return "session " + std::to_string(index) + " is not reached by its connection ID";
    }
    if (slot.open != (slot.engine->state() == EngineState::established))
      return "session " + std::to_string(index) + " is counted open but its engine is not established, or the reverse";
    if (slot.unproven && slot.unproven->sent > anti_amplification_factor * slot.unproven->received)
      return "session " + std::to_string(index) + " sent more than three times what came from its unproven address";
  }
  if (self.by_peer.size() != live) return "the address table has entries for no session (or two for one)";
  for (const auto& [id, index] : self.by_connection_id) {
    if (index >= self.slots.size() || !self.slots[index].engine || self.slots[index].connection_id != id)
      return "a connection ID names a session that does not have it";
  }
  if (handshaking != self.handshakes) return "handshakes counted " + std::to_string(self.handshakes) + ", held " + std::to_string(handshaking);
  if (open != self.stats.sessions_open) return "sessions_open is " + std::to_string(self.stats.sessions_open) + ", held " + std::to_string(open);
  if (self.handshakes > self.max_handshakes) return "more handshakes under way than max_handshakes";
  if (!self.share.session_count && live > std::max<std::size_t>(self.settings.max_sessions, 1)) return "more sessions than max_sessions";
  std::size_t by_source = 0;
  for (const auto& [source, refs] : self.handshakes_by_source) {
    if (refs.empty() || refs.size() > self.max_handshakes_per_source) return "a source holds more handshakes than its limit";
    for (const SlotRef ref : refs)
      if (!self.live(ref) || self.slots[ref.index].open || !(self.slots[ref.index].source == source))
        return "a source lists a handshake that is not one of its own under way";
    by_source += refs.size();
  }
  if (by_source != self.handshakes) return "the per-source lists do not add up to the handshakes under way";
  return {};
}
const ServerStats& ServerEndpoint::stats() const noexcept { return impl_->stats; }
std::uint32_t ServerEndpoint::worker() const noexcept { return impl_->share.worker; }

}  // namespace dgram::dtls
