// A child process for end-to-end tests: argv, pipes for stdin/stdout/stderr, and waits that are always
// bounded. The destructor kills and reaps a child that is still running, so a failing test leaves nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dgram::testing {

struct Finished {
  int exit_code;          // -1 when the child was killed by a signal
  int signal;             // the signal that killed it, 0 otherwise
  std::string out;
  std::string err;
};

class Process {
 public:
  explicit Process(const std::vector<std::string>& argv);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) = delete;
  Process(const Process&) = delete;
  ~Process();

  // Reads stdout up to the first newline; nullopt when the child closed stdout or `timeout` passed first.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  void send_signal(int signal);
  // Writes all of `input` to stdin (it must fit the pipe, 64 KiB) and closes stdin.
  void feed(const std::string& input);
  // Writes `input` to stdin, closes it, and collects stdout/stderr until the child exits or `timeout` passes;
  // in the latter case the child is killed and the result's signal says so.
  Finished communicate(const std::string& input, std::chrono::milliseconds timeout);
  Finished wait(std::chrono::milliseconds timeout) { return communicate({}, timeout); }
  int pid() const { return pid_; }

 private:
  int pid_{-1};
  int in_{-1};
  int out_{-1};
  int err_{-1};
  std::string out_buffer_;   // stdout read ahead of read_line's newline
};

// The path of a program given to the test through the environment (meson sets these); fails the test with a
// clear message when missing.
std::string program_path(const char* environment_variable);

}  // namespace dgram::testing
