// The DTLS engine pumped client <-> server in memory, in one thread, with a hand-driven clock: handshakes,
// application data, resumption, PSK, loss and reordering of handshake datagrams, and hostile input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/engine_pump.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::dtls::DtlsConfig;
using dgram::dtls::DtlsContext;
using dgram::dtls::Engine;
using dgram::dtls::EngineState;
using dgram::dtls::Listener;
using dgram::dtls::Pem;
using dgram::testing::Datagram;
using dgram::testing::Pump;
using dgram::testing::bytes;

namespace {

std::shared_ptr<DtlsContext> make_context(const DtlsConfig& config) { return dgram::testing::context_for(config); }
// The pump jumps its clock from timer to timer, so a lossy handshake spans minutes of its time: the engine's
// own handshake deadline is put past the pump's (600 s), except where a case tests it.
DtlsConfig with_long_handshake(DtlsConfig config) {
  config.handshake_timeout = std::chrono::minutes(20);
  return config;
}
DtlsConfig client_config() { return with_long_handshake(dgram::testing::test_client_config()); }
DtlsConfig server_config() { return with_long_handshake(dgram::testing::test_server_config()); }
std::string certs(const std::string& name) { return dgram::testing::cert_file(name); }


}  // namespace

TEST_CASE("engine: full handshake with the stateless cookie, then messages both ways", "[dtls][engine]") {
  Pump pump(make_context(client_config()), make_context(server_config()));
  pump.start_client();
  pump.handshake();
  pump.require_established();
  CHECK(pump.listener.stats().hello_verify_requests == 1);
  CHECK(pump.listener.stats().sessions_started == 1);
  CHECK(!pump.client->resumed());
  CHECK(pump.client->cipher() == dgram::testing::default_ecdsa_suite());
  CHECK(pump.client->stats().retransmissions == 0);

  CHECK(Pump::relay(*pump.client, *pump.server, "hello") == "hello");
  CHECK(Pump::relay(*pump.server, *pump.client, "I hear you fashizzle!") == "I hear you fashizzle!");
  std::error_code empty_error;
  pump.client->send({}, empty_error);   // wolfSSL sends no empty records: a clear error, not a silent nothing
  CHECK(empty_error == dgram::errc::empty_message);
  const std::string largest(pump.client->max_message_size(), 'L');
  CHECK(largest.size() >= 1024);
  CHECK(Pump::relay(*pump.client, *pump.server, largest) == largest);
  std::error_code ec;
  pump.client->send(bytes(largest + "x"), ec);
  CHECK(ec == dgram::errc::message_too_large);

  pump.client->close();
  for (const auto& d : pump.client->outgoing()) pump.server->on_datagram(d, pump.now, ec);
  std::vector<std::byte> buffer(100);
  CHECK(!pump.server->take_message(buffer, ec));
  CHECK(pump.server->state() == EngineState::closed);
}

TEST_CASE("engine: the listener answers interleaved first ClientHellos of many peers", "[dtls][engine]") {
  // Many peers' first ClientHellos (message_seq 0) arrive before any of their second ones: each gets its own
  // HelloVerifyRequest (wolfSSL's probe would otherwise take the later ones for repeats and stay silent).
  auto client_context = make_context(client_config());
  std::error_code ec;
  Listener listener(make_context(server_config()), ec);
  REQUIRE(!ec);
  constexpr int peers = 5;
  std::vector<Engine> clients;
  const auto server = dgram::Endpoint::parse("127.0.0.1:11111");
  const dgram::TimePoint now{std::chrono::hours(1)};
  for (int i = 0; i < peers; ++i) {
    clients.push_back(Engine::client(client_context, server, nullptr, ec));
    clients.back().start(now, ec);
  }
  std::vector<Datagram> challenges;
  for (int i = 0; i < peers; ++i) {
    const auto peer = dgram::Endpoint::parse("127.0.0.1:" + std::to_string(40000 + i));
    CHECK(!listener.on_datagram(peer, clients[static_cast<std::size_t>(i)].outgoing().front(), now, ec));
    REQUIRE(listener.replies().size() == 1);
    challenges.push_back(listener.replies().front());
    listener.clear_replies();
  }
  CHECK(listener.stats().hello_verify_requests == peers);
  for (int i = 0; i < peers; ++i) {   // each cookie is for its own peer, and opens a session
    Engine& client = clients[static_cast<std::size_t>(i)];
    client.clear_outgoing();
    client.on_datagram(challenges[static_cast<std::size_t>(i)], now, ec);
    REQUIRE(client.outgoing().size() == 1);
    const auto peer = dgram::Endpoint::parse("127.0.0.1:" + std::to_string(40000 + i));
    CHECK(listener.on_datagram(peer, client.outgoing().front(), now, ec));
  }
  CHECK(listener.stats().sessions_started == peers);
  CHECK(listener.stats().bad_cookies == 0);
}

