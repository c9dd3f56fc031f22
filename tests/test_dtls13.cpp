// DTLS 1.3 and Connection IDs on the engine, pumped in memory: the stateless HelloRetryRequest cookie,
// version choice, resumption by ticket, pre-shared keys, client certificates, CIDs, hostile records. In a
// build whose wolfSSL lacks DTLS 1.3 (Debian's), each case checks instead that asking for it is a clear error.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/engine_pump.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::dtls::DtlsConfig;
using dgram::dtls::DtlsContext;
using dgram::dtls::EngineState;
using dgram::dtls::FailureKind;
using dgram::dtls::Version;
using dgram::testing::Datagram;
using dgram::testing::Pump;
namespace record = dgram::dtls::record;

namespace {

std::shared_ptr<DtlsContext> make_context(const DtlsConfig& config) { return dgram::testing::context_for(config); }

DtlsConfig with_version(DtlsConfig config, Version version, bool connection_id = false) {
  config.version = version;
  config.connection_id = connection_id;
  return config;
}
DtlsConfig client13(bool connection_id = false) {
  return with_version(dgram::testing::test_client_config(), Version::dtls1_3, connection_id);
}
DtlsConfig server13(bool connection_id = false) {
  return with_version(dgram::testing::test_server_config(), Version::dtls1_3, connection_id);
}

// The reason a context for `config` is refused, or "" when it is made.
std::string refusal(const DtlsConfig& config) {
  std::error_code ec;
  std::string reason;
  const auto context = DtlsContext::create(config, ec, &reason);
  return context ? std::string() : reason;
}

// True when this build has DTLS 1.3. Otherwise checks that asking for it is refused with a reason that says
// what is missing and how to get it, and the caller's case ends there.
bool dtls13_here() {
  if (dgram::dtls::dtls13_available()) return true;
  CHECK(refusal(client13()).find("has no DTLS 1.3 (configure dgram with -Dwolfssl=optimized)") != std::string::npos);
  CHECK(refusal(with_version(dgram::testing::test_server_config(), Version::any)).find("has no DTLS 1.3") !=
        std::string::npos);
  CHECK(refusal(with_version(dgram::testing::test_server_config(), Version::dtls1_2, true))
            .find("has no Connection IDs") != std::string::npos);
  return false;
}

void handshake_established(Pump& pump, const dgram::dtls::Session* resume = nullptr) {
  pump.start_client(resume);
  pump.handshake();
  pump.require_established();
}

// The first datagram the client sends, for tests that drive the Listener by hand.
Datagram first_client_hello(const DtlsConfig& config, const dgram::Endpoint& server) {
  std::error_code ec;
  auto client = dgram::dtls::Engine::client(make_context(config), server, nullptr, ec);
  REQUIRE(!ec);
  client.start({}, ec);
  REQUIRE(!ec);
  REQUIRE(client.outgoing().size() == 1);
  return client.outgoing().front();
}

// Where the cookie extension (type 44) of a ClientHello datagram starts: found by its type and a length that
// fits, which is enough for a test that made the datagram itself.
std::size_t cookie_extension_offset(const Datagram& hello) {
  for (std::size_t at = record::header_size + record::handshake_header_size; at + 6 <= hello.size(); ++at) {
    const auto from = std::span(hello).subspan(at);
    const auto type = record::read16(from);
    const auto length = record::read16(from.subspan(2));
    const auto inner = record::read16(from.subspan(4));
    if (type == 44 && length > 2 && inner + 2 == length && at + 4 + length <= hello.size()) return at;
  }
  FAIL("no cookie extension");
  return 0;
}

// A full handshake, then the client's session with the ticket the server sends after the handshake.
dgram::dtls::Session session_with_ticket(const std::shared_ptr<DtlsContext>& client_context,
                                         const std::shared_ptr<DtlsContext>& server_context) {
  Pump first(client_context, server_context);
  handshake_established(first);
  // The ticket comes with the server's first records after the handshake: read them before saving the session.
  CHECK(Pump::relay(*first.server, *first.client, "ticket") == "ticket");
  first.collect();
  while (!first.to_client.empty()) {
    first.deliver(*first.client, first.to_client.front(), first.client_error);
    first.to_client.pop_front();
  }
  auto session = first.client->session();
  REQUIRE(session);
  return session;
}

// Starts `pump`'s client resuming `session`; what its first hello offers.
record::ClientHelloFacts start_resuming(Pump& pump, const dgram::dtls::Session& session) {
  pump.start_client(&session);
  REQUIRE(pump.client->outgoing().size() == 1);
  const auto hello = record::client_hello(pump.client->outgoing().front());
  REQUIRE(hello);
  return *hello;
}

}  // namespace

