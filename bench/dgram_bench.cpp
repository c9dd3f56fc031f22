// dgram-bench: prints a table of dgram's rates against baselines measured in the same run, with the ratio
// and its target. Exit status 0 whether or not targets are met (it measures; it does not judge the machine),
// unless --check is given, which makes a missed target exit 1.
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "../examples/common/cli.hpp"
#include "bench.hpp"

namespace ex = dgram::examples;

int main(int argc, char** argv) {
  ex::CommandLine command_line{"dgram-bench", "[--repetitions N] [--check]",
                               {{"repetitions", "N", "runs of each measurement; medians are reported (default 5)"},
                                {"check", "", "exit 1 when a ratio misses its target"},
                                {"only", "udp|dtls", "run one group of benchmarks"},
                                {"dtls-server", "PATH", "dgram's dtls-echo-server (default: next to this build)"},
                                {"plain-server", "PATH", "the plain C wolfSSL server (default: next to dgram-bench)"},
                                {"openssl", "PATH", "the openssl CLI (default /usr/bin/openssl)"},
                                {"certs", "DIR", "the test certificates (default: the source tree's certs/)"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    const int repetitions = static_cast<int>(command_line.integer("repetitions", 5, 1, 100));
    const std::string only = command_line.value_or("only", "");
    if (!only.empty() && only != "udp" && only != "dtls") throw ex::UsageError("--only takes udp or dtls");
    std::vector<dgram::bench::Row> rows;
    if (only != "dtls") rows = dgram::bench::udp_benchmarks(repetitions);
#ifdef DGRAM_BENCH_DTLS
    if (only != "udp") {
      const dgram::bench::DtlsBenchSetup setup{command_line.value_or("dtls-server", DGRAM_BENCH_DTLS_SERVER),
                                              command_line.value_or("plain-server", DGRAM_BENCH_PLAIN_SERVER),
                                              command_line.value_or("openssl", "/usr/bin/openssl"),
                                              command_line.value_or("certs", DGRAM_BENCH_CERTS)};
      const auto dtls_rows = dgram::bench::dtls_benchmarks(repetitions, setup);
      rows.insert(rows.end(), dtls_rows.begin(), dtls_rows.end());
    }
#endif
    fmt::print("{:<24} {:>16} {:>14} {:>14}  {:<22} {:>6}  {}\n", "benchmark", "unit", "dgram", "baseline",
               "baseline is", "ratio", "target");
    bool all_met = true;
    for (const auto& row : rows) {
      const double ratio = row.ours / row.baseline;
      const bool met = ratio >= row.target;
      all_met = all_met && met;
      const std::string verdict = row.target > 0 ? fmt::format(">= {:.2f} {}", row.target, met ? "met" : "MISSED")
                                                 : std::string("(for reference)");
      fmt::print("{:<24} {:>16} {:>14.0f} {:>14.0f}  {:<22} {:>6.3f}  {}\n", row.name, row.unit, row.ours,
                 row.baseline, row.baseline_name, ratio, verdict);
    }
    return command_line.flag("check") && !all_met ? 1 : 0;
  });
}
