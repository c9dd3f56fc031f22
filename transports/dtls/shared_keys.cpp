// shared_keys.hpp over wolfCrypt: HKDF, ChaCha20-Poly1305 and HMAC, in the library that the build links.
#include "shared_keys.hpp"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include <algorithm>
#include <optional>
#include <string>

namespace dgram::dtls::detail {
namespace {

const byte* bytes_of(std::span<const std::byte> data) { return reinterpret_cast<const byte*>(data.data()); }
byte* writable_bytes_of(std::span<std::byte> data) { return reinterpret_cast<byte*>(data.data()); }

}  // namespace

Key256 derive_key(const Key256& secret, std::string_view purpose, std::uint64_t period) {
  static constexpr std::string_view salt = "dgram cluster v1";
  std::string info(purpose);
  for (int shift = 56; shift >= 0; shift -= 8) info += static_cast<char>((period >> shift) & 0xff);
  Key256 key{};
  // Cannot fail with these sizes (SHA-256 is always built); a zero key would only make cookies and tickets fail.
  wc_HKDF(WC_SHA256, bytes_of(secret), static_cast<word32>(secret.size()), reinterpret_cast<const byte*>(salt.data()),
          static_cast<word32>(salt.size()), reinterpret_cast<const byte*>(info.data()), static_cast<word32>(info.size()),
          writable_bytes_of(key), static_cast<word32>(key.size()));
  return key;
}

std::uint64_t period_number(std::chrono::system_clock::time_point now, std::chrono::seconds length) {
  const auto since_epoch = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return static_cast<std::uint64_t>(std::max<std::int64_t>(since_epoch, 0)) /
         static_cast<std::uint64_t>(std::max<std::int64_t>(length.count(), 1));
}

bool seal(const Key256& key, std::span<const std::byte, 12> nonce, std::span<const std::byte> aad,
          std::span<std::byte> data, std::span<std::byte, 16> tag) {
  return wc_ChaCha20Poly1305_Encrypt(bytes_of(key), bytes_of(nonce), bytes_of(aad), static_cast<word32>(aad.size()),
                                     bytes_of(data), static_cast<word32>(data.size()), writable_bytes_of(data),
                                     writable_bytes_of(tag)) == 0;
}

bool open(const Key256& key, std::span<const std::byte, 12> nonce, std::span<const std::byte> aad,
          std::span<std::byte> data, std::span<const std::byte, 16> tag) {
  return wc_ChaCha20Poly1305_Decrypt(bytes_of(key), bytes_of(nonce), bytes_of(aad), static_cast<word32>(aad.size()),
                                     bytes_of(data), static_cast<word32>(data.size()), bytes_of(tag),
                                     writable_bytes_of(data)) == 0;
}

std::optional<std::array<std::byte, 16>> mac(const Key256& key, std::span<const std::span<const std::byte>> parts) {
  std::array<std::byte, 32> full{};
  Hmac hmac;
  bool done = wc_HmacInit(&hmac, nullptr, INVALID_DEVID) == 0;
  if (done) {
    done = wc_HmacSetKey(&hmac, WC_SHA256, bytes_of(key), static_cast<word32>(key.size())) == 0;
    for (const auto part : parts)
      done = done && wc_HmacUpdate(&hmac, bytes_of(part), static_cast<word32>(part.size())) == 0;
    done = done && wc_HmacFinal(&hmac, writable_bytes_of(full)) == 0;
    wc_HmacFree(&hmac);
  }
  if (!done) return std::nullopt;
  std::array<std::byte, 16> cut{};
  std::copy_n(full.begin(), cut.size(), cut.begin());
  return cut;
}

bool same_bytes(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
  if (a.size() != b.size()) return false;
  std::byte difference{0};
  for (std::size_t i = 0; i < a.size(); ++i) difference |= a[i] ^ b[i];
  return difference == std::byte{0};
}

}  // namespace dgram::dtls::detail
