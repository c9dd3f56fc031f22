// The threaded DTLS variant: sessions resume on another worker than the one that made them (by session ID and
// by ticket), the counters per worker add up, and the example server stops cleanly while 100 handshakes are
// in flight. (The event-server suite also runs against ThreadedServer with 1, 2 and 4 workers, and the
// example and interop suites against --mode threaded.) Every wait is bounded; nothing sleeps.
#include <catch2/catch.hpp>

#include <csignal>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/server_thread.hpp"
#include "support/process.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::context_for;
using dgram::testing::test_client_config;
using dgram::testing::test_server_config;
namespace dtls = dgram::dtls;

namespace {

using dgram::testing::bytes;

struct Handshake {
  std::uint32_t worker;
  bool resumed;
};

// Echoes, and records which worker each session was established on.
class WorkerRecorder final : public dtls::SessionHandler {
 public:
  void on_message(dtls::EventServer& server, dtls::SessionId id, std::span<const std::byte> message) override {
    std::error_code ec;
    server.send(id, message, ec);
  }
  void on_established(dtls::EventServer& server, dtls::SessionId id, const dtls::SessionInfo& session) override {
    const std::lock_guard lock(mutex_);   // (Catch's assertions are for the test's thread only)
    if (id.worker != server.worker()) ++wrong_worker_ids;
    by_peer_[session.peer] = Handshake{server.worker(), session.resumed};
    changed_.notify_all();
  }
  // The handshake of `peer`, waiting up to 5 s for the server to report it.
  std::optional<Handshake> of(const dgram::Endpoint& peer) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, 5s, [&] { return by_peer_.contains(peer); })) return std::nullopt;
    return by_peer_.at(peer);
  }

  int wrong_worker_ids{0};   // SessionIds naming another worker than the one calling

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<dgram::Endpoint, Handshake, dgram::EndpointHash> by_peer_;
};

class RunningThreaded {
 public:
  RunningThreaded(const dtls::DtlsConfig& config, std::uint32_t workers) {
    dtls::ThreadedServerSettings settings;
    settings.workers = workers;
    std::error_code ec;
    server = std::make_unique<dtls::ThreadedServer>(context_for(config), dgram::Endpoint::loopback(dgram::Family::ipv4, 0),
                                                    settings, handler, ec);
    REQUIRE(!ec);
    thread_.emplace([this](std::error_code& error) { server->run(error); }, [this] { server->stop(); });
  }
  void stop() { thread_->stop(); }

  WorkerRecorder handler;
  std::unique_ptr<dtls::ThreadedServer> server;

 private:
  std::optional<dgram::testing::ServerThread> thread_;   // last: stopped before the server goes
};

struct ClientSession {
  dgram::Endpoint local;
  dtls::Session saved;
  bool resumed;
};

// One handshake and echo from a fresh source port, offering `resume` when given.
ClientSession handshake(const std::shared_ptr<dtls::DtlsContext>& context, const dgram::Endpoint& server,
                        const dtls::Session* resume = nullptr) {
  auto socket = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  dtls::DtlsHandshaker handshaker(context);
  std::error_code ec;
  auto channel = handshaker.connect_dtls(socket, server, dgram::Deadline::after(10s), ec, resume);
  INFO(handshaker.failure());
  REQUIRE(channel);
  channel->send(bytes("which worker?"), ec);
  std::vector<std::byte> buffer(100);
  CHECK(channel->receive(buffer, dgram::Deadline::after(5s), ec) == 13);
  ClientSession result{socket.local_endpoint(ec), channel->session(), channel->resumed()};
  channel->close(ec);
  return result;
}

}  // namespace

TEST_CASE("threaded server: a session made on one worker resumes on another", "[dtls][threaded][resumption]") {
  const bool by_ticket = GENERATE(true, false);
  INFO((by_ticket ? "by ticket (the server keeps no session cache)" : "by session ID (no tickets)"));
  auto server_config = test_server_config();
  auto client_config = test_client_config();
  // (wolfSSL's session cache is process-wide, so the ID case would pass with a context per worker too; the
  // ticket case is the one that needs the workers to share one context's ticket key.)
  if (by_ticket) {
    server_config.session_cache = false;
  } else {
    server_config.session_tickets = false;
    client_config.session_tickets = false;
  }
  RunningThreaded running(server_config, 2);
  const auto endpoint = running.server->local_endpoint();
  auto context = context_for(client_config);

  const ClientSession first = handshake(context, endpoint);
  const auto made = running.handler.of(first.local);
  REQUIRE(made);
  CHECK(!made->resumed);
  // New source ports until one hashes to the other worker (each try: one chance in two).
  bool elsewhere = false;
  for (int attempt = 0; attempt < 40 && !elsewhere; ++attempt) {
    const ClientSession again = handshake(context, endpoint, &first.saved);
    const auto resumed = running.handler.of(again.local);
    REQUIRE(resumed);
    CHECK(again.resumed);
    CHECK(resumed->resumed);
    elsewhere = resumed->worker != made->worker;
  }
  CHECK(elsewhere);
  running.stop();
  CHECK(running.handler.wrong_worker_ids == 0);
}

