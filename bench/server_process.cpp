#include "server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace dgram::bench {

ServerProcess::ServerProcess(const std::vector<std::string>& argv, const std::string& port_pattern,
                             const std::string& log) {
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);   // open and silent: s_server stops at end of input
  posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);   // (not the table)
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int status = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(in[0]);
  out_ = out[0];
  in_ = in[1];
  if (status != 0) throw std::runtime_error("cannot start " + argv[0]);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const std::regex pattern(port_pattern);
  std::string seen;
  std::smatch match;
  while (!std::regex_search(seen, match, pattern)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd entry{out_, POLLIN, 0};
    char chunk[4096];
    const ssize_t got = left.count() > 0 && ::poll(&entry, 1, static_cast<int>(left.count())) > 0
                            ? ::read(out_, chunk, sizeof chunk)
                            : -1;
    if (got <= 0) {
      stop(std::chrono::seconds(1));   // (not left running: the destructor of a half-made object does not run)
      ::close(out_);
      ::close(in_);
      throw std::runtime_error(argv[0] + " did not say where it listens: " + seen);
    }
    seen.append(chunk, static_cast<std::size_t>(got));
  }
  port_ = static_cast<unsigned short>(std::stoi(match[1]));
  drain_ = std::thread([fd = out_] {
    char chunk[4096];
    while (::read(fd, chunk, sizeof chunk) > 0) {
    }
  });
}

bool pin_to_cpu(int pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return ::sched_setaffinity(pid, sizeof set, &set) == 0;
}

ServerProcess::~ServerProcess() {
  stop(std::chrono::seconds(1));
  if (drain_.joinable()) drain_.join();   // the pipe closed with the process
  ::close(out_);
  ::close(in_);
}

bool ServerProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return true;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  pid_t reaped = 0;
  while ((reaped = ::waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    ::usleep(10'000);
  const bool ended = reaped != 0;
  if (!ended) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return ended;
}

}  // namespace dgram::bench
