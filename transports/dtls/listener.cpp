// dgram.dtls.engine: Listener, the stateless cookie exchange in front of a server port.
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>
#include "random.hpp"
#include "shared_keys.hpp"
module dgram.dtls.engine;

import dgram.dtls.config;
import dgram.dtls.record;

#include "engine_impl.hpp"

namespace dgram::dtls {
namespace {

// A new secret; nullopt when the kernel's random source fails.
std::optional<CookieSecrets::Secret> random_secret() {
  CookieSecrets::Secret secret;
  if (detail::fill_random(std::as_writable_bytes(std::span(secret)))) return std::nullopt;
  return secret;
}

CookieSecrets::Secret first_secret() {
  const auto secret = random_secret();
  if (!secret) throw std::system_error(make_error_code(errc::no_randomness), "no random cookie secret");
  return *secret;
}

TimePoint::rep saturated_ticks(TimePoint now, std::chrono::seconds interval) {
  const auto room = TimePoint::max() - now;
  return (interval >= room ? TimePoint::max() : now + interval).time_since_epoch().count();
}

}  // namespace

CookieSecrets::CookieSecrets(std::chrono::seconds rotation_interval)
    : interval_{std::max(rotation_interval, std::chrono::seconds(1))}, current_{first_secret()} {}

CookieSecrets::CookieSecrets(const SharedKeys& keys)
    : interval_{std::max(keys.cookie_rotation, std::chrono::seconds(1))}, shared_{keys.secret} {
  derive_for(detail::period_number(std::chrono::system_clock::now(), interval_));
}

std::shared_ptr<CookieSecrets> CookieSecrets::for_config(const DtlsConfig& config, std::chrono::seconds rotation_interval) {
  if (config.shared_keys) return std::make_shared<CookieSecrets>(*config.shared_keys);
  return std::make_shared<CookieSecrets>(rotation_interval);
}

void CookieSecrets::derive_for(std::uint64_t period) {
  const auto secret_of = [this](std::uint64_t number) {
    const detail::Key256 key = detail::derive_key(*shared_, "cookie", number);
    Secret secret;
    std::memcpy(secret.data(), key.data(), secret.size());
    return secret;
  };
  const std::lock_guard lock(mutex_);
  // Never back: two threads that read the clock on either side of a period's start may get here in either
  // order (a clock stepped back keeps the newer secrets until it catches up).
  if (generation_.load(std::memory_order_relaxed) > 1 && period <= period_.load(std::memory_order_relaxed)) return;
  current_ = secret_of(period);
  previous_ = secret_of(period - 1);
  period_.store(period, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
}

bool CookieSecrets::rotate() {
  if (shared_) return false;
  const auto fresh = random_secret();
  if (!fresh) return false;
  const std::lock_guard lock(mutex_);
  previous_ = current_;
  current_ = *fresh;
  generation_.fetch_add(1, std::memory_order_release);
  return true;
}

std::chrono::seconds CookieSecrets::rotation_interval() const noexcept { return interval_; }

std::uint64_t CookieSecrets::refresh(TimePoint now) {
  if (shared_) {   // (the wall clock: every node agrees on it, not on `now`)
    const std::uint64_t period = detail::period_number(std::chrono::system_clock::now(), interval_);
    if (period > period_.load(std::memory_order_relaxed)) derive_for(period);
    return generation_.load(std::memory_order_acquire);
  }
  const TimePoint::rep ticks = now.time_since_epoch().count();
  TimePoint::rep due = next_rotation_.load(std::memory_order_relaxed);
  const TimePoint::rep next = saturated_ticks(now, interval_);
  if (due == not_started) {
    next_rotation_.compare_exchange_strong(due, next, std::memory_order_relaxed);
  } else if (ticks >= due && next_rotation_.compare_exchange_strong(due, next, std::memory_order_relaxed)) {
    rotate();   // only the thread that moved the deadline rotates
    // After a quiet spell of two intervals or more, the previous secret is as stale as the one before it.
    if (ticks - due >= std::chrono::duration_cast<TimePoint::duration>(interval_).count()) rotate();
  }
  return generation_.load(std::memory_order_acquire);
}

CookieSecrets::Snapshot CookieSecrets::snapshot() const {
  const std::lock_guard lock(mutex_);
  return Snapshot{generation_.load(std::memory_order_relaxed), current_, previous_};
}

struct Listener::State {
  std::shared_ptr<DtlsContext> context;
  std::shared_ptr<CookieSecrets> secrets;
  CookieSecrets::Snapshot secret;   // a copy, refreshed when the shared generation moves on
  std::unique_ptr<Engine::Impl> probe;   // the wolfSSL object that answers ClientHellos until one verifies
  std::vector<std::vector<std::byte>> replies;
  ListenerStats stats;
  std::string failure;
  FailureKind failure_kind{FailureKind::none};
  HelloVerdict verdict{HelloVerdict::dropped};
  bool cookie_bad{false};
  bool split_flights{false};   // see Listener::split_flights

  // refused: a cookie that does not verify, answered with an alert (DTLS 1.3; 1.2 challenges again).
  enum class Outcome { challenged, verified, failed, refused, dropped };

  ConnectionIdPrefix connection_id_prefix;

  bool speaks_dtls13() const { return context->config().version != Version::dtls1_2; }

  // Fails only when wolfSSL cannot allocate the secret's copy: the probe then keeps its old secret, whose
  // cookies stop verifying at the next rotation (peers get a new challenge), which is safe. DTLS 1.3 keeps
  // the secret of its HelloRetryRequest cookies apart: both get the same.
  bool use_secret(const CookieSecrets::Secret& key) {
    bool done = wolfSSL_DTLS_SetCookieSecret(probe->ssl.get(), key.data(), static_cast<unsigned>(key.size())) == 0;
#ifdef WOLFSSL_DTLS13
    if (speaks_dtls13())
      done = wolfSSL_send_hrr_cookie(probe->ssl.get(), key.data(), static_cast<unsigned>(key.size())) == WOLFSSL_SUCCESS && done;
#endif
    return done;
  }

  // A DTLS 1.3 ClientHello with a post-quantum key share (1.2 KB for X25519MLKEM768) fits a datagram until it
  // carries the cookie; the hello with the cookie then comes in fragments. wolfSSL checks the cookie in the
  // first fragment, still statelessly, and only then keeps state to reassemble the rest (the hello without a
  // cookie must come whole: wolfSSL's client sends it with an empty key share if it would not fit). Set once
  // per probe: wolfSSL_clear keeps it.
  void allow_fragmented_hello() {
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CH_FRAG)
    if (speaks_dtls13()) wolfSSL_dtls13_allow_ch_frag(probe->ssl.get(), 1);
#endif
  }

  // A ClientHello that may open a session gets the Connection ID that session will have: the prefix and
  // random bytes, unpredictable to others (a CID is visible on the path but should not be guessable).
  // False when the random source failed: the hello is then dropped (the client retransmits).
  bool issue_connection_id() {
    if (!context->config().connection_id) return true;
    std::array<std::byte, record::connection_id_size> id{};
    if (detail::fill_random(std::span(id))) return false;
    const unsigned bits = std::min<unsigned>(connection_id_prefix.bits, 16);
    if (bits > 0) {
      const unsigned random_mask = (1u << (16 - bits)) - 1;
      const unsigned leading = (std::to_integer<unsigned>(id[0]) << 8 | std::to_integer<unsigned>(id[1])) & random_mask;
      const unsigned stamped = static_cast<unsigned>(connection_id_prefix.value) << (16 - bits) | leading;
      id[0] = static_cast<std::byte>(stamped >> 8 & 0xff);
      id[1] = static_cast<std::byte>(stamped & 0xff);
    }
    probe->use_connection_id(id);
    return true;
  }

  // A fresh probe; on failure (wolfSSL out of memory) none at all, and the next ClientHello tries again.
  bool renew_probe(std::error_code& ec) {
    probe = std::make_unique<Engine::Impl>(context, Role::server, Endpoint{}, ec);
    if (!ec && !use_secret(secret.current)) ec = make_error_code(errc::invalid_argument);
    if (!ec) allow_fragmented_hello();
    if (ec) probe.reset();
    return !ec;
  }

  // Whether this hello may be served without the cookie round trip: wolfSSL then answers a DTLS 1.3 hello keyed
  // by a pre-shared key it knows (ticket or identity) with its ServerHello, and challenges any other.
  bool skip_cookie_if_resuming(bool allowed, const record::ClientHelloFacts& hello) {
    const bool skip = allowed && speaks_dtls13() && context->config().resumption_skips_cookie && !hello.has_cookie &&
                      hello.has_pre_shared_key && !hello.first_fragment;
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS13_NO_HRR_ON_RESUME)
    if (speaks_dtls13()) wolfSSL_dtls13_no_hrr_on_resume(probe->ssl.get(), skip ? 1 : 0);
    return skip;
#else
    (void)skip;   // (Debian's wolfSSL always challenges)
    return false;
#endif
  }

