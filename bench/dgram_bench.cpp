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
                                {"check", "", "exit 1 when a ratio misses its target"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    const int repetitions = static_cast<int>(command_line.integer("repetitions", 5, 1, 100));
    std::vector<dgram::bench::Row> rows = dgram::bench::udp_benchmarks(repetitions);
    fmt::print("{:<24} {:>16} {:>14} {:>14}  {:<22} {:>6}  {}\n", "benchmark", "unit", "dgram", "baseline",
               "baseline is", "ratio", "target");
    bool all_met = true;
    for (const auto& row : rows) {
      const double ratio = row.ours / row.baseline;
      const bool met = ratio >= row.target;
      all_met = all_met && met;
      fmt::print("{:<24} {:>16} {:>14.0f} {:>14.0f}  {:<22} {:>6.3f}  >= {:.2f} {}\n", row.name, row.unit,
                 row.ours, row.baseline, row.baseline_name, ratio, row.target, met ? "met" : "MISSED");
    }
    return command_line.flag("check") && !all_met ? 1 : 0;
  });
}
