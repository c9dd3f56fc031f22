// dtls-echo-server --mode blocking: the tutorial's chapter-2 server without its bugs: one unconnected socket,
// a stateless cookie exchange, one session at a time, idle peers dropped, close_notify on SIGINT/SIGTERM.
#include <fmt/core.h>

#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "common/dtls_options.hpp"
#include "common/stop_signal.hpp"
#include "dtls_echo_server.hpp"

import dgram;

namespace dgram::examples {
namespace {

// Serves one session until the peer closes it, goes idle, or a stop is requested. Returns why it ended.
const char* serve(dtls::DtlsChannel& channel, std::span<std::byte> buffer, const std::optional<std::string>& fixed_reply,
                  std::chrono::milliseconds idle_timeout, std::uint64_t& messages) {
  Deadline idle = Deadline::after(idle_timeout);
  while (!stop_requested()) {
    std::error_code ec;
    const std::size_t size = channel.receive(buffer, idle.min(Deadline::after(stop_check_interval)), ec);
    if (ec == errc::closed) return "closed by the peer";
    if (ec == errc::timeout || ec == errc::interrupted) {
      if (idle.passed(Clock::now())) return "idle, dropped";
      continue;
    }
    if (ec) return "failed";
    ++messages;
    idle = Deadline::after(idle_timeout);
    const auto reply = fixed_reply ? std::as_bytes(std::span(*fixed_reply)) : std::span(buffer).first(size);
    channel.send(reply, ec);
    if (ec && ec != errc::empty_message) return "failed";
  }
  std::error_code ec;
  channel.close(ec);   // close_notify
  return "server stopping";
}

}  // namespace

int run_blocking_echo_server(const EchoServerOptions& options) {
  dtls::DtlsHandshaker handshaker(make_dtls_context(options.config));
  RateLimitedLog failures{"dtls-echo-server", "handshake failure"};
  handshaker.on_handshake_failure([&failures](const Endpoint& peer, dtls::FailureKind, const std::string& why) {
    log_handshake_failure(failures, peer, why);
  });
  install_stop_handlers();
  UdpSocket socket = UdpSocket::bind(options.address.local, options.address.options);
  warn_if_buffer_capped(socket.receive_buffer_size(), options.address.options.receive_buffer_bytes);
  std::error_code ec;
  announce_listening(socket.local_endpoint(ec));
  std::uint64_t sessions = 0;
  std::uint64_t total_messages = 0;
  std::vector<std::byte> buffer(65536);   // one for all sessions
  while (!stop_requested()) {
    auto channel = handshaker.accept_dtls(socket, Deadline::after(stop_check_interval), ec);
    failures.flush();
    if (!channel) continue;   // no peer yet, or a stop was requested
    std::uint64_t messages = 0;
    const char* ended = serve(*channel, buffer, options.reply, options.idle_timeout, messages);
    ++sessions;
    total_messages += messages;
    log_session_end(channel->info(), ended, 0, messages);
  }
  failures.flush(true);
  const dtls::ServerStats front_door = handshaker.server_stats();
  log_summary(sessions, total_messages, handshaker.accept_stats().failed_handshakes, front_door.cookies_sent,
              front_door.bad_cookies, front_door.dropped_garbage + front_door.dropped_no_session, "");
  return 0;
}

}  // namespace dgram::examples
