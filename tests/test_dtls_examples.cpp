// The DTLS example programs end to end, and against real foreign peers: openssl s_client / s_server
// (-dtls1_2) and gnutls-cli --udp. Everything on loopback; every wait bounded.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/process.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::cert_file;
using dgram::testing::Finished;
using dgram::testing::ListeningServer;
using dgram::testing::Process;
using dgram::testing::program_path;
using dgram::testing::start_listening;

namespace {

// Every test that starts dtls-echo-server runs once per mode this build has, so each mode passes the same
// suite.
std::string current_mode;

#define FOR_EACH_SERVER_MODE()                                                    \
  current_mode = GENERATE(from_range(dgram::testing::server_modes()));          \
  INFO("server mode " << current_mode)

ListeningServer dtls_server(const std::vector<std::string>& extra = {}, const std::string& bind = "127.0.0.1") {
  return dgram::testing::start_dtls_server(current_mode, extra, bind);
}

Process dtls_client(const std::string& host, const std::string& port, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{program_path("DTLS_ECHO_CLIENT"), "--host", host, "--port", port,
                                "--ca", cert_file("ca.pem")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Process(argv);
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// openssl s_client -dtls1_2 sends `line`, waits for it to come back, then ends its input (close_notify).
Finished s_client(const std::string& port, const std::string& line, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{"/usr/bin/openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:" + port,
                                "-CAfile", cert_file("ca.pem"), "-verify_return_error"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process client(argv);
  client.write(line + "\n");
  client.read_until(line, 10s);   // s_client prints only what it receives: this is the echo
  client.close_stdin();
  return client.wait(10s);
}

}  // namespace

TEST_CASE("dtls echo: lines come back, --resume resumes, SIGTERM stops the server with exit 0", "[dtls][examples]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server();
  auto client = dtls_client("127.0.0.1", server.port, {"--resume"});
  const std::string input = "hello\nthe tutorial's client\n" + std::string(1200, 'x') + "\n";
  const Finished done = client.communicate(input, 20s);
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out == input + input);   // once per session
  CHECK(done.err == "session resumed: yes\n");
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(count(stopped.err, "ended (closed by the peer): resumed no, cipher " + dgram::testing::default_ecdsa_suite()) == 1);
  CHECK(count(stopped.err, "ended (closed by the peer): resumed yes") == 1);
  CHECK(stopped.err.find("served 2 sessions, 6 messages; 0 failed handshakes; 2 cookie challenges") != std::string::npos);
}

TEST_CASE("dtls echo: --reply gives the tutorial's acknowledgement; IPv6; --no-tickets resumes by ID", "[dtls][examples]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server({"--reply", "I hear you fashizzle!"}, "::1");
  CHECK(server.address == "[::1]");
  auto client = dtls_client("::1", server.port, {"--resume", "--no-tickets"});
  const Finished done = client.communicate("one\ntwo\n", 20s);
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out == "I hear you fashizzle!\nI hear you fashizzle!\n"
                                                                    "I hear you fashizzle!\nI hear you fashizzle!\n");
  CHECK(done.err == "session resumed: yes\n");
  CHECK(server.stop().exit_code == 0);
}

TEST_CASE("dtls examples: bad certificates and peers are one readable line and exit 1", "[dtls][examples][negative]") {
  FOR_EACH_SERVER_MODE();
  Process missing(dgram::testing::server_argv({program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0", "--cert", "/nonexistent/server.pem", "--key",
                   cert_file("server-ecdsa.key")}));
  const Finished refused = missing.wait(10s);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err == "dtls-echo-server: cannot read certificate chain '/nonexistent/server.pem': No such file or directory\n");
  CHECK(refused.out.empty());

  Process mismatched(dgram::testing::server_argv({program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0", "--cert", cert_file("server-ecdsa.pem"),
                      "--key", cert_file("client.key")}));
  const Finished mismatch = mismatched.wait(10s);
  CHECK(mismatch.exit_code == 1);
  CHECK(mismatch.err == "dtls-echo-server: private key '" + cert_file("client.key") +
                            "' does not match certificate '" + cert_file("server-ecdsa.pem") + "'\n");

  auto server = dtls_server();
  const std::string failed = "dtls-echo-client: DTLS handshake with 127.0.0.1:" + server.port + " failed: ";
  auto wrong_ca = Process({program_path("DTLS_ECHO_CLIENT"), "--port", server.port, "--ca", cert_file("client.pem")});
  const Finished untrusted = wrong_ca.communicate("hi\n", 20s);
  CHECK(untrusted.exit_code == 1);
  CHECK(untrusted.err == failed + "the server's certificate (subject O=dgram test, CN=localhost, issuer O=dgram test, "
                                  "CN=dgram test CA) is not signed by a trusted CA (--ca must name the CA that signed it)\n");

