// dgram.dtls.engine: Engine, a DTLS session driven purely by calls (datagrams in and out, timer events).
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>
#include "hex.hpp"
#include "wolfssl_internals.hpp"
module dgram.dtls.engine;

import dgram.dtls.config;
import dgram.dtls.record;
import dgram.sockaddr;

#include "engine_impl.hpp"

namespace dgram::dtls {

namespace {

// wolfSSL's own limit for the time between resends (DTLS_TIMEOUT_MAX): reaching it ends the handshake.
constexpr int default_wolfssl_timeout_max = 64;

// The largest datagram pack_flight makes: wolfSSL 5.5.4 reads handshake datagrams into a 1400-byte buffer.
constexpr std::size_t max_packed_datagram = 1400;

// Debian's wolfSSL keeps a fixed-point ECC cache per thread (FP_ECC) that is freed only by wc_ecc_fp_free() on
// that thread; a thread that ran engines and ends without it leaks ~3 KiB per cached point. Every thread that
// makes an engine gets this guard, whose destructor runs at that thread's exit.
// (The optimized build does its ECC in SP assembly and has no such cache.)
#ifdef FP_ECC
struct EccCacheGuard {
  ~EccCacheGuard() { wc_ecc_fp_free(); }
};

void free_ecc_cache_at_thread_exit() { thread_local EccCacheGuard guard; }
#else
void free_ecc_cache_at_thread_exit() {}
#endif

// "10 s", "300 ms": the handshake timeout in a failure message.
std::string duration_text(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + " s";
  return std::to_string(duration.count()) + " ms";
}

}  // namespace

Engine::Impl::Impl(std::shared_ptr<DtlsContext> owner, Role side, const Endpoint& remote, std::error_code& ec)
    : context{std::move(owner)}, role{side}, peer{remote} {
  free_ecc_cache_at_thread_exit();
  ssl.reset(wolfSSL_new(context_impl(*context).ctx.get()));
  if (!ssl) {
    fail(FailureKind::other, "wolfSSL could not create a session (out of memory?)", ec);
    return;
  }
  wolfSSL_SetIOReadCtx(ssl.get(), this);
  wolfSSL_SetIOWriteCtx(ssl.get(), this);
  wolfSSL_dtls_set_using_nonblock(ssl.get(), 1);   // timeouts are ours: wolfSSL must not wait or retransmit
  // The engine keeps the retransmission schedule itself (retransmit_wait): wolfSSL doubles its own timeout at
  // every resend and gives up when it passes its maximum (64 s, after 7 resends of one flight). With a lower
  // cap the engine resends more often, so wolfSSL's give-up point moves out of reach and the handshake ends at
  // the driver's handshake_timeout instead.
  if (context->config().retransmission_timeout_max_seconds < default_wolfssl_timeout_max)
    wolfSSL_dtls_set_timeout_max(ssl.get(), 1 << 30);
  // The exporter reads the randoms and master secret, which wolfSSL frees after the handshake unless kept.
  if (exports_keying_material(context->config())) wolfSSL_KeepArrays(ssl.get());
#if defined(WOLFSSL_SRTP)
  if (role == Role::server && !context->config().srtp_profiles.empty())
    wolfDTLS_SetChGoodCb(ssl.get(), &Impl::offer_srtp_after_cookie, this);
#endif
}

int Engine::Impl::offer_srtp_after_cookie(WOLFSSL* ssl, void* context) {
#if defined(WOLFSSL_SRTP)
  const auto& self = *static_cast<Impl*>(context);
  if (wolfSSL_set_tlsext_use_srtp(ssl, self.context->config().srtp_profiles.c_str()) != 0) return -1;
#else
  (void)ssl;
  (void)context;
#endif
  return 0;
}

void Engine::Impl::forget_srtp_profiles() {
#if defined(WOLFSSL_SRTP)
  wolfSSL_set_tlsext_use_srtp(ssl.get(), "");
#endif
}

int Engine::Impl::receive_callback(WOLFSSL*, char* buffer, int size, void* context) {
  auto& self = *static_cast<Impl*>(context);
  while (!self.input.empty()) {
    std::vector<std::byte> datagram = std::move(self.input.front());
    self.input.pop_front();
    if (datagram.size() > static_cast<std::size_t>(size)) {   // wolfSSL's read buffer is smaller: cannot take it
      ++self.stats.dropped_datagrams;
      self.spare.push_back(std::move(datagram));
      continue;
    }
    std::memcpy(buffer, datagram.data(), datagram.size());
    ++self.handed_over;
    const int got = static_cast<int>(datagram.size());
    self.spare.push_back(std::move(datagram));
    return got;
  }
  return WOLFSSL_CBIO_ERR_WANT_READ;
}

// wolfSSL resends its last flight whenever the peer's previous flight arrives again. When the two sides cannot
// finish (a wrong pre-shared key makes every Finished undecryptable, and DTLS drops those silently), each
// resend provokes the other's: a retransmission storm with no timer in it. So a resend prompted by input is
// let through at most once per half retransmission timeout; resends on our own timer always go. The decision
// is made once per flight: wolfSSL writes a flight as several datagrams, and damping all but the first sent
// the peer a flight it could not use (a client's key exchange and Finished without its ChangeCipherSpec: seen
// with wolfSSL 5.9.2, whose blocking server then never finished that handshake).
bool Engine::Impl::damp_retransmission(std::span<const std::byte> datagram) {
  const record::FlightFacts facts = record::flight_facts(datagram);
  const bool repeat = (facts.lowest_message_seq && highest_message_seq_sent &&
                       *facts.lowest_message_seq <= *highest_message_seq_sent) ||
                      (facts.change_cipher_spec && change_cipher_spec_sent);
  if (facts.lowest_message_seq)
    highest_message_seq_sent = std::max(highest_message_seq_sent.value_or(0), *facts.lowest_message_seq);
  if (facts.highest_epoch0_sequence)
    highest_epoch0_sequence_sent = std::max(highest_epoch0_sequence_sent.value_or(0), *facts.highest_epoch0_sequence);
  change_cipher_spec_sent = change_cipher_spec_sent || facts.change_cipher_spec;
  sent_handshake_types |= facts.handshake_types;
  // A new flight starts its resend schedule afresh. (A datagram of DTLS 1.3 records only tells nothing; a resend
  // on our own timer is never a new flight.)
  const bool readable = facts.lowest_message_seq || facts.change_cipher_spec;
  if (!repeat && readable && !in_timer && state == EngineState::handshaking) retransmit_wait_seconds = 1;
  if (!repeat || in_timer) return false;
  if (resend_allowed_for_input == stats.datagrams_in) return false;   // the rest of a flight let through
  if (!input_resend_allowed(std::chrono::milliseconds(500) * retransmit_wait_seconds)) return true;
  resend_allowed_for_input = stats.datagrams_in;
  return false;
}

bool Engine::Impl::input_resend_allowed(std::chrono::milliseconds interval) {
  if (last_input_retransmission && now - *last_input_retransmission < interval) return false;
  last_input_retransmission = now;
  return true;
}

std::vector<std::byte> Engine::Impl::recycled_copy(std::span<const std::byte> bytes) {
  std::vector<std::byte> copy;
  if (!spare.empty()) {
    copy = std::move(spare.back());
    spare.pop_back();
  }
  copy.assign(bytes.begin(), bytes.end());
  return copy;
}

int Engine::Impl::send_callback(WOLFSSL*, char* buffer, int size, void* context) {
  auto& self = *static_cast<Impl*>(context);
  const std::span<const std::byte> sent(reinterpret_cast<const std::byte*>(buffer), static_cast<std::size_t>(size));
  if (self.flight_split == FlightSplit::resuming && std::ranges::equal(sent, self.split_datagram))
    return size;   // wolfSSL's retry of what already went out (see split_flight)
  if (self.damp_retransmission(sent)) {
    ++self.stats.damped_retransmissions;
    return size;   // as if lost on the way
  }
  if (self.split_flight(sent)) return WOLFSSL_CBIO_ERR_WANT_WRITE;
  self.output.push_back(self.recycled_copy(sent));
  ++self.stats.datagrams_out;
  if (self.state == EngineState::handshaking) self.flight_sent_at = self.now;
  return size;
}

// A DTLS 1.2 server's first flight of a full handshake: the ServerHello and Certificate go out before wolfSSL
// computes the key exchange and signs it, so the client verifies the certificate chain while the server signs
// (as a server on wolfSSL's own socket I/O does; packed whole, the client waited for the signature and then
// checked the chain: measured on loopback, a whole handshake 409-442 -> 307-353 us (median), full handshakes
// 0.83-0.93x -> 0.99-1.11x wolfSSL's plain C server). Only where the Listener allows it (a server
// busy with other handshakes lost a fifth of its rate to the extra datagram and call). wolfSSL offers no
// pause between its messages, so the Certificate's datagram is kept here and refused with WANT_WRITE:
// wolfSSL_accept returns, the drivers send what is out, next_timer() is due at once, and on_timer resumes the
// handshake; wolfSSL then sends the Certificate again first, which is taken as already sent.
bool Engine::Impl::split_flight(std::span<const std::byte> datagram) {
  if (!may_split_flight || state != EngineState::handshaking || flight_split != FlightSplit::none || in_timer ||
      record::first_handshake_type(datagram) != record::HandshakeType::certificate)
    return false;
  output.push_back(recycled_copy(datagram));
  split_datagram.assign(datagram.begin(), datagram.end());
  ++stats.datagrams_out;
  flight_sent_at = now;
  flight_split = FlightSplit::paused;
  return true;
}

// wolfSSL writes a flight as several datagrams (5.7 even sends the NewSessionTicket apart from the
// ChangeCipherSpec and Finished). Apart, they are lost and reordered apart, and wolfSSL 5.7.2's DTLS 1.2
// client never recovers from a Finished that overtook the NewSessionTicket (the ticket, resent in epoch 0,
// is then dropped as old). Packed into as few datagrams as fit, a flight arrives whole or not at all, and
// costs fewer packets. Only records that state their length are packed (DTLS 1.3 may omit it).
void Engine::Impl::pack_flight(std::size_t first) {
  if (output.size() <= first + 1) return;
  std::size_t into = first;
  for (std::size_t next = first + 1; next < output.size(); ++next) {
    std::vector<std::byte>& packed = output[into];
    if (packed.size() + output[next].size() <= max_packed_datagram && record::packable(packed) &&
        record::packable(output[next])) {
      packed.insert(packed.end(), output[next].begin(), output[next].end());
      spare.push_back(std::move(output[next]));
      --stats.datagrams_out;
    } else if (++into != next) {
      output[into] = std::move(output[next]);
    }
  }
  output.resize(into + 1);
}

void Engine::Impl::push_input(std::span<const std::byte> datagram) { input.push_back(recycled_copy(datagram)); }

void Engine::Impl::answer_repeated_flight(const record::FlightFacts& facts) {
  if (final_flight.empty()) return;
  if (!facts.lowest_message_seq && !facts.change_cipher_spec) return;
  if (!input_resend_allowed(std::chrono::milliseconds(500))) {
    ++stats.damped_retransmissions;
    return;
  }
  ++stats.retransmissions;
  for (const auto& flight_datagram : final_flight) output.push_back(flight_datagram);
  stats.datagrams_out += final_flight.size();
}

void Engine::Impl::set_cookie_peer(const Endpoint& remote) {
  peer = remote;
  detail::SocketAddress address = detail::to_socket_address(remote);
  wolfSSL_dtls_set_peer(ssl.get(), address.get(), static_cast<unsigned int>(address.length));
}

bool Engine::Impl::use_connection_id(std::span<const std::byte> receive_id) {
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CID)
  if (!wolfSSL_dtls_cid_is_enabled(ssl.get()) && wolfSSL_dtls_cid_use(ssl.get()) != WOLFSSL_SUCCESS) return false;
  std::array<unsigned char, record::connection_id_size> id{};
  const std::size_t size = std::min(receive_id.size(), id.size());
  std::memcpy(id.data(), receive_id.data(), size);
  return wolfSSL_dtls_cid_set(ssl.get(), size ? id.data() : nullptr, static_cast<unsigned>(size)) == WOLFSSL_SUCCESS;
#else
  (void)receive_id;
  return false;
#endif
}

