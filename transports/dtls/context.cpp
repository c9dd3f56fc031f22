// dgram.dtls.engine: the wolfSSL error category, DtlsContext (configuration into a WOLFSSL_CTX) and Session.
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/pem.h>   // wolfSSL_PEM_read_bio_PrivateKey (5.7.2 declares it only here)

#include <algorithm>
#include <array>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>
#include "read_file.hpp"
module dgram.dtls.engine;

import dgram.dtls.config;

#include "engine_impl.hpp"

namespace dgram::dtls {
namespace {

class WolfSslCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "wolfssl"; }
  std::string message(int code) const override {
    char text[WOLFSSL_MAX_ERROR_SZ] = {};
    wolfSSL_ERR_error_string_n(static_cast<unsigned long>(code), text, sizeof text);
    return std::string(text) + " (wolfSSL " + std::to_string(code) + ")";
  }
};

// The PEM text of `pem`; on failure, a reason naming the file and what went wrong.
std::optional<std::string> read_pem(const Pem& pem, const char* what, std::string& reason) {
  if (pem.path.empty()) return pem.text;
  std::string why;
  auto text = read_whole_file(pem.path, why);
  if (!text) reason = std::string("cannot read ") + what + " '" + pem.path + "': " + why;
  return text;
}

const unsigned char* bytes(const std::string& text) { return reinterpret_cast<const unsigned char*>(text.data()); }
long size_of(const std::string& text) { return static_cast<long>(text.size()); }

unsigned int psk_client_callback(WOLFSSL* ssl, const char*, char* identity, unsigned int identity_size,
                                 unsigned char* key, unsigned int key_size) {
  const auto* config = static_cast<const DtlsConfig*>(wolfSSL_get_psk_callback_ctx(ssl));
  if (!config || !config->psk) return 0;
  const PreSharedKey& psk = *config->psk;
  if (psk.identity.size() + 1 > identity_size || psk.key.size() > key_size) return 0;
  std::memcpy(identity, psk.identity.c_str(), psk.identity.size() + 1);
  std::memcpy(key, psk.key.data(), psk.key.size());
  return static_cast<unsigned int>(psk.key.size());
}

// The key of `identity`: from the store first, then the one configured key.
std::optional<std::vector<std::byte>> find_psk(const DtlsConfig& config, std::string_view identity) {
  if (config.psk_store)
    if (auto key = config.psk_store->find(identity)) return key;
  if (config.psk && config.psk->identity == identity) return config.psk->key;
  return std::nullopt;
}

unsigned int psk_server_callback(WOLFSSL* ssl, const char* identity, unsigned char* key, unsigned int key_size) {
  const auto* config = static_cast<const DtlsConfig*>(wolfSSL_get_psk_callback_ctx(ssl));
  auto* engine = static_cast<Engine::Impl*>(wolfSSL_GetIOReadCtx(ssl));
  if (!config || !identity) return 0;
  const auto found = find_psk(*config, identity);
  if (!found || found->size() > key_size) {   // unknown identity (or a key wolfSSL cannot hold: refused on load)
    if (engine) engine->unknown_psk_identity = std::string(identity);
    return 0;
  }
  if (engine) engine->psk_identity = identity;
  std::memcpy(key, found->data(), found->size());
  return static_cast<unsigned int>(found->size());
}

using BioPtr = std::unique_ptr<WOLFSSL_BIO, Freer<wolfSSL_BIO_free>>;
using KeyPtr = std::unique_ptr<WOLFSSL_EVP_PKEY, Freer<wolfSSL_EVP_PKEY_free>>;
using DigestPtr = std::unique_ptr<WOLFSSL_EVP_MD_CTX, Freer<wolfSSL_EVP_MD_CTX_free>>;

