// The non-blocking DTLS variant over real loopback sockets: EventServer with many concurrent EventClients,
// a client inside the test's own epoll loop, hostile datagrams to the port and inside sessions, peers that
// vanish, the session limit, and a lossy path. Every wait is bounded; nothing sleeps. When the threaded variant
// is built, every case runs again against ThreadedServer with 1, 2 and 4 workers (the same handler).
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/server_thread.hpp"
#include "support/forwarding_transport.hpp"
#include "support/process.hpp"
#include "support/udp_relay.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::context_for;
using dgram::testing::test_client_config;
using dgram::testing::test_server_config;
namespace dtls = dgram::dtls;

namespace {

using dgram::testing::bytes;
using dgram::testing::text;

// Echoes every message and records what happened, for the test thread to wait on.
class RecordingEcho final : public dtls::SessionHandler {
 public:
  void on_message(dtls::EventServer& server, dtls::SessionId id, std::span<const std::byte> message) override {
    std::error_code ec;
    server.send(id, message, ec);
  }
  void on_established(dtls::EventServer& server, dtls::SessionId id, const dtls::SessionInfo& info) override {
    // What a media program takes from a DTLS-SRTP session: its profile and keys (and other exported material).
    std::error_code ec;
    const dtls::Engine* engine = server.engine(id);
    std::vector<std::byte> keys = engine && !info.srtp_profile.empty() ? engine->srtp_keying_material(ec) : std::vector<std::byte>{};
    std::vector<std::byte> exported =
        engine && !info.srtp_profile.empty()
            ? engine->export_keying_material("EXPERIMENTAL dgram interop", std::nullopt, 32, ec)
            : std::vector<std::byte>{};
    note([&] {
      ++established;
      srtp_profiles.push_back(info.srtp_profile);
      srtp_keys.push_back(std::move(keys));
      exporter.push_back(std::move(exported));
    });
  }
  void on_ended(dtls::EventServer&, const dtls::SessionSummary& summary) override {
    note([&] { ended.push_back(summary.end); });
  }
  void on_handshake_failed(dtls::EventServer&, const dgram::Endpoint&, dtls::FailureKind kind, const std::string&) override {
    note([&] { failures.push_back(kind); });
  }
  // Waits up to `timeout` for `condition` (read under the lock) to hold.
  bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, condition);
  }

  std::mutex mutex;
  std::condition_variable changed;
  int established{0};
  std::vector<std::string> srtp_profiles;            // each established session's, in order
  std::vector<std::vector<std::byte>> srtp_keys;     // its DTLS-SRTP keys (empty without)
  std::vector<std::vector<std::byte>> exporter;      // 32 bytes exported for "EXPERIMENTAL dgram interop"
  std::vector<dtls::SessionEnd> ended;
  std::vector<dtls::FailureKind> failures;

 private:
  template <typename Change>
  void note(Change change) {
    {
      const std::lock_guard lock(mutex);
      change();
    }
    changed.notify_all();
  }
};

// The servers each case runs against: 0 is EventServer, N a ThreadedServer with N workers.
std::vector<std::uint32_t> server_kinds() {
#if defined(DGRAM_THREADED_SERVER) && defined(DGRAM_TWO_WORKERS_ONLY)   // sanitizer builds: see tests/meson.build
  return {0, 2};
#elif defined(DGRAM_THREADED_SERVER)
  return {0, 1, 2, 4};
#else
  return {0};
#endif
}
// For the slow cases (seconds of retransmission timers): the event server and the most workers. The engine
// work is the same in every kind; the dispatch between workers is what the counts differ in.
std::vector<std::uint32_t> fewest_and_most_workers() {
  const std::vector<std::uint32_t> kinds = server_kinds();
  return kinds.size() > 2 ? std::vector<std::uint32_t>{kinds.front(), kinds.back()} : kinds;
}
std::uint32_t current_workers = 0;   // set by FOR_EACH_SERVER_KIND() for the RunningServers of a case

#define FOR_SERVER_KINDS(kinds)                                                            \
  current_workers = GENERATE(from_range(kinds));                                          \
  INFO((current_workers == 0 ? std::string("event server")                               \
                             : "threaded server, " + std::to_string(current_workers) + " workers"))
#define FOR_EACH_SERVER_KIND() FOR_SERVER_KINDS(server_kinds())