void Engine::Impl::fail(FailureKind kind, std::string why, std::error_code& ec) {
  state = EngineState::failed;
  failure_kind = kind;
  failure = std::move(why);
  if (!ec) ec = make_error_code(errc::invalid_argument);
}

// wolfSSL sends no alert for some fatal errors (a missing client certificate, for one), and the peer would then
// retransmit until its own timeout. Before our ChangeCipherSpec the peer reads epoch 0, so a plaintext fatal
// alert with our next record number stops it at once; after it, only wolfSSL can encrypt: a close_notify.
void Engine::Impl::tell_peer_we_failed(std::uint8_t alert_description) {
  WOLFSSL_ALERT_HISTORY alerts{};
  const bool alert_sent = wolfSSL_get_alert_history(ssl.get(), &alerts) == WOLFSSL_SUCCESS && alerts.last_tx.code > 0;
  if (alert_sent || close_sent) return;
  close_sent = true;
  // DTLS 1.3 encrypts from the ServerHello on: a plaintext alert after it is ignored.
  const bool dtls13_encrypted =
      std::string_view(wolfSSL_get_version(ssl.get())) == "DTLSv1.3" &&
      record::includes(sent_handshake_types | peer_handshake_types, record::HandshakeType::server_hello);
  if (change_cipher_spec_sent || dtls13_encrypted) {
    wolfSSL_shutdown(ssl.get());
    return;
  }
  const auto alert = record::fatal_alert(highest_epoch0_sequence_sent.value_or(0) + 1,
                                         static_cast<record::AlertDescription>(alert_description));
  output.emplace_back(alert.begin(), alert.end());
  ++stats.datagrams_out;
}

