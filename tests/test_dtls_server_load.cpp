// dtls-echo-server under load and attack, in every mode this build has: a flood of spoofed ClientHellos
// while real clients keep handshaking (DTLS 1.2, and 1.3 where the build has it); and, for the event mode, its session limit and counters as a user
// sees them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <regex>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/process.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::Finished;
using dgram::testing::Process;
using dgram::testing::program_path;
namespace dtls = dgram::dtls;

namespace {

using dgram::testing::sanitized_build;

// The client configuration for DTLS `version` ("1.2" or "1.3").
dtls::DtlsConfig client_config(const std::string& version) {
  auto config = dgram::testing::test_client_config();
  config.version = version == "1.3" ? dtls::Version::dtls1_3 : dtls::Version::dtls1_2;
  return config;
}

// The versions this build's flood test covers: DTLS 1.3's stateless HelloRetryRequest too, where it exists.
std::vector<std::string> flood_versions() {
  return dtls::dtls13_available() ? std::vector<std::string>{"1.2", "1.3"} : std::vector<std::string>{"1.2"};
}

// A real first ClientHello, as our client sends it.
std::vector<std::byte> client_hello(const std::string& version) {
  std::error_code ec;
  auto engine = dtls::Engine::client(dgram::testing::context_for(client_config(version)),
                                     dgram::Endpoint::parse("127.0.0.1:1"), nullptr, ec);
  engine.start(dgram::Clock::now(), ec);
  REQUIRE(!ec);
  REQUIRE(engine.outgoing().size() == 1);
  return engine.outgoing().front();
}

// One full handshake and echo with the blocking client; true when the reply came back.
bool handshake_and_echo(const std::shared_ptr<dtls::DtlsContext>& context, const dgram::Endpoint& server,
                        const std::string& message) {
  auto socket = dgram::UdpSocket::connect(server);
  dtls::DtlsHandshaker handshaker(context);
  std::error_code ec;
  auto channel = handshaker.connect_dtls(socket, server, dgram::Deadline::after(20s), ec);
  if (!channel) return false;
  channel->send(std::as_bytes(std::span(message)), ec);
  std::vector<std::byte> buffer(2048);
  std::size_t size = 0;
  for (int attempt = 0; attempt < 10 && !ec && size == 0; ++attempt) {   // the reply may be lost in the flood
    size = channel->receive(buffer, dgram::Deadline::after(1s), ec);
    if (ec == dgram::errc::timeout) {
      ec.clear();
      channel->send(std::as_bytes(std::span(message)), ec);
    }
  }
  channel->close(ec);
  return size == message.size() && std::equal(message.begin(), message.end(), reinterpret_cast<const char*>(buffer.data()));
}

}  // namespace

// Every mode that serves sessions concurrently. (The blocking mode drops other peers' datagrams while it
// serves one session, by design, so a flood clocked by its answers would crawl.)
std::vector<std::string> concurrent_modes() {
  std::vector<std::string> modes;
  for (const auto& mode : dgram::testing::server_modes())
    if (mode != "blocking") modes.push_back(mode);
  return modes;
}

