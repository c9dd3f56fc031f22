// dtls-echo-server: a DTLS echo server over the dgram library, in the modes this build has: `event` (every
// session at once on one thread; the default when built), `threaded` (the same on N worker threads sharing
// one port) and `blocking` (the tutorial's one session at a time). Same options, output lines and exit codes
// in every mode.
#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "common/cli.hpp"
#include "common/dtls_options.hpp"
#include "common/psk_reload.hpp"
#include "dtls_echo_server.hpp"

import dgram;

namespace dgram::examples {

void log_session_end(const dtls::SessionInfo& session, const std::string& why, std::uint64_t address_changes,
                     std::uint64_t messages) {
  const std::string moved =
      address_changes > 0 ? fmt::format(" (its address changed {})", plural(address_changes, "time")) : "";
  std::string key_exchange = session.key_exchange.empty() ? "" : ", key exchange " + session.key_exchange;
  if (!session.srtp_profile.empty()) key_exchange += ", SRTP " + session.srtp_profile;
  fmt::print(stderr, "dtls-echo-server: session {} ended ({}): resumed {}, cipher {}, {}, CID {}{}, {}, {}{}\n",
             session.peer.to_string(), why, session.resumed ? "yes" : "no", session.cipher, session.version,
             session.connection_id ? "on" : "off", moved, dtls::identity_of(session), plural(messages, "message"),
             key_exchange);
}

void log_handshake_failure(RateLimitedLog& log, const Endpoint& peer, const std::string& why) {
  log.line(fmt::format("handshake failed with {}: {}", peer.to_string(), why));
}

void log_summary(std::uint64_t sessions, std::uint64_t messages, std::uint64_t failed_handshakes,
                 std::uint64_t cookies, std::uint64_t bad_cookies, std::uint64_t stray, const std::string& details) {
  fmt::print(stderr, "dtls-echo-server: served {}, {}; {}; {}, {}, {} dropped{}{}\n", plural(sessions, "session"),
             plural(messages, "message"), plural(failed_handshakes, "failed handshake"),
             plural(cookies, "cookie challenge"), plural(bad_cookies, "bad cookie"), plural(stray, "stray datagram"),
             details.empty() ? "" : "; ", details);
}

void warn_if_buffer_capped(int got_bytes, int asked_bytes) {
  if (asked_bytes == 0 || got_bytes >= asked_bytes) return;
  fmt::print(stderr, "dtls-echo-server: the socket's receive buffer is {} KiB, not the {} KiB asked: the kernel caps "
             "it at net.core.rmem_max (raise it with sysctl -w net.core.rmem_max={}, or run with CAP_NET_ADMIN)\n",
             got_bytes / 1024, asked_bytes / 1024, asked_bytes);
}

void announce_listening(const Endpoint& local) {
  fmt::print("listening on {}\n", local.to_string());
  std::fflush(stdout);
}

}  // namespace dgram::examples

namespace ex = dgram::examples;