// A client's ClientHello answering the challenge `issuer` gives it (its second ClientHello, with the cookie).
Datagram hello_with_cookie(Engine& client, Listener& issuer, const dgram::Endpoint& peer, dgram::TimePoint now) {
  std::error_code ec;
  REQUIRE(!issuer.on_datagram(peer, client.outgoing().back(), now, ec));
  REQUIRE(issuer.replies().size() == 1);
  const Datagram challenge = issuer.replies().front();
  issuer.clear_replies();
  client.clear_outgoing();
  client.on_datagram(challenge, now, ec);
  REQUIRE(client.outgoing().size() == 1);
  return client.outgoing().front();
}

TEST_CASE("engine: listeners sharing cookie secrets accept the previous secret's cookies, not older ones",
          "[dtls][engine]") {
  auto client_context = make_context(client_config());
  auto server_context = make_context(server_config());
  auto secrets = std::make_shared<dgram::dtls::CookieSecrets>(1h);
  std::error_code ec;
  Listener issuer(server_context, ec, secrets);   // two workers of one server
  Listener verifier(server_context, ec, secrets);
  Listener stranger(server_context, ec);          // its own secret
  REQUIRE(!ec);
  const auto server = dgram::Endpoint::parse("127.0.0.1:11111");
  const dgram::TimePoint now{std::chrono::hours(1)};
  const auto new_client = [&] {
    Engine client = Engine::client(client_context, server, nullptr, ec);
    client.start(now, ec);
    REQUIRE(!ec);
    return client;
  };
  const auto peer = dgram::Endpoint::parse("127.0.0.1:40000");

  // A cookie from another listener with the same secret opens a session; one with another secret does not.
  Engine first = new_client();
  const Datagram current = hello_with_cookie(first, issuer, peer, now);
  CHECK(!stranger.on_datagram(peer, current, now, ec));
  CHECK(stranger.stats().bad_cookies == 1);
  stranger.clear_replies();
  CHECK(verifier.on_datagram(peer, current, now, ec));

  // Issued just before a rotation: still accepted.
  Engine second = new_client();
  const Datagram previous = hello_with_cookie(second, issuer, peer, now);
  secrets->rotate();
  CHECK(verifier.on_datagram(peer, previous, now, ec));
  CHECK(verifier.stats().bad_cookies == 0);

  // Two rotations ago: a new challenge. (wolfSSL's client ignores a second HelloVerifyRequest, taking it for a
  // repeat of the first: such a client times out. It takes a cookie older than two rotation intervals.)
  Engine third = new_client();
  const Datagram stale = hello_with_cookie(third, issuer, peer, now);
  secrets->rotate();
  secrets->rotate();
  CHECK(!verifier.on_datagram(peer, stale, now, ec));
  CHECK(verifier.stats().bad_cookies == 1);
  REQUIRE(verifier.replies().size() == 1);
  CHECK(dgram::dtls::record::first_handshake_type(verifier.replies().front()) ==
        dgram::dtls::record::HandshakeType::hello_verify_request);
  verifier.clear_replies();
  CHECK(verifier.stats().sessions_started == 2);

  // A new client after the rotations is served by either listener.
  Engine fourth = new_client();
  CHECK(verifier.on_datagram(peer, hello_with_cookie(fourth, issuer, peer, now), now, ec));
}

TEST_CASE("engine: cookie secrets rotate by the clock they are given", "[dtls][engine]") {
  dgram::dtls::CookieSecrets secrets(10s);
  const dgram::TimePoint start{std::chrono::hours(1)};
  const auto generation = secrets.refresh(start);
  CHECK(secrets.refresh(start + 9s) == generation);
  CHECK(!secrets.snapshot().previous);
  CHECK(secrets.refresh(start + 10s) == generation + 1);
  CHECK(secrets.snapshot().previous);
  CHECK(secrets.refresh(start + 19s) == generation + 1);
  CHECK(secrets.refresh(start + 21s) == generation + 2);
}

TEST_CASE("engine: resumption by ticket and by session ID", "[dtls][engine]") {
  for (const bool tickets : {true, false}) {
    INFO("tickets " << tickets);
    DtlsConfig config = client_config();
    config.session_tickets = tickets;
    Pump pump(make_context(config), make_context(server_config()));
    pump.start_client();
    pump.handshake();
    pump.require_established();
    pump.close_and_resume();
    CHECK(pump.client->resumed());
    CHECK(pump.server->resumed());
    CHECK(Pump::relay(*pump.client, *pump.server, "again") == "again");
  }
}

