// A server program the benchmark measures against (dtls-echo-server, the plain C wolfSSL server, openssl
// s_server), run as its own process: started, asked where it listens, drained, and stopped.
#pragma once

#include <string>
#include <thread>
#include <vector>

namespace dgram::bench {

class ServerProcess {
 public:
  // Starts argv and reads stdout until `port_pattern` (a regex with the port as its first group) matches;
  // throws std::runtime_error after 10 s. The rest of its output is read and discarded on a thread.
  ServerProcess(const std::vector<std::string>& argv, const std::string& port_pattern);
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // SIGTERM, then SIGKILL after a second; reaps the process.
  ~ServerProcess();

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
