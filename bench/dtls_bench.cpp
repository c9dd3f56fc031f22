// DTLS benchmarks: full handshakes/s (X25519 and P-256), resumed handshakes/s and 1200-byte echo round trips/s
// against dgram's dtls-echo-server --mode blocking, a plain C wolfSSL server on Debian's wolfSSL
// (bench/wolfssl_plain_server.c) and openssl s_server; DTLS 1.3 rows when this build has it; and, given
// --system-dtls-server (a dtls-echo-server built with -Dwolfssl=system), this build's server against that one.
// The CoAP suites (AES-128-CCM-8, with ECDSA and with pre-shared keys) against AES-128-GCM on one dgram server.
// The load is the same for every server: one dgram DTLS client doing one thing at a time over loopback, on a
// CPU of its own where there are two (CpuSplit).
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <utility>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "bench.hpp"
#include "server_process.hpp"

import dgram;

namespace dgram::bench {
namespace {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

constexpr int handshakes_per_run = 150;
constexpr int round_trips_per_run = 3000;

// What the bench client speaks: a version and the key-exchange group it offers first. (P-256 is offered after
// X25519 too: the servers' ECDSA certificate is a P-256 one, which a DTLS 1.2 peer signs only with a group
// the client lists.)
struct ClientChoice {
  dtls::Version version{dtls::Version::dtls1_2};
  dtls::Group group{dtls::Group::x25519};
  std::string ciphers{};   // empty: the library's default list
  bool psk{false};         // authenticate with bench_psk instead of the server's certificate
  bool psk_ke{false};      // DTLS 1.3 resumption on the ticket's key alone (psk_ke)
};

const dtls::PreSharedKey bench_psk{"bench", std::vector<std::byte>(16, std::byte{0x5a})};
constexpr const char* bench_psk_hex = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

std::shared_ptr<dtls::DtlsContext> client_context(const DtlsBenchSetup& setup, ClientChoice choice) {
  std::error_code ec;
  std::string reason;
  auto config = dtls::client_config(dtls::Pem::file(setup.certs + "/ca.pem"), "localhost");
  config.version = choice.version;
  config.cipher_list = choice.ciphers;
  if (choice.psk) config.psk = bench_psk;
  config.psk_forward_secrecy = !choice.psk_ke;
  config.groups = {choice.group};
  if (choice.group != dtls::Group::secp256r1) config.groups.push_back(dtls::Group::secp256r1);
  auto context = dtls::DtlsContext::create(config, ec, &reason);
  if (!context) throw std::runtime_error("bench client context: " + reason);
  return context;
}

// The client (this thread) on one CPU and every server on another, when this process may use two: a
// handshake's rate then depends on the two sides' work and waiting, not on where the scheduler puts them (the
// same run on a 2-vCPU VM varied by up to 25 % unpinned). Undone at the end of the group.
class CpuSplit {
 public:
  CpuSplit() {
    if (::sched_getaffinity(0, sizeof allowed_, &allowed_) != 0) return;
    std::optional<int> first;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &allowed_)) continue;
      if (!first) {
        first = cpu;
        continue;
      }
      if (!pin_to_cpu(0, cpu)) return;
      server_cpu_ = *first;
      std::fprintf(stderr, "dtls group: servers on CPU %d, the client on CPU %d\n", *first, cpu);
      return;
    }
    std::fprintf(stderr, "dtls group: one CPU, servers and client share it\n");
  }
  CpuSplit(const CpuSplit&) = delete;
  CpuSplit& operator=(const CpuSplit&) = delete;
  ~CpuSplit() {
    if (server_cpu_) ::sched_setaffinity(0, sizeof allowed_, &allowed_);
  }
  const ServerProcess& place(const ServerProcess& server) const {
    if (server_cpu_ && !pin_to_cpu(server.pid(), *server_cpu_))
      std::fprintf(stderr, "dtls group: could not keep server %d on CPU %d\n", server.pid(), *server_cpu_);
    return server;
  }

 private:
  cpu_set_t allowed_{};
  std::optional<int> server_cpu_;
};

