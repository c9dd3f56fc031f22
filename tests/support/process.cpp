#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <csignal>
#include <regex>
#include <cstdlib>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace dgram::testing {
namespace {

using Clock = std::chrono::steady_clock;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Reads what is there into `sink`; false at end of file.
bool drain(int fd, std::string& sink) {
  char chunk[65536];
  const ssize_t got = ::read(fd, chunk, sizeof chunk);
  if (got > 0) sink.append(chunk, static_cast<std::size_t>(got));
  return got > 0 || (got < 0 && errno == EINTR);
}

}  // namespace

Process::Process(const std::vector<std::string>& argv) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int status = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  out_ = out[0];
  err_ = err[0];
  if (status != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0]);
  }
  ::signal(SIGPIPE, SIG_IGN);   // a child that exits early must not kill the test when we write its stdin
}

Process::Process(Process&& other) noexcept
    : pid_{std::exchange(other.pid_, -1)},
      in_{std::exchange(other.in_, -1)},
      out_{std::exchange(other.out_, -1)},
      err_{std::exchange(other.err_, -1)},
      out_buffer_{std::move(other.out_buffer_)},
      err_buffer_{std::move(other.err_buffer_)} {}

Process::~Process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (const auto newline = out_buffer_.find('\n'); newline != std::string::npos) {
      std::string line = out_buffer_.substr(0, newline);
      out_buffer_.erase(0, newline + 1);
      return line;
    }
    if (!fill(deadline)) return std::nullopt;
  }
}

void Process::write(const std::string& input) {
  std::size_t written = 0;
  while (written < input.size() && in_ >= 0) {
    const ssize_t put = ::write(in_, input.data() + written, input.size() - written);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) break;
    written += static_cast<std::size_t>(put);
  }
}

void Process::close_stdin() { close_fd(in_); }

void Process::feed(const std::string& input) {
  write(input);
  close_stdin();
}

bool Process::fill(int fd, std::string& buffer, Clock::time_point deadline) {
  for (;;) {
    pollfd entry{fd, POLLIN, 0};
    const int ready = ::poll(&entry, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0 && drain(fd, buffer);
  }
}

std::optional<std::string> Process::read_stderr_until(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (err_buffer_.find(needle) == std::string::npos)
    if (!fill(err_, err_buffer_, deadline)) return std::nullopt;
  return err_buffer_;
}

std::optional<std::string> Process::read_until(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (out_buffer_.find(needle) == std::string::npos)
    if (!fill(deadline)) return std::nullopt;
  return out_buffer_;
}

void Process::send_signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

Finished Process::communicate(const std::string& input, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  Finished result{-1, 0, std::move(out_buffer_), std::move(err_buffer_)};
  out_buffer_.clear();
  err_buffer_.clear();
  std::size_t written = 0;
  if (input.empty()) close_fd(in_);
  while ((out_ >= 0 || err_ >= 0) && remaining_ms(deadline) > 0) {
    pollfd entries[3] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}, {in_, POLLOUT, 0}};
    const int ready = ::poll(entries, 3, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    if (entries[0].revents && !drain(out_, result.out)) close_fd(out_);
    if (entries[1].revents && !drain(err_, result.err)) close_fd(err_);
    if (entries[2].revents) {
      const ssize_t put = ::write(in_, input.data() + written, input.size() - written);
      if (put > 0) written += static_cast<std::size_t>(put);
      if (put < 0 || written == input.size()) close_fd(in_);
    }
  }
  int status = 0;
  pid_t reaped = 0;
  while ((reaped = ::waitpid(pid_, &status, WNOHANG)) == 0 && remaining_ms(deadline) > 0) {
    ::poll(nullptr, 0, 5);   // the child closed its pipes and is exiting: wait for it, still bounded
  }
  if (reaped == 0) {   // timed out: kill it, and say so
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  close_fd(in_);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

ListeningServer start_listening(const std::vector<std::string>& argv) {
  Process process(argv);
  const auto line = process.read_line(std::chrono::seconds(10));
  INFO(argv[0] << " printed no 'listening on' line");
  REQUIRE(line);
  std::smatch match;
  REQUIRE(std::regex_match(*line, match, std::regex(R"(listening on (.*):(\d+))")));
  REQUIRE(match[2] != "0");
  return ListeningServer{std::move(process), match[1], match[2]};
}

std::optional<std::string> Process::read_until_match(const std::string& pattern, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::regex expression(pattern);
  std::smatch match;
  while (!std::regex_search(out_buffer_, match, expression))
    if (!fill(deadline)) return std::nullopt;
  return match.size() > 1 ? match[1].str() : match[0].str();
}

Finished ListeningServer::stop() {
  process.send_signal(SIGTERM);
  return process.wait(std::chrono::seconds(1));
}

std::string last_lines(const std::string& output, std::size_t count) {
  std::size_t start = output.size();
  if (start > 0 && output[start - 1] == '\n') --start;
  for (std::size_t lines = 0; start > 0; --start)
    if (output[start - 1] == '\n' && ++lines == count) break;
  return output.substr(start);
}

std::string program_path(const char* environment_variable) {
  const char* path = std::getenv(environment_variable);
  if (!path || !*path) throw std::runtime_error(std::string(environment_variable) + " is not set: run through meson test");
  return path;
}

}  // namespace dgram::testing
