#include "process_stats.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <iterator>
#include <sstream>
#include <string>

namespace dgram::bench {

namespace {

// From the scheduler's own accounting, in nanoseconds (the clock-tick counts of /proc/PID/stat are 10 ms each,
// too coarse for an idle server): the sum over the process's threads; nullopt without schedstat.
std::optional<double> scheduled_seconds(int pid) {
  std::error_code ec;
  std::filesystem::directory_iterator tasks("/proc/" + std::to_string(pid) + "/task", ec);
  if (ec) return std::nullopt;
  double total = 0;
  bool any = false;
  for (const auto& task : tasks) {
    std::ifstream schedstat(task.path() / "schedstat");
    unsigned long long on_cpu_ns = 0;
    if (!(schedstat >> on_cpu_ns)) continue;
    total += static_cast<double>(on_cpu_ns) / 1e9;
    any = true;
  }
  return any ? std::optional(total) : std::nullopt;
}

}  // namespace

double cpu_seconds(int pid) {
  if (const auto precise = scheduled_seconds(pid)) return *precise;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long resident_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return 0;
}

}  // namespace dgram::bench
