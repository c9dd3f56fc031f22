#include "line_client.hpp"

#include "cli.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <span>
#include <string>
#include <system_error>
#include <vector>

import dgram;

namespace dgram::examples {
namespace {

std::span<const std::byte> bytes_of(const std::string& text) { return std::as_bytes(std::span(text)); }

bool same_bytes(std::span<const std::byte> a, const std::string& b) {
  const auto bb = bytes_of(b);
  return a.size() == bb.size() && std::equal(a.begin(), a.end(), bb.begin());
}

enum class Outcome { replied, no_reply, failed };

class LineClient {
 public:
  LineClient(Channel& channel, const LineClientSettings& settings)
      : channel_{channel}, settings_{settings}, reply_(65536) {}

  int run(std::istream& input) {
    std::string line;
    for (std::size_t number = 1; std::getline(input, line); ++number) {
      if (line.size() > channel_.max_message_size())
        return fail(fmt::format("line {} is {} bytes, more than the {} one message can carry", number,
                                line.size(), channel_.max_message_size()));
      line_number_ = number;
      if (const int status = take_arrivals(); status != 0) return status;
      if (const int status = exchange(line); status != 0) return status;
    }
    std::error_code ec;
    channel_.close(ec);
    return 0;
  }

 private:
  // Takes what arrived while we waited for input, without waiting: late copies of earlier replies are
  // dropped; a close_notify ends the run with the reason.
  int take_arrivals() {
    for (;;) {
      std::error_code ec;
      channel_.receive(reply_, Deadline::now_or_never(), ec);
      if (ec == errc::timeout || ec == errc::would_block) return 0;
      if (ec) return fail_with(ec, "receive");
      stale_.clear();
    }
  }

  // Sends `line` and prints its reply, retrying when none comes in time.
  int exchange(const std::string& line) {
    for (int attempt = 0; attempt <= settings_.retries; ++attempt) {
      std::error_code ec;
      channel_.send(bytes_of(line), ec);
      if (ec == errc::empty_message) {
        fmt::print(stderr, "{}: line {} is empty and this transport cannot send an empty message: skipped\n",
                   settings_.program, line_number_);
        return 0;
      }
      if (ec) return fail_with(ec, "send");
      const Deadline deadline = Deadline::after(settings_.timeout);
      for (;;) {
        const std::size_t size = channel_.receive(reply_, deadline, ec);
        if (ec == errc::timeout) break;
        if (ec) return fail_with(ec, "receive");
        const auto reply = std::span(reply_).first(size);
        // After a retry, the late reply to the previous line may still arrive: it is not this line's reply.
        if (!stale_.empty() && same_bytes(reply, stale_) && !same_bytes(reply, line)) {
          stale_.clear();
          continue;
        }
        std::fwrite(reply.data(), 1, reply.size(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
        stale_ = attempt > 0 ? line : std::string{};
        return 0;
      }
    }
    return fail(fmt::format("no reply from {} after {} ({} ms each){}", channel_.peer().to_string(),
                            plural(settings_.retries, "retry", "retries"), settings_.timeout.count(),
                            settings_.session ? ": the server may have dropped the session (idle too long?)" : ""));
  }

  int fail_with(const std::error_code& ec, const char* what) {
    if (ec == std::errc::connection_refused)
      return fail(fmt::format("no server at {} (connection refused)", channel_.peer().to_string()));
    if (ec == errc::closed) return fail(fmt::format("the server at {} closed the session", channel_.peer().to_string()));
    return fail(fmt::format("{} to {} failed: {}", what, channel_.peer().to_string(), ec.message()));
  }

  int fail(const std::string& message) {
    fmt::print(stderr, "{}: {}\n", settings_.program, message);
    return 1;
  }

  Channel& channel_;
  const LineClientSettings& settings_;
  std::vector<std::byte> reply_;
  std::string stale_;   // a line that was retried: a second copy of its reply may still come
  std::size_t line_number_{0};
};

}  // namespace

LineClientSettings line_client_settings(const CommandLine& command_line) {
  return {command_line.program(), std::chrono::milliseconds{command_line.integer("timeout-ms", 1000, 1, 3'600'000)},
          static_cast<int>(command_line.integer("retries", 3, 0, 1000))};
}

int run_line_client(Channel& channel, const LineClientSettings& settings, std::istream& input) {
  return LineClient{channel, settings}.run(input);
}

}  // namespace dgram::examples
