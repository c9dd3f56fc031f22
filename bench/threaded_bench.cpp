// Threaded-server benchmarks: full handshakes per second and the server's CPU-seconds per 1,000 handshakes, and
// 1200-byte echo round trips per second and CPU-seconds per 1,000 of them, with 1, 2 and 4 workers
// (dtls-echo-server --mode threaded), 64 concurrent clients. The load generator shares
// the machine's cores with the server, so the CPU per handshake (contention shows there) matters as much as
// the rate.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "bench.hpp"
#include "client_load.hpp"
#include "process_stats.hpp"
#include "server_process.hpp"

import dgram;

namespace dgram::bench {
namespace {

using Seconds = std::chrono::duration<double>;

struct Measured {
  double rate;              // handshakes or round trips per second
  double cpu_per_thousand;  // server CPU-seconds per 1,000 of them
};

constexpr int handshakes = 1000;
constexpr int echoes = 60'000;   // (the 64 sessions' handshakes, about 17 ms of CPU, count in: about 3 %)

// `work` does up to `count` operations and returns their rate.
template <class Work>
Measured measure(const ServerProcess& server, int count, Work work) {
  const double cpu_before = cpu_seconds(server.pid());
  const auto start = Clock::now();
  const double rate = work();
  const double elapsed = Seconds(Clock::now() - start).count();
  const double done = std::min<double>(count, rate * elapsed);
  return {rate, 1000 * (cpu_seconds(server.pid()) - cpu_before) / done};
}

Measured measure(const std::shared_ptr<dtls::DtlsContext>& context, const ServerProcess& server) {
  return measure(server, handshakes, [&] { return handshake_rate(context, server.port(), 64, handshakes, false); });
}

Measured measure_echo(const std::shared_ptr<dtls::DtlsContext>& context, const ServerProcess& server) {
  return measure(server, echoes, [&] { return echo_rate(context, server.port(), 64, echoes); });
}

}  // namespace

std::vector<Row> threaded_benchmarks(int repetitions, const DtlsBenchSetup& setup) {
  const std::string listening = R"(listening on 127\.0\.0\.1:(\d+))";
  const std::vector<int> worker_counts{1, 2, 4};
  std::vector<std::unique_ptr<ServerProcess>> servers;
  for (const int workers : worker_counts)
    servers.push_back(std::make_unique<ServerProcess>(
        std::vector<std::string>{setup.dtls_server, "--mode", "threaded", "--workers", std::to_string(workers), "--port",
                                 "0", "--cert", setup.certs + "/server-ecdsa.pem", "--key",
                                 setup.certs + "/server-ecdsa.key"},
        listening));
  const auto context = bench_client_context(setup.certs);
  for (const auto& server : servers) measure(context, *server);   // each worker's first handshakes fill caches
  std::vector<std::vector<double>> rates(servers.size()), cpus(servers.size());
  std::vector<std::vector<double>> echo_rates(servers.size()), echo_cpus(servers.size());
  for (int run = 0; run < repetitions; ++run) {
    for (std::size_t k = 0; k < servers.size(); ++k) {   // a different server goes first each run
      const std::size_t i = (k + static_cast<std::size_t>(run)) % servers.size();
      const Measured m = measure(context, *servers[i]);
      rates[i].push_back(m.rate);
      cpus[i].push_back(m.cpu_per_thousand);
      const Measured e = measure_echo(context, *servers[i]);
      echo_rates[i].push_back(e.rate);
      echo_cpus[i].push_back(e.cpu_per_thousand);
    }
  }
  std::vector<Row> rows;
  const double one_rate = median(rates[0]);
  const double one_cpu = median(cpus[0]);
  rows.push_back(Row{"threaded full hs, 64 cl, 1 worker", "handshakes/s", one_rate, one_rate, "1 worker", 0.0});
  rows.push_back(Row{"threaded CPU/1000 hs, 1 worker", "CPU-s", one_cpu, one_cpu, "1 worker", 0.0, true});
  for (std::size_t i = 1; i < servers.size(); ++i) {
    const std::string at = std::to_string(worker_counts[i]) + " workers";
    // 2 workers must not be slower than 1; 4 on these 2 cores must not collapse (within 10 %).
    rows.push_back(Row{"threaded full hs, 64 cl, " + at, "handshakes/s", median(rates[i]), one_rate, "1 worker",
                       worker_counts[i] == 2 ? 1.0 : 0.9});
    rows.push_back(Row{"threaded CPU/1000 hs, " + at, "CPU-s", median(cpus[i]), one_cpu, "1 worker", 1.1, true});
  }
  const double one_echo = median(echo_rates[0]);
  const double one_echo_cpu = median(echo_cpus[0]);   // (CPU-s per 1,000 = ms per 1,000 = us per round trip x 1)
  rows.push_back(Row{"threaded 1200 B echo, 64 cl, 1 worker", "round trips/s", one_echo, one_echo, "1 worker", 0.0});
  rows.push_back(Row{"threaded CPU/echo, 1 worker", "us", 1000 * one_echo_cpu, 1000 * one_echo_cpu, "1 worker", 0.0, true});
  for (std::size_t i = 1; i < servers.size(); ++i) {
    const std::string at = std::to_string(worker_counts[i]) + " workers";
    // An echo costs the server ~8 us, so on these 2 cores (shared with the load generator) every extra thread's
    // wake-ups show: measured 2026-12-01 over three runs of 3, 2 workers 0.80-0.90x the rate at 1.00-1.13x the
    // CPU, 4 workers (twice the cores) 0.73-0.98x at 1.17-1.45x. The rule is that nothing collapses: within 20 %
    // of the rate, 30 % of the CPU (4 workers on 2 cores miss it in some runs: oversubscribed, not a cliff).
    rows.push_back(Row{"threaded 1200 B echo, 64 cl, " + at, "round trips/s", median(echo_rates[i]), one_echo,
                       "1 worker", 0.8});
    rows.push_back(Row{"threaded CPU/echo, " + at, "us", 1000 * median(echo_cpus[i]), 1000 * one_echo_cpu, "1 worker",
                       1.3, true});
  }
  return rows;
}

}  // namespace dgram::bench
