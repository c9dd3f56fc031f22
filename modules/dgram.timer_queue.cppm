// dgram.timer_queue: the deadlines of many objects (sessions) in one min-heap, so a server finds the next
// due one in O(1) and reschedules in O(log n) instead of scanning every session per wake-up.
//
// Entries are never removed early (lazy deletion): when an object's deadline moves earlier, its owner
// schedules a new entry and remembers its time; the old one surfaces later and the owner skips it because the
// time (or the generation of a reused slot) no longer matches. When a deadline moves later, the owner keeps the
// old entry; it surfaces early and the owner schedules the real time then. So the heap holds about one entry per
// object, and an object that is busy (every datagram pushes its idle deadline later) costs nothing here.
module;
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>
export module dgram.timer_queue;

export import dgram.clock;

export namespace dgram {

class TimerQueue {
 public:
  struct Entry {
    TimePoint when;
    std::uint32_t key;          // the owner's slot
    std::uint32_t generation;   // the owner's generation of that slot when scheduled
  };

  void schedule(std::uint32_t key, std::uint32_t generation, TimePoint when) {
    heap_.push_back({when, key, generation});
    std::push_heap(heap_.begin(), heap_.end(), later);
  }
  // The earliest entry's time (possibly a stale one); never() when empty.
  Deadline next() const noexcept { return heap_.empty() ? Deadline::never() : Deadline::at(heap_.front().when); }
  // Removes and returns the earliest entry if it is due at `now`; stale entries come out too.
  std::optional<Entry> pop_due(TimePoint now) {
    if (heap_.empty() || heap_.front().when > now) return std::nullopt;
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Entry entry = heap_.back();
    heap_.pop_back();
    return entry;
  }
  std::size_t size() const noexcept { return heap_.size(); }
  bool empty() const noexcept { return heap_.empty(); }

 private:
  static bool later(const Entry& a, const Entry& b) noexcept { return a.when > b.when; }
  std::vector<Entry> heap_;
};

}  // namespace dgram
