// The example programs end to end: real processes on loopback, ports read from the server's first line.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "support/process.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::Finished;
using dgram::testing::Process;
using dgram::testing::program_path;

namespace {

// A running udp-echo-server; the Process destructor stops it if a test did not.
struct EchoServer : dgram::testing::ListeningServer {
  explicit EchoServer(const std::string& bind = "127.0.0.1")
      : ListeningServer{dgram::testing::start_listening({program_path("UDP_ECHO_SERVER"), "--bind", bind, "--port", "0"})} {}
};

Process client(const std::string& host, const std::string& port, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{program_path("UDP_ECHO_CLIENT"), "--host", host, "--port", port};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Process(argv);
}

std::string fmt_hex(std::uint16_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%04x\n", value);
  return text;
}

std::size_t line_count(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST_CASE("udp echo: lines come back in order, then SIGTERM stops the server with exit 0", "[examples][udp]") {
  EchoServer server;
  CHECK(server.address == "127.0.0.1");
  const std::string input = "hello\n\nsecond line with spaces\n" + std::string(1400, 'x') + "\n";
  auto run = client("127.0.0.1", server.port);
  const Finished done = run.communicate(input, 10s);
  CHECK(done.exit_code == 0);
  CHECK(done.out == input);
  CHECK(done.err.empty());
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.signal == 0);
  CHECK(stopped.err.find("served 4 datagrams (1428 bytes)") != std::string::npos);
}

TEST_CASE("udp echo over IPv6, with the largest datagram", "[examples][udp]") {
  EchoServer server("::1");
  CHECK(server.address == "[::1]");
  const std::string big(65507, 'z');
  auto run = client("::1", server.port);
  const Finished done = run.communicate(big + "\nend\n", 10s);
  CHECK(done.exit_code == 0);
  CHECK(done.out == big + "\nend\n");
  CHECK(server.stop().exit_code == 0);
}

TEST_CASE("udp echo: 20 concurrent clients on one server", "[examples][udp]") {
  EchoServer server;
  std::vector<Process> clients;
  std::vector<std::string> inputs;
  for (int i = 0; i < 20; ++i) {
    std::string input;
    for (int line = 0; line < 50; ++line) input += "client " + std::to_string(i) + " line " + std::to_string(line) + "\n";
    inputs.push_back(input);
    clients.push_back(client("127.0.0.1", server.port));
  }
  for (int i = 0; i < 20; ++i) clients[i].feed(inputs[i]);   // all running at once
  for (int i = 0; i < 20; ++i) {
    const Finished done = clients[i].wait(20s);
    INFO("client " << i << " stderr: " << done.err);
    CHECK(done.exit_code == 0);
    CHECK(done.out == inputs[i]);
  }
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(stopped.err.find("served 1000 datagrams") != std::string::npos);
}

TEST_CASE("udp echo client: a closed port is one clear line and exit 1", "[examples][udp]") {
  std::string port;
  {
    auto probe = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
    std::error_code ec;
    port = std::to_string(probe.local_endpoint(ec).port());
  }
  auto run = client("127.0.0.1", port, {"--timeout-ms", "2000"});
  const Finished done = run.communicate("ping\n", 10s);
  CHECK(done.exit_code == 1);
  CHECK(done.err == "udp-echo-client: no server at 127.0.0.1:" + port + " (connection refused)\n");
  CHECK(done.out.empty());
}

TEST_CASE("udp echo client: a silent server gives up after the retries", "[examples][udp]") {
  auto silent = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  std::error_code ec;
  const std::string port = std::to_string(silent.local_endpoint(ec).port());
  auto run = client("127.0.0.1", port, {"--timeout-ms", "50", "--retries", "2"});
  const Finished done = run.communicate("anyone?\n", 10s);
  CHECK(done.exit_code == 1);
  CHECK(done.err == "udp-echo-client: no reply from 127.0.0.1:" + port + " after 2 retries (50 ms each)\n");
  std::vector<std::byte> buffer(100);
  int attempts = 0;
  while (silent.receive_from(buffer, dgram::Deadline::now_or_never(), ec).size == 7 && !ec) ++attempts;
  CHECK(attempts == 3);   // the first try and two retries
}

TEST_CASE("example programs: --help, usage errors and runtime errors", "[examples]") {
  for (const char* program : {"UDP_ECHO_SERVER", "UDP_ECHO_CLIENT", "UDP_CHECKSUM"}) {
    INFO(program);
    Process help({program_path(program), "--help"});
    const Finished shown = help.wait(10s);
    CHECK(shown.exit_code == 0);
    CHECK(shown.out.starts_with("Usage: "));
    Process wrong({program_path(program), "--no-such-option"});
    const Finished refused = wrong.wait(10s);
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("unknown option '--no-such-option'") != std::string::npos);
    CHECK(line_count(refused.err) == 2);   // the error and the --help hint
  }
  Process bad_port({program_path("UDP_ECHO_SERVER"), "--port", "70000"});
  const Finished port_refused = bad_port.wait(10s);
  CHECK(port_refused.exit_code == 2);
  CHECK(port_refused.err.find("--port must be an integer from 0 to 65535, got '70000'") != std::string::npos);
  Process empty_port({program_path("UDP_ECHO_CLIENT"), "--port", "--host", "127.0.0.1"});   // `--port $UNSET`
  const Finished no_value = empty_port.wait(10s);
  CHECK(no_value.exit_code == 2);
  CHECK(no_value.err.find("option '--port' needs a value (N), but '--host' follows it") != std::string::npos);