// The server of the case running on its own thread(s); stopped and joined by the destructor.
class RunningServer {
 public:
  explicit RunningServer(dtls::DtlsConfig config = test_server_config(), dtls::EventServerSettings settings = {}) {
    std::error_code ec;
    const auto local = dgram::Endpoint::loopback(dgram::Family::ipv4, 0);
#ifdef DGRAM_THREADED_SERVER
    if (current_workers > 0) {
      dtls::ThreadedServerSettings threaded;
      static_cast<dtls::EventServerSettings&>(threaded) = settings;
      threaded.workers = current_workers;
      threaded_ = std::make_unique<dtls::ThreadedServer>(context_for(config), local, threaded, handler, ec);
      REQUIRE(!ec);
      endpoint_ = threaded_->local_endpoint();
      thread_.emplace([this](std::error_code& error) { threaded_->run(error); }, [this] { threaded_->stop(); });
      return;
    }
#endif
    server_ = std::make_unique<dtls::EventServer>(context_for(config), local, settings, handler, ec);
    REQUIRE(!ec);
    endpoint_ = server_->local_endpoint();
    thread_.emplace([this](std::error_code& error) { server_->run(error); }, [this] { server_->stop(); });
  }
  ~RunningServer() { stop(); }
  void stop() {
    if (thread_) thread_->stop();
  }
  void drain(std::chrono::milliseconds deadline) {
    if (server_) return server_->drain(deadline);
#ifdef DGRAM_THREADED_SERVER
    threaded_->drain(deadline);
#endif
  }
  // The counters as the server threads see them now (summed over the workers).
  dtls::EventServerStats stats() {
    dtls::EventServerStats total;
    for (auto* worker : workers()) {
      if (!thread_->running()) {
        dtls::accumulate(total, worker->stats());
        continue;
      }
      auto promise = std::make_shared<std::promise<dtls::EventServerStats>>();
      auto result = promise->get_future();
      worker->post([promise](dtls::EventServer& server) { promise->set_value(server.stats()); });
      REQUIRE(result.wait_for(10s) == std::future_status::ready);
      dtls::accumulate(total, result.get());
    }
    return total;
  }
  const dgram::Endpoint& endpoint() const { return endpoint_; }

  // The event server, or the threaded server's workers (for posting tasks to their loops).
  std::vector<dtls::EventServer*> workers() {
    if (server_) return {server_.get()};
    std::vector<dtls::EventServer*> all;
#ifdef DGRAM_THREADED_SERVER
    for (std::uint32_t i = 0; i < threaded_->workers(); ++i) all.push_back(&threaded_->worker(i));
#endif
    return all;
  }

  RecordingEcho handler;

 private:
  std::unique_ptr<dtls::EventServer> server_;
#ifdef DGRAM_THREADED_SERVER
  std::unique_ptr<dtls::ThreadedServer> threaded_;
#endif
  dgram::Endpoint endpoint_;
  std::optional<dgram::testing::ServerThread> thread_;   // last: stopped before the server goes
};

// Runs `loop` until `done()` or `limit`; false when the limit came first. The loop also returns every
// `tick` so that `done()` can run the test's own timers (a client's resend of an unanswered message).
bool run_until(dtls::ClientLoop& loop, const std::function<bool()>& done, std::chrono::milliseconds limit = 20s,
               std::chrono::milliseconds tick = std::chrono::milliseconds::max()) {
  const auto deadline = dgram::Deadline::after(limit);
  while (!done()) {
    if (deadline.passed(dgram::Clock::now())) return false;
    std::error_code ec;
    const auto wake = tick == std::chrono::milliseconds::max() ? deadline : deadline.min(dgram::Deadline::after(tick));
    loop.run_once(wake, ec);
    REQUIRE(!ec);
  }
  return true;
}

std::unique_ptr<dtls::EventClient> event_client(const std::shared_ptr<dtls::DtlsContext>& context,
                                                const dgram::Endpoint& server, const dtls::Session* resume = nullptr) {
  std::error_code ec;
  auto client = dtls::EventClient::connect(context, server, ec, resume);
  REQUIRE(client);
  return client;
}

// A client that sends its own messages and checks the replies, retrying a message that got no reply within
// `retry` (for lossy paths).
struct EchoingClient {
  std::unique_ptr<dtls::EventClient> client;
  std::vector<std::string> messages;
  std::size_t next{0};        // the message awaiting its reply
  std::size_t wrong_replies{0};
  dgram::TimePoint sent_at{};
  bool sent{false};