  auto wrong_name = dtls_client("127.0.0.1", server.port, {"--server-name", "elsewhere.example"});
  const Finished misnamed = wrong_name.communicate("hi\n", 20s);
  CHECK(misnamed.exit_code == 1);
  CHECK(misnamed.err == failed + "the server's certificate is not valid for 'elsewhere.example': it names ::1, "
                                 "127.0.0.1, localhost (connect with --host or --server-name set to one of those)\n");

  auto wrong_address = dtls_client("127.0.0.1", server.port, {"--server-name", "127.0.0.2"});
  const Finished misaddressed = wrong_address.communicate("hi\n", 20s);
  CHECK(misaddressed.exit_code == 1);
  CHECK(misaddressed.err.starts_with(failed + "the server's certificate is not valid for '127.0.0.2': it names "));

  Process usage({program_path("DTLS_ECHO_CLIENT"), "--port", server.port});
  const Finished no_ca = usage.communicate("hi\n", 10s);
  CHECK(no_ca.exit_code == 2);
  CHECK(no_ca.err.starts_with("dtls-echo-client: a client needs --ca to verify the server"));
  CHECK(server.stop().exit_code == 0);
}

TEST_CASE("dtls examples: hostile datagrams are dropped and counted while serving continues", "[dtls][examples][negative]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server();
  auto attacker = dgram::UdpSocket::connect(dgram::Endpoint::parse("127.0.0.1:" + server.port));
  std::error_code ec;
  attacker.send_to(std::vector<std::byte>(100, std::byte{0x16}), {}, ec);   // a "handshake" full of junk
  attacker.send_to(std::vector<std::byte>{std::byte{0x17}, std::byte{0xfe}}, {}, ec);   // truncated
  auto client = dtls_client("127.0.0.1", server.port);
  const Finished done = client.communicate("after the junk\n", 20s);
  CHECK(done.exit_code == 0);
  CHECK(done.out == "after the junk\n");
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("2 stray datagrams dropped") != std::string::npos);
}

TEST_CASE("interop: openssl s_client against our server, echo and resumption", "[dtls][interop][openssl]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server();
  const std::string session = std::string(std::getenv("MESON_BUILD_ROOT") ? std::getenv("MESON_BUILD_ROOT") : ".") +
                              "/s_client-session-" + std::to_string(server.process.pid()) + ".pem";
  for (const bool tickets : {true, false}) {
    INFO("tickets " << tickets);
    std::vector<std::string> ticket_flag = tickets ? std::vector<std::string>{} : std::vector<std::string>{"-no_ticket"};
    std::vector<std::string> first_flags{"-sess_out", session};
    first_flags.insert(first_flags.end(), ticket_flag.begin(), ticket_flag.end());
    const Finished first = s_client(server.port, "from openssl", first_flags);
    CHECK(first.exit_code == 0);
    CHECK(count(first.out, "from openssl") == 1);   // the reply (s_client does not print what it sends)
    CHECK(first.out.find("New, TLSv1.2, Cipher is " + dgram::testing::default_ecdsa_suite()) != std::string::npos);
    CHECK(first.out.find("Verify return code: 0 (ok)") != std::string::npos);
    std::vector<std::string> second_flags{"-sess_in", session};
    second_flags.insert(second_flags.end(), ticket_flag.begin(), ticket_flag.end());
    const Finished second = s_client(server.port, "resumed openssl", second_flags);
    CHECK(second.exit_code == 0);
    CHECK(second.out.find("Reused, TLSv1.2") != std::string::npos);
    CHECK(count(second.out, "resumed openssl") == 1);
  }
  std::remove(session.c_str());
  const Finished stopped = server.stop();
  CHECK(count(stopped.err, "resumed yes") == 2);
}

