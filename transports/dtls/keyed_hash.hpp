// SipHash-1-3 with a random key: the hash of the server endpoint's tables. Their keys (peer addresses,
// ClientHello randoms) are chosen by whoever sends datagrams; with an unkeyed hash (FNV-1a) chosen IPv6
// addresses can be made to collide and turn every lookup into a list walk. Internal (global module fragment).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace dgram::dtls::detail {

struct HashKey {
  std::uint64_t k0{0};
  std::uint64_t k1{0};
};

// SipHash-1-3 (one compression round, three finalization rounds: Rust's HashMap default) of `bytes`.
inline std::uint64_t siphash13(const HashKey& key, std::span<const std::byte> bytes) noexcept {
  std::uint64_t v0 = key.k0 ^ 0x736f6d6570736575ull;
  std::uint64_t v1 = key.k1 ^ 0x646f72616e646f6dull;
  std::uint64_t v2 = key.k0 ^ 0x6c7967656e657261ull;
  std::uint64_t v3 = key.k1 ^ 0x7465646279746573ull;
  const auto round = [&] {
    v0 += v1; v1 = std::rotl(v1, 13); v1 ^= v0; v0 = std::rotl(v0, 32);
    v2 += v3; v3 = std::rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = std::rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = std::rotl(v1, 17); v1 ^= v2; v2 = std::rotl(v2, 32);
  };
  const std::size_t whole = bytes.size() / 8 * 8;
  for (std::size_t at = 0; at < whole; at += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + at, 8);   // little-endian hosts (x86-64, arm64): the reference order
    v3 ^= word;
    round();
    v0 ^= word;
  }
  std::uint64_t last = static_cast<std::uint64_t>(bytes.size() & 0xff) << 56;
  for (std::size_t i = whole; i < bytes.size(); ++i)
    last |= static_cast<std::uint64_t>(bytes[i]) << (8 * (i - whole));
  v3 ^= last;
  round();
  v0 ^= last;
  v2 ^= 0xff;
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace dgram::dtls::detail
