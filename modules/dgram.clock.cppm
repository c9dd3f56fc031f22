// dgram.clock: the one clock and the deadline type that every blocking call and every timer uses.
//
// Deadlines are absolute (a point on the steady clock), so a call that loops or retries never stretches the
// time its caller granted. The sans-I/O parts take `now` as a parameter instead of reading the clock, so tests
// can drive time by hand.
module;
#include <chrono>
export module dgram.clock;

export namespace dgram {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;

class Deadline {
 public:
  // A deadline that never passes: the call waits as long as it takes.
  static constexpr Deadline never() noexcept { return Deadline{TimePoint::max()}; }
  // A deadline that has already passed: the call does what it can without waiting.
  static constexpr Deadline now_or_never() noexcept { return Deadline{TimePoint::min()}; }
  static Deadline after(Duration timeout) noexcept { return Deadline{Clock::now() + timeout}; }
  static constexpr Deadline at(TimePoint point) noexcept { return Deadline{point}; }

  constexpr bool is_never() const noexcept { return point_ == TimePoint::max(); }
  constexpr TimePoint point() const noexcept { return point_; }
  // Time left from `now`, never negative. Meaningless for never(); check is_never() first.
  constexpr Duration remaining(TimePoint now) const noexcept {
    return point_ > now ? point_ - now : Duration::zero();
  }
  constexpr bool passed(TimePoint now) const noexcept { return !is_never() && now >= point_; }
  // The earlier of two deadlines.
  constexpr Deadline min(Deadline other) const noexcept { return other.point_ < point_ ? other : *this; }

  // The time left as a poll(2)/epoll_wait timeout: whole milliseconds rounded up (so a wait never ends before
  // the deadline), -1 for never, at most a day.
  constexpr int poll_timeout_ms(TimePoint now) const noexcept {
    if (is_never()) return -1;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining(now)).count();
    return static_cast<int>(ms < 86'400'000 ? ms : 86'400'000);
  }

  friend constexpr bool operator==(Deadline, Deadline) = default;

 private:
  constexpr explicit Deadline(TimePoint point) noexcept : point_{point} {}
  TimePoint point_;
};

}  // namespace dgram
