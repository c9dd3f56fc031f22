#include "psk_reload.hpp"

#include <fmt/core.h>

#include <csignal>
#include <ctime>
#include <stdexcept>

#include "cli.hpp"

namespace dgram::examples {

PskFileReloader::PskFileReloader(std::string program, std::string path)
    : program_{std::move(program)}, path_{std::move(path)}, store_{std::make_shared<dtls::PskFileStore>()} {
  std::string reason;
  if (!store_->load_file(path_, reason)) throw std::runtime_error(reason);
  fmt::print(stderr, "{}: {} from {}\n", program_, plural(store_->size(), "pre-shared key"), path_);
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &hangup, nullptr);
  watcher_ = std::jthread([this](std::stop_token stop) { watch(stop); });
}

PskFileReloader::~PskFileReloader() {
  watcher_.request_stop();
  watcher_.join();
}

void PskFileReloader::watch(std::stop_token stop) {
  sigset_t hangup;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  const timespec poll{0, 100'000'000};   // how soon a stop is noticed: the wait is for the signal, bounded
  while (!stop.stop_requested()) {
    if (sigtimedwait(&hangup, nullptr, &poll) != SIGHUP) continue;
    std::string reason;
    if (store_->load_file(path_, reason)) {
      fmt::print(stderr, "{}: reloaded {} from {}\n", program_, plural(store_->size(), "pre-shared key"), path_);
    } else {
      fmt::print(stderr, "{}: {}; keeping the {} loaded\n", program_, reason, plural(store_->size(), "key"));
    }
  }
}

}  // namespace dgram::examples