// wolfSSL 5.5.4's check_private_key accepts any ECC key of the right type for an ECC certificate, so this
// proves the match: a signature by the private key must verify with the certificate's public key.
bool key_matches_certificate(const std::string& certificate_pem, const std::string& key_pem) {
  const BioPtr key_bio{wolfSSL_BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()))};
  const KeyPtr key{key_bio ? wolfSSL_PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr};
  const X509Ptr certificate{wolfSSL_X509_load_certificate_buffer(bytes(certificate_pem), static_cast<int>(certificate_pem.size()),
                                                                 WOLFSSL_FILETYPE_PEM)};
  const KeyPtr public_key{certificate ? wolfSSL_X509_get_pubkey(certificate.get()) : nullptr};
  if (!key || !public_key) return false;
  static constexpr unsigned char probe[] = "dgram: does this key belong to this certificate?";
  std::vector<unsigned char> signature(1024);
  std::size_t signature_size = signature.size();
  const DigestPtr sign{wolfSSL_EVP_MD_CTX_new()};
  const DigestPtr verify{wolfSSL_EVP_MD_CTX_new()};
  return sign && verify &&
         wolfSSL_EVP_DigestSignInit(sign.get(), nullptr, wolfSSL_EVP_sha256(), nullptr, key.get()) == 1 &&
         wolfSSL_EVP_DigestSignUpdate(sign.get(), probe, sizeof probe) == 1 &&
         wolfSSL_EVP_DigestSignFinal(sign.get(), signature.data(), &signature_size) == 1 &&
         wolfSSL_EVP_DigestVerifyInit(verify.get(), nullptr, wolfSSL_EVP_sha256(), nullptr, public_key.get()) == 1 &&
         wolfSSL_EVP_DigestVerifyUpdate(verify.get(), probe, sizeof probe) == 1 &&
         wolfSSL_EVP_DigestVerifyFinal(verify.get(), signature.data(), signature_size) == 1;
}

// Whether every name in a ':'-separated SRTP profile list is one wolfSSL knows (it skips unknown names without
// a word, and a list of only those would offer nothing).
bool srtp_profiles_known(std::string_view list, std::string& reason) {
  if (list.empty()) return true;
  for (std::size_t at = 0; at <= list.size();) {
    const std::size_t end = std::min(list.find(':', at), list.size());
    const std::string_view name = list.substr(at, end - at);
    if (std::ranges::find(srtp_profile_names, name) == std::end(srtp_profile_names)) {
      reason = "SRTP profile '" + std::string(name) + "' is not one of SRTP_AEAD_AES_128_GCM, SRTP_AEAD_AES_256_GCM, "
               "SRTP_AES128_CM_SHA1_80, SRTP_AES128_CM_SHA1_32";
      return false;
    }
    at = end + 1;
  }
  return true;
}

// Whether this wolfSSL can do what `config` asks for (never a silent downgrade); the reason when it cannot.
bool supported(const DtlsConfig& config, std::string& reason) {
  const auto lacking = [&](const char* what) {
    reason = "this dgram is built with wolfSSL " + wolfssl_version() + ", which has no " + what +
             " (configure dgram with -Dwolfssl=optimized)";
    return false;
  };
  if (config.version != Version::dtls1_2 && !dtls13_available()) return lacking("DTLS 1.3");
  if (config.connection_id && !connection_id_available()) return lacking("Connection IDs");
  if ((config.raw_public_key || config.pinned_peer_keys) && !raw_public_keys_available())
    return lacking("raw public keys");
  if (exports_keying_material(config) && !srtp_available()) return lacking("DTLS-SRTP or keying-material exporter");
  if (!srtp_profiles_known(config.srtp_profiles, reason)) return false;
  if (config.shared_keys && config.role != Role::server) {
    reason = "shared_keys (a cluster's cookie and ticket keys) are a server's";
    return false;
  }
  if (config.shared_keys && (config.shared_keys->cookie_rotation.count() <= 0 || config.shared_keys->ticket_rotation.count() <= 0)) {
    reason = "shared_keys need rotation periods of at least a second";
    return false;
  }
  const bool post_quantum = std::ranges::any_of(config.groups, is_post_quantum);
  if (post_quantum && !post_quantum_available()) return lacking("post-quantum key exchange (ML-KEM)");
  if (post_quantum && config.version == Version::dtls1_2 && std::ranges::all_of(config.groups, is_post_quantum)) {
    reason = "the post-quantum groups are DTLS 1.3 only: a DTLS 1.2 configuration needs a classical group too "
             "(X25519 or P-256)";
    return false;
  }
  return true;
}