  bool done() const { return next == messages.size() || client->state() == dtls::EngineState::failed; }
  void step(std::chrono::milliseconds retry) {
    if (!client->established() || done()) return;
    std::vector<std::byte> buffer(2048);
    std::error_code ec;
    while (const auto size = client->receive(buffer, ec)) {
      if (next < messages.size() && text(std::span(buffer).first(*size)) == messages[next]) {
        ++next;
        sent = false;
      } else if (next == 0 || text(std::span(buffer).first(*size)) != messages[next - 1]) {
        ++wrong_replies;   // neither this message's reply nor a late duplicate of the previous one
      }
    }
    if (done()) return;
    if (!sent || dgram::Clock::now() - sent_at > retry) {
      client->send(bytes(messages[next]), ec);
      sent = true;
      sent_at = dgram::Clock::now();
    }
  }
};

// Runs `loop` until every client got all its replies or failed (at most 60 s), resending a message that had no
// reply within `retry`.
bool run_echoing(dtls::ClientLoop& loop, std::vector<EchoingClient>& clients, std::chrono::milliseconds retry) {
  return run_until(loop, [&] {
    bool all = true;
    for (auto& client : clients) {
      client.step(retry);
      all = all && client.done();
    }
    return all;
  }, 60s, 100ms);
}

std::string describe(const dtls::EventServerStats& s) {
  return "in " + std::to_string(s.datagrams_in) + ", out " + std::to_string(s.datagrams_out) + ", open " +
         std::to_string(s.sessions_open) + ", full " + std::to_string(s.handshakes_full) + ", failed " +
         std::to_string(s.handshakes_failed) + ", cookies " + std::to_string(s.cookies_sent) + ", bad cookies " +
         std::to_string(s.bad_cookies) + ", garbage " + std::to_string(s.dropped_garbage) + ", no session " +
         std::to_string(s.dropped_no_session) + ", undecryptable " + std::to_string(s.dropped_undecryptable);
}

}  // namespace

TEST_CASE("event server: 200 clients handshake and echo at once through one port", "[dtls][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  RunningServer server;
  auto context = context_for(test_client_config());
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  REQUIRE(!ec);
  std::vector<EchoingClient> clients(200);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i].client = event_client(context, server.endpoint());
    for (int m = 0; m < 3; ++m)   // sizes differ per client, so a reply sent to the wrong client shows
      clients[i].messages.push_back("client " + std::to_string(i) + " message " + std::to_string(m) + " " +
                                    std::string(i % 97 + 1, static_cast<char>('a' + i % 26)));
    loop.add(*clients[i].client, ec);
    REQUIRE(!ec);
  }
  const bool finished = run_echoing(loop, clients, 5s);
  INFO(describe(server.stats()));
  CHECK(finished);
  std::size_t complete = 0, wrong = 0;
  for (auto& client : clients) {
    complete += client.next == client.messages.size();
    wrong += client.wrong_replies;
    INFO(client.client->failure());
    CHECK(client.client->state() == dtls::EngineState::established);
  }
  CHECK(complete == 200);
  CHECK(wrong == 0);
  for (auto& client : clients) {
    client.client->close(ec);
    loop.remove(*client.client);
  }
  CHECK(server.handler.wait_for([&] { return server.handler.ended.size() == 200; }));
  const auto stats = server.stats();
  CHECK(stats.handshakes_full == 200);
  CHECK(stats.sessions_total == 200);
  CHECK(stats.sessions_open == 0);
  CHECK(stats.messages_in == 600);
  CHECK(stats.cookies_sent == 200);
}

TEST_CASE("event client: inside the test's own epoll loop; resumption by ticket", "[dtls][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  RunningServer server;
  auto context = context_for(test_client_config());
  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  REQUIRE(epoll >= 0);
  // The caller's loop: wait for the descriptor or the client's deadline, then call the matching entry point.
  const auto drive = [&](dtls::EventClient& client, const std::function<bool()>& done) {
    epoll_event event{EPOLLIN, {.ptr = &client}};
    REQUIRE(::epoll_ctl(epoll, EPOLL_CTL_ADD, client.descriptor(), &event) == 0);
    const auto limit = dgram::Deadline::after(10s);
    bool finished = false;
    while (!(finished = done()) && !limit.passed(dgram::Clock::now())) {
      const auto wake = client.next_deadline().min(limit);
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake.remaining(dgram::Clock::now())).count();
      epoll_event ready{};
      const int count = ::epoll_wait(epoll, &ready, 1, static_cast<int>(ms));
      std::error_code ec;
      if (count == 1) client.on_readable(ec);
      if (client.next_deadline().passed(dgram::Clock::now())) client.on_deadline(ec);
    }
    ::epoll_ctl(epoll, EPOLL_CTL_DEL, client.descriptor(), nullptr);
    return finished;
  };
  dtls::Session saved;
  for (const bool resuming : {false, true}) {
    INFO("resuming " << resuming);
    auto client = event_client(context, server.endpoint(), resuming ? &saved : nullptr);
    REQUIRE(drive(*client, [&] { return client->state() != dtls::EngineState::handshaking; }));
    REQUIRE(client->established());
    CHECK(client->resumed() == resuming);
    std::error_code ec;
    client->send(bytes("in my loop"), ec);
    REQUIRE(!ec);
    std::vector<std::byte> buffer(100);
    std::optional<std::size_t> got;
    CHECK(drive(*client, [&] { return (got = client->receive(buffer, ec)).has_value(); }));
    REQUIRE(got);
    CHECK(text(std::span(buffer).first(*got)) == "in my loop");
    saved = client->session();
    client->close(ec);
  }
  ::close(epoll);
  const auto stats = server.stats();
  CHECK(stats.handshakes_full == 1);
  CHECK(stats.handshakes_resumed == 1);
}

