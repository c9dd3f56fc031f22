// The DTLS options the echo server and client share (--cert, --key, --ca, --psk-identity, --psk-hex, --dtls,
// --cid) and the context they make, with one readable line for whatever is wrong.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

import dgram;

namespace dgram::examples {

// The option descriptions, for the CommandLine of a DTLS program.
std::vector<Option> dtls_options(dtls::Role role);

// The configuration the options ask for. Throws UsageError for options that do not go together.
dtls::DtlsConfig dtls_config_from(const CommandLine& command_line, dtls::Role role);

// Builds the wolfSSL context; throws std::runtime_error with the reason (which file, what is wrong).
std::shared_ptr<dtls::DtlsContext> make_dtls_context(const dtls::DtlsConfig& config);

}  // namespace dgram::examples