  EchoServer first;   // a second server on the same port cannot bind: one line, exit 1
  Process second({program_path("UDP_ECHO_SERVER"), "--port", first.port});
  const Finished busy = second.wait(10s);
  CHECK(busy.exit_code == 1);
  CHECK(line_count(busy.err) == 1);
  CHECK(busy.err.find("Address already in use") != std::string::npos);
  CHECK(first.stop().exit_code == 0);
}

TEST_CASE("udp-checksum prints the Internet and the UDP checksum", "[examples][checksum]") {
  auto run = [](std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), program_path("UDP_CHECKSUM"));
    Process process(args);
    return process.communicate(input, 10s);
  };
  CHECK(run({"--hex", "00 01 f2 03 f4 f5 f6 f7"}).out == "0x220d\n");
  CHECK(run({"--hex", "9E62514D"}).out == "0x1050\n");
  CHECK(run({}, std::string("\x00\x01\xf2\x03\xf4\xf5\xf6\xf7", 8)).out == "0x220d\n");
  CHECK(run({}).out == "0xffff\n");

  const std::array<std::uint8_t, 4> a{127, 0, 0, 1}, b{127, 0, 0, 2};
  const std::array<std::byte, 2> hi{std::byte{'h'}, std::byte{'i'}};
  const auto v4 = dgram::udp_checksum_ipv4(a, b, 1000, 2000, hi);
  CHECK(run({"--udp", "--src", "127.0.0.1:1000", "--dst", "127.0.0.2:2000", "--hex", "6869"}).out ==
        fmt_hex(v4));
  std::array<std::uint8_t, 16> one{};
  one[15] = 1;
  const auto v6 = dgram::udp_checksum_ipv6(one, one, 1000, 2000, hi);
  CHECK(run({"--udp", "--src", "[::1]:1000", "--dst", "[::1]:2000"}, "hi").out == fmt_hex(v6));

  const Finished odd = run({"--hex", "abc"});
  CHECK(odd.exit_code == 2);
  CHECK(odd.err.starts_with("udp-checksum: --hex: odd number of hex digits\n"));
  const Finished mixed = run({"--udp", "--src", "127.0.0.1:1", "--dst", "[::1]:2", "--hex", "00"});
  CHECK(mixed.exit_code == 2);
  const Finished bad_endpoint = run({"--udp", "--src", "1.2.3.4:99999", "--dst", "1.2.3.4:1", "--hex", "00"});
  CHECK(bad_endpoint.exit_code == 2);
  CHECK(bad_endpoint.err.starts_with("udp-checksum: --src '1.2.3.4:99999': port 99999 is out of range 0-65535\n"));
}
