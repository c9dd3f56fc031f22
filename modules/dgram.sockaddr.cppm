// dgram.sockaddr: conversions between Endpoint and the C socket address structs.
//
// Internal to dgram (the umbrella does not re-export it): only the parts that call the socket API need it.
// The conversions are inline because they sit on the per-datagram path of batch receives.
module;
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
export module dgram.sockaddr;

import dgram.endpoint;

export namespace dgram::detail {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length{0};

  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
};

inline int address_family(Family family) noexcept { return family == Family::ipv4 ? AF_INET : AF_INET6; }

// `socket_family` is the family of the socket the address is for: an IPv4 endpoint for an IPv6 (dual-stack)
// socket becomes its IPv4-mapped IPv6 form, ::ffff:a.b.c.d.
inline SocketAddress to_socket_address(const Endpoint& endpoint, Family socket_family) noexcept {
  if (endpoint.family() == Family::ipv4 && socket_family == Family::ipv6) {
    Endpoint::Ipv6Bytes mapped{};
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    std::memcpy(mapped.data() + 12, endpoint.address_bytes().data(), 4);
    return to_socket_address(Endpoint::ipv6(mapped, endpoint.port()), Family::ipv6);
  }
  SocketAddress out;
  if (endpoint.family() == Family::ipv4) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(endpoint.port());
    std::memcpy(&in.sin_addr, endpoint.address_bytes().data(), 4);
    std::memcpy(&out.storage, &in, sizeof in);
    out.length = sizeof in;
  } else {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(endpoint.port());
    in6.sin6_scope_id = endpoint.scope_id();
    std::memcpy(&in6.sin6_addr, endpoint.address_bytes().data(), 16);
    std::memcpy(&out.storage, &in6, sizeof in6);
    out.length = sizeof in6;
  }
  return out;
}

inline SocketAddress to_socket_address(const Endpoint& endpoint) noexcept {
  return to_socket_address(endpoint, endpoint.family());
}

// An address of another family (or too short) gives the default Endpoint, 0.0.0.0:0. An IPv4-mapped IPv6
// address (an IPv4 peer of a dual-stack socket) gives the IPv4 endpoint, so a peer has one name whichever
// socket it reached.
inline Endpoint from_socket_address(const sockaddr* address, socklen_t length) noexcept {
  if (address->sa_family == AF_INET && length >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in;
    std::memcpy(&in, address, sizeof in);
    Endpoint::Ipv4Bytes bytes;
    std::memcpy(bytes.data(), &in.sin_addr, 4);
    return Endpoint::ipv4(bytes, ntohs(in.sin_port));
  }
  if (address->sa_family == AF_INET6 && length >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 in6;
    std::memcpy(&in6, address, sizeof in6);
    Endpoint::Ipv6Bytes bytes;
    std::memcpy(bytes.data(), &in6.sin6_addr, 16);
    constexpr std::uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes.data(), v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
      Endpoint::Ipv4Bytes v4;
      std::memcpy(v4.data(), bytes.data() + 12, 4);
      return Endpoint::ipv4(v4, ntohs(in6.sin6_port));
    }
    return Endpoint::ipv6(bytes, ntohs(in6.sin6_port), in6.sin6_scope_id);
  }
  return Endpoint{};
}

}  // namespace dgram::detail
