// dgram-cluster-client: many DTLS echo clients at once against a cluster behind a balancer, for the cluster
// tests (tests/cluster/cluster-test.sh). Each client handshakes (with a Connection ID, which names the node that
// serves it), sends numbered messages and checks every echo; on request it moves to a new source port mid-session
// (a NAT rebinding, which the balancer may hash to another node), resumes its session from new ports until it
// lands on another node, or reconnects with its ticket when the server closes it (a draining node). Prints one
// line of counts and exits 0 only when every client did all it was asked.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <array>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

import dgram;

namespace dtls = dgram::dtls;
using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 4433;
  std::string ca;
  dtls::Version version = dtls::Version::dtls1_3;
  int clients = 10;
  int messages = 3;
  bool stagger = false;                   // client i sends 1 + i % messages messages: sessions end one by one
  std::chrono::milliseconds interval{0};  // between a reply and the next message
  int move_after = -1;                    // rebind after this many echoes
  bool resume_elsewhere = false;
  std::chrono::seconds resume_after_period{0};   // resume only once the wall clock entered a new period of this
  bool reconnect_on_close = false;
  std::uint8_t node_bits = 8;
  std::chrono::seconds deadline{60};
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "dgram-cluster-client: %s\n"
               "usage: dgram-cluster-client --ca FILE [--host A] [--port N] [--dtls 1.2|1.3] [--clients N] [--messages M]\n"
               "       [--stagger] [--interval-ms T] [--move-after K] [--resume-elsewhere [--resume-after-period-s S]]\n"
               "       [--reconnect-on-close]"
               "       [--node-bits B] [--deadline-s S]\n", why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(std::string(arg) + " needs a value");
      return argv[++i];
    };
    const auto number = [&]() { return std::atoi(value().c_str()); };
    if (arg == "--host") options.host = value();
    else if (arg == "--port") options.port = static_cast<std::uint16_t>(number());
    else if (arg == "--ca") options.ca = value();
    else if (arg == "--dtls") options.version = value() == "1.2" ? dtls::Version::dtls1_2 : dtls::Version::dtls1_3;
    else if (arg == "--clients") options.clients = number();
    else if (arg == "--messages") options.messages = number();
    else if (arg == "--stagger") options.stagger = true;
    else if (arg == "--interval-ms") options.interval = std::chrono::milliseconds(number());
    else if (arg == "--move-after") options.move_after = number();
    else if (arg == "--resume-elsewhere") options.resume_elsewhere = true;
    else if (arg == "--resume-after-period-s") options.resume_after_period = std::chrono::seconds(number());
    else if (arg == "--reconnect-on-close") options.reconnect_on_close = true;
    else if (arg == "--node-bits") options.node_bits = static_cast<std::uint8_t>(number());
    else if (arg == "--deadline-s") options.deadline = std::chrono::seconds(number());
    else usage("unknown argument '" + std::string(arg) + "'");
  }
  if (options.ca.empty()) usage("--ca is required");
  if (options.clients < 1 || options.messages < 1) usage("--clients and --messages must be at least 1");
  return options;
}

struct Totals {
  int established = 0;
  int done = 0;
  int echoes = 0;
  int wrong = 0;
  int lost = 0;            // messages never answered after every resend
  int resent = 0;
  int moved = 0;
  int resumed_elsewhere = 0;
  int reconnected = 0;
  int reconnect_resumed = 0;
  int reconnect_retries = 0;   // reconnects that met the gone node and tried another port
  int failed = 0;
  std::map<std::uint32_t, int> nodes;   // first session's node -> clients
  std::string first_failure;
};

class Client {
 public:
  Client(int number, const Options& options, std::shared_ptr<dtls::DtlsContext> context, dgram::Endpoint server,
         dtls::ClientLoop& loop)
      : number_{number}, options_{options}, context_{std::move(context)}, server_{server}, loop_{loop} {
    wanted_ = options.stagger ? 1 + number % options.messages : options.messages;
  }
  ~Client() { detach(); }

  bool finished() const { return phase_ == Phase::done || phase_ == Phase::failed; }
  bool waiting() const { return phase_ == Phase::waiting; }

  void start(Totals& totals) { connect(totals, nullptr); }

