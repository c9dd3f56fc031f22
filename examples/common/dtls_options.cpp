#include "dtls_options.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

import dgram;

namespace dgram::examples {
namespace {

// This build's cipher suites, wrapped under the option's help text.
std::string available_suites_help() {
  std::string text = "this build has:";
  std::size_t line = 72;   // the suites start on a line of their own
  for (const std::string& suite : dtls::available_cipher_suites()) {
    if (line + suite.size() + 1 > 72) {
      text += "\n" + std::string(29, ' ');
      line = 0;
    } else {
      text += ' ';
      ++line;
    }
    text += suite;
    line += suite.size();
  }
  return text;
}

}  // namespace

std::vector<Option> dtls_options(dtls::Role role) {
  const bool server = role == dtls::Role::server;
  std::vector<Option> options{
      {"cert", "FILE", server ? "certificate chain (PEM), leaf first" : "client certificate chain (PEM), if the server asks"},
      {"key", "FILE", "private key (PEM) of --cert"},
      {"ca", "FILE", server ? "CA (PEM) that signs client certificates" : "CA (PEM) that signs the server's certificate"},
      {"psk-identity", "ID", "pre-shared key identity (with --psk-hex; replaces certificates)"},
      {"psk-hex", "KEY", "pre-shared key as hex digits"},
      {"ciphers", "LIST", "cipher suites, preferred first, ':'-separated (wolfSSL or IANA names); " + available_suites_help()},
      {"coap", "", "the CoAP/LwM2M cipher profile: AES-128-CCM-8 first, then CCM and GCM (RFC 7252)"},
      {"raw-key", "", server ? "present the bare public key of --key instead of a certificate (RFC 7250); clients are "
                               "authenticated only with --pinned-keys"
                             : "present the bare public key of --key (RFC 7250), for a server that pins clients"},
      {"pinned-keys", "FILE", server ? "accept only clients with one of these raw public keys (PEM PUBLIC KEY blocks or SHA-256 fingerprints)"
                                     : "accept only a server with one of these raw public keys (PEM PUBLIC KEY blocks or SHA-256 fingerprints)"},
      {"dtls", "VERSION", fmt::format("1.2|1.3|any: the DTLS version (any: 1.3 preferred, 1.2 accepted; default 1.2). "
                                      "This build's wolfSSL {} {} DTLS 1.3", dtls::wolfssl_version(),
                                      dtls::dtls13_available() ? "has" : "has no")},
      {"cid", "", server ? "give sessions a Connection ID (DTLS 1.3, and 1.2 by RFC 9146): a client whose address "
                           "changes keeps its session"
                         : "ask for a Connection ID (DTLS 1.3 or 1.2): the session survives our address changing"},
      {"srtp", "PROFILES", server ? "DTLS-SRTP: accept these SRTP protection profiles (':'-separated: "
                                    "SRTP_AEAD_AES_128_GCM, SRTP_AEAD_AES_256_GCM, SRTP_AES128_CM_SHA1_80, "
                                    "SRTP_AES128_CM_SHA1_32); the session line names the one chosen"
                                  : "DTLS-SRTP: offer these SRTP protection profiles (as the server's --srtp)"},
      {"groups", "LIST", "key-exchange groups, preferred first, ':'-separated: X25519MLKEM768 and "
                         "SecP256r1MLKEM768 (post-quantum hybrids, DTLS 1.3 only), X25519, P-256, P-384, P-521 "
                         "(default X25519:P-256)"},
  };
  if (server) {
    options.push_back({"psk-file", "FILE", "pre-shared keys of many clients, one 'identity:hexkey' line each; "
                                           "reloaded on SIGHUP (a bad file keeps the keys loaded)"});
    options.push_back({"require-client-cert", "", "refuse clients without a certificate signed by --ca"});
    options.push_back({"resume-without-cookie", "", "DTLS 1.3: answer a hello with a known ticket or pre-shared key at "
                                                    "once, without the cookie round trip: faster resumption, but a "
                                                    "ticket holder can then make the server work for spoofed addresses"});
    options.push_back({"psk-ke", "", "DTLS 1.3: handshakes keyed by a ticket or a pre-shared key skip the fresh "
                                     "(EC)DHE key exchange (psk_ke only): faster, no forward secrecy for them"});
  } else {
    options.push_back({"psk-ke", "", "DTLS 1.3: offer to key a resumption (--resume) or a --psk-identity session by "
                                     "the key alone (psk_ke): faster with a server that takes it, no forward "
                                     "secrecy for that session"});
    options.push_back({"server-name", "NAME", "name or address the server's certificate must carry (default: --host)"});
    options.push_back({"no-tickets", "", "resume by session ID only (no session tickets)"});
  }
  return options;
}

namespace {

dtls::Version version_from(const CommandLine& command_line) {
  const std::string version = command_line.value_or("dtls", "1.2");
  if (version == "1.2") return dtls::Version::dtls1_2;
  if (version == "1.3") return dtls::Version::dtls1_3;
  if (version == "any") return dtls::Version::any;
  throw UsageError(fmt::format("--dtls '{}': say 1.2, 1.3 or any", version));
}

std::vector<dtls::Group> groups_from(const std::string& list) {
  if (list.empty()) throw UsageError("--groups is empty: name at least one group (default X25519:P-256)");
  std::vector<dtls::Group> groups;
  for (std::size_t at = 0; at <= list.size();) {
    const std::size_t end = std::min(list.find(':', at), list.size());
    const std::string name = list.substr(at, end - at);
    const auto group = dtls::group_named(name);
    if (!group)
      throw UsageError(fmt::format("--groups: '{}' is not a group this program knows (X25519MLKEM768, "
                                   "SecP256r1MLKEM768, X25519, P-256, P-384, P-521)", name));
    groups.push_back(*group);
    at = end + 1;
  }
  return groups;
}

// Options that change only DTLS 1.3 handshakes do nothing on a DTLS 1.2 session: said rather than ignored.
void refuse_dtls13_only_options(const CommandLine& command_line, dtls::Version version) {
  for (const char* option : {"resume-without-cookie", "psk-ke"}) {
    if (!command_line.flag(option)) continue;
    if (!dtls::dtls13_available())
      throw UsageError(fmt::format("--{} changes DTLS 1.3 handshakes, and this build's wolfSSL {} has no DTLS 1.3",
                                   option, dtls::wolfssl_version()));
    if (version == dtls::Version::dtls1_2)
      throw UsageError(fmt::format("--{} changes DTLS 1.3 handshakes: give --dtls 1.3 or any", option));
  }
}

}  // namespace

dtls::DtlsConfig dtls_config_from(const CommandLine& command_line, dtls::Role role) {
  dtls::DtlsConfig config;
  config.role = role;
  config.version = version_from(command_line);
  config.connection_id = command_line.flag("cid");
  if (const auto groups = command_line.value("groups")) config.groups = groups_from(*groups);
  config.srtp_profiles = command_line.value_or("srtp", "");
  const auto cert = command_line.value("cert");
  const auto key = command_line.value("key");
  config.raw_public_key = command_line.flag("raw-key");
  if (config.raw_public_key) {
    if (!key) throw UsageError("--raw-key presents the public half of --key: give --key");
    if (cert) throw UsageError("--raw-key takes the place of --cert: give one of them");
    config.private_key = dtls::Pem::file(*key);
  } else if (cert.has_value() != key.has_value()) {
    throw UsageError("--cert and --key go together");
  }
  if (cert) {
    config.certificate_chain = dtls::Pem::file(*cert);
    config.private_key = dtls::Pem::file(*key);
  }
  if (const auto pinned = command_line.value("pinned-keys")) config.pinned_peer_keys = dtls::Pem::file(*pinned);
  if (const auto ca = command_line.value("ca")) config.trusted_authorities.push_back(dtls::Pem::file(*ca));
  const auto identity = command_line.value("psk-identity");
  const auto psk_hex = command_line.value("psk-hex");
  if (identity.has_value() != psk_hex.has_value()) throw UsageError("--psk-identity and --psk-hex go together");
  if (identity) {
    const auto key_bytes = parse_hex(*psk_hex, "--psk-hex");
    if (key_bytes.empty()) throw UsageError("--psk-hex: the key is empty");
    config.psk = dtls::PreSharedKey{*identity, key_bytes};
  }
  if (const auto ciphers = command_line.value("ciphers")) {
    if (command_line.flag("coap")) throw UsageError("--ciphers and --coap both choose the cipher suites: give one");
    // ':' as wolfSSL and OpenSSL write lists; ',' and blanks taken too (IANA names are often listed that way).
    std::string list = *ciphers;
    std::replace_if(list.begin(), list.end(), [](char c) { return c == ',' || c == ' ' || c == '\t'; }, ':');
    if (list.find_first_not_of(':') == std::string::npos) throw UsageError("--ciphers: the list is empty");
    config.cipher_list = list;
  }
  if (command_line.flag("coap")) config.cipher_profile = dtls::CipherProfile::coap;
  const bool psk_file = role == dtls::Role::server && command_line.value("psk-file").has_value();
  config.psk_forward_secrecy = !command_line.flag("psk-ke");
  refuse_dtls13_only_options(command_line, config.version);
  if (role == dtls::Role::server) {
    config.require_peer_certificate = command_line.flag("require-client-cert");
    config.resumption_skips_cookie = command_line.flag("resume-without-cookie");
    config.verify_peer = config.require_peer_certificate || !config.trusted_authorities.empty();
    if (config.require_peer_certificate && config.trusted_authorities.empty())
      throw UsageError("--require-client-cert needs --ca to check client certificates with");
    if (!cert && !config.raw_public_key && !identity && !psk_file)
      throw UsageError("a server needs --cert and --key, --raw-key and --key, --psk-file, or --psk-identity and --psk-hex");
  } else {
    config.verify_peer = !identity;
    config.session_tickets = !command_line.flag("no-tickets");
    config.expected_server_name = command_line.value_or("server-name", command_line.value_or("host", "127.0.0.1"));
    if (!identity && config.trusted_authorities.empty() && !config.pinned_peer_keys)
      throw UsageError("a client needs --ca to verify the server (or --pinned-keys, or --psk-identity and --psk-hex)");
  }
  return config;
}

std::shared_ptr<dtls::DtlsContext> make_dtls_context(const dtls::DtlsConfig& config) {
  std::error_code ec;
  std::string reason;
  auto context = dtls::DtlsContext::create(config, ec, &reason);
  if (!context) throw std::runtime_error(reason);
  return context;
}

}  // namespace dgram::examples