struct Session {
  UdpSocket socket;
  std::unique_ptr<dtls::DtlsChannel> channel;
};

// A handshake over `path`; throws when it fails.
std::unique_ptr<dtls::DtlsChannel> connect_over(Transport& path, dtls::DtlsHandshaker& handshaker, const Endpoint& server,
                                                const dtls::Session* resume = nullptr) {
  std::error_code ec;
  auto channel = handshaker.connect_dtls(path, server, Deadline::after(10s), ec, resume);
  if (!channel) throw std::runtime_error("bench handshake with " + server.to_string() + " failed: " + handshaker.failure());
  return channel;
}

Session open_session(dtls::DtlsHandshaker& handshaker, const Endpoint& server, const dtls::Session* resume) {
  Session session{UdpSocket::connect(server), nullptr};
  session.channel = connect_over(session.socket, handshaker, server, resume);
  return session;
}

void close_session(Session& session) {
  std::error_code ec;
  session.channel->close(ec);
}

double handshake_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, bool resume) {
  const Endpoint server = Endpoint::loopback(Family::ipv4, port);
  dtls::DtlsHandshaker handshaker(context);
  dtls::Session saved;
  if (resume) {
    Session first = open_session(handshaker, server, nullptr);
    // A DTLS 1.3 ticket comes after the handshake: one echo first, so that it has arrived.
    const std::vector<std::byte> ping(4, std::byte{'p'});
    std::vector<std::byte> reply(2048);
    std::error_code ec;
    first.channel->send(ping, ec);
    if (!ec) first.channel->receive(reply, Deadline::after(5s), ec);
    if (ec) throw std::system_error(ec, "bench: the echo before saving the session");
    saved = first.channel->session();
    close_session(first);
  }
  const auto start = Clock::now();
  for (int i = 0; i < handshakes_per_run; ++i) {
    Session session = open_session(handshaker, server, resume ? &saved : nullptr);
    if (resume && !session.channel->resumed()) throw std::runtime_error("bench: the server did not resume");
    close_session(session);
  }
  return handshakes_per_run / Seconds(Clock::now() - start).count();
}

// A client socket that notes when each datagram goes out (before the send) and comes in (once received): a
// handshake's timeline as the client sees it.
class TimedSocket final : public Transport {
 public:
  struct Event {
    TimePoint at;
    bool sent;
  };

  explicit TimedSocket(UdpSocket socket) : socket_{std::move(socket)} {}

  void send_to(std::span<const std::byte> datagram, const Endpoint& peer, std::error_code& ec) override {
    events.push_back({Clock::now(), true});
    socket_.send_to(datagram, peer, ec);
  }
  Received receive_from(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) override {
    const Received received = socket_.receive_from(buffer, deadline, ec);
    if (!ec) events.push_back({Clock::now(), false});
    return received;
  }
  std::size_t receive_batch(std::span<ReceiveSlot> slots, Deadline deadline, std::error_code& ec) override {
    const std::size_t count = socket_.receive_batch(slots, deadline, ec);
    if (count > 0) events.push_back({Clock::now(), false});
    return count;
  }
  std::size_t send_batch(std::span<const SendSlot> datagrams, std::error_code& ec) override {
    events.push_back({Clock::now(), true});
    return socket_.send_batch(datagrams, ec);
  }
  Endpoint local_endpoint(std::error_code& ec) const override { return socket_.local_endpoint(ec); }
  std::size_t max_datagram_size() const noexcept override { return socket_.max_datagram_size(); }

  std::vector<Event> events;

 private:
  UdpSocket socket_;
};