bool pin_configured_keys(DtlsContext::Impl& impl, std::string& reason) {
  if (!impl.config.pinned_peer_keys) return true;
  const auto text = read_pem(*impl.config.pinned_peer_keys, "pinned keys file", reason);
  return text && pin_peer_keys(impl, *text, reason);
}

WOLFSSL_METHOD* method_for(const DtlsConfig& config) {
  const bool client = config.role == Role::client;
#ifdef WOLFSSL_DTLS13
  if (config.version == Version::dtls1_3) return client ? wolfDTLSv1_3_client_method() : wolfDTLSv1_3_server_method();
  if (config.version == Version::any) return client ? wolfDTLS_client_method() : wolfDTLS_server_method();
#endif
  return client ? wolfDTLSv1_2_client_method() : wolfDTLSv1_2_server_method();
}


std::vector<std::string> split_cipher_list(std::string_view list) {
  std::vector<std::string> names;
  while (!list.empty()) {
    const auto end = list.find(':');
    if (const auto name = list.substr(0, end); !name.empty()) names.emplace_back(name);
    list = end == std::string_view::npos ? std::string_view{} : list.substr(end + 1);
  }
  return names;
}

// wolfSSL takes a list as long as one name in it is known and drops the others without a word; a suite a
// device needs must not vanish that way. Each name is tried alone on a scratch context (wolfSSL's and IANA's
// names). Keywords (ALL, HIGH) and exclusions ('!') are refused: what they select could not be checked here.
bool is_dtls13_suite(std::string_view name) {
  return name.starts_with("TLS13-") || name.starts_with("TLS_AES_") || name.starts_with("TLS_CHACHA20_");
}

bool every_cipher_suite_known(const DtlsConfig& config, const std::string& list, std::string& reason) {
  const CtxPtr probe{wolfSSL_CTX_new(method_for(config))};
  if (!probe) return true;   // the real call below reports what it can
  bool has_dtls12 = false;
  bool has_dtls13 = false;
  bool has_psk13_suite = false;   // TLS13-AES128-GCM-SHA256: see below
  for (const std::string& name : split_cipher_list(list)) {
    if (name.find_first_of("-_") == std::string::npos || name.find_first_of("!+") != std::string::npos ||
        name.front() == '-') {
      reason = "'" + name + "' in cipher list '" + list + "' is not a cipher suite: name each suite (keywords and "
               "exclusions would select suites no check here could see)";
      return false;
    }
    has_psk13_suite = has_psk13_suite || name == "TLS13-AES128-GCM-SHA256" || name == "TLS_AES_128_GCM_SHA256";
    if (name == "TLS13-AES128-CCM-8-SHA256" || name == "TLS13-AES128-CCM8-SHA256" || name == "TLS_AES_128_CCM_8_SHA256") {
      // wolfSSL 5.7.2 does not pad DTLS 1.3 records to the 16 bytes of ciphertext RFC 9147 4.2.3 needs: with an
      // 8-byte tag every message under 8 bytes fails to send.
      reason = "cipher suite '" + name + "' is not usable for DTLS 1.3 with wolfSSL " + wolfssl_version() +
               ": it cannot send messages shorter than 8 bytes (choose TLS13-AES128-CCM-SHA256)";
      return false;
    }
    if (wolfSSL_CTX_set_cipher_list(probe.get(), name.c_str()) == WOLFSSL_SUCCESS) {
      (is_dtls13_suite(name) ? has_dtls13 : has_dtls12) = true;
      continue;
    }
    reason = "cipher suite '" + name + "' is not in this build's wolfSSL " + wolfssl_version() +
             (dtls13_available() ? "" : " (the optimized build, -Dwolfssl=optimized, has more)") +
             "; available_cipher_suites() lists those it has (the example programs' --help too)";
    return false;
  }
  // A list without a suite for the version asked for could never complete a handshake.
  const auto missing = [&](const char* version, const char* examples) {
    reason = "cipher list '" + list + "' has no " + version + " suite (" + examples + ")";
    return false;
  };
  if (config.version == Version::dtls1_2 && !has_dtls12 && has_dtls13)
    return missing("DTLS 1.2", "the TLS13-... suites are DTLS 1.3's");
  if (config.version == Version::dtls1_3 && !has_dtls13 && has_dtls12)
    return missing("DTLS 1.3", "TLS13-AES128-GCM-SHA256, TLS13-AES128-CCM-SHA256...");
  // wolfSSL 5.7.2 binds a pre-shared key (its PSK callbacks) to TLS13-AES128-GCM-SHA256 in DTLS 1.3.
  if (uses_psk(config) && config.version != Version::dtls1_2 && has_dtls13 && !has_psk13_suite) {
    reason = "with pre-shared keys, DTLS 1.3 in wolfSSL " + wolfssl_version() +
             " uses TLS13-AES128-GCM-SHA256 only: cipher list '" + list + "' leaves it out";
    return false;
  }
  return true;
}

