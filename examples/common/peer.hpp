// The server endpoint a client program talks to, from its --host and --port options.
#pragma once

import dgram;

namespace dgram::examples {

class CommandLine;

// Resolves --host (default 127.0.0.1) and --port (default 11111); the first address found wins.
// Throws std::runtime_error naming the host when it does not resolve, UsageError for a bad port.
Endpoint resolve_peer(const CommandLine& command_line);

}  // namespace dgram::examples
