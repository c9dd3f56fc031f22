// The endpoints the example programs talk to or listen on, from their --host/--bind and --port options.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

import dgram;

namespace dgram::examples {

class CommandLine;

// The first address `host` (a name or a numeric address) resolves to; nullopt with the resolver's words in
// `reason`. May block on DNS.
std::optional<Endpoint> first_address(const std::string& host, std::uint16_t port, std::string& reason);

// Resolves --host (default 127.0.0.1) and --port (default 11111); the first address found wins.
// Throws std::runtime_error naming the host when it does not resolve, UsageError for a bad port.
Endpoint resolve_peer(const CommandLine& command_line);

// Where a server listens: --bind (default 127.0.0.1; a numeric address or a host name, the first address found
// wins) and --port (default 11111; 0 picks a free port). `::` listens dual-stack, for IPv6 and IPv4 clients.
struct ListenAddress {
  Endpoint local;
  UdpOptions options;
};
// Throws UsageError naming the value given when it does not resolve.
ListenAddress listen_address(const CommandLine& command_line);

}  // namespace dgram::examples
