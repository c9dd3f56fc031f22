// dgram-load: many concurrent DTLS sessions on one server port, held the way a fleet of devices holds them.
// It starts dgram's dtls-echo-server (event mode) and opens N sessions to it from several client processes,
// each on its own source address (127.0.0.2, 127.0.0.3, ...: a process may hold 20,000 descriptors here, and
// an address has about 28,000 ephemeral ports), leaves them idle, then echoes once on every one of them. It
// reports what the server held: sessions established and echoed, the setup rate, memory per idle session,
// CPU while idle, and the datagrams the server's kernel dropped for a full receive buffer (its own count, read
// from its closing statistics). Exit status 0 only when every session was established and echoed.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "../examples/common/cli.hpp"
#include "process_stats.hpp"
#include "server_process.hpp"

import dgram;

namespace {

using namespace std::chrono_literals;
namespace dtls = dgram::dtls;
namespace ex = dgram::examples;
using Seconds = std::chrono::duration<double>;

constexpr std::size_t sessions_per_process = 15'000;   // under the 20,000 descriptors a process may hold here
constexpr std::size_t handshakes_in_flight = 64;       // per client process
constexpr std::size_t echoes_in_flight = 1'024;        // per client process: a burst the server's buffer takes
constexpr int handshake_tries = 3;
constexpr int echo_tries = 5;                          // one second apart
constexpr auto setup_limit = 600s;
constexpr auto echo_limit = 120s;

struct Settings {
  std::size_t sessions{10'000};
  unsigned processes{0};
  std::string server;
  std::string certs;
  dtls::Version version{dtls::Version::dtls1_2};
  std::chrono::seconds idle{5};
  std::string log;
};

// ---- The client processes ---------------------------------------------------------------------------------

// Lines between a client process and the parent, over pipes: the parent sends "port P", "echo", "close"; a
// client answers "established E failed F" and "echoed E resent R".
// False when the other end has gone (SIGPIPE is ignored: a dead client process is reported, not fatal).
bool write_line(int fd, const std::string& line) {
  const std::string text = line + "\n";
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t wrote = ::write(fd, text.data() + done, text.size() - done);
    if (wrote <= 0) return false;
    done += static_cast<std::size_t>(wrote);
  }
  return true;
}

// The next line from `fd`; nullopt at end of input (`ended` set) or when `deadline` passes first.
std::optional<std::string> read_line(int fd, std::string& pending, std::chrono::steady_clock::time_point deadline,
                                     bool* ended = nullptr) {
  for (;;) {
    if (const auto end = pending.find('\n'); end != std::string::npos) {
      std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd entry{fd, POLLIN, 0};
    if (::poll(&entry, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0))) <= 0) return std::nullopt;
    char chunk[256];
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got <= 0) {
      if (ended) *ended = true;
      return std::nullopt;
    }
    pending.append(chunk, static_cast<std::size_t>(got));
  }
}

class Fleet {
 public:
  Fleet(const Settings& settings, std::size_t count, const std::string& address, unsigned short port)
      : server_{dgram::Endpoint::loopback(dgram::Family::ipv4, port)},
        local_{dgram::Endpoint::parse(address + ":0")},
        clients_(count),
        tries_(count, 0),
        answered_(count, false) {
    dtls::DtlsConfig config = dtls::client_config(dtls::Pem::file(settings.certs + "/ca.pem"), "localhost");
    config.version = settings.version;
    std::error_code ec;
    std::string reason;
    context_ = dtls::DtlsContext::create(config, ec, &reason);
    if (!context_) throw std::runtime_error("dgram-load: client context: " + reason);
    loop_ = std::make_unique<dtls::ClientLoop>(ec);
    if (ec) throw std::system_error(ec, "dgram-load: client loop");
  }
  ~Fleet() {
    for (auto& client : clients_)
      if (client) loop_->remove(*client);
  }

