// Shared by the DTLS tests: certificate paths, contexts, and run-time made bad certificates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bytes.hpp"
#include "process.hpp"

import dgram;

namespace dgram::testing {

// A file of the committed test certificates (certs/).
std::string cert_file(const std::string& name);
// A file made by tests/make-bad-certs.sh, made once per test process in a temporary folder.
std::string bad_cert_file(const std::string& name);

dtls::DtlsConfig test_client_config(const std::string& server_name = "localhost");
// The DTLS 1.2 suite two dgram peers with ECDSA certificates agree on by default in this build (AES-128-GCM
// where wolfSSL has AES-NI, ChaCha20-Poly1305 otherwise), in wolfSSL's and OpenSSL's name.
inline std::string default_ecdsa_suite() {
  return dtls::aes_ni_available() ? "ECDHE-ECDSA-AES128-GCM-SHA256" : "ECDHE-ECDSA-CHACHA20-POLY1305";
}
dtls::DtlsConfig test_server_config();
// Builds a context; fails the test with the reason when it cannot.
std::shared_ptr<dtls::DtlsContext> context_for(const dtls::DtlsConfig& config);

// Under AddressSanitizer freed memory waits in a quarantine (256 MiB) instead of being reused, so resident size
// grows with every allocation and says nothing about state kept (LeakSanitizer checks the server at exit);
// ThreadSanitizer's allocator and shadow memory grow the same way, per thread. Memory checks skip these builds.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool sanitized_build = true;
#else
inline constexpr bool sanitized_build = false;
#endif
#else
inline constexpr bool sanitized_build = false;
#endif

// The dtls-echo-server modes this build has (meson lists them in DGRAM_SERVER_MODES), the default first.
// "threaded:N" is the threaded mode with N workers.
std::vector<std::string> server_modes();
// `argv` of dtls-echo-server with "--mode threaded:N" spelled as the program takes it (--mode threaded
// --workers N); other modes unchanged.
std::vector<std::string> server_argv(std::vector<std::string> argv);
// dtls-echo-server --mode MODE on a free port of `bind` with the test certificate and `extra` options.
ListeningServer start_dtls_server(const std::string& mode, const std::vector<std::string>& extra = {},
                                  const std::string& bind = "127.0.0.1");
// The resident memory of process `pid` in KiB (VmRSS), 0 when it cannot be read.
long resident_kib(int pid);

}  // namespace dgram::testing