void Engine::Impl::fail(int error, std::error_code& ec) {
  if (error == WOLFSSL_ERROR_SYSCALL)   // a translation that names nothing (our I/O never fails): wolfSSL's own
    error = wolfssl_internals::session_error(ssl.get()).value_or(error);
  tell_peer_we_failed(static_cast<std::uint8_t>(record::AlertDescription::handshake_failure));
  ec = std::error_code{error, wolfssl_category()};
  FailureExplanation explanation = explain_failure(*this, error);
  fail(explanation.kind, std::move(explanation.why), ec);
}

// wolfSSL drops a record that does not decrypt, as DTLS must (RFC 6347 4.1.2.7), so a peer with other keys (a
// different pre-shared key) would only ever see a timeout. Once the peer's ChangeCipherSpec has arrived, its
// Finished is readable unless the keys differ; after two unreadable Finished messages (a single corrupted
// datagram is not enough, nor its duplicate) the handshake fails and a bad_record_mac alert tells the peer why.
void Engine::Impl::note_peer_flight(const record::DatagramView& datagram, std::uint64_t handed_before,
                                    std::error_code& ec) {
  const record::FlightFacts& facts = datagram.flight;
  peer_handshake_types |= facts.handshake_types;
  // A ChangeCipherSpec (or Finished) that overtook the messages before it is dropped by wolfSSL 5.7 (5.5 kept
  // it): it counts only once the rest of the peer's flight has arrived.
  peer_change_cipher_spec = peer_change_cipher_spec || (facts.change_cipher_spec && peer_flight_before_finished_seen());
  if (state != EngineState::handshaking || !peer_change_cipher_spec || !facts.encrypted_handshake ||
      handed_over == handed_before)
    return;
  // A copy the network duplicated is byte for byte the same (a retransmission is encrypted anew): it is not
  // the peer's second attempt. (Seen on a corrupting path: one altered Finished, duplicated, failed sessions.)
  if (std::ranges::equal(datagram.bytes, last_undecryptable_finished)) return;
  last_undecryptable_finished.assign(datagram.bytes.begin(), datagram.bytes.end());
  if (++undecryptable_finished < 2) return;
  tell_peer_we_failed(static_cast<std::uint8_t>(record::AlertDescription::bad_record_mac));
  const std::string peer = peer_side(*this);
  ec = make_error_code(errc::invalid_argument);
  if (uses_psk(context->config())) {
    fail(FailureKind::psk_mismatch, "the peers' pre-shared keys differ: the " + peer + "'s Finished message does not decrypt", ec);
  } else {
    fail(FailureKind::other, "the " + peer + "'s Finished message does not decrypt (corrupted on the way?)", ec);
  }
}

