#include "stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace dgram::examples {
namespace {

volatile std::sig_atomic_t stop_flag = 0;
std::atomic<void (*)(void*, int)> stop_callback{nullptr};
std::atomic<void*> stop_context{nullptr};

extern "C" void on_stop_signal(int signal) {
  stop_flag = 1;
  if (const auto callback = stop_callback.load()) callback(stop_context.load(), signal);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;   // no SA_RESTART: interrupt blocking receives
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool stop_requested() { return stop_flag != 0; }

void call_on_stop_signal(void (*callback)(void*, int), void* context) {
  // The handler may run between the two stores: it must never see a callback with another one's context.
  if (callback) {
    stop_context.store(context);
    stop_callback.store(callback);
  } else {
    stop_callback.store(nullptr);
    stop_context.store(nullptr);
  }
}

}  // namespace dgram::examples
