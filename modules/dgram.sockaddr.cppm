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

inline SocketAddress to_socket_address(const Endpoint& endpoint) noexcept {
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

// An address of another family (or too short) gives the default Endpoint, 0.0.0.0:0.
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
    return Endpoint::ipv6(bytes, ntohs(in6.sin6_port), in6.sin6_scope_id);
  }
  return Endpoint{};
}

}  // namespace dgram::detail
