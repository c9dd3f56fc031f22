// Soak through a corrupting path: real clients (dtls-echo-client and openssl s_client -dtls1_2) reach
// dtls-echo-server, in every mode this build has, through a relay that mutates about 5 % of the datagrams each
// way (bit flips, truncation, appended bytes, duplication, reordering). Every dtls-echo-client session either
// echoes byte-exact or ends with a clear one-line error within its time; the server keeps serving a clean
// client afterwards; its resident memory after the soak is within 2 MiB of before. Every wait is bounded.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/process.hpp"
#include "support/udp_relay.hpp"

using namespace std::chrono_literals;
using dgram::testing::cert_file;
using dgram::testing::Finished;
using dgram::testing::Process;
using dgram::testing::program_path;

namespace {

using dgram::testing::sanitized_build;

struct Tally {
  int echoed{0};
  int clear_errors{0};
  int foreign_hangs{0};                // s_client sessions killed after their time: openssl's way, reported
  std::map<std::string, int> errors;   // each way a session ended without its echo, and how often
  std::vector<std::string> broken;     // what each broken session did instead

  void add(const Tally& other) {
    echoed += other.echoed;
    clear_errors += other.clear_errors;
    foreign_hangs += other.foreign_hangs;
    for (const auto& [error, count] : other.errors) errors[error] += count;
    broken.insert(broken.end(), other.broken.begin(), other.broken.end());
  }
  std::string describe() const {
    std::string text;
    for (const auto& [error, count] : errors) text += std::to_string(count) + " x " + error;
    for (const auto& what : broken) text += "BROKEN: " + what + "\n";
    return text;
  }
};

// One session of dtls-echo-client: two lines, each resent after 300 ms without a reply.
void echo_client_session(const std::string& port, int number, Tally& tally) {
  const std::string input =
      "soak " + std::to_string(number) + "\n" + std::string(200 + number % 300, static_cast<char>('a' + number % 26)) + "\n";
  Process client({program_path("DTLS_ECHO_CLIENT"), "--port", port, "--ca", cert_file("ca.pem"), "--timeout-ms",
                  "300", "--retries", "8"});
  client.feed(input);   // at once: the client reads its lines as soon as its handshake is done
  const Finished done = client.wait(40s);
  if (done.exit_code == 0 && done.out == input) {
    ++tally.echoed;
  } else if (done.exit_code == 1 && done.signal == 0 && done.err.starts_with("dtls-echo-client: ") &&
             done.err.find('\n') == done.err.size() - 1) {   // one line saying why
    ++tally.clear_errors;
    ++tally.errors[done.err.substr(done.err.find("failed: ") == std::string::npos ? 0 : done.err.find("failed: "))];
  } else {
    tally.broken.push_back("dtls-echo-client exit " + std::to_string(done.exit_code) + " signal " +
                           std::to_string(done.signal) + ", out '" + done.out.substr(0, 200) + "', err '" +
                           done.err.substr(0, 300) + "'");
  }
}

// One session of openssl s_client (not -quiet: that ignores the end of its input): a line, and its echo.
// DTLS does not resend application data and s_client has no timeout of its own, so, as dtls-echo-client does,
// the line is sent again when no echo came. -nbio: on its default blocking socket, a record it drops (a
// corrupted echo, a duplicate) left s_client blocked in its read, deaf to the lines sent again.
void openssl_session(const std::string& port, int number, Tally& tally) {
  const std::string line = "openssl soak " + std::to_string(number);
  Process client({"/usr/bin/openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:" + port, "-CAfile",
                  cert_file("ca.pem"), "-verify_return_error", "-nbio"});
  client.write(line + "\n");
  // Its handshake (with its own retransmissions) first: the sanitizer builds' server is several times slower.
  bool echoed = client.read_until(line, sanitized_build ? 15s : 5s).has_value();
  for (int retry = 0; retry < 4 && !echoed; ++retry) {
    client.write(line + "\n");
    echoed = client.read_until(line, 1s).has_value();
  }
  client.close_stdin();
  const Finished done = client.wait(5s);
  if (echoed) {
    ++tally.echoed;
  } else if (done.signal == 0) {   // it ended by itself: its own error, or the end of its input
    ++tally.clear_errors;
    ++tally.errors["openssl s_client exit " + std::to_string(done.exit_code) + " without the echo\n"];
  } else {
    // Seen when the server rightly gave up the handshake (a key exchange corrupted on the way) and its alert was
    // lost: s_client resends its last flight to a server that has no session for it, for longer than this. And
    // when its HelloVerifyRequest's cookie was corrupted: the server challenges the bad cookie again, but a
    // second HelloVerifyRequest has message_seq 0 like the first, which s_client takes for a repeat. (wolfSSL's
    // client does the same in both cases, and reports its timeout.)
    ++tally.foreign_hangs;
    ++tally.errors["openssl s_client still running after its input ended (killed)\n"];
  }
}

int s_client_sessions(int sessions) { return sessions / 5; }

// `sessions` sessions over `lanes` threads, each lane running one session at a time (so one slow session holds
// up only its lane); every fifth session is openssl's.
Tally soak(const std::string& port, int sessions, int lanes) {
  std::atomic<int> next{0};
  std::vector<Tally> tallies(static_cast<std::size_t>(lanes));
  std::vector<std::thread> threads;
  for (auto& tally : tallies) {
    threads.emplace_back([&] {
      for (int n = next++; n < sessions; n = next++) {
        try {
          if (n % 5 == 4) openssl_session(port, n, tally);
          else echo_client_session(port, n, tally);
        } catch (const std::exception& e) {
          tally.broken.push_back(std::string("could not run a client: ") + e.what());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  Tally total;
  for (const auto& tally : tallies) total.add(tally);
  return total;
}

// A session over the clean path. Two tries: the blocking server may still be finishing an abandoned handshake
// (up to its handshake timeout), during which it drops other peers' datagrams.
bool clean_session(const std::string& port, const std::string& line) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    Process client({program_path("DTLS_ECHO_CLIENT"), "--port", port, "--ca", cert_file("ca.pem")});
    const Finished done = client.communicate(line + "\n", 20s);
    if (done.exit_code == 0 && done.out == line + "\n") return true;
  }
  return false;
}

// Every server mode of the build, the threaded one once, with its most workers (the other worker counts run
// the example and event-server suites).
std::vector<std::string> soak_modes() {
  std::vector<std::string> modes;
  for (const auto& mode : dgram::testing::server_modes()) {
    if (mode.starts_with("threaded:") && !modes.empty() && modes.back().starts_with("threaded:")) modes.pop_back();
    modes.push_back(mode);
  }
  return modes;
}

}  // namespace

TEST_CASE("soak: sessions through a path that corrupts about 5% of datagrams each way", "[dtls][soak]") {
  const std::string mode = GENERATE(from_range(soak_modes()));
  INFO("server mode " << mode);
  // Sessions whose client gave up are dropped after 2 s of silence.
  auto server = dgram::testing::start_dtls_server(mode, {"--idle-timeout-ms", "2000"});
  // The same load over the clean path first, so that every worker's caches and allocator arenas have grown to
  // what this concurrency needs before the memory is measured.
  // Under the sanitizers the server runs several times slower: fewer clients at once, so that handshakes are
  // not starved into their timeouts (what is looked for there is leaks and races, not rates).
  const bool blocking = mode == "blocking";
  const int lanes = blocking ? 1 : sanitized_build ? 4 : 16;
  const Tally warm_up = soak(server.port, 3 * lanes, lanes);
  INFO(warm_up.describe());
  REQUIRE(warm_up.echoed == 3 * lanes);
  const long before = dgram::testing::resident_kib(server.process.pid());

  dgram::testing::RelayFaults faults;
  faults.corrupt = 0.03;
  faults.duplicate = 0.01;
  faults.reorder = 0.01;
  faults.seed = 2026;
  dgram::testing::UdpRelay relay("127.0.0.1", static_cast<std::uint16_t>(std::stoi(server.port)), faults);
  // The blocking server serves one session at a time (it drops other peers' datagrams meanwhile): fewer
  // sessions, one at a time.
  const int sessions = blocking ? (sanitized_build ? 20 : 30) : (sanitized_build ? 60 : 200);
  const Tally tally = soak(std::to_string(relay.port()), sessions, lanes);
  const auto counts = relay.counts();
  // Everything is measured before anything is asserted, so that a failure shows the server's own account.
  const bool served_afterwards = clean_session(server.port, "after the soak");
  const long after = dgram::testing::resident_kib(server.process.pid());
  const Finished stopped = server.stop();
  INFO("echoed " << tally.echoed << ", ended with an error " << tally.clear_errors << ", s_client hangs "
       << tally.foreign_hangs << "; relay corrupted " << counts.corrupted << ", duplicated " << counts.duplicated
       << ", reordered " << counts.reordered << " of " << counts.forwarded);
  INFO(tally.describe());
  INFO("the server's last words:\n" << dgram::testing::last_lines(stopped.err, 12));
  CHECK(tally.broken.empty());
  CHECK(tally.echoed + tally.clear_errors + tally.foreign_hangs == sessions);
  // openssl's own behaviour, bounded loosely: a systematic failure (no s_client ever served) still shows.
  CHECK(tally.foreign_hangs <= s_client_sessions(sessions) / 3);
  // The path is hostile, not hopeless. About 1 in 9 sessions fails: DTLS 1.2 handshake messages before the
  // Finished are not protected, so a corrupted one that still parses ends its handshake. (Measured: 83 % to
  // 93 % of 60 sessions echoed; 70 % keeps a failing run a rarity and still catches a systematic failure.)
  CHECK(tally.echoed >= sessions * 7 / 10);
  CHECK(counts.corrupted > 0);
  CHECK(served_afterwards);
  if (!sanitized_build) {
    INFO("resident before " << before << " KiB, after " << after << " KiB");
    CHECK(after - before <= 2048);
  }
  CHECK(stopped.exit_code == 0);
}
