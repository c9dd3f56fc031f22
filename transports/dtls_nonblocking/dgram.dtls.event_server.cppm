// dgram.dtls.event_server: DTLS for many peers on one UDP port, driven by one thread's event loop.
//
// EventServer is a driver over the sans-I/O Engine, like the blocking one: a non-blocking socket in epoll,
// datagrams in batches (recvmmsg/sendmmsg), a session table keyed by the peer's address (and by Connection ID
// for DTLS 1.3 sessions that have one: a peer whose address changes keeps its session), the Listener's
// stateless cookie exchange for peers without a session (nothing is allocated for a peer before its cookie
// verifies), one timer heap for every session's retransmission, handshake and idle deadlines, and a bound on
// sessions. It never busy-waits: with no timer due it sleeps in epoll_wait until a datagram or stop() comes.
//
// A program gives it a SessionHandler; every callback runs on the thread that called run().
module;
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>
export module dgram.dtls.event_server;

export import dgram.dtls.engine;
export import dgram.udp;

export namespace dgram::dtls {

// A session of the server. Stays valid as a name after the session ended (a call with it then fails with
// errc::not_connected): the slot's generation tells a reused slot from the session that had it. `worker` is
// the number of the EventServer that owns it (EventServerSettings::worker; a ThreadedServer's worker).
struct SessionId {
  std::uint32_t index{0};
  std::uint32_t generation{0};
  std::uint32_t worker{0};
  friend bool operator==(SessionId, SessionId) = default;
};

enum class SessionEnd {
  closed_by_peer,    // close_notify from the peer
  closed_by_server,  // EventServer::close()
  idle,              // nothing from the peer for idle_timeout: dropped without a word (it may be gone)
  server_stopping,   // stop(): close_notify sent
  failed,            // a fatal error after the handshake (the peer's fatal alert, for one)
  replaced,          // the peer's address began a new handshake and proved it with a cookie: the old client
                     // is gone (its port was reused, or it restarted without closing)
};

struct SessionSummary {
  SessionId id;
  Endpoint peer;
  bool resumed{false};
  std::string cipher;
  std::uint64_t messages_in{0};
  std::uint64_t messages_out{0};
  SessionEnd end{SessionEnd::closed_by_peer};
  std::string version;          // "DTLSv1.2" or "DTLSv1.3"
  bool connection_id{false};    // the session used a Connection ID
  std::uint64_t address_changes{0};   // times its peer moved to another address and kept the session (CID)
  std::string psk_identity;     // the pre-shared key identity the client authenticated with; empty without PSK
  std::string peer_key_sha256;  // the client's raw public key (SHA-256 of its SubjectPublicKeyInfo, hex); or empty
};

struct EventServerStats {
  std::uint64_t sessions_open{0};
  std::uint64_t sessions_total{0};        // established sessions, ever
  std::uint64_t handshakes_full{0};
  std::uint64_t handshakes_resumed{0};
  std::uint64_t handshakes_failed{0};     // after a valid cookie: failed, timed out or the peer vanished
  std::uint64_t handshake_timeouts{0};    // of handshakes_failed: stalled past handshake_timeout
  std::uint64_t idle_timeouts{0};
  std::uint64_t cookies_sent{0};          // HelloVerifyRequests
  std::uint64_t bad_cookies{0};           // ClientHellos with a cookie that did not verify
  std::uint64_t dropped_garbage{0};       // not a well-formed DTLS datagram
  std::uint64_t dropped_no_session{0};    // well-formed, but from a peer without a session and no ClientHello
  std::uint64_t dropped_over_limit{0};    // from a new peer while max_sessions were open
  std::uint64_t dropped_undecryptable{0}; // inside sessions: replayed, bad MAC, stray records
  std::uint64_t sessions_replaced{0};     // a new handshake from a session's address took its place
  std::uint64_t address_changes{0};       // a session's peer moved (its Connection ID authenticated from a new
                                          // address) and the session followed it
  std::uint64_t dropped_unknown_connection_id{0};   // DTLS 1.3 records with a Connection ID no session has
  std::uint64_t datagrams_in{0};
  std::uint64_t datagrams_out{0};
  std::uint64_t messages_in{0};
  std::uint64_t messages_out{0};
};

// Adds every counter of `part` to `total` (the threaded server's totals over its workers).
void accumulate(EventServerStats& total, const EventServerStats& part) noexcept;

class EventServer;

// What a program does with the sessions. Every callback runs inside run(), on its thread; a callback may call
// send() and close() of the server it is given for any of that server's sessions. (A ThreadedServer's workers
// each call with themselves: another worker's session is reached with ThreadedServer::post.)
class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // A handshake completed: `session` says with whom (address, PSK identity) and what was negotiated.
  virtual void on_established(EventServer& server, SessionId id, const SessionInfo& session);
  // One decrypted message. The bytes are valid during the call only.
  virtual void on_message(EventServer& server, SessionId id, std::span<const std::byte> message) = 0;
  virtual void on_ended(EventServer& server, const SessionSummary& summary);
  // A peer that proved its address (a valid cookie) whose handshake failed, stalled or was never finished.
  virtual void on_handshake_failed(EventServer& server, const Endpoint& peer, FailureKind kind, const std::string& why);
  // Every EventServerSettings::stats_interval, when set.
  virtual void on_stats(EventServer& server, const EventServerStats& stats);
};