TEST_CASE("threaded server: 64 clients spread over 4 workers; the totals are the workers' sums", "[dtls][threaded]") {
  RunningThreaded running(test_server_config(), 4);
  const auto endpoint = running.server->local_endpoint();
  auto context = context_for(test_client_config());
  std::map<std::uint32_t, int> per_worker;
  for (int i = 0; i < 64; ++i) {
    const auto made = running.handler.of(handshake(context, endpoint).local);
    REQUIRE(made);
    ++per_worker[made->worker];
  }
  auto& server = *running.server;
  CHECK(server.workers() == 4);
  CHECK(per_worker.size() == 4);   // each worker got some: one missing out is a chance of 4 x (3/4)^64
  running.stop();                  // the counters are final
  const auto total = server.stats();
  CHECK(total.handshakes_full == 64);
  CHECK(total.messages_in == 64);
  for (std::uint32_t worker = 0; worker < 4; ++worker)
    CHECK(server.worker_stats(worker).handshakes_full == static_cast<std::uint64_t>(per_worker[worker]));
}

TEST_CASE("dtls-echo-server --mode threaded: SIGTERM with 100 handshakes in flight exits 0 within a second", "[dtls][threaded][examples]") {
  auto server = dgram::testing::start_dtls_server("threaded:2");
  const auto endpoint = dgram::Endpoint::parse("127.0.0.1:" + server.port);
  auto context = context_for(test_client_config());
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  REQUIRE(!ec);
  std::vector<std::unique_ptr<dtls::EventClient>> clients;
  for (int i = 0; i < 100; ++i) {
    clients.push_back(dtls::EventClient::connect(context, endpoint, ec));
    REQUIRE(clients.back());
    loop.add(*clients.back(), ec);
  }
  // Each client took its HelloVerifyRequest and sent the ClientHello with the cookie: the server now has a
  // handshake under way for each, which they will never finish (the first ones may have finished while the
  // last ones were answered: those are sessions, closed with close_notify).
  const auto all_answered = [&] {
    for (const auto& client : clients)
      if (client->stats().datagrams_in < 1) return false;
    return true;
  };
  const auto limit = dgram::Deadline::after(10s);
  while (!all_answered() && !limit.passed(dgram::Clock::now())) loop.run_once(limit, ec);
  REQUIRE(all_answered());
  for (const auto& client : clients) loop.remove(*client);

  const dgram::testing::Finished stopped = server.stop();   // SIGTERM, then at most a second
  INFO(stopped.err);
  CHECK(stopped.signal == 0);
  CHECK(stopped.exit_code == 0);
  // One challenge per client, more when a client's first ClientHello waited past its retransmission time.
  const auto challenges = stopped.err.find(" cookie challenges");
  REQUIRE(challenges != std::string::npos);
  const auto number_start = stopped.err.rfind(' ', challenges - 1) + 1;
  CHECK(std::stoi(stopped.err.substr(number_start, challenges - number_start)) >= 100);
}

TEST_CASE("threaded server: a port held by another socket, even one open to SO_REUSEPORT, is refused", "[dtls][threaded][negative]") {
  dgram::UdpOptions shared;
  shared.reuse_port = true;   // another server of this user that would let us join its group
  std::error_code ec;
  auto holder = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0), ec, shared);
  REQUIRE(!ec);
  const auto taken = holder.local_endpoint(ec);
  WorkerRecorder handler;
  dtls::ThreadedServerSettings settings;
  settings.workers = 2;
  dtls::ThreadedServer refused(context_for(test_server_config()), taken, settings, handler, ec);
  CHECK(ec == std::errc::address_in_use);
  std::error_code run_error;
  refused.run(run_error);
  CHECK(run_error);   // nothing to run

  settings.cookie_rotation = std::chrono::seconds(0);
  dtls::ThreadedServer no_rotation(context_for(test_server_config()),
                                   dgram::Endpoint::loopback(dgram::Family::ipv4, 0), settings, handler, ec);
  CHECK(ec == dgram::errc::invalid_argument);
}
