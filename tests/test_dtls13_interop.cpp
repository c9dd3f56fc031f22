// DTLS 1.3 against a peer that is not dgram: wolfSSL's own example client and server, built from the same
// source as the optimized wolfSSL (no other DTLS 1.3 implementation is packaged in Debian 12: openssl 3.0 and
// gnutls 3.7 stop at DTLS 1.2). In a build with Debian's wolfSSL, the programs refuse --dtls 1.3 in one line.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/process.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::cert_file;
using dgram::testing::Finished;
using dgram::testing::Process;
using dgram::testing::program_path;

namespace {

// wolfSSL's example programs, or nullopt in a build without them (Debian's wolfSSL).
std::optional<std::string> wolfssl_program(const char* variable) {
  const char* path = std::getenv(variable);
  return path && *path ? std::optional<std::string>(path) : std::nullopt;
}

// The examples look for ./certs/dh2048.pem from their working directory up ("wolf root"): run them from the
// directory the build prepared for that, with dgram's certificates given explicitly.
std::vector<std::string> in_wolfssl_root(std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"/usr/bin/env", "-C", program_path("WOLFSSL_ROOT")});
  return argv;
}

// A UDP port nobody holds right now (bound, read back, released): wolfSSL's example server takes no port 0.
std::string free_port() {
  auto probe = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  std::error_code ec;
  return std::to_string(probe.local_endpoint(ec).port());
}

// Whether some socket is bound to UDP `port` on 127.0.0.1, from the kernel's table.
bool udp_port_bound(const std::string& port) {
  char needle[32];
  std::snprintf(needle, sizeof needle, "0100007F:%04X", static_cast<unsigned>(std::stoul(port)));
  std::ifstream table("/proc/net/udp");
  for (std::string line; std::getline(table, line);)
    if (line.find(needle) != std::string::npos) return true;
  return false;
}

// wolfSSL's example server says nothing until a client comes: wait (bounded) until its socket is bound.
bool wait_until_bound(const std::string& port, Process& server) {
  for (int check = 0; check < 500; ++check) {
    if (udp_port_bound(port)) return true;
    if (server.read_until("\n", 10ms)) return false;   // it printed something: an error, most likely
  }
  return false;
}

}  // namespace

TEST_CASE("dtls 1.3 interop: wolfSSL's example client with dtls-echo-server, resuming by ticket", "[dtls13][interop]") {
  const auto wolfssl_client = wolfssl_program("WOLFSSL_EXAMPLE_CLIENT");
  if (!wolfssl_client) {   // Debian's wolfSSL: no DTLS 1.3, said in one line
    Process server({program_path("DTLS_ECHO_SERVER"), "--port", "0", "--dtls", "1.3", "--cert",
                    cert_file("server-ecdsa.pem"), "--key", cert_file("server-ecdsa.key")});
    const Finished refused = server.wait(10s);
    CHECK(refused.exit_code == 1);
    CHECK(refused.err.find("has no DTLS 1.3 (configure dgram with -Dwolfssl=optimized)") != std::string::npos);
    return;
  }
  const std::string mode = GENERATE(from_range(dgram::testing::server_modes()));
  INFO("server mode " << mode);
  auto server = dgram::testing::start_dtls_server(mode, {"--dtls", "1.3", "--cid"});
  // -u -v 4: DTLS 1.3; -x: no client certificate; -r: a second connection resuming the first; -t: X25519;
  // --cid: a Connection ID.
  Process client(in_wolfssl_root({*wolfssl_client, "-u", "-v", "4", "-h", "127.0.0.1", "-p", server.port, "-A",
                                  cert_file("ca.pem"), "-x", "-r", "-t", "--cid"}));
  const Finished done = client.wait(20s);
  INFO(done.out << done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out.find("SSL version is DTLSv1.3") != std::string::npos);
  CHECK(done.out.find("SSL curve name is X25519") != std::string::npos);
  CHECK(done.out.find("CID extension was negotiated") != std::string::npos);
  CHECK(done.out.find("hello wolfssl!") != std::string::npos);       // its message, echoed
  CHECK(done.out.find("SSL reused session") != std::string::npos);
  CHECK(done.out.find("resuming wolfssl!") != std::string::npos);
  const Finished stopped = server.stop();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("resumed no, cipher TLS13-AES128-GCM-SHA256, DTLSv1.3, CID on") != std::string::npos);
  // (wolfSSL's example client asks for a Connection ID on its first connection only.)
  CHECK(stopped.err.find("resumed yes, cipher TLS13-AES128-GCM-SHA256, DTLSv1.3, CID off") != std::string::npos);
}

