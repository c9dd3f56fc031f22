// dtls-echo-server: the tutorial's DTLS server (chapter 2) without its bugs: one unconnected socket, a stateless
// cookie exchange, one session at a time, idle peers dropped, close_notify on SIGINT/SIGTERM.
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "common/cli.hpp"
#include "common/dtls_options.hpp"
#include "common/peer.hpp"
#include "common/rate_limited_log.hpp"
#include "common/stop_signal.hpp"

import dgram;

namespace ex = dgram::examples;

namespace {

struct Totals {
  std::uint64_t sessions = 0;
  std::uint64_t messages = 0;
};

// Serves one session until the peer closes it, goes idle, or a stop is requested. Returns why it ended.
const char* serve(dgram::dtls::DtlsChannel& channel, std::span<std::byte> buffer, const std::string* fixed_reply,
                  std::chrono::milliseconds idle_timeout, std::uint64_t& messages) {
  dgram::Deadline idle = dgram::Deadline::after(idle_timeout);
  while (!ex::stop_requested()) {
    std::error_code ec;
    const std::size_t size = channel.receive(buffer, idle.min(dgram::Deadline::after(ex::stop_check_interval)), ec);
    if (ec == dgram::errc::closed) return "closed by the peer";
    if (ec == dgram::errc::timeout || ec == dgram::errc::interrupted) {
      if (idle.passed(dgram::Clock::now())) return "idle, dropped";
      continue;
    }
    if (ec) return "failed";
    ++messages;
    idle = dgram::Deadline::after(idle_timeout);
    const auto reply = fixed_reply ? std::as_bytes(std::span(*fixed_reply)) : std::span(buffer).first(size);
    channel.send(reply, ec);
    if (ec && ec != dgram::errc::empty_message) return "failed";
  }
  std::error_code ec;
  channel.close(ec);   // close_notify
  return "server stopping";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<ex::Option> options{
      {"bind", "ADDR", "address or host name to listen on (default 127.0.0.1; :: for IPv6 and IPv4)"},
      {"port", "N", "UDP port (default 11111; 0 picks a free port)"},
      {"reply", "TEXT", "answer every message with TEXT instead of echoing it"},
      {"idle-timeout-ms", "T", "drop a session whose peer sends nothing for T ms (default 60000)"},
      {"handshake-timeout-ms", "T", "give up on a handshake after T ms (default 10000)"}};
  const auto dtls = ex::dtls_options(dgram::dtls::Role::server);
  options.insert(options.end(), dtls.begin(), dtls.end());
  ex::CommandLine command_line{"dtls-echo-server", "--cert FILE --key FILE [options]", options};
  return ex::run_program(command_line, argc, argv, [&] {
    const ex::ListenAddress address = ex::listen_address(command_line);
    const auto idle_timeout = std::chrono::milliseconds{command_line.integer("idle-timeout-ms", 60000, 1, 86'400'000)};
    dgram::dtls::DtlsConfig config = ex::dtls_config_from(command_line, dgram::dtls::Role::server);
    config.handshake_timeout = std::chrono::milliseconds{command_line.integer("handshake-timeout-ms", 10000, 1, 600'000)};
    const auto reply = command_line.value("reply");
    dgram::dtls::DtlsHandshaker handshaker(ex::make_dtls_context(config));
    ex::RateLimitedLog failures{"dtls-echo-server", "handshake failure"};
    handshaker.on_handshake_failure([&failures](const dgram::Endpoint& peer, dgram::dtls::FailureKind, const std::string& why) {
      failures.line(fmt::format("handshake failed with {}: {}", peer.to_string(), why));
    });

    ex::install_stop_handlers();
    dgram::UdpSocket socket = dgram::UdpSocket::bind(address.local, address.options);
    std::error_code ec;
    fmt::print("listening on {}\n", socket.local_endpoint(ec).to_string());
    std::fflush(stdout);
    Totals totals;
    std::vector<std::byte> buffer(65536);   // one for all sessions
    while (!ex::stop_requested()) {
      auto channel = handshaker.accept_dtls(socket, dgram::Deadline::after(ex::stop_check_interval), ec);
      failures.flush();
      if (!channel) continue;   // no peer yet, or a stop was requested
      std::uint64_t messages = 0;
      const char* ended = serve(*channel, buffer, reply ? &*reply : nullptr, idle_timeout, messages);
      ++totals.sessions;
      totals.messages += messages;
      fmt::print(stderr, "dtls-echo-server: session {} ended ({}): resumed {}, cipher {}, {}\n",
                 channel->peer().to_string(), ended, channel->resumed() ? "yes" : "no", channel->cipher(),
                 ex::plural(messages, "message"));
    }
    failures.flush(true);
    const auto cookies = handshaker.listener_stats();
    fmt::print(stderr, "dtls-echo-server: served {}, {}; {}; {}, {}, {} dropped\n", ex::plural(totals.sessions, "session"),
               ex::plural(totals.messages, "message"), ex::plural(handshaker.accept_stats().failed_handshakes, "failed handshake"),
               ex::plural(cookies.hello_verify_requests, "cookie challenge"), ex::plural(cookies.bad_cookies, "bad cookie"),
               ex::plural(cookies.dropped_datagrams, "stray datagram"));
    return 0;
  });
}
