// Raw public keys (RFC 7250): presenting our bare public key, and pinning the peer's. wolfSSL (--enable-rpk)
// negotiates the certificate type and parses a raw key, but trusts it without any check (it has no chain): the
// verify callback compares it with the pinned keys inside the handshake (accept_pinned_key), and the engine
// once more when the handshake completes (check_pinned_peer_key), before any message is taken.
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "hex.hpp"
module dgram.dtls.engine;

import dgram.dtls.config;

#include "engine_impl.hpp"

namespace dgram::dtls {
namespace {

#ifdef HAVE_RPK
// The DER SubjectPublicKeyInfo of the private key in `pem` (EC or RSA, traditional or PKCS#8); empty when it is
// neither. (wolfSSL_i2d_PUBKEY writes an EC key's bare point, not a SubjectPublicKeyInfo.)
std::vector<unsigned char> public_key_of(const std::string& pem) {
  std::vector<unsigned char> der(pem.size());
  const int der_size = wc_KeyPemToDer(reinterpret_cast<const byte*>(pem.data()), static_cast<int>(pem.size()),
                                      der.data(), static_cast<int>(der.size()), nullptr);
  if (der_size <= 0) return {};
  std::vector<unsigned char> spki(2048);
  int size = -1;
  word32 at = 0;
  ecc_key ecc;
  if (wc_ecc_init(&ecc) == 0) {
    if (wc_EccPrivateKeyDecode(der.data(), &at, &ecc, static_cast<word32>(der_size)) == 0)
      size = wc_EccPublicKeyToDer(&ecc, spki.data(), static_cast<word32>(spki.size()), 1);
    wc_ecc_free(&ecc);
  }
  RsaKey rsa;
  if (size <= 0 && wc_InitRsaKey(&rsa, nullptr) == 0) {
    at = 0;
    if (wc_RsaPrivateKeyDecode(der.data(), &at, &rsa, static_cast<word32>(der_size)) == 0)
      size = wc_RsaKeyToPublicDer(&rsa, spki.data(), static_cast<word32>(spki.size()));
    wc_FreeRsaKey(&rsa);
  }
  spki.resize(size > 0 ? static_cast<std::size_t>(size) : 0);
  return spki;
}
#endif

// The DER inside a PEM block's base64 lines; empty when they are not base64.
std::vector<unsigned char> pem_body(std::string_view base64) {
  std::vector<unsigned char> der(base64.size());
  word32 size = static_cast<word32>(der.size());
  if (Base64_Decode(reinterpret_cast<const byte*>(base64.data()), static_cast<word32>(base64.size()), der.data(),
                    &size) != 0)
    return {};
  der.resize(size);
  return der;
}

// 64 hex digits, ':' between bytes allowed; what follows blanks is ignored (sha256sum's "  -" or file name).
std::optional<KeySha256> parse_fingerprint(std::string_view text) {
  text = text.substr(0, text.find_first_of(" \t\r"));
  std::string digits;
  for (const char c : text)
    if (c != ':') digits += c;
  KeySha256 hash{};
  if (digits.size() != 2 * hash.size() || !hex::decode(digits, hash)) return std::nullopt;
  return hash;
}

#ifdef HAVE_RPK
// Makes raw public keys the only certificate type of the server's side (a server's own key, or what a client
// accepts from its server) or of the client's side; false when wolfSSL refuses.
bool raw_keys_only(WOLFSSL_CTX* ctx, Role side) {
  static constexpr char raw_public_key_type[] = {WOLFSSL_CERT_TYPE_RPK};
  return (side == Role::server ? wolfSSL_CTX_set_server_cert_type(ctx, raw_public_key_type, sizeof raw_public_key_type)
                               : wolfSSL_CTX_set_client_cert_type(ctx, raw_public_key_type, sizeof raw_public_key_type)) ==
         WOLFSSL_SUCCESS;
}
#endif

}  // namespace

bool raw_public_keys_available() noexcept {
#ifdef HAVE_RPK
  return true;
#else
  return false;
#endif
}

bool present_raw_public_key(WOLFSSL_CTX* ctx, const DtlsConfig& config, const std::string& private_key_pem,
                            std::string& reason) {
#ifdef HAVE_RPK
  const std::vector<unsigned char> der = public_key_of(private_key_pem);
  if (der.empty() ||
      wolfSSL_CTX_use_certificate_buffer(ctx, der.data(), static_cast<long>(der.size()), WOLFSSL_FILETYPE_ASN1) !=
          WOLFSSL_SUCCESS) {
    reason = "cannot make a raw public key of private key " + config.private_key->describe();
    return false;
  }
  if (!raw_keys_only(ctx, config.role)) {   // what we present
    reason = "wolfSSL refused to present a raw public key";
    return false;
  }
  return true;
#else
  (void)ctx, (void)config, (void)private_key_pem;
  reason = "this wolfSSL has no raw public keys";
  return false;
#endif
}

bool pin_peer_keys(DtlsContext::Impl& context, const std::string& text, std::string& reason) {
  const DtlsConfig& config = context.config;
  const std::string origin = "pinned keys " + config.pinned_peer_keys->describe();
  std::size_t line_number = 0;
  std::optional<std::string> pem_block;   // the base64 lines of a PUBLIC KEY block being read
  for (std::size_t at = 0; at < text.size();) {
    const auto end = std::min(text.find('\n', at), text.size());
    const std::string_view line(text.data() + at, end - at);
    at = end + 1;
    ++line_number;
    if (line.starts_with("-----BEGIN PUBLIC KEY-----")) {
      pem_block.emplace();
      continue;
    }
    if (pem_block && !line.starts_with("-----END PUBLIC KEY-----")) {
      pem_block->append(line).append("\n");
      continue;
    }
    if (pem_block) {
      const std::vector<unsigned char> der = pem_body(*pem_block);
      if (der.empty() || der.front() != 0x30) {   // a DER SEQUENCE, as every SubjectPublicKeyInfo is
        reason = origin + ", the block ending on line " + std::to_string(line_number) + ": not a PEM PUBLIC KEY";
        return false;
      }
      context.pinned_keys.push_back(sha256_of(der));
      pem_block.reset();
      continue;
    }
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const auto hash = parse_fingerprint(line.substr(first));
    if (!hash) {
      reason = origin + ", line " + std::to_string(line_number) +
               ": expected a PEM PUBLIC KEY block or a SHA-256 fingerprint (64 hex digits)";
      return false;
    }
    context.pinned_keys.push_back(*hash);
  }
  if (pem_block) {
    reason = origin + ": a PUBLIC KEY block has no END line";
    return false;
  }
  if (context.pinned_keys.empty()) {
    reason = origin + " holds no key";
    return false;
  }
#ifdef HAVE_RPK
  if (!raw_keys_only(context.ctx.get(), config.role == Role::client ? Role::server : Role::client)) {   // the peer's
    reason = "wolfSSL refused to ask for a raw public key";
    return false;
  }
  return true;
#else
  reason = "this wolfSSL has no raw public keys";
  return false;
#endif
}

bool peer_presented_raw_key(WOLFSSL* ssl, Role our_role) {
#ifdef HAVE_RPK
  int type = WOLFSSL_CERT_TYPE_UNKNOWN;
  const int asked = our_role == Role::client ? wolfSSL_get_negotiated_server_cert_type(ssl, &type)
                                             : wolfSSL_get_negotiated_client_cert_type(ssl, &type);
  return asked == WOLFSSL_SUCCESS && type == WOLFSSL_CERT_TYPE_RPK;
#else
  (void)ssl, (void)our_role;
  return false;
#endif
}

std::optional<KeySha256> peer_raw_key_sha256(WOLFSSL* ssl, Role our_role) {
  if (!peer_presented_raw_key(ssl, our_role)) return std::nullopt;
  const auto der = peer_leaf_der(ssl);
  if (!der) return std::nullopt;
  return sha256_of(*der);
}

namespace {

std::optional<FailureExplanation> refuse_unless_pinned(const Engine::Impl& engine, const KeySha256& key) {
  for (const KeySha256& allowed : context_impl(*engine.context).pinned_keys)
    if (allowed == key) return std::nullopt;
  return FailureExplanation{FailureKind::unpinned_key, std::string("the ") + peer_side(engine) +
                                                           "'s raw public key (SHA-256 " + hex::of(key) + ") is not pinned here"};
}

}  // namespace

int accept_pinned_key(Engine::Impl& engine, WOLFSSL_X509_STORE_CTX* store) {
  if (context_impl(*engine.context).pinned_keys.empty() || store->error_depth != 0) return 1;
  if (store->totalCerts < 1 || !store->certs || !store->certs[0].buffer) return 1;   // nothing to judge: checked
                                                                                     // once established
  const WOLFSSL_BUFFER_INFO& presented = store->certs[0];
  engine.key_refusal = refuse_unless_pinned(engine, sha256_of({presented.buffer, presented.length}));
  return engine.key_refusal ? 0 : 1;
}

std::optional<FailureExplanation> check_pinned_peer_key(const Engine::Impl& engine) {
  const auto& pinned = context_impl(*engine.context).pinned_keys;
  if (pinned.empty()) return std::nullopt;
  const auto key = peer_raw_key_sha256(engine.ssl.get(), engine.role);
  if (!key)
    return FailureExplanation{FailureKind::certificate_type_mismatch,
                              std::string("the ") + peer_side(engine) + " sent a certificate (or nothing) where a raw public key was required"};
  return refuse_unless_pinned(engine, *key);
}

}  // namespace dgram::dtls