  // Opens every session, a few handshakes at a time; a failed one is tried again (handshake_tries in all).
  std::pair<std::size_t, std::size_t> establish() {
    std::vector<std::size_t> handshaking;
    std::size_t next = 0, established = 0, failed = 0;
    const auto limit = dgram::Deadline::after(setup_limit);
    while (established + failed < clients_.size() && !limit.passed(dgram::Clock::now())) {
      while (handshaking.size() < handshakes_in_flight && next < clients_.size()) {
        if (open(next)) handshaking.push_back(next);
        else ++failed;
        ++next;
      }
      service(100ms);
      for (std::size_t k = 0; k < handshaking.size();) {
        const std::size_t i = handshaking[k];
        if (clients_[i]->state() == dtls::EngineState::handshaking) {
          ++k;
          continue;
        }
        handshaking[k] = handshaking.back();
        handshaking.pop_back();
        if (clients_[i]->established()) {
          ++established;
        } else if (++tries_[i] < handshake_tries && open(i)) {
          handshaking.push_back(i);
        } else {
          if (first_failure_.empty()) first_failure_ = clients_[i] ? clients_[i]->failure() : "cannot open a socket";
          drop(i);
          ++failed;
        }
      }
    }
    return {established, clients_.size() - established};
  }

  // Keeps the sessions served (DTLS 1.3 tickets and their ACKs) until the parent says something.
  // (A parent that died takes this process with it: PR_SET_PDEATHSIG; one that closed the pipe means "close".)
  std::string idle_until_told(int from_parent, std::string& pending) {
    for (bool ended = false; !ended;) {
      if (const auto line = read_line(from_parent, pending, std::chrono::steady_clock::now(), &ended)) return *line;
      service(50ms);
    }
    return "close";
  }

  // One message on every established session, a window at a time; an unanswered one is sent again after a
  // second (echo_tries in all). Returns (answered, resent).
  std::pair<std::size_t, std::size_t> echo_all() {
    std::vector<std::size_t> waiting;
    std::vector<dgram::TimePoint> sent_at(clients_.size());
    std::fill(tries_.begin(), tries_.end(), 0);
    std::size_t next = 0, answered = 0, resent = 0;
    const auto limit = dgram::Deadline::after(echo_limit);
    std::array<std::byte, 256> reply{};
    while (!limit.passed(dgram::Clock::now())) {
      while (waiting.size() < echoes_in_flight && next < clients_.size()) {
        const std::size_t i = next++;
        if (!clients_[i] || !clients_[i]->established()) continue;
        send_echo(i);
        sent_at[i] = dgram::Clock::now();
        waiting.push_back(i);
      }
      if (waiting.empty()) break;
      service(20ms);
      const auto now = dgram::Clock::now();
      for (std::size_t k = 0; k < waiting.size();) {
        const std::size_t i = waiting[k];
        std::error_code ec;
        while (const auto size = clients_[i]->receive(reply, ec))
          if (std::string_view(reinterpret_cast<const char*>(reply.data()), *size) == message(i)) answered_[i] = true;
        const bool done = answered_[i] || clients_[i]->state() != dtls::EngineState::established;
        if (!done && now - sent_at[i] < 1s) {
          ++k;
          continue;
        }
        if (!done && ++tries_[i] < echo_tries) {   // a second without a reply: lost on the way, sent again
          send_echo(i);
          sent_at[i] = now;
          ++resent;
          ++k;
          continue;
        }
        answered += answered_[i] ? 1 : 0;   // (or given up after echo_tries)
        waiting[k] = waiting.back();
        waiting.pop_back();
      }
    }
    return {answered, resent};
  }

  void close_all() {
    for (auto& client : clients_) {
      if (!client) continue;
      std::error_code ec;
      client->close(ec);
    }
  }

  const std::string& first_failure() const { return first_failure_; }

