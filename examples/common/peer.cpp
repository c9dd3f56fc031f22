#include "peer.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "cli.hpp"

import dgram;

namespace dgram::examples {

std::optional<Endpoint> first_address(const std::string& host, std::uint16_t port, std::string& reason) {
  std::error_code ec;
  const auto found = resolve(host, port, ec, &reason);
  return ec ? std::nullopt : std::optional<Endpoint>(found.front());
}

Endpoint resolve_peer(const CommandLine& command_line) {
  const std::string host = command_line.value_or("host", "127.0.0.1");
  std::string reason;
  const auto found = first_address(host, static_cast<std::uint16_t>(command_line.integer("port", 11111, 1, 65535)), reason);
  if (!found) throw std::runtime_error(fmt::format("cannot resolve host '{}': {}", host, reason));
  return *found;
}

ListenAddress listen_address(const CommandLine& command_line) {
  const std::string bind = command_line.value_or("bind", "127.0.0.1");
  std::string reason;
  const auto found = first_address(bind, static_cast<std::uint16_t>(command_line.integer("port", 11111, 0, 65535)), reason);
  if (!found) throw UsageError(fmt::format("--bind '{}' is no address this machine can listen on: {}", bind, reason));
  ListenAddress address{*found, {}};
  const auto bytes = address.local.address_bytes();
  const bool unspecified = std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t byte) { return byte == 0; });
  address.options.dual_stack = address.local.family() == Family::ipv6 && unspecified;   // "::" takes IPv4 too
  return address;
}

}  // namespace dgram::examples