  // Moves the client along after its loop serviced it (or time passed).
  void step(Totals& totals, dgram::TimePoint now) {
    if (phase_ == Phase::waiting && std::chrono::system_clock::now() >= resume_at_) {
      phase_ = Phase::resuming;
      connect(totals, &session_);
    }
    if (finished() || !client_) return;
    if (client_->state() == dtls::EngineState::failed || client_->socket_error()) {
      if (phase_ == Phase::resuming && attempts_ < 3) return retry_resume(totals);
      // A reconnect whose new source port is one the balancer's connection tracking still sends to the node that
      // has gone (it keeps a UDP flow for 30 s, 120 s once answered) meets "connection refused": a device tries
      // again from another port.
      if (reconnecting_ && reconnect_attempts_++ < 3) {
        ++totals.reconnect_retries;
        return connect(totals, &session_);
      }
      return fail(totals, "handshake or session failed: " + client_->failure() + client_->socket_error().message());
    }
    if (client_->state() == dtls::EngineState::closed) {   // the server closed the session (a drain)
      if (!options_.reconnect_on_close || phase_ != Phase::talking) return fail(totals, "the server closed the session");
      ++totals.reconnected;
      reconnecting_ = true;
      reconnect_attempts_ = 0;
      return connect(totals, &session_);
    }
    if (!client_->established()) return;
    if (phase_ == Phase::connecting) return on_established(totals, now);
    if (phase_ == Phase::resuming) return on_resumed(totals);
    take_replies(totals, now);
  }

 private:
  enum class Phase { connecting, talking, waiting, resuming, done, failed };

  void detach() {
    if (client_) loop_.remove(*client_);
  }

  void connect(Totals& totals, const dtls::Session* resume) {
    detach();
    std::error_code ec;
    client_ = dtls::EventClient::connect(context_, server_, ec, resume && *resume ? resume : nullptr);
    if (ec) return fail(totals, "cannot connect: " + ec.message());
    loop_.add(*client_, ec);
    if (ec) return fail(totals, "cannot watch the socket: " + ec.message());
    if (phase_ != Phase::resuming) phase_ = Phase::connecting;
  }

  std::uint32_t node() const {
    return dtls::ConnectionIdLayout{options_.node_bits, 8}.node_of(client_->engine().send_connection_id());
  }

  void on_established(Totals& totals, dgram::TimePoint now) {
    if (reconnecting_) {
      reconnecting_ = false;
      if (client_->resumed()) ++totals.reconnect_resumed;
    } else {
      ++totals.established;
      first_node_ = node();
      ++totals.nodes[first_node_];
    }
    phase_ = Phase::talking;
    send_next(totals, now);   // (again the one in flight when the session was closed)
  }

  void send_next(Totals& totals, dgram::TimePoint now) {
    const std::string text = "client " + std::to_string(number_) + " message " + std::to_string(sent_);
    std::error_code ec;
    client_->send(std::as_bytes(std::span(text)), ec);
    if (ec) return fail(totals, "cannot send: " + ec.message());
    expected_ = text;
    reply_due_ = now + 1s;
  }

  void take_replies(Totals& totals, dgram::TimePoint now) {
    std::array<std::byte, 2048> buffer{};
    std::error_code ec;
    while (const auto size = client_->receive(buffer, ec)) {
      if (expected_.empty()) continue;   // a late copy
      const std::string_view reply(reinterpret_cast<const char*>(buffer.data()), *size);
      if (reply != expected_) {
        ++totals.wrong;
        continue;
      }
      ++totals.echoes;
      session_ = client_->session();   // (the latest: a DTLS 1.3 ticket comes after the handshake)
      expected_.clear();
      resends_ = 0;
      ++sent_;
      next_send_ = now + options_.interval;
    }
    if (!expected_.empty() && now >= reply_due_) {   // lost on the way: ask again (an echo is idempotent)
      if (++resends_ > 5) {
        ++totals.lost;
        expected_.clear();
        ++sent_;
        next_send_ = now;
      } else {
        ++totals.resent;
        std::string again = expected_;
        client_->send(std::as_bytes(std::span(again)), ec);
        reply_due_ = now + 1s;
      }
    }
    if (!expected_.empty() || now < next_send_) return;
    if (sent_ == options_.move_after) move(totals);
    if (finished()) return;
    if (sent_ < wanted_) return send_next(totals, now);
    finish_talking(totals);
  }

  void move(Totals& totals) {
    loop_.remove(*client_);
    std::error_code ec;
    client_->rebind(ec);
    std::error_code added;
    loop_.add(*client_, added);
    if (ec || added) return fail(totals, "cannot move to a new port: " + (ec ? ec : added).message());
    ++totals.moved;
  }

