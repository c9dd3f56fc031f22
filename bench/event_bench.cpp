// Event-server benchmarks: handshakes and echo round trips with 1, 16 and 256 concurrent clients against
// dtls-echo-server --mode event, --mode blocking and the plain C wolfSSL server; the server's memory per idle
// session at 10,000 sessions; its CPU with 1,000 idle sessions. The load generator is dgram's own
// non-blocking client: many EventClients in one ClientLoop.
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "bench.hpp"
#include "client_load.hpp"
#include "process_stats.hpp"
#include "server_process.hpp"

import dgram;

namespace dgram::bench {
namespace {

using namespace std::chrono_literals;
using Seconds = std::chrono::duration<double>;

constexpr auto run_limit = 10s;   // a run that has not finished its work by then reports what it did

std::shared_ptr<dtls::DtlsContext> make_context(dtls::DtlsConfig config) {
  std::error_code ec;
  std::string reason;
  auto context = dtls::DtlsContext::create(config, ec, &reason);
  if (!context) throw std::runtime_error("bench context: " + reason);
  return context;
}

// Clients of one run, each slot holding at most one client at a time.
class Load {
 public:
  Load(std::shared_ptr<dtls::DtlsContext> context, unsigned short port, std::size_t clients)
      : context_{std::move(context)}, server_{Endpoint::loopback(Family::ipv4, port)}, slots_(clients) {
    std::error_code ec;
    loop_ = std::make_unique<dtls::ClientLoop>(ec);
    if (ec) throw std::system_error(ec, "bench loop");
  }
  ~Load() {
    for (auto& slot : slots_) drop(slot);
  }

  // Opens a new client in `slot` (resuming `resume` when set).
  void open(std::unique_ptr<dtls::EventClient>& slot, const dtls::Session* resume) {
    drop(slot);
    std::error_code ec;
    slot = dtls::EventClient::connect(context_, server_, ec, resume);
    if (!slot) throw std::system_error(ec, "bench connect");
    loop_->add(*slot, ec);
    if (ec) throw std::system_error(ec, "bench loop add");
  }
  void drop(std::unique_ptr<dtls::EventClient>& slot) {
    if (!slot) return;
    std::error_code ec;
    if (slot->established()) slot->close(ec);
    loop_->remove(*slot);
    slot.reset();
  }
  void step() {
    std::error_code ec;
    loop_->run_once(Deadline::after(20ms), ec);
  }
  std::vector<std::unique_ptr<dtls::EventClient>>& slots() { return slots_; }

 private:
  std::shared_ptr<dtls::DtlsContext> context_;
  Endpoint server_;
  std::unique_ptr<dtls::ClientLoop> loop_;
  std::vector<std::unique_ptr<dtls::EventClient>> slots_;
};

dtls::Session saved_session(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port) {
  Load load(context, port, 1);
  auto& client = load.slots().front();
  load.open(client, nullptr);
  const auto limit = Deadline::after(run_limit);
  while (client->state() == dtls::EngineState::handshaking && !limit.passed(Clock::now())) load.step();
  if (!client->established()) throw std::runtime_error("bench: no session to resume: " + client->failure());
  return client->session();
}

}  // namespace

// `clients` sessions (as many as the server takes within the limit), then 1200-byte round trips on all of them
// at once until `total` are done.
double echo_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, std::size_t clients, int total) {
  Load load(context, port, clients);
  for (auto& slot : load.slots()) load.open(slot, nullptr);
  const auto setup = Deadline::after(run_limit);
  const auto handshaking = [&] {
    for (auto& slot : load.slots())
      if (slot->state() == dtls::EngineState::handshaking) return true;
    return false;
  };
  while (handshaking() && !setup.passed(Clock::now())) load.step();
  const std::vector<std::byte> message(1200, std::byte{'e'});
  std::vector<std::byte> reply(2048);
  std::error_code ec;
  for (auto& slot : load.slots())
    if (slot->established()) slot->send(message, ec);
  int done = 0;
  const auto start = Clock::now();
  const auto limit = Deadline::after(run_limit);
  while (done < total && !limit.passed(Clock::now())) {
    load.step();
    for (auto& slot : load.slots()) {
      if (!slot->established() || !slot->receive(reply, ec)) continue;
      ++done;
      slot->send(message, ec);
    }
  }
  return done / Seconds(Clock::now() - start).count();
}