  void sync_secret(TimePoint now) {
    if (secrets->refresh(now) == secret.generation) return;
    secret = secrets->snapshot();
    use_secret(secret.current);
  }

  // After a HelloVerifyRequest wolfSSL expects that peer's next ClientHello (message_seq 1) and ignores the
  // first ClientHello (message_seq 0) of every other peer as a repeat. With many peers interleaved that
  // silenced the probe, so it starts afresh for each ClientHello.
  void reset_probe() {
    wolfSSL_clear(probe->ssl.get());
    wolfSSL_dtls_set_using_nonblock(probe->ssl.get(), 1);
    // wolfSSL 5.7.2's clear keeps both cookie secrets; they are set again anyway (a copy, no allocation), as a
    // clear that dropped the DTLS 1.3 one would make wolfSSL invent a secret no other Listener has.
    if (speaks_dtls13()) use_secret(secret.current);
    probe->forget_srtp_profiles();
    probe->highest_message_seq_sent.reset();
    probe->change_cipher_spec_sent = false;
    probe->highest_epoch0_sequence_sent.reset();
    probe->last_input_retransmission.reset();
    probe->resend_allowed_for_input.reset();
  }

  // The probe takes one ClientHello (or its first fragment); what it answered stays in its output.
  Outcome offer(const Endpoint& peer, std::span<const std::byte> datagram, bool first_fragment, TimePoint now,
                std::error_code& error) {
    // What wolfSSL's callbacks noted for an earlier hello (DTLS 1.3 asks for a PSK before the cookie is checked)
    // must not become another peer's: each hello starts with none.
    probe->psk_identity.clear();
    probe->unknown_psk_identity.reset();
    probe->key_refusal.reset();
    probe->certificate_problem.reset();
    probe->now = now;
    probe->may_split_flight = split_flights;
    probe->set_cookie_peer(peer);
    probe->push_input(datagram);
    probe->advance_handshake(error);
    probe->input.clear();
    const auto answer = probe->output.empty() ? std::nullopt : record::first_handshake_type(probe->output.front());
    if (answer == record::HandshakeType::hello_verify_request ||
        (answer == record::HandshakeType::server_hello && record::starts_with_hello_retry_request(probe->output.front())))
      return Outcome::challenged;
    if (error) return Outcome::failed;
    // Verified only when the probe went on to its ServerHello, or, for a first fragment, took the cookie and
    // waits for the rest: nothing else means the cookie was accepted.
    if (answer == record::HandshakeType::server_hello) return Outcome::verified;
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CH_FRAG)
    if (first_fragment && probe->output.empty() && wolfSSL_is_stateful(probe->ssl.get())) return Outcome::verified;
#else
    (void)first_fragment;
#endif
    return Outcome::dropped;
  }

  // Whether a ClientHello's first fragment may go to wolfSSL: only a DTLS 1.3 one carrying the cookie
  // extension can verify (wolfSSL keeps no other fragment: a 1.2 one whose legacy cookie verifies is thrown
  // away after wolfSSL has taken its cookie, and the session it would open never saw its hello). The others
  // are dropped here, before they cost the probe anything.
  bool may_offer_fragment(const record::ClientHelloFacts& hello) const {
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CH_FRAG)
    return speaks_dtls13() && hello.has_cookie_extension;
