// Text as datagram bytes and back, for the tests' messages.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace dgram::testing {

inline std::span<const std::byte> bytes(const std::string& text) { return std::as_bytes(std::span(text)); }
inline std::string text(std::span<const std::byte> data) { return {reinterpret_cast<const char*>(data.data()), data.size()}; }

}  // namespace dgram::testing