TEST_CASE("dtls 1.3: a build without it refuses to pretend", "[dtls13]") {
  if (!dtls13_here()) return;
  // With DTLS 1.3 here, Connection IDs come for both versions (DTLS 1.2's by RFC 9146).
  CHECK(refusal(with_version(dgram::testing::test_server_config(), Version::dtls1_2, true)).empty());
  CHECK(refusal(server13(true)).empty());
}

TEST_CASE("dtls 1.3: handshake through the stateless HelloRetryRequest cookie, then messages", "[dtls13]") {
  if (!dtls13_here()) return;
  Pump pump(make_context(client13()), make_context(server13()));
  handshake_established(pump);
  CHECK(pump.listener.stats().hello_verify_requests == 1);   // one HelloRetryRequest with a cookie
  CHECK(pump.listener.stats().sessions_started == 1);
  CHECK(pump.client->version() == "DTLSv1.3");
  CHECK(pump.server->version() == "DTLSv1.3");
  CHECK(pump.client->cipher() == "TLS13-AES128-GCM-SHA256");   // wolfSSL's name (wolfSSL_get_cipher_name)
  CHECK(!pump.client->resumed());
  CHECK(!pump.client->connection_id_in_use());
  CHECK(Pump::relay(*pump.client, *pump.server, "hello 1.3") == "hello 1.3");
  CHECK(Pump::relay(*pump.server, *pump.client, "and back") == "and back");
  const std::string largest(pump.client->max_message_size(), 'L');
  CHECK(Pump::relay(*pump.client, *pump.server, largest) == largest);
}

TEST_CASE("dtls 1.3: no state before a valid cookie; a forged cookie is refused and counted", "[dtls13]") {
  if (!dtls13_here()) return;
  const auto server_context = make_context(server13());
  std::error_code ec;
  dgram::dtls::Listener listener(server_context, ec);
  REQUIRE(!ec);
  const auto peer = dgram::Endpoint::parse("127.0.0.1:40001");
  const auto server = dgram::Endpoint::parse("127.0.0.1:11111");

  // 1000 peers' first ClientHellos: each gets a HelloRetryRequest, none a session.
  const Datagram hello = first_client_hello(client13(), server);
  CHECK(!record::client_hello(hello)->has_cookie);
  for (int i = 0; i < 1000; ++i) {
    const auto from = dgram::Endpoint::parse("127.0.0." + std::to_string(1 + i % 200) + ":" + std::to_string(2000 + i));
    CHECK(!listener.on_datagram(from, hello, {}, ec));
    REQUIRE(listener.replies().size() == 1);
    CHECK(record::starts_with_hello_retry_request(listener.replies().front()));
    listener.clear_replies();
  }
  CHECK(listener.stats().hello_verify_requests == 1000);
  CHECK(listener.stats().sessions_started == 0);

  // A client answers its HelloRetryRequest; its second ClientHello carries the cookie extension. Sent from
  // another address, or with a byte of the cookie changed, it opens nothing.
  std::error_code client_ec;
  auto client = dgram::dtls::Engine::client(make_context(client13()), server, nullptr, client_ec);
  client.start({}, client_ec);
  CHECK(!listener.on_datagram(peer, client.outgoing().front(), {}, ec));
  const Datagram retry = listener.replies().front();
  listener.clear_replies();
  client.clear_outgoing();
  client.on_datagram(retry, {}, client_ec);
  REQUIRE(!client_ec);
  REQUIRE(client.outgoing().size() == 1);
  const Datagram with_cookie = client.outgoing().front();
  REQUIRE(record::client_hello(with_cookie)->has_cookie);

  CHECK(!listener.on_datagram(dgram::Endpoint::parse("127.0.0.2:40001"), with_cookie, {}, ec));
  INFO(ec.message() << " / " << listener.failure());
  CHECK(listener.stats().bad_cookies == 1);
  CHECK(listener.stats().failed_handshakes == 0);
  listener.clear_replies();
  Datagram forged = with_cookie;
  forged[cookie_extension_offset(forged) + 6] ^= std::byte{0x01};   // a byte of the cookie itself
  CHECK(!listener.on_datagram(peer, forged, {}, ec));
  listener.clear_replies();
  CHECK(listener.stats().bad_cookies == 2);
  CHECK(listener.stats().sessions_started == 0);

  // The genuine one, from the address the cookie was made for, opens the session.
  auto engine = listener.on_datagram(peer, with_cookie, {}, ec);
  INFO(listener.failure());
  REQUIRE(engine);
  CHECK(listener.stats().sessions_started == 1);
}

