// dgram.dtls.threaded_server: N EventServers on one port (SO_REUSEPORT), one thread each.
module;
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
module dgram.dtls.threaded_server;

namespace dgram::dtls {

// One per core this process may run on (its affinity mask: a container's or taskset's limit, not the host's).
std::uint32_t default_worker_count() {
  cpu_set_t cores;
  if (::sched_getaffinity(0, sizeof cores, &cores) == 0 && CPU_COUNT(&cores) > 0)
    return static_cast<std::uint32_t>(CPU_COUNT(&cores));
  const unsigned all = std::thread::hardware_concurrency();
  return all > 0 ? all : 1;
}

namespace {

// Forwards every callback to the program's handler, keeping each worker's latest counters for stats().
class WorkerHandler final : public SessionHandler {
 public:
  WorkerHandler(SessionHandler& program, std::size_t workers) : program_{program}, latest_(workers) {}

  void on_established(EventServer& server, SessionId id, const SessionInfo& session) override {
    program_.on_established(server, id, session);
  }
  void on_message(EventServer& server, SessionId id, std::span<const std::byte> message) override {
    program_.on_message(server, id, message);
  }
  void on_ended(EventServer& server, const SessionSummary& summary) override { program_.on_ended(server, summary); }
  void on_handshake_failed(EventServer& server, const Endpoint& peer, FailureKind kind, const std::string& why) override {
    program_.on_handshake_failed(server, peer, kind, why);
  }
  void on_stats(EventServer& server, const EventServerStats& stats) override {
    {
      const std::lock_guard lock(mutex_);
      latest_[server.worker()] = stats;
    }
    program_.on_stats(server, stats);
  }

  EventServerStats latest(std::uint32_t worker) const {
    const std::lock_guard lock(mutex_);
    return latest_[worker];
  }

 private:
  SessionHandler& program_;
  mutable std::mutex mutex_;
  std::vector<EventServerStats> latest_;
};

std::uint32_t worker_count(std::uint32_t asked) { return asked > 0 ? asked : default_worker_count(); }

}  // namespace

struct ThreadedServer::Impl {
  std::shared_ptr<CookieSecrets> secrets;
  std::unique_ptr<WorkerHandler> handler;
  std::vector<std::unique_ptr<EventServer>> workers;
  Endpoint local;
  std::atomic<bool> finished{false};   // run() returned: the workers' own counters are final
  std::vector<std::atomic<std::uint32_t>> forwards_waiting;   // per worker: datagrams posted to it, not yet taken
  static constexpr std::uint32_t max_waiting_forwards = 256;

