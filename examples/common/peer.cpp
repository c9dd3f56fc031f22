#include "peer.hpp"

#include <fmt/core.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cli.hpp"

import dgram;

namespace dgram::examples {

Endpoint resolve_peer(const CommandLine& command_line) {
  const std::string host = command_line.value_or("host", "127.0.0.1");
  const auto port = static_cast<std::uint16_t>(command_line.integer("port", 11111, 1, 65535));
  std::error_code ec;
  std::string reason;
  const auto found = resolve(host, port, ec, &reason);
  if (ec) throw std::runtime_error(fmt::format("cannot resolve host '{}': {}", host, reason));
  return found.front();
}

}  // namespace dgram::examples
