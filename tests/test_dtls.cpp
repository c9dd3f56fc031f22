// The blocking DTLS driver over real loopback sockets (IPv4 and IPv6): echo, resumption, back-to-back
// clients, a client that vanishes mid-handshake, bad configurations and hostile datagrams.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <memory>
#include <span>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/server_thread.hpp"
#include "support/forwarding_transport.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::bad_cert_file;
using dgram::testing::cert_file;
using dgram::testing::context_for;
using dgram::testing::test_client_config;
using dgram::testing::test_server_config;
namespace dtls = dgram::dtls;

namespace {

using dgram::testing::bytes;

// A DTLS echo server on a thread: accepts sessions one after another and echoes each message, until stopped.
class ThreadServer {
 public:
  explicit ThreadServer(const dtls::DtlsConfig& config, dgram::Family family = dgram::Family::ipv4)
      : socket_{dgram::UdpSocket::bind(dgram::Endpoint::loopback(family, 0))},
        handshaker_{context_for(config)} {
    std::error_code ec;
    endpoint_ = socket_.local_endpoint(ec);
    handshaker_.on_handshake_failure([this](const dgram::Endpoint&, dtls::FailureKind kind, const std::string&) {
      {
        const std::lock_guard lock(mutex_);
        failures_.push_back(kind);
      }
      failed_.notify_all();
    });
    thread_.emplace([this](std::error_code&) { run(); }, [this] { stop_ = true; });
  }

  void stop() { thread_->stop(); }
  const dgram::Endpoint& endpoint() const { return endpoint_; }
  int sessions() const { return sessions_; }
  // Waits up to `limit` for `count` failed handshakes, and returns their kinds.
  std::vector<dtls::FailureKind> failures(std::size_t count, std::chrono::milliseconds limit = 10s) {
    std::unique_lock lock(mutex_);
    failed_.wait_for(lock, limit, [&] { return failures_.size() >= count; });
    return failures_;
  }
  int resumed_sessions() const { return resumed_; }
  std::string log() {
    const std::lock_guard lock(mutex_);
    return log_;
  }
  // Read after stop().
  const dtls::DtlsHandshaker& handshaker() const { return handshaker_; }

 private:
  void run() {
    std::vector<std::byte> buffer(65536);
    while (!stop_) {
      std::error_code ec;
      auto channel = handshaker_.accept_dtls(socket_, dgram::Deadline::after(20ms), ec);
      if (!channel) continue;
      ++sessions_;
      if (channel->resumed()) ++resumed_;
      const auto began = std::chrono::steady_clock::now();
      while (!stop_) {
        const std::size_t size = channel->receive(buffer, dgram::Deadline::after(20ms), ec);
        if (ec == dgram::errc::timeout) continue;
        if (ec) break;
        channel->send(std::span(buffer).first(size), ec);
      }
      const auto served = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
      const std::lock_guard lock(mutex_);
      log_ += channel->peer().to_string() + " served " + std::to_string(served.count()) + " ms (" + ec.message() + "); ";
    }
  }

  dgram::UdpSocket socket_;
  dtls::DtlsHandshaker handshaker_;
  dgram::Endpoint endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sessions_{0};
  std::atomic<int> resumed_{0};
  std::mutex mutex_;
  std::condition_variable failed_;
  std::vector<dtls::FailureKind> failures_;
  std::string log_;
  std::optional<dgram::testing::ServerThread> thread_;   // last: stopped before the rest goes
};

struct Client {
  dgram::UdpSocket socket;
  dtls::DtlsHandshaker handshaker;
  std::unique_ptr<dtls::DtlsChannel> channel;
  std::error_code error;

  Client(const dtls::DtlsConfig& config, const dgram::Endpoint& server, const dtls::Session* resume = nullptr)
      : Client(context_for(config), server, resume) {}
  // (From a thread of the test's own: Catch2's macros, which context_for uses, are for the main thread only.)
  Client(std::shared_ptr<dtls::DtlsContext> context, const dgram::Endpoint& server, const dtls::Session* resume = nullptr)
      : socket{dgram::UdpSocket::connect(server)}, handshaker{std::move(context)} {
    channel = handshaker.connect_dtls(socket, server, dgram::Deadline::after(10s), error, resume);
  }

