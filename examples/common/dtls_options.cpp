#include "dtls_options.hpp"

#include <fmt/core.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

import dgram;

namespace dgram::examples {

std::vector<Option> dtls_options(dtls::Role role) {
  const bool server = role == dtls::Role::server;
  std::vector<Option> options{
      {"cert", "FILE", server ? "certificate chain (PEM), leaf first" : "client certificate chain (PEM), if the server asks"},
      {"key", "FILE", "private key (PEM) of --cert"},
      {"ca", "FILE", server ? "CA (PEM) that signs client certificates" : "CA (PEM) that signs the server's certificate"},
      {"psk-identity", "ID", "pre-shared key identity (with --psk-hex; replaces certificates)"},
      {"psk-hex", "KEY", "pre-shared key as hex digits"},
      {"dtls", "VERSION", fmt::format("1.2|1.3|any: the DTLS version (any: 1.3 preferred, 1.2 accepted; default 1.2). "
                                      "This build's wolfSSL {} {} DTLS 1.3", dtls::wolfssl_version(),
                                      dtls::dtls13_available() ? "has" : "has no")},
      {"cid", "", server ? "give DTLS 1.3 sessions a Connection ID: a client whose address changes keeps its session"
                         : "ask for a DTLS 1.3 Connection ID: the session survives our address changing"},
  };
  if (server) {
    options.push_back({"require-client-cert", "", "refuse clients without a certificate signed by --ca"});
  } else {
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

}  // namespace

dtls::DtlsConfig dtls_config_from(const CommandLine& command_line, dtls::Role role) {
  dtls::DtlsConfig config;
  config.role = role;
  config.version = version_from(command_line);
  config.connection_id = command_line.flag("cid");
  if (config.connection_id && config.version == dtls::Version::dtls1_2)
    throw UsageError("--cid needs --dtls 1.3 or any (Connection IDs are a DTLS 1.3 feature here)");
  const auto cert = command_line.value("cert");
  const auto key = command_line.value("key");
  if (cert.has_value() != key.has_value()) throw UsageError("--cert and --key go together");
  if (cert) {
    config.certificate_chain = dtls::Pem::file(*cert);
    config.private_key = dtls::Pem::file(*key);
  }
  if (const auto ca = command_line.value("ca")) config.trusted_authorities.push_back(dtls::Pem::file(*ca));
  const auto identity = command_line.value("psk-identity");
  const auto psk_hex = command_line.value("psk-hex");
  if (identity.has_value() != psk_hex.has_value()) throw UsageError("--psk-identity and --psk-hex go together");
  if (identity) {
    const auto key_bytes = parse_hex(*psk_hex, "--psk-hex");
    if (key_bytes.empty()) throw UsageError("--psk-hex: the key is empty");
    config.psk = dtls::PreSharedKey{*identity, key_bytes};
  }
  if (role == dtls::Role::server) {
    config.require_peer_certificate = command_line.flag("require-client-cert");
    config.verify_peer = config.require_peer_certificate || !config.trusted_authorities.empty();
    if (config.require_peer_certificate && config.trusted_authorities.empty())
      throw UsageError("--require-client-cert needs --ca to check client certificates with");
    if (!cert && !identity) throw UsageError("a server needs --cert and --key, or --psk-identity and --psk-hex");
  } else {
    config.verify_peer = !identity;
    config.session_tickets = !command_line.flag("no-tickets");
    config.expected_server_name = command_line.value_or("server-name", command_line.value_or("host", "127.0.0.1"));
    if (!identity && config.trusted_authorities.empty())
      throw UsageError("a client needs --ca to verify the server (or --psk-identity and --psk-hex)");
  }
  return config;
}

std::string describe_session(const dtls::Engine& engine) {
  return fmt::format("{}, cipher {}, resumed {}, CID {}", engine.version(), engine.cipher(),
                     engine.resumed() ? "yes" : "no", engine.connection_id_in_use() ? "on" : "off");
}

std::shared_ptr<dtls::DtlsContext> make_dtls_context(const dtls::DtlsConfig& config) {
  std::error_code ec;
  std::string reason;
  auto context = dtls::DtlsContext::create(config, ec, &reason);
  if (!context) throw std::runtime_error(reason);
  return context;
}

}  // namespace dgram::examples
