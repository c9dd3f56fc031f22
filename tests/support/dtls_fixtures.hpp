// Shared by the DTLS tests: certificate paths, contexts, and run-time made bad certificates.
#pragma once

#include <memory>
#include <string>

import dgram;

namespace dgram::testing {

// A file of the committed test certificates (certs/).
std::string cert_file(const std::string& name);
// A file made by tests/make-bad-certs.sh, made once per test process in a temporary folder.
std::string bad_cert_file(const std::string& name);

dtls::DtlsConfig test_client_config(const std::string& server_name = "localhost");
dtls::DtlsConfig test_server_config();
// Builds a context; fails the test with the reason when it cannot.
std::shared_ptr<dtls::DtlsContext> context_for(const dtls::DtlsConfig& config);

}  // namespace dgram::testing