  void open(std::shared_ptr<DtlsContext> context, const Endpoint& requested, ThreadedServerSettings settings,
            SessionHandler& program, std::error_code& ec);
};

void ThreadedServer::Impl::open(std::shared_ptr<DtlsContext> context, const Endpoint& requested,
                                ThreadedServerSettings settings, SessionHandler& program, std::error_code& ec) {
  const std::uint32_t count = worker_count(settings.workers);
  secrets = settings.cookie_secrets ? settings.cookie_secrets
                                    : CookieSecrets::for_config(context->config(), settings.cookie_rotation);
  // A Connection ID names its worker in one byte.
  if (settings.cookie_rotation.count() <= 0 || (context->config().connection_id && count > max_connection_id_workers)) {
    ec = make_error_code(errc::invalid_argument);
    return;
  }
  // The port must be free: a socket without SO_REUSEPORT cannot bind it otherwise. With port 0 this also
  // picks the port every worker then binds.
  UdpOptions probe_options = settings.socket;
  probe_options.reuse_port = false;
  {
    UdpSocket probe = UdpSocket::bind(requested, ec, probe_options);
    if (ec) return;
    local = probe.local_endpoint(ec);
    if (ec) return;
  }
  handler = std::make_unique<WorkerHandler>(program, count);
  EventServerSettings each = settings;
  each.socket.reuse_port = true;
  each.cookie_secrets = secrets;
  const auto session_count = std::make_shared<std::atomic<std::size_t>>(0);
  // SO_REUSEPORT picks a worker by the peer's address, so a peer whose address changed may land on another
  // worker than the one that owns its session: that worker hands the record over (one copy and one wake-up,
  // only for records of moved peers).
  // Anyone can make up an ID, so at most max_waiting_forwards datagrams wait for one worker at a time.
  forwards_waiting = std::vector<std::atomic<std::uint32_t>>(count);
  const auto forward = [this](std::uint32_t owner, std::span<const std::byte> datagram, const Endpoint& from,
                              std::optional<std::uint32_t> via) {
    std::atomic<std::uint32_t>& waiting = forwards_waiting[owner];
    if (waiting.fetch_add(1, std::memory_order_relaxed) >= max_waiting_forwards) {
      waiting.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    workers[owner]->post([copy = std::vector<std::byte>(datagram.begin(), datagram.end()), from, via,
                          &waiting](EventServer& server) {
      waiting.fetch_sub(1, std::memory_order_relaxed);
      if (via) server.endpoint().handle_relayed(Clock::now(), from, copy, *via);
      else server.endpoint().handle(Clock::now(), from, copy);
    });
    return true;
  };
  for (std::uint32_t index = 0; index < count; ++index) {
    const PortShare share{index, count, session_count};
    workers.push_back(std::make_unique<EventServer>(context, local, each, *handler, ec, detail::PortWorker{share, forward}));
    if (ec) {
      workers.clear();
      return;
    }
  }
}

ThreadedServer::ThreadedServer(std::shared_ptr<DtlsContext> context, const Endpoint& local,
                               ThreadedServerSettings settings, SessionHandler& handler, std::error_code& ec)
    : impl_{std::make_unique<Impl>()} {
  ec.clear();
  impl_->open(std::move(context), local, std::move(settings), handler, ec);
}

ThreadedServer::~ThreadedServer() = default;

Endpoint ThreadedServer::local_endpoint() const { return impl_->local; }
std::uint32_t ThreadedServer::workers() const noexcept { return static_cast<std::uint32_t>(impl_->workers.size()); }

void ThreadedServer::run(std::error_code& ec) {
  ec.clear();
  auto& workers = impl_->workers;
  if (workers.empty()) {   // the constructor failed and said so
    ec = make_error_code(errc::not_set_up);
    return;
  }
  std::vector<std::error_code> errors(workers.size());
  std::vector<std::exception_ptr> thrown(workers.size());   // a handler's exception, rethrown by run()
  const auto serve = [&](std::size_t index) {
    try {
      workers[index]->run(errors[index]);
    } catch (...) {
      thrown[index] = std::current_exception();
    }
    if (errors[index] || thrown[index]) stop();   // one worker failed: the server is not whole, so all stop
  };
  {
    std::vector<std::jthread> threads;
    try {
      threads.reserve(workers.size() - 1);
      for (std::size_t index = 1; index < workers.size(); ++index) threads.emplace_back(serve, index);
    } catch (...) {   // no thread for a worker: stop those started before they are joined
      stop();
      throw;
    }
    serve(0);
  }   // joined
  impl_->finished.store(true, std::memory_order_release);
  for (const auto& exception : thrown)
    if (exception) std::rethrow_exception(exception);
  for (const auto& error : errors) {   // the lowest-numbered worker's failure
    if (error) {
      ec = error;
      return;
    }
  }
}

void ThreadedServer::stop() noexcept {
  for (const auto& worker : impl_->workers) worker->stop();
}

void ThreadedServer::drain(std::chrono::milliseconds deadline) noexcept {
  for (const auto& worker : impl_->workers) worker->drain(deadline);
}

void ThreadedServer::post(SessionId id, std::function<void(EventServer&)> task) {
  worker(id.worker).post(std::move(task));
}

EventServer& ThreadedServer::worker(std::uint32_t index) { return *impl_->workers.at(index); }
CookieSecrets& ThreadedServer::cookie_secrets() noexcept { return *impl_->secrets; }

EventServerStats ThreadedServer::worker_stats(std::uint32_t index) const {
  if (impl_->finished.load(std::memory_order_acquire)) return impl_->workers.at(index)->stats();
  return impl_->handler->latest(index);
}

EventServerStats ThreadedServer::stats() const {
  EventServerStats total;
  for (std::uint32_t index = 0; index < workers(); ++index) accumulate(total, worker_stats(index));
  return total;
}

}  // namespace dgram::dtls
