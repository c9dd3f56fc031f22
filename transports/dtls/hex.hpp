// Hex digits both ways, for the library's own parsers (PSK files, pinned key fingerprints) and names. Included in
// a global module fragment: ordinary inline functions, not part of any module interface.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

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

// Decodes digit pairs into `out` (digits.size() == 2 * out.size()); false at a character that is no hex digit.
inline bool decode(std::string_view digits, std::span<std::byte> out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int high = digit(digits[2 * i]);
    const int low = digit(digits[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    out[i] = static_cast<std::byte>(high * 16 + low);
  }
  return true;
}

// `text` (a name a peer chose) safe for a log line: control characters, DEL and '\\' as \\xNN.
inline std::string printable(std::string_view text) {
  std::string shown;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f && c != '\\') {
      shown += c;
      continue;
    }
    const std::byte as_byte{byte};
    shown += "\\x" + of(std::span(&as_byte, 1));
  }
  return shown;
}

}  // namespace dgram::dtls::hex
