// dtls-echo-server --mode event: every session at once on one port, on one thread (EventServer); and
// --mode threaded: the same on N worker threads (ThreadedServer), with the same handler.
#include <fmt/core.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <mutex>
#include <span>
#include <string>
#include <system_error>

#include "common/cli.hpp"
#include "common/dtls_options.hpp"
#include "common/stop_signal.hpp"
#include "dtls_echo_server.hpp"

import dgram;

namespace dgram::examples {
namespace {

std::string counters(const dtls::EventServerStats& s) {
  return fmt::format("sessions open {}, total {}; handshakes full {}, resumed {}, failed {} ({} timed out, {} "
                     "crowded out); cookies sent {}, bad {}, withheld {}, skipped for a known key {}; replayed hellos {}; dropped: {} garbage, "
                     "{} without a session, {} over the session limit, {} undecryptable, {} over the handshake "
                     "budget, {} with an unknown connection ID, {} by the kernel (receive buffer full); {} idle "
                     "timeouts, {} replaced, {} moved to a new address ({} confirmed there; {} older records from "
                     "elsewhere did not move one, {} datagrams over an unconfirmed address's budget)",
                     s.sessions_open, s.sessions_total, s.handshakes_full, s.handshakes_resumed, s.handshakes_failed,
                     s.handshake_timeouts, s.handshakes_crowded_out, s.cookies_sent, s.bad_cookies,
                     s.answers_withheld, s.served_without_cookie, s.replayed_hellos, s.dropped_garbage, s.dropped_no_session,
                     s.dropped_over_limit, s.dropped_undecryptable, s.dropped_over_handshake_budget,
                     s.dropped_unknown_connection_id, s.dropped_receive_overflow, s.idle_timeouts, s.sessions_replaced, s.address_changes,
                     s.paths_confirmed, s.address_changes_refused, s.replies_withheld_unproven);
}

// "cluster: N forwarded to their node, ..." when this server is a cluster's node; what a drain did.
std::string cluster_counters(const dtls::EventServerStats& s) {
  std::string text;
  if (s.forwarded_to_owner + s.forwards_received + s.forwards_unroutable + s.forwards_refused + s.replies_for_nodes > 0)
    text += fmt::format("; cluster: {} records forwarded to their node, {} received from other nodes, {} naming no "
                        "known node, {} refused (bad MAC or no session), {} replies sent back through other nodes, "
                        "{} sent on for other nodes", s.forwarded_to_owner, s.forwards_received, s.forwards_unroutable,
                        s.forwards_refused, s.replies_through_nodes, s.replies_for_nodes);
  return text;
}

// Shared by a threaded server's workers: its callbacks may run on several threads at once.
class EchoHandler final : public dtls::SessionHandler {
 public:
  EchoHandler(const std::optional<std::string>& reply, bool name_workers) : reply_{reply}, name_workers_{name_workers} {}

  void on_message(dtls::EventServer& server, dtls::SessionId id, std::span<const std::byte> message) override {
    std::error_code ec;
    server.send(id, reply_ ? std::as_bytes(std::span(*reply_)) : message, ec);
  }
  void on_ended(dtls::EventServer&, const dtls::SessionSummary& session) override {
    log_session_end(session.session, dtls::to_string(session.end), session.counters.address_changes,
                    session.counters.messages_in);
  }
  void on_handshake_failed(dtls::EventServer&, const Endpoint& peer, dtls::FailureKind, const std::string& why) override {
    const std::lock_guard lock(log_mutex_);
    log_handshake_failure(failures_, peer, why);
  }
  void on_stats(dtls::EventServer& server, const dtls::EventServerStats& stats) override {
    const std::lock_guard lock(log_mutex_);
    failures_.flush();
    fmt::print(stderr, "dtls-echo-server: stats{}: {}{}\n", worker_name(server.worker()), counters(stats),
               cluster_counters(stats));
  }
  void flush_failures() {
    const std::lock_guard lock(log_mutex_);
    failures_.flush(true);
  }
  std::string worker_name(std::uint32_t worker) const {
    return name_workers_ ? fmt::format(" (worker {})", worker) : std::string{};
  }

 private:
  const std::optional<std::string>& reply_;
  const bool name_workers_;
  std::mutex log_mutex_;
  RateLimitedLog failures_{"dtls-echo-server", "handshake failure"};
};

// What a signal does: SIGTERM drains a server told to (--drain-timeout-ms: it takes no new handshakes, its health
// file goes, and it stops once its sessions ended or the time is up); anything else, or a second SIGTERM, stops
// it at once. Runs in the signal handler: only async-signal-safe calls (unlink, the servers' drain and stop).
template <class Server>
struct SignalTarget {
  Server& server;
  std::optional<std::chrono::milliseconds> drain_timeout;
  const char* health_file;   // or nullptr
  std::atomic<bool> draining{false};

