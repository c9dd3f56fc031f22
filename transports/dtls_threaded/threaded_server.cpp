// dgram.dtls.threaded_server: N EventServers on one port (SO_REUSEPORT), one thread each.
module;
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
module dgram.dtls.threaded_server;

namespace dgram::dtls {

namespace {

// Forwards every callback to the program's handler, keeping each worker's latest counters for stats().
class WorkerHandler final : public SessionHandler {
 public:
  WorkerHandler(SessionHandler& program, std::size_t workers) : program_{program}, latest_(workers) {}

  void on_established(EventServer& server, SessionId id, const Endpoint& peer, bool resumed,
                      const std::string& cipher) override {
    program_.on_established(server, id, peer, resumed, cipher);
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

std::uint32_t worker_count(std::uint32_t asked) {
  if (asked > 0) return asked;
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 0 ? cores : 1;
}

}  // namespace

struct ThreadedServer::Impl {
  std::shared_ptr<CookieSecrets> secrets;
  std::unique_ptr<WorkerHandler> handler;
  std::vector<std::unique_ptr<EventServer>> workers;
  Endpoint local;
  std::atomic<bool> finished{false};   // run() returned: the workers' own counters are final

  void open(std::shared_ptr<DtlsContext> context, const Endpoint& requested, ThreadedServerSettings settings,
            SessionHandler& program, std::error_code& ec);
};

void ThreadedServer::Impl::open(std::shared_ptr<DtlsContext> context, const Endpoint& requested,
                                ThreadedServerSettings settings, SessionHandler& program, std::error_code& ec) {
  const std::uint32_t count = worker_count(settings.workers);
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
  secrets = settings.cookie_secrets ? settings.cookie_secrets
                                    : std::make_shared<CookieSecrets>(settings.cookie_rotation);
  handler = std::make_unique<WorkerHandler>(program, count);
  EventServerSettings each = settings;
  each.socket.reuse_port = true;
  each.cookie_secrets = secrets;
  each.shared_session_count = std::make_shared<std::atomic<std::size_t>>(0);
  for (std::uint32_t index = 0; index < count; ++index) {
    each.worker = index;
    workers.push_back(std::make_unique<EventServer>(context, local, each, *handler, ec));
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
    ec = make_error_code(errc::not_connected);
    return;
  }
  std::vector<std::error_code> errors(workers.size());
  const auto serve = [&](std::size_t index) {
    workers[index]->run(errors[index]);
    if (errors[index]) stop();   // one worker's socket failed: the server is not whole, so all stop
  };
  {
    std::vector<std::jthread> threads;
    threads.reserve(workers.size() - 1);
    for (std::size_t index = 1; index < workers.size(); ++index) threads.emplace_back(serve, index);
    serve(0);
  }   // joined
  impl_->finished.store(true, std::memory_order_release);
  for (const auto& error : errors) {
    if (error) {
      ec = error;
      return;
    }
  }
}

void ThreadedServer::stop() noexcept {
  for (const auto& worker : impl_->workers) worker->stop();
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
