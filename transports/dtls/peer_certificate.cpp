// dgram.dtls.engine: certificates in words. Who a peer proved to be (SessionInfo::peer_certificate), and the
// names and subjects that failure messages quote. Everything here is text the peer chose: escaped for logs.
module;
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <algorithm>
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
import dgram.dtls.record;

#include "engine_impl.hpp"

namespace dgram::dtls {
namespace {

using GeneralNamesPtr = std::unique_ptr<WOLFSSL_GENERAL_NAMES, Freer<wolfSSL_GENERAL_NAMES_free>>;

std::string ip_text(std::span<const unsigned char> bytes) {
  Endpoint address;
  if (bytes.size() == 4) {
    Endpoint::Ipv4Bytes v4;
    std::copy(bytes.begin(), bytes.end(), v4.begin());
    address = Endpoint::ipv4(v4, 0);
  } else if (bytes.size() == 16) {
    Endpoint::Ipv6Bytes v6;
    std::copy(bytes.begin(), bytes.end(), v6.begin());
    address = Endpoint::ipv6(v6, 0);
  } else {
    return "?";
  }
  return address.address_string();
}

// The text of one alternative name, or nullopt for a kind not asked for.
std::optional<std::string> alternative_name(const WOLFSSL_GENERAL_NAME& name, bool every_kind) {
  WOLFSSL_ASN1_STRING* text = nullptr;
  switch (name.type) {
    case ASN_DNS_TYPE: text = name.d.dNSName; break;
    case ASN_IP_TYPE: text = name.d.iPAddress; break;
    case ASN_URI_TYPE: text = every_kind ? name.d.uniformResourceIdentifier : nullptr; break;
    case ASN_RFC822_TYPE: text = every_kind ? name.d.rfc822Name : nullptr; break;
    default: break;
  }
  if (!text) return std::nullopt;
  const auto* data = wolfSSL_ASN1_STRING_data(text);
  const int length = wolfSSL_ASN1_STRING_length(text);
  if (!data || length <= 0) return std::nullopt;
  if (name.type == ASN_IP_TYPE) return ip_text({data, static_cast<std::size_t>(length)});
  return hex::printable(std::string_view(reinterpret_cast<const char*>(data), static_cast<std::size_t>(length)));
}

}  // namespace

KeySha256 sha256_of(std::span<const unsigned char> der) {
  KeySha256 hash{};
  wc_Sha256Hash(der.data(), static_cast<word32>(der.size()), reinterpret_cast<byte*>(hash.data()));
  return hash;
}

std::string readable_name(WOLFSSL_X509_NAME* name) {
  if (!name) return "?";
  std::array<char, 512> text{};
  if (!wolfSSL_X509_NAME_oneline(name, text.data(), static_cast<int>(text.size()))) return "?";
  std::string out;
  for (const char* c = text.data(); *c; ++c) {
    if (*c != '/') {
      out += *c;
    } else if (!out.empty()) {
      out += ", ";
    }
  }
  return out.empty() ? "(empty)" : hex::printable(out);
}

std::vector<std::string> alternative_names(WOLFSSL_X509* certificate, bool every_kind) {
  std::vector<std::string> names;
  const GeneralNamesPtr alternatives{static_cast<WOLFSSL_GENERAL_NAMES*>(
      wolfSSL_X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr))};
  const int count = alternatives ? wolfSSL_sk_GENERAL_NAME_num(alternatives.get()) : 0;
  for (int i = 0; i < count; ++i) {
    const WOLFSSL_GENERAL_NAME* name = wolfSSL_sk_GENERAL_NAME_value(alternatives.get(), i);
    if (!name || !name->d.ptr) continue;
    if (auto text = alternative_name(*name, every_kind)) names.push_back(std::move(*text));
  }
  return names;
}

std::string certificate_names(WOLFSSL_X509* certificate) {
  std::string names;
  for (const std::string& name : alternative_names(certificate, false)) names += (names.empty() ? "" : ", ") + name;
  if (names.empty()) {
    std::array<char, 256> common_name{};
    if (wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(certificate), NID_commonName,
                                          common_name.data(), static_cast<int>(common_name.size())) > 0)
      names = hex::printable(common_name.data());
  }
  return names.empty() ? "no name" : names;
}

// From the peer's chain as wolfSSL keeps it with the session (SESSION_CERTS), not its peer certificate object:
// the chain is what a resumed session still has.
std::optional<std::span<const unsigned char>> peer_leaf_der(WOLFSSL* ssl) {
  WOLFSSL_X509_CHAIN* chain = wolfSSL_get_peer_chain(ssl);
  if (!chain || wolfSSL_get_chain_count(chain) < 1) return std::nullopt;
  const unsigned char* der = wolfSSL_get_chain_cert(chain, 0);
  const int size = wolfSSL_get_chain_length(chain, 0);
  if (!der || size <= 0) return std::nullopt;
  return std::span<const unsigned char>(der, static_cast<std::size_t>(size));
}

std::optional<PeerCertificate> describe_peer_certificate(WOLFSSL* ssl) {
  const auto der = peer_leaf_der(ssl);
  if (!der) return std::nullopt;
  const unsigned char* cursor = der->data();
  const X509Ptr certificate{wolfSSL_d2i_X509(nullptr, &cursor, static_cast<int>(der->size()))};
  if (!certificate) return std::nullopt;
  PeerCertificate described;
  described.subject = readable_name(wolfSSL_X509_get_subject_name(certificate.get()));
  described.issuer = readable_name(wolfSSL_X509_get_issuer_name(certificate.get()));
  described.names = alternative_names(certificate.get(), true);
  described.sha256 = hex::of(sha256_of(*der));
  return described;
}

}  // namespace dgram::dtls
