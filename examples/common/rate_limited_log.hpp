// Log lines for events a peer can cause at will (failed handshakes): each is shown, up to a burst and then a
// steady rate, so a flood of them cannot flood the log or slow the server; the ones held back are counted and
// the count is shown with the next line that goes out (or by flush()).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace dgram::examples {

class RateLimitedLog {
 public:
  // Lines go to stderr as "PROGRAM: text"; `what` names the events in the held-back count ("handshake failure").
  RateLimitedLog(std::string program, std::string what, int burst = 20, int per_second = 5);

  void line(const std::string& text);
  // Shows the count of lines held back, if any, when the rate allows it (or at once with `force`).
  void flush(bool force = false);
  std::uint64_t held_back_total() const { return held_back_total_; }

 private:
  bool take_token();

  std::string program_;
  std::string what_;
  double burst_;
  double per_second_;
  double tokens_;
  std::chrono::steady_clock::time_point refilled_;
  std::uint64_t held_back_{0};        // since the last line shown
  std::uint64_t held_back_total_{0};
};

}  // namespace dgram::examples
