// dtls-echo-client: sends each stdin line as one DTLS record and prints each reply on its own line. With
// --resume it connects a second time resuming the first session and sends the lines again.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>

#include "common/cli.hpp"
#include "common/dtls_options.hpp"
#include "common/line_client.hpp"
#include "common/peer.hpp"
#ifdef DGRAM_EVENT_CLIENT
#include "common/event_channel.hpp"
#endif

import dgram;

namespace ex = dgram::examples;

namespace {

// One session, whichever client drives it.
struct Connection {
  std::unique_ptr<dgram::UdpSocket> socket;   // the blocking client's socket (its channel borrows it)
  std::unique_ptr<dgram::Channel> channel;
  const dgram::dtls::Engine* engine{nullptr};   // the channel's
};

// What the user can do about a failed handshake, in this program's option names.
std::string hint(dgram::dtls::FailureKind kind, const dgram::dtls::DtlsConfig& config) {
  using enum dgram::dtls::FailureKind;
  switch (kind) {
    case untrusted_certificate: return " (--ca must name the CA that signed it)";
    case certificate_name_mismatch: return " (connect with --host or --server-name set to one of those)";
    case certificate_required:
      return config.pinned_peer_keys ? " (give one with --cert and --key, or a raw public key with --raw-key and --key)"
                                     : " (give one with --cert and --key)";
    case unknown_psk_identity: return " (check --psk-identity)";
    case psk_mismatch: return " (check --psk-hex on both sides)";
    case version_mismatch: return " (choose the server's version with --dtls, or --dtls any)";
    case unpinned_key: return " (add its key to --pinned-keys if you trust it)";
    case certificate_type_mismatch:
      return config.pinned_peer_keys ? " (--pinned-keys asks for a raw public key: use --ca for a certificate)"
                                     : " (use --pinned-keys with the server's key, and --raw-key if it asks for ours)";
    case no_shared_cipher:
      return config.psk ? " (the server may want other suites: try --coap or --ciphers; or certificates: --ca)"
                        : " (the server may want other suites: try --coap or --ciphers; or a pre-shared key:"
                          " --psk-identity and --psk-hex)";
    default: return "";
  }
}

// Nothing listens at the server's port (ICMP port unreachable).
struct NoServer : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void handshake_failed(const dgram::Endpoint& server, const std::error_code& ec, const std::string& failure,
                                   dgram::dtls::FailureKind kind, const dgram::dtls::DtlsConfig& config) {
  if (ec == std::errc::connection_refused)
    throw NoServer(fmt::format("no server at {} (connection refused)", server.to_string()));
  throw std::runtime_error(fmt::format("DTLS handshake with {} failed: {}{}", server.to_string(),
                                       failure.empty() ? ec.message() : failure, hint(kind, config)));
}

Connection connect_blocking(const std::shared_ptr<dgram::dtls::DtlsContext>& context,
                            const dgram::dtls::DtlsConfig& config, const dgram::Endpoint& server,
                            const dgram::dtls::Session* resume) {
  Connection connection{std::make_unique<dgram::UdpSocket>(dgram::UdpSocket::connect(server)), nullptr, nullptr};
  dgram::dtls::DtlsHandshaker handshaker(context);
  std::error_code ec;
  auto channel = handshaker.connect_dtls(*connection.socket, server, dgram::Deadline::never(), ec, resume);
  if (!channel) handshake_failed(server, ec, handshaker.failure(), handshaker.failure_kind(), config);
  connection.engine = &channel->engine();
  connection.channel = std::move(channel);
  return connection;
}

#ifdef DGRAM_EVENT_CLIENT
Connection connect_nonblocking(const std::shared_ptr<dgram::dtls::DtlsContext>& context,
                               const dgram::dtls::DtlsConfig& config, const dgram::Endpoint& server,
                               const dgram::dtls::Session* resume) {
  std::error_code ec;
  std::string failure;
  auto kind = dgram::dtls::FailureKind::none;
  auto channel = ex::EventChannel::connect(context, server, resume, dgram::Deadline::never(), ec, failure, kind);
  if (!channel) handshake_failed(server, ec, failure, kind, config);
  Connection connection{nullptr, nullptr, &channel->engine()};
  connection.channel = std::move(channel);
  return connection;
}
#endif

// The resumed connection, right after the first session ended. A server that serves one session at a time may
// not listen for a moment then (Mbed TLS's ssl_server2, like the tutorial's servers, binds its port anew after
// each session: a datagram in that instant is refused, seen about once in 50 runs on a loaded machine), so a
// refusal is tried again for up to a second before it counts.
template <class Connect>
Connection connect_again(Connect connect, const std::shared_ptr<dgram::dtls::DtlsContext>& context,
                         const dgram::dtls::DtlsConfig& config, const dgram::Endpoint& server,
                         const dgram::dtls::Session& session) {
  for (int attempt = 1;; ++attempt) {
    try {
      return connect(context, config, server, &session);
    } catch (const NoServer&) {
      if (attempt == 5) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));   // 50, 100, 150, 200 ms
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<ex::Option> options{
      {"host", "H", "server host name or address (default 127.0.0.1)"},
      {"port", "N", "server UDP port (default 11111)"},
      {"timeout-ms", "T", "wait for each reply this long before retrying (default 1000)"},
      {"retries", "R", "send a line again this many times when no reply comes (default 3)"},
      {"resume", "", "after the first session, connect again resuming it and send the lines again"},
      {"verbose", "", "say what each session negotiated (version, cipher, resumed, CID) on stderr"}};
#ifdef DGRAM_EVENT_CLIENT
  options.push_back({"nonblocking", "", "drive the session with the event-driven client (EventClient) instead"});
#endif
  const auto dtls = ex::dtls_options(dgram::dtls::Role::client);
  options.insert(options.end(), dtls.begin(), dtls.end());
  ex::CommandLine command_line{"dtls-echo-client", "(--ca FILE | --psk-identity ID --psk-hex KEY | --pinned-keys FILE) [options] < lines", options};
  return ex::run_program(command_line, argc, argv, [&] {
    const dgram::Endpoint server = ex::resolve_peer(command_line);
    ex::LineClientSettings settings = ex::line_client_settings(command_line);
    settings.session = true;
    dgram::dtls::DtlsConfig config = ex::dtls_config_from(command_line, dgram::dtls::Role::client);
    config.handshake_timeout = settings.timeout * (settings.retries + 1);
    const auto context = ex::make_dtls_context(config);
    auto connect = connect_blocking;
#ifdef DGRAM_EVENT_CLIENT
    if (command_line.flag("nonblocking")) connect = connect_nonblocking;
#endif

    const bool resume = command_line.flag("resume");
    const std::string lines = resume ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : std::string{};
    std::istringstream first_input(lines);
    const bool verbose = command_line.flag("verbose");
    const auto connected = [&](const Connection& connection) {
      if (verbose) fmt::print(stderr, "dtls-echo-client: connected to {}: {}\n", server.to_string(),
                              dgram::dtls::to_string(connection.engine->info()));
    };
    Connection first = connect(context, config, server, nullptr);
    connected(first);
    if (const int status = ex::run_line_client(*first.channel, settings, resume ? first_input : std::cin); status != 0)
      return status;
    if (!resume) return 0;

    // Taken after the exchange: a DTLS 1.3 ticket arrives after the handshake.
    const dgram::dtls::Session session = first.engine->session();
    Connection second = connect_again(connect, context, config, server, session);
    connected(second);
    fmt::print(stderr, "session resumed: {}\n", second.engine->resumed() ? "yes" : "no");
    std::istringstream again(lines);
    return ex::run_line_client(*second.channel, settings, again);
  });
}
