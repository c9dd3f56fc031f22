// Two DTLS engines and a Listener joined by in-memory queues, with a hand-driven clock: the engine tests'
// network. Each test decides the fate of every datagram (drop, shuffle).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "bytes.hpp"

import dgram;

namespace dgram::testing {

using Datagram = std::vector<std::byte>;
using dgram::dtls::DtlsContext;
using dgram::dtls::Engine;
using dgram::dtls::EngineState;
using dgram::dtls::Listener;


// Two engines and a listener joined by in-memory queues; `drop` decides the fate of each datagram.
struct Pump {
  enum class Direction { to_server, to_client };

  std::shared_ptr<DtlsContext> client_context;
  std::shared_ptr<DtlsContext> server_context;
  Listener listener;
  std::optional<Engine> client;
  std::optional<Engine> server;
  std::deque<Datagram> to_server, to_client;
  dgram::TimePoint now{std::chrono::hours(1)};
  dgram::Endpoint client_endpoint = dgram::Endpoint::parse("127.0.0.1:40000");
  dgram::Endpoint server_endpoint = dgram::Endpoint::parse("127.0.0.1:11111");
  std::function<bool(Direction, std::size_t)> drop = [](Direction, std::size_t) { return false; };
  std::function<void(std::deque<Datagram>&)> shuffle = [](std::deque<Datagram>&) {};
  std::size_t sent_to_server = 0, sent_to_client = 0;
  std::size_t bytes_to_client = 0;   // all the server sent, lost or not
  std::error_code client_error, server_error;

  static Listener make_listener(std::shared_ptr<DtlsContext> context) {
    std::error_code ec;
    Listener listener(std::move(context), ec);
    REQUIRE(!ec);
    return listener;
  }

  Pump(std::shared_ptr<DtlsContext> client_side, std::shared_ptr<DtlsContext> server_side)
      : client_context{std::move(client_side)},
        server_context{server_side},
        listener{make_listener(std::move(server_side))} {}

  void start_client(const dgram::dtls::Session* resume = nullptr) {
    std::error_code ec;
    client.emplace(Engine::client(client_context, server_endpoint, resume, ec));
    REQUIRE(!ec);
    server.reset();
    client->start(now, ec);
    REQUIRE(!ec);
  }

  void collect() {
    std::deque<Datagram> flight;
    for (const auto& d : client->outgoing())
      if (!drop(Direction::to_server, sent_to_server++)) flight.push_back(d);
    client->clear_outgoing();
    shuffle(flight);
    to_server.insert(to_server.end(), flight.begin(), flight.end());
    flight.clear();
    auto take = [&](std::span<const Datagram> out) {
      for (const auto& d : out) {
        bytes_to_client += d.size();
        if (!drop(Direction::to_client, sent_to_client++)) flight.push_back(d);
      }
    };
    take(listener.replies());
    listener.clear_replies();
    if (server) {
      take(server->outgoing());
      server->clear_outgoing();
    }
    shuffle(flight);
    to_client.insert(to_client.end(), flight.begin(), flight.end());
  }

  // The engine's contract: after on_datagram, take_message until it has nothing (that is also when an
  // established engine answers a peer's retransmitted flight).
  void deliver(Engine& engine, const Datagram& datagram, std::error_code& ec) {
    engine.on_datagram(datagram, now, ec);
    std::vector<std::byte> buffer(2048);
    while (!ec && engine.take_message(buffer, ec)) {
    }
  }

  void deliver_to_server(const Datagram& datagram) {
    if (!server) {
      auto engine = listener.on_datagram(client_endpoint, datagram, now, server_error);
      if (engine) server.emplace(std::move(*engine));
    } else {
      deliver(*server, datagram, server_error);
    }
  }

  bool settled() const {
    const bool client_done = client->state() != EngineState::handshaking;
    const bool server_done = !server || server->state() != EngineState::handshaking;
    return client_done && server && server_done && to_server.empty() && to_client.empty();
  }

  // Runs until both sides left the handshake, or a bound on steps is hit. Time moves only when nothing is in
  // flight: then it jumps to the earliest retransmission timer.
  // A driver gives up after its handshake timeout; so does this pump, on its own clock.
  void handshake(std::chrono::seconds limit = std::chrono::seconds(600)) {
    const dgram::TimePoint give_up = now + limit;
    for (int step = 0; step < 500; ++step) {
      collect();
      if (settled() || client->state() == EngineState::failed || now >= give_up) return;
      if (to_server.empty() && to_client.empty()) {
        dgram::Deadline next = client->next_timer();
        if (server) next = next.min(server->next_timer());
        REQUIRE(!next.is_never());
        now = next.point();
        client->on_timer(now, client_error);
        if (server) server->on_timer(now, server_error);
        continue;
      }
      if (!to_server.empty()) {
        const Datagram d = std::move(to_server.front());
        to_server.pop_front();
        deliver_to_server(d);
      }
      if (!to_client.empty()) {
        const Datagram d = std::move(to_client.front());
        to_client.pop_front();
        deliver(*client, d, client_error);
      }
    }
    FAIL("the handshake did not settle in 500 steps: client sent " << client->stats().datagrams_out
         << ", server sent " << (server ? server->stats().datagrams_out : 0) << ", clock at +"
         << std::chrono::duration_cast<std::chrono::seconds>(now - give_up + limit).count() << " s");
  }

  void require_established() {
    INFO("client failure: " << client->failure() << " / server: " << (server ? server->failure() : "no session"));
    INFO("client retransmissions " << client->stats().retransmissions << ", server sent "
         << (server ? server->stats().datagrams_out : 0) << ", server damped "
         << (server ? server->stats().damped_retransmissions : 0) << ", server dropped "
         << (server ? server->stats().dropped_datagrams : 0));
    REQUIRE(client->state() == EngineState::established);
    REQUIRE(server);
    REQUIRE(server->state() == EngineState::established);
  }

  // Saves the client's session, closes, and resumes it in a new handshake that must succeed.
  void close_and_resume() {
    const dgram::dtls::Session saved = client->session();
    REQUIRE(saved);
    client->close();
    start_client(&saved);
    handshake();
    require_established();
  }

  // Sends `message` from `from` and returns what `to` decrypted.
  static std::optional<std::string> relay(Engine& from, Engine& to, const std::string& message) {
    std::error_code ec;
    from.send(bytes(message), ec);
    REQUIRE(!ec);
    for (const auto& d : from.outgoing()) to.on_datagram(d, {}, ec);
    from.clear_outgoing();
    std::vector<std::byte> buffer(to.max_message_size());
    const auto size = to.take_message(buffer, ec);
    REQUIRE(!ec);
    if (!size) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(buffer.data()), *size);
  }
};


}  // namespace dgram::testing