// (No resumption this way round: between connections the example server closes its socket and opens a new
// one, and a client that comes back at once meets a closed port.)
TEST_CASE("dtls 1.3 interop: dtls-echo-client with wolfSSL's example server", "[dtls13][interop]") {
  const auto wolfssl_server = wolfssl_program("WOLFSSL_EXAMPLE_SERVER");
  if (!wolfssl_server) {
    Process client({program_path("DTLS_ECHO_CLIENT"), "--port", "9", "--ca", cert_file("ca.pem"), "--dtls", "any"});
    const Finished refused = client.communicate("x\n", 10s);
    CHECK(refused.exit_code == 1);
    CHECK(refused.err.find("has no DTLS 1.3") != std::string::npos);
    return;
  }
  for (const bool nonblocking : {false, true}) {
    INFO((nonblocking ? "--nonblocking" : "blocking client"));
    const std::string port = free_port();
    // -e: echo what it reads; -d: no client certificate asked.
    Process server(in_wolfssl_root({*wolfssl_server, "-u", "-v", "4", "-p", port, "-c", cert_file("server-ecdsa.pem"),
                                    "-k", cert_file("server-ecdsa.key"), "-d", "-e"}));
    REQUIRE(wait_until_bound(port, server));
    std::vector<std::string> argv{program_path("DTLS_ECHO_CLIENT"), "--port", port, "--ca", cert_file("ca.pem"),
                                  "--dtls", "1.3", "--verbose"};
    if (nonblocking) argv.push_back("--nonblocking");
    Process client(argv);
    const Finished done = client.communicate("first line\nsecond\n", 20s);
    INFO(done.err);
    CHECK(done.exit_code == 0);
    CHECK(done.out == "first line\nsecond\n");
    CHECK(done.err.find("DTLSv1.3, cipher TLS13-AES128-GCM-SHA256, resumed no") != std::string::npos);
    const Finished served = server.wait(10s);
    CHECK(served.out.find("SSL version is DTLSv1.3") != std::string::npos);
  }
}

// Post-quantum hybrid key exchange with wolfSSL's own example programs, both ways: their key share is the
// hybrid only (--pqc), so nothing else can be negotiated.
TEST_CASE("dtls 1.3 interop: X25519MLKEM768 and SecP256r1MLKEM768 with wolfSSL's example client and server", "[dtls13][interop][pq]") {
  const auto wolfssl_client = wolfssl_program("WOLFSSL_EXAMPLE_CLIENT");
  const auto wolfssl_server = wolfssl_program("WOLFSSL_EXAMPLE_SERVER");
  if (!dgram::dtls::post_quantum_available()) {   // Debian's wolfSSL: refused in one line
    Process server({program_path("DTLS_ECHO_SERVER"), "--port", "0", "--groups", "X25519MLKEM768",
                    "--cert", cert_file("server-ecdsa.pem"), "--key", cert_file("server-ecdsa.key")});
    const Finished refused = server.wait(10s);
    CHECK(refused.exit_code == 1);
    CHECK(refused.err.find("has no post-quantum key exchange") != std::string::npos);
    return;
  }
  REQUIRE(wolfssl_client);   // (built with the optimized wolfSSL, which has the hybrids)
  REQUIRE(wolfssl_server);
  const std::string group = GENERATE(std::string("X25519MLKEM768"), std::string("SecP256r1MLKEM768"));
  INFO(group);
  {
    auto server = dgram::testing::start_dtls_server("event", {"--dtls", "1.3", "--groups", group + ":X25519"});
    Process client(in_wolfssl_root({*wolfssl_client, "-u", "-v", "4", "-h", "127.0.0.1", "-p", server.port, "-A",
                                    cert_file("ca.pem"), "-x", "--pqc", group}));
    const Finished done = client.wait(20s);
    INFO(done.out << done.err);
    CHECK(done.exit_code == 0);
    CHECK(done.out.find("SSL curve name is " + group) != std::string::npos);
    CHECK(done.out.find("hello wolfssl!") != std::string::npos);
    const Finished stopped = server.stop();
    CHECK(stopped.err.find("DTLSv1.3, CID off, not authenticated, 1 message, key exchange " + group) != std::string::npos);
  }
  const std::string port = free_port();
  Process server(in_wolfssl_root({*wolfssl_server, "-u", "-v", "4", "-p", port, "-c", cert_file("server-ecdsa.pem"),
                                  "-k", cert_file("server-ecdsa.key"), "-d", "-e", "--pqc", group}));
  REQUIRE(wait_until_bound(port, server));
  Process client({program_path("DTLS_ECHO_CLIENT"), "--port", port, "--ca", cert_file("ca.pem"), "--dtls", "1.3",
                  "--groups", group, "--verbose"});
  const Finished done = client.communicate("quantum\n", 20s);
  INFO(done.err);
  CHECK(done.exit_code == 0);
  CHECK(done.out == "quantum\n");
  CHECK(done.err.find("key exchange " + group) != std::string::npos);
  const Finished served = server.wait(10s);
  CHECK(served.out.find("SSL curve name is " + group) != std::string::npos);
}