  void finish_talking(Totals& totals) {
    session_ = client_->session();
    std::error_code ec;
    client_->close(ec);
    if (!options_.resume_elsewhere) return complete(totals);
    attempts_ = 0;
    if (options_.resume_after_period.count() > 0) {   // (the keys that sealed its ticket are the previous ones then)
      detach();
      client_.reset();
      const auto period = options_.resume_after_period;
      const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
      resume_at_ = std::chrono::system_clock::time_point(
          (std::chrono::duration_cast<std::chrono::seconds>(since_epoch) / period + 1) * period);
      phase_ = Phase::waiting;
      return;
    }
    phase_ = Phase::resuming;
    connect(totals, &session_);
  }

  void retry_resume(Totals& totals) {
    ++attempts_;
    connect(totals, &session_);
  }

  void on_resumed(Totals& totals) {
    const bool elsewhere = node() != first_node_;
    if (!client_->resumed()) return fail(totals, "a resumed handshake on node " + std::to_string(node()) + " was a full one");
    std::error_code ec;
    client_->close(ec);
    if (elsewhere) {
      ++totals.resumed_elsewhere;
      return complete(totals);
    }
    if (++attempts_ > 20) return fail(totals, "20 new source ports all reached the first node");
    connect(totals, &session_);   // another source port: the balancer may pick another node
  }

  void complete(Totals& totals) {
    detach();
    client_.reset();
    phase_ = Phase::done;
    ++totals.done;
  }

  void fail(Totals& totals, const std::string& why) {
    if (totals.first_failure.empty()) totals.first_failure = "client " + std::to_string(number_) + ": " + why;
    detach();
    client_.reset();
    phase_ = Phase::failed;
    ++totals.failed;
  }

  int number_;
  const Options& options_;
  std::shared_ptr<dtls::DtlsContext> context_;
  dgram::Endpoint server_;
  dtls::ClientLoop& loop_;
  std::unique_ptr<dtls::EventClient> client_;
  Phase phase_{Phase::connecting};
  int wanted_{0};
  int sent_{0};
  int resends_{0};
  int attempts_{0};
  bool reconnecting_{false};
  int reconnect_attempts_{0};
  std::uint32_t first_node_{0};
  std::string expected_;
  dgram::TimePoint reply_due_{};
  dgram::TimePoint next_send_{};
  std::chrono::system_clock::time_point resume_at_{};
  dtls::Session session_;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  dtls::DtlsConfig config = dtls::client_config(dtls::Pem::file(options.ca), "localhost");
  config.version = options.version;
  config.connection_id = true;
  std::error_code ec;
  std::string why;
  const auto context = dtls::DtlsContext::create(config, ec, &why);
  if (!context) usage(why);
  const auto server = dgram::Endpoint::from_address(options.host, options.port, ec);
  if (ec) usage("--host must be a numeric address");
  dtls::ClientLoop loop(ec);
  if (ec) usage("no epoll: " + ec.message());
  Totals totals;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < options.clients; ++i) {
    clients.push_back(std::make_unique<Client>(i, options, context, server, loop));
    clients.back()->start(totals);
  }
  const dgram::TimePoint give_up = dgram::Clock::now() + options.deadline;
  bool announced = false;
  while (dgram::Clock::now() < give_up &&
         !std::ranges::all_of(clients, [](const auto& client) { return client->finished(); })) {
    loop.run_once(dgram::Deadline::at(std::min(give_up, dgram::Clock::now() + 50ms)), ec);
    const dgram::TimePoint now = dgram::Clock::now();
    for (const auto& client : clients) client->step(totals, now);
    if (!announced && totals.established == options.clients) {   // (what the drain test waits for)
      std::printf("all %d clients established\n", options.clients);
      std::fflush(stdout);
      announced = true;
    }
  }
  const int unfinished = options.clients - totals.done - totals.failed;
  std::string nodes;
  for (const auto& [node, count] : totals.nodes) nodes += (nodes.empty() ? "" : ",") + std::to_string(node) + ":" + std::to_string(count);
  std::printf("clients=%d established=%d done=%d failed=%d unfinished=%d echoes=%d wrong=%d lost=%d resent=%d moved=%d "
              "resumed_elsewhere=%d reconnected=%d reconnect_resumed=%d reconnect_retries=%d nodes=%s\n",
              options.clients, totals.established, totals.done, totals.failed, unfinished, totals.echoes, totals.wrong,
              totals.lost, totals.resent, totals.moved, totals.resumed_elsewhere, totals.reconnected,
              totals.reconnect_resumed, totals.reconnect_retries, nodes.c_str());
  if (!totals.first_failure.empty()) std::printf("first failure: %s\n", totals.first_failure.c_str());
  const bool all_done = totals.done == options.clients && totals.wrong == 0 && totals.lost == 0;
  return all_done ? 0 : 1;
}