// A server that pins client keys sees the key on every handshake (a resumed session shows none, and wolfSSL's
// small cache may have lost the one it had); one that serves only devices from a PSK store resumes none, so a
// key removed from the store takes effect at once and every session names its identity (a PSK handshake
// costs no public-key operation: resumption would save little).
bool server_resumes_none(const DtlsConfig& config) {
  return config.role == Role::server &&
         (config.pinned_peer_keys || (config.psk_store && !config.certificate_chain && !config.raw_public_key));
}

// A server that asks for client certificates resumes by session ID only: wolfSSL keeps the client's chain with a
// session in its cache, but not in a ticket, so a session resumed by ticket (once its cache entry is gone; with
// Debian's wolfSSL always) could not say who the client is.
bool server_issues_tickets(const DtlsConfig& config) {
  return config.role == Role::server && config.session_tickets && !server_resumes_none(config) &&
         !asks_client_certificates(config);
}

bool issues_shared_tickets(const DtlsConfig& config) { return server_issues_tickets(config) && config.shared_keys; }

// Applies `config` to `ctx`; false with a reason on the first problem.
bool configure(WOLFSSL_CTX* ctx, const DtlsConfig& config, std::string& reason) {
  const auto wolf_reason = [](int code) { return wolfssl_category().message(code); };
  std::string certificate_text;
  if (config.certificate_chain) {
    const auto pem = read_pem(*config.certificate_chain, "certificate chain", reason);
    if (!pem) return false;
    certificate_text = *pem;
    if (const int r = wolfSSL_CTX_use_certificate_chain_buffer(ctx, bytes(*pem), size_of(*pem)); r != WOLFSSL_SUCCESS) {
      reason = "certificate chain " + config.certificate_chain->describe() + " is not a usable PEM certificate: " + wolf_reason(r);
      return false;
    }
  }
  if (config.private_key) {
    const auto pem = read_pem(*config.private_key, "private key", reason);
    if (!pem) return false;
    if (const int r = wolfSSL_CTX_use_PrivateKey_buffer(ctx, bytes(*pem), size_of(*pem), WOLFSSL_FILETYPE_PEM);
        r != WOLFSSL_SUCCESS) {
      reason = "private key " + config.private_key->describe() + " is not a usable PEM private key: " + wolf_reason(r);
      return false;
    }
    if (config.raw_public_key) {
      if (config.certificate_chain) {
        reason = "a raw public key takes the place of the certificate chain: give one of them";
        return false;
      }
      if (!present_raw_public_key(ctx, config, *pem, reason)) return false;
    }
    // wolfSSL's own check is cheap but lets a mismatched ECC key through; the signature probe proves the match.
    if (config.certificate_chain && (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS ||
                                     !key_matches_certificate(certificate_text, *pem))) {
      reason = "private key " + config.private_key->describe() + " does not match certificate " +
               config.certificate_chain->describe();
      return false;
    }
  }
  if (config.raw_public_key && !config.private_key) {
    reason = "a raw public key is the public half of the private key: give the private key";
    return false;
  }
  if (!config.raw_public_key && config.certificate_chain.has_value() != config.private_key.has_value()) {
    reason = "a certificate chain needs its private key, and a private key its certificate chain";
    return false;
  }
  for (const Pem& authority : config.trusted_authorities) {
    const auto pem = read_pem(authority, "trusted CA file", reason);
    if (!pem) return false;
    if (const int r = wolfSSL_CTX_load_verify_buffer(ctx, bytes(*pem), size_of(*pem), WOLFSSL_FILETYPE_PEM);
        r != WOLFSSL_SUCCESS) {
      reason = "trusted CA file " + authority.describe() + " holds no usable PEM certificate: " + wolf_reason(r);
      return false;
    }
  }
  if (config.pinned_peer_keys && uses_psk(config)) {   // a PSK session shows no key to check against the pins
    reason = "pinned raw public keys and pre-shared keys do not go together: a pre-shared key session has no "
             "public key to pin";
    return false;
  }
  if (config.role == Role::server && !config.certificate_chain && !config.raw_public_key && !uses_psk(config)) {
    reason = "a DTLS server needs a certificate and key, a raw public key, or pre-shared keys";
    return false;
  }
  if (config.role == Role::client && config.verify_peer && config.trusted_authorities.empty() && !config.psk &&
      !config.pinned_peer_keys) {
    reason = "a DTLS client that verifies its server needs a trusted CA (or pinned raw public keys, or a pre-shared key)";
    return false;
  }

  if (config.role == Role::server && config.require_peer_certificate && config.trusted_authorities.empty()) {
    reason = "a DTLS server that requires client certificates needs trusted_authorities: the CA that signs "
             "them (require_client_certificates(config, ca) sets both)";
    return false;
  }

  int verify = verifies_peer_certificate(config, config.role) ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE;
  if (config.role == Role::client && config.pinned_peer_keys) verify = WOLFSSL_VERIFY_PEER;
  if (config.role == Role::server && config.require_peer_certificate) verify |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  if (config.role == Role::server && config.pinned_peer_keys)   // every client shows a pinned key
    verify = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  wolfSSL_CTX_set_verify(ctx, verify, record_certificate_problem);   // keeps the refused certificate's names

  const std::string ciphers = cipher_list_for(config);
  if (!every_cipher_suite_known(config, ciphers, reason)) return false;
  if (wolfSSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != WOLFSSL_SUCCESS) {
    reason = "cipher list '" + ciphers + "' names no cipher suite this wolfSSL supports";
    return false;
  }
#if defined(WOLFSSL_SRTP)
  // Client only: a wolfSSL server with SRTP profiles skips DTLS 1.2's cookie exchange altogether (its "SRTP
  // mode" takes the path as already checked, as ICE does for WebRTC), so a server's sessions get their
  // profiles only once the cookie has verified (Engine::Impl::offer_srtp_after_cookie).
  if (config.role == Role::client && !config.srtp_profiles.empty() &&
      wolfSSL_CTX_set_tlsext_use_srtp(ctx, config.srtp_profiles.c_str()) != 0) {
    reason = "SRTP profiles '" + config.srtp_profiles + "' were not taken";   // (0 is success here, as OpenSSL's)
    return false;
  }
#endif
  for (Group group : config.groups) {
    if (wolfSSL_CTX_UseSupportedCurve(ctx, static_cast<word16>(group)) != WOLFSSL_SUCCESS) {
      reason = "key-exchange group " + std::string(to_string(group)) + " is not supported by this wolfSSL";
      return false;
    }
  }
  if (config.psk) {
    if (config.psk->identity.empty() || config.psk->key.empty()) {
      reason = "a pre-shared key needs an identity and a non-empty key";
      return false;
    }
    if (config.psk->identity.size() > max_psk_identity_size || config.psk->key.size() > max_psk_key_size) {
      reason = "a pre-shared key identity holds at most " + std::to_string(max_psk_identity_size) +
               " bytes and a key at most " + std::to_string(max_psk_key_size);
      return false;
    }
  }
  if (config.role == Role::client && config.psk) wolfSSL_CTX_set_psk_client_callback(ctx, psk_client_callback);
  if (config.role == Role::server && uses_psk(config)) {
    wolfSSL_CTX_set_psk_server_callback(ctx, psk_server_callback);
    wolfSSL_CTX_use_psk_identity_hint(ctx, "dgram");
  }
  // A cluster's nodes resume by ticket only: a session-ID cache is one node's, and wolfSSL 5.9.2 fails a DTLS 1.2
  // handshake whose hello carries a ticket it rejects (another cluster's, or too old) and a session ID it finds
  // in its cache ("Out of order message" at the client).
  if (!config.session_cache || server_resumes_none(config) || config.shared_keys)
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
  if (config.role == Role::client && config.session_tickets) wolfSSL_CTX_UseSessionTicket(ctx);
#ifdef WOLFSSL_DTLS13
  if (config.role == Role::server && !config.psk_forward_secrecy) wolfSSL_CTX_no_dhe_psk(ctx);
#endif
  if (config.role == Role::server && !server_issues_tickets(config)) {
    wolfSSL_CTX_NoTicketTLSv12(ctx);
#ifdef WOLFSSL_DTLS13
    wolfSSL_CTX_no_ticket_TLSv13(ctx);
#endif
  }
  wolfSSL_CTX_SetIORecv(ctx, Engine::Impl::receive_callback);
  wolfSSL_CTX_SetIOSend(ctx, Engine::Impl::send_callback);
  return true;
}

}  // namespace

