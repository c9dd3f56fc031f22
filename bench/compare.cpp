#include <algorithm>
#include <utility>

#include "bench.hpp"

namespace dgram::bench {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

Row compare(std::string name, std::string unit, std::string baseline_name, double target, int repetitions,
            const std::function<double()>& ours, const std::function<double()>& baseline) {
  std::vector<double> ours_rates, baseline_rates;
  ours();       // warm-up: page in code and buffers, let the CPU clock settle
  baseline();
  for (int i = 0; i < repetitions; ++i) {
    if (i % 2 == 0) {
      ours_rates.push_back(ours());
      baseline_rates.push_back(baseline());
    } else {
      baseline_rates.push_back(baseline());
      ours_rates.push_back(ours());
    }
  }
  return {std::move(name), std::move(unit), median(ours_rates), median(baseline_rates), std::move(baseline_name),
          target};
}

}  // namespace dgram::bench
