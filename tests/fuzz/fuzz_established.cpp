// libFuzzer target: a server engine with an established session receives arbitrary datagrams (raw bytes, or
// a real record of the client's with bytes changed, or a plaintext alert). Invariants: none of them decrypts
// to a message, each is dropped and counted or leaves the engine as it was, the session stays established,
// and afterwards the real client's next message arrives byte-exact and the server's reply reaches it. The
// session is made once per process and lives across inputs, as a long-lived session does under attack.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>

#include "fuzz_support.hpp"

import dgram;

using namespace dgram::fuzz;
namespace dtls = dgram::dtls;
namespace record = dgram::dtls::record;

namespace {

struct Session {
  dgram::TimePoint now{std::chrono::hours(1)};
  std::optional<dtls::Engine> client;
  std::optional<dtls::Engine> server;
  std::uint64_t sent{0};

  Session() {
    std::error_code ec;
    const auto server_address = dgram::Endpoint::parse("127.0.0.1:11111");
    const auto client_address = dgram::Endpoint::parse("127.0.0.1:40000");
    dtls::Listener listener(server_context(), ec);
    client.emplace(dtls::Engine::client(client_context(), server_address, nullptr, ec));
    client->start(now, ec);
    const auto up = [&] {
      return client->state() == dtls::EngineState::established && server &&
             server->state() == dtls::EngineState::established;
    };
    for (int step = 0; step < 50 && !up(); ++step) {
      std::vector<Datagram> to_server(client->outgoing().begin(), client->outgoing().end());
      client->clear_outgoing();
      for (const auto& d : to_server) {
        if (!server) {
          if (auto engine = listener.on_datagram(client_address, d, now, ec)) server.emplace(std::move(*engine));
        } else {
          server->on_datagram(d, now, ec);
        }
      }
      std::vector<Datagram> to_client(listener.replies().begin(), listener.replies().end());
      listener.clear_replies();
      if (server) {
        to_client.insert(to_client.end(), server->outgoing().begin(), server->outgoing().end());
        server->clear_outgoing();
      }
      for (const auto& d : to_client) client->on_datagram(d, now, ec);
    }
    require(up());
    // The first application data ends the server's wait for a retransmitted final flight.
    require(echo() && echo());
  }

  // One message each way over the clean path, byte-exact.
  bool echo() {
    const std::string message = "message " + std::to_string(sent++);
    return relay(*client, *server, message, now) == message && relay(*server, *client, message, now) == message;
  }
  // A real record of the client's that the server has not seen: material for mutation.
  Datagram fresh_record() {
    std::error_code ec;
    const std::string message = "unseen";
    client->send(std::as_bytes(std::span(message)), ec);
    require(!ec && client->outgoing().size() == 1);
    Datagram d = client->outgoing().front();
    client->clear_outgoing();
    return d;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Session session;
  Decisions decide(data, size);
  dtls::Engine& server = *session.server;
  std::vector<std::byte> buffer(server.max_message_size() + 1);
  for (int count = 0; count < 16 && !decide.empty(); ++count) {
    Datagram datagram;
    switch (decide.byte() % 3) {
      case 0: datagram = decide.bytes(decide.u16() % 2048); break;
      case 1: {   // a real record with one byte changed (never decryptable: the change breaks the MAC or the frame)
        datagram = session.fresh_record();
        datagram[decide.u16() % datagram.size()] ^= std::byte{static_cast<unsigned char>(decide.byte() | 1)};
        break;
      }
      default: {   // a plaintext fatal alert (epoch 0), with the input's sequence number and description
        const std::uint64_t sequence = decide.u16();
        const auto alert = record::fatal_alert(sequence, static_cast<record::AlertDescription>(decide.byte()));
        datagram.assign(alert.begin(), alert.end());
      }
    }
    const std::uint64_t dropped_before = server.stats().dropped_datagrams;
    std::error_code ec;
    server.on_datagram(datagram, session.now, ec);
    require(!server.take_message(buffer, ec).has_value());   // nothing forged decrypts
    require(server.state() == dtls::EngineState::established);
    require(server.stats().dropped_datagrams > dropped_before);   // dropped, and counted
    server.clear_outgoing();   // (nothing should be sent; what is, the real client need not see)
  }
  require(session.echo());   // the session still works for the real peer
  return 0;
}