 private:
  bool open(std::size_t i) {
    drop(i);
    std::error_code ec;
    clients_[i] = dtls::EventClient::connect(context_, server_, ec, nullptr, local_);
    if (!clients_[i]) {
      if (first_failure_.empty()) first_failure_ = "cannot open a client socket: " + ec.message();
      return false;
    }
    loop_->add(*clients_[i], ec);
    return !ec;
  }
  void drop(std::size_t i) {
    if (!clients_[i]) return;
    loop_->remove(*clients_[i]);
    clients_[i].reset();
  }
  void service(std::chrono::milliseconds at_most) {
    std::error_code ec;
    loop_->run_once(dgram::Deadline::after(at_most), ec);
    if (ec) throw std::system_error(ec, "dgram-load: client loop");
  }
  static std::string message(std::size_t i) { return "session " + std::to_string(i); }
  void send_echo(std::size_t i) {
    const std::string text = message(i);
    std::error_code ec;
    clients_[i]->send(std::as_bytes(std::span(text)), ec);   // (a send the kernel refused is resent later)
  }

  dgram::Endpoint server_;
  dgram::Endpoint local_;
  std::shared_ptr<dtls::DtlsContext> context_;
  std::unique_ptr<dtls::ClientLoop> loop_;
  std::vector<std::unique_ptr<dtls::EventClient>> clients_;
  std::vector<int> tries_;
  std::vector<bool> answered_;
  std::string first_failure_;
};

// A client process: waits for the server's port, opens its sessions, idles, echoes, closes, as told.
int run_client_process(const Settings& settings, std::size_t count, const std::string& address, int to_parent,
                       int from_parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);   // never outlives the parent
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  std::string pending;
  const auto port_line = read_line(from_parent, pending, std::chrono::steady_clock::now() + 60s);
  if (!port_line || !port_line->starts_with("port ")) return 1;
  Fleet fleet(settings, count, address, static_cast<unsigned short>(std::stoi(port_line->substr(5))));
  const auto [established, failed] = fleet.establish();
  if (!write_line(to_parent, fmt::format("established {} failed {} {}", established, failed, fleet.first_failure())))
    return 1;
  if (fleet.idle_until_told(from_parent, pending) == "echo") {
    const auto [answered, resent] = fleet.echo_all();
    if (!write_line(to_parent, fmt::format("echoed {} resent {}", answered, resent))) return 1;
    fleet.idle_until_told(from_parent, pending);
  }
  fleet.close_all();
  return 0;
}

// ---- The parent -------------------------------------------------------------------------------------------

struct ClientProcess {
  pid_t pid{-1};
  int to_child{-1};
  int from_child{-1};
  std::string pending;
  std::size_t sessions{0};
};

std::vector<ClientProcess> start_clients(const Settings& settings) {
  std::vector<ClientProcess> processes;
  for (unsigned i = 0; i < settings.processes; ++i) {
    const std::size_t share = settings.sessions / settings.processes + (i < settings.sessions % settings.processes);
    const std::string address = "127.0.0." + std::to_string(2 + i);
    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0 || ::pipe2(up, O_CLOEXEC) != 0) throw std::runtime_error("dgram-load: pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("dgram-load: fork failed");
    if (pid == 0) {
      ::close(down[1]);
      ::close(up[0]);
      for (const auto& earlier : processes) {   // (the pipes of the processes forked before this one)
        ::close(earlier.to_child);
        ::close(earlier.from_child);
      }
      int status = 1;
      try {
        status = run_client_process(settings, share, address, up[1], down[0]);
      } catch (const std::exception& error) {
        std::fprintf(stderr, "dgram-load: client process %u: %s\n", i, error.what());
      }
      std::fflush(stderr);
      ::_exit(status);
    }
    ::close(down[0]);
    ::close(up[1]);
    processes.push_back(ClientProcess{pid, down[1], up[0], {}, share});
  }
  return processes;
}

// Sends `command` to every client process and sums the first two numbers of their answers (nullopt fields:
// a process that said nothing in `wait`).
struct Answers {
  std::size_t first{0};
  std::size_t second{0};
  unsigned silent{0};
  std::string note;
};
Answers ask_all(std::vector<ClientProcess>& processes, const std::string& command, const std::regex& answer,
                std::chrono::seconds wait) {
  for (auto& process : processes) write_line(process.to_child, command);   // (a dead one stays silent below)
  const auto deadline = std::chrono::steady_clock::now() + wait;
  Answers total;
  for (auto& process : processes) {
    std::smatch match;
    const auto line = read_line(process.from_child, process.pending, deadline);
    if (!line || !std::regex_search(*line, match, answer)) {
      ++total.silent;
      continue;
    }
    total.first += std::stoul(match[1]);
    total.second += std::stoul(match[2]);
    if (match.size() > 3 && total.note.empty()) total.note = match[3];
  }
  return total;
}