TEST_CASE("interop: our client against openssl s_server -dtls1_2 -mtu 1400", "[dtls][interop][openssl]") {
  Process s_server({"/usr/bin/openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0", "-mtu", "1400", "-naccept",
                    "1", "-cert", cert_file("server-ecdsa.pem"), "-key", cert_file("server-ecdsa.key")});
  const auto port = s_server.read_until_match(R"(ACCEPT 127\.0\.0\.1:(\d+)\n)", 10s);
  REQUIRE(port);
  auto client = dtls_client("127.0.0.1", *port, {"--timeout-ms", "5000", "--retries", "0"});
  client.write("hello openssl\n");
  REQUIRE(s_server.read_until("hello openssl", 10s));   // s_server prints what it receives
  s_server.write("hello dgram\n");                        // and sends its stdin lines
  REQUIRE(client.read_line(10s) == "hello dgram");
  client.close_stdin();
  const Finished done = client.wait(10s);
  CHECK(done.exit_code == 0);
  const Finished server_done = s_server.wait(10s);
  CHECK(server_done.out.find("CIPHER is " + dgram::testing::default_ecdsa_suite()) != std::string::npos);
  CHECK(server_done.out.find("Shared groups: x25519:secp256r1") != std::string::npos);   // never P-521 first
}

TEST_CASE("interop: gnutls-cli --udp against our server", "[dtls][interop][gnutls]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server();
  Process gnutls({"/usr/bin/gnutls-cli", "--udp", "--port", server.port, "--x509cafile", cert_file("ca.pem"),
                  "localhost"});
  REQUIRE(gnutls.read_until("Simple Client Mode", 10s));
  gnutls.write("from gnutls\n");
  REQUIRE(gnutls.read_until("from gnutls", 10s));
  gnutls.close_stdin();
  CHECK(gnutls.wait(10s).exit_code == 0);
  const Finished stopped = server.stop();
  CHECK(stopped.err.find("ended (closed by the peer): resumed no") != std::string::npos);
}

TEST_CASE("interop: client certificates both ways", "[dtls][interop][client-cert]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server({"--ca", cert_file("ca.pem"), "--require-client-cert"});
  const Finished with_cert = s_client(server.port, "with cert", {"-cert", cert_file("client.pem"), "-key", cert_file("client.key")});
  CHECK(with_cert.exit_code == 0);
  CHECK(count(with_cert.out, "with cert") == 1);
  Process without({"/usr/bin/openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:" + server.port, "-CAfile",
                   cert_file("ca.pem")});
  without.close_stdin();
  const Finished refused = without.wait(20s);
  CHECK(refused.exit_code != 0);
  CHECK(refused.err.find("alert handshake failure") != std::string::npos);   // at once, not after its timeout
  CHECK(server.stop().exit_code == 0);

  Process s_server({"/usr/bin/openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:0", "-mtu", "1400", "-naccept",
                    "1", "-cert", cert_file("server-ecdsa.pem"), "-key", cert_file("server-ecdsa.key"), "-Verify", "1",
                    "-CAfile", cert_file("ca.pem"), "-verify_return_error"});
  const auto port = s_server.read_until_match(R"(ACCEPT 127\.0\.0\.1:(\d+)\n)", 10s);
  REQUIRE(port);
  auto client = dtls_client("127.0.0.1", *port,
                            {"--cert", cert_file("client.pem"), "--key", cert_file("client.key"), "--retries", "0",
                             "--timeout-ms", "5000"});
  client.write("mutual\n");
  REQUIRE(s_server.read_until("mutual", 10s));
  s_server.write("authenticated\n");
  CHECK(client.read_line(10s) == "authenticated");
  client.close_stdin();
  CHECK(client.wait(10s).exit_code == 0);
  const Finished server_done = s_server.wait(10s);
  CHECK(server_done.out.find("dgram test client") != std::string::npos);   // s_server saw our certificate
}