TEST_CASE("engine: pre-shared key handshake; a wrong key fails", "[dtls][engine][psk]") {
  const std::vector<std::byte> key{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5},
                                   std::byte{6}, std::byte{7}, std::byte{8}};
  DtlsConfig client;
  client.role = dgram::dtls::Role::client;
  client.psk = dgram::dtls::PreSharedKey{"dgram-client", key};
  DtlsConfig server;
  server.role = dgram::dtls::Role::server;
  server.verify_peer = false;
  server.psk = client.psk;
  {
    Pump pump(make_context(client), make_context(server));
    pump.start_client();
    pump.handshake();
    pump.require_established();
    CHECK(pump.client->cipher().find("PSK") != std::string::npos);
    CHECK(Pump::relay(*pump.client, *pump.server, "psk") == "psk");
  }
  // A wrong key makes the client's Finished undecryptable, and DTLS drops such records silently; the server
  // notices the second one (the client's retransmission) and fails with an alert that says why.
  {
    auto wrong_key = client;
    wrong_key.psk->key.back() = std::byte{9};
    Pump pump(make_context(wrong_key), make_context(server));
    pump.start_client();
    pump.handshake(std::chrono::seconds(10));
    CHECK(pump.client->state() == EngineState::failed);
    CHECK(pump.client->failure_kind() == dgram::dtls::FailureKind::psk_mismatch);
    REQUIRE(pump.server);
    CHECK(pump.server->state() == EngineState::failed);
    CHECK(pump.server->failure_kind() == dgram::dtls::FailureKind::psk_mismatch);
  }
  // An identity the server does not know: wolfSSL's alert (which it has no text for) is explained.
  auto stranger = client;
  stranger.psk->identity = "stranger";
  Pump pump(make_context(stranger), make_context(server));
  pump.start_client();
  pump.handshake(std::chrono::seconds(10));
  CHECK(pump.client->failure_kind() == dgram::dtls::FailureKind::unknown_psk_identity);
  CHECK(pump.client->failure() == "the server does not know the pre-shared key identity 'stranger'");
  REQUIRE(pump.server);
  CHECK(pump.server->failure() == "the client's pre-shared key identity 'stranger' is unknown here");
}

TEST_CASE("engine: a handshake past handshake_timeout fails on the timer, as timed out, on both sides", "[dtls][engine]") {
  DtlsConfig client = client_config();
  client.handshake_timeout = 3s;
  DtlsConfig server = server_config();
  server.handshake_timeout = 5s;
  Pump pump(make_context(client), make_context(server));
  // The server's first flight never arrives: the client resends its hello at 1 s, 2 s... until its deadline.
  pump.drop = [](Pump::Direction direction, std::size_t index) { return direction == Pump::Direction::to_client && index > 0; };
  pump.start_client();
  const auto started = pump.now;
  pump.handshake();
  REQUIRE(pump.client->state() == EngineState::failed);
  CHECK(pump.client_error == dgram::errc::timeout);
  CHECK(pump.client->failure_kind() == dgram::dtls::FailureKind::timed_out);
  CHECK(pump.client->failure() == "the handshake did not finish within 3 s (the peer stopped answering)");
  CHECK(pump.now - started == 3s);   // at the deadline, not at a resend after it
  REQUIRE(pump.server);   // its cookie verified at once: its own 5 s run from there
  CHECK(pump.server->state() == EngineState::handshaking);
  CHECK(pump.server->next_timer().point() <= started + 5s);
  std::error_code ec;
  pump.server->on_timer(started + 5s - 1ms, ec);
  CHECK(pump.server->state() == EngineState::handshaking);
  pump.server->on_timer(started + 5s, ec);
  CHECK(ec == dgram::errc::timeout);
  CHECK(pump.server->failure() == "the handshake did not finish within 5 s (the peer stopped answering)");
}

