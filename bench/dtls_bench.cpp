// DTLS benchmarks: full handshakes/s, resumed handshakes/s and 1200-byte echo round trips/s against dgram's
// dtls-echo-server --mode blocking, a plain C wolfSSL server (bench/wolfssl_plain_server.c) and openssl s_server. The load
// is the same for every server: one dgram DTLS client doing one thing at a time over loopback.
#include <chrono>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "bench.hpp"
#include "server_process.hpp"

import dgram;

namespace dgram::bench {
namespace {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

constexpr int handshakes_per_run = 150;
constexpr int round_trips_per_run = 3000;

std::shared_ptr<dtls::DtlsContext> client_context(const DtlsBenchSetup& setup) {
  std::error_code ec;
  std::string reason;
  auto context = dtls::DtlsContext::create(
      dtls::client_config(dtls::Pem::file(setup.certs + "/ca.pem"), "localhost"), ec, &reason);
  if (!context) throw std::runtime_error("bench client context: " + reason);
  return context;
}

struct Session {
  UdpSocket socket;
  std::unique_ptr<dtls::DtlsChannel> channel;
};

Session open_session(dtls::DtlsHandshaker& handshaker, const Endpoint& server, const dtls::Session* resume) {
  Session session{UdpSocket::connect(server), nullptr};
  std::error_code ec;
  session.channel = handshaker.connect_dtls(session.socket, server, Deadline::after(10s), ec, resume);
  if (!session.channel) throw std::runtime_error("bench handshake with " + server.to_string() + " failed: " + handshaker.failure());
  return session;
}

void close_session(Session& session) {
  std::error_code ec;
  session.channel->close(ec);
}

double handshake_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, bool resume) {
  const Endpoint server = Endpoint::loopback(Family::ipv4, port);
  dtls::DtlsHandshaker handshaker(context);
  dtls::Session saved;
  if (resume) {
    Session first = open_session(handshaker, server, nullptr);
    saved = first.channel->session();
    close_session(first);
  }
  const auto start = Clock::now();
  for (int i = 0; i < handshakes_per_run; ++i) {
    Session session = open_session(handshaker, server, resume ? &saved : nullptr);
    if (resume && !session.channel->resumed()) throw std::runtime_error("bench: the server did not resume");
    close_session(session);
  }
  return handshakes_per_run / Seconds(Clock::now() - start).count();
}

double echo_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port) {
  const Endpoint server = Endpoint::loopback(Family::ipv4, port);
  dtls::DtlsHandshaker handshaker(context);
  Session session = open_session(handshaker, server, nullptr);
  const std::vector<std::byte> message(1200, std::byte{'e'});
  std::vector<std::byte> reply(65536);
  std::error_code ec;
  const auto start = Clock::now();
  for (int i = 0; i < round_trips_per_run; ++i) {
    session.channel->send(message, ec);
    if (!ec) session.channel->receive(reply, Deadline::after(5s), ec);
    if (ec) throw std::system_error(ec, "bench echo");
  }
  const double rate = round_trips_per_run / Seconds(Clock::now() - start).count();
  close_session(session);
  return rate;
}

}  // namespace

std::vector<Row> dtls_benchmarks(int repetitions, const DtlsBenchSetup& setup) {
  const std::string cert = setup.certs + "/server-ecdsa.pem";
  const std::string key = setup.certs + "/server-ecdsa.key";
  const std::string listening = R"(listening on 127\.0\.0\.1:(\d+))";
  ServerProcess ours({setup.dtls_server, "--mode", "blocking", "--port", "0", "--cert", cert, "--key", key}, listening);
  ServerProcess plain({setup.plain_server, cert, key}, listening);
  ServerProcess openssl({setup.openssl, "s_server", "-dtls1_2", "-accept", "127.0.0.1:0", "-mtu", "1400", "-cert", cert,
                         "-key", key},
                        R"(ACCEPT 127\.0\.0\.1:(\d+))");
  const auto context = client_context(setup);
  const auto full = [&](const ServerProcess& server) { return [&] { return handshake_rate(context, server.port(), false); }; };
  const auto resumed = [&](const ServerProcess& server) { return [&] { return handshake_rate(context, server.port(), true); }; };
  return {
      compare("dtls full handshakes", "handshakes/s", "openssl s_server", 1.0, repetitions, full(ours), full(openssl)),
      compare("dtls full handshakes", "handshakes/s", "plain C wolfSSL", 0.0, repetitions, full(ours), full(plain)),
      compare("dtls resumed handshakes", "handshakes/s", "plain C wolfSSL", 1.0, repetitions, resumed(ours), resumed(plain)),
      compare("dtls 1200 B echo", "round trips/s", "plain C wolfSSL", 0.95, repetitions,
              [&] { return echo_rate(context, ours.port()); }, [&] { return echo_rate(context, plain.port()); }),
  };
}

}  // namespace dgram::bench