TEST_CASE("dtls 1.3: version choice: any prefers 1.3 and accepts 1.2; 1.3 alone refuses 1.2", "[dtls13]") {
  if (!dtls13_here()) return;
  const auto client_any = with_version(dgram::testing::test_client_config(), Version::any);
  const auto server_any = with_version(dgram::testing::test_server_config(), Version::any);
  const auto client12 = dgram::testing::test_client_config();
  const auto server12 = dgram::testing::test_server_config();
  {
    Pump pump(make_context(client_any), make_context(server_any));
    handshake_established(pump);
    CHECK(pump.client->version() == "DTLSv1.3");
  }
  {
    Pump pump(make_context(client12), make_context(server_any));
    handshake_established(pump);
    CHECK(pump.server->version() == "DTLSv1.2");
    CHECK(pump.server->cipher() == dgram::testing::default_ecdsa_suite());
    CHECK(Pump::relay(*pump.client, *pump.server, "old") == "old");
  }
  {
    Pump pump(make_context(client_any), make_context(server12));
    handshake_established(pump);
    CHECK(pump.client->version() == "DTLSv1.2");
  }
  for (const bool newer_client : {true, false}) {   // 1.3 only against 1.2 only, both ways round
    INFO((newer_client ? "a DTLS 1.3 client, a DTLS 1.2 server" : "a DTLS 1.2 client, a DTLS 1.3 server"));
    Pump pump(make_context(newer_client ? client13() : client12), make_context(newer_client ? server12 : server13()));
    pump.start_client();
    pump.handshake(10s);
    CHECK(pump.client->state() == EngineState::failed);
    INFO(pump.client->failure());
    CHECK(pump.client->failure_kind() == FailureKind::version_mismatch);
    CHECK(pump.client->failure().find("speaks none of the DTLS versions we do") != std::string::npos);
  }
}

TEST_CASE("dtls 1.3: resumption by ticket (the ticket arrives after the handshake)", "[dtls13]") {
  if (!dtls13_here()) return;
  const auto client_context = make_context(client13());
  const auto server_context = make_context(server13());
  const auto session = session_with_ticket(client_context, server_context);

  Pump second(client_context, server_context);
  handshake_established(second, &session);
  CHECK(second.client->resumed());
  CHECK(second.server->resumed());
  CHECK(Pump::relay(*second.client, *second.server, "again") == "again");
}

TEST_CASE("dtls 1.3: resumption on the ticket's key alone (psk_ke) on both sides; a refused ticket goes on in "
          "full", "[dtls13]") {
  if (!dtls13_here()) return;
  auto client_config = client13();
  client_config.psk_forward_secrecy = false;
  auto server_config = server13();
  server_config.psk_forward_secrecy = false;
  const auto client_context = make_context(client_config);
  // A psk_ke server, and the default one (psk_dhe_ke preferred: it serves a client that offers psk_ke only).
  for (const bool server_psk_ke : {true, false}) {
    INFO("server psk_ke only: " << server_psk_ke);
    const auto server_context = make_context(server_psk_ke ? server_config : server13());
    const auto session = session_with_ticket(client_context, server_context);
    Pump again(client_context, server_context);
    const auto hello = start_resuming(again, session);
    CHECK(hello.has_pre_shared_key);
    CHECK(!hello.offers_psk_dhe_ke);   // psk_ke only
    again.handshake();
    again.require_established();
    CHECK(again.client->resumed());
    CHECK(Pump::relay(*again.client, *again.server, "after") == "after");
  }
  // A client with the default setting offers both modes and follows a psk_ke server.
  {
    const auto server_context = make_context(server_config);
    const auto default_client = make_context(client13());
    const auto session = session_with_ticket(default_client, server_context);
    Pump again(default_client, server_context);
    CHECK(start_resuming(again, session).offers_psk_dhe_ke);
    again.handshake();
    again.require_established();
    CHECK(again.client->resumed());
  }
  // A ticket another server issued: refused, and the handshake goes on in full with the hello's key share.
  const auto session = session_with_ticket(client_context, make_context(server_config));
  Pump elsewhere(client_context, make_context(server_config));
  const auto hello = start_resuming(elsewhere, session);
  CHECK(hello.has_pre_shared_key);
  CHECK(hello.has_key_share);
  elsewhere.handshake();
  elsewhere.require_established();
  CHECK(!elsewhere.client->resumed());
  CHECK(Pump::relay(*elsewhere.client, *elsewhere.server, "in full") == "in full");
}

