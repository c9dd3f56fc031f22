// dgram.dtls.server_endpoint: a DTLS server port without I/O: which session a datagram belongs to, and what
// the server does about it.
//
// ServerEndpoint owns the Listener (the stateless cookie exchange), the session table (by peer address and by
// Connection ID), every routing rule (a moved peer, a new handshake from a session's address, a replayed
// ClientHello), the limits (sessions, handshakes under way in all and per source) and every session's timers.
// A driver gives it datagrams (handle) and the time (on_timer when next_timer() has passed), sends what
// transmits() lists, and hands the program what next_event() returns, after the endpoint call, never in the
// middle of one. The program's own calls (send, close) are the endpoint's too. The event-driven server is a
// socket and an epoll loop around one; the threaded server runs N of them.
//
// Like the engine it never touches a socket or a clock, so tests and fuzzers drive it from memory.
//
// For applications: the values the servers hand out (SessionId, SessionInfo in SessionSummary, SessionCounters,
// SessionEnd, the ServerEvent kinds, ServerStats) and ServerEndpointSettings. For drivers: ServerEndpoint, PortShare.
module;
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>
export module dgram.dtls.server_endpoint;

export import dgram.dtls.engine;
export import dgram.transport;

export namespace dgram::dtls {

// A session of the server. Stays valid as a name after the session ended (a call with it then fails with
// errc::no_such_session): the slot's generation tells a reused slot from the session that had it. `worker` is
// the number of the endpoint that owns it (a ThreadedServer's worker; 0 alone).
struct SessionId {
  std::uint32_t index{0};
  std::uint32_t generation{0};
  std::uint32_t worker{0};
  friend bool operator==(SessionId, SessionId) = default;
};

enum class SessionEnd {
  closed_by_peer,    // close_notify from the peer
  closed_by_server,  // close()
  idle,              // nothing from the peer for idle_timeout: dropped without a word (it may be gone)
  server_stopping,   // shutdown(): close_notify sent
  failed,            // a fatal error after the handshake (the peer's fatal alert, for one)
  replaced,          // the peer's address began a new handshake and proved it with a cookie: the old client
                     // is gone (its port was reused, or it restarted without closing)
};

// "closed by the peer", "idle"...
std::string to_string(SessionEnd end);

// What a session has done so far: live from ServerEndpoint::counters (EventServer::counters), final in its summary.
struct SessionCounters {
  std::uint64_t messages_in{0};
  std::uint64_t messages_out{0};
  std::uint64_t address_changes{0};   // times its peer moved to another address and kept the session (CID)
};

struct SessionSummary {
  SessionId id;
  SessionInfo session;        // what on_established was given, with the peer's address at the end
  SessionCounters counters;
  SessionEnd end{SessionEnd::closed_by_peer};
};

struct ServerStats {
  std::uint64_t sessions_open{0};
  std::uint64_t sessions_total{0};        // established sessions, ever
  std::uint64_t handshakes_full{0};
  std::uint64_t handshakes_resumed{0};
  std::uint64_t handshakes_failed{0};     // after a valid cookie: failed, timed out, crowded out or vanished
  std::uint64_t handshake_timeouts{0};    // of handshakes_failed: stalled past handshake_timeout (or its
                                          // shorter self while handshakes crowd the limit)
  std::uint64_t handshakes_crowded_out{0};   // of handshakes_failed: the oldest unfinished handshake (of all, or
                                             // of its source) dropped for a newer one at a handshake limit
  std::uint64_t idle_timeouts{0};
  std::uint64_t cookies_sent{0};          // HelloVerifyRequests and HelloRetryRequests
  std::uint64_t bad_cookies{0};           // ClientHellos with a cookie that did not verify
  std::uint64_t served_without_cookie{0};   // DTLS 1.3 hellos keyed by a known PSK (a ticket) served at once
                                            // (DtlsConfig::resumption_skips_cookie)
  std::uint64_t replayed_hellos{0};       // verified ClientHellos whose address and random already opened a
                                          // session lately: refused (a copy of a genuine one)
  std::uint64_t answers_withheld{0};      // ClientHellos too small for their answer (over 3 times: no amplification)
  std::uint64_t dropped_garbage{0};       // not a well-formed DTLS datagram
  std::uint64_t dropped_no_session{0};    // well-formed, but from a peer without a session and no ClientHello
  std::uint64_t dropped_over_limit{0};    // from a new peer while max_sessions were established
  std::uint64_t dropped_undecryptable{0}; // inside sessions: replayed, bad MACs, stray records
  std::uint64_t dropped_over_handshake_budget{0};   // handshake fragments beyond a session's reassembly budget
  std::uint64_t sessions_replaced{0};     // a new handshake from a session's address took its place
  std::uint64_t address_changes{0};       // a session's peer moved (a newer record of its Connection ID
                                          // authenticated from a new address) and the session followed it
  std::uint64_t address_changes_refused{0};   // records of a session from another address that authenticated
                                              // but were not its newest: delivered, the session stayed put
  std::uint64_t paths_confirmed{0};       // moved peers that answered the check that they receive there
  std::uint64_t replies_withheld_unproven{0};   // datagrams not sent to an address not yet proven (a moved
                                                // peer's new one, or a handshake served without a cookie) over
                                                // its anti-amplification budget (three times what came from there)
  std::uint64_t dropped_unknown_connection_id{0};   // records (1.3 or tls12_cid) with a Connection ID no session has
  std::uint64_t dropped_receive_overflow{0};   // datagrams the kernel dropped before the server could read them:
                                               // its socket's receive buffer was full (UdpOptions::
                                               // receive_buffer_bytes sets its size)
  // A cluster (ServerEndpointSettings::cluster): records whose Connection ID names another node, and replies
  // that go back through the node a client's record came in by.
  std::uint64_t forwarded_to_owner{0};      // records sent on to the node that owns their session
  std::uint64_t forwards_received{0};       // records another node sent on to us, for a session of ours
  std::uint64_t forwards_unroutable{0};     // records whose Connection ID names a node this one does not know
  std::uint64_t forwards_refused{0};        // datagrams on the cluster port that failed the MAC, were malformed,
                                            // or named no session of ours: dropped
  std::uint64_t replies_through_nodes{0};   // our datagrams for a client sent back through the node it came in by
  std::uint64_t replies_for_nodes{0};       // other nodes' datagrams we sent on to their clients
  // Draining (ServerEndpoint::drain): new handshakes refused, and how the sessions it held ended.
  std::uint64_t refused_draining{0};        // ClientHellos from new peers while draining: dropped unanswered
  std::uint64_t drained_sessions{0};        // sessions that ended by themselves while draining
  std::uint64_t drain_cut_sessions{0};      // sessions still open when the drain ended (close_notify sent)
  std::uint64_t datagrams_in{0};
  std::uint64_t datagrams_out{0};
  std::uint64_t messages_in{0};
  std::uint64_t messages_out{0};
};

// Adds every counter of `part` to `total` (the threaded server's totals over its workers).
void accumulate(ServerStats& total, const ServerStats& part) noexcept;

// How a Connection ID names who owns its session: its leading `node_bits` bits the node of a cluster, the next
// `worker_bits` the worker (ThreadedServer) on that node; the rest is random. Without a cluster: no node bits,
// 8 worker bits (the first byte is the worker). At most 16 bits in all (an ID is 8 bytes: 48 random bits stay).
struct ConnectionIdLayout {
  std::uint8_t node_bits{0};
  std::uint8_t worker_bits{8};