TEST_CASE("engine: lost and reordered handshake datagrams are retransmitted on the timer", "[dtls][engine]") {
  SECTION("every first flight datagram is lost once") {
    Pump pump(make_context(client_config()), make_context(server_config()));
    // Lose the first ClientHello, the HelloVerifyRequest, the second ClientHello, and the server's first flight.
    pump.drop = [](Pump::Direction direction, std::size_t index) {
      return direction == Pump::Direction::to_server ? index < 2 || index == 3 : index == 0 || index == 1;
    };
    pump.start_client();
    const auto started = pump.now;
    pump.handshake();
    pump.require_established();
    CHECK(pump.client->stats().retransmissions >= 2);
    CHECK(pump.now - started >= 2s);   // the injected clock moved; nobody slept
    CHECK(Pump::relay(*pump.client, *pump.server, "made it") == "made it");
  }
  SECTION("flights arrive in reverse order") {
    Pump pump(make_context(client_config()), make_context(server_config()));
    pump.shuffle = [](std::deque<Datagram>& flight) { std::reverse(flight.begin(), flight.end()); };
    pump.start_client();
    pump.handshake();
    pump.require_established();
  }
  SECTION("every datagram arrives twice, the copy late") {
    for (const bool resume : {false, true}) {
      Pump pump(make_context(client_config()), make_context(server_config()));
      dgram::dtls::Session session;
      if (resume) {
        pump.start_client();
        pump.handshake();
        pump.require_established();
        session = pump.client->session();
      }
      // Each flight's copies arrive with the next flight that way. collect() shuffles the flight to the
      // server, then the one to the client, every time.
      std::array<std::deque<Datagram>, 2> late;
      std::size_t shuffles = 0;
      pump.shuffle = [&](std::deque<Datagram>& flight) {
        std::deque<Datagram>& copies = late[shuffles++ % 2];
        std::deque<Datagram> fresh = flight;
        flight.insert(flight.begin(), copies.begin(), copies.end());
        copies = std::move(fresh);
      };
      pump.start_client(resume ? &session : nullptr);
      pump.handshake();
      pump.require_established();
      CHECK(pump.client->resumed() == resume);
      for (const auto& copy : late[0]) pump.deliver_to_server(copy);   // the last copies, after the handshake
      for (const auto& copy : late[1]) pump.deliver(*pump.client, copy, pump.client_error);
      CHECK(Pump::relay(*pump.client, *pump.server, "still here") == "still here");
      CHECK(Pump::relay(*pump.server, *pump.client, "and here") == "and here");
      CHECK(pump.client->state() == EngineState::established);
      CHECK(pump.server->state() == EngineState::established);
    }
  }
  SECTION("copies of every handshake datagram, in any order, after the handshake") {
    Pump pump(make_context(client_config()), make_context(server_config()));
    std::array<std::vector<Datagram>, 2> sent;   // to the server, to the client
    std::size_t shuffles = 0;
    pump.shuffle = [&](std::deque<Datagram>& flight) {
      auto& log = sent[shuffles++ % 2];
      log.insert(log.end(), flight.begin(), flight.end());
    };
    pump.start_client();
    pump.handshake();
    pump.require_established();
    for (int round = 0; round < 2; ++round) {
      for (const auto& copy : sent[0]) pump.deliver_to_server(copy);
      for (const auto& copy : sent[1]) pump.deliver(*pump.client, copy, pump.client_error);
      std::reverse(sent[0].begin(), sent[0].end());
      std::reverse(sent[1].begin(), sent[1].end());
      INFO("server: " << pump.server->failure() << " client: " << pump.client->failure());
      CHECK(Pump::relay(*pump.client, *pump.server, "still here") == "still here");
      CHECK(Pump::relay(*pump.server, *pump.client, "and here") == "and here");
    }
  }
  SECTION("a resent ClientHello overtaken by the rest of the handshake") {
    Pump pump(make_context(client_config()), make_context(server_config()));
    std::optional<Datagram> held;
    // The server's first flight is lost; the client resends its ClientHello on its timer (to_server #2), and
    // that resend is held back until both sides are established.
    pump.drop = [&](Pump::Direction direction, std::size_t index) { return direction == Pump::Direction::to_client && index == 1; };
    pump.shuffle = [&, shuffles = std::size_t{0}, sent = std::size_t{0}](std::deque<Datagram>& flight) mutable {
      if (shuffles++ % 2 != 0) return;
      for (auto it = flight.begin(); it != flight.end();) {
        if (sent++ == 2) {
          held = *it;
          it = flight.erase(it);
        } else {
          ++it;
        }
      }
    };
    pump.start_client();
    pump.handshake();
    pump.require_established();
    REQUIRE(held);
    pump.deliver_to_server(*held);
    INFO("server: " << pump.server->failure());
    CHECK(pump.server->state() == EngineState::established);
    CHECK(Pump::relay(*pump.client, *pump.server, "still here") == "still here");
  }
  SECTION("the server's last flight is lost: the client retransmits and the server answers again") {
    Pump pump(make_context(client_config()), make_context(server_config()));
    bool dropped = false;
    pump.drop = [&](Pump::Direction direction, std::size_t) {
      // The server's Finished flight is the first datagram to the client after the server is established.
      if (direction == Pump::Direction::to_client && !dropped && pump.server &&
          pump.server->state() == EngineState::established) {
        dropped = true;
        return true;
      }
      return false;
    };
    pump.start_client();
    pump.handshake();
    pump.require_established();
    CHECK(dropped);
    CHECK(pump.client->stats().retransmissions >= 1);
  }
}

TEST_CASE("engine: a client that trusts another CA fails with the certificate's verdict", "[dtls][engine]") {
  DtlsConfig config = client_config();
  config.trusted_authorities = {Pem::file(certs("client.pem"))};   // not the CA that signed the server
  Pump pump(make_context(config), make_context(server_config()));
  pump.start_client();
  pump.handshake();
  CHECK(pump.client->state() == EngineState::failed);
  CHECK(pump.client_error.category().name() == std::string("wolfssl"));
  CHECK(!pump.client->failure().empty());
}

TEST_CASE("engine: a wrong server name fails the handshake", "[dtls][engine]") {
  for (const char* name : {"not-localhost.example", "10.1.2.3"}) {
    INFO(name);
    DtlsConfig config = client_config();
    config.expected_server_name = name;
    Pump pump(make_context(config), make_context(server_config()));
    pump.start_client();
    pump.handshake();
    CHECK(pump.client->state() == EngineState::failed);
  }
  DtlsConfig by_address = client_config();
  by_address.expected_server_name = "127.0.0.1";   // in the certificate's SAN
  Pump pump(make_context(by_address), make_context(server_config()));
  pump.start_client();
  pump.handshake();
  pump.require_established();
}