  std::string echo(const std::string& message) {
    std::error_code ec;
    channel->send(bytes(message), ec);
    REQUIRE(!ec);
    std::vector<std::byte> buffer(65536);
    const std::size_t size = channel->receive(buffer, dgram::Deadline::after(5s), ec);
    REQUIRE(!ec);
    return std::string(reinterpret_cast<const char*>(buffer.data()), size);
  }

  void close() {
    std::error_code ec;
    channel->close(ec);
  }
};

}  // namespace

TEST_CASE("dtls sockets: echo from 1 byte to the largest record, IPv4 and IPv6", "[dtls]") {
  for (const auto family : {dgram::Family::ipv4, dgram::Family::ipv6}) {
    ThreadServer server(test_server_config(), family);
    Client client(test_client_config(family == dgram::Family::ipv4 ? "127.0.0.1" : "::1"), server.endpoint());
    INFO(client.handshaker.failure());
    REQUIRE(client.channel);
    const std::size_t largest = client.channel->max_message_size();
    CHECK(largest >= 1200);
    for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{1200}, largest}) {
      std::string message(size, 'a');
      for (std::size_t i = 0; i < size; ++i) message[i] = static_cast<char>('a' + (i * 7 + size) % 26);
      CHECK(client.echo(message) == message);
    }
    std::error_code ec;
    client.channel->send({}, ec);
    CHECK(ec == dgram::errc::empty_message);
    client.channel->send(bytes(std::string(largest + 1, 'x')), ec);
    CHECK(ec == dgram::errc::message_too_large);
    client.close();
  }
}

TEST_CASE("dtls sockets: resumption by session ticket and by session ID", "[dtls][resumption]") {
  for (const bool tickets : {true, false}) {
    INFO("tickets " << tickets);
    ThreadServer server(test_server_config());
    dtls::DtlsConfig config = test_client_config();
    config.session_tickets = tickets;
    dtls::Session saved;
    {
      Client first(config, server.endpoint());
      REQUIRE(first.channel);
      CHECK(!first.channel->resumed());
      CHECK(first.echo("first") == "first");
      saved = first.channel->session();
      first.close();
    }
    REQUIRE(saved);
    Client second(config, server.endpoint(), &saved);
    REQUIRE(second.channel);
    CHECK(second.channel->resumed());
    CHECK(second.echo("second") == "second");
    second.close();
    server.stop();
    CHECK(server.resumed_sessions() == 1);
  }
}

TEST_CASE("dtls sockets: 20 back-to-back clients all succeed", "[dtls]") {
  ThreadServer server(test_server_config());
  for (int i = 0; i < 20; ++i) {
    Client client(test_client_config(), server.endpoint());
    INFO("client " << i << ": " << client.handshaker.failure());
    REQUIRE(client.channel);
    CHECK(client.echo("client " + std::to_string(i)) == "client " + std::to_string(i));
    client.close();
  }
  server.stop();
  CHECK(server.sessions() == 20);
}

namespace {

// A transport that stops sending after `sends` datagrams, as a client that vanishes mid-handshake would.
class VanishingTransport final : public dgram::testing::ForwardingTransport {
 public:
  VanishingTransport(dgram::Transport& inner, int sends) : ForwardingTransport{inner}, sends_left_{sends} {}
  void send_to(std::span<const std::byte> d, const dgram::Endpoint& peer, std::error_code& ec) override {
    ec.clear();
    if (sends_left_-- > 0) ForwardingTransport::send_to(d, peer, ec);
  }

 private:
  int sends_left_;
};

}  // namespace