// Linux hands a connected socket's pending ICMP error to the reader before the datagrams already queued. A server
// that sends close_notify and exits, after which the client's next record meets its closed port, leaves the
// client "connection refused" in front of the close_notify: the session still ended cleanly.
TEST_CASE("event client: a close_notify queued behind the ICMP error of the server's exit still closes the session", "[dtls][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  std::optional<RunningServer> server(std::in_place);
  auto context = context_for(test_client_config());
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  REQUIRE(!ec);
  auto client = event_client(context, server->endpoint());
  loop.add(*client, ec);
  REQUIRE(!ec);
  REQUIRE(run_until(loop, [&] { return client->state() != dtls::EngineState::handshaking; }));
  REQUIRE(client->established());
  loop.remove(*client);   // from here on the test reads the socket itself, in the order it sets up
  const auto wait_for = [&](short what) {   // (POLLERR is always reported: asked for alone, data does not wake it)
    pollfd watched{client->descriptor(), what == POLLERR ? short{0} : what, 0};
    return ::poll(&watched, 1, 10'000) == 1 && (watched.revents & what) != 0;
  };
  server->drain(0ms);     // close_notify to the client, then the server's loop ends
  REQUIRE(wait_for(POLLIN));
  server.reset();         // the port closes
  client->send(bytes("after the end"), ec);
  REQUIRE(!ec);
  REQUIRE(wait_for(POLLERR));   // the ICMP port unreachable, ahead of the close_notify
  client->on_readable(ec);
  CHECK(!ec);
  CHECK(client->state() == dtls::EngineState::closed);
  CHECK(!client->socket_error());
}

TEST_CASE("event server: hostile datagrams to the port and inside a session are dropped and counted", "[dtls][nonblocking][negative]") {
  FOR_EACH_SERVER_KIND();
  RunningServer server;
  auto context = context_for(test_client_config());
  // The victim runs on the blocking client over a transport that keeps copies of what it sends, so the test
  // can replay, truncate and corrupt its real records from its own address.
  struct Recording final : dgram::testing::ForwardingTransport {
    explicit Recording(dgram::UdpSocket& inner) : ForwardingTransport{inner} {}
    void send_to(std::span<const std::byte> d, const dgram::Endpoint& p, std::error_code& ec) override {
      sent.emplace_back(d.begin(), d.end());
      ForwardingTransport::send_to(d, p, ec);
    }
    std::vector<std::vector<std::byte>> sent;
  };
  auto victim_socket = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  Recording path{victim_socket};
  dtls::DtlsHandshaker handshaker(context);
  std::error_code ec;
  auto victim = handshaker.connect_dtls(path, server.endpoint(), dgram::Deadline::after(10s), ec);
  REQUIRE(victim);
  const auto echo = [&](dtls::DtlsChannel& channel, const std::string& message) {
    channel.send(bytes(message), ec);
    std::vector<std::byte> buffer(2048);
    const std::size_t size = channel.receive(buffer, dgram::Deadline::after(5s), ec);
    return ec ? ec.message() : text(std::span(buffer).first(size));
  };
  REQUIRE(echo(*victim, "before") == "before");
  const std::vector<std::byte> record = path.sent.back();   // the encrypted "before"

  auto stranger = dgram::UdpSocket::connect(server.endpoint());
  stranger.send_to(std::vector<std::byte>(100, std::byte{0x16}), {}, ec);   // garbage
  stranger.send_to(std::span(record).first(5), {}, ec);                      // truncated
  stranger.send_to(record, {}, ec);                                          // a record without a session
  auto flipped = record;
  flipped.back() ^= std::byte{1};
  for (const auto& datagram : {record, record, flipped}) victim_socket.send_to(datagram, server.endpoint(), ec);
  victim_socket.send_to(std::span(record).first(record.size() - 1), server.endpoint(), ec);   // truncated, in session
  CHECK(echo(*victim, "after") == "after");

  auto other = dgram::UdpSocket::connect(server.endpoint());
  dtls::DtlsHandshaker other_handshaker(context);
  auto bystander = other_handshaker.connect_dtls(other, server.endpoint(), dgram::Deadline::after(10s), ec);
  REQUIRE(bystander);
  CHECK(echo(*bystander, "unaffected") == "unaffected");
  const auto stats = server.stats();
  CHECK(stats.dropped_garbage >= 3);        // junk, and the two truncated copies
  CHECK(stats.dropped_no_session == 1);
  CHECK(stats.dropped_undecryptable >= 3);  // two replays and the flipped bit
  CHECK(stats.sessions_open == 2);
  CHECK(stats.handshakes_failed == 0);
}

TEST_CASE("event server: peers that vanish are reclaimed at the handshake and idle timeouts", "[dtls][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  auto config = test_server_config();
  config.handshake_timeout = 300ms;
  dtls::EventServerSettings settings;
  settings.idle_timeout = 300ms;
  RunningServer server(config, settings);
  auto context = context_for(test_client_config());
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  {
    // Vanishes after its cookie verified: the engine is driven by hand, so nothing past its second ClientHello
    // is read (an EventClient might take the server's flight in the same wake-up and finish).
    auto socket = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
    auto halfway = dtls::Engine::client(context, server.endpoint(), nullptr, ec);
    halfway.start(dgram::Clock::now(), ec);
    const auto send_all = [&] {
      for (const auto& datagram : halfway.outgoing()) socket.send_to(datagram, server.endpoint(), ec);
      halfway.clear_outgoing();
    };
    send_all();
    std::vector<std::byte> challenge(dtls::max_datagram_size);
    const dgram::Received got = socket.receive_from(challenge, dgram::Deadline::after(5s), ec);
    REQUIRE(!ec);
    halfway.on_datagram(std::span(challenge).first(got.size), dgram::Clock::now(), ec);
    REQUIRE(halfway.outgoing().size() == 1);   // the ClientHello with the cookie
    send_all();
  }
  const bool reclaimed = server.handler.wait_for([&] { return server.handler.failures.size() == 1; });
  INFO(describe(server.stats()));
  REQUIRE(reclaimed);
  CHECK(server.handler.failures.front() == dtls::FailureKind::timed_out);
  {
    auto idle = event_client(context, server.endpoint());   // vanishes after its handshake, without a word
    loop.add(*idle, ec);
    REQUIRE(run_until(loop, [&] { return idle->state() != dtls::EngineState::handshaking; }));
    REQUIRE(idle->established());
    loop.remove(*idle);
  }
  CHECK(server.handler.wait_for([&] { return server.handler.ended.size() == 1; }));
  CHECK(server.handler.ended.front() == dtls::SessionEnd::idle);
  const auto stats = server.stats();
  CHECK(stats.handshake_timeouts == 1);
  CHECK(stats.handshakes_failed == 1);
  CHECK(stats.idle_timeouts == 1);
  CHECK(stats.sessions_open == 0);
}

TEST_CASE("event server: at max_sessions new peers get no state, and are served once a slot frees", "[dtls][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  dtls::EventServerSettings settings;
  settings.max_sessions = 2;
  RunningServer server(test_server_config(), settings);
  auto context = context_for(test_client_config());
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  auto first = event_client(context, server.endpoint());
  auto second = event_client(context, server.endpoint());
  loop.add(*first, ec);
  loop.add(*second, ec);
  REQUIRE(run_until(loop, [&] { return first->established() && second->established(); }));
  auto waiting = event_client(context, server.endpoint());
  loop.add(*waiting, ec);
  REQUIRE(run_until(loop, [&] { return server.stats().dropped_over_limit >= 1; }));
  CHECK(waiting->state() == dtls::EngineState::handshaking);
  CHECK(server.stats().cookies_sent == 2);   // the third peer got no answer, and no state
  first->close(ec);
  REQUIRE(run_until(loop, [&] { return waiting->state() != dtls::EngineState::handshaking; }));   // its retransmission
  CHECK(waiting->established());
  for (auto* client : {first.get(), second.get(), waiting.get()}) loop.remove(*client);
}

TEST_CASE("event server: 50 handshakes with echoes through a path that loses 20% each way", "[dtls][nonblocking][lossy]") {
  FOR_SERVER_KINDS(fewest_and_most_workers());
  // Resends every 1-2 s (not up to 64 s apart), so that 150 lossy round trips finish in seconds.
  auto config = test_server_config();
  config.handshake_timeout = 60s;
  config.retransmission_timeout_max_seconds = 2;
  RunningServer server(config);
  dgram::testing::RelayFaults faults;
  faults.drop = 0.2;
  faults.duplicate = 0.05;
  faults.reorder = 0.05;
  faults.seed = 7;
  dgram::testing::UdpRelay relay("127.0.0.1", server.endpoint().port(), faults);
  auto client_config = test_client_config();
  client_config.handshake_timeout = 60s;
  client_config.retransmission_timeout_max_seconds = 2;
  auto context = context_for(client_config);
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  std::vector<EchoingClient> clients(50);
  const auto through_relay = dgram::Endpoint::loopback(dgram::Family::ipv4, relay.port());
  for (std::size_t i = 0; i < clients.size(); ++i) {
    clients[i].client = event_client(context, through_relay);
    clients[i].messages = {"lossy " + std::to_string(i), "again " + std::to_string(i)};
    loop.add(*clients[i].client, ec);
  }
  const bool finished = run_echoing(loop, clients, 500ms);
  CHECK(finished);
  std::size_t complete = 0;
  for (auto& client : clients) {
    INFO(client.client->failure() << " state " << static_cast<int>(client.client->state()) << " next " << client.next
         << " in " << client.client->stats().datagrams_in << " out " << client.client->stats().datagrams_out
         << " retransmissions " << client.client->stats().retransmissions << " damped "
         << client.client->stats().damped_retransmissions << " dropped " << client.client->stats().dropped_datagrams);
    complete += client.next == client.messages.size();
    CHECK(client.wrong_replies == 0);
    CHECK(client.next == client.messages.size());
  }
  INFO(describe(server.stats()));
  CHECK(complete == 50);
  CHECK(relay.counts().dropped > 0);
  for (auto& client : clients) loop.remove(*client.client);
}

TEST_CASE("event server: a new handshake from a session's address replaces it once its cookie verifies", "[dtls][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  RunningServer server;
  auto context = context_for(test_client_config());
  const auto handshake_from = [&](const dgram::Endpoint& local) {
    auto socket = dgram::UdpSocket::bind(local);
    dtls::DtlsHandshaker handshaker(context);
    std::error_code ec;
    auto channel = handshaker.connect_dtls(socket, server.endpoint(), dgram::Deadline::after(10s), ec);
    INFO(handshaker.failure());
    REQUIRE(channel);
    channel->send(bytes("from this port"), ec);
    std::vector<std::byte> buffer(100);
    CHECK(channel->receive(buffer, dgram::Deadline::after(5s), ec) == 14);
    return socket.local_endpoint(ec);
  };
  // The first client vanishes without close_notify; the next one gets the same port (a reused source port,
  // or a client restarted behind the same NAT mapping): it must be served, not fed the old session's records.
  const dgram::Endpoint port = handshake_from(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  handshake_from(port);
  CHECK(server.handler.wait_for([&] { return server.handler.ended.size() == 1; }));
  CHECK(server.handler.ended.front() == dtls::SessionEnd::replaced);
  const auto stats = server.stats();
  CHECK(stats.sessions_replaced == 1);
  CHECK(stats.sessions_open == 1);
  CHECK(stats.handshakes_full == 2);
}

TEST_CASE("event server: with a connection ID (DTLS 1.3 and 1.2) a client whose address changes keeps its session",
          "[dtls13][cid][nonblocking]") {
  FOR_EACH_SERVER_KIND();
  const dtls::Version version = GENERATE(dtls::Version::dtls1_3, dtls::Version::dtls1_2);
  INFO((version == dtls::Version::dtls1_3 ? "DTLS 1.3" : "DTLS 1.2"));
  auto server_config = test_server_config();
  server_config.version = version;
  server_config.connection_id = true;
  if (!dtls::connection_id_available()) {   // Debian's wolfSSL: asking is a clear error, not a silent downgrade
    std::error_code ec;
    std::string reason;
    CHECK(!dtls::DtlsContext::create(server_config, ec, &reason));
    CHECK(reason.find(version == dtls::Version::dtls1_3 ? "has no DTLS 1.3" : "has no Connection IDs") != std::string::npos);
    return;
  }
  RunningServer server(server_config);
  dgram::testing::UdpRelay relay("127.0.0.1", server.endpoint().port(), {});   // a NAT that will rebind
  const auto through_relay = dgram::Endpoint::loopback(dgram::Family::ipv4, relay.port());
  std::error_code ec;
  dtls::ClientLoop loop(ec);
  REQUIRE(!ec);
  const auto echo = [&](EchoingClient& client, const std::string& message, std::chrono::milliseconds limit) {
    client.messages.push_back(message);
    std::vector<EchoingClient> one;
    one.push_back(std::move(client));
    run_until(loop, [&] { one[0].step(300ms); return one[0].done(); }, limit, 100ms);
    client = std::move(one[0]);
    return client.next == client.messages.size();
  };

  auto client_config = test_client_config();
  client_config.version = version;
  client_config.connection_id = true;
  EchoingClient moving{event_client(context_for(client_config), through_relay), {}};
  loop.add(*moving.client, ec);
  REQUIRE(echo(moving, "before the move", 10s));
  REQUIRE(moving.client->engine().connection_id_in_use());

  // A record with the session's ID from an address that is not the peer's, which does not decrypt: dropped,
  // and the session stays where it is.
  const auto id = moving.client->engine().send_connection_id();
  REQUIRE(id.size() == dtls::record::connection_id_size);
  std::vector<std::byte> forged;
  const auto append = [&forged](std::initializer_list<int> values) {
    for (const int b : values) forged.push_back(static_cast<std::byte>(b));
  };
  if (version == dtls::Version::dtls1_3) {
    append({0x3f});   // unified header: CID, 16-bit sequence, length; epoch 3
    forged.insert(forged.end(), id.begin(), id.end());
    append({0x00, 0x07, 0x00, 0x20});
  } else {
    append({25, 0xfe, 0xfd, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63});   // tls12_cid, epoch 1, sequence 99
    forged.insert(forged.end(), id.begin(), id.end());
    append({0x00, 0x20});
  }
  forged.resize(forged.size() + 32, std::byte{0x5a});
  const auto undecryptable_before = server.stats().dropped_undecryptable;
  auto stranger = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  stranger.send_to(forged, server.endpoint(), ec);
  REQUIRE(!ec);
  REQUIRE(echo(moving, "after a forgery", 10s));   // the reply still reaches the real peer
  // In a threaded server the forgery may land on another worker, which forwards it to the session's owner: that
  // can happen after the echo, so the count is awaited (bounded), not read once.
  auto after_forgery = server.stats();
  for (const auto give_up = std::chrono::steady_clock::now() + 5s;
       after_forgery.dropped_undecryptable == undecryptable_before && std::chrono::steady_clock::now() < give_up;
       after_forgery = server.stats())
    std::this_thread::sleep_for(5ms);   // (each stats() is a round trip through every worker's queue)
  CHECK(after_forgery.address_changes == 0);
  CHECK(after_forgery.dropped_undecryptable > undecryptable_before);   // it did reach the session, and no further

  // The NAT rebinds three times; each time the session follows, from whichever worker gets the datagrams.
  for (int move = 1; move <= 3; ++move) {
    REQUIRE(relay.move_clients());
    CHECK(echo(moving, "after move " + std::to_string(move), 10s));
  }
  const auto stats = server.stats();
  INFO(describe(stats));
  CHECK(stats.address_changes == 3);
  CHECK(stats.handshakes_full == 1);   // one session throughout
  loop.remove(*moving.client);

  // Without a connection ID the server cannot know the moved peer: its records are dropped, no reply comes.
  client_config.connection_id = false;
  EchoingClient stuck{event_client(context_for(client_config), through_relay), {}};
  loop.add(*stuck.client, ec);
  REQUIRE(echo(stuck, "before the move", 10s));
  CHECK(!stuck.client->engine().connection_id_in_use());
  const auto dropped_before = server.stats().dropped_no_session;
  REQUIRE(relay.move_clients());
  CHECK(!echo(stuck, "after the move", 2s));
  CHECK(server.stats().dropped_no_session > dropped_before);
  loop.remove(*stuck.client);
}

TEST_CASE("event server: datagrams the kernel dropped for a full receive buffer are counted", "[dtls][nonblocking]") {
  current_workers = 0;   // (one socket: the threaded server's are the same code, once per worker)
  dtls::EventServerSettings settings;
  settings.socket.receive_buffer_bytes = 4096;   // (the kernel's minimum is about this): a few datagrams fill it
  RunningServer server(test_server_config(), settings);
  // The loop is held in a task while a burst arrives, so the socket's buffer fills and the kernel drops the rest.
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  server.workers().front()->post([&entered, released](dtls::EventServer&) {
    entered.set_value();
    released.wait_for(30s);
  });
  REQUIRE(entered.get_future().wait_for(10s) == std::future_status::ready);
  constexpr std::uint64_t burst = 300;
  auto flooder = dgram::UdpSocket::connect(server.endpoint());
  std::error_code ec;
  const std::vector<std::byte> junk(200, std::byte{0xee});
  for (std::uint64_t i = 0; i < burst; ++i) flooder.send_to(junk, {}, ec);
  REQUIRE(!ec);
  release.set_value();
  // The kernel reports its count with the next datagram the server reads, so markers follow until every datagram
  // sent is accounted for: read (junk, counted as garbage) or dropped by the kernel (counted as an overflow).
  std::uint64_t markers = 0;
  dtls::EventServerStats stats;
  for (; markers < 500; ++markers) {
    stats = server.stats();
    if (stats.dropped_receive_overflow + stats.dropped_garbage >= burst + markers) break;
    flooder.send_to(junk, {}, ec);
    REQUIRE(!ec);
  }
  INFO(describe(stats) << "; markers " << markers);
  CHECK(stats.dropped_receive_overflow > 0);
  CHECK(stats.dropped_receive_overflow + stats.dropped_garbage == burst + markers);   // each one seen or counted, once
  // The server goes on serving.
  dtls::DtlsHandshaker handshaker(context_for(test_client_config()));
  auto client_socket = dgram::UdpSocket::connect(server.endpoint());
  auto channel = handshaker.connect_dtls(client_socket, server.endpoint(), dgram::Deadline::after(10s), ec);
  REQUIRE(channel);
  channel->close(ec);
}

namespace {
std::string hex(const std::vector<std::byte>& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  for (const std::byte b : bytes) {
    text += digits[static_cast<unsigned>(b) >> 4];
    text += digits[static_cast<unsigned>(b) & 0xf];
  }
  return text;
}
}  // namespace

// werift-dtls (the DTLS of a TypeScript WebRTC stack) offers use_srtp and exports its keys as a WebRTC peer
// does: both sides must hold the same SRTP keys and the same exported bytes, and the cookie exchange must
// still have run. One message per session (see tests/peers/node/srtp-client.mjs for why).
TEST_CASE("interop: werift-dtls negotiates DTLS-SRTP with the event server; both sides export the same keys", "[dtls][nonblocking][interop][srtp]") {
  current_workers = 0;
  auto config = test_server_config();
  config.srtp_profiles = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80";
  if (!dtls::srtp_available()) {
    std::error_code ec;
    std::string reason;
    CHECK(!dtls::DtlsContext::create(config, ec, &reason));
    CHECK(reason.find("has no DTLS-SRTP") != std::string::npos);
    return;
  }
  const std::string client = dgram::testing::program_path("NODE_SRTP_CLIENT");
  if (access((std::filesystem::path(client).parent_path() / "node_modules" / "werift-dtls").c_str(), F_OK) != 0)
    FAIL("werift-dtls is missing: run scripts/fetch-peers.sh (scripts/install-deps.sh does)");
  RunningServer server(config);
  std::size_t sessions = 0;
  for (const std::string profile : {"SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM"}) {
    INFO(profile);
    dgram::testing::Process node({"/usr/bin/env", "node", client, "127.0.0.1", std::to_string(server.endpoint().port()),
                                  profile, "media keys"});
    const auto done = node.wait(20s);
    INFO(done.err);
    REQUIRE(done.exit_code == 0);
    ++sessions;
    REQUIRE(server.handler.wait_for([&] { return server.handler.srtp_keys.size() == sessions; }));
    std::lock_guard lock(server.handler.mutex);
    CHECK(done.out.find("srtp-profile: " + profile + "\n") != std::string::npos);
    CHECK(server.handler.srtp_profiles.back() == profile);
    CHECK(!server.handler.srtp_keys.back().empty());
    CHECK(done.out.find("srtp-keys: " + hex(server.handler.srtp_keys.back()) + "\n") != std::string::npos);
    CHECK(done.out.find("exporter: " + hex(server.handler.exporter.back()) + "\n") != std::string::npos);
    CHECK(done.out.find("echo: media keys\n") != std::string::npos);
  }
  const auto stats = server.stats();
  CHECK(stats.cookies_sent == 2);   // the stateless cookie exchange ran for both
}