TEST_CASE("engine: hostile datagrams are dropped and counted", "[dtls][engine]") {
  Pump pump(make_context(client_config()), make_context(server_config()));
  std::error_code ec;
  // At the listener: garbage, a truncated record, and application data from a peer without a session.
  const Datagram garbage{std::byte{0xde}, std::byte{0xad}, std::byte{0xbe}, std::byte{0xef}};
  CHECK(!pump.listener.on_datagram(pump.client_endpoint, garbage, pump.now, ec));
  pump.start_client();
  Datagram hello = pump.client->outgoing().front();
  Datagram truncated(hello.begin(), hello.begin() + 20);
  CHECK(!pump.listener.on_datagram(pump.client_endpoint, truncated, pump.now, ec));
  CHECK(pump.listener.stats().dropped_datagrams == 2);
  CHECK(pump.listener.replies().empty());

  // A ClientHello carrying a forged cookie is answered with a fresh challenge, and counted.
  pump.client->clear_outgoing();
  CHECK(!pump.listener.on_datagram(pump.client_endpoint, hello, pump.now, ec));   // the real first hello
  REQUIRE(pump.listener.replies().size() == 1);
  pump.listener.clear_replies();
  Datagram forged = hello;
  // Insert a 32-byte cookie of zeros: rebuild the hello with cookie length 32 where it was 0.
  const std::size_t cookie_at = 13 + 12 + 2 + 32 + 1 + static_cast<std::size_t>(hello[13 + 12 + 2 + 32]);
  forged.insert(forged.begin() + static_cast<std::ptrdiff_t>(cookie_at) + 1, 32, std::byte{0});
  forged[cookie_at] = std::byte{32};
  auto grow = [&](std::size_t at, std::size_t width) {
    std::size_t value = 0;
    for (std::size_t i = 0; i < width; ++i) value = value << 8 | static_cast<std::size_t>(forged[at + i]);
    value += 32;
    for (std::size_t i = width; i-- > 0; value >>= 8) forged[at + i] = static_cast<std::byte>(value & 0xff);
  };
  grow(11, 2);        // record length
  grow(13 + 1, 3);    // handshake length
  grow(13 + 9, 3);    // fragment length
  CHECK(!pump.listener.on_datagram(pump.client_endpoint, forged, pump.now, ec));
  CHECK(pump.listener.stats().bad_cookies == 1);
  CHECK(pump.listener.replies().size() == 1);   // another HelloVerifyRequest, no session
  pump.listener.clear_replies();

  // The real handshake still works afterwards, and garbage and replays on a session are dropped.
  pump.start_client();
  pump.handshake();
  pump.require_established();
  pump.client->send(bytes("once"), ec);
  const Datagram record = pump.client->outgoing().front();
  pump.client->clear_outgoing();
  std::vector<std::byte> buffer(pump.server->max_message_size());
  pump.server->on_datagram(record, pump.now, ec);
  CHECK(pump.server->take_message(buffer, ec) == 4u);
  const auto dropped_before = pump.server->stats().dropped_datagrams;
  pump.server->on_datagram(record, pump.now, ec);    // replayed
  pump.server->on_datagram(garbage, pump.now, ec);   // not DTLS
  Datagram flipped = record;
  flipped.back() ^= std::byte{1};                    // bad MAC
  pump.server->on_datagram(flipped, pump.now, ec);
  CHECK(!pump.server->take_message(buffer, ec));
  CHECK(!ec);
  CHECK(pump.server->stats().dropped_datagrams == dropped_before + 3);
  CHECK(pump.server->state() == EngineState::established);
  CHECK(Pump::relay(*pump.client, *pump.server, "still here") == "still here");
}

namespace {

// Every way the soak's path damages a datagram, at every byte: a bit flipped (low and high), the byte
// replaced, the datagram cut there, bytes appended.
std::vector<Datagram> damaged_copies(const Datagram& original) {
  std::vector<Datagram> copies;
  for (std::size_t at = 0; at < original.size(); ++at) {
    for (const std::byte mask : {std::byte{0x01}, std::byte{0x80}, std::byte{0xff}}) {
      copies.push_back(original);
      copies.back()[at] ^= mask;
    }
    copies.emplace_back(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(at));
  }
  copies.push_back(original);
  copies.back().insert(copies.back().end(), 7, std::byte{0x16});
  // The record sequence number (bytes 5 to 10) set to values around wolfSSL's 64-record window, and far off.
  for (std::uint64_t sequence : {1ull, 2ull, 31ull, 32ull, 63ull, 64ull, 65ull, 1000ull, 1ull << 32, (1ull << 48) - 1}) {
    copies.push_back(original);
    for (std::size_t at = 10; at >= 5; --at, sequence >>= 8) copies.back()[at] = static_cast<std::byte>(sequence & 0xff);
  }
  return copies;
}

}  // namespace

