// The loop both echo clients share: each stdin line becomes one message over a Channel, each reply is
// printed on its own line, in order. Works over any variant's Channel (raw UDP, DTLS).
#pragma once

#include <chrono>
#include <istream>
#include <string>

import dgram;

namespace dgram::examples {

struct LineClientSettings {
  std::string program;                  // for error lines
  std::chrono::milliseconds timeout{1000};   // per attempt
  int retries{3};                       // attempts after the first, when no reply came in time
  bool session{false};                  // the channel is a session the server may end (DTLS), not raw UDP
};

class CommandLine;

// The settings from --timeout-ms and --retries (the options every line client takes).
LineClientSettings line_client_settings(const CommandLine& command_line);

// Sends the lines of `input`. Returns the exit status: 0 at end of input, 1 after printing one error line (no
// reply after the retries, connection refused, the server closed the session, a line too long for one
// message). An empty line on a channel that cannot carry empty messages (DTLS) is skipped with a note on
// stderr. Before each line it takes what already arrived, so a close_notify that came while it waited for
// input is reported as such, not as the error of the send that follows.
int run_line_client(Channel& channel, const LineClientSettings& settings, std::istream& input);

}  // namespace dgram::examples