TEST_CASE("dtls echo server: 100,000 spoofed ClientHellos leave no state while real clients are served", "[dtls][examples][negative][flood]") {
  const auto modes = concurrent_modes();
  if (modes.empty()) return;   // a build with the blocking server only
  const std::string mode = GENERATE_COPY(from_range(modes));
  const std::string version = GENERATE(from_range(flood_versions()));
  INFO("server mode " << mode << ", DTLS " << version);
  auto server = dgram::testing::start_dtls_server(mode, {"--dtls", version});
  const auto endpoint = dgram::Endpoint::parse("127.0.0.1:" + server.port);
  auto context = dgram::testing::context_for(client_config(version));
  // wolfSSL's caches are filled once per thread: 32 sessions from fresh ports reach each of up to 4 workers
  // (one left out: a chance of 4 x (3/4)^32).
  constexpr int warm_ups = 32;
  for (int i = 0; i < warm_ups; ++i) REQUIRE(handshake_and_echo(context, endpoint, "warm-up"));
  const long before = dgram::testing::resident_kib(server.process.pid());
  REQUIRE(before > 0);

  // The flood is clocked by the server's answers (each source sends 64, then takes the HelloVerifyRequests or
  // HelloRetryRequests that came back, waiting at most 200 ms), so it goes as fast as the server answers.
  std::atomic<bool> flooding{true};
  std::atomic<std::uint32_t> answered{0};
  std::thread flood([&] {
    const std::vector<std::byte> hello = client_hello(version);
    std::vector<dgram::UdpSocket> sources;   // many source ports: many "peers"
    for (int i = 0; i < 256; ++i) sources.push_back(dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0)));
    std::vector<std::vector<std::byte>> batch(64, hello);
    std::vector<dgram::SendSlot> slots(64);
    std::vector<std::byte> storage(64 * 2048);
    std::vector<dgram::ReceiveSlot> replies(64);
    for (std::size_t i = 0; i < replies.size(); ++i) replies[i].buffer = std::span(storage).subspan(i * 2048, 2048);
    for (std::uint32_t sent = 0, round = 0; sent < 100'000; ++round) {
      for (std::size_t i = 0; i < batch.size(); ++i) {   // a different client random in each
        const std::uint32_t n = sent + static_cast<std::uint32_t>(i);
        for (int b = 0; b < 4; ++b) batch[i][13 + 12 + 2 + b] = static_cast<std::byte>(n >> (8 * b));
        slots[i] = {batch[i], endpoint};
      }
      dgram::UdpSocket& source = sources[round % sources.size()];
      std::error_code ec;
      // Answers that came after this source's last wait: read them, or they hold the server's send buffer
      // (on loopback a datagram is charged to its sender until it is read).
      while (const std::size_t late = source.receive_batch(replies, dgram::Deadline::now_or_never(), ec))
        answered += static_cast<std::uint32_t>(late);
      ec.clear();
      const std::size_t count = source.send_batch(slots, ec);
      sent += static_cast<std::uint32_t>(std::max<std::size_t>(count, 1));
      const auto wait = dgram::Deadline::after(200ms);
      for (std::size_t got = 0; got < count && !ec;) {
        const std::size_t received = source.receive_batch(replies, wait, ec);
        got += received;
        answered += static_cast<std::uint32_t>(received);
      }
    }
    flooding = false;
  });
  int served = 0, attempts = 0;
  // Real clients all along: at least 20, at most 150 (the server logs a line for each, and this test reads
  // its stderr only at the end: a full pipe would stall the server).
  while ((flooding && attempts < 150) || attempts < 20) {
    ++attempts;
    served += handshake_and_echo(context, endpoint, "legitimate " + std::to_string(attempts));
  }
  flood.join();
  CHECK(served == attempts);
  const long after = dgram::testing::resident_kib(server.process.pid());
  INFO("resident before " << before << " KiB, after " << after << " KiB");
  if (!sanitized_build) CHECK(after - before < 4 * 1024);
  const Finished stopped = server.stop();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("served " + std::to_string(served + warm_ups) + " sessions") != std::string::npos);
  CHECK(answered > 90'000);   // the flood did reach the server, and was answered without state
  std::smatch cookies;
  REQUIRE(std::regex_search(stopped.err, cookies, std::regex(R"((\d+) cookie challenges)")));
  CHECK(std::stoul(cookies[1]) >= answered);
}

TEST_CASE("dtls echo server --mode event: the session limit, and counters every --stats-interval-ms", "[dtls][examples][nonblocking]") {
  const auto modes = dgram::testing::server_modes();
  if (modes.front() != "event") return;   // this build has no event mode: nothing to check here
  auto server = dgram::testing::start_dtls_server("event", {"--max-sessions", "1", "--stats-interval-ms", "50"});
  REQUIRE(server.process.read_stderr_until("stats: sessions open 0, total 0;", 10s));
  auto holder = Process({program_path("DTLS_ECHO_CLIENT"), "--port", server.port, "--ca",
                         dgram::testing::cert_file("ca.pem"), "--nonblocking"});
  holder.write("holding the only slot\n");
  REQUIRE(holder.read_line(10s) == "holding the only slot");
  auto waiting = Process({program_path("DTLS_ECHO_CLIENT"), "--port", server.port, "--ca",
                          dgram::testing::cert_file("ca.pem"), "--nonblocking"});
  waiting.write("served later\n");
  REQUIRE(server.process.read_stderr_until("1 over the session limit", 10s));
  holder.close_stdin();   // close_notify: the slot frees
  CHECK(holder.wait(10s).exit_code == 0);
  CHECK(waiting.read_line(10s) == "served later");   // its retransmitted ClientHello found the free slot
  waiting.close_stdin();
  CHECK(waiting.wait(10s).exit_code == 0);
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("served 2 sessions, 2 messages") != std::string::npos);

  Process blocking({program_path("DTLS_ECHO_SERVER"), "--mode", "blocking", "--max-sessions", "5", "--port", "0",
                    "--cert", dgram::testing::cert_file("server-ecdsa.pem"), "--key",
                    dgram::testing::cert_file("server-ecdsa.key")});
  const Finished refused = blocking.wait(10s);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.starts_with("dtls-echo-server: --max-sessions needs --mode event or threaded"));
}
