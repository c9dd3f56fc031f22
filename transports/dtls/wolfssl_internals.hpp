// What the engine needs to know about a wolfSSL session that wolfSSL's API does not say, read from wolfSSL's own
// structures (wolfssl_internals.cpp, the only unit that includes wolfssl/internal.h). A plain header: the engine's
// units include it in their global module fragment.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

struct WOLFSSL;

namespace dgram::dtls::wolfssl_internals {

// A DTLS record number: epoch, then sequence number within it.
struct PeerRecord {
  std::uint64_t epoch{0};
  std::uint64_t sequence{0};
  friend auto operator<=>(const PeerRecord&, const PeerRecord&) = default;
};

// The newest record the peer sent that wolfSSL authenticated and accepted, from its replay windows (DTLS 1.2
// and 1.3). nullopt before any such record, and when this wolfSSL's structures cannot be read safely (its
// headers are not at hand, or the library was built with a different layout than the headers describe).
std::optional<PeerRecord> newest_peer_record(WOLFSSL* ssl) noexcept;

// Whether wolfSSL has DTLS 1.3 work after the handshake that only its timer (wolfSSL_dtls_got_timeout) does: a
// KeyUpdate of ours to resend until it is acknowledged, or ACKs it owes the peer. False when unknown.
bool post_handshake_timer_wanted(WOLFSSL* ssl) noexcept;

// Whether a DTLS 1.3 KeyUpdate is under way in either direction: ours not yet acknowledged, or the peer's new
// keys announced and not yet used by it. Another KeyUpdate must wait: wolfSSL 5.7.2 makes room for a new epoch
// by dropping an older one that the peer may still be sending in (Dtls13NewEpochSlot), and every record after
// that fails to decrypt. True when unknown.
bool key_update_under_way(WOLFSSL* ssl) noexcept;

// The error wolfSSL keeps for the session (its own code, e.g. MATCH_SUITE_ERROR), where wolfSSL_get_error
// translates some into OpenSSL's: built with OPENSSL_EXTRA, 5.9 reports "no shared cipher suite" as
// SSL_ERROR_SYSCALL, which names nothing. nullopt when unknown.
std::optional<int> session_error(const WOLFSSL* ssl) noexcept;

}  // namespace dgram::dtls::wolfssl_internals