bool dtls13_available() noexcept {
#ifdef WOLFSSL_DTLS13
  return true;
#else
  return false;
#endif
}

bool srtp_available() noexcept {
#if defined(WOLFSSL_SRTP) && defined(HAVE_KEYING_MATERIAL)
  return true;
#else
  return false;
#endif
}

bool post_quantum_available() noexcept {
#if defined(WOLFSSL_HAVE_MLKEM) && defined(WOLFSSL_PQC_HYBRIDS) && defined(WOLFSSL_DTLS13)
  return true;
#else
  return false;
#endif
}

bool connection_id_available() noexcept {
// (DTLS 1.2's, RFC 9146, came in wolfSSL 5.7.4; 1.3's before.)
#if defined(WOLFSSL_DTLS13) && defined(WOLFSSL_DTLS_CID) && LIBWOLFSSL_VERSION_HEX >= 0x05007004
  return true;
#else
  return false;
#endif
}

std::string wolfssl_version() { return wolfSSL_lib_version(); }

bool aes_ni_available() noexcept {
#ifdef WOLFSSL_AESNI
  return true;
#else
  return false;
#endif
}

std::string cipher_list_for(const DtlsConfig& config) {
  if (!config.cipher_list.empty()) return config.cipher_list;
  const bool coap = config.cipher_profile == CipherProfile::coap;
  const std::string psk = coap ? coap_psk_cipher_list : default_psk_cipher_list;
  const std::string certificate = coap                 ? coap_certificate_cipher_list
                                  : aes_ni_available() ? default_aesni_cipher_list
                                                       : default_cipher_list;
  // A server with both a certificate and pre-shared keys serves clients of either kind.
  const bool both = config.role == Role::server && (config.certificate_chain || config.raw_public_key) && uses_psk(config);
  const std::string dtls12 = both ? psk + ":" + certificate : uses_psk(config) ? psk : certificate;
  const std::string dtls13 = coap ? coap_tls13_cipher_list : default_tls13_cipher_list;
  const std::string list = config.version == Version::dtls1_2 ? dtls12
                           : config.version == Version::dtls1_3 ? dtls13
                                                                : dtls13 + ":" + dtls12;
  if (coap) return list;   // all or nothing: a build without the CoAP suites refuses the profile, naming one
  // The standard defaults name what the richest build has (Debian's lacks the static-PSK suites): each build
  // uses those it has.
  const std::vector<std::string> available = available_cipher_suites();
  std::string kept;
  for (const std::string& name : split_cipher_list(list))
    if (std::find(available.begin(), available.end(), name) != available.end()) kept += (kept.empty() ? "" : ":") + name;
  return kept;
}

