// A server's loop on a thread of its own, for the tests that talk to it over loopback: started by the
// constructor; stop() (or the destructor) asks the loop to end, joins the thread, and checks that the loop
// ended without an error.
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <system_error>
#include <thread>
#include <utility>

namespace dgram::testing {

class ServerThread {
 public:
  // `run` is the loop (it sets its error_code when it fails); `ask_to_stop` makes it return soon.
  ServerThread(std::function<void(std::error_code&)> run, std::function<void()> ask_to_stop)
      : ask_to_stop_{std::move(ask_to_stop)}, thread_{[this, run = std::move(run)] { run(error_); }} {}
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;
  ~ServerThread() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    ask_to_stop_();
    thread_.join();
    CHECK(!error_);
  }
  bool running() const { return thread_.joinable(); }

 private:
  std::function<void()> ask_to_stop_;
  std::error_code error_;
  std::thread thread_;   // last: it starts once the members it uses exist
};

}  // namespace dgram::testing
