// libFuzzer target: the server endpoint's routing under many peers. The fuzzer's bytes choose each step: a
// client (of six, at three addresses: two IPv4 hosts and an IPv6 /64) starts a handshake, sends what it has,
// moves to another port (a DTLS 1.3 Connection ID keeps its session), or sends a message; the server's output
// is delivered (or not); the clock jumps and timers run; a datagram a client sent is replayed from any address,
// bit-flipped or truncated; raw bytes arrive; the program closes a session or sends to it. Small limits (5
// sessions, 4 handshakes, 2 per source) make crowding out, replacement and the session limit common.
// Invariants after every step: the endpoint's own audit (every session reached by exactly one address, its
// Connection ID naming it, counts and limits agreeing), no more sessions than peers that were sent a cookie
// challenge (no state for an unverified peer), no event for a session the program does not know, bounded
// output.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "fuzz_support.hpp"

import dgram;

using namespace dgram::fuzz;
using namespace std::chrono_literals;
namespace dtls = dgram::dtls;
namespace record = dgram::dtls::record;

namespace {

constexpr std::size_t max_sessions = 5;

const std::shared_ptr<dtls::DtlsContext>& endpoint_server_context() {
  static const auto made = [] {
    dtls::DtlsConfig config = dtls::server_config(dtls::Pem::file(DGRAM_FUZZ_CERTS "/server-ecdsa.pem"),
                                                  dtls::Pem::file(DGRAM_FUZZ_CERTS "/server-ecdsa.key"));
    if (dtls::connection_id_available()) {
      config.version = dtls::Version::any;
      config.connection_id = true;
    }
    return context(config);
  }();
  return made;
}

// Clients of DTLS 1.2 and, where the build has it, DTLS 1.3 with Connection IDs.
const std::shared_ptr<dtls::DtlsContext>& client_context_for(int kind) {
  static const auto dtls13 = [] {
    if (!dtls::connection_id_available()) return client_context();
    dtls::DtlsConfig config = dtls::client_config(dtls::Pem::file(DGRAM_FUZZ_CERTS "/ca.pem"), "localhost");
    config.version = dtls::Version::dtls1_3;
    config.connection_id = true;
    return context(config);
  }();
  return kind % 2 == 0 ? client_context() : dtls13;
}

struct Client {
  dgram::Endpoint address;
  std::optional<dtls::Engine> engine;
};

bool is_challenge(std::span<const std::byte> datagram) {
  return record::first_handshake_type(datagram) == record::HandshakeType::hello_verify_request ||
         record::starts_with_hello_retry_request(datagram);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Decisions decide(data, size);
  const dgram::Endpoint server_address = dgram::Endpoint::parse("192.0.2.1:5684");
  dtls::ServerEndpointSettings settings;
  settings.max_sessions = max_sessions;
  settings.max_handshakes = 4;
  settings.max_handshakes_per_source = 2;
  settings.idle_timeout = 30s;
  std::error_code ec;
  dtls::ServerEndpoint server(endpoint_server_context(), settings, ec);
  require(!ec);
  const std::array<std::string, 3> hosts{"10.0.0.1", "10.0.0.2", "[2001:db8::1]"};
  std::array<Client, 6> clients;
  for (std::size_t i = 0; i < clients.size(); ++i)
    clients[i].address = dgram::Endpoint::parse(hosts[i % hosts.size()] + ":" + std::to_string(40000 + i));
  dgram::TimePoint now{std::chrono::hours(1)};
  std::vector<Datagram> sent_by_clients;         // for replays
  std::set<std::string> challenged;              // addresses the server sent a cookie challenge to
  std::map<std::uint32_t, dtls::SessionId> known;   // established sessions the program was told of, by slot
  std::vector<std::byte> buffer(dtls::max_datagram_size);

  const auto drain_events = [&] {
    while (auto event = server.next_event()) {
      if (const auto* up = std::get_if<dtls::SessionEstablished>(&*event)) {
        known[up->id.index] = up->id;
      } else if (const auto* message = std::get_if<dtls::SessionMessage>(&*event)) {
        require(known.contains(message->id.index) && known[message->id.index] == message->id);
        require(message->message.size() <= dtls::max_datagram_size);
      } else if (const auto* ended = std::get_if<dtls::SessionEnded>(&*event)) {
        require(known.contains(ended->summary.id.index) && known[ended->summary.id.index] == ended->summary.id);
        known.erase(ended->summary.id.index);
      }
    }
  };
  const auto give = [&](const dgram::Endpoint& from, std::span<const std::byte> datagram) {
    server.handle(now, from, datagram);
    drain_events();
  };

  for (int step = 0; step < 64 && !decide.empty(); ++step) {
    Client& client = clients[decide.byte() % clients.size()];
    switch (decide.byte() % 10) {
      case 0:   // a new handshake from this client's address
        client.engine.emplace(dtls::Engine::client(client_context_for(decide.byte()), server_address, nullptr, ec));
        client.engine->start(now, ec);
        break;
      case 1:   // the client sends what it has
        if (!client.engine) break;
        for (const auto& datagram : client.engine->outgoing()) {
          if (sent_by_clients.size() < 32) sent_by_clients.push_back(datagram);
          give(client.address, datagram);
        }
        client.engine->clear_outgoing();
        break;
      case 2: {   // the server's output reaches whoever is at each address (or is lost)
        const bool lose = decide.byte() % 4 == 0;
        const auto out = server.transmits();
        require(out.size() <= 256);
        std::vector<std::pair<dgram::Endpoint, Datagram>> copies;
        for (const auto& datagram : out) {
          if (is_challenge(datagram.payload)) challenged.insert(datagram.peer.to_string());
          copies.emplace_back(datagram.peer, Datagram(datagram.payload.begin(), datagram.payload.end()));
        }
        server.clear_transmits();
        if (lose) break;
        for (const auto& [to, datagram] : copies) {
          for (auto& receiver : clients) {
            if (receiver.address != to || !receiver.engine) continue;
            receiver.engine->on_datagram(datagram, now, ec);
            while (receiver.engine->take_message(buffer, ec)) {
            }
          }
        }
        break;
      }
      case 3:   // time passes
        now += std::chrono::milliseconds(decide.byte()) * 100;
        server.on_timer(now);
        drain_events();
        for (auto& each : clients)
          if (each.engine && each.engine->next_timer().passed(now)) each.engine->on_timer(now, ec);
        break;
      case 4:   // the client's NAT binding changes
        client.address = dgram::Endpoint::from_address(client.address.address_string(),
                                                       static_cast<std::uint16_t>(client.address.port() + 100), ec);
        break;
      case 5:   // a datagram a client sent, replayed from this client's address
        if (!sent_by_clients.empty()) give(client.address, sent_by_clients[decide.byte() % sent_by_clients.size()]);
        break;
      case 6: {   // ... damaged: a byte flipped, or cut short
        if (sent_by_clients.empty()) break;
        Datagram damaged = sent_by_clients[decide.byte() % sent_by_clients.size()];
        if (decide.byte() % 2 == 0) {
          damaged[decide.u16() % damaged.size()] ^= std::byte{static_cast<unsigned char>(decide.byte() | 1)};
        } else {
          damaged.resize(decide.u16() % damaged.size());
        }
        if (!damaged.empty()) give(client.address, damaged);
        break;
      }
      case 7: {   // raw bytes
        const Datagram raw = decide.bytes(decide.byte());
        if (!raw.empty()) give(client.address, raw);
        break;
      }
      case 8:   // the client sends a message on its session
        if (client.engine && client.engine->state() == dtls::EngineState::established)
          client.engine->send(std::as_bytes(std::span("ping", 4)), ec);
        break;
      default: {   // the program closes a session it knows, or answers on it
        if (known.empty()) break;
        auto chosen = known.begin();
        std::advance(chosen, decide.byte() % known.size());
        if (decide.byte() % 2 == 0) {
          server.close(chosen->second);
        } else {
          server.send(chosen->second, std::as_bytes(std::span("pong", 4)), ec);
          require(!ec || ec == dgram::errc::no_such_session);
        }
        drain_events();
        break;
      }
    }
    const std::string audit = server.audit();
    if (!audit.empty()) {
      std::fprintf(stderr, "audit: %s\n", audit.c_str());
      std::abort();
    }
    require(server.sessions() <= max_sessions);
    require(server.handshakes() <= 4);
    require(server.sessions() <= challenged.size());
    require(known.size() <= server.sessions());
  }
  if (std::getenv("DGRAM_FUZZ_VERBOSE")) {   // what an input reached, when looking at one by hand
    const auto& stats = server.stats();
    std::fprintf(stderr, "established %llu, crowded out %llu, replayed %llu, moved %llu, replaced %llu, cookies %llu\n",
                 static_cast<unsigned long long>(stats.sessions_total), static_cast<unsigned long long>(stats.handshakes_crowded_out),
                 static_cast<unsigned long long>(stats.replayed_hellos), static_cast<unsigned long long>(stats.address_changes),
                 static_cast<unsigned long long>(stats.sessions_replaced), static_cast<unsigned long long>(stats.cookies_sent));
  }
  server.shutdown();
  drain_events();
  require(known.empty());   // every established session the program knew of ended with an event
  require(server.sessions() == 0);
  return 0;
}
