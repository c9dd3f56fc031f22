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
  // Writes `input` to stdin and keeps it open.
  void write(const std::string& input);
  void close_stdin();
  // Reads stdout until what was read contains `needle`; returns everything read up to then (and keeps it for
  // communicate/wait), or nullopt when stdout closed or `timeout` passed first.
  std::optional<std::string> read_until(const std::string& needle, std::chrono::milliseconds timeout);
  // The same for stderr (what was read is kept for communicate/wait's `err`).
  std::optional<std::string> read_stderr_until(const std::string& needle, std::chrono::milliseconds timeout);
  // The same, until `pattern` matches somewhere in what was read; returns its first capture group.
  std::optional<std::string> read_until_match(const std::string& pattern, std::chrono::milliseconds timeout);
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
  bool fill(std::chrono::steady_clock::time_point deadline) { return fill(out_, out_buffer_, deadline); }
  // Reads more of `fd` into `buffer`; false at EOF or deadline.
  static bool fill(int fd, std::string& buffer, std::chrono::steady_clock::time_point deadline);
  std::string out_buffer_;   // stdout read ahead of read_line's newline
  std::string err_buffer_;   // stderr read by read_stderr_until
};

// A server program started with "--port 0" that printed "listening on ADDR:PORT" as its first line.
struct ListeningServer {
  Process process;
  std::string address;   // "127.0.0.1" or "[::1]"
  std::string port;

  // Sends SIGTERM and waits up to a second: the examples' contract for a clean stop.
  Finished stop();
};

// Starts `argv` and reads its first line; fails the test when it does not say where it listens in 10 s.
ListeningServer start_listening(const std::vector<std::string>& argv);

// The last `count` lines of a program's output (what a failed test shows of a long log).
std::string last_lines(const std::string& output, std::size_t count);

// The path of a program given to the test through the environment (meson sets these); fails the test with a
// clear message when missing.
std::string program_path(const char* environment_variable);

}  // namespace dgram::testing
