// Hex digits both ways, for the library's own parsers (PSK files, pinned key fingerprints) and names. Included in
// a global module fragment: ordinary inline functions, not part of any module interface.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace dgram::dtls::hex {

// The value of hex digit `c`, or -1.
inline int digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Lowercase hex of `bytes`, two digits each.
inline std::string of(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  text.reserve(2 * bytes.size());
  for (const std::byte b : bytes) {
    text += digits[std::to_integer<unsigned>(b) >> 4];
    text += digits[std::to_integer<unsigned>(b) & 0xf];
  }
  return text;
}

}  // namespace dgram::dtls::hex
