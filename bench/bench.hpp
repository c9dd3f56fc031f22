// dgram-bench: each benchmark runs dgram and a baseline side by side in the same process, several times in
// alternating order, and reports medians and their ratio against a target. No timed unit tests: this is the
// only place speed is measured.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace dgram::bench {

struct Row {
  std::string name;        // e.g. "udp ping-pong"
  std::string unit;        // e.g. "round trips/s"
  double ours;             // median rate of dgram
  double baseline;         // median rate of the baseline
  std::string baseline_name;
  double target;           // the ratio ours / baseline must reach; 0 for a row shown for reference only
  bool lower_is_better{false};   // a cost (memory, CPU): the ratio must stay at or below the target
};

// The middle value (the mean of the two middle ones for an even count); 0 for none.
double median(std::vector<double> values);

// Runs each of the two measurements `repetitions` times, alternating which goes first, and returns medians.
// Each function returns a rate (higher is better).
Row compare(std::string name, std::string unit, std::string baseline_name, double target, int repetitions,
            const std::function<double()>& ours, const std::function<double()>& baseline);

std::vector<Row> udp_benchmarks(int repetitions);

// Where the DTLS benchmark finds the servers it measures and the test certificates.
struct DtlsBenchSetup {
  std::string dtls_server;    // dgram's dtls-echo-server
  std::string plain_server;   // bench/wolfssl_plain_server.c on Debian's wolfSSL, built as wolfssl-plain-server
  std::string plain_server_same;   // the same on the library dgram links (wolfssl-plain-server-same)
  std::string openssl;        // the openssl CLI, for s_server
  std::string certs;          // certs/
  std::string system_dtls_server;   // optional: a dtls-echo-server built with -Dwolfssl=system, compared against
};
std::vector<Row> dtls_benchmarks(int repetitions, const DtlsBenchSetup& setup);
// The event server against the blocking one and the plain C server at 1, 16 and 256 clients; its memory per
// idle session and its idle CPU. `only_clients` (when not 0) keeps the rate rows of that many clients only.
std::vector<Row> event_benchmarks(int repetitions, const DtlsBenchSetup& setup, std::size_t only_clients = 0);
// The threaded server with 1, 2 and 4 workers at 64 clients: handshakes/s and server CPU per 1,000 handshakes.
std::vector<Row> threaded_benchmarks(int repetitions, const DtlsBenchSetup& setup);
// How a datagram reaches the thread that owns its session, at 1,000 sessions, on raw UDP: SO_REUSEPORT
// sockets, one connected socket per session, one reader handing off through queues.
std::vector<Row> dispatch_benchmarks(int repetitions);

}  // namespace dgram::bench