  // (In 32 bits: a layout over 16 bits is refused by ServerEndpoint, and must not wrap before that.)
  constexpr std::uint32_t prefix_bits() const noexcept { return std::uint32_t{node_bits} + worker_bits; }
  constexpr bool fits() const noexcept { return prefix_bits() <= 16; }
  constexpr std::uint32_t max_nodes() const noexcept { return fits() ? std::uint32_t{1} << node_bits : 0; }
  constexpr std::uint32_t max_workers() const noexcept { return fits() ? std::uint32_t{1} << worker_bits : 0; }
  // The prefix of IDs that node `node`'s worker `worker` issues, in the leading prefix_bits() of the ID.
  constexpr std::uint16_t prefix(std::uint32_t node, std::uint32_t worker) const noexcept {
    if (!fits()) return 0;
    return static_cast<std::uint16_t>((node << worker_bits | worker) & ((std::uint32_t{1} << prefix_bits()) - 1));
  }
  constexpr std::uint32_t node_of(std::span<const std::byte> id) const noexcept {
    return node_bits == 0 || !fits() ? 0 : leading(id) >> (16 - node_bits);
  }
  constexpr std::uint32_t worker_of(std::span<const std::byte> id) const noexcept {
    return fits() ? leading(id) >> (16 - prefix_bits()) & (max_workers() - 1) : 0;
  }

