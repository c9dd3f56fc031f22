// dgram.checksum: the one's-complement sum of RFC 1071 and the UDP checksum (RFC 768, RFC 8200).
//
// Everything here is constexpr and allocation-free, so it is checked at compile time as well as at run time.
// Words are big-endian (network order), as on the wire. Data may be fed in pieces of any length, odd ones
// included: a piece that ends mid-word continues the word in the next piece.
module;
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
export module dgram.checksum;

export namespace dgram {

class OnesComplementSum {
 public:
  constexpr OnesComplementSum& add(std::span<const std::byte> data) noexcept {
    for (std::byte b : data) {
      const auto value = static_cast<std::uint32_t>(b);
      accumulator_ += odd_ ? value : value << 8;
      odd_ = !odd_;
      if (accumulator_ >= 0x8000'0000u) fold();   // keep headroom; folding early does not change the sum
    }
    return *this;
  }

  // Adds one 16-bit word. Only valid at an even position (after whole words).
  constexpr OnesComplementSum& add_word(std::uint16_t word) noexcept {
    accumulator_ += word;
    if (accumulator_ >= 0x8000'0000u) fold();
    return *this;
  }

  // The 16-bit one's-complement sum of everything added so far (0 for nothing).
  constexpr std::uint16_t sum() const noexcept {
    std::uint32_t folded = accumulator_;
    while (folded > 0xffffu) folded = (folded & 0xffffu) + (folded >> 16);
    return static_cast<std::uint16_t>(folded);
  }

  // The Internet checksum: the complement of the sum.
  constexpr std::uint16_t checksum() const noexcept { return static_cast<std::uint16_t>(~sum()); }

 private:
  constexpr void fold() noexcept { accumulator_ = (accumulator_ & 0xffffu) + (accumulator_ >> 16); }

  std::uint32_t accumulator_{0};
  bool odd_{false};
};

constexpr std::uint16_t ones_complement_sum(std::span<const std::byte> data) noexcept {
  return OnesComplementSum{}.add(data).sum();
}

// RFC 1071: the checksum of `00 01 f2 03 f4 f5 f6 f7` is 0x220d.
constexpr std::uint16_t internet_checksum(std::span<const std::byte> data) noexcept {
  return OnesComplementSum{}.add(data).checksum();
}

// The largest UDP payload whose length fits the 16-bit UDP length field.
inline constexpr std::size_t max_udp_payload = 65535 - 8;

// UDP checksum with the IPv4 pseudo-header (RFC 768). A computed 0 is returned as 0xffff, because 0 on the
// wire means "no checksum". Precondition: payload.size() <= max_udp_payload.
constexpr std::uint16_t udp_checksum_ipv4(const std::array<std::uint8_t, 4>& source,
                                          const std::array<std::uint8_t, 4>& destination,
                                          std::uint16_t source_port, std::uint16_t destination_port,
                                          std::span<const std::byte> payload) noexcept;

// UDP checksum with the IPv6 pseudo-header (RFC 8200 section 8.1); 0 is returned as 0xffff as above.
constexpr std::uint16_t udp_checksum_ipv6(const std::array<std::uint8_t, 16>& source,
                                          const std::array<std::uint8_t, 16>& destination,
                                          std::uint16_t source_port, std::uint16_t destination_port,
                                          std::span<const std::byte> payload) noexcept;

}  // namespace dgram

namespace dgram {

template <std::size_t N>
constexpr void add_address(OnesComplementSum& sum, const std::array<std::uint8_t, N>& address) noexcept {
  for (std::size_t i = 0; i < N; i += 2)
    sum.add_word(static_cast<std::uint16_t>(address[i] << 8 | address[i + 1]));
}

constexpr std::uint16_t finish_udp(OnesComplementSum& sum, std::uint16_t source_port,
                                   std::uint16_t destination_port, std::span<const std::byte> payload) noexcept {
  const auto udp_length = static_cast<std::uint16_t>(8 + payload.size());
  sum.add_word(source_port).add_word(destination_port).add_word(udp_length).add_word(0).add(payload);
  const std::uint16_t checksum = sum.checksum();
  return checksum == 0 ? std::uint16_t{0xffff} : checksum;
}

constexpr std::uint16_t udp_checksum_ipv4(const std::array<std::uint8_t, 4>& source,
                                          const std::array<std::uint8_t, 4>& destination,
                                          std::uint16_t source_port, std::uint16_t destination_port,
                                          std::span<const std::byte> payload) noexcept {
  OnesComplementSum sum;
  add_address(sum, source);
  add_address(sum, destination);
  sum.add_word(17).add_word(static_cast<std::uint16_t>(8 + payload.size()));   // zero, protocol, UDP length
  return finish_udp(sum, source_port, destination_port, payload);
}

constexpr std::uint16_t udp_checksum_ipv6(const std::array<std::uint8_t, 16>& source,
                                          const std::array<std::uint8_t, 16>& destination,
                                          std::uint16_t source_port, std::uint16_t destination_port,
                                          std::span<const std::byte> payload) noexcept {
  OnesComplementSum sum;
  add_address(sum, source);
  add_address(sum, destination);
  const auto upper_layer_length = static_cast<std::uint32_t>(8 + payload.size());
  sum.add_word(static_cast<std::uint16_t>(upper_layer_length >> 16))
      .add_word(static_cast<std::uint16_t>(upper_layer_length & 0xffffu))
      .add_word(0)
      .add_word(17);   // three zero bytes, next header
  return finish_udp(sum, source_port, destination_port, payload);
}

// Compile-time checks of the published vectors; the tests repeat them at run time.
namespace checksum_vectors {
constexpr std::array<std::byte, 8> rfc1071{std::byte{0x00}, std::byte{0x01}, std::byte{0xf2}, std::byte{0x03},
                                           std::byte{0xf4}, std::byte{0xf5}, std::byte{0xf6}, std::byte{0xf7}};
static_assert(ones_complement_sum(rfc1071) == 0xddf2);
static_assert(internet_checksum(rfc1071) == 0x220d);
constexpr std::array<std::byte, 4> tutorial{std::byte{0x9e}, std::byte{0x62}, std::byte{0x51}, std::byte{0x4d}};
static_assert(internet_checksum(tutorial) == 0x1050);
static_assert(internet_checksum({}) == 0xffff);
}  // namespace checksum_vectors

}  // namespace dgram
