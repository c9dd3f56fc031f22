// SIGINT / SIGTERM as a stop request that blocking waits notice: the handler is installed without
// SA_RESTART, so a blocked receive returns errc::interrupted, and servers also wake at least every
// `stop_check_interval` to look at the flag (a signal can land just before a wait starts).
#pragma once

#include <chrono>

namespace dgram::examples {

inline constexpr std::chrono::milliseconds stop_check_interval{200};

void install_stop_handlers();
bool stop_requested();
// Also calls `callback(context, signal)` from the signal handler (so it must be async-signal-safe, as
// EventServer::stop and drain are): how an event loop that sleeps in epoll_wait hears of the signal at once.
void call_on_stop_signal(void (*callback)(void*, int), void* context);

// call_on_stop_signal for the lifetime of a scope (so an exception cannot leave it pointing at a dead object).
class StopSignalHook {
 public:
  StopSignalHook(void (*callback)(void*, int), void* context) { call_on_stop_signal(callback, context); }
  ~StopSignalHook() { call_on_stop_signal(nullptr, nullptr); }
  StopSignalHook(const StopSignalHook&) = delete;
  StopSignalHook& operator=(const StopSignalHook&) = delete;
};

}  // namespace dgram::examples
