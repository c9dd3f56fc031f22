// A server program the benchmark measures against (dtls-echo-server, the plain C wolfSSL server, openssl
// s_server), run as its own process: started, asked where it listens, drained, and stopped.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace dgram::bench {

// Keeps a process's main thread (0: the calling thread) on one CPU; threads it starts later inherit that. False
// when the system refuses.
bool pin_to_cpu(int pid, int cpu);

class ServerProcess {
 public:
  // Starts argv and reads stdout until `port_pattern` (a regex with the port as its first group) matches;
  // throws std::runtime_error after 10 s. The rest of its output is read and discarded on a thread; its
  // stderr goes to `log` (default: nowhere).
  ServerProcess(const std::vector<std::string>& argv, const std::string& port_pattern,
                const std::string& log = "/dev/null");
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // stop(1 s).
  ~ServerProcess();
  // SIGTERM, then SIGKILL after `grace`; reaps the process. True when it ended by itself within `grace`.
  bool stop(std::chrono::milliseconds grace);

  unsigned short port() const { return port_; }
  int pid() const { return pid_; }

 private:
  int pid_{-1};
  int out_{-1};
  int in_{-1};
  unsigned short port_{0};
  std::thread drain_;
};

}  // namespace dgram::bench
