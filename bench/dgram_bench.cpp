// dgram-bench: prints a table of dgram's rates against baselines measured in the same run, with the ratio
// and its target. Exit status 0 whether or not targets are met (it measures; it does not judge the machine),
// unless --check is given, which makes a missed target exit 1.
#include <fmt/core.h>
#include <sys/resource.h>

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
                                {"only", "udp|dispatch|dtls|event|threaded", "run one group of benchmarks"},
                                {"clients", "N", "event group: only the rows for N concurrent clients (1, 16 or 256)"},
                                {"dtls-server", "PATH", "dgram's dtls-echo-server (default: next to this build)"},
                                {"plain-server", "PATH", "the plain C wolfSSL server on Debian's wolfSSL (default: next to dgram-bench)"},
                                {"openssl", "PATH", "the openssl CLI (default /usr/bin/openssl)"},
                                {"system-dtls-server", "PATH", "dtls group: also compare against this dtls-echo-server built with -Dwolfssl=system"},
                                {"certs", "DIR", "the test certificates (default: the source tree's certs/)"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    rlimit files{};   // 10,000 sessions and 2,000 dispatch sockets need more descriptors than a shell's 1,024
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
      files.rlim_cur = files.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &files);
    }
    const int repetitions = static_cast<int>(command_line.integer("repetitions", 5, 1, 100));
    const std::string only = command_line.value_or("only", "");
    const std::vector<std::string> groups{"udp", "dispatch", "dtls", "event", "threaded"};
    if (!only.empty() && std::find(groups.begin(), groups.end(), only) == groups.end())
      throw ex::UsageError("--only takes udp, dispatch, dtls, event or threaded");
    std::vector<dgram::bench::Row> rows;
    const auto add = [&](const std::vector<dgram::bench::Row>& more) { rows.insert(rows.end(), more.begin(), more.end()); };
    if (only.empty() || only == "udp") add(dgram::bench::udp_benchmarks(repetitions));
    if (only.empty() || only == "dispatch") add(dgram::bench::dispatch_benchmarks(repetitions));
#ifdef DGRAM_BENCH_DTLS
    const dgram::bench::DtlsBenchSetup setup{command_line.value_or("dtls-server", DGRAM_BENCH_DTLS_SERVER),
                                            command_line.value_or("plain-server", DGRAM_BENCH_PLAIN_SERVER),
                                            DGRAM_BENCH_PLAIN_SERVER_SAME,
                                            command_line.value_or("openssl", "/usr/bin/openssl"),
                                            command_line.value_or("certs", DGRAM_BENCH_CERTS),
                                            command_line.value_or("system-dtls-server", "")};
    if (only.empty() || only == "dtls") add(dgram::bench::dtls_benchmarks(repetitions, setup));
#ifdef DGRAM_BENCH_EVENT
    if (only.empty() || only == "event")
      add(dgram::bench::event_benchmarks(repetitions, setup,
                                         static_cast<std::size_t>(command_line.integer("clients", 0, 0, 256))));
#endif
#ifdef DGRAM_BENCH_THREADED
    if (only.empty() || only == "threaded") add(dgram::bench::threaded_benchmarks(repetitions, setup));
#endif
#endif
    fmt::print("{:<36} {:>14} {:>12} {:>12}  {:<22} {:>7}  {}\n", "benchmark", "unit", "dgram", "baseline",
               "baseline is", "ratio", "target");
    bool all_met = true;
    const auto value = [](double v) { return v < 100 ? fmt::format("{:.2f}", v) : fmt::format("{:.0f}", v); };
    for (const auto& row : rows) {
      const double ratio = row.ours / row.baseline;
      const bool met = row.lower_is_better ? ratio <= row.target : ratio >= row.target;
      all_met = all_met && (row.target == 0 || met);
      const std::string verdict = row.target > 0 ? fmt::format("{} {:.2f} {}", row.lower_is_better ? "<=" : ">=",
                                                               row.target, met ? "met" : "MISSED")
                                                 : std::string("(for reference)");
      fmt::print("{:<36} {:>14} {:>12} {:>12}  {:<22} {:>7.3f}  {}\n", row.name, row.unit, value(row.ours),
                 value(row.baseline), row.baseline_name, ratio, verdict);
    }
    return command_line.flag("check") && !all_met ? 1 : 0;
  });
}