TEST_CASE("dtls sockets: a client that vanishes mid-handshake does not stop the next one", "[dtls]") {
  dtls::DtlsConfig server_config = test_server_config();
  server_config.handshake_timeout = 1500ms;
  ThreadServer server(server_config);
  {
    // Sends ClientHello and the ClientHello with the cookie, so the server starts a session, then goes silent.
    auto socket = dgram::UdpSocket::connect(server.endpoint());
    VanishingTransport vanishing(socket, 2);
    dtls::DtlsConfig config = test_client_config();
    config.handshake_timeout = 500ms;
    dtls::DtlsHandshaker handshaker(context_for(config));
    std::error_code ec;
    CHECK(!handshaker.connect_dtls(vanishing, server.endpoint(), dgram::Deadline::after(5s), ec));
  }
  Client next(test_client_config(), server.endpoint());
  INFO(next.handshaker.failure());
  REQUIRE(next.channel);
  CHECK(next.echo("next") == "next");
  next.close();
  // The vanished one is dropped at its handshake timeout, while the server waits for the next peer.
  CHECK(server.failures(1) == std::vector<dtls::FailureKind>{dtls::FailureKind::timed_out});
  server.stop();
  CHECK(server.handshaker().accept_stats().failed_handshakes == 1);
  CHECK(server.sessions() == 1);
}

TEST_CASE("dtls sockets: clients that handshake at once are all served, one after another", "[dtls]") {
  ThreadServer server(test_server_config());
  // Four handshakes finish together inside the server's endpoint; it hands them out in turn.
  std::vector<std::future<std::string>> echoes;
  const auto client_context = context_for(test_client_config());
  for (int i = 0; i < 4; ++i) {
    echoes.push_back(std::async(std::launch::async, [&server, &client_context, i] {
      Client client(client_context, server.endpoint());
      if (!client.channel) {
        const auto& stats = client.handshaker.last_handshake_stats();
        return "no session: " + client.handshaker.failure() + " (datagrams in " + std::to_string(stats.datagrams_in) +
               ", out " + std::to_string(stats.datagrams_out) + ", retransmissions " +
               std::to_string(stats.retransmissions) + ", damped " + std::to_string(stats.damped_retransmissions) +
               ", dropped " + std::to_string(stats.dropped_datagrams) + ")";
      }
      std::string reply;
      // The server serves one session at a time: a message sent while it serves another is lost, so it is sent
      // again until the echo comes (each wait bounded).
      for (int attempt = 0; attempt < 40 && reply.empty(); ++attempt) {
        std::error_code ec;
        client.channel->send(bytes("client " + std::to_string(i)), ec);
        std::vector<std::byte> buffer(256);
        const std::size_t size = client.channel->receive(buffer, dgram::Deadline::after(250ms), ec);
        if (!ec) reply.assign(reinterpret_cast<const char*>(buffer.data()), size);
      }
      client.close();
      return reply;
    }));
  }
  std::vector<std::string> replies;
  for (auto& echo : echoes) replies.push_back(echo.get());
  server.stop();
  const dtls::ServerStats stats = server.handshaker().server_stats();
  INFO(server.log() << "server " << server.endpoint().to_string() << ": in " << stats.datagrams_in << ", out " << stats.datagrams_out << ", cookies "
                    << stats.cookies_sent << ", bad " << stats.bad_cookies << ", replayed hellos "
                    << stats.replayed_hellos << ", no session " << stats.dropped_no_session << ", garbage "
                    << stats.dropped_garbage << ", failed " << stats.handshakes_failed << ", crowded out "
                    << stats.handshakes_crowded_out << ", over limit " << stats.dropped_over_limit
                    << ", undecryptable " << stats.dropped_undecryptable << ", withheld " << stats.answers_withheld
                    << ", full " << stats.handshakes_full);
  for (int i = 0; i < 4; ++i) CHECK(replies[static_cast<std::size_t>(i)] == "client " + std::to_string(i));
  CHECK(server.sessions() == 4);
}

