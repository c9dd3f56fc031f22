// dgram.dtls.engine: sessions and failures in words, for programs' logs.
module;
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "hex.hpp"
module dgram.dtls.engine;

namespace dgram::dtls {

std::string identity_of(const SessionInfo& session) {
  if (session.peer_certificate) {
    const PeerCertificate& certificate = *session.peer_certificate;
    std::string names;
    for (const std::string& name : certificate.names) names += (names.empty() ? "" : ", ") + name;
    return "certificate " + certificate.subject + (names.empty() ? "" : " [" + names + "]") + " (SHA-256 " +
           certificate.sha256.substr(0, 16) + "...)";
  }
  if (!session.psk_identity.empty()) return "PSK identity " + hex::printable(session.psk_identity);
  if (!session.peer_key_sha256.empty()) return "raw key SHA-256 " + session.peer_key_sha256;
  // A DTLS 1.2 PSK session resumed on a server that also has a certificate: wolfSSL's session does not keep the
  // identity. (Its suite names the key exchange; a DTLS 1.3 suite does not, and says nothing here.)
  if (session.resumed && session.cipher.find("PSK") != std::string::npos) return "PSK session resumed, identity not kept";
  return "not authenticated";
}

std::string to_string(const SessionInfo& session) {
  return session.version + ", cipher " + session.cipher + ", resumed " + (session.resumed ? "yes" : "no") +
         ", CID " + (session.connection_id ? "on" : "off") + ", " + identity_of(session) +
         (session.key_exchange.empty() ? "" : ", key exchange " + session.key_exchange) +
         (session.srtp_profile.empty() ? "" : ", SRTP " + session.srtp_profile);
}

std::string to_string(FailureKind kind) {
  switch (kind) {
    case FailureKind::none: return "no failure";
    case FailureKind::untrusted_certificate: return "untrusted certificate";
    case FailureKind::certificate_name_mismatch: return "certificate name mismatch";
    case FailureKind::certificate_required: return "certificate required";
    case FailureKind::unknown_psk_identity: return "unknown PSK identity";
    case FailureKind::psk_mismatch: return "pre-shared key mismatch";
    case FailureKind::no_shared_cipher: return "no shared cipher";
    case FailureKind::unpinned_key: return "raw public key not pinned";
    case FailureKind::certificate_type_mismatch: return "certificate type mismatch";
    case FailureKind::version_mismatch: return "version mismatch";
    case FailureKind::peer_closed: return "closed by the peer";
    case FailureKind::timed_out: return "timed out";
    case FailureKind::crowded_out: return "crowded out";
    case FailureKind::other: return "other failure";
  }
  return "unknown failure";
}

std::string to_string(EngineState state) {
  switch (state) {
    case EngineState::handshaking: return "handshaking";
    case EngineState::established: return "established";
    case EngineState::closed: return "closed";
    case EngineState::failed: return "failed";
  }
  return "unknown state";
}

}  // namespace dgram::dtls