namespace {

// The modes this build has, the default first, and what each does.
const std::vector<std::pair<std::string, std::string>> modes{
#ifdef DGRAM_EVENT_SERVER
    {"event", "every session at once on one thread"},
#endif
#ifdef DGRAM_THREADED_SERVER
    {"threaded", "the same on --workers threads"},
#endif
    {"blocking", "one session at a time"},
};

std::string mode_help() {
  std::string names;
  std::string meanings;
  for (const auto& [mode, meaning] : modes) {
    names += (names.empty() ? "" : "|") + mode;
    meanings += (meanings.empty() ? "" : ", ") + mode + " " + meaning;
  }
  return fmt::format("{}: {} (default {})", names, meanings, modes.front().first);
}

bool has_mode(const std::string& name) {
  return std::any_of(modes.begin(), modes.end(), [&](const auto& mode) { return mode.first == name; });
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<ex::Option> options{
      {"mode", "MODE", mode_help()},
      {"bind", "ADDR", "address or host name to listen on (default 127.0.0.1; :: for IPv6 and IPv4)"},
      {"port", "N", "UDP port (default 11111; 0 picks a free port)"},
      {"reply", "TEXT", "answer every message with TEXT instead of echoing it"},
      {"idle-timeout-ms", "T", "drop a session whose peer sends nothing for T ms (default 60000)"},
      {"handshake-timeout-ms", "T", "give up on a handshake after T ms (default 10000)"},
      {"receive-buffer-kib", "N", "the socket's receive buffer: what a burst of clients may queue before the kernel drops (default 32768; capped by net.core.rmem_max unless run with CAP_NET_ADMIN)"}};
#ifdef DGRAM_EVENT_SERVER
  options.push_back({"max-sessions", "N", "event and threaded modes: serve at most N sessions at once; new peers wait (default 10000)"});
  options.push_back({"max-handshakes", "N", "event and threaded modes: handshakes under way at once; the oldest gives way (default: half of --max-sessions)"});
  options.push_back({"max-handshakes-per-source", "N", "event and threaded modes: of those, from one IPv4 address or IPv6 /64 (default: an eighth of --max-handshakes)"});
  options.push_back({"stats-interval-ms", "T", "event and threaded modes: print the counters every T ms (default: only at exit)"});
#endif
#ifdef DGRAM_THREADED_SERVER
  options.push_back({"workers", "N", fmt::format("threaded mode: worker threads (default: one per core, here {})",
                                                 dgram::dtls::default_worker_count())});
#endif
#ifdef DGRAM_EVENT_SERVER
  const auto cluster = ex::cluster_options();
  options.insert(options.end(), cluster.begin(), cluster.end());
#endif
  const auto dtls = ex::dtls_options(dgram::dtls::Role::server);
  options.insert(options.end(), dtls.begin(), dtls.end());
  ex::CommandLine command_line{"dtls-echo-server", "(--cert FILE --key FILE | --psk-file FILE | --raw-key --key FILE) [options]", options};
  return ex::run_program(command_line, argc, argv, [&] {
    const std::string mode = command_line.value_or("mode", modes.front().first);
    if (!has_mode(mode))
      throw ex::UsageError(fmt::format("--mode '{}' is not one this build has ({})", mode, mode_help()));
    for (const char* option : {"max-sessions", "max-handshakes", "max-handshakes-per-source", "stats-interval-ms"}) {
      if (mode == "blocking" && command_line.value(option))
        throw ex::UsageError(fmt::format("--{} needs --mode event or threaded", option));
    }
    if (mode != "threaded" && command_line.value("workers")) throw ex::UsageError("--workers needs --mode threaded");
    ex::EchoServerOptions server;
    server.address = ex::listen_address(command_line);
    server.address.options.receive_buffer_bytes =
        static_cast<int>(1024 * command_line.integer("receive-buffer-kib", 32768, 64, 2'000'000));
    server.config = ex::dtls_config_from(command_line, dgram::dtls::Role::server);
    std::optional<ex::PskFileReloader> psk_file;   // before the server's threads: it blocks SIGHUP for them
    if (const auto path = command_line.value("psk-file")) {
      psk_file.emplace(command_line.program(), *path);
      server.config.psk_store = psk_file->store();
    }
    server.config.handshake_timeout =
        std::chrono::milliseconds{command_line.integer("handshake-timeout-ms", 10000, 1, 600'000)};
    server.reply = command_line.value("reply");
    server.idle_timeout = std::chrono::milliseconds{command_line.integer("idle-timeout-ms", 60000, 1, 86'400'000)};
    server.max_sessions = static_cast<std::size_t>(command_line.integer("max-sessions", 10000, 1, 10'000'000));
    server.max_handshakes = static_cast<std::size_t>(command_line.integer("max-handshakes", 0, 1, 10'000'000));
    server.max_handshakes_per_source =
        static_cast<std::size_t>(command_line.integer("max-handshakes-per-source", 0, 1, 10'000'000));
    if (server.max_handshakes > server.max_sessions)
      throw ex::UsageError(fmt::format("--max-handshakes {} is more than --max-sessions {} (handshakes take sessions' slots)",
                                       server.max_handshakes, server.max_sessions));
    if (server.max_handshakes > 0 && server.max_handshakes_per_source > server.max_handshakes)
      throw ex::UsageError(fmt::format("--max-handshakes-per-source {} is more than --max-handshakes {}",
                                       server.max_handshakes_per_source, server.max_handshakes));
    server.stats_interval = std::chrono::milliseconds{command_line.integer("stats-interval-ms", 0, 0, 86'400'000)};
    server.workers = static_cast<std::uint32_t>(command_line.integer("workers", 0, 1, 1024));   // 0: the library's default
#ifdef DGRAM_EVENT_SERVER
    ex::apply_cluster_options(command_line, mode, server);
#endif
#ifdef DGRAM_THREADED_SERVER
    // A Connection ID names its worker in one byte (ThreadedServer refuses more workers).
    if (mode == "threaded" && server.config.connection_id &&
        (server.workers > 0 ? server.workers : dgram::dtls::default_worker_count()) > dgram::dtls::max_connection_id_workers)
      throw ex::UsageError(fmt::format("--cid allows at most {} --workers", dgram::dtls::max_connection_id_workers));
    if (mode == "threaded") return ex::run_threaded_echo_server(server);
#endif
#ifdef DGRAM_EVENT_SERVER
    if (mode == "event") return ex::run_event_echo_server(server);
#endif
    return ex::run_blocking_echo_server(server);
  });
}
