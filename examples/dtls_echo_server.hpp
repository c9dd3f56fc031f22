// dtls-echo-server's parts: the options every mode takes, the lines every mode logs, and one function per
// mode (blocking: one session at a time; event: thousands at once on one thread, threaded: on N threads, when
// those variants are built).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/cli.hpp"

#include "common/peer.hpp"
#include "common/rate_limited_log.hpp"

import dgram;

namespace dgram::examples {

struct EchoServerOptions {
  ListenAddress address;
  dtls::DtlsConfig config;
  std::optional<std::string> reply;          // --reply: answer every message with this
  std::chrono::milliseconds idle_timeout{60'000};
  std::size_t max_sessions{10'000};          // event mode
  std::size_t max_handshakes{0};             // event mode; 0: the library's default
  std::size_t max_handshakes_per_source{0};  // event mode; 0: the library's default
  std::chrono::milliseconds stats_interval{0};   // 0: no periodic stats line
  std::uint32_t workers{0};                  // threaded mode; 0: one per core
  std::optional<dtls::ClusterSettings> cluster;   // --node: a node of a cluster (event and threaded modes)
  std::optional<std::chrono::milliseconds> drain_timeout;   // SIGTERM drains (for at most this long) instead of stopping
  std::optional<std::string> health_file;    // exists while the server takes new handshakes
};

// "session PEER ended (WHY): resumed yes|no, cipher C, VERSION, CID on|off[ (its address changed N times)],
// IDENTITY, N messages" on stderr, IDENTITY as dtls::identity_of says it.
void log_session_end(const dtls::SessionInfo& session, const std::string& why, std::uint64_t address_changes,
                     std::uint64_t messages);
// "handshake failed with PEER: WHY", rate-limited.
void log_handshake_failure(RateLimitedLog& log, const Endpoint& peer, const std::string& why);
// The closing line: "served N sessions, M messages; K failed handshakes; C cookie challenges, B bad cookies,
// S stray datagrams dropped", followed by `details` when not empty.
void log_summary(std::uint64_t sessions, std::uint64_t messages, std::uint64_t failed_handshakes,
                 std::uint64_t cookies, std::uint64_t bad_cookies, std::uint64_t stray, const std::string& details);
// One line on stderr when the kernel gave the socket a smaller receive buffer than --receive-buffer-kib asked
// (net.core.rmem_max), saying how to raise the cap.
void warn_if_buffer_capped(int got_bytes, int asked_bytes);
// Prints "listening on ADDR:PORT" on stdout (the first line: scripts and tests wait for it).
void announce_listening(const Endpoint& local);

// The cluster options (dtls_echo_server_cluster.cpp) and what they set: the shared key file, the node, the drain.
std::vector<Option> cluster_options();
void apply_cluster_options(const CommandLine& command_line, const std::string& mode, EchoServerOptions& server);

int run_blocking_echo_server(const EchoServerOptions& options);
int run_event_echo_server(const EchoServerOptions& options);
int run_threaded_echo_server(const EchoServerOptions& options);

}  // namespace dgram::examples