namespace {

std::string fmt_clients(std::size_t clients) {
  return clients == 1 ? ", 1 client" : ", " + std::to_string(clients) + " clients";
}

// `count` sessions opened (at most 256 handshakes at a time) and kept open and idle.
std::unique_ptr<Load> idle_sessions(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port,
                                    std::size_t count) {
  auto load = std::make_unique<Load>(context, port, count);
  std::size_t next = 0, in_flight = 0, established = 0;
  const auto limit = Deadline::after(120s);
  while (established < count && !limit.passed(Clock::now())) {
    while (in_flight < 256 && next < count) load->open(load->slots()[next++], nullptr), ++in_flight;
    load->step();
    in_flight = 0;
    established = 0;
    for (std::size_t i = 0; i < next; ++i) {
      auto& slot = load->slots()[i];
      if (slot->state() == dtls::EngineState::handshaking) ++in_flight;
      if (slot->state() == dtls::EngineState::failed) load->open(slot, nullptr), ++in_flight;
      established += slot->established();
    }
  }
  if (established < count) throw std::runtime_error("bench: only " + std::to_string(established) + " idle sessions opened");
  return load;
}

// What wolfSSL itself keeps per session object, before any handshake: `count` objects from a server context.
double wolfssl_object_kib(const std::string& certs, int count) {
  WOLFSSL_CTX* ctx = wolfSSL_CTX_new(wolfDTLSv1_2_server_method());
  if (!ctx || wolfSSL_CTX_use_certificate_file(ctx, (certs + "/server-ecdsa.pem").c_str(), WOLFSSL_FILETYPE_PEM) != 1 ||
      wolfSSL_CTX_use_PrivateKey_file(ctx, (certs + "/server-ecdsa.key").c_str(), WOLFSSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("bench: wolfSSL context for the memory floor");
  const long before = resident_kib(static_cast<int>(::getpid()));
  std::vector<WOLFSSL*> objects;
  for (int i = 0; i < count; ++i) objects.push_back(wolfSSL_new(ctx));
  const long after = resident_kib(static_cast<int>(::getpid()));
  for (WOLFSSL* ssl : objects) wolfSSL_free(ssl);
  wolfSSL_CTX_free(ctx);
  return static_cast<double>(after - before) / count;
}

}  // namespace

std::shared_ptr<dtls::DtlsContext> bench_client_context(const std::string& certs) {
  return make_context(dtls::client_config(dtls::Pem::file(certs + "/ca.pem"), "localhost"));
}

double handshake_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, std::size_t clients,
                      int total, bool resume) {
  const dtls::Session saved = resume ? saved_session(context, port) : dtls::Session{};
  Load load(context, port, clients);
  int started = 0, done = 0;
  for (auto& slot : load.slots())
    if (started < total) load.open(slot, resume ? &saved : nullptr), ++started;
  const auto start = Clock::now();
  const auto limit = Deadline::after(run_limit);
  while (done < total && !limit.passed(Clock::now())) {
    load.step();
    for (auto& slot : load.slots()) {
      if (!slot || slot->state() == dtls::EngineState::handshaking) continue;
      done += slot->established();
      load.drop(slot);   // failed ones (a blocking server that never got to them) are tried again
      if (started < total + static_cast<int>(clients)) load.open(slot, resume ? &saved : nullptr), ++started;
    }
  }
  return done / Seconds(Clock::now() - start).count();
}


std::vector<Row> event_benchmarks(int repetitions, const DtlsBenchSetup& setup, std::size_t only_clients) {
  const std::string cert = setup.certs + "/server-ecdsa.pem";
  const std::string key = setup.certs + "/server-ecdsa.key";
  const std::string listening = R"(listening on 127\.0\.0\.1:(\d+))";
  const std::vector<std::string> server{setup.dtls_server, "--port", "0", "--cert", cert, "--key", key};
  const auto with = [&](std::vector<std::string> extra) {
    auto argv = server;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  };
  const auto context = bench_client_context(setup.certs);
  const int runs = only_clients != 0 ? repetitions : std::min(repetitions, 3);   // serialised servers make runs long
  std::vector<Row> rows;
  {
    ServerProcess event(with({"--mode", "event"}), listening);
    ServerProcess blocking(with({"--mode", "blocking"}), listening);
    ServerProcess plain({setup.plain_server, cert, key}, listening);
    for (const std::size_t clients : {std::size_t{1}, std::size_t{16}, std::size_t{256}}) {
      if (only_clients != 0 && clients != only_clients) continue;
      const double target = clients == 1 ? 1.0 : 1.1;
      const std::string at = fmt_clients(clients);
      const int handshakes = clients == 1 ? 150 : 300;
      const auto full = [&](const ServerProcess& s) { return [&] { return handshake_rate(context, s.port(), clients, handshakes, false); }; };
      const auto resumed = [&](const ServerProcess& s) { return [&] { return handshake_rate(context, s.port(), clients, handshakes, true); }; };
      const auto echo = [&](const ServerProcess& s) { return [&] { return echo_rate(context, s.port(), clients, 3000); }; };
      rows.push_back(compare("event full handshakes" + at, "handshakes/s", "blocking server", target, runs, full(event), full(blocking)));
      rows.push_back(compare("event resumed" + at, "handshakes/s", "blocking server", target, runs, resumed(event), resumed(blocking)));
      rows.push_back(compare("event 1200 B echo" + at, "round trips/s", "blocking server", target, runs, echo(event), echo(blocking)));
      if (clients == 256) continue;   // the plain server serialises like the blocking one: its rows say no more
      rows.push_back(compare("event full handshakes" + at, "handshakes/s", "plain C wolfSSL", 0.0, runs, full(event), full(plain)));
      rows.push_back(compare("event 1200 B echo" + at, "round trips/s", "plain C wolfSSL", 0.0, runs, echo(event), echo(plain)));
    }
  }
  if (only_clients != 0) return rows;
  {
    ServerProcess event(with({"--mode", "event", "--max-sessions", "20000", "--idle-timeout-ms", "3600000"}), listening);
    const long before = resident_kib(event.pid());
    auto sessions = idle_sessions(context, event.port(), 10'000);
    const long after = resident_kib(event.pid());
    const double per_session = static_cast<double>(after - before) / 10'000;
    // (The optimized wolfSSL keeps a session in 29 KiB; Debian's static buffers make it 59.)
    const double target_kib = dtls::dtls13_available() ? 32.0 : 64.0;
    rows.push_back(Row{"event memory/idle session", "KiB", per_session, target_kib,
                       "target (" + std::to_string(static_cast<int>(target_kib)) + " KiB)", 1.0, true});
    rows.push_back(Row{"event memory/idle session", "KiB", per_session, wolfssl_object_kib(setup.certs, 10'000),
                       "bare WOLFSSL object", 0.0, true});
  }
  {
    ServerProcess event(with({"--mode", "event", "--idle-timeout-ms", "3600000"}), listening);
    auto sessions = idle_sessions(context, event.port(), 1'000);
    const double cpu_before = cpu_seconds(event.pid());
    const auto start = Clock::now();
    std::this_thread::sleep_for(5s);   // the measurement window: the server is left alone
    const double percent = 100 * (cpu_seconds(event.pid()) - cpu_before) / Seconds(Clock::now() - start).count();
    rows.push_back(Row{"event idle CPU, 1000 sess", "% of a core", percent, 1.0, "budget (1 %)", 1.0, true});
  }
  return rows;
}

}  // namespace dgram::bench