  static void on_signal(void* target, int signal) {
    auto& self = *static_cast<SignalTarget*>(target);
    if (signal == SIGTERM && self.drain_timeout && !self.draining.exchange(true)) {
      if (self.health_file) ::unlink(self.health_file);
      self.server.drain(*self.drain_timeout);
      return;
    }
    self.server.stop();
  }
};

// The health file a balancer's check looks for (docs/deploy.md): there while new handshakes are taken.
class HealthFile {
 public:
  explicit HealthFile(const std::optional<std::string>& path) : path_{path} {
    if (!path_) return;
    std::ofstream file(*path_);
    if (!(file << "ready\n" << std::flush))
      throw std::runtime_error(fmt::format("cannot write the health file '{}': {}", *path_, std::strerror(errno)));
  }
  ~HealthFile() {
    if (path_) ::unlink(path_->c_str());
  }
  HealthFile(const HealthFile&) = delete;
  HealthFile& operator=(const HealthFile&) = delete;
  const char* path() const { return path_ ? path_->c_str() : nullptr; }

 private:
  std::optional<std::string> path_;
};


// "ADDR:PORT", and the cluster address a node binds too.
std::string listen_description(const EchoServerOptions& options) {
  if (!options.cluster) return options.address.local.to_string();
  return fmt::format("{} and cluster address {}", options.address.local.to_string(),
                     options.cluster->nodes[options.cluster->node].to_string());
}

template <class Server>
typename Server::Settings settings_from(const EchoServerOptions& options) {
  typename Server::Settings settings;
  settings.max_sessions = options.max_sessions;
  settings.max_handshakes = options.max_handshakes;
  settings.max_handshakes_per_source = options.max_handshakes_per_source;
  settings.idle_timeout = options.idle_timeout;
  settings.stats_interval = options.stats_interval;
  settings.socket = options.address.options;
  settings.cluster = options.cluster;
  return settings;
}

// Serves until SIGINT/SIGTERM with either server type: they take the same handler and settings.
template <class Server>
void serve(Server& server, EchoHandler& handler, const EchoServerOptions& options) {
  install_stop_handlers();
  std::error_code ec;
  {
    const HealthFile health{options.health_file};
    SignalTarget<Server> target{server, options.drain_timeout, health.path()};
    const StopSignalHook hook{SignalTarget<Server>::on_signal, &target};
    if (stop_requested()) server.stop();   // a signal that came before the hook
    announce_listening(server.local_endpoint());
    server.run(ec);
  }
  if (ec) throw std::system_error(ec, "the event loop failed");
  handler.flush_failures();
  const dtls::EventServerStats stats = server.stats();
  log_summary(stats.sessions_total, stats.messages_in, stats.handshakes_failed, stats.cookies_sent, stats.bad_cookies,
              stats.dropped_garbage + stats.dropped_no_session, counters(stats) + cluster_counters(stats));
  if (stats.drained_sessions + stats.drain_cut_sessions + stats.refused_draining > 0)
    fmt::print(stderr, "dtls-echo-server: drained: {} ended in time, {} cut at the deadline (close_notify sent); {} "
               "new handshakes refused while draining\n", plural(stats.drained_sessions, "session"),
               stats.drain_cut_sessions, stats.refused_draining);
}

}  // namespace

int run_event_echo_server(const EchoServerOptions& options) {
  EchoHandler handler{options.reply, false};
  std::error_code ec;
  dtls::EventServer server(make_dtls_context(options.config), options.address.local,
                           settings_from<dtls::EventServer>(options), handler, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + listen_description(options));
  warn_if_buffer_capped(server.receive_buffer_size(), options.address.options.receive_buffer_bytes);
  serve(server, handler, options);
  return 0;
}

#ifdef DGRAM_THREADED_SERVER
int run_threaded_echo_server(const EchoServerOptions& options) {
  EchoHandler handler{options.reply, true};
  auto settings = settings_from<dtls::ThreadedServer>(options);
  settings.workers = options.workers;
  std::error_code ec;
  dtls::ThreadedServer server(make_dtls_context(options.config), options.address.local, settings, handler, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + listen_description(options));
  warn_if_buffer_capped(server.worker(0).receive_buffer_size(), options.address.options.receive_buffer_bytes);
  serve(server, handler, options);
  for (std::uint32_t worker = 0; worker < server.workers(); ++worker) {
    const dtls::EventServerStats stats = server.worker_stats(worker);
    fmt::print(stderr, "dtls-echo-server: worker {}: {}, {} (full {}, resumed {}), {}\n", worker,
               plural(stats.sessions_total, "session"), plural(stats.handshakes_full + stats.handshakes_resumed, "handshake"),
               stats.handshakes_full, stats.handshakes_resumed, plural(stats.messages_in, "message"));
  }
  return 0;
}
#endif

}  // namespace dgram::examples
