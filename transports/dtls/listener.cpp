// dgram.dtls.engine: Listener, the stateless cookie exchange in front of a server port.
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <chrono>
#include <array>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>
module dgram.dtls.engine;

import dgram.dtls.config;
import dgram.dtls.record;

#include "engine_impl.hpp"

namespace dgram::dtls {

struct Listener::State {
  std::shared_ptr<DtlsContext> context;
  // One cookie secret for every probe, so a cookie stays valid across the hand-over of a probe.
  std::array<unsigned char, 32> secret{};
  std::unique_ptr<Engine::Impl> probe;   // the wolfSSL object that answers ClientHellos until one verifies
  std::vector<std::vector<std::byte>> replies;
  ListenerStats stats;
  std::string failure;
  FailureKind failure_kind{FailureKind::none};

  // A fresh probe; on failure (wolfSSL out of memory) none at all, and the next ClientHello tries again.
  bool renew_probe(std::error_code& ec) {
    probe = std::make_unique<Engine::Impl>(context, Role::server, Endpoint{}, ec);
    if (!ec && wolfSSL_DTLS_SetCookieSecret(probe->ssl.get(), secret.data(), secret.size()) != 0)
      ec = make_error_code(errc::invalid_argument);
    if (ec) probe.reset();
    return !ec;
  }

  // After a HelloVerifyRequest wolfSSL expects that peer's next ClientHello (message_seq 1) and ignores the
  // first ClientHello (message_seq 0) of every other peer as a repeat. With many peers interleaved that
  // silenced the probe, so it starts afresh for each ClientHello.
  void reset_probe() {
    wolfSSL_clear(probe->ssl.get());
    wolfSSL_dtls_set_using_nonblock(probe->ssl.get(), 1);
    probe->highest_message_seq_sent.reset();
    probe->change_cipher_spec_sent = false;
    probe->highest_epoch0_sequence_sent.reset();
    probe->last_input_retransmission.reset();
  }

  void take_probe_output_as_replies() {
    for (auto& datagram : probe->output) replies.push_back(std::move(datagram));
    probe->output.clear();
  }
};

Listener::Listener(std::shared_ptr<DtlsContext> context, std::error_code& ec) : state_{std::make_unique<State>()} {
  ec.clear();
  state_->context = std::move(context);
  std::random_device entropy;
  for (auto& byte : state_->secret) byte = static_cast<unsigned char>(entropy());
  state_->renew_probe(ec);
}

Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;

std::optional<Engine> Listener::on_datagram(const Endpoint& peer, std::span<const std::byte> datagram,
                                            TimePoint now, std::error_code& ec) {
  ec.clear();
  State& self = *state_;
  const auto hello = record::client_hello(datagram);
  if (!hello || (!self.probe && !self.renew_probe(ec))) {   // only a ClientHello may open a session
    ++self.stats.dropped_datagrams;
    return std::nullopt;
  }
  Engine::Impl& probe = *self.probe;
  probe.now = now;
  probe.set_cookie_peer(peer);
  probe.push_input(datagram);
  std::error_code handshake_error;
  probe.advance_handshake(handshake_error);
  probe.input.clear();

  const bool challenged = !probe.output.empty() &&
                          record::first_handshake_type(probe.output.front()) ==
                              record::HandshakeType::hello_verify_request;
  if (handshake_error || probe.output.empty() || challenged) {
    if (challenged) {
      ++self.stats.hello_verify_requests;
      if (hello->has_cookie) ++self.stats.bad_cookies;
    } else if (handshake_error) {   // the cookie verified, but the hello cannot be served (no shared cipher)
      ++self.stats.failed_handshakes;
      self.failure = probe.failure;
      self.failure_kind = probe.failure_kind;
      ec = handshake_error;
    } else {
      ++self.stats.dropped_datagrams;
    }
    self.take_probe_output_as_replies();
    if (challenged && !handshake_error) self.reset_probe();
    if (handshake_error || probe.state != EngineState::handshaking) {   // it is spent
      std::error_code renew_error;
      self.renew_probe(renew_error);
      if (!ec) ec = renew_error;
    }
    return std::nullopt;
  }
  // The cookie verified: this probe is now that peer's session. A fresh probe takes its place.
  ++self.stats.sessions_started;
  Engine engine{std::move(self.probe)};
  self.renew_probe(ec);
  return engine;
}

std::span<const std::vector<std::byte>> Listener::replies() const noexcept { return state_->replies; }
void Listener::clear_replies() noexcept { state_->replies.clear(); }
const ListenerStats& Listener::stats() const noexcept { return state_->stats; }
const std::string& Listener::failure() const noexcept { return state_->failure; }
FailureKind Listener::failure_kind() const noexcept { return state_->failure_kind; }

}  // namespace dgram::dtls