// Whether the messages the peer sends before its Finished have all arrived: the key exchange (the server's
// ServerHelloDone or, resuming, its ServerHello) and, when the client asked for a ticket, the NewSessionTicket.
bool Engine::Impl::peer_flight_before_finished_seen() const {
  const auto seen = [this](record::HandshakeType type) { return record::includes(peer_handshake_types, type); };
  if (role == Role::server) return seen(record::HandshakeType::client_key_exchange);
  const bool hello_done = seen(record::HandshakeType::server_hello_done) || seen(record::HandshakeType::server_hello);
  return hello_done && (!context->config().session_tickets || seen(record::HandshakeType::new_session_ticket));
}

// After a client's handshake: the certificate must name the address we dialled when that was an IP (wolfSSL
// checks DNS names during the handshake, IP addresses only when asked like this).
// wolfSSL 5.5.4 keeps an IPv6 SAN as eight uncompressed groups ("0000:...:0001"); IPv4 as dotted quad.
std::string wolfssl_ip_text(const Endpoint& address) {
  if (address.family() == Family::ipv4) return address.address_string();
  std::string text;
  const auto bytes = address.address_bytes();
  constexpr char digits[] = "0123456789ABCDEF";
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0 && i % 2 == 0) text += ':';
    text += digits[bytes[i] >> 4];
    text += digits[bytes[i] & 0xf];
  }
  return text;
}

bool server_address_matches(WOLFSSL* ssl, const Endpoint& expected) {
  const X509Ptr certificate{wolfSSL_get_peer_certificate(ssl)};
  return certificate && wolfSSL_X509_check_ip_asc(certificate.get(), wolfssl_ip_text(expected).c_str(), 0) == 1;
}

// The expected server name as an IP address, or nullopt when it is a DNS name.
std::optional<Endpoint> ip_address(const std::string& name) {
  std::error_code ec;
  const Endpoint address = Endpoint::from_address(name, 0, ec);
  return ec ? std::nullopt : std::optional<Endpoint>(address);
}

void Engine::Impl::advance_handshake(std::error_code& ec) {
  const std::size_t output_before = output.size();
  if (flight_split == FlightSplit::paused) flight_split = FlightSplit::resuming;   // (any call resumes it)
  const int result = role == Role::client ? wolfSSL_connect(ssl.get()) : wolfSSL_accept(ssl.get());
  if (flight_split == FlightSplit::resuming) {   // (the retry was in that call: wolfSSL sends it first)
    flight_split = FlightSplit::done;
    std::vector<std::byte>().swap(split_datagram);   // (not kept for the session's life)
  }
  pack_flight(output_before);
  if (result != WOLFSSL_SUCCESS) {
    const int error = wolfSSL_get_error(ssl.get(), result);
    if (error != WOLFSSL_ERROR_WANT_READ && error != WOLFSSL_ERROR_WANT_WRITE) fail(error, ec);
    return;
  }
  state = EngineState::established;
  flight_sent_at.reset();
  final_flight = output;
  if (auto refused = check_pinned_peer_key(*this)) {
    wolfSSL_shutdown(ssl.get());
    fail(refused->kind, std::move(refused->why), ec);
    return;
  }
  const DtlsConfig& config = context->config();
  if (role != Role::client || !config.verify_peer || config.psk || config.pinned_peer_keys) return;
  if (const auto address = ip_address(config.expected_server_name);
      address && !server_address_matches(ssl.get(), *address)) {
    wolfSSL_shutdown(ssl.get());
    fail(FailureKind::certificate_name_mismatch, "the server's certificate is not valid for '" +
         config.expected_server_name + "': it names " + peer_certificate_names(ssl.get()), ec);
  }
}

