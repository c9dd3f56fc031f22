// Implementation of dgram.endpoint: numeric parsing with inet_pton, formatting with inet_ntop, resolution
// with getaddrinfo.
module;
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>
module dgram.endpoint;

import dgram.error;
import dgram.sockaddr;

namespace dgram {
namespace {

bool fail(std::error_code& ec, std::string* reason, std::string why) {
  ec = make_error_code(errc::invalid_endpoint);
  if (reason) *reason = std::move(why);
  return false;
}

bool parse_port(std::string_view text, std::uint16_t& port, std::error_code& ec, std::string* reason) {
  if (text.empty()) return fail(ec, reason, "missing port after ':'");
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }) || text.size() > 5)
    return fail(ec, reason, "port '" + std::string(text) + "' is not a number in range 0-65535");
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) return fail(ec, reason, "port " + std::string(text) + " is out of range 0-65535");
  port = static_cast<std::uint16_t>(value);
  return true;
}

// Scope: a number ("%2") or an interface name ("%lo").
bool parse_scope(std::string_view text, std::uint32_t& scope, std::error_code& ec, std::string* reason) {
  std::uint32_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc{} && end == text.data() + text.size()) {
    scope = value;
    return true;
  }
  const unsigned index = ::if_nametoindex(std::string(text).c_str());
  if (index == 0) return fail(ec, reason, "unknown interface '" + std::string(text) + "' in IPv6 scope");
  scope = index;
  return true;
}

bool parse_address(std::string_view text, std::uint16_t port, Endpoint& out, std::error_code& ec,
                   std::string* reason) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty()) return fail(ec, reason, "missing address");
  if (text.size() > INET6_ADDRSTRLEN + IF_NAMESIZE) return fail(ec, reason, "address is too long");
  const std::string_view::size_type percent = text.find('%');
  const std::string address(text.substr(0, percent));
  std::array<std::uint8_t, 4> v4{};
  if (percent == std::string_view::npos && ::inet_pton(AF_INET, address.c_str(), v4.data()) == 1) {
    out = Endpoint::ipv4(v4, port);
    return true;
  }
  std::array<std::uint8_t, 16> v6{};
  if (::inet_pton(AF_INET6, address.c_str(), v6.data()) != 1)
    return fail(ec, reason, "'" + std::string(text) + "' is not a numeric IPv4 or IPv6 address");
  std::uint32_t scope = 0;
  if (percent != std::string_view::npos && !parse_scope(text.substr(percent + 1), scope, ec, reason))
    return false;
  out = Endpoint::ipv6(v6, port, scope);
  return true;
}

}  // namespace

Endpoint Endpoint::ipv4(Ipv4Bytes address, std::uint16_t port) noexcept {
  Endpoint e;
  std::copy(address.begin(), address.end(), e.bytes_.begin());
  e.port_ = port;
  e.family_ = Family::ipv4;
  return e;
}

Endpoint Endpoint::ipv6(const Ipv6Bytes& address, std::uint16_t port, std::uint32_t scope_id) noexcept {
  Endpoint e;
  e.bytes_ = address;
  e.port_ = port;
  e.scope_id_ = scope_id;
  e.family_ = Family::ipv6;
  return e;
}

Endpoint Endpoint::loopback(Family family, std::uint16_t port) noexcept {
  if (family == Family::ipv4) return ipv4({127, 0, 0, 1}, port);
  Ipv6Bytes one{};
  one[15] = 1;
  return ipv6(one, port);
}

Endpoint Endpoint::any(Family family, std::uint16_t port) noexcept {
  return family == Family::ipv4 ? ipv4({}, port) : ipv6({}, port);
}