TEST_CASE("dtls: bad configurations are one readable reason", "[dtls][negative]") {
  auto reason_for = [](const dtls::DtlsConfig& config) {
    std::error_code ec;
    std::string reason;
    CHECK(!dtls::DtlsContext::create(config, ec, &reason));
    CHECK(ec);
    CHECK(reason.find('\n') == std::string::npos);
    return reason;
  };
  auto missing = test_server_config();
  missing.certificate_chain = dtls::Pem::file("/nonexistent/server.pem");
  CHECK(reason_for(missing) == "cannot read certificate chain '/nonexistent/server.pem': No such file or directory");
  auto unreadable = test_server_config();
  unreadable.private_key = dtls::Pem::file(cert_file(""));   // a directory
  CHECK(reason_for(unreadable).find("private key") != std::string::npos);
  auto mismatched = test_server_config();
  mismatched.private_key = dtls::Pem::file(bad_cert_file("other.key"));
  CHECK(reason_for(mismatched) == "private key '" + bad_cert_file("other.key") +
                                      "' does not match certificate '" + cert_file("server-ecdsa.pem") + "'");
  auto not_pem = test_client_config();
  not_pem.trusted_authorities = {dtls::Pem::memory("not a certificate")};
  CHECK(reason_for(not_pem).find("trusted CA file in-memory PEM holds no usable PEM certificate") == 0);
  auto no_ca = test_client_config();
  no_ca.trusted_authorities.clear();
  CHECK(reason_for(no_ca) == "a DTLS client that verifies its server needs a trusted CA (or pinned raw public keys, or a pre-shared key)");
}

TEST_CASE("dtls sockets: handshakes that must fail do, with a reason", "[dtls][negative]") {
  ThreadServer server(test_server_config());
  auto failure_with = [&](const dtls::DtlsConfig& config, dtls::FailureKind kind) {
    Client client(config, server.endpoint());
    CHECK(!client.channel);
    CHECK(client.error);
    CHECK(client.handshaker.failure_kind() == kind);
    return client.handshaker.failure();
  };
  auto wrong_ca = test_client_config();
  wrong_ca.trusted_authorities = {dtls::Pem::file(bad_cert_file("other-ca.pem"))};
  CHECK(failure_with(wrong_ca, dtls::FailureKind::untrusted_certificate) ==
        "the server's certificate (subject O=dgram test, CN=localhost, issuer O=dgram test, CN=dgram test CA) is not "
        "signed by a trusted CA");
  CHECK(failure_with(test_client_config("wrong.example"), dtls::FailureKind::certificate_name_mismatch) ==
        "the server's certificate is not valid for 'wrong.example': it names ::1, 127.0.0.1, localhost");
  CHECK(failure_with(test_client_config("10.9.8.7"), dtls::FailureKind::certificate_name_mismatch) ==
        "the server's certificate is not valid for '10.9.8.7': it names ::1, 127.0.0.1, localhost");
  server.stop();

  auto expired_config = dtls::server_config(dtls::Pem::file(bad_cert_file("expired.pem")),
                                            dtls::Pem::file(bad_cert_file("expired.key")));
  ThreadServer expired(expired_config);
  Client client(test_client_config(), expired.endpoint());
  CHECK(!client.channel);
  CHECK(client.handshaker.failure_kind() == dtls::FailureKind::untrusted_certificate);
  INFO(client.handshaker.failure());
  CHECK(client.handshaker.failure().ends_with(" has expired"));
  expired.stop();

  // Names the peer chose reach logs escaped: no terminal control sequence from a certificate.
  ThreadServer control(dtls::server_config(dtls::Pem::file(bad_cert_file("control-name.pem")),
                                           dtls::Pem::file(bad_cert_file("control-name.key"))));
  Client misnamed(test_client_config(), control.endpoint());
  CHECK(misnamed.handshaker.failure() == "the server's certificate is not valid for 'localhost': it names evil\\x07.example");
  control.stop();

  // A session keeps its peer's chain in a fixed array (wolfSSL's MAX_CHAIN_DEPTH: 5 in the optimized build, 9 in
  // Debian's): a chain of 5 is served everywhere, a longer one refused, with a line that says why in the
  // optimized build (Debian's, which tries alternative chains, calls the last certificate it read unsigned).
  const auto chain_of = [](int certificates) {
    return dtls::server_config(dtls::Pem::file(bad_cert_file("chain-" + std::to_string(certificates) + ".pem")),
                               dtls::Pem::file(bad_cert_file("chain.key")));
  };
  {
    ThreadServer five(chain_of(5));
    Client within(test_client_config(), five.endpoint());
    INFO(within.handshaker.failure());
    CHECK(within.channel);
  }
  for (const int certificates : dtls::dtls13_available() ? std::vector{6, 10} : std::vector{10}) {
    ThreadServer longer(chain_of(certificates));
    Client beyond(test_client_config(), longer.endpoint());
    CHECK(!beyond.channel);
    CHECK(beyond.handshaker.failure_kind() == dtls::FailureKind::untrusted_certificate);
    if (dtls::dtls13_available())
      CHECK(beyond.handshaker.failure() ==
            "the server sent a certificate chain of more than 5 certificates, the most this build's wolfSSL keeps");
  }
}

