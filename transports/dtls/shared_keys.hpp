// The cryptography behind a cluster's shared key material (DtlsConfig::shared_keys): keys derived per period of
// wall-clock time, session tickets sealed with them, and the MAC on records forwarded between nodes. Plain
// functions over bytes, implemented over wolfCrypt in shared_keys.cpp; internal to the DTLS units (included in
// a global module fragment).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace dgram::dtls::detail {

using Key256 = std::array<std::byte, 32>;

// HKDF-SHA256 (RFC 5869) of `secret`, with "dgram cluster v1" as salt and `purpose` plus the big-endian period
// number as info: a different key for each purpose and period, and none reveals the secret or another.
Key256 derive_key(const Key256& secret, std::string_view purpose, std::uint64_t period);

// The number of the wall-clock period of `length` that `now` falls in (seconds since the Unix epoch / length):
// what every node with a set clock agrees on without talking.
std::uint64_t period_number(std::chrono::system_clock::time_point now, std::chrono::seconds length);

// ChaCha20-Poly1305 of `data` in place, under `key`, with `nonce` (12 bytes) and `aad`; the 16-byte tag goes to
// `tag`. open() checks the tag and decrypts in place: false (data untouched or garbled) when it does not match.
bool seal(const Key256& key, std::span<const std::byte, 12> nonce, std::span<const std::byte> aad,
          std::span<std::byte> data, std::span<std::byte, 16> tag);
bool open(const Key256& key, std::span<const std::byte, 12> nonce, std::span<const std::byte> aad,
          std::span<std::byte> data, std::span<const std::byte, 16> tag);

// HMAC-SHA256 of the concatenation of `parts` under `key`, cut to 16 bytes; nullopt when wolfCrypt failed
// (so a failure can never make two MACs agree).
std::optional<std::array<std::byte, 16>> mac(const Key256& key, std::span<const std::span<const std::byte>> parts);

// Compares in time that does not depend on where they differ.
bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept;

}  // namespace dgram::dtls::detail