Engine::Engine(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Engine Engine::client(std::shared_ptr<DtlsContext> context, const Endpoint& peer, const Session* resume,
                      std::error_code& ec) {
  ec.clear();
  auto impl = std::make_unique<Impl>(std::move(context), Role::client, peer, ec);
  if (ec) return Engine{std::move(impl)};
  const DtlsConfig& config = impl->context->config();
  const std::string& name = config.expected_server_name;
  if (!name.empty() && !ip_address(name)) {
    wolfSSL_UseSNI(impl->ssl.get(), WOLFSSL_SNI_HOST_NAME, name.data(), static_cast<word16>(name.size()));
    if (config.verify_peer && !config.psk && !config.pinned_peer_keys)
      wolfSSL_check_domain_name(impl->ssl.get(), name.c_str());
  }
#ifdef WOLFSSL_DTLS13
  if (config.version != Version::dtls1_2) {
    // psk_ke only (DtlsConfig::psk_forward_secrecy). The key share still goes with the hello: a server that
    // refuses a ticket goes on with a full handshake, and after a cookie's HelloRetryRequest it may not ask
    // for a key share again (wolfSSL's client sends none with wolfSSL_NoKeyShares, and such a resumption then
    // fails whenever the ticket is refused: measured).
    if (!config.psk_forward_secrecy) wolfSSL_no_dhe_psk(impl->ssl.get());
    // wolfSSL's DTLS 1.3 client sends a P-256 key share whatever the group order: offer the first group's.
    if (!config.groups.empty()) wolfSSL_UseKeyShare(impl->ssl.get(), static_cast<word16>(config.groups.front()));
  }
#endif
  if (config.connection_id) impl->use_connection_id({});   // the server's records to us carry none
  if (resume && *resume)
    wolfSSL_set_session(impl->ssl.get(), static_cast<WOLFSSL_SESSION*>(session_handle(*resume)));
  return Engine{std::move(impl)};
}

bool Engine::Impl::within_handshake_budget(const record::FlightFacts& flight) {
  if (role != Role::server || state != EngineState::handshaking) return true;
  if (flight.more_announced) return false;   // more messages in one datagram than a whole handshake may have
  for (std::size_t i = 0; i < flight.announced_count; ++i) {
    const auto [sequence, length] = flight.announced[i];
    if (std::ranges::any_of(announced_messages, [&](const auto& seen) { return seen.first == sequence; })) continue;
    if (announced_messages.size() == record::max_announced_messages || announced_bytes + length > max_handshake_reassembly)
      return false;
    announced_messages.emplace_back(sequence, length);
    announced_bytes += length;
  }
  return true;
}

void Engine::Impl::begin_handshake(TimePoint start) {
  now = start;
  const auto timeout = std::max(context->config().handshake_timeout, std::chrono::milliseconds(0));
  const bool fits = TimePoint::max() - start > timeout;
  handshake_deadline = fits ? start + timeout : TimePoint::max();
}

void Engine::start(TimePoint now, std::error_code& ec) {
  ec.clear();
  impl_->begin_handshake(now);
  if (impl_->state == EngineState::handshaking) impl_->advance_handshake(ec);
}

void Engine::on_datagram(std::span<const std::byte> datagram, TimePoint now, std::error_code& ec) {
  if (const auto read = record::view(datagram)) {
    on_datagram(*read, now, ec);
    return;
  }
  ec.clear();
  ++impl_->stats.datagrams_in;
  ++impl_->stats.dropped_datagrams;   // not well formed
}

void Engine::on_datagram(const record::DatagramView& datagram, TimePoint now, std::error_code& ec) {
  ec.clear();
  Impl& self = *impl_;
  self.now = now;
  ++self.stats.datagrams_in;
  // (A DTLS 1.2 session takes no DTLS 1.3 records: wolfSSL would fail the handshake on the unknown type.)
  const bool dtls12_only = self.context->config().version == Version::dtls1_2;
  if ((dtls12_only && !datagram.dtls12_headers_only) || self.state == EngineState::failed ||
      self.state == EngineState::closed) {
    ++self.stats.dropped_datagrams;
    return;
  }
  if (self.state == EngineState::established) {
    self.answer_repeated_flight(datagram.flight);
    // Once established, an unencrypted handshake message is a late copy (renegotiation is not supported), and
    // wolfSSL 5.7 fails the session on a resent ClientHello that the rest of the handshake overtook.
    if (datagram.starts_with_plaintext_handshake) {
      ++self.stats.dropped_datagrams;
      return;
    }
  }
  if (!self.within_handshake_budget(datagram.flight)) {
    ++self.stats.over_handshake_budget;
    return;
  }
  self.push_input(datagram.bytes);
  if (self.state != EngineState::handshaking) return;
  const std::uint64_t handed_before = self.handed_over;
  self.advance_handshake(ec);
  if (!ec) self.note_peer_flight(datagram, handed_before, ec);
}

namespace {

// Once established, the timer runs 1, 2, 4 ... 32 s apart (at 1, 3, 7 ... 63 s), then gives up 64 s later: a
// path stays unconfirmed.
constexpr int later_timer_limit = 6;

std::chrono::seconds later_timer_wait(int runs) { return std::chrono::seconds(1 << runs); }

}  // namespace

Deadline Engine::next_timer() const noexcept {
  const Impl& self = *impl_;
  if (self.state == EngineState::established && self.later_timer_since)
    return Deadline::at(*self.later_timer_since + later_timer_wait(self.later_timer_runs));
  if (self.state != EngineState::handshaking) return Deadline::never();
  if (self.flight_split == Impl::FlightSplit::paused) return Deadline::at(self.now);
  Deadline next = self.handshake_deadline ? Deadline::at(*self.handshake_deadline) : Deadline::never();
  if (self.flight_sent_at)
    next = next.min(Deadline::at(*self.flight_sent_at + std::chrono::seconds(self.retransmit_wait_seconds)));
  return next;
}

void Engine::on_timer(TimePoint now, std::error_code& ec) {
  ec.clear();
  Impl& self = *impl_;
  if (!next_timer().passed(now)) return;
  self.now = now;
  if (self.state == EngineState::established) {
    self.run_later_timer(ec);
    return;
  }
  if (self.flight_split == Impl::FlightSplit::paused) {   // the rest of a split flight (see split_flight)
    self.advance_handshake(ec);
    return;
  }
  if (self.handshake_deadline && now >= *self.handshake_deadline) {
    ec = make_error_code(errc::timeout);
    const bool heard = self.stats.datagrams_in > 0;
    self.fail(FailureKind::timed_out, "the handshake did not finish within " +
              duration_text(self.context->config().handshake_timeout) +
              (heard ? " (the peer stopped answering)" : " (no answer from the peer)"), ec);
    return;
  }
  self.flight_sent_at = now;
  ++self.stats.retransmissions;
  self.retransmit_wait_seconds =
      std::min(self.retransmit_wait_seconds * 2, std::max(1, self.context->config().retransmission_timeout_max_seconds));
  self.in_timer = true;
  const std::size_t output_before = self.output.size();
  const int result = wolfSSL_dtls_got_timeout(self.ssl.get());
  self.pack_flight(output_before);
  self.in_timer = false;
  if (result != WOLFSSL_SUCCESS) {
    const int error = wolfSSL_get_error(self.ssl.get(), WOLFSSL_FATAL_ERROR);
    if (error != WOLFSSL_ERROR_WANT_READ && error != WOLFSSL_ERROR_WANT_WRITE) {
      ec = make_error_code(errc::timeout);
      self.fail(FailureKind::timed_out, "the peer stopped answering during the handshake (retransmissions exhausted)", ec);
    }
  }
}

// ---- Path checks (a moved peer shows that it receives) -------------------------------------------------------

std::optional<RecordNumber> Engine::newest_peer_record() const noexcept {
  const auto newest = wolfssl_internals::newest_peer_record(impl_->ssl.get());
  if (!newest) return std::nullopt;
  return RecordNumber{newest->epoch, newest->sequence};
}

bool Engine::check_path(TimePoint now, std::error_code& ec) {
  ec.clear();
  Impl& self = *impl_;
  int awaiting = 0;
  // (wolfSSL_key_update_response refuses a session that is not (D)TLS 1.3.)
  if (self.state != EngineState::established || wolfSSL_key_update_response(self.ssl.get(), &awaiting) != 0)
    return false;
  self.now = now;
  self.path_confirmed = false;
  self.path_check = Impl::PathCheck{};
  self.advance_path_check(ec);
  self.update_later_timer();
  return true;
}

bool Engine::path_confirmed() const noexcept { return impl_->path_confirmed; }

void Engine::Impl::advance_path_check(std::error_code& ec) {
  if (!path_check || state != EngineState::established) return;
  int awaiting = 0;   // a KeyUpdate of ours asked for an answer that has not come
  wolfSSL_key_update_response(ssl.get(), &awaiting);
  if (path_check->sent) {
    if (!awaiting) {   // the peer's KeyUpdate answered ours, which went only to the new address
      path_check.reset();
      path_confirmed = true;
    }
    return;
  }
  // An earlier KeyUpdate still unanswered (an answer to it proves nothing new), or one under way either way
  // (see wolfssl_internals.hpp): tried again after the next datagram or timer.
  if (awaiting || wolfssl_internals::key_update_under_way(ssl.get())) return;
  const int result = wolfSSL_update_keys(ssl.get());
  if (result != WOLFSSL_SUCCESS) {
    const int error = wolfSSL_get_error(ssl.get(), result);
    if (error != WOLFSSL_ERROR_WANT_READ && error != WOLFSSL_ERROR_WANT_WRITE) fail(error, ec);
    return;
  }
  // Sent when wolfSSL now awaits an answer (its KeyUpdate may instead have answered one of the peer's).
  wolfSSL_key_update_response(ssl.get(), &awaiting);
  path_check->sent = awaiting != 0;
}

void Engine::Impl::update_later_timer() {
  const bool wanted = state == EngineState::established &&
                      (path_check || wolfssl_internals::post_handshake_timer_wanted(ssl.get()));
  if (!wanted) {
    later_timer_since.reset();
    later_timer_runs = 0;
  } else if (!later_timer_since) {
    later_timer_since = now;
    later_timer_runs = 0;
    // wolfSSL doubles its own timeout at each resend and never resets it after the handshake; past its maximum
    // a resend fails with an error that wolfSSL then keeps, and the next read ends the session. The engine
    // limits these runs itself (later_timer_limit): wolfSSL starts each episode afresh and has no limit of its own.
    wolfSSL_dtls_set_timeout_max(ssl.get(), 1 << 30);
    wolfSSL_dtls_set_timeout_init(ssl.get(), 1);
  }
}

void Engine::Impl::run_later_timer(std::error_code& ec) {
  if (++later_timer_runs > later_timer_limit) {   // no answer: a path stays unconfirmed
    path_check.reset();
    later_timer_since.reset();
    later_timer_runs = 0;
    return;
  }
  later_timer_since = now;
  // wolfSSL's timer has a short step that only sends the ACKs it owes, then the one that resends: both when the
  // short one is due. A failure ends the path check (update_later_timer keeps wolfSSL's own limit out of reach).
#ifdef WOLFSSL_DTLS13
  const bool acks_first = wolfSSL_dtls13_use_quick_timeout(ssl.get()) != 0;
#else
  const bool acks_first = false;   // (Debian's wolfSSL: no DTLS 1.3, so this timer never runs)
#endif
  if ((acks_first && wolfSSL_dtls_got_timeout(ssl.get()) != WOLFSSL_SUCCESS) ||
      wolfSSL_dtls_got_timeout(ssl.get()) != WOLFSSL_SUCCESS)
    path_check.reset();
  advance_path_check(ec);
  update_later_timer();   // stops it when nothing is left for it
}

void Engine::send(std::span<const std::byte> message, std::error_code& ec) {
  ec.clear();
  Impl& self = *impl_;
  if (self.state != EngineState::established) {
    ec = make_error_code(self.state == EngineState::closed ? errc::closed : errc::not_connected);
    return;
  }
  if (message.size() > max_message_size()) {
    ec = make_error_code(errc::message_too_large);
    return;
  }
  if (message.empty()) {   // wolfSSL_write(0) sends nothing at all: say so instead of losing it silently
    ec = make_error_code(errc::empty_message);
    return;
  }
  const int written = wolfSSL_write(self.ssl.get(), message.data(), static_cast<int>(message.size()));
  if (written < 0 || static_cast<std::size_t>(written) != message.size())
    self.fail(wolfSSL_get_error(self.ssl.get(), written), ec);
}

std::optional<std::size_t> Engine::take_message(std::span<std::byte> buffer, std::error_code& ec) {
  ec.clear();
  Impl& self = *impl_;
  const std::size_t largest = max_message_size();
  while (self.state == EngineState::established &&
         (!self.input.empty() || wolfSSL_has_pending(self.ssl.get()) || wolfSSL_pending(self.ssl.get()) > 0)) {
    const bool direct = buffer.size() >= largest;
    if (!direct) self.scratch.resize(largest);
    std::byte* target = direct ? buffer.data() : self.scratch.data();
    const std::size_t output_before = self.output.size();
    const std::uint64_t handed_before = self.handed_over;
    const auto newest_before = wolfssl_internals::newest_peer_record(self.ssl.get());
    const int got = wolfSSL_read(self.ssl.get(), target, static_cast<int>(direct ? buffer.size() : largest));
    const std::uint64_t handed = self.handed_over - handed_before;
    if (got > 0) {
      std::vector<std::vector<std::byte>>().swap(self.final_flight);   // the peer has our Finished
      // wolfSSL reads on past datagrams it discards; all but the one that held this message gave nothing.
      if (handed > 1) self.stats.dropped_datagrams += handed - 1;
      const auto size = static_cast<std::size_t>(got);
      if (direct) return size;
      std::copy_n(self.scratch.begin(), std::min(size, buffer.size()), buffer.begin());
      if (size > buffer.size()) ec = make_error_code(errc::truncated);
      return std::min(size, buffer.size());
    }
    const int error = wolfSSL_get_error(self.ssl.get(), got);
    if (error == WOLFSSL_ERROR_ZERO_RETURN) {   // close_notify from the peer
      self.state = EngineState::closed;
      return std::nullopt;
    }
    if (error != WOLFSSL_ERROR_WANT_READ && error != WOLFSSL_ERROR_WANT_WRITE) {
      self.fail(error, ec);
      return std::nullopt;
    }
    // Datagrams that gave no message, no answer and no new authentic record (a DTLS 1.3 ACK is one): replays,
    // bad MACs, stray records. Dropped.
    if (self.output.size() == output_before && wolfssl_internals::newest_peer_record(self.ssl.get()) == newest_before)
      self.stats.dropped_datagrams += handed;
  }
  self.advance_path_check(ec);
  self.update_later_timer();
  return std::nullopt;
}

void Engine::close() noexcept {
  Impl& self = *impl_;
  if (!self.close_sent && self.state == EngineState::established) wolfSSL_shutdown(self.ssl.get());
  self.close_sent = true;
  if (self.state != EngineState::failed) self.state = EngineState::closed;
}

std::span<const std::vector<std::byte>> Engine::outgoing() const noexcept { return impl_->output; }

void Engine::clear_outgoing() noexcept {
  Impl& self = *impl_;
  for (auto& datagram : self.output) self.spare.push_back(std::move(datagram));
  self.output.clear();
}

EngineState Engine::state() const noexcept { return impl_->state; }
const Endpoint& Engine::peer() const noexcept { return impl_->peer; }
bool Engine::resumed() const noexcept { return wolfSSL_session_reused(impl_->ssl.get()) == 1; }
const std::string& Engine::failure() const noexcept { return impl_->failure; }
FailureKind Engine::failure_kind() const noexcept { return impl_->failure_kind; }
const EngineStats& Engine::stats() const noexcept { return impl_->stats; }

void Engine::set_peer(const Endpoint& peer) { impl_->peer = peer; }

std::string Engine::version() const {
  const char* name = wolfSSL_get_version(impl_->ssl.get());
  return name ? name : "";
}

bool Engine::connection_id_in_use() const noexcept {
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CID)
  WOLFSSL* ssl = impl_->ssl.get();
  unsigned int receive = 0;
  unsigned int send = 0;
  return wolfSSL_dtls_cid_is_enabled(ssl) &&
         ((wolfSSL_dtls_cid_get_rx_size(ssl, &receive) == WOLFSSL_SUCCESS && receive > 0) ||
          (wolfSSL_dtls_cid_get_tx_size(ssl, &send) == WOLFSSL_SUCCESS && send > 0));
#else
  return false;
#endif
}

