#include "rate_limited_log.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>

#include "cli.hpp"

namespace dgram::examples {

RateLimitedLog::RateLimitedLog(std::string program, std::string what, int burst, int per_second)
    : program_{std::move(program)},
      what_{std::move(what)},
      burst_{static_cast<double>(burst)},
      per_second_{static_cast<double>(per_second)},
      tokens_{burst_},
      refilled_{std::chrono::steady_clock::now()} {}

bool RateLimitedLog::take_token() {
  const auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - refilled_).count() * per_second_);
  refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void RateLimitedLog::line(const std::string& text) {
  if (!take_token()) {
    ++held_back_;
    ++held_back_total_;
    return;
  }
  flush(true);
  fmt::print(stderr, "{}: {}\n", program_, text);
}

void RateLimitedLog::flush(bool force) {
  if (held_back_ == 0 || (!force && !take_token())) return;
  fmt::print(stderr, "{}: ({} not shown: too many at once)\n", program_, plural(held_back_, "more " + what_));
  held_back_ = 0;
}

}  // namespace dgram::examples
