// dgram.dtls.threaded_server: DTLS on one UDP port served by N worker threads.
//
// Each worker is an EventServer with its own socket on the same port (SO_REUSEPORT): the kernel hashes every
// datagram's addresses to one socket, so all datagrams of a session reach the one worker that owns it, with no
// lock and no hand-off between threads on the way. Each worker runs its own Listener; the cookie secret is
// shared (a cookie issued by one worker verifies on another, and the secret rotates with the previous one
// still accepted), and so are wolfSSL's session cache and ticket keys (one DtlsContext), so a client resumes
// whichever worker its new source port lands on.
//
// The interface is EventServer's: the same SessionHandler, settings with two more fields, run/stop/stats. The
// handler is shared by the workers, so its callbacks run on several threads at once; each call receives the
// worker (an EventServer) whose session it is, and send()/close() on that worker are safe inside the callback.
module;
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>
export module dgram.dtls.threaded_server;

export import dgram.dtls.event_server;

export namespace dgram::dtls {

// With Connection IDs, the first byte of each ID names the worker that owns the session (so any worker can
// route a moved peer's records): at most this many workers, else errc::invalid_argument.
inline constexpr std::uint32_t max_connection_id_workers = 256;

// What ThreadedServerSettings::workers = 0 means: one worker per core this process may run on (its CPU
// affinity: a container's limit, not the host's core count).
std::uint32_t default_worker_count();

struct ThreadedServerSettings : EventServerSettings {
  std::uint32_t workers{0};                            // 0: one per core this process may use; at most
                                                       // max_connection_id_workers with Connection IDs
  std::chrono::seconds cookie_rotation{30};   // > 0, else errc::invalid_argument
  // max_sessions is the whole server's (the workers share one count: two that take a new peer at the same
  // moment may exceed it by one each), and so are max_handshakes and max_handshakes_per_source (each worker
  // takes its share); socket.reuse_port is always on;
  // stats_interval makes every worker call on_stats with its own counters; cookie_secrets null: one is made.
};

class ThreadedServer {
 public:
  using Settings = ThreadedServerSettings;

  // Binds every worker's socket to `local` (port 0 picks a free port for all of them). A port some other
  // socket holds is std::errc::address_in_use, also when that socket would let us join it (SO_REUSEPORT of the
  // same user): two servers must not split one port's traffic unknowingly. (The check is a plain bind just
  // before the workers bind; a process of the same user that binds with SO_REUSEPORT later can still join.)
  ThreadedServer(std::shared_ptr<DtlsContext> context, const Endpoint& local, ThreadedServerSettings settings,
                 SessionHandler& handler, std::error_code& ec);
  ~ThreadedServer();
  ThreadedServer(const ThreadedServer&) = delete;
  ThreadedServer& operator=(const ThreadedServer&) = delete;

  Endpoint local_endpoint() const;
  std::uint32_t workers() const noexcept;

  // Runs every worker (one on the calling thread) until stop() or a worker's socket fails (then all stop),
  // joins them and returns; each worker sends close_notify to its sessions first. ec: the failure of the
  // lowest-numbered worker that failed. An exception from the handler on any worker stops all and is
  // rethrown here.
  void run(std::error_code& ec);
  // Stops every worker. Safe from any thread and from a signal handler.
  void stop() noexcept;
  // Drains every worker (EventServer::drain): run() returns when all have. Safe from a signal handler.
  void drain(std::chrono::milliseconds deadline) noexcept;
  // Runs `task` on the thread of the worker that owns `id` (soon; not after run() returned).
  void post(SessionId id, std::function<void(EventServer&)> task);
  // The worker with that number (SessionId::worker), for post() to all of them and tests.
  EventServer& worker(std::uint32_t index);
  CookieSecrets& cookie_secrets() noexcept;

  // The sum over the workers: exact after run() returned; during run(), as of each worker's latest
  // on_stats (with EventServerSettings::stats_interval set), otherwise zero.
  EventServerStats stats() const;
  // One worker's counters, the same way.
  EventServerStats worker_stats(std::uint32_t index) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dgram::dtls