TEST_CASE("dtls 1.3: pre-shared keys; a wrong key or identity fails with a reason", "[dtls13][psk]") {
  if (!dtls13_here()) return;
  DtlsConfig client;
  client.role = dgram::dtls::Role::client;
  client.version = Version::dtls1_3;
  client.psk = dgram::dtls::PreSharedKey{"dgram-client", std::vector<std::byte>(16, std::byte{7})};
  DtlsConfig server = client;
  server.role = dgram::dtls::Role::server;
  server.verify_peer = false;
  {
    Pump pump(make_context(client), make_context(server));
    handshake_established(pump);
    CHECK(pump.client->version() == "DTLSv1.3");
    CHECK(Pump::relay(*pump.client, *pump.server, "psk 1.3") == "psk 1.3");
  }
  for (const bool wrong_identity : {false, true}) {
    auto other = client;
    if (wrong_identity) {
      other.psk->identity = "stranger";
    } else {
      other.psk->key.back() = std::byte{8};
    }
    Pump pump(make_context(other), make_context(server));
    pump.start_client();
    pump.handshake(10s);
    INFO("client: " << pump.client->failure() << " server: " << (pump.server ? pump.server->failure() : "none")
         << " listener: " << pump.listener.failure() << " wrong identity " << wrong_identity);
    CHECK(pump.client->state() == EngineState::failed);
    CHECK(!pump.client->failure().empty());
    CHECK(pump.client->failure().find("wolfSSL -") == std::string::npos);   // words, not a bare number
  }
}

TEST_CASE("dtls 1.3: client certificates, required and missing", "[dtls13]") {
  if (!dtls13_here()) return;
  auto server = server13();
  server.verify_peer = true;
  server.require_peer_certificate = true;
  server.trusted_authorities.push_back(dgram::dtls::Pem::file(dgram::testing::cert_file("ca.pem")));
  {
    Pump pump(make_context(client13()), make_context(server));
    pump.start_client();
    pump.handshake(10s);
    REQUIRE(pump.server);
    CHECK(pump.server->state() == EngineState::failed);
    CHECK(pump.server->failure_kind() == FailureKind::certificate_required);
  }
  auto client = client13();
  client.certificate_chain = dgram::dtls::Pem::file(dgram::testing::cert_file("client.pem"));
  client.private_key = dgram::dtls::Pem::file(dgram::testing::cert_file("client.key"));
  Pump pump(make_context(client), make_context(server));
  handshake_established(pump);
  CHECK(Pump::relay(*pump.client, *pump.server, "it is me") == "it is me");
}

TEST_CASE("dtls 1.3: an untrusted server certificate fails with the certificate's verdict", "[dtls13]") {
  if (!dtls13_here()) return;
  auto client = client13();
  client.trusted_authorities = {dgram::dtls::Pem::file(dgram::testing::cert_file("client.pem"))};
  Pump pump(make_context(client), make_context(server13()));
  pump.start_client();
  pump.handshake(10s);
  CHECK(pump.client->state() == EngineState::failed);
  CHECK(pump.client->failure_kind() == FailureKind::untrusted_certificate);
}