Endpoint Endpoint::parse(std::string_view text, std::error_code& ec, std::string* reason) {
  ec.clear();
  Endpoint out;
  if (text.empty()) {
    fail(ec, reason, "empty endpoint (expected ADDR:PORT or [ADDR]:PORT)");
    return out;
  }
  std::string_view address;
  std::string_view port_text;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      fail(ec, reason, "missing ']' after the IPv6 address");
      return out;
    }
    address = text.substr(0, close + 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      fail(ec, reason, "missing ':PORT' after ']'");
      return out;
    }
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      fail(ec, reason, "missing ':PORT'");
      return out;
    }
    if (text.find(':') != colon) {
      fail(ec, reason, "an IPv6 address needs brackets: [ADDR]:PORT");
      return out;
    }
    address = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  std::uint16_t port = 0;
  if (!parse_port(port_text, port, ec, reason)) return out;
  Endpoint parsed;
  if (!parse_address(address, port, parsed, ec, reason)) return out;
  if (address.front() == '[' && parsed.family() == Family::ipv4) {
    fail(ec, reason, "brackets are for IPv6 addresses only");
    return out;
  }
  return parsed;
}

Endpoint Endpoint::parse(std::string_view text) {
  std::error_code ec;
  std::string reason;
  Endpoint e = parse(text, ec, &reason);
  if (ec) throw std::system_error(ec, "'" + std::string(text) + "': " + reason);
  return e;
}

Endpoint Endpoint::from_address(std::string_view address, std::uint16_t port, std::error_code& ec) {
  ec.clear();
  Endpoint out;
  parse_address(address, port, out, ec, nullptr);
  return out;
}

std::span<const std::uint8_t> Endpoint::address_bytes() const noexcept {
  return {bytes_.data(), family_ == Family::ipv4 ? 4u : 16u};
}

Endpoint Endpoint::with_port(std::uint16_t port) const noexcept {
  Endpoint e = *this;
  e.port_ = port;
  return e;
}

bool Endpoint::is_loopback() const noexcept {
  if (family_ == Family::ipv4) return bytes_[0] == 127;
  return *this == loopback(Family::ipv6, port_);
}

std::string Endpoint::address_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family_ == Family::ipv4 ? AF_INET : AF_INET6, bytes_.data(), text, sizeof text);
  std::string out = text;
  if (family_ == Family::ipv6 && scope_id_ != 0) out += "%" + std::to_string(scope_id_);
  return out;
}

std::string Endpoint::to_string() const {
  const std::string port = ":" + std::to_string(port_);
  return family_ == Family::ipv4 ? address_string() + port : "[" + address_string() + "]" + port;
}

std::size_t EndpointHash::operator()(const Endpoint& endpoint) const noexcept {
  // FNV-1a over the address, port and family: cheap, and spreads consecutive ports and addresses well.
  std::uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](std::uint64_t byte) { hash = (hash ^ byte) * 1099511628211ull; };
  for (std::uint8_t byte : endpoint.address_bytes()) mix(byte);
  mix(endpoint.port() & 0xffu);
  mix(endpoint.port() >> 8);
  mix(static_cast<std::uint8_t>(endpoint.family()));
  mix(endpoint.scope_id());
  return static_cast<std::size_t>(hash);
}

std::vector<Endpoint> resolve(std::string_view host, std::uint16_t port, std::error_code& ec,
                              std::string* reason) {
  ec.clear();
  std::vector<Endpoint> found;
  // A numeric address (with or without brackets) needs no resolver.
  if (Endpoint numeric = Endpoint::from_address(host, port, ec); !ec) return {numeric};
  ec.clear();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  const int status = ::getaddrinfo(std::string(host).c_str(), nullptr, &hints, &list);
  if (status != 0) {
    ec = make_error_code(errc::resolve_failed);
    if (reason) *reason = ::gai_strerror(status);
    return found;
  }
  for (const addrinfo* info = list; info; info = info->ai_next) {
    if (info->ai_family != AF_INET && info->ai_family != AF_INET6) continue;
    const Endpoint e = detail::from_socket_address(info->ai_addr, info->ai_addrlen).with_port(port);
    if (std::find(found.begin(), found.end(), e) == found.end()) found.push_back(e);
  }
  ::freeaddrinfo(list);
  if (found.empty()) {
    ec = make_error_code(errc::resolve_failed);
    if (reason) *reason = "no IPv4 or IPv6 address";
  }
  return found;
}

}  // namespace dgram
