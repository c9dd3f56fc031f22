// A cluster's shared key material in the engine: the key file (read_shared_secret) and session tickets sealed
// with keys derived from it (use_shared_ticket_keys), so a ticket one node issued resumes on every node.
module;
#include <sys/stat.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hex.hpp"
#include "random.hpp"
#include "read_file.hpp"
#include "shared_keys.hpp"
module dgram.dtls.engine;

import dgram.dtls.config;

#include "engine_impl.hpp"

namespace dgram::dtls {
namespace {

std::optional<SharedKeys::Secret> secret_from(std::string_view text, std::string& why) {
  SharedKeys::Secret secret{};
  const bool all_hex = std::ranges::all_of(text, [](char c) { return hex::digit(c) >= 0; });
  if (text.size() == secret.size() && all_hex) {   // `openssl rand -hex 16`: 16 bytes, not 32
    why = "holds 32 hex digits, which are 16 bytes: a cluster key is 32 random bytes, raw or as 64 hex digits "
          "(openssl rand -hex 32 > FILE)";
    return std::nullopt;
  }
  if (text.size() == secret.size()) {   // raw bytes
    std::memcpy(secret.data(), text.data(), secret.size());
    return secret;
  }
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  const std::string_view digits = first == std::string_view::npos ? std::string_view{} : text.substr(first, last - first + 1);
  if (digits.size() != 2 * secret.size()) {
    why = "holds " + std::to_string(text.size()) + " bytes: a cluster key is 32 random bytes, raw or as 64 hex "
          "digits (openssl rand -hex 32 > FILE)";
    return std::nullopt;
  }
  if (!hex::decode(digits, secret)) {
    const auto bad = std::ranges::find_if(digits, [](char c) { return hex::digit(c) < 0; }) - digits.begin();
    why = "is not 64 hex digits (character " + std::to_string(bad + 1) + " is not one)";
    return std::nullopt;
  }
  return secret;
}

// A ticket's key name: 8 bytes that name the cluster's secret (a ticket of another cluster is refused without
// trying to open it) and the big-endian number of the period whose key sealed it.
constexpr std::size_t name_id_size = 8;

struct TicketKeys {
  SharedKeys keys;
  std::array<std::byte, name_id_size> name_id{};
};

std::uint64_t period_in(const unsigned char* name) {
  std::uint64_t period = 0;
  for (std::size_t i = name_id_size; i < WOLFSSL_TICKET_NAME_SZ; ++i) period = period << 8 | name[i];
  return period;
}

// Whether a ticket sealed in an earlier period may resume as it is: DTLS 1.3 issues a new ticket after every
// handshake anyway, and wolfSSL 5.9.2's TLS 1.3 code takes "resume, and issue a new ticket" (CREATE) for a
// refusal (measured: every ticket from the previous period made a full handshake); DTLS 1.2 asks for a new one.
int older_ticket_verdict(WOLFSSL* ssl) {
#ifdef WOLFSSL_DTLS13
  if (wolfSSL_version(ssl) == DTLS1_3_VERSION) return WOLFSSL_TICKET_RET_OK;
#else
  (void)ssl;
#endif
  return WOLFSSL_TICKET_RET_CREATE;
}

// wolfSSL's ticket callback: `enc` seals the session state in place with this period's key (a fresh nonce in
// `iv`, the tag in `mac`); otherwise it opens a ticket sealed in the previous, this or the next period (nodes'
// clocks differ a little), asking for a new one when it was not this period's.
int shared_ticket_callback(WOLFSSL* ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                           unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc,
                           unsigned char* ticket, int length, int* out_length, void* context) {
  static_assert(WOLFSSL_TICKET_NAME_SZ == 16 && WOLFSSL_TICKET_IV_SZ >= 12 && WOLFSSL_TICKET_MAC_SZ >= 16);
  const auto& self = *static_cast<const TicketKeys*>(context);
  if (length < 0) return WOLFSSL_TICKET_RET_REJECT;
  const std::uint64_t now = detail::period_number(std::chrono::system_clock::now(), self.keys.ticket_rotation);
  const auto name = std::as_writable_bytes(std::span(key_name, WOLFSSL_TICKET_NAME_SZ));
  const auto nonce = std::as_writable_bytes(std::span(iv, WOLFSSL_TICKET_IV_SZ)).first<12>();
  const auto tag = std::as_writable_bytes(std::span(mac, WOLFSSL_TICKET_MAC_SZ)).first<16>();
  const auto data = std::as_writable_bytes(std::span(ticket, static_cast<std::size_t>(length)));
  if (enc) {
    std::memcpy(name.data(), self.name_id.data(), name_id_size);
    for (std::size_t i = 0; i < 8; ++i) name[name_id_size + i] = static_cast<std::byte>(now >> (56 - 8 * i));
    std::memset(iv, 0, WOLFSSL_TICKET_IV_SZ);
    std::memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    if (detail::fill_random(nonce)) return WOLFSSL_TICKET_RET_FATAL;
    if (!detail::seal(detail::derive_key(self.keys.secret, "ticket", now), nonce, name, data, tag))
      return WOLFSSL_TICKET_RET_FATAL;
    *out_length = length;
    return WOLFSSL_TICKET_RET_OK;
  }
  if (!detail::same_bytes(name.first(name_id_size), self.name_id)) return WOLFSSL_TICKET_RET_REJECT;
  const std::uint64_t period = period_in(key_name);
  if (period + 1 < now || period > now + 1) return WOLFSSL_TICKET_RET_REJECT;   // expired, or from the future
  if (!detail::open(detail::derive_key(self.keys.secret, "ticket", period), nonce, name, data, tag))
    return WOLFSSL_TICKET_RET_REJECT;
  *out_length = length;
  return period == now ? WOLFSSL_TICKET_RET_OK : older_ticket_verdict(ssl);
}

}  // namespace

std::optional<SharedKeys::Secret> read_shared_secret(const std::string& path, std::string& why) {
  struct stat status{};
  if (::stat(path.c_str(), &status) != 0) {
    why = "cluster key '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  if (!S_ISREG(status.st_mode)) {
    why = "cluster key '" + path + "' is not a regular file";
    return std::nullopt;
  }
  if ((status.st_mode & 077) != 0) {
    why = "cluster key '" + path + "' may be read or written by others than its owner (chmod 600 '" + path + "')";
    return std::nullopt;
  }
  const auto text = read_whole_file(path, why);
  if (!text) {
    why = "cluster key '" + path + "': " + why;
    return std::nullopt;
  }
  auto secret = secret_from(*text, why);
  if (!secret) why = "cluster key '" + path + "' " + why;
  return secret;
}

std::shared_ptr<void> use_shared_ticket_keys(WOLFSSL_CTX* ctx, const SharedKeys& keys) {
  auto state = std::make_shared<TicketKeys>();
  state->keys = keys;
  const detail::Key256 id = detail::derive_key(keys.secret, "ticket name", 0);
  std::memcpy(state->name_id.data(), id.data(), name_id_size);
  wolfSSL_CTX_set_TicketEncCb(ctx, shared_ticket_callback);
  wolfSSL_CTX_set_TicketEncCtx(ctx, state.get());
  // A ticket is accepted until the end of the period after the one that sealed it: for one to two periods. Its
  // lifetime says two (a client drops it then; RFC 8446 allows at most 7 days), and wolfSSL's session timeout,
  // which bounds a DTLS 1.3 ticket's age at the server (500 s by default), is the same: the keys decide.
  const auto lifetime = static_cast<int>(std::min<std::int64_t>(2 * keys.ticket_rotation.count(), 604'800));
  wolfSSL_CTX_set_TicketHint(ctx, lifetime);
  wolfSSL_CTX_set_timeout(ctx, static_cast<unsigned>(lifetime));
  return state;
}

}  // namespace dgram::dtls