// Where a full handshake's time goes, from the client: each wait for the server's answer (from our last
// datagram of a flight to the last datagram of the answer: the server's work, the wake-ups and loopback; a
// server that sends its flight in several datagrams has the client read the first ones meanwhile) and the
// client's own work (the rest), in microseconds, one entry per handshake.
struct Timeline {
  std::vector<std::vector<double>> waits;   // [step][handshake]
  std::vector<double> client;
  std::vector<double> total;
  int irregular{0};   // handshakes with another number of steps (a resent flight): left out
};

void add_handshake(Timeline& timeline, const std::vector<TimedSocket::Event>& events, TimePoint start, TimePoint end,
                   std::size_t steps) {
  const auto micros = [](Duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  std::vector<double> waits;
  std::optional<TimePoint> last_sent;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const bool answer_complete = !events[i].sent && (i + 1 == events.size() || events[i + 1].sent);
    if (events[i].sent) last_sent = events[i].at;
    if (answer_complete && last_sent) waits.push_back(micros(events[i].at - *last_sent));
  }
  if (waits.size() != steps) {
    ++timeline.irregular;
    return;
  }
  timeline.waits.resize(steps);
  double waited = 0;
  for (std::size_t step = 0; step < steps; ++step) {
    timeline.waits[step].push_back(waits[step]);
    waited += waits[step];
  }
  timeline.total.push_back(micros(end - start));
  timeline.client.push_back(timeline.total.back() - waited);
}

// `handshakes` full handshakes, one after another, each on a fresh socket; `steps`: the round trips a
// handshake takes (3 for DTLS 1.2 with a cookie).
Timeline handshake_timeline(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, int handshakes,
                            std::size_t steps) {
  const Endpoint server = Endpoint::loopback(Family::ipv4, port);
  dtls::DtlsHandshaker handshaker(context);
  Timeline timeline;
  for (int i = 0; i < handshakes; ++i) {
    TimedSocket socket{UdpSocket::connect(server)};
    const TimePoint start = Clock::now();
    auto channel = connect_over(socket, handshaker, server);
    const TimePoint end = Clock::now();
    add_handshake(timeline, socket.events, start, end, steps);
    std::error_code ec;
    channel->close(ec);
  }
  return timeline;
}

// The timeline of dgram's server and of a baseline's, as rows of medians (microseconds, lower is better;
// for reference: the rate rows carry the targets). Measured in alternating halves.
std::vector<Row> timeline_rows(const std::string& name, const std::vector<std::string>& step_names,
                               const std::shared_ptr<dtls::DtlsContext>& context, unsigned short ours_port,
                               unsigned short baseline_port, const std::string& baseline_name, int handshakes) {
  Timeline ours, baseline;
  const auto merge = [](Timeline& into, const Timeline& part) {
    into.waits.resize(part.waits.size());
    for (std::size_t step = 0; step < part.waits.size(); ++step)
      into.waits[step].insert(into.waits[step].end(), part.waits[step].begin(), part.waits[step].end());
    into.client.insert(into.client.end(), part.client.begin(), part.client.end());
    into.total.insert(into.total.end(), part.total.begin(), part.total.end());
    into.irregular += part.irregular;
  };
  handshake_timeline(context, ours_port, 20, step_names.size());   // warm-up
  handshake_timeline(context, baseline_port, 20, step_names.size());
  for (int half = 0; half < 2; ++half) {
    merge(ours, handshake_timeline(context, ours_port, handshakes / 2, step_names.size()));
    merge(baseline, handshake_timeline(context, baseline_port, handshakes / 2, step_names.size()));
  }
  if (ours.total.empty() || baseline.total.empty())
    throw std::runtime_error("bench: no handshake of " + name + " took the expected " +
                             std::to_string(step_names.size()) + " round trips");
  if (ours.irregular + baseline.irregular > 0)
    std::fprintf(stderr, "%s: left out of the timeline, handshakes with a resent flight: dgram %d, %s %d\n",
                 name.c_str(), ours.irregular, baseline_name.c_str(), baseline.irregular);
  std::vector<Row> rows;
  const auto row = [&](const std::string& part, const std::vector<double>& a, const std::vector<double>& b) {
    rows.push_back(Row{name + ": " + part, "us (median)", median(a), median(b), baseline_name, 0.0, true});
  };
  for (std::size_t step = 0; step < step_names.size(); ++step)
    row("wait, " + step_names[step], ours.waits[step], baseline.waits[step]);
  row("client's own work", ours.client, baseline.client);
  row("whole handshake", ours.total, baseline.total);
  return rows;
}