#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CID)
namespace {

// One direction's Connection ID through wolfSSL's size and copy functions for it.
template <typename GetSize, typename Get>
std::vector<std::byte> connection_id_of(WOLFSSL* ssl, GetSize get_size, Get get) {
  std::vector<std::byte> id;
  unsigned int size = 0;
  if (!wolfSSL_dtls_cid_is_enabled(ssl) || get_size(ssl, &size) != WOLFSSL_SUCCESS || size == 0) return id;
  id.resize(size);
  if (get(ssl, reinterpret_cast<unsigned char*>(id.data()), size) != WOLFSSL_SUCCESS) id.clear();
  return id;
}

}  // namespace

std::vector<std::byte> Engine::receive_connection_id() const {
  return connection_id_of(impl_->ssl.get(), wolfSSL_dtls_cid_get_rx_size, wolfSSL_dtls_cid_get_rx);
}
std::vector<std::byte> Engine::send_connection_id() const {
  return connection_id_of(impl_->ssl.get(), wolfSSL_dtls_cid_get_tx_size, wolfSSL_dtls_cid_get_tx);
}
#else
std::vector<std::byte> Engine::receive_connection_id() const { return {}; }
std::vector<std::byte> Engine::send_connection_id() const { return {}; }
#endif

std::string Engine::cipher() const {
  const char* name = wolfSSL_get_cipher_name(impl_->ssl.get());
  return name ? name : "";
}

