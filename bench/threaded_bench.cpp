// Threaded-server benchmarks: full handshakes per second and the server's CPU-seconds per 1,000 handshakes
// with 1, 2 and 4 workers (dtls-echo-server --mode threaded), 64 concurrent clients. The load generator shares
// the machine's cores with the server, so the CPU per handshake (contention shows there) matters as much as
// the rate.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "bench.hpp"
#include "client_load.hpp"
#include "server_process.hpp"

import dgram;

namespace dgram::bench {
namespace {

using Seconds = std::chrono::duration<double>;

struct Measured {
  double rate;              // handshakes/s
  double cpu_per_thousand;  // server CPU-seconds per 1,000 handshakes
};

Measured measure(const std::shared_ptr<dtls::DtlsContext>& context, const ServerProcess& server) {
  constexpr int handshakes = 1000;
  const double cpu_before = cpu_seconds(server.pid());
  const auto start = Clock::now();
  const double rate = handshake_rate(context, server.port(), 64, handshakes, false);
  const double elapsed = Seconds(Clock::now() - start).count();
  const double done = std::min<double>(handshakes, rate * elapsed);
  return {rate, 1000 * (cpu_seconds(server.pid()) - cpu_before) / done};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
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
  for (int run = 0; run < repetitions; ++run) {
    for (std::size_t k = 0; k < servers.size(); ++k) {   // a different server goes first each run
      const std::size_t i = (k + static_cast<std::size_t>(run)) % servers.size();
      const Measured m = measure(context, *servers[i]);
      rates[i].push_back(m.rate);
      cpus[i].push_back(m.cpu_per_thousand);
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
  return rows;
}

}  // namespace dgram::bench