TEST_CASE("dtls echo server: an idle peer is dropped, and SIGTERM sends close_notify", "[dtls][examples]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server({"--idle-timeout-ms", "1000"});
  const auto endpoint = dgram::Endpoint::parse("127.0.0.1:" + server.port);
  auto context = dgram::testing::context_for(dgram::testing::test_client_config());
  std::error_code ec;
  {
    // A peer that completes its handshake, then vanishes without close_notify.
    auto socket = dgram::UdpSocket::connect(endpoint);
    dgram::dtls::DtlsHandshaker handshaker(context);
    REQUIRE(handshaker.connect_dtls(socket, endpoint, dgram::Deadline::after(10s), ec));
  }
  auto socket = dgram::UdpSocket::connect(endpoint);
  dgram::dtls::DtlsHandshaker handshaker(context);
  auto channel = handshaker.connect_dtls(socket, endpoint, dgram::Deadline::after(10s), ec);   // waits out the idle one
  INFO(handshaker.failure());
  REQUIRE(channel);
  const std::string ping = "ping";
  channel->send(std::as_bytes(std::span(ping)), ec);
  std::vector<std::byte> buffer(2048);
  CHECK(channel->receive(buffer, dgram::Deadline::after(5s), ec) == 4);
  // The live session keeps talking (every 200 ms, well inside its idle timeout) while the vanished one idles
  // out: both handshakes end within milliseconds of each other, so a quiet live session would idle out too.
  bool vanished_dropped = false;
  for (int round = 0; round < 50 && !vanished_dropped; ++round) {
    vanished_dropped = server.process.read_stderr_until("ended (idle, dropped)", 200ms).has_value();
    channel->send(std::as_bytes(std::span(ping)), ec);
    REQUIRE(channel->receive(buffer, dgram::Deadline::after(5s), ec) == 4);
  }
  REQUIRE(vanished_dropped);
  server.process.send_signal(SIGTERM);
  channel->receive(buffer, dgram::Deadline::after(5s), ec);
  CHECK(ec == dgram::errc::closed);   // the server's close_notify, not a timeout
  const Finished stopped = server.process.wait(1s);
  INFO("server said: " << stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("ended (idle, dropped)") != std::string::npos);
  CHECK(stopped.err.find("ended (server stopping)") != std::string::npos);
}

TEST_CASE("dtls echo with a pre-shared key; each mistake is named on both sides", "[dtls][examples][psk][negative]") {
  FOR_EACH_SERVER_MODE();
  const std::string key = "00112233445566778899aabbccddeeff";
  auto server = start_listening(dgram::testing::server_argv({program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0", "--psk-identity", "dgram-demo",
                                 "--psk-hex", key, "--handshake-timeout-ms", "5000"}));
  const std::string failed = "dtls-echo-client: DTLS handshake with 127.0.0.1:" + server.port + " failed: ";
  const auto client = [&](std::vector<std::string> credentials) {
    std::vector<std::string> argv{program_path("DTLS_ECHO_CLIENT"), "--port", server.port};
    argv.insert(argv.end(), credentials.begin(), credentials.end());
    return Process(argv).communicate("shared secret\n", 20s);
  };
  const Finished done = client({"--psk-identity", "dgram-demo", "--psk-hex", key});
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out == "shared secret\n");

  const Finished unknown = client({"--psk-identity", "someone-else", "--psk-hex", key});
  CHECK(unknown.signal == 0);   // this used to crash on the alert wolfSSL has no name for
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err == failed + "the server does not know the pre-shared key identity 'someone-else' (check --psk-identity)\n");

  const Finished wrong_key = client({"--psk-identity", "dgram-demo", "--psk-hex", "ffffffffffffffffffffffffffffffff"});
  CHECK(wrong_key.exit_code == 1);
  CHECK(wrong_key.err == failed + "the peers' pre-shared keys differ: the server could not decrypt our Finished "
                                  "message (check --psk-hex on both sides)\n");

  const Finished certificate_client = client({"--ca", cert_file("ca.pem")});
  CHECK(certificate_client.exit_code == 1);
  CHECK(certificate_client.err == failed + "the server accepts none of our cipher suites or key-exchange groups: it "
                                           "may offer only pre-shared key cipher suites (the server may want other "
                                           "suites: try --coap or --ciphers; or a pre-shared key: --psk-identity and "
                                           "--psk-hex)\n");

  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(count(stopped.err, "handshake failed with 127.0.0.1:") == 3);   // each failure, not only the last
  CHECK(count(stopped.err, ": the client's pre-shared key identity 'someone-else' is unknown here\n") == 1);
  CHECK(count(stopped.err, ": the peers' pre-shared keys differ: the client's Finished message does not decrypt\n") == 1);
  CHECK(count(stopped.err, ": the client offers none of the cipher suites this server accepts (PSK-") == 1);
  CHECK(stopped.err.find("served 1 session, 1 message; 3 failed handshakes;") != std::string::npos);

  auto certificate_server = dtls_server();
  const Finished psk_client = Process({program_path("DTLS_ECHO_CLIENT"), "--port", certificate_server.port,
                                       "--psk-identity", "dgram-demo", "--psk-hex", key})
                                  .communicate("hi\n", 20s);
  CHECK(psk_client.exit_code == 1);
  CHECK(psk_client.err == "dtls-echo-client: DTLS handshake with 127.0.0.1:" + certificate_server.port +
                              " failed: the server accepts none of our pre-shared key cipher suites: it may accept "
                              "certificates only (the server may want other suites: try --coap or --ciphers; or "
                              "certificates: --ca)\n");
  CHECK(certificate_server.stop().exit_code == 0);
}