double echo_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port) {
  const Endpoint server = Endpoint::loopback(Family::ipv4, port);
  dtls::DtlsHandshaker handshaker(context);
  Session session = open_session(handshaker, server, nullptr);
  const std::vector<std::byte> message(1200, std::byte{'e'});
  std::vector<std::byte> reply(65536);
  std::error_code ec;
  const auto start = Clock::now();
  for (int i = 0; i < round_trips_per_run; ++i) {
    session.channel->send(message, ec);
    if (!ec) session.channel->receive(reply, Deadline::after(5s), ec);
    if (ec) throw std::system_error(ec, "bench echo");
  }
  const double rate = round_trips_per_run / Seconds(Clock::now() - start).count();
  close_session(session);
  return rate;
}

}  // namespace

std::vector<Row> dtls_benchmarks(int repetitions, const DtlsBenchSetup& setup) {
  const std::string cert = setup.certs + "/server-ecdsa.pem";
  const std::string key = setup.certs + "/server-ecdsa.key";
  const std::string listening = R"(listening on 127\.0\.0\.1:(\d+))";
  const auto dgram_server = [&](const std::string& program, const std::string& version,
                                const std::vector<std::string>& more = {}) {
    std::vector<std::string> command{program, "--mode", "blocking", "--port", "0", "--cert", cert, "--key", key,
                                     "--dtls", version};
    command.insert(command.end(), more.begin(), more.end());
    return ServerProcess(command, listening);
  };
  const bool optimized = dtls::dtls13_available();   // the build with assembly crypto (-Dwolfssl=optimized)
  ServerProcess ours = dgram_server(setup.dtls_server, optimized ? "any" : "1.2");   // 1.3 too where there is one
  ServerProcess plain({setup.plain_server, cert, key}, listening);
  ServerProcess plain_same({setup.plain_server_same, cert, key}, listening);
  ServerProcess openssl({setup.openssl, "s_server", "-dtls1_2", "-accept", "127.0.0.1:0", "-mtu", "1400", "-cert", cert,
                         "-key", key},
                        R"(ACCEPT 127\.0\.0\.1:(\d+))");
  const CpuSplit cpus;
  const auto full = [&](const ServerProcess& server, ClientChoice choice) {
    return [&server = cpus.place(server), context = client_context(setup, choice)] {
      return handshake_rate(context, server.port(), false);
    };
  };
  const auto resumed = [&](const ServerProcess& server, ClientChoice choice) {
    return [&server = cpus.place(server), context = client_context(setup, choice)] {
      return handshake_rate(context, server.port(), true);
    };
  };
  const auto echo = [&](const ServerProcess& server, ClientChoice choice) {
    return [&server = cpus.place(server), context = client_context(setup, choice)] {
      return echo_rate(context, server.port());
    };
  };
  const ClientChoice x25519{};
  const ClientChoice p256{dtls::Version::dtls1_2, dtls::Group::secp256r1};
  const ClientChoice same_suite{.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"};
  // The optimized build must beat OpenSSL's handshakes by half again; Debian's build has to keep up.
  const double versus_openssl = optimized ? 1.5 : 1.0;
  std::vector<Row> rows{
      compare("dtls 1.2 full handshakes X25519", "handshakes/s", "openssl s_server", versus_openssl, repetitions,
              full(ours, x25519), full(openssl, x25519)),
      // (Debian's wolfSSL does P-256 in generic C, OpenSSL in assembly: for reference there, the point of the
      // optimized build here.)
      compare("dtls 1.2 full handshakes P-256", "handshakes/s", "openssl s_server", optimized ? 1.5 : 0.0, repetitions,
              full(ours, p256), full(openssl, p256)),
      // Against the library's own speed: the plain C server on the wolfSSL dgram links, both on one cipher suite
      // (the servers' preferences differ: dgram's AES-GCM first where the CPU has AES-NI, ChaCha20 otherwise).
      compare("dtls 1.2 full handshakes X25519", "handshakes/s", "plain C, same wolfSSL", 0.95, repetitions,
              full(ours, same_suite), full(plain_same, same_suite)),
      compare("dtls 1.2 resumed handshakes", "handshakes/s", "plain C, same wolfSSL", 1.0, repetitions,
              resumed(ours, same_suite), resumed(plain_same, same_suite)),
      compare("dtls 1.2 1200 B echo", "round trips/s", "plain C, same wolfSSL", 1.0, repetitions,
              echo(ours, same_suite), echo(plain_same, same_suite)),
      // And against what a C user of the tutorial has: the same server on Debian's wolfSSL.
      compare("dtls 1.2 full handshakes X25519", "handshakes/s", "plain C, Debian wolfSSL", 0.0, repetitions,
              full(ours, x25519), full(plain, x25519)),
  };
  // Where a full handshake's time goes, against the same library's plain C server.
  const auto timeline = timeline_rows("dtls 1.2 full handshake X25519",
                                      {"hello -> cookie request", "hello with cookie -> server flight",
                                       "client flight -> Finished"},
                                      client_context(setup, same_suite), cpus.place(ours).port(),
                                      cpus.place(plain_same).port(), "plain C, same wolfSSL", 400);
  rows.insert(rows.end(), timeline.begin(), timeline.end());
  if (optimized) {   // DTLS 1.3: no other DTLS 1.3 server in Debian 12, so against this server's own DTLS 1.2
    const ClientChoice x25519_13{dtls::Version::dtls1_3, dtls::Group::x25519};
    const ClientChoice p256_13{dtls::Version::dtls1_3, dtls::Group::secp256r1};
    rows.push_back(compare("dtls 1.3 full handshakes X25519", "handshakes/s", "openssl s_server (1.2)", 0.0,
                           repetitions, full(ours, x25519_13), full(openssl, x25519)));
    rows.push_back(compare("dtls 1.3 full handshakes P-256", "handshakes/s", "dgram DTLS 1.2", 0.0, repetitions,
                           full(ours, p256_13), full(ours, p256)));
    // What post-quantum costs: the hybrid's key share (1.2 KB each way) and the hello with the cookie in two
    // datagrams, against the classical default.
    const ClientChoice hybrid_13{dtls::Version::dtls1_3, dtls::Group::x25519_mlkem768};
    rows.push_back(compare("dtls 1.3 full handshakes X25519MLKEM768", "handshakes/s", "X25519 (DTLS 1.3)", 0.0,
                           repetitions, full(ours, hybrid_13), full(ours, x25519_13)));
    // Resumption: the default (every hello proves its address with a cookie; a fresh X25519 key, psk_dhe_ke;
    // a new ticket each time) against DTLS 1.2; a server that answers a hello with a known ticket at once
    // (--resume-without-cookie) against the default; and one that also resumes on the ticket's key alone
    // (--psk-ke on both sides, as DTLS 1.2 does).
    ServerProcess without_cookie = dgram_server(setup.dtls_server, "1.3", {"--resume-without-cookie"});
    ServerProcess psk_ke = dgram_server(setup.dtls_server, "1.3", {"--resume-without-cookie", "--psk-ke"});
    const ClientChoice psk_ke_13{.version = dtls::Version::dtls1_3, .psk_ke = true};
    rows.push_back(compare("dtls 1.3 resumed handshakes", "handshakes/s", "dgram DTLS 1.2", 0.0, repetitions,
                           resumed(ours, x25519_13), resumed(ours, x25519)));
    rows.push_back(compare("dtls 1.3 resumed, without cookie", "handshakes/s", "with (default)", 1.15, repetitions,
                           resumed(without_cookie, x25519_13), resumed(ours, x25519_13)));
    rows.push_back(compare("dtls 1.3 resumed, no cookie, psk_ke", "handshakes/s", "dgram DTLS 1.2", 1.0, repetitions,
                           resumed(psk_ke, psk_ke_13), resumed(ours, x25519)));
    rows.push_back(compare("dtls 1.3 1200 B echo", "round trips/s", "dgram DTLS 1.2", 0.0, repetitions,
                           echo(ours, x25519_13), echo(ours, x25519)));
  }
  if (optimized) {   // what the CoAP profile costs: AES-128-CCM-8 (no AES-NI path in wolfSSL) against AES-128-GCM
    const std::string suites = "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-GCM-SHA256:PSK-AES128-CCM-8:PSK-AES128-GCM-SHA256";
    ServerProcess coap({setup.dtls_server, "--mode", "blocking", "--port", "0", "--cert", cert, "--key", key, "--ciphers",
                        suites, "--psk-identity", bench_psk.identity, "--psk-hex", bench_psk_hex},
                       listening);
    const ClientChoice ecdsa_ccm8{.ciphers = "ECDHE-ECDSA-AES128-CCM-8"};
    const ClientChoice ecdsa_gcm{.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"};
    const ClientChoice psk_ccm8{.ciphers = "PSK-AES128-CCM-8", .psk = true};
    const ClientChoice psk_gcm{.ciphers = "PSK-AES128-GCM-SHA256", .psk = true};
    rows.push_back(compare("dtls 1.2 full handshakes ECDSA CCM-8", "handshakes/s", "ECDSA AES-128-GCM", 0.0,
                           repetitions, full(coap, ecdsa_ccm8), full(coap, ecdsa_gcm)));
    rows.push_back(compare("dtls 1.2 1200 B echo ECDSA CCM-8", "round trips/s", "ECDSA AES-128-GCM", 0.0, repetitions,
                           echo(coap, ecdsa_ccm8), echo(coap, ecdsa_gcm)));
    rows.push_back(compare("dtls 1.2 full handshakes PSK CCM-8", "handshakes/s", "PSK AES-128-GCM", 0.0, repetitions,
                           full(coap, psk_ccm8), full(coap, psk_gcm)));
    rows.push_back(compare("dtls 1.2 1200 B echo PSK CCM-8", "round trips/s", "PSK AES-128-GCM", 0.0, repetitions,
                           echo(coap, psk_ccm8), echo(coap, psk_gcm)));
  }
  if (!setup.system_dtls_server.empty()) {   // this build's server against dgram on Debian's wolfSSL
    ServerProcess system = dgram_server(setup.system_dtls_server, "1.2");
    rows.push_back(compare("dtls 1.2 full handshakes X25519", "handshakes/s", "dgram, Debian's wolfSSL", 0.0,
                           repetitions, full(ours, x25519), full(system, x25519)));
    rows.push_back(compare("dtls 1.2 full handshakes P-256", "handshakes/s", "dgram, Debian's wolfSSL", 0.0,
                           repetitions, full(ours, p256), full(system, p256)));
    rows.push_back(compare("dtls 1.2 resumed handshakes", "handshakes/s", "dgram, Debian's wolfSSL", 0.0,
                           repetitions, resumed(ours, x25519), resumed(system, x25519)));
    rows.push_back(compare("dtls 1.2 1200 B echo", "round trips/s", "dgram, Debian's wolfSSL", optimized ? 1.5 : 0.0,
                           repetitions, echo(ours, x25519), echo(system, x25519)));
  }
  return rows;
}

}  // namespace dgram::bench