TEST_CASE("engine: no damaged ClientHello leaves the listener unable to answer the next peer", "[dtls][engine]") {
  // The probe that answers ClientHellos is shared by every peer: a hello it neither answered nor failed on must
  // not leave it in a state that ignores the next peer's (a server that silently stopped taking handshakes).
  std::vector<dgram::dtls::Version> versions{dgram::dtls::Version::dtls1_2};
  if (dgram::dtls::dtls13_available()) versions.push_back(dgram::dtls::Version::dtls1_3);
  const auto version = GENERATE_COPY(from_range(versions));
  INFO("DTLS " << (version == dgram::dtls::Version::dtls1_2 ? "1.2" : "1.3"));
  DtlsConfig client_side = client_config();
  DtlsConfig server_side = server_config();
  client_side.version = server_side.version = version;
  auto client_context = make_context(client_side);
  std::error_code ec;
  Listener listener(make_context(server_side), ec);
  REQUIRE(!ec);
  const auto server = dgram::Endpoint::parse("127.0.0.1:11111");
  const auto attacker = dgram::Endpoint::parse("127.0.0.1:40000");
  const dgram::TimePoint now{std::chrono::hours(1)};
  Engine first = Engine::client(client_context, server, nullptr, ec);
  first.start(now, ec);
  const Datagram first_hello = first.outgoing().front();
  const Datagram second_hello = hello_with_cookie(first, listener, attacker, now);

  int port = 40001;
  for (const Datagram* original : {&first_hello, &second_hello}) {
    const std::vector<Datagram> copies = damaged_copies(*original);
    for (std::size_t i = 0; i < copies.size(); ++i) {
      const Datagram& damaged = copies[i];
      INFO((original == &first_hello ? "first" : "second") << " ClientHello, damaged copy " << i);
      listener.on_datagram(attacker, damaged, now, ec);
      INFO("the damaged copy got " << listener.replies().size() << " replies, error '" << ec.message() << "'");
      listener.clear_replies();
      // A fresh peer's first ClientHello is answered with its challenge, and its cookie opens a session.
      const auto peer = dgram::Endpoint::parse("127.0.0.1:" + std::to_string(port++ % 60000 + 1024));
      Engine client = Engine::client(client_context, server, nullptr, ec);
      client.start(now, ec);
      const Datagram cookie_hello = hello_with_cookie(client, listener, peer, now);
      REQUIRE(listener.on_datagram(peer, cookie_hello, now, ec));
      listener.clear_replies();
    }
  }
}

TEST_CASE("engine: a handshake message whose type was altered on the way is named as such", "[dtls][engine]") {
  // DTLS 1.2 protects the handshake only with the Finished exchange: a ServerKeyExchange that arrives as a
  // second Certificate (wolfSSL: duplicate message) or as a Finished (out of order) ends the handshake, and the
  // failure says what probably happened instead of wolfSSL's bare error name.
  const auto [from, to] = GENERATE(table<std::uint8_t, std::uint8_t>({{12, 11}, {12, 20}}));
  INFO("handshake type " << int{from} << " altered to " << int{to});
  Pump pump(make_context(client_config()), make_context(server_config()));
  bool altered = false;
  pump.shuffle = [&, from = from, to = to](std::deque<Datagram>& flight) {
    namespace record = dgram::dtls::record;
    for (Datagram& datagram : flight) {
      std::span<const std::byte> rest(datagram);
      while (const auto found = altered ? std::nullopt : record::next_record(rest)) {
        const bool plaintext_handshake = found->content_type == 22 && record::read16(found->header.subspan(3)) == 0;
        if (plaintext_handshake && !found->fragment.empty() && found->fragment[0] == std::byte{from}) {
          datagram[static_cast<std::size_t>(found->fragment.data() - datagram.data())] = std::byte{to};
          altered = true;
        }
      }
    }
  };
  pump.start_client();
  pump.handshake();
  REQUIRE(altered);
  INFO("client state " << static_cast<int>(pump.client->state()) << ", failure: " << pump.client->failure());
  // wolfSSL 5.5 drops an unencrypted "Finished" as out of place, and the resent flight completes the handshake.
  if (to == 20 && pump.client->state() == EngineState::established) return;
  CHECK(pump.client->state() == EngineState::failed);
  CHECK_THAT(pump.client->failure(), Catch::Matchers::Contains("altered on the way"));
}