 private:
  static constexpr std::uint32_t leading(std::span<const std::byte> id) noexcept {
    const std::uint32_t first = id.empty() ? 0u : std::to_integer<std::uint32_t>(id[0]);
    const std::uint32_t second = id.size() < 2 ? 0u : std::to_integer<std::uint32_t>(id[1]);
    return first << 8 | second;
  }
};

// This endpoint as a node of a cluster of servers behind one load balancer (docs/deploy.md). Needs Connection
// IDs and DtlsConfig::shared_keys (every node's): a record whose ID names another node is sent on to that node's
// cluster address with the client's address in a header that a MAC from the shared secret authenticates, and
// the owner's replies go back through the node the record came in by (a balancer that rewrote the client's
// destination must see the reply leave the way the request came in: see docs/deploy.md).
struct ClusterSettings {
  std::uint32_t node{0};          // this node's number: in every Connection ID it issues
  std::vector<Endpoint> nodes;    // every node's cluster address, by node number (this node's own included)
  ConnectionIdLayout layout{8, 8};
};

struct ServerEndpointSettings {
  std::size_t max_sessions{10'000};              // sessions and handshakes under way; new peers beyond wait
  // Handshakes under way (a verified cookie, not yet established) at once: 0 means half of max_sessions (at
  // least 16, or max_sessions when smaller). At the limit the oldest gives way to the newcomer, and past three
  // quarters of it a handshake older than a quarter of DtlsConfig::handshake_timeout is dropped as timed out.
  std::size_t max_handshakes{0};
  // Of those, from one IPv4 address or one IPv6 /64: 0 means an eighth of max_handshakes (at least 16, or
  // max_handshakes when smaller). At the limit that source's oldest gives way.
  std::size_t max_handshakes_per_source{0};
  std::chrono::milliseconds idle_timeout{60'000};
  // The secret of the stateless cookies; null: the endpoint makes its own. Endpoints that share a port (the
  // workers of a ThreadedServer) share it, so a cookie one issued verifies on another.
  std::shared_ptr<CookieSecrets> cookie_secrets;
  // A node of a cluster; unset: a server alone. Checked by the constructor (errc::invalid_argument: no Connection
  // IDs or shared keys, a node number not among `nodes` or too large for the layout's node bits).
  std::optional<ClusterSettings> cluster;
};

// What happened, for the program: one of these per next_event().
struct SessionEstablished {
  SessionId id;
  SessionInfo session;
};
struct SessionMessage {
  SessionId id;
  std::span<const std::byte> message;   // valid until next_event() returns nothing
};
struct SessionEnded {
  SessionSummary summary;
};
struct HandshakeFailed {   // a peer that proved its address (a valid cookie) whose handshake failed or stalled
  Endpoint peer;
  FailureKind kind{FailureKind::other};
  std::string why;
};
using ServerEvent = std::variant<SessionEstablished, SessionMessage, SessionEnded, HandshakeFailed>;

// A record for another worker of this port (its Connection ID names that worker): the driver gives it to that
// worker's endpoint, with handle_relayed when `via` is set (it came in through that node of the cluster).
struct Handoff {
  std::uint32_t worker{0};
  Endpoint peer;
  std::span<const std::byte> datagram;   // the caller's bytes: copy them to hand them to another thread
  std::optional<std::uint32_t> via;
};

// Endpoints that serve one port together (a ThreadedServer's workers, one per thread).
struct PortShare {
  std::uint32_t worker{0};    // this one's number: in SessionIds, and in its Connection IDs (ConnectionIdLayout)
  std::uint32_t workers{1};   // how many: a record with another's Connection ID is handed back by handle()
  std::shared_ptr<std::atomic<std::size_t>> session_count;   // max_sessions counts all of theirs; null: alone
};

class ServerEndpoint {
 public:
  // A client-role context is errc::invalid_argument; a Listener that cannot be made (wolfSSL out of memory)
  // or no random key for the tables sets ec too.
  ServerEndpoint(std::shared_ptr<DtlsContext> context, ServerEndpointSettings settings, std::error_code& ec,
                 PortShare share = {});
  ~ServerEndpoint();
  ServerEndpoint(ServerEndpoint&&) noexcept;
  ServerEndpoint& operator=(ServerEndpoint&&) noexcept;

  // One datagram from `peer` (a malformed one is dropped and counted). Returns the worker that owns it when it
  // carries a Connection ID another endpoint of the port issued (PortShare::workers > 1): not taken here; the
  // caller gives it to that endpoint's handle(), or to note_unknown_connection_id() when it cannot.
  std::optional<std::uint32_t> handle(TimePoint now, const Endpoint& peer, std::span<const std::byte> datagram);
  // A datagram of `peer` that node `via` of the cluster received and sent on (a handoff between workers of a
  // datagram from handle_cluster): the session's replies go back through that node.
  std::optional<std::uint32_t> handle_relayed(TimePoint now, const Endpoint& peer, std::span<const std::byte> datagram,
                                              std::uint32_t via);
  // A datagram that came to this node's cluster port from `from`: a client's record for one of our sessions
  // (delivered; or a Handoff to another worker of this node), or another node's reply for a client that reached
  // it through us (queued for the client). Anything that fails the MAC or names no session of ours is dropped and
  // counted (forwards_refused).
  std::optional<Handoff> handle_cluster(TimePoint now, const Endpoint& from, std::span<const std::byte> datagram);
  void note_unknown_connection_id();
  // A datagram the socket had to truncate (larger than max_datagram_size): counted as garbage.
  void note_truncated();
  // The socket's count of datagrams the kernel dropped for a full receive buffer (UdpSocket::receive_overflows):
  // kept as stats().dropped_receive_overflow. The endpoint never sees those datagrams; its driver reads the count.
  void note_receive_overflows(std::uint64_t total) noexcept;
  // When on_timer() is next needed (a retransmission, a handshake or idle deadline, or at once: the rest of a
  // DTLS 1.2 flight split after its certificate); never() when no session.
  Deadline next_timer() const noexcept;
  void on_timer(TimePoint now);

  // The program's calls, between endpoint calls (from an event's handling, too).
  // Encrypts `message` for an established session. errc::no_such_session when the session has ended,
  // errc::not_connected while it is still handshaking; Engine::send's errors otherwise.
  void send(SessionId id, std::span<const std::byte> message, std::error_code& ec);
  // Sends close_notify and ends the session (SessionEnd::closed_by_server).
  void close(SessionId id);
  // Closes every session (SessionEnd::server_stopping, close_notify to the established ones).
  void shutdown();
  // Stops taking new handshakes (ClientHellos of new peers are dropped unanswered: refused_draining) and goes on
  // serving the sessions it holds; a shutdown() afterwards counts what it closes as cut (drain_cut_sessions).
  void drain();
  bool draining() const noexcept;
  // Takes an established session out of the endpoint, with what it has still to send (the blocking server
  // serves it alone, on its engine). The endpoint forgets it without an event; nullopt when not established.
  std::optional<Engine> release(SessionId id);
  bool alive(SessionId id) const noexcept;
  // An established session's counters now; nullopt when it has ended or is still handshaking.
  std::optional<SessionCounters> counters(SessionId id) const noexcept;
  // An established session's engine, to read from (keying material: Engine::export_keying_material and
  // srtp_keying_material); nullptr when it has ended or is still handshaking. Valid until the next call.
  const Engine* engine(SessionId id) const noexcept;

  // The next event, or nullopt when there is none (the message bytes of the events are then released: a
  // SessionMessage's bytes stay valid until then). A message of a session closed meanwhile is skipped.
  std::optional<ServerEvent> next_event();
  // What to send, in order; valid until clear_transmits() or the next endpoint call that is not a program's
  // call. Every datagram is counted as sent.
  std::span<const SendSlot> transmits();
  // In a cluster, what goes to other nodes' cluster addresses (forwarded records, replies to send back through
  // the node a client came in by), sealed; valid as transmits() (call it after transmits(): it lists what that
  // call gathered).
  std::span<const SendSlot> cluster_transmits();
  void clear_transmits();

  // Sessions (established or handshaking) held now, and of those the handshakes under way.
  std::size_t sessions() const noexcept;
  std::size_t handshakes() const noexcept;
  // Checks the tables against each other and the limits (every session reachable by one address, its
  // Connection ID naming it, the counts and the limits agreeing): empty when they hold, else what does not.
  // For tests and fuzzing; linear in the sessions.
  std::string audit() const;
  const ServerStats& stats() const noexcept;
  std::uint32_t worker() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dgram::dtls

// SessionIds as keys of unordered containers: the per-session state of a program (docs: "Per-session state").
template <>
struct std::hash<dgram::dtls::SessionId> {
  std::size_t operator()(dgram::dtls::SessionId id) const noexcept {
    const std::uint64_t slot = (std::uint64_t{id.worker} << 32) ^ id.index;
    return std::hash<std::uint64_t>{}(slot * 0x9e3779b97f4a7c15ULL ^ id.generation);
  }
};
