// Load generation shared by the event and threaded benchmarks (implemented in event_bench.cpp): dgram's own
// non-blocking clients, many EventClients in one ClientLoop.
#pragma once

#include <cstddef>
#include <memory>

import dgram;

namespace dgram::bench {

// A client context trusting the test CA, for "localhost".
std::shared_ptr<dtls::DtlsContext> bench_client_context(const std::string& certs);
// `clients` at once, each handshaking, closing and starting again, until `total` handshakes are done (or 10 s
// passed); handshakes per second.
double handshake_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, std::size_t clients,
                      int total, bool resume);
// `clients` sessions opened, then 1200-byte round trips on all of them at once until `total` are done (or 10 s
// passed); round trips per second.
double echo_rate(const std::shared_ptr<dtls::DtlsContext>& context, unsigned short port, std::size_t clients, int total);

}  // namespace dgram::bench