TEST_CASE("engine: who the peer proved to be: certificates both ways, also on a resumed session (by session ID)", "[dtls][engine][identity]") {
  std::vector<dgram::dtls::Version> versions{dgram::dtls::Version::dtls1_2};
  if (dgram::dtls::dtls13_available()) versions.push_back(dgram::dtls::Version::dtls1_3);
  for (const auto version : versions) {
    for (const bool tickets : {true, false}) {
      INFO("DTLS 1." << (version == dgram::dtls::Version::dtls1_2 ? 2 : 3) << ", tickets " << tickets);
      DtlsConfig client = client_config();
      client.version = version;
      client.session_tickets = tickets;
      client.certificate_chain = Pem::file(certs("client.pem"));
      client.private_key = Pem::file(certs("client.key"));
      DtlsConfig server = server_config();
      server.version = version;
      dgram::dtls::require_client_certificates(server, Pem::file(certs("ca.pem")));
      Pump pump(make_context(client), make_context(server));
      dgram::dtls::Session saved;
      std::string first_fingerprint;
      for (const bool resume : {false, true}) {
        INFO("resumed " << resume);
        pump.start_client(resume ? &saved : nullptr);
        pump.handshake();
        pump.require_established();
        CHECK(Pump::relay(*pump.client, *pump.server, "who") == "who");   // (a DTLS 1.3 ticket comes with it)
        CHECK(Pump::relay(*pump.server, *pump.client, "me") == "me");
        if (!resume) saved = pump.client->session();
        REQUIRE(saved);
        const dgram::dtls::SessionInfo seen_by_server = pump.server->info();
        REQUIRE(seen_by_server.peer_certificate);
        CHECK(seen_by_server.peer_certificate->subject == "O=dgram test, CN=dgram test client");
        CHECK(seen_by_server.peer_certificate->names.empty());
        CHECK(seen_by_server.peer_certificate->issuer == "O=dgram test, CN=dgram test CA");
        CHECK(seen_by_server.peer_certificate->sha256.size() == 64);
        CHECK(seen_by_server.psk_identity.empty());
        CHECK(dgram::dtls::identity_of(seen_by_server).starts_with("certificate O=dgram test, CN=dgram test client"));
        if (resume) CHECK(seen_by_server.peer_certificate->sha256 == first_fingerprint);
        first_fingerprint = seen_by_server.peer_certificate->sha256;
        const dgram::dtls::SessionInfo seen_by_client = pump.client->info();
        REQUIRE(seen_by_client.peer_certificate);
        CHECK(seen_by_client.peer_certificate->subject == "O=dgram test, CN=localhost");
        std::vector<std::string> names = seen_by_client.peer_certificate->names;
        std::sort(names.begin(), names.end());
        CHECK(names == std::vector<std::string>{"127.0.0.1", "::1", "localhost"});
        CHECK(seen_by_client.peer_certificate->sha256 != seen_by_server.peer_certificate->sha256);
        // A server that asks for client certificates resumes by session ID only (a ticket does not keep the
        // certificate): DTLS 1.2 resumes, DTLS 1.3 (tickets only) makes a full handshake again.
        CHECK(pump.client->resumed() == (resume && version == dgram::dtls::Version::dtls1_2));
        pump.client->close();
      }
    }
  }
}

TEST_CASE("engine: a server asks for client certificates only when told, and names only what it verified", "[dtls][engine][identity]") {
  DtlsConfig with_certificate = client_config();
  with_certificate.certificate_chain = Pem::file(certs("client.pem"));
  with_certificate.private_key = Pem::file(certs("client.key"));
  const auto established_pump = [](const DtlsConfig& client, const DtlsConfig& server) {
    auto pump = std::make_unique<Pump>(make_context(client), make_context(server));
    pump->start_client();
    pump->handshake();
    pump->require_established();
    return pump;
  };
  SECTION("verify_peer with a CA: asked and verified when sent; a client without one is served, unnamed") {
    DtlsConfig server = server_config();
    server.verify_peer = true;
    server.trusted_authorities.push_back(Pem::file(certs("ca.pem")));
    CHECK(established_pump(with_certificate, server)->server->info().peer_certificate);
    const auto anonymous = established_pump(client_config(), server);
    CHECK(!anonymous->server->info().peer_certificate);
    CHECK(dgram::dtls::identity_of(anonymous->server->info()) == "not authenticated");
  }
  SECTION("verify_peer without a CA: nobody is asked") {
    DtlsConfig server = server_config();
    server.verify_peer = true;
    CHECK(!established_pump(with_certificate, server)->server->info().peer_certificate);
  }
  SECTION("a client that does not verify its server names no certificate") {
    DtlsConfig trusting = client_config();
    trusting.verify_peer = false;
    const auto pump = established_pump(trusting, server_config());
    CHECK(!pump->client->info().peer_certificate);
    CHECK(established_pump(client_config(), server_config())->client->info().peer_certificate);
  }
}