#else
    (void)hello;
    return false;
#endif
  }

  // A cookie the current secret refused may come from the previous one (issued just before a rotation,
  // perhaps by another thread's Listener): the hello is offered once more to a probe with that secret.
  Outcome offer_to_previous_secret(const Endpoint& peer, std::span<const std::byte> datagram, bool first_fragment,
                                   TimePoint now, Outcome first, std::error_code& error) {
    std::vector<std::vector<std::byte>> challenge = std::move(probe->output);
    probe->output.clear();
    reset_probe();
    use_secret(*secret.previous);
    std::error_code retry_error;
    const Outcome outcome =
        issue_connection_id() ? offer(peer, datagram, first_fragment, now, retry_error) : Outcome::dropped;
    if (outcome == Outcome::verified || outcome == Outcome::failed) {
      error = retry_error;
      return outcome;
    }
    reset_probe();   // refused again: the answer is the one made with the current secret
    use_secret(secret.current);
    probe->output = std::move(challenge);
    return first;
  }

  // wolfSSL_clear keeps the record window, and wolfSSL 5.5.4 moves it for the hellos it answers statelessly:
  // after one hello with a large sequence number (damaged on the way, or sent so), the probe took every later
  // peer's hello (sequence number 0) for an old record, and the server silently stopped taking handshakes.
  // A client's hellos are numbered from 0, so on_datagram drops hellos numbered from half the window on
  // unread; one the probe ignored for reasons of its own costs a fresh probe.
  static constexpr std::uint64_t window_size = 64;   // wolfSSL's DTLS_SEQ_BITS
  static bool may_have_moved_window(Outcome outcome) { return outcome == Outcome::dropped; }

  // Whether the probe's answer amplifies: more than anti_amplification_factor times the hello it answers. A
  // DTLS 1.3 HelloRetryRequest (cookie, group) to a short hello without a key share is larger than the hello,
  // and must be sent: wolfSSL's client leaves the key share out when a post-quantum one would not fit a
  // datagram, and waits for the HelloRetryRequest to send it with the cookie.
  bool answer_amplifies(std::size_t hello_size) const {
    std::size_t answer = 0;
    for (const auto& datagram : probe->output) answer += datagram.size();
    return answer > anti_amplification_factor * hello_size;
  }

  void take_probe_output_as_replies() {
    for (auto& datagram : probe->output) replies.push_back(std::move(datagram));
    probe->output.clear();
  }
};

