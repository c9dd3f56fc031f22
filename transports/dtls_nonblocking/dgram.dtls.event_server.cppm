// dgram.dtls.event_server: DTLS for many peers on one UDP port, driven by one thread's event loop.
//
// EventServer is the I/O around a ServerEndpoint (dgram.dtls.server_endpoint: the sessions, the routing, the
// limits and the timers, without I/O): a non-blocking socket in epoll, datagrams in batches (recvmmsg/sendmmsg),
// and the handler called with the endpoint's events after each endpoint call. It never busy-waits: with no
// timer due it sleeps in epoll_wait until a datagram or stop() comes.
//
// A program gives it a SessionHandler; every callback runs on the thread that called run().
module;
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
export module dgram.dtls.event_server;

export import dgram.dtls.server_endpoint;
export import dgram.udp;

export namespace dgram::dtls {

// The event server's counters are the endpoint's (datagrams_out: handed to the kernel, or refused by it).
using EventServerStats = ServerStats;

class EventServer;

// What a program does with the sessions. Every callback runs inside run(), on its thread; a callback may call
// send() and close() of the server it is given for any of that server's sessions. (A ThreadedServer's workers
// each call with themselves: another worker's session is reached with ThreadedServer::post.)
//
// Per-session state: keep it in the handler, keyed by SessionId (std::hash<SessionId> is provided): insert in
// on_established, use in on_message, erase in on_ended, which comes exactly once for every session that was
// established. In a ThreadedServer the handler is shared by the workers: guard the map, or keep one per worker
// (server.worker() says which).
class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // A handshake completed: `session` says with whom (address; the certificate, PSK identity or raw public key
  // the client authenticated with) and what was negotiated. The same SessionInfo comes back in the summary.
  virtual void on_established(EventServer& server, SessionId id, const SessionInfo& session);
  // One decrypted message. The bytes are valid during the call only.
  virtual void on_message(EventServer& server, SessionId id, std::span<const std::byte> message) = 0;
  virtual void on_ended(EventServer& server, const SessionSummary& summary);
  // A peer that proved its address (a valid cookie) whose handshake failed, stalled or was never finished.
  virtual void on_handshake_failed(EventServer& server, const Endpoint& peer, FailureKind kind, const std::string& why);
  // Every EventServerSettings::stats_interval, when set.
  virtual void on_stats(EventServer& server, const EventServerStats& stats);
};

// The endpoint's limits (max_sessions, handshakes under way, idle_timeout, cookie_secrets) and the loop's own.
struct EventServerSettings : ServerEndpointSettings {
  std::chrono::milliseconds stats_interval{0};   // 0: no on_stats calls (and no periodic wake-ups)
  UdpOptions socket;                             // nonblocking_send is always on
};

namespace detail {
// How a ThreadedServer joins its workers (EventServers on one port); not for programs.
struct PortWorker {
  PortShare share;
  // A record for another worker's session (its Connection ID names that worker): hand it over, on this
  // worker's thread (`via`: it came in through that node of the cluster, ServerEndpoint::handle_relayed). False
  // when it could not be (too many waiting): it is counted as an unknown Connection ID.
  std::function<bool(std::uint32_t owner, std::span<const std::byte> datagram, const Endpoint& from,
                     std::optional<std::uint32_t> via)>
      forward;
};
}  // namespace detail

class EventServer {
 public:
  using Settings = EventServerSettings;

  // Binds `local` (port 0 picks a free port). A client-role context is errc::invalid_argument. Errors of the
  // socket, epoll or eventfd set ec; the server is then unusable.
  EventServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, EventServerSettings settings,
              SessionHandler& handler, std::error_code& ec);
  // A worker of a shared port (ThreadedServer).
  EventServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, EventServerSettings settings,
              SessionHandler& handler, std::error_code& ec, detail::PortWorker port);
  ~EventServer();
  EventServer(const EventServer&) = delete;
  EventServer& operator=(const EventServer&) = delete;

  Endpoint local_endpoint() const;
  // The socket's receive buffer in effect, in bytes: EventServerSettings::socket.receive_buffer_bytes as the
  // kernel capped it (UdpSocket::receive_buffer_size).
  int receive_buffer_size() const noexcept;
  std::uint32_t worker() const noexcept;   // its number among a ThreadedServer's workers; 0 alone

  // Serves until stop(). Before it returns, every established session is sent close_notify and ended
  // (SessionEnd::server_stopping). ec only for failures of the socket or epoll, not of peers.
  void run(std::error_code& ec);
  // Makes run() return. Safe from any thread and from a signal handler (an atomic store and one write(2)).
  void stop() noexcept;
  // Takes no new handshakes and makes run() return once every session has ended (a cluster node: and it has
  // passed nothing on for other nodes for a second), or `deadline` from when the loop sees the call (then the
  // rest are sent close_notify: ServerStats::drain_cut_sessions); how the sessions ended is in ServerStats
  // (drained_sessions, refused_draining). Safe from any thread and from a signal handler.
  // What a cluster node does on SIGTERM (docs/deploy.md): its clients resume on other nodes with their tickets.
  void drain(std::chrono::milliseconds deadline) noexcept;
  // Runs `task` on run()'s thread soon (from any thread): the way to send to a session later. The events the
  // task causes (a close() ends a session) are handed to the handler when it returns.
  void post(std::function<void(EventServer&)> task);

  // On run()'s thread: encrypts `message` for an established session and queues it (sent at the end of the
  // current batch). ServerEndpoint::send's errors.
  void send(SessionId id, std::span<const std::byte> message, std::error_code& ec);
  // On run()'s thread: sends close_notify and ends the session (SessionEnd::closed_by_server).
  void close(SessionId id);
  // On run()'s thread: an established session's counters so far; nullopt when it has ended.
  std::optional<SessionCounters> counters(SessionId id) const noexcept;
  // On run()'s thread: an established session's engine (its exported keying material, DTLS-SRTP keys:
  // ServerEndpoint::engine); nullptr when it has ended.
  const Engine* engine(SessionId id) const noexcept;
  // On run()'s thread (from a posted task): the sans-I/O endpoint this server drives. What a task does to it
  // (a datagram handed over by another worker) is dispatched and sent when the task returns.
  ServerEndpoint& endpoint() noexcept;

  // On run()'s thread (or after run() returned): the counters.
  const EventServerStats& stats() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dgram::dtls
