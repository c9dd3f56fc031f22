// SIGINT / SIGTERM as a stop request that blocking waits notice: the handler is installed without
// SA_RESTART, so a blocked receive returns errc::interrupted, and servers also wake at least every
// `stop_check_interval` to look at the flag (a signal can land just before a wait starts).
#pragma once

#include <chrono>

namespace dgram::examples {

inline constexpr std::chrono::milliseconds stop_check_interval{200};

void install_stop_handlers();
bool stop_requested();

}  // namespace dgram::examples