std::vector<std::byte> Engine::export_keying_material(std::string_view label,
                                                      std::optional<std::span<const std::byte>> context,
                                                      std::size_t length, std::error_code& ec) const {
  ec.clear();
  std::vector<std::byte> out(length);
#if defined(HAVE_KEYING_MATERIAL)
  const auto* context_bytes = context ? reinterpret_cast<const unsigned char*>(context->data()) : nullptr;
  if (impl_->state == EngineState::established && exports_keying_material(impl_->context->config()) &&
      wolfSSL_export_keying_material(impl_->ssl.get(), reinterpret_cast<unsigned char*>(out.data()), out.size(),
                                     label.data(), label.size(), context_bytes, context ? context->size() : 0,
                                     context ? 1 : 0) == WOLFSSL_SUCCESS)
    return out;
#else
  (void)label;
  (void)context;
#endif
  ec = make_error_code(errc::invalid_argument);
  return {};
}

std::vector<std::byte> Engine::srtp_keying_material(std::error_code& ec) const {
  ec.clear();
#if defined(WOLFSSL_SRTP) && defined(HAVE_KEYING_MATERIAL)
  std::size_t size = 0;
  WOLFSSL* ssl = impl_->ssl.get();
  if (impl_->state == EngineState::established &&
      wolfSSL_export_dtls_srtp_keying_material(ssl, nullptr, &size) == LENGTH_ONLY_E && size > 0) {
    std::vector<std::byte> out(size);
    if (wolfSSL_export_dtls_srtp_keying_material(ssl, reinterpret_cast<unsigned char*>(out.data()), &size) ==
        WOLFSSL_SUCCESS)
      return out;
  }
#endif
  ec = make_error_code(errc::invalid_argument);
  return {};
}