TEST_CASE("dtls examples: a required client certificate that is missing is named on both sides", "[dtls][examples][client-cert][negative]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server({"--ca", cert_file("ca.pem"), "--require-client-cert"});
  const Finished refused = dtls_client("127.0.0.1", server.port).communicate("hi\n", 20s);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err == "dtls-echo-client: DTLS handshake with 127.0.0.1:" + server.port +
                           " failed: the server requires a client certificate, and we sent none (give one with --cert and --key)\n");
  const Finished accepted = dtls_client("127.0.0.1", server.port, {"--cert", cert_file("client.pem"), "--key", cert_file("client.key")})
                                .communicate("with a certificate\n", 20s);
  CHECK(accepted.exit_code == 0);
  CHECK(accepted.out == "with a certificate\n");
  const Finished stopped = server.stop();
  CHECK(count(stopped.err, ": the client sent no certificate, and this server requires one\n") == 1);
}

TEST_CASE("dtls echo server: a flood of failed handshakes is logged each, up to a rate, with a count of the rest", "[dtls][examples][negative]") {
  FOR_EACH_SERVER_MODE();
  auto server = start_listening(dgram::testing::server_argv({program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0", "--psk-identity", "dgram-demo",
                                 "--psk-hex", "00112233445566778899aabbccddeeff"}));
  const auto endpoint = dgram::Endpoint::parse("127.0.0.1:" + server.port);
  dgram::dtls::DtlsConfig config;
  config.verify_peer = false;
  config.psk = dgram::dtls::PreSharedKey{"intruder", std::vector<std::byte>(16, std::byte{1})};
  auto context = dgram::testing::context_for(config);
  constexpr int attempts = 60;
  for (int i = 0; i < attempts; ++i) {
    auto socket = dgram::UdpSocket::connect(endpoint);
    dgram::dtls::DtlsHandshaker handshaker(context);
    std::error_code ec;
    CHECK_FALSE(handshaker.connect_dtls(socket, endpoint, dgram::Deadline::after(5s), ec));
    CHECK(handshaker.failure_kind() == dgram::dtls::FailureKind::unknown_psk_identity);
  }
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  const std::size_t shown = count(stopped.err, ": the client's pre-shared key identity 'intruder' is unknown here\n");
  CHECK(shown >= 20);   // the burst
  CHECK(shown < attempts);
  std::size_t held_back = 0;
  // ("1 more handshake failure", singular, when one was held back last.)
  const std::regex not_shown(R"(\((\d+) more handshake failures? not shown: too many at once\))");
  for (std::sregex_iterator match(stopped.err.begin(), stopped.err.end(), not_shown), end; match != end; ++match)
    held_back += std::stoul((*match)[1]);
  CHECK(shown + held_back == attempts);
  CHECK(stopped.err.find("60 failed handshakes") != std::string::npos);
}

TEST_CASE("dtls echo client: a session the server closed or dropped is reported as such", "[dtls][examples]") {
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server({"--idle-timeout-ms", "300"});
  auto client = dtls_client("127.0.0.1", server.port, {"--timeout-ms", "100", "--retries", "1"});
  client.write("first\n");
  REQUIRE(client.read_line(10s) == "first");
  REQUIRE(server.process.read_stderr_until("ended (idle, dropped)", 10s));
  client.write("second\n");
  client.close_stdin();
  const Finished dropped = client.wait(10s);
  CHECK(dropped.exit_code == 1);
  CHECK(dropped.err == "dtls-echo-client: no reply from 127.0.0.1:" + server.port +
                           " after 1 retry (100 ms each): the server may have dropped the session (idle too long?)\n");

  auto second = dtls_client("127.0.0.1", server.port);
  second.write("one\n");
  REQUIRE(second.read_line(10s) == "one");
  const Finished stopped = server.stop();   // SIGTERM: close_notify to the client
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("served 2 sessions, 2 messages; 0 failed handshakes;") != std::string::npos);
  second.write("two\n");
  second.close_stdin();
  const Finished closed = second.wait(10s);
  CHECK(closed.exit_code == 1);
  CHECK(closed.err == "dtls-echo-client: the server at 127.0.0.1:" + server.port + " closed the session\n");
}

