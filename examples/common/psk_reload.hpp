// dtls-echo-server --psk-file: the keys of many clients from a file, reloaded on SIGHUP while the server runs.
#pragma once

#include <memory>
#include <string>
#include <thread>

import dgram;

namespace dgram::examples {

// Loads `path` into a PskFileStore (throws std::runtime_error with the reason: the first bad line) and, for as
// long as it lives, reloads it on every SIGHUP: "reloaded N pre-shared keys from FILE", or, when the file has
// become bad, the reason and "keeping the N loaded" (sessions and keys stay as they were). Construct it before
// any other thread starts: it blocks SIGHUP in the calling thread, which the threads started later inherit,
// so the signal reaches only its own thread (sigtimedwait), where reading a file is safe.
class PskFileReloader {
 public:
  PskFileReloader(std::string program, std::string path);
  ~PskFileReloader();
  PskFileReloader(const PskFileReloader&) = delete;
  PskFileReloader& operator=(const PskFileReloader&) = delete;

  std::shared_ptr<const dtls::PskStore> store() const { return store_; }

 private:
  void watch(std::stop_token stop);

  std::string program_;
  std::string path_;
  std::shared_ptr<dtls::PskFileStore> store_;
  std::jthread watcher_;
};

}  // namespace dgram::examples