std::string Engine::srtp_profile() const {
#if defined(WOLFSSL_SRTP)
  if (impl_->state == EngineState::handshaking) return {};
  const WOLFSSL_SRTP_PROTECTION_PROFILE* profile = wolfSSL_get_selected_srtp_profile(impl_->ssl.get());
  return profile && profile->name ? profile->name : "";
#else
  return {};
#endif
}

std::string Engine::key_exchange() const {
  if (impl_->state == EngineState::handshaking) return {};
  const char* name = wolfSSL_get_curve_name(impl_->ssl.get());
  return name ? name : "";
}

std::string Engine::psk_identity() const {
  if (impl_->role == Role::client) {
    const DtlsConfig& config = impl_->context->config();
    return config.psk && impl_->state == EngineState::established ? config.psk->identity : std::string{};
  }
  return impl_->psk_identity;   // noted by the PSK callback (a resumed session asks none: it has no identity)
}

std::string Engine::peer_key_sha256() const {
  const auto key = peer_raw_key_sha256(impl_->ssl.get(), impl_->role);
  return key ? hex::of(*key) : std::string{};
}

std::optional<PeerCertificate> Engine::peer_certificate() const {
  // Only a completed handshake's chain is verified (a session that failed later still has it: its summary names it).
  if (impl_->state == EngineState::handshaking || !wolfSSL_is_init_finished(impl_->ssl.get())) return std::nullopt;
  // wolfSSL keeps the chain a peer sent even when nobody checked it (a client that does not verify its server):
  // only a verified one names the peer.
  if (!verifies_peer_certificate(impl_->context->config(), impl_->role)) return std::nullopt;
  // A raw public key sits in the chain where a certificate would, and wolfSSL parses it as one with no subject.
  if (peer_presented_raw_key(impl_->ssl.get(), impl_->role)) return std::nullopt;
  return describe_peer_certificate(impl_->ssl.get());
}

SessionInfo Engine::info() const {
  return SessionInfo{.peer = peer(),
                     .version = version(),
                     .cipher = cipher(),
                     .srtp_profile = srtp_profile(),
                     .key_exchange = key_exchange(),
                     .resumed = resumed(),
                     .connection_id = connection_id_in_use(),
                     .receive_connection_id = receive_connection_id(),
                     .peer_certificate = peer_certificate(),
                     .psk_identity = psk_identity(),
                     .peer_key_sha256 = peer_key_sha256()};
}

std::size_t Engine::max_message_size() const noexcept {
  const int size = wolfSSL_GetMaxOutputSize(impl_->ssl.get());
  return size > 0 ? static_cast<std::size_t>(size) : 0;
}

Session Engine::session() const {
  if (impl_->role != Role::client || impl_->state == EngineState::handshaking || impl_->state == EngineState::failed)
    return {};
  return adopt_session(wolfSSL_get1_session(impl_->ssl.get()));
}

}  // namespace dgram::dtls