TEST_CASE("connection IDs (DTLS 1.3 and 1.2): the server's random 8-byte ID, with its prefix, in every client record",
          "[dtls13][cid]") {
  if (!dtls13_here()) return;
  const Version version = GENERATE(Version::dtls1_3, Version::dtls1_2);
  INFO((version == Version::dtls1_3 ? "DTLS 1.3" : "DTLS 1.2"));
  const auto client = [version](bool connection_id) {
    return with_version(dgram::testing::test_client_config(), version, connection_id);
  };
  const auto server = [version](bool connection_id) {
    return with_version(dgram::testing::test_server_config(), version, connection_id);
  };
  Pump pump(make_context(client(true)), make_context(server(true)));
  handshake_established(pump);
  CHECK(pump.client->connection_id_in_use());
  CHECK(pump.server->connection_id_in_use());
  const auto id = pump.server->receive_connection_id();
  REQUIRE(id.size() == record::connection_id_size);
  CHECK(id[0] == std::byte{0});   // the Listener's prefix (the threaded server's worker index)
  CHECK(pump.client->receive_connection_id().empty());

  std::error_code ec;
  pump.client->send(dgram::testing::bytes("with an id"), ec);
  REQUIRE(!ec);
  REQUIRE(pump.client->outgoing().size() == 1);
  const auto sent = pump.client->outgoing().front();
  const auto carried = record::connection_id(sent);
  CHECK(std::vector<std::byte>(carried.begin(), carried.end()) == id);
  // DTLS 1.3: a unified header with its C bit; DTLS 1.2: a tls12_cid record (RFC 9146).
  CHECK(static_cast<std::uint8_t>(sent[0]) == (version == Version::dtls1_3 ? 0x3f : 25));
  CHECK(record::well_formed(sent));
  pump.client->clear_outgoing();

  // A second session gets another ID.
  Pump other(make_context(client(true)), make_context(server(true)));
  handshake_established(other);
  CHECK(other.server->receive_connection_id() != id);

  // Only one side asking: no ID, the session works.
  Pump one_sided(make_context(client(false)), make_context(server(true)));
  handshake_established(one_sided);
  CHECK(!one_sided.client->connection_id_in_use());
  CHECK(Pump::relay(*one_sided.client, *one_sided.server, "no id") == "no id");
}

TEST_CASE("dtls 1.3: hostile records to an established session are dropped and counted", "[dtls13]") {
  if (!dtls13_here()) return;
  Pump pump(make_context(client13(true)), make_context(server13(true)));
  handshake_established(pump);
  std::error_code ec;
  pump.client->send(dgram::testing::bytes("genuine"), ec);
  const Datagram genuine = pump.client->outgoing().front();
  pump.client->clear_outgoing();
  const auto dropped_before = pump.server->stats().dropped_datagrams;
  std::vector<std::byte> buffer(2048);
  for (std::size_t at = 0; at < genuine.size(); at += 3) {   // every third byte flipped in turn
    Datagram altered = genuine;
    altered[at] ^= std::byte{0x40};
    pump.server->on_datagram(altered, pump.now, ec);
    CHECK(!ec);
    CHECK(!pump.server->take_message(buffer, ec));
    CHECK(!ec);
  }
  CHECK(pump.server->stats().dropped_datagrams > dropped_before);
  CHECK(pump.server->state() == EngineState::established);
  pump.server->on_datagram(genuine, pump.now, ec);
  const auto size = pump.server->take_message(buffer, ec);
  REQUIRE(size);
  CHECK(std::string(reinterpret_cast<const char*>(buffer.data()), *size) == "genuine");
}