std::vector<std::string> available_cipher_suites() {
  std::vector<char> text(32768);
  if (wolfSSL_get_ciphers(text.data(), static_cast<int>(text.size())) != WOLFSSL_SUCCESS) return {};
  std::vector<std::string> suites;
  for (std::string& name : split_cipher_list(text.data()))   // (TLS 1.3 suites only where DTLS 1.3 is built)
    if (dtls13_available() || !name.starts_with("TLS13-")) suites.push_back(std::move(name));
  return suites;
}

const std::error_category& wolfssl_category() noexcept {
  static const WolfSslCategory category;
  return category;
}

DtlsContext::DtlsContext(std::unique_ptr<Impl> impl) noexcept : impl_{std::move(impl)} {}
DtlsContext::~DtlsContext() = default;

const DtlsConfig& DtlsContext::config() const noexcept { return impl_->config; }

DtlsContext::Impl& context_impl(const DtlsContext& context) noexcept { return *context.impl_; }

std::shared_ptr<DtlsContext> DtlsContext::create(const DtlsConfig& config, std::error_code& ec, std::string* reason) {
  static std::once_flag initialized;
  std::call_once(initialized, [] { wolfSSL_Init(); });
  ec.clear();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  std::string why;
  if (supported(config, why)) {
    impl->ctx.reset(wolfSSL_CTX_new(method_for(config)));
    if (!impl->ctx) {
      why = "wolfSSL could not create a DTLS context";
    } else if (configure(impl->ctx.get(), impl->config, why) && pin_configured_keys(*impl, why)) {
      if (issues_shared_tickets(impl->config)) impl->ticket_keys = use_shared_ticket_keys(impl->ctx.get(), *impl->config.shared_keys);
      // The PSK callbacks find the configuration through this pointer (wolfSSL_new copies it into every
      // session); Impl does not move.
      wolfSSL_CTX_set_psk_callback_ctx(impl->ctx.get(), &impl->config);
      return std::shared_ptr<DtlsContext>(new DtlsContext(std::move(impl)));
    }
  }
  ec = make_error_code(errc::invalid_argument);
  if (reason) *reason = why;
  return nullptr;
}

Session::Session() noexcept = default;
Session::Session(Session&& other) noexcept : handle_{std::exchange(other.handle_, nullptr)} {}
Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    if (handle_) wolfSSL_SESSION_free(static_cast<WOLFSSL_SESSION*>(handle_));
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}
Session::~Session() {
  if (handle_) wolfSSL_SESSION_free(static_cast<WOLFSSL_SESSION*>(handle_));
}
void* session_handle(const Session& session) noexcept { return session.handle_; }

Session adopt_session(void* handle) noexcept {
  Session session;
  session.handle_ = handle;
  return session;
}

}  // namespace dgram::dtls
