// libFuzzer target: Endpoint::parse / from_address (text from the command line and configuration) and the
// checksum functions, the latter checked against a plain reference sum (a differential target).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>
#include <system_error>

import dgram;

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

// RFC 1071 the slow, obvious way: 16-bit big-endian words, an odd last byte padded with zero, carries folded.
std::uint16_t reference_sum(std::span<const std::byte> data) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < data.size(); i += 2) {
    const std::uint64_t high = static_cast<std::uint8_t>(data[i]);
    const std::uint64_t low = i + 1 < data.size() ? static_cast<std::uint8_t>(data[i + 1]) : 0;
    sum += high << 8 | low;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  const std::uint16_t sum = dgram::ones_complement_sum(bytes);
  require(sum == reference_sum(bytes));
  require(dgram::internet_checksum(bytes) == static_cast<std::uint16_t>(~sum));
  // Streaming in two pieces gives the same sum, whatever the split (odd splits included).
  const std::size_t split = size > 0 ? data[0] % (size + 1) : 0;
  dgram::OnesComplementSum streamed;
  streamed.add(bytes.first(split)).add(bytes.subspan(split));
  require(streamed.sum() == sum);

  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::error_code ec;
  std::string reason;
  const dgram::Endpoint endpoint = dgram::Endpoint::parse(text, ec, &reason);
  if (!ec) {   // what parses prints back to itself
    std::error_code again;
    require(dgram::Endpoint::parse(endpoint.to_string(), again) == endpoint && !again);
  } else {
    require(!reason.empty());
  }
  const dgram::Endpoint address = dgram::Endpoint::from_address(text, 443, ec);
  if (!ec) require(address.port() == 443);
  return 0;
}
