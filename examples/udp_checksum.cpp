// udp-checksum: prints the RFC 1071 Internet checksum of some bytes, or with --udp the UDP checksum of a
// payload including the IPv4 or IPv6 pseudo-header.
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "common/cli.hpp"

import dgram;

namespace ex = dgram::examples;

namespace {

std::vector<std::byte> read_stdin() {
  std::vector<std::byte> bytes;
  std::byte chunk[4096];
  for (std::size_t got; (got = std::fread(chunk, 1, sizeof chunk, stdin)) > 0;)
    bytes.insert(bytes.end(), chunk, chunk + got);
  if (std::ferror(stdin)) throw std::runtime_error("cannot read standard input");
  return bytes;
}

dgram::Endpoint endpoint_option(const ex::CommandLine& command_line, const char* name) {
  const auto text = command_line.value(name);
  if (!text) throw ex::UsageError(fmt::format("--udp needs --{} ADDR:PORT", name));
  std::error_code ec;
  std::string reason;
  const auto endpoint = dgram::Endpoint::parse(*text, ec, &reason);
  if (ec) throw ex::UsageError(fmt::format("--{} '{}': {}", name, *text, reason));
  return endpoint;
}

std::uint16_t udp_checksum(const dgram::Endpoint& source, const dgram::Endpoint& destination,
                           std::span<const std::byte> payload) {
  if (source.family() != destination.family())
    throw ex::UsageError("--src and --dst must both be IPv4 or both be IPv6");
  if (payload.size() > dgram::max_udp_payload)
    throw std::runtime_error(fmt::format("payload of {} bytes exceeds the UDP maximum of {}", payload.size(),
                                         dgram::max_udp_payload));
  const auto src = source.address_bytes();
  const auto dst = destination.address_bytes();
  if (source.family() == dgram::Family::ipv4) {
    std::array<std::uint8_t, 4> s{}, d{};
    std::copy(src.begin(), src.end(), s.begin());
    std::copy(dst.begin(), dst.end(), d.begin());
    return dgram::udp_checksum_ipv4(s, d, source.port(), destination.port(), payload);
  }
  std::array<std::uint8_t, 16> s{}, d{};
  std::copy(src.begin(), src.end(), s.begin());
  std::copy(dst.begin(), dst.end(), d.begin());
  return dgram::udp_checksum_ipv6(s, d, source.port(), destination.port(), payload);
}

}  // namespace

int main(int argc, char** argv) {
  ex::CommandLine command_line{
      "udp-checksum", "[--hex BYTES] [--udp --src ADDR:PORT --dst ADDR:PORT]   (bytes from stdin without --hex)",
      {{"hex", "BYTES", "the data as hex digits, e.g. \"00 01 f2 03\" (spaces optional)"},
       {"udp", "", "print the UDP checksum, pseudo-header included, instead of the plain Internet checksum"},
       {"src", "ADDR:PORT", "with --udp: source address and port ([::1]:5 for IPv6)"},
       {"dst", "ADDR:PORT", "with --udp: destination address and port"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    const bool udp = command_line.flag("udp");
    if (!udp && (command_line.value("src") || command_line.value("dst")))
      throw ex::UsageError("--src and --dst go with --udp");
    const auto hex = command_line.value("hex");
    const std::vector<std::byte> data = hex ? ex::parse_hex(*hex, "--hex") : read_stdin();
    const std::uint16_t checksum =
        udp ? udp_checksum(endpoint_option(command_line, "src"), endpoint_option(command_line, "dst"), data)
            : dgram::internet_checksum(data);
    fmt::print("0x{:04x}\n", checksum);
    return 0;
  });
}
