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

#include "common/cli.hpp"
#include "common/dtls_options.hpp"
#include "common/line_client.hpp"
#include "common/peer.hpp"

import dgram;

namespace ex = dgram::examples;

namespace {

struct Connection {
  dgram::UdpSocket socket;
  std::unique_ptr<dgram::dtls::DtlsChannel> channel;
};

// What the user can do about a failed handshake, in this program's option names.
std::string hint(dgram::dtls::FailureKind kind, const dgram::dtls::DtlsConfig& config) {
  using enum dgram::dtls::FailureKind;
  switch (kind) {
    case untrusted_certificate: return " (--ca must name the CA that signed it)";
    case certificate_name_mismatch: return " (connect with --host or --server-name set to one of those)";
    case certificate_required: return " (give one with --cert and --key)";
    case unknown_psk_identity: return " (check --psk-identity)";
    case psk_mismatch: return " (check --psk-hex on both sides)";
    case no_shared_cipher:
      return config.psk ? " (for a server with a certificate, use --ca instead)"
                        : " (for a pre-shared key server, use --psk-identity and --psk-hex)";
    default: return "";
  }
}

Connection connect(dgram::dtls::DtlsHandshaker& handshaker, const dgram::dtls::DtlsConfig& config,
                   const dgram::Endpoint& server, const dgram::dtls::Session* resume) {
  Connection connection{dgram::UdpSocket::connect(server), nullptr};
  std::error_code ec;
  connection.channel = handshaker.connect_dtls(connection.socket, server, dgram::Deadline::never(), ec, resume);
  if (ec == std::errc::connection_refused)
    throw std::runtime_error(fmt::format("no server at {} (connection refused)", server.to_string()));
  if (!connection.channel)
    throw std::runtime_error(fmt::format("DTLS handshake with {} failed: {}{}", server.to_string(),
                                         handshaker.failure().empty() ? ec.message() : handshaker.failure(),
                                         hint(handshaker.failure_kind(), config)));
  return connection;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<ex::Option> options{
      {"host", "H", "server host name or address (default 127.0.0.1)"},
      {"port", "N", "server UDP port (default 11111)"},
      {"timeout-ms", "T", "wait for each reply this long before retrying (default 1000)"},
      {"retries", "R", "send a line again this many times when no reply comes (default 3)"},
      {"resume", "", "after the first session, connect again resuming it and send the lines again"}};
  const auto dtls = ex::dtls_options(dgram::dtls::Role::client);
  options.insert(options.end(), dtls.begin(), dtls.end());
  ex::CommandLine command_line{"dtls-echo-client", "--ca FILE [options] < lines", options};
  return ex::run_program(command_line, argc, argv, [&] {
    const dgram::Endpoint server = ex::resolve_peer(command_line);
    ex::LineClientSettings settings = ex::line_client_settings(command_line);
    settings.session = true;
    dgram::dtls::DtlsConfig config = ex::dtls_config_from(command_line, dgram::dtls::Role::client);
    config.handshake_timeout = settings.timeout * (settings.retries + 1);
    dgram::dtls::DtlsHandshaker handshaker(ex::make_dtls_context(config));

    const bool resume = command_line.flag("resume");
    const std::string lines = resume ? std::string(std::istreambuf_iterator<char>(std::cin), {}) : std::string{};
    std::istringstream first_input(lines);
    Connection first = connect(handshaker, config, server, nullptr);
    if (const int status = ex::run_line_client(*first.channel, settings, resume ? first_input : std::cin); status != 0)
      return status;
    if (!resume) return 0;

    const dgram::dtls::Session saved = first.channel->session();
    Connection second = connect(handshaker, config, server, &saved);
    fmt::print(stderr, "session resumed: {}\n", second.channel->resumed() ? "yes" : "no");
    std::istringstream again(lines);
    return ex::run_line_client(*second.channel, settings, again);
  });
}
