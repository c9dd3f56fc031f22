// dgram.dtls.engine: why a handshake failed, in words a user can act on.
//
// wolfSSL reports a failed handshake as one error number ("received alert fatal error", "certificate verify
// failed"). This unit turns that, the alert the peer sent, the certificate the verify callback saw and what
// the peer's flights carried in the clear into a FailureKind and a sentence: which certificate (subject,
// issuer), which names it holds, which side lacks what.
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>
#include "hex.hpp"
module dgram.dtls.engine;

import dgram.dtls.config;
import dgram.dtls.record;

#include "engine_impl.hpp"

namespace dgram::dtls {
namespace {

bool received(const Engine::Impl& impl, record::HandshakeType type) {
  return record::includes(impl.peer_handshake_types, type);
}

#ifdef MAX_CHAIN_DEPTH
constexpr int max_chain_certificates = MAX_CHAIN_DEPTH;   // (the optimized build sets it: scripts/build-wolfssl.sh)
#else
constexpr int max_chain_certificates = 9;                 // wolfSSL's default
#endif

// The certificate the verify callback refused, described; nullopt when it saw none.
std::optional<std::string> certificate_verdict(const Engine::Impl& impl) {
  if (!impl.certificate_problem) return std::nullopt;
  const CertificateProblem& problem = *impl.certificate_problem;
  const std::string whose = problem.depth == 0 ? std::string("the ") + peer_side(impl) + "'s certificate"
                                               : "a CA certificate in the " + std::string(peer_side(impl)) + "'s chain";
  const std::string which = " (subject " + problem.subject + ", issuer " + problem.issuer + ")";
  switch (problem.verify_error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case ASN_NO_SIGNER_E:
      return whose + which + " is not signed by a trusted CA";
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:   // what wolfSSL reports for an expired certificate
    case ASN_AFTER_DATE_E:
      return whose + which + " has expired";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case ASN_SIG_CONFIRM_E:
      return whose + which + " carries a signature that does not verify (altered on the way, or not made by that CA)";
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case ASN_BEFORE_DATE_E:
      return whose + which + " is not valid yet";
    default: {
      return whose + which + " failed verification (X509 error " + std::to_string(problem.verify_error) + ")";
    }
  }
}

const char* versions_of(const DtlsConfig& config) {
  switch (config.version) {
    case Version::dtls1_2: return "DTLS 1.2 only";
    case Version::dtls1_3: return "DTLS 1.3 only";
    case Version::any: return "DTLS 1.3 or 1.2";
  }
  return "";
}

FailureExplanation version_mismatch(const Engine::Impl& impl) {
  return {FailureKind::version_mismatch, std::string("the ") + peer_side(impl) +
                                             " speaks none of the DTLS versions we do (" +
                                             versions_of(impl.context->config()) + ")"};
}

// "a handshake message from the PEER arrived HOW (wolfSSL's words): altered on the way?"
FailureExplanation altered_message(const Engine::Impl& impl, const char* how, int error) {
  return {FailureKind::other, std::string("a handshake message from the ") + peer_side(impl) + " arrived " + how +
                                  " (" + std::error_code{error, wolfssl_category()}.message() + "): altered on the way?"};
}

// A failure the peer announced with a fatal alert.
FailureExplanation explain_alert(const Engine::Impl& impl, int alert) {
  const DtlsConfig& config = impl.context->config();
  const bool client = impl.role == Role::client;
  using enum record::AlertDescription;
  switch (static_cast<record::AlertDescription>(alert)) {
    case unknown_psk_identity:
      return {FailureKind::unknown_psk_identity,
              "the server does not know the pre-shared key identity '" + (config.psk ? config.psk->identity : "") + "'"};
    case bad_record_mac:
    case decrypt_error:
      if (uses_psk(config))
        return {FailureKind::psk_mismatch, "the peers' pre-shared keys differ: the " + std::string(peer_side(impl)) +
                                               " could not decrypt our Finished message"};
      break;
    case handshake_failure:
    case certificate_required:
      if (client && received(impl, record::HandshakeType::certificate_request) && !config.certificate_chain)
        return {FailureKind::certificate_required, "the server requires a client certificate, and we sent none"};
      if (client && !received(impl, record::HandshakeType::server_hello))
        return {FailureKind::no_shared_cipher,
                uses_psk(config) ? "the server accepts none of our pre-shared key cipher suites: it may accept certificates only"
                           : "the server accepts none of our cipher suites or key-exchange groups: it may offer only "
                             "pre-shared key cipher suites"};
      break;
    case bad_certificate:
    case unknown_ca:
    case certificate_expired:
      return {FailureKind::other, "the " + std::string(peer_side(impl)) + " refused our " +
                                      (config.raw_public_key ? "raw public key" : "certificate") + " (alert " +
                                      alert_name(alert) + ")"};
    case close_notify:
      return {FailureKind::peer_closed, "the " + std::string(peer_side(impl)) + " closed the session during the handshake"};
    case protocol_version:
      return version_mismatch(impl);
    default:
      break;
  }
  return {FailureKind::other, "the " + std::string(peer_side(impl)) + " aborted the handshake with alert " + alert_name(alert)};
}

}  // namespace

std::string alert_name(int description) {
  switch (description) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 100: return "no_renegotiation";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    default: return "number " + std::to_string(description);
  }
}

