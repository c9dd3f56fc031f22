// What nodes of a cluster send each other on their cluster ports: a client's record for the node that owns its
// session, or that node's reply for the client, sent back through the node the client came in by. Included in
// server_endpoint.cpp's module purview (it uses Endpoint); shared_keys.hpp is in its global module fragment.
//
//   0  "dgc1"                  magic and version
//   4  kind                    1: a client's record for the owner; 2: the owner's datagram for the client
//   5  sending node            2 bytes, big-endian
//   7  client address family   4 or 6
//   8  client port             2 bytes, big-endian
//  10  client address          16 bytes (IPv4 in the first 4)
//  26  the datagram
// end  MAC                     16 bytes: HMAC-SHA256 of all before it, under a key derived from the cluster's
//                              shared secret, cut to 16 bytes
//
// The MAC is what makes the client's address in the header trustworthy: without it anyone who reaches a cluster
// port could make a node deliver into a session "from" any address and send its replies there. A forward sent
// again is harmless: DTLS drops the record as a replay, and a reply sent again is a copy the client's DTLS drops.
// No period in the key: forwards live for a moment, and a rotation would drop those in flight.

namespace dgram::dtls::forward {

enum class Kind : std::uint8_t { record = 1, reply = 2 };

inline constexpr std::array<std::byte, 4> magic{std::byte{'d'}, std::byte{'g'}, std::byte{'c'}, std::byte{'1'}};
inline constexpr std::size_t header_size = 26;
inline constexpr std::size_t mac_size = 16;
inline constexpr std::size_t overhead = header_size + mac_size;

struct Opened {
  Kind kind{Kind::record};
  std::uint32_t from_node{0};
  Endpoint client;
  std::span<const std::byte> datagram;
};

inline detail::Key256 key_from(const SharedKeys& keys) { return detail::derive_key(keys.secret, "forward", 0); }

// Writes the sealed forward of `datagram` into `out` (reusing its capacity). False when the MAC could not be made.
inline bool seal(std::vector<std::byte>& out, const detail::Key256& key, Kind kind, std::uint32_t from_node,
                 const Endpoint& client, std::span<const std::byte> datagram) {
  out.assign(header_size, std::byte{0});
  std::copy(magic.begin(), magic.end(), out.begin());
  out[4] = static_cast<std::byte>(kind);
  out[5] = static_cast<std::byte>(from_node >> 8 & 0xff);
  out[6] = static_cast<std::byte>(from_node & 0xff);
  out[7] = static_cast<std::byte>(client.family() == Family::ipv4 ? 4 : 6);
  out[8] = static_cast<std::byte>(client.port() >> 8);
  out[9] = static_cast<std::byte>(client.port() & 0xff);
  const auto address = client.address_bytes();
  std::memcpy(out.data() + 10, address.data(), address.size());
  out.insert(out.end(), datagram.begin(), datagram.end());
  const std::span<const std::byte> parts[] = {out};
  const auto tag = detail::mac(key, parts);
  if (!tag) return false;
  out.insert(out.end(), tag->begin(), tag->end());
  return true;
}

// The forward in `packet` when its MAC verifies and its header is well-formed; nullopt otherwise.
inline std::optional<Opened> open(const detail::Key256& key, std::span<const std::byte> packet) {
  if (packet.size() <= overhead || !std::equal(magic.begin(), magic.end(), packet.begin())) return std::nullopt;
  const auto body = packet.first(packet.size() - mac_size);
  const std::span<const std::byte> parts[] = {body};
  const auto tag = detail::mac(key, parts);
  if (!tag || !detail::same_bytes(*tag, packet.last(mac_size))) return std::nullopt;
  const auto byte_at = [&](std::size_t at) { return std::to_integer<std::uint32_t>(packet[at]); };
  const std::uint32_t kind = byte_at(4);
  const std::uint32_t family = byte_at(7);
  if ((kind != 1 && kind != 2) || (family != 4 && family != 6)) return std::nullopt;
  const auto port = static_cast<std::uint16_t>(byte_at(8) << 8 | byte_at(9));
  Endpoint client;
  if (family == 4) {
    Endpoint::Ipv4Bytes address{};
    std::memcpy(address.data(), packet.data() + 10, address.size());
    client = Endpoint::ipv4(address, port);
  } else {
    Endpoint::Ipv6Bytes address{};
    std::memcpy(address.data(), packet.data() + 10, address.size());
    client = Endpoint::ipv6(address, port);
  }
  return Opened{static_cast<Kind>(kind), byte_at(5) << 8 | byte_at(6), client, body.subspan(header_size)};
}

}  // namespace dgram::dtls::forward
