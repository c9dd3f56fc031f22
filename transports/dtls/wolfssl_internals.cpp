// Reads wolfSSL's session structure where its API is silent (see wolfssl_internals.hpp). wolfssl/internal.h is
// in wolfSSL's source tree, not among its installed headers: the optimized build puts the tree on the include
// path after the installed headers (transports/dtls/meson.build), so that options.h, which fixes the layout,
// comes from the build that made the library. Debian's package has no internal.h: everything here says
// "unknown" there (that build has no DTLS 1.3 either).
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "wolfssl_internals.hpp"

#if __has_include(<wolfssl/internal.h>) && defined(WOLFSSL_DTLS13)
#include <wolfssl/internal.h>
#define DGRAM_READS_WOLFSSL_INTERNALS 1
#endif

namespace dgram::dtls::wolfssl_internals {

#ifdef DGRAM_READS_WOLFSSL_INTERNALS
namespace {

std::uint64_t value_of(const w64wrapper& number) {
#if defined(WORD64_AVAILABLE) && !defined(WOLFSSL_W64_WRAPPER_TEST)
  return number.n;
#else
  return static_cast<std::uint64_t>(number.n[0]) << 32 | number.n[1];
#endif
}

// Whether the headers describe the library that was linked, as far as one number can tell: the same size of
// the session object. A heuristic (an option could change a field without changing the size), but the headers
// come from the same build as the library (options.h from its prefix), so it guards against a mix-up of builds.
bool layout_matches() {
  static const bool matches = wolfSSL_GetObjectSize() == static_cast<int>(sizeof(WOLFSSL));
  return matches;
}

// DTLS 1.2: the window of the current epoch knows the next sequence number it expects (one past the newest it
// accepted); before any record of that epoch, the previous epoch's window has the newest.
std::optional<PeerRecord> newest_dtls12_peer_record(const WOLFSSL* ssl) {
  const WOLFSSL_DTLS_PEERSEQ& window = ssl->keys.peerSeq[0];
  const std::uint64_t next = static_cast<std::uint64_t>(window.nextSeq_hi) << 32 | window.nextSeq_lo;
  if (next > 0) return PeerRecord{window.nextEpoch, next - 1};
  const std::uint64_t previous = static_cast<std::uint64_t>(window.prevSeq_hi) << 32 | window.prevSeq_lo;
  if (previous > 0 && window.nextEpoch > 0) return PeerRecord{window.nextEpoch - 1u, previous - 1};
  return std::nullopt;
}

}  // namespace

std::optional<PeerRecord> newest_peer_record(WOLFSSL* ssl) noexcept {
  if (ssl == nullptr || !layout_matches() || !ssl->options.dtls) return std::nullopt;
  if (!ssl->options.tls1_3) return newest_dtls12_peer_record(ssl);
  // Each epoch's window knows the next sequence number it expects: one past the newest it accepted.
  std::optional<PeerRecord> newest;
  for (const Dtls13Epoch& epoch : ssl->dtls13Epochs) {
    const std::uint64_t next = value_of(epoch.nextPeerSeqNumber);
    if (next == 0) continue;   // nothing accepted in it (or an unused slot)
    const PeerRecord last{value_of(epoch.epochNumber), next - 1};
    if (!newest || last > *newest) newest = last;
  }
  return newest;
}

bool post_handshake_timer_wanted(WOLFSSL* ssl) noexcept {
  if (ssl == nullptr || !layout_matches() || !ssl->options.dtls || !ssl->options.tls1_3) return false;
  return ssl->dtls13WaitKeyUpdateAck || ssl->dtls13Rtx.seenRecords != nullptr;
}

bool key_update_under_way(WOLFSSL* ssl) noexcept {
  if (ssl == nullptr || !layout_matches() || !ssl->options.dtls || !ssl->options.tls1_3) return true;
  if (ssl->dtls13WaitKeyUpdateAck) return true;
  const auto newest = newest_peer_record(ssl);
  return !newest || newest->epoch != value_of(ssl->dtls13PeerEpoch);
}

std::optional<int> session_error(const WOLFSSL* ssl) noexcept {
  if (ssl == nullptr || !layout_matches()) return std::nullopt;
  return ssl->error;
}
#else
std::optional<int> session_error(const WOLFSSL*) noexcept { return std::nullopt; }
std::optional<PeerRecord> newest_peer_record(WOLFSSL*) noexcept { return std::nullopt; }
bool post_handshake_timer_wanted(WOLFSSL*) noexcept { return false; }
bool key_update_under_way(WOLFSSL*) noexcept { return true; }
#endif

}  // namespace dgram::dtls::wolfssl_internals
