// libFuzzer target: the Listener, the stateless front door, as two workers of one server sharing cookie
// secrets. The fuzzer's bytes choose a sequence of (listener, peer, datagram): a real client's ClientHellos
// (first, and with the cookie it was given), the same with bytes flipped, truncated or with a cookie spliced
// in from the input, raw bytes, and secret rotations. Invariants: a session (an Engine) is handed out only for
// a ClientHello carrying a cookie issued to that very peer under the current or the previous secret; no
// datagram gets more than one reply; the counters agree with what happened; afterwards a new peer is still
// served.
#include <cstddef>
#include <algorithm>
#include <array>
#include <memory>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>

#include "fuzz_support.hpp"

import dgram;

using namespace dgram::fuzz;
namespace dtls = dgram::dtls;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Decisions decide(data, size);
  std::error_code ec;
  auto secrets = std::make_shared<dtls::CookieSecrets>(std::chrono::hours(1));
  std::array<dtls::Listener, 2> listeners{dtls::Listener(server_context(), ec, secrets),
                                          dtls::Listener(server_context(), ec, secrets)};
  require(!ec);
  std::uint64_t generation = 0;   // rotations so far
  const auto server = dgram::Endpoint::parse("127.0.0.1:11111");
  const dgram::TimePoint now{std::chrono::hours(1)};
  dtls::Engine client = dtls::Engine::client(client_context(), server, nullptr, ec);
  client.start(now, ec);
  require(!ec && client.outgoing().size() == 1);
  Datagram hello = client.outgoing().front();
  client.clear_outgoing();
  std::optional<Datagram> challenge;   // the latest HelloVerifyRequest, for the client
  std::map<std::string, std::map<Datagram, std::uint64_t>> issued;   // peer -> cookie -> generation issued in
  std::uint64_t engines = 0;

  for (int step = 0; step < 48 && !decide.empty(); ++step) {
    const std::uint8_t where = decide.byte();
    const auto peer = dgram::Endpoint::parse("127.0.0.1:" + std::to_string(40000 + where % 4));
    dtls::Listener& listener = listeners[where >> 7];
    Datagram datagram;
    switch (decide.byte() % 7) {
      case 6:
        secrets->rotate();
        ++generation;
        continue;
      case 0: datagram = hello; break;
      case 1:   // one byte changed
        datagram = hello;
        datagram[decide.u16() % datagram.size()] ^= std::byte{static_cast<unsigned char>(decide.byte() | 1)};
        break;
      case 2: datagram = hello; datagram.resize(decide.u16() % datagram.size()); break;
      case 3: datagram = decide.bytes(decide.byte()); break;
      case 4:   // the client takes the latest challenge and answers with its cookie
        if (challenge) {
          client.on_datagram(*challenge, now, ec);
          if (!client.outgoing().empty()) hello = client.outgoing().back();
          client.clear_outgoing();
        }
        continue;
      default: {   // input bytes spliced over the hello's cookie (same length)
        datagram = hello;
        const auto cookie = cookie_of(datagram, true);
        if (!cookie || cookie->empty()) continue;
        const Datagram forged = decide.bytes(cookie->size());
        for (std::size_t i = 0; i + cookie->size() <= datagram.size(); ++i) {
          if (std::equal(cookie->begin(), cookie->end(), datagram.begin() + static_cast<std::ptrdiff_t>(i))) {
            std::copy(forged.begin(), forged.end(), datagram.begin() + static_cast<std::ptrdiff_t>(i));
            break;
          }
        }
      }
    }
    std::error_code handshake_error;
    std::optional<dtls::Engine> engine = listener.on_datagram(peer, datagram, now, handshake_error);
    require(listener.replies().size() <= 1);
    for (const auto& reply : listener.replies()) {
      if (const auto cookie = cookie_of(reply, false)) {
        issued[peer.to_string()].emplace(*cookie, generation);
        challenge = reply;
      }
    }
    listener.clear_replies();
    if (engine) {
      ++engines;
      const auto cookie = cookie_of(datagram, true);
      require(cookie.has_value());
      const auto& mine = issued[peer.to_string()];
      const auto found = mine.find(*cookie);
      require(found != mine.end());                 // never a session without a cookie issued to this peer,
      require(found->second + 1 >= generation);     // under the current or the previous secret
      require(engine->peer() == peer);
      require(engine->state() == dtls::EngineState::handshaking);
    }
  }
  require(listeners[0].stats().sessions_started + listeners[1].stats().sessions_started == engines);
  // Whatever came before, the front door still opens: a new peer's first hello is challenged, and its cookie
  // starts a session (a damaged sequence number once left wolfSSL ignoring every later peer).
  for (dtls::Listener& listener : listeners) {
    const auto newcomer = dgram::Endpoint::parse("127.0.0.1:50000");
    dtls::Engine fresh = dtls::Engine::client(client_context(), server, nullptr, ec);
    fresh.start(now, ec);
    require(!listener.on_datagram(newcomer, fresh.outgoing().front(), now, ec) && listener.replies().size() == 1);
    fresh.clear_outgoing();
    fresh.on_datagram(listener.replies().front(), now, ec);
    listener.clear_replies();
    require(fresh.outgoing().size() == 1 && listener.on_datagram(newcomer, fresh.outgoing().front(), now, ec));
  }
  return 0;
}