TEST_CASE("engine: a PSK session resumed on a server with a certificate says its identity was not kept", "[dtls][engine][identity][psk]") {
  const std::vector<std::byte> key(16, std::byte{0x5a});
  DtlsConfig server = server_config();
  server.psk = dgram::dtls::PreSharedKey{"device-9", key};
  DtlsConfig client = with_long_handshake(DtlsConfig{});
  client.psk = dgram::dtls::PreSharedKey{"device-9", key};
  client.session_tickets = false;
  Pump pump(make_context(client), make_context(server));
  pump.start_client();
  pump.handshake();
  pump.require_established();
  CHECK(dgram::dtls::identity_of(pump.server->info()) == "PSK identity device-9");
  pump.close_and_resume();
  REQUIRE(pump.server->resumed());
  CHECK(pump.server->info().psk_identity.empty());   // wolfSSL's session does not keep it
  CHECK(dgram::dtls::identity_of(pump.server->info()) == "PSK session resumed, identity not kept");
}

TEST_CASE("engine: keying-material exporter and DTLS-SRTP keys: both sides derive the same bytes", "[dtls][engine][srtp]") {
  using dgram::dtls::Version;
  if (!dgram::dtls::srtp_available()) {   // Debian's wolfSSL: asking is refused by name
    DtlsConfig config = client_config();
    config.srtp_profiles = "SRTP_AES128_CM_SHA1_80";
    std::error_code ec;
    std::string reason;
    CHECK(!dgram::dtls::DtlsContext::create(config, ec, &reason));
    CHECK(reason.find("has no DTLS-SRTP") != std::string::npos);
    return;
  }
  std::vector<Version> versions{Version::dtls1_2};
  if (dgram::dtls::dtls13_available()) versions.push_back(Version::dtls1_3);
  for (const Version version : versions) {
    INFO((version == Version::dtls1_3 ? "DTLS 1.3" : "DTLS 1.2"));
    DtlsConfig client = client_config();
    DtlsConfig server = server_config();
    client.version = server.version = version;
    client.srtp_profiles = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";
    server.srtp_profiles = "SRTP_AES128_CM_SHA1_32:SRTP_AEAD_AES_128_GCM";   // one in common
    Pump pump(make_context(client), make_context(server));
    pump.start_client();
    pump.handshake();
    pump.require_established();
    // The stateless cookie exchange still runs (wolfSSL skips DTLS 1.2's when its server has SRTP profiles).
    CHECK(pump.listener.stats().hello_verify_requests == 1);
    CHECK(pump.client->info().srtp_profile == "SRTP_AEAD_AES_128_GCM");
    CHECK(pump.server->info().srtp_profile == "SRTP_AEAD_AES_128_GCM");
    std::error_code ec;
    const auto client_keys = pump.client->srtp_keying_material(ec);
    REQUIRE(!ec);
    CHECK(client_keys.size() == 2 * (16 + 12));   // two AES-128 keys and two 96-bit salts (RFC 7714)
    CHECK(pump.server->srtp_keying_material(ec) == client_keys);
    const std::vector<std::byte> context(7, std::byte{0x42});
    const auto exported = pump.client->export_keying_material("EXPERIMENTAL dgram test", context, 32, ec);
    REQUIRE(!ec);
    CHECK(exported.size() == 32);
    CHECK(pump.server->export_keying_material("EXPERIMENTAL dgram test", context, 32, ec) == exported);
    CHECK(pump.server->export_keying_material("EXPERIMENTAL dgram test", std::nullopt, 32, ec) != exported);
    CHECK(pump.client->export_keying_material("EXPERIMENTAL other label", context, 32, ec) != exported);
    CHECK(exported != client_keys);
    // A label TLS reserves for itself is refused.
    CHECK(pump.client->export_keying_material("master secret", std::nullopt, 32, ec).empty());
    CHECK(ec == dgram::errc::invalid_argument);
  }
  // Without the exporter asked for, nothing is kept to export from: refused, not wrong bytes.
  Pump plain(make_context(client_config()), make_context(server_config()));
  plain.start_client();
  plain.handshake();
  plain.require_established();
  std::error_code ec;
  CHECK(plain.client->export_keying_material("EXPERIMENTAL dgram test", std::nullopt, 32, ec).empty());
  CHECK(ec == dgram::errc::invalid_argument);
  CHECK(plain.client->info().srtp_profile.empty());
  CHECK(plain.client->srtp_keying_material(ec).empty());
  // Profiles in common: none; the session goes on without DTLS-SRTP.
  DtlsConfig client = client_config();
  DtlsConfig server = server_config();
  client.srtp_profiles = "SRTP_AES128_CM_SHA1_32";
  server.srtp_profiles = "SRTP_AEAD_AES_256_GCM";
  Pump apart(make_context(client), make_context(server));
  apart.start_client();
  apart.handshake();
  apart.require_established();
  CHECK(apart.server->info().srtp_profile.empty());
  // A name wolfSSL would skip without a word is refused.
  client.srtp_profiles = "SRTP_AES128_CM_SHA1_80:SRTP_AES_999";
  std::string reason;
  CHECK(!dgram::dtls::DtlsContext::create(client, ec, &reason));
  CHECK(reason.find("SRTP profile 'SRTP_AES_999'") != std::string::npos);
}