TEST_CASE("dtls sockets: client certificates, required and checked", "[dtls][client-cert]") {
  dtls::DtlsConfig server_config = test_server_config();
  server_config.require_peer_certificate = true;   // without a CA to check them with: refused, naming the fix
  std::error_code ec;
  std::string reason;
  CHECK(!dtls::DtlsContext::create(server_config, ec, &reason));
  CHECK(reason == "a DTLS server that requires client certificates needs trusted_authorities: the CA that signs "
                  "them (require_client_certificates(config, ca) sets both)");
  server_config = test_server_config();
  dtls::require_client_certificates(server_config, dtls::Pem::file(cert_file("ca.pem")));
  ThreadServer server(server_config);
  {
    Client without(test_client_config(), server.endpoint());
    CHECK(!without.channel);
    CHECK(without.handshaker.failure_kind() == dtls::FailureKind::certificate_required);
    CHECK(without.handshaker.failure() == "the server requires a client certificate, and we sent none");
  }
  dtls::DtlsConfig with = test_client_config();
  with.certificate_chain = dtls::Pem::file(cert_file("client.pem"));
  with.private_key = dtls::Pem::file(cert_file("client.key"));
  Client client(with, server.endpoint());
  INFO(client.handshaker.failure());
  REQUIRE(client.channel);
  CHECK(client.echo("with a certificate") == "with a certificate");
  const dtls::SessionInfo server_seen = client.channel->info();   // who the server proved to be
  REQUIRE(server_seen.peer_certificate);
  CHECK(server_seen.peer_certificate->subject == "O=dgram test, CN=localhost");
  client.close();
}

TEST_CASE("dtls sockets: a wrong pre-shared key cannot complete the handshake", "[dtls][psk][negative]") {
  const std::vector<std::byte> key(16, std::byte{0x42});
  dtls::DtlsConfig server_config;
  server_config.role = dtls::Role::server;
  server_config.verify_peer = false;
  server_config.psk = dtls::PreSharedKey{"id", key};
  server_config.handshake_timeout = 1500ms;
  ThreadServer server(server_config);
  dtls::DtlsConfig client_config;
  client_config.psk = dtls::PreSharedKey{"id", key};
  {
    Client right(client_config, server.endpoint());
    REQUIRE(right.channel);
    CHECK(right.echo("psk") == "psk");
    right.close();
  }
  client_config.psk->key[0] = std::byte{0};
  client_config.handshake_timeout = 1500ms;
  Client wrong(client_config, server.endpoint());
  CHECK(!wrong.channel);
  // Both sides resend on each other's resends; damping keeps that to a few datagrams, not a storm.
  const dtls::EngineStats& stats = wrong.handshaker.last_handshake_stats();
  CHECK(stats.datagrams_out > 1);
  CHECK(stats.datagrams_out < 20);
}

TEST_CASE("dtls sockets: hostile datagrams at the server are dropped and counted; serving continues", "[dtls][negative]") {
  ThreadServer server(test_server_config());
  auto attacker = dgram::UdpSocket::connect(server.endpoint());
  std::error_code ec;
  const std::vector<std::byte> garbage(40, std::byte{0x17});
  attacker.send_to(garbage, {}, ec);
  attacker.send_to(std::vector<std::byte>(3, std::byte{22}), {}, ec);   // truncated record header
  Client client(test_client_config(), server.endpoint());
  REQUIRE(client.channel);
  CHECK(client.echo("still serving") == "still serving");
  client.close();
  server.stop();
  CHECK(server.handshaker().server_stats().dropped_garbage >= 2);
}