struct EventServerSettings {
  std::size_t max_sessions{10'000};              // sessions and handshakes under way; new peers beyond wait
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds stats_interval{0};   // 0: no on_stats calls (and no periodic wake-ups)
  UdpOptions socket;                             // nonblocking_send is always on
  // The secret of the stateless cookies; null: the server makes its own. Servers that share a port (the
  // workers of a ThreadedServer) share it, so a cookie one issued verifies on another.
  std::shared_ptr<CookieSecrets> cookie_secrets;
  std::uint32_t worker{0};                       // this server's number in SessionIds and worker()
  // Servers that share a port share max_sessions through this count of their sessions (one atomic update per
  // session begun or ended); null: the server counts alone.
  std::shared_ptr<std::atomic<std::size_t>> shared_session_count;
  // Servers that share a port: a record whose Connection ID another of them issued (its first byte is that
  // server's `worker` number) is handed to this function, on this server's thread, instead of being dropped;
  // the ThreadedServer forwards it to the worker that owns the session (EventServer::take_forwarded). False:
  // it was not taken (no such worker, or too many waiting), and is counted as an unknown Connection ID.
  std::function<bool(std::uint8_t owner, std::span<const std::byte> datagram, const Endpoint& from)> foreign_connection_id;
};

class EventServer {
 public:
  using Settings = EventServerSettings;

  // Binds `local` (port 0 picks a free port). A client-role context is errc::invalid_argument. Errors of the
  // socket, epoll or eventfd set ec; the server is then unusable.
  EventServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, EventServerSettings settings,
              SessionHandler& handler, std::error_code& ec);
  ~EventServer();
  EventServer(const EventServer&) = delete;
  EventServer& operator=(const EventServer&) = delete;

  Endpoint local_endpoint() const;
  std::uint32_t worker() const noexcept;   // EventServerSettings::worker

  // Serves until stop(). Before it returns, every established session is sent close_notify and ended
  // (SessionEnd::server_stopping). ec only for failures of the socket or epoll, not of peers.
  void run(std::error_code& ec);
  // Makes run() return. Safe from any thread and from a signal handler (an atomic store and one write(2)).
  void stop() noexcept;
  // Runs `task` on run()'s thread soon (from any thread): the way to send to a session later.
  void post(std::function<void(EventServer&)> task);

  // On run()'s thread: encrypts `message` for an established session and queues it (sent at the end of the
  // current batch). errc::not_connected when the session has ended; Engine::send's errors otherwise.
  void send(SessionId id, std::span<const std::byte> message, std::error_code& ec);
  // On run()'s thread: sends close_notify and ends the session (SessionEnd::closed_by_server).
  void close(SessionId id);
  // On run()'s thread (from a posted task): a datagram that arrived at another server's socket of the same port
  // for one of this server's sessions (EventServerSettings::foreign_connection_id). Handled as if received here.
  void take_forwarded(std::span<const std::byte> datagram, const Endpoint& from);

  // On run()'s thread (or after run() returned): the counters.
  const EventServerStats& stats() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dgram::dtls