int record_certificate_problem(int preverified, WOLFSSL_X509_STORE_CTX* store) {
  if (!store) return preverified;
  auto* ssl = static_cast<WOLFSSL*>(wolfSSL_X509_STORE_CTX_get_ex_data(store, wolfSSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* impl = ssl ? static_cast<Engine::Impl*>(wolfSSL_GetIOReadCtx(ssl)) : nullptr;
  if (preverified) return impl ? accept_pinned_key(*impl, store) : preverified;   // (called with WOLFSSL_ALWAYS_VERIFY_CB)
  if (!impl || impl->certificate_problem) return preverified;
  CertificateProblem problem;
  problem.verify_error = wolfSSL_X509_STORE_CTX_get_error(store);
  problem.depth = wolfSSL_X509_STORE_CTX_get_error_depth(store);
  if (WOLFSSL_X509* certificate = wolfSSL_X509_STORE_CTX_get_current_cert(store)) {
    problem.subject = readable_name(wolfSSL_X509_get_subject_name(certificate));
    problem.issuer = readable_name(wolfSSL_X509_get_issuer_name(certificate));
    problem.names = certificate_names(certificate);
  }
  impl->certificate_problem = std::move(problem);
  return preverified;
}

std::string peer_certificate_names(WOLFSSL* ssl) {
  const X509Ptr certificate{wolfSSL_get_peer_certificate(ssl)};
  return certificate ? certificate_names(certificate.get()) : "no name we could read";
}

FailureExplanation explain_failure(const Engine::Impl& impl, int error) {
  const DtlsConfig& config = impl.context->config();
  WOLFSSL* ssl = impl.ssl.get();
  // What we refused ourselves comes first: the peer's answer to our alert would otherwise be taken for its cause.
  if (impl.key_refusal) return *impl.key_refusal;
#ifdef HAVE_RPK
  if (error == UNSUPPORTED_CERTIFICATE) {
    const bool we_ask = config.raw_public_key || config.pinned_peer_keys;
    return {FailureKind::certificate_type_mismatch,
            "the " + std::string(peer_side(impl)) +
                (we_ask ? " does not do raw public keys (RFC 7250), which we use: it presents a certificate"
                        : " uses raw public keys (RFC 7250), and we use certificates")};
  }
#endif
  WOLFSSL_ALERT_HISTORY alerts{};
  if (wolfSSL_get_alert_history(ssl, &alerts) == WOLFSSL_SUCCESS && alerts.last_rx.code >= 0 &&
      alerts.last_rx.level == alert_fatal)
    return explain_alert(impl, alerts.last_rx.code);
  // (wolfSSL reads the first MAX_CHAIN_DEPTH certificates of a longer chain and notes it; what fails then is the
  // last one read, whose issuer it did not read.)
  if (error == MAX_CHAIN_ERROR || wolfSSL_get_verify_result(ssl) == X509_V_ERR_CERT_CHAIN_TOO_LONG)
    return {FailureKind::untrusted_certificate,
            "the " + std::string(peer_side(impl)) + " sent a certificate chain of more than " +
                std::to_string(max_chain_certificates) + " certificates, the most this build's wolfSSL keeps"};
  switch (error) {
    case DOMAIN_NAME_MISMATCH:
    case IPADDR_MISMATCH: {
      const std::string names = impl.certificate_problem && !impl.certificate_problem->names.empty()
                                    ? impl.certificate_problem->names
                                    : peer_certificate_names(ssl);
      return {FailureKind::certificate_name_mismatch, "the server's certificate is not valid for '" +
                                                          config.expected_server_name + "': it names " + names};
    }
    case NO_PEER_CERT:
      return {FailureKind::certificate_required, "the client sent no certificate, and this server requires one"};
    case PSK_KEY_ERROR:
    case NO_CERT_ERROR:   // DTLS 1.3: an unknown identity falls back to a certificate, which a PSK server lacks
      if (impl.unknown_psk_identity)
        return {FailureKind::unknown_psk_identity,
                "the client's pre-shared key identity '" + hex::printable(*impl.unknown_psk_identity) + "' is unknown here"};
      break;
    case VERSION_ERROR:
      return version_mismatch(impl);
    case MATCH_SUITE_ERROR:
      return {FailureKind::no_shared_cipher,
              "the client offers none of the cipher suites this server accepts (" + cipher_list_for(config) + ")"};
    case WOLFSSL_ERROR_ZERO_RETURN:
      return {FailureKind::peer_closed, std::string("the ") + peer_side(impl) + " closed the session during the handshake"};
    // Handshake messages are protected only by the Finished exchange: one altered on the way shows as a
    // message that does not parse, one that arrives twice or out of order, or as Finished messages that disagree.
    case ASN_PARSE_E:
    case INCOMPLETE_DATA:
    case BUFFER_ERROR:
    case HANDSHAKE_SIZE_ERROR:
    case LENGTH_ERROR:
      return altered_message(impl, "malformed", error);
    case DUPLICATE_MSG_E:
    case OUT_OF_ORDER_E:
    case SANITY_MSG_E:
      return altered_message(impl, "twice or out of order", error);
    case VERIFY_SIGN_ERROR:
      return {FailureKind::other, std::string("the ") + peer_side(impl) +
                                      "'s key exchange signature does not verify: altered on the way, or not made "
                                      "with the certificate's key"};
    case VERIFY_FINISHED_ERROR:
      return {FailureKind::other, std::string("the ") + peer_side(impl) +
                                      "'s Finished message does not match the handshake we saw: a handshake message "
                                      "was altered on the way"};
    default:
      break;
  }
  if (auto verdict = certificate_verdict(impl)) return {FailureKind::untrusted_certificate, std::move(*verdict)};
  return {FailureKind::other, std::error_code{error, wolfssl_category()}.message()};
}

}  // namespace dgram::dtls