TEST_CASE("dtls echo server: --bind takes host names, and :: serves IPv4 clients too", "[dtls][examples]") {
  FOR_EACH_SERVER_MODE();
  auto dual = dtls_server({}, "::");
  CHECK(dual.address == "[::]");
  const Finished v4 = dtls_client("127.0.0.1", dual.port).communicate("over IPv4\n", 20s);
  CHECK(v4.exit_code == 0);
  CHECK(v4.out == "over IPv4\n");
  const Finished v6 = dtls_client("::1", dual.port).communicate("over IPv6\n", 20s);
  CHECK(v6.exit_code == 0);
  const Finished stopped = dual.stop();
  CHECK(stopped.err.find("session 127.0.0.1:") != std::string::npos);   // an IPv4 peer keeps its IPv4 name
  CHECK(stopped.err.find("session [::1]:") != std::string::npos);

  auto named = dtls_server({}, "localhost");
  CHECK((named.address == "127.0.0.1" || named.address == "[::1]"));
  CHECK(named.stop().exit_code == 0);

  Process unknown(dgram::testing::server_argv({program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--bind", "no-such-host.invalid", "--port", "0", "--cert",
                   cert_file("server-ecdsa.pem"), "--key", cert_file("server-ecdsa.key")}));
  const Finished refused = unknown.wait(10s);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.starts_with("dtls-echo-server: --bind 'no-such-host.invalid' is no address this machine can listen on: "));
}

TEST_CASE("dtls echo: the DTLS 1.3 resumption options resume; on DTLS 1.2 they are refused by name", "[dtls][examples]") {
  current_mode = "event";
  const std::vector<std::string> fast{"--dtls", "1.3", "--resume-without-cookie", "--psk-ke"};
  const std::vector<std::string> server_argv{program_path("DTLS_ECHO_SERVER"), "--port", "0", "--cert",
                                             cert_file("server-ecdsa.pem"), "--key", cert_file("server-ecdsa.key")};
  const auto refused = [&](std::vector<std::string> argv, const std::string& option) {
    Process server(argv);
    const Finished done = server.wait(10s);
    INFO(done.err);
    CHECK(done.exit_code == 2);
    CHECK(done.err.find("--" + option + " changes DTLS 1.3 handshakes") != std::string::npos);
  };
  if (!dgram::dtls::dtls13_available()) {   // Debian's wolfSSL: the options say they cannot work
    auto argv = server_argv;
    argv.insert(argv.end(), {"--dtls", "any", "--psk-ke"});
    refused(argv, "psk-ke");
    return;
  }
  for (const std::string option : {"resume-without-cookie", "psk-ke"}) {
    auto argv = server_argv;
    argv.insert(argv.end(), {"--dtls", "1.2", "--" + option});
    refused(argv, option);
  }
  auto server = dtls_server(fast);
  const Finished done = dtls_client("127.0.0.1", server.port, {"--dtls", "1.3", "--psk-ke", "--resume"})
                            .communicate("fast\n", 20s);
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out == "fast\nfast\n");
  CHECK(done.err == "session resumed: yes\n");
  const Finished stopped = server.stop();
  CHECK(stopped.err.find("skipped for a known key 1") != std::string::npos);
}

TEST_CASE("dtls echo client --nonblocking: the same lines, resumption and failure messages", "[dtls][examples][nonblocking]") {
  const auto modes = dgram::testing::server_modes();
  if (std::find(modes.begin(), modes.end(), "event") == modes.end()) return;   // no non-blocking variant here
  FOR_EACH_SERVER_MODE();
  auto server = dtls_server();
  const std::string input = "hello\n" + std::string(1200, 'n') + "\n";
  const Finished done = dtls_client("127.0.0.1", server.port, {"--nonblocking", "--resume"}).communicate(input, 20s);
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out == input + input);
  CHECK(done.err == "session resumed: yes\n");
  const Finished untrusted = Process({program_path("DTLS_ECHO_CLIENT"), "--nonblocking", "--port", server.port,
                                      "--ca", cert_file("client.pem")}).communicate("hi\n", 20s);
  CHECK(untrusted.exit_code == 1);
  CHECK(untrusted.err.find("is not signed by a trusted CA (--ca must name the CA that signed it)") != std::string::npos);
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("served 2 sessions, 4 messages; 1 failed handshake;") != std::string::npos);

  const Finished refused = dtls_client("127.0.0.1", server.port, {"--nonblocking"}).communicate("hi\n", 20s);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err == "dtls-echo-client: no server at 127.0.0.1:" + server.port + " (connection refused)\n");
}