void stop_clients(std::vector<ClientProcess>& processes) {
  for (auto& process : processes) {
    write_line(process.to_child, "close");
    ::close(process.to_child);
  }
  for (auto& process : processes) {
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (::waitpid(process.pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
      ::usleep(10'000);
    if (::waitpid(process.pid, &status, WNOHANG) == 0) {
      ::kill(process.pid, SIGKILL);
      ::waitpid(process.pid, &status, 0);
    }
    ::close(process.from_child);
  }
}

// What the kernel dropped at the socket bound to 127.0.0.1:`port` (its receive buffer full, or the like): the
// last column of /proc/net/udp, read while the server runs; nullopt when the socket is not listed.
std::optional<std::uint64_t> kernel_drops(unsigned short port) {
  std::ifstream table("/proc/net/udp");
  const std::string local = fmt::format("0100007F:{:04X}", port);
  std::string line;
  std::getline(table, line);   // the header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, address, field;
    fields >> slot >> address;
    if (address != local) continue;
    std::string last;
    while (fields >> field) last = field;
    return std::stoull(last);
  }
  return std::nullopt;
}

// The server, for a SIGTERM or SIGINT that ends this program: it goes too (a process spawned by posix_spawn
// has no parent-death signal, and the destructors that would stop it do not run).
std::atomic<pid_t> server_to_stop{-1};

void stop_server_and_die(int signal_number) {
  if (const pid_t pid = server_to_stop.load(); pid > 0) ::kill(pid, SIGTERM);
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

int run(const Settings& settings) {
  std::vector<ClientProcess> clients = start_clients(settings);   // (before the server's reader thread)
  const std::string cert = settings.certs + "/server-ecdsa.pem";
  const std::string key = settings.certs + "/server-ecdsa.key";
  const std::string version = settings.version == dtls::Version::dtls1_3 ? "1.3" : "1.2";
  dgram::bench::ServerProcess server(
      {settings.server, "--mode", "event", "--port", "0", "--cert", cert, "--key", key, "--dtls", version,
       "--max-sessions", std::to_string(settings.sessions + 1024), "--max-handshakes-per-source", "4096",
       "--idle-timeout-ms", "3600000"},
      R"(listening on 127\.0\.0\.1:(\d+))", settings.log);
  server_to_stop = server.pid();
  ::signal(SIGTERM, stop_server_and_die);
  ::signal(SIGINT, stop_server_and_die);
  const long memory_before = dgram::bench::resident_kib(server.pid());
  const std::string sources = settings.processes == 1
                                  ? std::string("127.0.0.2")
                                  : "127.0.0.2 to 127.0.0." + std::to_string(1 + settings.processes);
  fmt::print("dgram-load: {} sessions from {} client process{} ({}) to dtls-echo-server --mode event, DTLS {}\n",
             settings.sessions, settings.processes, settings.processes == 1 ? "" : "es", sources, version);
  std::fflush(stdout);

  const auto setup_start = std::chrono::steady_clock::now();
  const Answers opened = ask_all(clients, "port " + std::to_string(server.port()),
                                 std::regex(R"(established (\d+) failed (\d+) ?(.*))"), setup_limit + 60s);
  const double setup_seconds = Seconds(std::chrono::steady_clock::now() - setup_start).count();
  const long memory_after = dgram::bench::resident_kib(server.pid());
  const double per_session = opened.first ? static_cast<double>(memory_after - memory_before) / opened.first : 0;
  fmt::print("established        {:>7} of {}  ({:.0f} handshakes/s over {:.1f} s{}{})\n", opened.first,
             settings.sessions, opened.first / setup_seconds, setup_seconds,
             opened.second ? "; first failure: " : "", opened.second ? opened.note : "");
  fmt::print("server memory      {:>7.1f} MiB  {:.1f} KiB per idle session  (target 32 KiB: {:.2f}x)\n",
             (memory_after - memory_before) / 1024.0, per_session, per_session / 32.0);
  std::fflush(stdout);

  const double cpu_before = dgram::bench::cpu_seconds(server.pid());
  const auto idle_start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(settings.idle);   // the measurement window: nobody sends anything
  const double idle_percent = 100 * (dgram::bench::cpu_seconds(server.pid()) - cpu_before) /
                              Seconds(std::chrono::steady_clock::now() - idle_start).count();
  fmt::print("server idle CPU    {:>7.2f} % of a core over {} s\n", idle_percent, settings.idle.count());
  std::fflush(stdout);

  const auto drops_before_echo = kernel_drops(server.port());
  const auto echo_start = std::chrono::steady_clock::now();
  const Answers echoed = ask_all(clients, "echo", std::regex(R"(echoed (\d+) resent (\d+))"), echo_limit + 30s);
  fmt::print("echoed             {:>7} of {}  ({:.1f} s, {} sent again after a second without a reply)\n",
             echoed.first, opened.first, Seconds(std::chrono::steady_clock::now() - echo_start).count(), echoed.second);
  const auto drops = kernel_drops(server.port());
  if (drops && drops_before_echo)
    fmt::print("kernel drops       {:>7} datagrams at the server's socket ({} while the sessions were set up, {} "
               "during the echoes)\n",
               *drops, *drops_before_echo, *drops - *drops_before_echo);
  else
    fmt::print("kernel drops       unknown: 127.0.0.1:{} is not in /proc/net/udp\n", server.port());
  stop_clients(clients);
  server_to_stop = -1;
  if (!server.stop(120s)) fmt::print("the server did not stop within 120 s of SIGTERM (log: {})\n", settings.log);
  const bool complete = opened.silent == 0 && echoed.silent == 0 && opened.first == settings.sessions &&
                        echoed.first == settings.sessions;
  fmt::print("{}\n", complete ? "every session established and echoed" : "NOT every session was established and echoed");
  return complete ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ex::CommandLine command_line{
      "dgram-load", "[--sessions N] [--processes P] [--dtls 1.2|1.3] [--idle-s S]",
      {{"sessions", "N", "concurrent sessions to open, idle and echo (default 10000, at most 200000)"},
       {"processes", "P", "client processes, one source address each from 127.0.0.2 (default: one per 15,000 "
                          "sessions)"},
       {"dtls", "VERSION", "1.2 or 1.3 (default 1.2)"},
       {"idle-s", "S", "how long the sessions idle while the server's CPU is measured (default 5)"},
       {"server", "PATH", "dgram's dtls-echo-server (default: the one of this build)"},
       {"certs", "DIR", "the test certificates (default: the source tree's certs/)"},
       {"log", "FILE", "where the server's log goes (default /tmp/dgram-load-server.log)"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    ::signal(SIGPIPE, SIG_IGN);   // (a client process that died is reported as silent)
    Settings settings;
    settings.sessions = static_cast<std::size_t>(command_line.integer("sessions", 10'000, 1, 200'000));
    const auto needed = static_cast<unsigned>((settings.sessions + sessions_per_process - 1) / sessions_per_process);
    settings.processes = static_cast<unsigned>(command_line.integer("processes", needed, needed, 200));
    const std::string version = command_line.value_or("dtls", "1.2");
    if (version != "1.2" && version != "1.3") throw ex::UsageError("--dtls '" + version + "': say 1.2 or 1.3");
    if (version == "1.3" && !dtls::dtls13_available()) throw ex::UsageError("--dtls 1.3: this build's wolfSSL has no DTLS 1.3");
    settings.version = version == "1.3" ? dtls::Version::dtls1_3 : dtls::Version::dtls1_2;
    settings.idle = std::chrono::seconds(command_line.integer("idle-s", 5, 1, 3600));
    settings.server = command_line.value_or("server", DGRAM_LOAD_SERVER);
    settings.certs = command_line.value_or("certs", DGRAM_LOAD_CERTS);
    settings.log = command_line.value_or("log", "/tmp/dgram-load-server.log");
    return run(settings);
  });
}