Listener::Listener(std::shared_ptr<DtlsContext> context, std::error_code& ec, std::shared_ptr<CookieSecrets> secrets,
                   ConnectionIdPrefix connection_id_prefix)
    : state_{std::make_unique<State>()} {
  ec.clear();
  state_->connection_id_prefix = connection_id_prefix;
  state_->context = std::move(context);
  state_->secrets = secrets ? std::move(secrets) : CookieSecrets::for_config(state_->context->config());
  state_->secret = state_->secrets->snapshot();
  state_->renew_probe(ec);
}

Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() = default;

std::optional<Engine> Listener::on_datagram(const Endpoint& peer, std::span<const std::byte> datagram,
                                            TimePoint now, std::error_code& ec) {
  if (const auto read = record::view(datagram)) return on_datagram(peer, *read, now, ec);
  ec.clear();
  state_->verdict = HelloVerdict::dropped;
  state_->cookie_bad = false;
  ++state_->stats.dropped_datagrams;
  return std::nullopt;
}

std::optional<Engine> Listener::on_datagram(const Endpoint& peer, const record::DatagramView& read, TimePoint now,
                                            std::error_code& ec, bool resumption_without_cookie) {
  ec.clear();
  State& self = *state_;
  self.verdict = HelloVerdict::dropped;
  self.cookie_bad = false;
  const std::span<const std::byte> datagram = read.bytes;
  const auto& hello = read.hello;
  // Only a ClientHello may open a session, and only one numbered as a client's first few are: a hello with a
  // large record number would move the probe's record window (see may_have_moved_window) and cost a fresh probe.
  if (!hello || hello->record_sequence >= State::window_size / 2 ||
      (hello->first_fragment && !self.may_offer_fragment(*hello)) || (!self.probe && !self.renew_probe(ec))) {
    ++self.stats.dropped_datagrams;
    return std::nullopt;
  }
  self.sync_secret(now);
  std::error_code handshake_error;
  State::Outcome outcome = State::Outcome::dropped;
  // (A hello that may open a session gets its connection ID first.)
  const bool skips_cookie = self.skip_cookie_if_resuming(resumption_without_cookie, *hello);
  const bool may_open = hello->has_cookie || skips_cookie;
  if (!may_open || self.issue_connection_id())
    outcome = self.offer(peer, datagram, hello->first_fragment, now, handshake_error);
  // A DTLS 1.3 cookie that does not verify gets an alert, and nothing else (no error: not a handshake).
  if (outcome == State::Outcome::dropped && hello->has_cookie_extension) outcome = State::Outcome::refused;
  if ((outcome == State::Outcome::challenged || outcome == State::Outcome::refused) && hello->has_cookie &&
      self.secret.previous)
    outcome = self.offer_to_previous_secret(peer, datagram, hello->first_fragment, now, outcome, handshake_error);

  if (outcome == State::Outcome::verified) {   // this probe is now that peer's session; a fresh one takes its place
    ++self.stats.sessions_started;
    if (!hello->has_cookie) ++self.stats.started_without_cookie;
    self.verdict = HelloVerdict::started;
    // (The next probe is made by prepare(), once this session's answer is on its way, or by the next hello: a
    // wolfSSL object and its RNG cost about as much as a resumed handshake's server side waits for.)
    Engine engine{std::move(self.probe)};
    engine.impl_->begin_handshake(now);
    return engine;
  }
  switch (outcome) {
    case State::Outcome::challenged:
      self.verdict = HelloVerdict::challenged;
      self.cookie_bad = hello->has_cookie;
      if (hello->has_cookie) ++self.stats.bad_cookies;
      if (self.answer_amplifies(datagram.size())) {
        self.verdict = HelloVerdict::withheld;
        ++self.stats.answers_withheld;
        self.probe->output.clear();
      } else {
        ++self.stats.hello_verify_requests;
      }
      break;
    case State::Outcome::failed:   // the cookie verified, but the hello cannot be served (no shared cipher)
      self.verdict = HelloVerdict::failed;
      ++self.stats.failed_handshakes;
      self.failure = self.probe->failure;
      self.failure_kind = self.probe->failure_kind;
      ec = handshake_error;
      break;
    case State::Outcome::refused:
      self.verdict = HelloVerdict::refused;
      self.cookie_bad = true;
      ++self.stats.bad_cookies;
      break;
    case State::Outcome::dropped:
    case State::Outcome::verified:   // (handled above)
      ++self.stats.dropped_datagrams;
      break;
  }
  self.take_probe_output_as_replies();
  // A spent probe is replaced; one that answered with a challenge or an alert is reset for the next peer.
  if (handshake_error || self.probe->state != EngineState::handshaking || State::may_have_moved_window(outcome)) {
    std::error_code renew_error;
    self.renew_probe(renew_error);
    if (!ec) ec = renew_error;
  } else if (outcome == State::Outcome::challenged || outcome == State::Outcome::refused) {
    self.reset_probe();
  }
  return std::nullopt;
}

void Listener::split_flights(bool split) noexcept { state_->split_flights = split; }

void Listener::prepare() noexcept {
  if (state_->probe) return;
  std::error_code ec;
  state_->renew_probe(ec);   // (on failure the next ClientHello tries again)
}

HelloVerdict Listener::last_verdict() const noexcept { return state_->verdict; }
bool Listener::last_cookie_bad() const noexcept { return state_->cookie_bad; }
std::span<const std::vector<std::byte>> Listener::replies() const noexcept { return state_->replies; }
void Listener::clear_replies() noexcept { state_->replies.clear(); }
const ListenerStats& Listener::stats() const noexcept { return state_->stats; }
const std::string& Listener::failure() const noexcept { return state_->failure; }
FailureKind Listener::failure_kind() const noexcept { return state_->failure_kind; }

}  // namespace dgram::dtls
