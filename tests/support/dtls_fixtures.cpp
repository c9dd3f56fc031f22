#include "dtls_fixtures.hpp"

#include <catch2/catch.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cstddef>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <system_error>

#include "process.hpp"

import dgram;

namespace dgram::testing {

std::string cert_file(const std::string& name) {
  const char* dir = std::getenv("DGRAM_CERTS");
  return std::string(dir ? dir : "certs") + "/" + name;
}

std::string bad_cert_file(const std::string& name) {
  static const std::string dir = [] {
    const char* build = std::getenv("MESON_BUILD_ROOT");
    const std::string out = std::string(build ? build : ".") + "/bad-certs-" + std::to_string(::getpid());
    Process make({"/bin/bash", program_path("MAKE_BAD_CERTS"), cert_file(""), out});
    const Finished done = make.wait(std::chrono::seconds(60));
    INFO(done.err);
    REQUIRE(done.exit_code == 0);
    static const std::string to_remove = out;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(to_remove, ignored);
    });
    return out;
  }();
  return dir + "/" + name;
}

dtls::DtlsConfig test_client_config(const std::string& server_name) {
  return dtls::client_config(dtls::Pem::file(cert_file("ca.pem")), server_name);
}

dtls::DtlsConfig test_server_config() {
  return dtls::server_config(dtls::Pem::file(cert_file("server-ecdsa.pem")), dtls::Pem::file(cert_file("server-ecdsa.key")));
}

std::shared_ptr<dtls::DtlsContext> context_for(const dtls::DtlsConfig& config) {
  std::error_code ec;
  std::string reason;
  auto context = dtls::DtlsContext::create(config, ec, &reason);
  INFO(reason);
  REQUIRE(context);
  return context;
}

std::vector<std::string> server_modes() {
  const char* listed = std::getenv("DGRAM_SERVER_MODES");
  std::vector<std::string> modes;
  std::istringstream words(listed ? listed : "");
  for (std::string mode; words >> mode;) modes.push_back(mode);
  if (modes.empty()) throw std::runtime_error("DGRAM_SERVER_MODES is not set: run through meson test");
  return modes;
}

std::vector<std::string> server_argv(std::vector<std::string> argv) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
    const std::string& value = argv[i + 1];
    if (argv[i] != "--mode" || !value.starts_with("threaded:")) continue;
    const std::string workers = value.substr(value.find(':') + 1);
    argv[i + 1] = "threaded";
    argv.insert(argv.begin() + static_cast<std::ptrdiff_t>(i) + 2, {"--workers", workers});
    break;
  }
  return argv;
}

ListeningServer start_dtls_server(const std::string& mode, const std::vector<std::string>& extra,
                                  const std::string& bind) {
  std::vector<std::string> argv{program_path("DTLS_ECHO_SERVER"), "--mode", mode, "--bind", bind, "--port", "0",
                                "--cert", cert_file("server-ecdsa.pem"), "--key", cert_file("server-ecdsa.key")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return start_listening(server_argv(std::move(argv)));
}

long resident_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return 0;
}

}  // namespace dgram::testing
