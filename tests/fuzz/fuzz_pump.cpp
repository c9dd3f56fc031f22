// libFuzzer target: a client and a server engine pumped in memory, the fuzzer deciding for each datagram in
// flight whether it is delivered, dropped, duplicated, reordered, truncated, bit-flipped, or joined by
// injected bytes, and when the clock jumps to the next timer. Then the path turns clean. Invariants: no
// engine call queues more than 32 datagrams, the queues stay bounded, everything ends within a bounded
// number of steps and of simulated time; with no mutation at all the handshake and an echo complete; a
// client that reports established verified the server's certificate; two established engines exchange
// messages byte-exact.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "fuzz_support.hpp"

import dgram;

using namespace dgram::fuzz;
using namespace std::chrono_literals;
namespace dtls = dgram::dtls;

namespace {

constexpr std::size_t max_output_per_call = 32;
constexpr std::size_t max_queue = 256;

struct Pump {
  dgram::TimePoint start{std::chrono::hours(1)};
  dgram::TimePoint now{start};
  dgram::Endpoint server_address = dgram::Endpoint::parse("127.0.0.1:11111");
  dgram::Endpoint client_address = dgram::Endpoint::parse("127.0.0.1:40000");
  dtls::Listener listener;
  dtls::Engine client;
  std::optional<dtls::Engine> server;
  std::deque<Datagram> to_server, to_client;
  std::error_code client_error, server_error;

  explicit Pump(std::error_code& ec)
      : listener{server_context(), ec}, client{dtls::Engine::client(client_context(), server_address, nullptr, ec)} {
    client.start(now, ec);
  }

  static void take_all(dtls::Engine& engine) {
    std::error_code ec;
    std::vector<std::byte> buffer(engine.max_message_size() + 1);
    for (int i = 0; i < 64 && engine.take_message(buffer, ec); ++i) {
    }
  }

  void collect() {
    require(client.outgoing().size() <= max_output_per_call);
    for (const auto& d : client.outgoing()) to_server.push_back(d);
    client.clear_outgoing();
    require(listener.replies().size() <= 1);
    for (const auto& d : listener.replies()) to_client.push_back(d);
    listener.clear_replies();
    if (server) {
      require(server->outgoing().size() <= max_output_per_call);
      for (const auto& d : server->outgoing()) to_client.push_back(d);
      server->clear_outgoing();
    }
    require(to_server.size() <= max_queue && to_client.size() <= max_queue);
  }

  void deliver_to_server() {
    const Datagram d = std::move(to_server.front());
    to_server.pop_front();
    if (!server) {
      std::error_code ec;
      if (auto engine = listener.on_datagram(client_address, d, now, ec)) server.emplace(std::move(*engine));
      return;
    }
    server->on_datagram(d, now, server_error);
    take_all(*server);
  }
  void deliver_to_client() {
    const Datagram d = std::move(to_client.front());
    to_client.pop_front();
    client.on_datagram(d, now, client_error);
    take_all(client);
  }
  // Jumps to the earliest timer and fires it; false when no timer is set.
  bool advance() {
    dgram::Deadline next = client.next_timer();
    if (server) next = next.min(server->next_timer());
    if (next.is_never()) return false;
    now = std::max(now, next.point());
    if (client.next_timer().passed(now)) client.on_timer(now, client_error);
    if (server && server->next_timer().passed(now)) server->on_timer(now, server_error);
    return true;
  }
  bool settled() const {
    return client.state() != dtls::EngineState::handshaking && server &&
           server->state() != dtls::EngineState::handshaking && to_server.empty() && to_client.empty();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Decisions decide(data, size);
  std::error_code ec;
  Pump pump(ec);
  require(!ec);
  bool mutated = false;
  // The fuzzer's turn.
  for (int step = 0; step < 300 && !decide.empty(); ++step) {
    pump.collect();
    const std::uint8_t op = decide.byte();
    auto& queue = op & 1 ? pump.to_server : pump.to_client;
    const int action = (op >> 1) % 8;
    if (action == 7) {   // time passes with datagrams in flight: a slow path, which may end a handshake
      mutated = true;
      pump.advance();
      continue;
    }
    if (action == 6) {   // bytes from the input join the traffic
      queue.push_back(decide.bytes(decide.byte()));
      mutated = true;
      continue;
    }
    if (queue.empty()) continue;
    switch (action) {
      case 0: (op & 1) ? pump.deliver_to_server() : pump.deliver_to_client(); continue;
      case 1: queue.pop_front(); break;
      case 2: queue.push_back(queue.front()); break;
      case 3:
        if (queue.size() > 1) std::swap(queue[0], queue[1]);
        break;
      case 4: queue.front().resize(decide.u16() % (queue.front().size() + 1)); break;
      default:
        if (!queue.front().empty())
          queue.front()[decide.u16() % queue.front().size()] ^= std::byte{static_cast<unsigned char>(1u << (decide.byte() % 8))};
    }
    mutated = true;
  }
  // Then a clean path until both sides are done: bounded in steps and in simulated time.
  for (int step = 0; step < 600 && !pump.settled() && pump.now - pump.start < 300s; ++step) {
    pump.collect();
    if (pump.client.state() == dtls::EngineState::failed ||
        (pump.server && pump.server->state() == dtls::EngineState::failed)) break;
    if (pump.to_server.empty() && pump.to_client.empty()) {
      if (!pump.advance()) break;
      continue;
    }
    if (!pump.to_server.empty()) pump.deliver_to_server();
    if (!pump.to_client.empty()) pump.deliver_to_client();
  }
  pump.collect();
  const bool client_up = pump.client.state() == dtls::EngineState::established;
  const bool server_up = pump.server && pump.server->state() == dtls::EngineState::established;
  if (!mutated) require(client_up && server_up);
  if (client_up) require(pump.client.failure().empty() && pump.client.failure_kind() == dtls::FailureKind::none);
  if (client_up && server_up) {
    require(relay(pump.client, *pump.server, "ping", pump.now) == std::optional<std::string>("ping"));
    require(relay(*pump.server, pump.client, "pong", pump.now) == std::optional<std::string>("pong"));
  }
  return 0;
}