TEST_CASE("post-quantum hybrids: X25519MLKEM768 and SecP256r1MLKEM768; the hello with the cookie comes in fragments, the cookie checked in the first", "[dtls13][pq]") {
  using dgram::dtls::Group;
  if (!dgram::dtls::post_quantum_available()) {
    auto client = dgram::testing::test_client_config();
    client.groups = {Group::x25519_mlkem768, Group::x25519};
    CHECK(refusal(client).find("has no post-quantum key exchange") != std::string::npos);
    return;
  }
  // A hybrid only in DTLS 1.2: refused in words (1.2 has no hybrid key exchange).
  auto only_hybrid_12 = dgram::testing::test_client_config();
  only_hybrid_12.groups = {Group::x25519_mlkem768};
  CHECK(refusal(only_hybrid_12).find("DTLS 1.3 only") != std::string::npos);

  const Group group = GENERATE(Group::x25519_mlkem768, Group::secp256r1_mlkem768);
  INFO(dgram::dtls::to_string(group));
  auto client = client13();
  client.groups = {group};   // only the hybrid: its key share or nothing
  auto server = server13();
  server.groups = {Group::x25519_mlkem768, Group::secp256r1_mlkem768, Group::x25519, Group::secp256r1};
  Pump pump(make_context(client), make_context(server));
  pump.start_client();
  // The first hello comes whole (wolfSSL leaves out a key share that would not fit): the server answers with a
  // HelloRetryRequest and keeps nothing.
  std::vector<Datagram> first(pump.client->outgoing().begin(), pump.client->outgoing().end());
  pump.client->clear_outgoing();
  REQUIRE(first.size() == 1);
  const auto first_hello = record::view(first[0]);
  REQUIRE(first_hello);
  REQUIRE(first_hello->hello);
  CHECK(!first_hello->hello->first_fragment);
  CHECK(!first_hello->hello->has_cookie);
  pump.deliver_to_server(first[0]);
  CHECK(!pump.server);
  REQUIRE(pump.listener.replies().size() == 1);
  CHECK(record::starts_with_hello_retry_request(pump.listener.replies().front()));
  std::error_code ec;
  pump.deliver(*pump.client, pump.listener.replies().front(), ec);
  REQUIRE(!ec);
  pump.listener.clear_replies();
  // The hello with the cookie and the key share (over 1.2 KB of it) does not fit one datagram.
  std::vector<Datagram> second(pump.client->outgoing().begin(), pump.client->outgoing().end());
  pump.client->clear_outgoing();
  REQUIRE(second.size() >= 2);
  const auto fragment = record::view(second[0]);
  REQUIRE(fragment);
  REQUIRE(fragment->hello);
  CHECK(fragment->hello->first_fragment);
  CHECK(fragment->hello->has_cookie_extension);
  // A later fragment alone opens nothing (only a first fragment with a cookie that verifies does); nor does the
  // first fragment with one byte of its cookie changed, or from another address (the cookie names the client's).
  std::error_code refused_error;
  CHECK(!pump.listener.on_datagram(pump.client_endpoint, second[1], pump.now, refused_error));
  Datagram forged = second[0];
  std::size_t cookie_at = 0;   // the cookie extension: type 44, its length, the cookie's length, the cookie
  for (std::size_t i = record::header_size + record::handshake_header_size; i + 6 < forged.size() && !cookie_at; ++i)
    if (forged[i] == std::byte{0} && forged[i + 1] == std::byte{44} &&
        record::read16(std::span(forged).subspan(i + 2)) == record::read16(std::span(forged).subspan(i + 4)) + 2)
      cookie_at = i + 6;
  REQUIRE(cookie_at > 0);
  forged[cookie_at + 5] ^= std::byte{0x01};
  CHECK(!pump.listener.on_datagram(pump.client_endpoint, forged, pump.now, refused_error));
  CHECK(pump.listener.replies().empty());
  const dgram::Endpoint elsewhere = dgram::Endpoint::loopback(dgram::Family::ipv4, 40999);
  CHECK(!pump.listener.on_datagram(elsewhere, second[0], pump.now, refused_error));
  CHECK(pump.listener.replies().empty());
  CHECK(pump.listener.stats().sessions_started == 0);
  // In order: the first fragment's cookie verifies, and only then the server keeps state to reassemble.
  pump.deliver_to_server(second[0]);
  REQUIRE(pump.server);
  for (std::size_t i = 1; i < second.size(); ++i) pump.deliver_to_server(second[i]);
  pump.handshake();
  pump.require_established();
  CHECK(pump.listener.stats().hello_verify_requests == 1);
  CHECK(pump.listener.stats().sessions_started == 1);
  const std::string expected = group == Group::x25519_mlkem768 ? "X25519MLKEM768" : "SecP256r1MLKEM768";
  CHECK(pump.client->info().key_exchange == expected);
  CHECK(pump.server->info().key_exchange == expected);
  CHECK(Pump::relay(*pump.client, *pump.server, "post-quantum") == "post-quantum");

  // The default stays classical: X25519, no hybrid offered.
  Pump classical(make_context(client13()), make_context(server));
  handshake_established(classical);
  CHECK(classical.client->info().key_exchange == "X25519");
}
