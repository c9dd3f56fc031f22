// Talking to the devices in the field: the CoAP/LwM2M cipher suites (RFC 7252: AES-128-CCM-8 with pre-shared
// keys and with ECDSA), cipher names checked, the PSK store of a server with many devices (--psk-file, reloaded
// on SIGHUP), and the stacks those devices run as peers: Mbed TLS (ssl_client2 / ssl_server2 built from Debian's
// source), node-dtls-client (npm, pinned), gnutls-cli and openssl. Every server case runs in every server mode.
// The peers are installed by scripts/fetch-peers.sh (the install step); a missing one fails its test by name.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "support/dtls_fixtures.hpp"
#include "support/process.hpp"
#include "support/udp_relay.hpp"

import dgram;

using namespace std::chrono_literals;
using dgram::testing::cert_file;
using dgram::testing::Finished;
using dgram::testing::ListeningServer;
using dgram::testing::Process;
using dgram::testing::program_path;
namespace dtls = dgram::dtls;

namespace {

std::string current_mode;

#define FOR_EACH_SERVER_MODE()                                           \
  current_mode = GENERATE(from_range(dgram::testing::server_modes())); \
  INFO("server mode " << current_mode)

constexpr const char* key_hex = "00112233445566778899aabbccddeeff";

bool has_suite(const std::string& name) {
  for (const std::string& suite : dtls::available_cipher_suites())
    if (suite == name) return true;
  return false;
}

// A file in the test's own temporary folder, removed with it.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/dgram-field-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::string& text) const {
    const std::string path = path_ + "/" + name;
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }

 private:
  std::string path_;
};

// A 16-byte key of its own for device `i` (device-7's is key_hex), as hex.
std::string key_of(int i) {
  if (i == 7) return key_hex;
  char hex[33];
  std::snprintf(hex, sizeof hex, "%08x%08x%08x%08x", i, 0x5eed0000 + i, i * 7919, ~i);
  return hex;
}

// "device-N:KEY" lines for `count` identities.
std::string psk_lines(int count) {
  std::string text = "# identity:hexkey\n";
  for (int i = 0; i < count; ++i) text += "device-" + std::to_string(i) + ":" + key_of(i) + "\n";
  return text;
}

ListeningServer psk_server(const std::string& psk_file, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0",
                                "--psk-file", psk_file};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return dgram::testing::start_listening(dgram::testing::server_argv(std::move(argv)));
}

ListeningServer certificate_server(std::vector<std::string> extra = {}) {
  return dgram::testing::start_dtls_server(current_mode, extra);
}

// dtls-echo-client sends `line` and reports the session (--verbose) on stderr.
Finished dgram_client(const std::string& port, const std::string& line, std::vector<std::string> extra) {
  std::vector<std::string> argv{program_path("DTLS_ECHO_CLIENT"), "--port", port, "--verbose"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process client(argv);
  return client.communicate(line + "\n", 15s);
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

}  // namespace

// The suites a test needs, when this build lacks one: the server must refuse it in one line naming the suite
// (never drop it silently). True when the build has them all and the test can go on.
bool build_has_or_refuses(const std::vector<std::string>& suites, const std::vector<std::string>& server_options) {
  for (const std::string& suite : suites) {
    if (has_suite(suite)) continue;
    std::vector<std::string> argv{program_path("DTLS_ECHO_SERVER"), "--port", "0"};
    argv.insert(argv.end(), server_options.begin(), server_options.end());
    Process server(argv);
    const Finished refused = server.wait(10s);
    CHECK(refused.exit_code == 1);
    CHECK(contains(refused.err, "cipher suite '" + suite + "' is not in this build's wolfSSL"));
    return false;
  }
  return true;
}

TEST_CASE("cipher lists: a suite this build lacks fails the context, naming it", "[dtls][field]") {
  auto config = dgram::testing::test_server_config();
  config.cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-SUITE";
  std::error_code ec;
  std::string reason;
  CHECK(dtls::DtlsContext::create(config, ec, &reason) == nullptr);
  CHECK(ec == dgram::errc::invalid_argument);
  CHECK(contains(reason, "cipher suite 'NO-SUCH-SUITE' is not in this build's wolfSSL"));

  config.cipher_list = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";   // IANA's names are taken too
  CHECK(dtls::DtlsContext::create(config, ec, &reason) != nullptr);
  for (const char* selection : {"ALL", "HIGH:!aNULL", "ECDHE-ECDSA-AES128-GCM-SHA256:!PSK-AES128-CCM-8"}) {
    config.cipher_list = selection;   // what a keyword or an exclusion selects could not be checked
    CHECK(dtls::DtlsContext::create(config, ec, &reason) == nullptr);
    CHECK(contains(reason, "is not a cipher suite: name each suite"));
  }
  auto pins_and_psk = dgram::testing::test_server_config();
  pins_and_psk.pinned_peer_keys = dtls::Pem::memory(std::string(64, 'a') + "\n");
  pins_and_psk.psk = dtls::PreSharedKey{"device", std::vector<std::byte>(16, std::byte{1})};
  CHECK(dtls::DtlsContext::create(pins_and_psk, ec, &reason) == nullptr);
  CHECK(contains(reason, dtls::raw_public_keys_available() ? "do not go together" : "has no raw public keys"));
  config.cipher_list = "TLS13-AES128-GCM-SHA256";   // a DTLS 1.2 context with DTLS 1.3 suites only
  CHECK(dtls::DtlsContext::create(config, ec, &reason) == nullptr);
  CHECK(contains(reason, "has no DTLS 1.2 suite"));

  // The CoAP profile: a context exactly when this build has every suite of it, else the first one missing named.
  for (const bool psk : {false, true}) {
    auto coap = dgram::testing::test_server_config();
    coap.cipher_profile = dtls::CipherProfile::coap;
    if (psk) coap.psk = dtls::PreSharedKey{"device", std::vector<std::byte>(16, std::byte{1})};
    const std::string list = dtls::cipher_list_for(coap);
    CHECK(list.starts_with(psk ? "PSK-AES128-CCM-8:" : "ECDHE-ECDSA-AES128-CCM-8:"));
    std::optional<std::string> missing;
    for (std::size_t at = 0; at <= list.size() && !missing;) {
      const auto end = std::min(list.find(':', at), list.size());
      if (!has_suite(list.substr(at, end - at))) missing = list.substr(at, end - at);
      at = end + 1;
    }
    INFO("psk " << psk << ", missing " << missing.value_or("none"));
    const auto context = dtls::DtlsContext::create(coap, ec, &reason);
    CHECK((context != nullptr) == !missing.has_value());
    if (missing) CHECK(contains(reason, "'" + *missing + "'"));
  }
  if (dtls::dtls13_available()) {   // the optimized build: every suite the CoAP profile names
    for (const char* suite : {"PSK-AES128-CCM-8", "PSK-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-CCM-8",
                              "ECDHE-PSK-AES128-CBC-SHA256", "TLS13-AES128-CCM-SHA256"})
      CHECK(has_suite(suite));
    // wolfSSL 5.7.2 cannot send a DTLS 1.3 CCM-8 record under 8 bytes (it does not pad): refused by name.
    auto ccm8 = dgram::testing::test_server_config();
    ccm8.version = dtls::Version::dtls1_3;
    ccm8.cipher_list = "TLS13-AES128-CCM-8-SHA256:TLS13-AES128-GCM-SHA256";
    CHECK(dtls::DtlsContext::create(ccm8, ec, &reason) == nullptr);
    CHECK(contains(reason, "cannot send messages shorter than 8 bytes"));
    // A pre-shared key in DTLS 1.3 takes TLS13-AES128-GCM-SHA256 (wolfSSL's PSK callbacks): a list without it is
    // refused rather than failing every handshake.
    auto psk13 = ccm8;
    psk13.psk = dtls::PreSharedKey{"device", std::vector<std::byte>(16, std::byte{1})};
    psk13.cipher_list = "TLS13-AES128-CCM-SHA256";
    CHECK(dtls::DtlsContext::create(psk13, ec, &reason) == nullptr);
    CHECK(contains(reason, "uses TLS13-AES128-GCM-SHA256 only"));
  }
}

TEST_CASE("PSK store: identity:hexkey lines, O(1) lookups, all-or-nothing loads that never show a key", "[dtls][field][psk]") {
  dtls::PskFileStore store;
  std::string reason;
  REQUIRE(store.load_text("# devices\n\ndev1:0011\n  urn:imei:4711 : AABBCCDD  \n", "test", reason));
  CHECK(store.size() == 2);
  CHECK(store.find("dev1") == std::vector<std::byte>{std::byte{0x00}, std::byte{0x11}});
  CHECK(store.find("urn:imei:4711") ==   // the key follows the last ':'; spaces around it are trimmed
        std::vector<std::byte>{std::byte{0xaa}, std::byte{0xbb}, std::byte{0xcc}, std::byte{0xdd}});
  CHECK_FALSE(store.find("dev2").has_value());
  CHECK_FALSE(store.find("").has_value());

  const std::string long_identity(dtls::max_psk_identity_size + 1, 'i');
  const std::string long_key(2 * (dtls::max_psk_key_size + 1), 'a');
  const std::vector<std::pair<std::string, std::string>> bad{
      {"ok:00\nno colon here\n", "test, line 2: expected identity:hexkey"},
      {"odd:001\n", "test, line 1: the key has an odd number of hex digits"},
      {"nothex:00112233zz\n", "test, line 1: the key holds a character that is not a hex digit"},
      {"empty:\n", "test, line 1: the key is empty"},
      {":0011\n", "test, line 1: the identity is empty"},
      {"twice:00\ntwice:11\n", "test, line 2: identity 'twice' appears twice"},
      {long_identity + ":00\n", "test, line 1: the identity is longer than 128 bytes"},
      {"long:" + long_key + "\n", "test, line 1: the key is longer than 64 bytes"},
  };
  for (const auto& [text, expected] : bad) {
    INFO(expected);
    CHECK_FALSE(store.load_text(text, "test", reason));
    CHECK(reason == expected);
    CHECK(reason.find("00112233") == std::string::npos);   // a key's digits are never repeated
    CHECK(store.size() == 2);                              // the keys loaded before stay
    CHECK(store.find("dev1").has_value());
  }
  CHECK_FALSE(store.load_file("/nonexistent/keys.txt", reason));
  CHECK(reason == "cannot read PSK file '/nonexistent/keys.txt': No such file or directory");
  CHECK_FALSE(store.load_file("/tmp", reason));
  CHECK(reason == "cannot read PSK file '/tmp': Is a directory");
  CHECK_FALSE(store.load_text("# all devices removed\n", "empty", reason));   // would lock every device out
  CHECK(reason == "empty holds no identity:hexkey line");
  CHECK(store.size() == 2);

  // 100,000 devices.
  REQUIRE(store.load_text(psk_lines(100'000), "many", reason));
  CHECK(store.size() == 100'000);
  for (const int device : {0, 7, 54'321, 99'999}) {
    const auto key = store.find("device-" + std::to_string(device));
    REQUIRE(key.has_value());
    CHECK(key->size() == 16);
  }
  CHECK_FALSE(store.find("device-100000").has_value());
  CHECK_FALSE(store.find("dev1").has_value());   // a load replaces every key
}

TEST_CASE("CoAP PSK: dgram's client and server on AES-128-CCM-8, one identity among 10,000 in --psk-file", "[dtls][field][psk]") {
  FOR_EACH_SERVER_MODE();
  const TempDir dir;
  const std::string keys = dir.file("keys.txt", psk_lines(10'000));
  if (!build_has_or_refuses({"PSK-AES128-CCM-8"}, {"--psk-file", keys, "--coap"})) return;
  auto server = psk_server(keys, {"--coap"});
  const Finished ok = dgram_client(server.port, "coap psk", {"--psk-identity", "device-7", "--psk-hex", key_hex, "--coap"});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == "coap psk\n");
  CHECK(contains(ok.err, "cipher PSK-AES128-CCM-8, resumed no, CID off, PSK identity device-7"));

  const Finished unknown = dgram_client(server.port, "x", {"--psk-identity", "device-10000", "--psk-hex", key_hex, "--coap"});
  CHECK(unknown.exit_code == 1);
  CHECK(contains(unknown.err, "the server does not know the pre-shared key identity 'device-10000'"));
  const Finished wrong_key = dgram_client(server.port, "x", {"--psk-identity", "device-8", "--psk-hex", key_hex, "--coap"});
  CHECK(wrong_key.exit_code == 1);
  CHECK(contains(wrong_key.err, "pre-shared keys differ"));
  const Finished control = dgram_client(server.port, "x", {"--psk-identity", "evil\x1b[2Jid", "--psk-hex", key_hex, "--coap"});
  CHECK(control.exit_code == 1);
  // A server that serves only devices from its store resumes no session (a removed key takes effect at once).
  const Finished again = dgram_client(server.port, "again", {"--psk-identity", "device-7", "--psk-hex", key_hex, "--coap",
                                                             "--resume"});
  CHECK(again.exit_code == 0);
  CHECK(contains(again.err, "session resumed: no"));

  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(contains(stopped.err, "10000 pre-shared keys from " + keys));
  CHECK(contains(stopped.err, "cipher PSK-AES128-CCM-8, DTLSv1.2, CID off, PSK identity device-7, 1 message"));
  CHECK(contains(stopped.err, "the client's pre-shared key identity 'device-10000' is unknown here"));
  CHECK(contains(stopped.err, "identity 'evil\\x1b[2Jid' is unknown here"));   // control characters escaped
  CHECK_FALSE(contains(stopped.err, key_hex));   // keys are never logged
}

TEST_CASE("--psk-file is reloaded on SIGHUP without dropping sessions; a bad file keeps the keys it had", "[dtls][field][psk]") {
  FOR_EACH_SERVER_MODE();
  const TempDir dir;
  const std::string keys = dir.file("keys.txt", "early:" + key_of(1) + "\n");
  {
    Process bad({program_path("DTLS_ECHO_SERVER"), "--port", "0", "--psk-file", dir.file("bad.txt", "early:0g\n")});
    const Finished refused = bad.wait(10s);
    CHECK(refused.exit_code == 1);
    CHECK(contains(refused.err, "PSK file '" + dir.file("bad.txt", "early:0g\n") + "', line 1: the key holds a"));
  }
  auto server = psk_server(keys);
  const std::vector<std::string> late{"--psk-identity", "late", "--psk-hex", key_hex};
  CHECK(dgram_client(server.port, "too early", late).exit_code == 1);

  // A session open across the reloads keeps going (the blocking server serves one session at a time: there
  // the other clients would wait for it).
  const bool concurrent = current_mode != "blocking";
  std::optional<Process> open_session;
  if (concurrent) {
    open_session.emplace(std::vector<std::string>{program_path("DTLS_ECHO_CLIENT"), "--port", server.port,
                                                  "--psk-identity", "early", "--psk-hex", key_of(1)});
    open_session->write("before\n");
    REQUIRE(open_session->read_until("before\n", 10s));
  }

  dir.file("keys.txt", "early:" + key_of(1) + "\nlate:" + key_hex + "\n");
  server.process.send_signal(SIGHUP);
  REQUIRE(server.process.read_stderr_until("reloaded 2 pre-shared keys from " + keys, 10s));
  const Finished in_time = dgram_client(server.port, "in time", late);
  CHECK(in_time.exit_code == 0);
  CHECK(in_time.out == "in time\n");

  dir.file("keys.txt", "late:" + std::string(key_hex) + "\nbroken\n");
  server.process.send_signal(SIGHUP);
  REQUIRE(server.process.read_stderr_until("keeping the 2 keys loaded", 10s));
  CHECK(dgram_client(server.port, "still", late).exit_code == 0);

  if (concurrent) {
    open_session->write("after\n");
    CHECK(open_session->read_until("after\n", 10s));
    open_session->close_stdin();
    CHECK(open_session->wait(10s).exit_code == 0);
  }
  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(contains(stopped.err, "line 2: expected identity:hexkey; keeping the 2 keys loaded"));
  if (concurrent) CHECK(contains(stopped.err, "PSK identity early, 2 messages"));
}

// openssl s_client -dtls1_2 with `options` sends `line` and reads it back.
Finished openssl_client(const std::string& port, const std::string& line, std::vector<std::string> options) {
  std::vector<std::string> argv{"/usr/bin/openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:" + port, "-nbio"};
  argv.insert(argv.end(), options.begin(), options.end());
  Process client(argv);
  client.write(line + "\n");
  client.read_until(line, 10s);   // s_client prints only what it receives: this is the echo
  client.close_stdin();
  return client.wait(10s);
}

TEST_CASE("interop: openssl s_client on the CoAP suites (PSK and ECDSA CCM-8, CCM, GCM)", "[dtls][field][interop][openssl]") {
  FOR_EACH_SERVER_MODE();
  const TempDir dir;
  const std::string keys = dir.file("keys.txt", psk_lines(100));
  const std::vector<std::string> psk_suites{"PSK-AES128-CCM-8", "PSK-AES128-CCM", "PSK-AES128-GCM-SHA256"};
  if (build_has_or_refuses(psk_suites, {"--psk-file", keys, "--coap"})) {
    auto server = psk_server(keys, {"--coap"});
    for (const char* openssl_name : {"PSK-AES128-CCM8", "PSK-AES128-CCM", "PSK-AES128-GCM-SHA256"}) {
      INFO(openssl_name);
      const Finished done = openssl_client(server.port, "psk", {"-psk_identity", "device-7", "-psk", key_hex,
                                                                "-cipher", openssl_name});
      CHECK(done.out.find("psk") != std::string::npos);
    }
    const Finished stopped = server.stop();
    for (const std::string& suite : psk_suites)
      CHECK(contains(stopped.err, "cipher " + suite + ", DTLSv1.2, CID off, PSK identity device-7, 1 message"));
  }
  const std::vector<std::string> ecdsa_suites{"ECDHE-ECDSA-AES128-CCM-8", "ECDHE-ECDSA-AES128-CCM",
                                              "ECDHE-ECDSA-AES256-GCM-SHA384"};
  const std::string list = "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES256-GCM-SHA384";
  if (build_has_or_refuses(ecdsa_suites, {"--cert", cert_file("server-ecdsa.pem"), "--key",
                                          cert_file("server-ecdsa.key"), "--ciphers", list})) {
    auto server = certificate_server({"--ciphers", list});
    for (const char* openssl_name : {"ECDHE-ECDSA-AES128-CCM8", "ECDHE-ECDSA-AES128-CCM", "ECDHE-ECDSA-AES256-GCM-SHA384"}) {
      INFO(openssl_name);
      const Finished done = openssl_client(server.port, "ecdsa", {"-CAfile", cert_file("ca.pem"), "-verify_return_error",
                                                                  "-cipher", openssl_name});
      CHECK(done.out.find("ecdsa") != std::string::npos);
    }
    const Finished stopped = server.stop();
    for (const std::string& suite : ecdsa_suites) CHECK(contains(stopped.err, "cipher " + suite + ", DTLSv1.2"));
  }
}

// gnutls-cli --udp with `options` against 127.0.0.1:port sends `line`, sees it come back and ends with exit 0.
void gnutls_echo(const std::string& port, const std::string& line, std::vector<std::string> options) {
  std::vector<std::string> argv{"/usr/bin/gnutls-cli", "--udp", "--port", port, "127.0.0.1"};
  argv.insert(argv.end(), options.begin(), options.end());
  Process gnutls(argv);
  REQUIRE(gnutls.read_until("Simple Client Mode", 10s));
  gnutls.write(line + "\n");
  REQUIRE(gnutls.read_until(line, 10s));
  gnutls.close_stdin();
  CHECK(gnutls.wait(10s).exit_code == 0);
}

TEST_CASE("interop: gnutls-cli with a pre-shared key on AES-128-CCM-8", "[dtls][field][interop][gnutls]") {
  FOR_EACH_SERVER_MODE();
  const TempDir dir;
  const std::string keys = dir.file("keys.txt", psk_lines(100));
  if (!build_has_or_refuses({"PSK-AES128-CCM-8"}, {"--psk-file", keys, "--coap"})) return;
  auto server = psk_server(keys, {"--coap"});
  gnutls_echo(server.port, "from gnutls", {"--pskusername", "device-7", "--pskkey", key_hex, "--priority",
                                            "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-CCM-8"});
  const Finished stopped = server.stop();
  CHECK(contains(stopped.err, "cipher PSK-AES128-CCM-8, DTLSv1.2, CID off, PSK identity device-7, 1 message"));
}

// A program of scripts/fetch-peers.sh; fails the test by name when it was not made ready.
std::string peer_program(const std::string& name) {
  const std::string path = program_path("DGRAM_PEERS_BIN") + "/" + name;
  if (access(path.c_str(), X_OK) != 0) FAIL(name << " is missing: run scripts/fetch-peers.sh (scripts/install-deps.sh does)");
  return path;
}

// Mbed TLS's ssl_client2 against 127.0.0.1:port: it sends a 51-byte request and reads the reply (the echo).
Finished mbedtls_client(const std::string& port, std::vector<std::string> options) {
  std::vector<std::string> argv{peer_program("mbedtls-ssl-client2"), "dtls=1", "server_addr=127.0.0.1",
                                "server_port=" + port, "hs_timeout=1000-8000", "crt_file=none", "key_file=none"};
  argv.insert(argv.end(), options.begin(), options.end());
  Process client(argv);
  return client.wait(30s);
}

TEST_CASE("interop: Mbed TLS ssl_client2 against our server: certificates and PSK on GCM and CCM-8, resumption", "[dtls][field][interop][mbedtls]") {
  FOR_EACH_SERVER_MODE();
  const TempDir dir;
  const std::string keys = dir.file("keys.txt", psk_lines(10'000));
  const std::vector<std::string> server_options{"--psk-file", keys, "--coap"};
  std::vector<std::string> standalone{"--cert", cert_file("server-ecdsa.pem"), "--key", cert_file("server-ecdsa.key")};
  standalone.insert(standalone.end(), server_options.begin(), server_options.end());
  if (!build_has_or_refuses({"PSK-AES128-CCM-8", "PSK-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-CCM-8",
                             "ECDHE-ECDSA-AES128-GCM-SHA256"}, standalone))
    return;
  auto server = certificate_server(server_options);
  const std::vector<std::string> certificate{"ca_file=" + cert_file("ca.pem"), "server_name=localhost"};
  const std::vector<std::string> psk{"ca_file=none", "psk_identity=device-7", std::string("psk=") + key_hex};
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases{
      {"TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", certificate},
      {"TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8", certificate},
      {"TLS-PSK-WITH-AES-128-GCM-SHA256", psk},
      {"TLS-PSK-WITH-AES-128-CCM-8", psk},
  };
  for (const auto& [suite, credentials] : cases) {
    INFO(suite);
    std::vector<std::string> options = credentials;
    options.push_back("force_ciphersuite=" + suite);
    const Finished done = mbedtls_client(server.port, options);
    CHECK(done.exit_code == 0);
    CHECK(contains(done.out, "[ Ciphersuite is " + suite + " ]"));
    CHECK(contains(done.out, "Read from server: 51 bytes read"));
  }
  // Mbed TLS's default offer (165 suites: more than wolfSSL reads by default), and resumption.
  std::vector<std::string> defaults = psk;
  const Finished offered_all = mbedtls_client(server.port, defaults);
  CHECK(offered_all.exit_code == 0);
  CHECK(contains(offered_all.out, "Read from server: 51 bytes read"));
  std::vector<std::string> resuming = certificate;
  resuming.insert(resuming.end(), {"reconnect=1", "debug_level=3"});
  const Finished resumed = mbedtls_client(server.port, resuming);
  CHECK(resumed.exit_code == 0);
  CHECK(contains(resumed.out, "a session has been resumed"));

  const Finished stopped = server.stop();
  CHECK(contains(stopped.err, "cipher ECDHE-ECDSA-AES128-CCM-8, DTLSv1.2"));
  CHECK(contains(stopped.err, "cipher PSK-AES128-CCM-8, DTLSv1.2, CID off, PSK identity device-7"));
  CHECK(contains(stopped.err, "cipher PSK-AES128-GCM-SHA256, DTLSv1.2, CID off, PSK identity device-7"));
  CHECK(contains(stopped.err, "resumed yes"));
}

// The devices' stack asks for a DTLS 1.2 Connection ID (RFC 9146) and its NAT rebinds mid-session: the relay moves
// it to a new source port just before its second datagram that carries the ID (its Finished, or its first
// message when the Finished came packed with the key exchange: in either case after the server's keys are
// set), so the later exchanges come from an address the server has never seen.
TEST_CASE("interop: Mbed TLS ssl_client2 with a DTLS 1.2 Connection ID keeps its session when its NAT rebinds", "[dtls][field][interop][mbedtls][cid]") {
  FOR_EACH_SERVER_MODE();
  if (current_mode == "blocking") return;   // (serves one client at a time by address: --cid is for event and threaded)
  if (!dtls::connection_id_available()) {   // Debian's wolfSSL: refused in one line, never a silent downgrade
    Process refused({program_path("DTLS_ECHO_SERVER"), "--port", "0", "--cert", cert_file("server-ecdsa.pem"),
                     "--key", cert_file("server-ecdsa.key"), "--cid"});
    const Finished exited = refused.wait(10s);
    CHECK(exited.exit_code == 1);
    CHECK(contains(exited.err, "has no Connection IDs"));
    return;
  }
  auto server = certificate_server({"--cid"});
  dgram::testing::UdpRelay relay("127.0.0.1", static_cast<std::uint16_t>(std::stoi(server.port)), {});
  relay.move_clients_before(static_cast<std::uint8_t>(dtls::record::ContentType::tls12_cid), 2);
  const Finished done = mbedtls_client(std::to_string(relay.port()), {"ca_file=" + cert_file("ca.pem"),
                                                                      "server_name=localhost", "cid=1", "exchanges=3"});
  CHECK(done.exit_code == 0);
  CHECK(contains(done.out, "(initial handshake) Use of Connection ID has been negotiated."));
  CHECK(relay.moves() == 1);
  std::size_t replies = 0;
  for (std::size_t at = done.out.find("Read from server: 51 bytes read"); at != std::string::npos;
       at = done.out.find("Read from server: 51 bytes read", at + 1))
    ++replies;
  CHECK(replies == 3);   // the exchanges after the move answered at the new address

  const Finished stopped = server.stop();
  CHECK(contains(stopped.err, "DTLSv1.2, CID on"));
  CHECK(contains(stopped.err, "served 1 session, 3 messages"));
  CHECK(contains(stopped.err, " 1 moved to a new address"));
}

TEST_CASE("interop: our client against Mbed TLS ssl_server2: certificate and PSK on CCM-8, resumption", "[dtls][field][interop][mbedtls]") {
  if (!has_suite("PSK-AES128-CCM-8")) return;   // (the refusal is checked by the server cases above)
  std::string port;   // a free one, released for ssl_server2 (which takes no port 0)
  {
    const auto probe = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
    std::error_code ec;
    port = std::to_string(probe.local_endpoint(ec).port());
  }
  Process server({peer_program("mbedtls-ssl-server2"), "dtls=1", "server_addr=127.0.0.1", "server_port=" + port,
                  "crt_file=" + cert_file("server-ecdsa.pem"), "key_file=" + cert_file("server-ecdsa.key"), "ca_file=none",
                  "psk_identity=dev1", std::string("psk=") + key_hex});
  REQUIRE(server.read_until("Waiting for a remote connection", 10s));
  const std::string request = "GET / HTTP/1.0";   // ssl_server2 answers a request with a page naming the suite

  const Finished certificate = dgram_client(port, request, {"--ca", cert_file("ca.pem"), "--server-name", "localhost",
                                                            "--ciphers", "ECDHE-ECDSA-AES128-CCM-8", "--resume"});
  INFO("client: " << certificate.err);
  CHECK(certificate.exit_code == 0);
  CHECK(contains(certificate.out, "Successful connection using: TLS-ECDHE-ECDSA-WITH-AES-128-CCM-8"));
  CHECK(contains(certificate.err, "session resumed: yes"));
  const Finished psk = dgram_client(port, request, {"--psk-identity", "dev1", "--psk-hex", key_hex, "--ciphers", "PSK-AES128-CCM-8"});
  CHECK(psk.exit_code == 0);
  CHECK(contains(psk.out, "Successful connection using: TLS-PSK-WITH-AES-128-CCM-8"));
  CHECK(contains(psk.err, "cipher PSK-AES128-CCM-8, resumed no, CID off, PSK identity dev1"));
}

TEST_CASE("interop: node-dtls-client with a pre-shared key on GCM and CCM-8", "[dtls][field][interop][node]") {
  FOR_EACH_SERVER_MODE();
  const TempDir dir;
  const std::string keys = dir.file("keys.txt", psk_lines(1000));
  if (!build_has_or_refuses({"PSK-AES128-CCM-8", "PSK-AES128-GCM-SHA256"}, {"--psk-file", keys, "--coap"})) return;
  const std::string client = program_path("NODE_PSK_CLIENT");
  if (access((std::filesystem::path(client).parent_path() / "node_modules" / "node-dtls-client").c_str(), F_OK) != 0)
    FAIL("node-dtls-client is missing: run scripts/fetch-peers.sh (scripts/install-deps.sh does)");
  auto server = psk_server(keys, {"--coap"});
  for (const char* suite : {"TLS_PSK_WITH_AES_128_CCM_8", "TLS_PSK_WITH_AES_128_GCM_SHA256"}) {
    INFO(suite);
    Process node({"/usr/bin/env", "node", client, "127.0.0.1", server.port, "device-7", key_hex, suite, "from node"});
    const Finished done = node.wait(20s);
    CHECK(done.exit_code == 0);
    CHECK(done.out == "echo: from node\n");
  }
  const Finished stopped = server.stop();
  CHECK(contains(stopped.err, "cipher PSK-AES128-CCM-8, DTLSv1.2, CID off, PSK identity device-7, 1 message"));
  CHECK(contains(stopped.err, "cipher PSK-AES128-GCM-SHA256, DTLSv1.2, CID off, PSK identity device-7, 1 message"));
}

// The SHA-256 of `key_file`'s public key (its DER SubjectPublicKeyInfo), as openssl computes it: the fingerprint
// a raw public key is pinned and logged by.
std::string key_sha256(const std::string& key_file) {
  Process openssl({"/bin/sh", "-c", "openssl pkey -in '" + key_file + "' -pubout -outform DER | sha256sum"});
  const Finished done = openssl.wait(10s);
  REQUIRE(done.exit_code == 0);
  return done.out.substr(0, 64);
}

// `key_file`'s public key as a PEM PUBLIC KEY block.
std::string public_key_pem(const std::string& key_file) {
  Process openssl({"/usr/bin/openssl", "pkey", "-in", key_file, "-pubout"});
  const Finished done = openssl.wait(10s);
  REQUIRE(done.exit_code == 0);
  return done.out;
}

// With a wolfSSL without raw public keys, --raw-key is refused in one line naming the fix. True when it has them.
bool raw_keys_or_refusal() {
  if (dtls::raw_public_keys_available()) return true;
  Process server({program_path("DTLS_ECHO_SERVER"), "--port", "0", "--raw-key", "--key", cert_file("server-ecdsa.key")});
  const Finished refused = server.wait(10s);
  CHECK(refused.exit_code == 1);
  CHECK(contains(refused.err, "which has no raw public keys (configure dgram with -Dwolfssl=optimized)"));
  return false;
}

TEST_CASE("raw public keys: client and server pin each other; an unpinned key or a certificate is refused by name", "[dtls][field][rpk]") {
  FOR_EACH_SERVER_MODE();
  if (!raw_keys_or_refusal()) return;
  const TempDir dir;
  const std::string client_key = cert_file("client.key");
  const std::string server_key = cert_file("server-ecdsa.key");
  const std::string other_key = cert_file("server-rsa.key");
  // The server pins the client by PEM block (and an unrelated fingerprint); the client the server by fingerprint
  // written with colons.
  std::string server_fingerprint = key_sha256(server_key);
  std::string with_colons;
  for (std::size_t i = 0; i < server_fingerprint.size(); i += 2)
    with_colons += (i ? ":" : "") + server_fingerprint.substr(i, 2);
  const std::string clients = dir.file("clients.pins", "# devices\n" + public_key_pem(client_key) +
                                                           std::string(64, 'a') + "\n");
  // (and the other as sha256sum prints it: "HASH  -")
  const std::string servers = dir.file("servers.pins", with_colons + "\n" + key_sha256(cert_file("ca.key")) + "  -\n");
  auto server = dgram::testing::start_listening(dgram::testing::server_argv(
      {program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0", "--raw-key", "--key", server_key,
       "--pinned-keys", clients}));

  const Finished ok = dgram_client(server.port, "raw keys", {"--raw-key", "--key", client_key, "--pinned-keys", servers,
                                                             "--resume"});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == "raw keys\nraw keys\n");
  CHECK(contains(ok.err, "session resumed: no"));   // a server that pins keys checks one on every handshake
  CHECK(contains(ok.err, "raw key SHA-256 " + server_fingerprint));

  const Finished unpinned = dgram_client(server.port, "x", {"--raw-key", "--key", other_key, "--pinned-keys", servers});
  CHECK(unpinned.exit_code == 1);
  CHECK(contains(unpinned.err, "the server refused our raw public key (alert bad_certificate)"));
  const std::string wrong_pins = dir.file("wrong.pins", public_key_pem(other_key));
  const Finished server_unpinned = dgram_client(server.port, "x", {"--raw-key", "--key", client_key, "--pinned-keys", wrong_pins});
  CHECK(server_unpinned.exit_code == 1);
  CHECK(contains(server_unpinned.err, "the server's raw public key (SHA-256 " + server_fingerprint + ") is not pinned here"));
  const Finished certificate = dgram_client(server.port, "x", {"--cert", cert_file("client.pem"), "--key", client_key,
                                                               "--ca", cert_file("ca.pem")});
  CHECK(certificate.exit_code == 1);
  CHECK(contains(certificate.err, "the server uses raw public keys (RFC 7250), and we use certificates"));

  const Finished stopped = server.stop();
  CHECK(stopped.exit_code == 0);
  CHECK(contains(stopped.err, "raw key SHA-256 " + key_sha256(client_key) + ", 1 message"));
  CHECK(contains(stopped.err, "the client's raw public key (SHA-256 " + key_sha256(other_key) + ") is not pinned here"));
}

TEST_CASE("raw public keys: bad pinned-key files and option mistakes are one line each", "[dtls][field][rpk]") {
  if (!raw_keys_or_refusal()) return;
  const TempDir dir;
  const auto server_with = [&](std::vector<std::string> options) {
    std::vector<std::string> argv{program_path("DTLS_ECHO_SERVER"), "--port", "0"};
    argv.insert(argv.end(), options.begin(), options.end());
    Process server(argv);
    return server.wait(10s);
  };
  const std::string key = cert_file("server-ecdsa.key");
  const Finished bad_line = server_with({"--raw-key", "--key", key, "--pinned-keys", dir.file("a", "# ok\nnot a key\n")});
  CHECK(bad_line.exit_code == 1);
  CHECK(contains(bad_line.err, "line 2: expected a PEM PUBLIC KEY block or a SHA-256 fingerprint (64 hex digits)"));
  const Finished unended = server_with({"--raw-key", "--key", key, "--pinned-keys",
                                        dir.file("b", "-----BEGIN PUBLIC KEY-----\nMFkw\n")});
  CHECK(unended.exit_code == 1);
  CHECK(contains(unended.err, "a PUBLIC KEY block has no END line"));
  const Finished empty = server_with({"--raw-key", "--key", key, "--pinned-keys", dir.file("c", "# nothing\n")});
  CHECK(empty.exit_code == 1);
  CHECK(contains(empty.err, "holds no key"));
  const Finished missing = server_with({"--raw-key", "--key", key, "--pinned-keys", "/nonexistent.pins"});
  CHECK(missing.exit_code == 1);
  CHECK(contains(missing.err, "cannot read pinned keys file '/nonexistent.pins'"));
  const Finished both = server_with({"--raw-key", "--key", key, "--cert", cert_file("server-ecdsa.pem")});
  CHECK(both.exit_code == 2);
  CHECK(contains(both.err, "--raw-key takes the place of --cert"));
  const Finished keyless = server_with({"--raw-key"});
  CHECK(keyless.exit_code == 2);
  CHECK(contains(keyless.err, "--raw-key presents the public half of --key"));
}

TEST_CASE("interop: gnutls-cli presents and accepts raw public keys", "[dtls][field][interop][gnutls][rpk]") {
  FOR_EACH_SERVER_MODE();
  if (!raw_keys_or_refusal()) return;
  const TempDir dir;
  const std::string client_key = cert_file("client.key");
  const std::string pins = dir.file("clients.pins", key_sha256(client_key) + "\n");
  auto server = dgram::testing::start_listening(dgram::testing::server_argv(
      {program_path("DTLS_ECHO_SERVER"), "--mode", current_mode, "--port", "0", "--raw-key", "--key",
       cert_file("server-ecdsa.key"), "--pinned-keys", pins}));
  // gnutls-cli offers both certificate types (raw key and X.509) and sends its raw key: what wolfSSL 5.7.2 misread
  // before dgram's fix (subprojects/packagefiles/wolfssl). --insecure: gnutls-cli has no pin for our key.
  const std::string client_pem = dir.file("client.pem", public_key_pem(client_key));
  const std::string client_pkcs8 = dir.file("client.p8", [&] {
    Process openssl({"/usr/bin/openssl", "pkey", "-in", client_key});
    return openssl.wait(10s).out;
  }());
  gnutls_echo(server.port, "raw from gnutls", {"--rawpkkeyfile", client_pkcs8, "--rawpkfile", client_pem, "--insecure",
                                                "--priority", "NORMAL:-VERS-ALL:+VERS-DTLS1.2:+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK"});
  const Finished stopped = server.stop();
  CHECK(contains(stopped.err, "raw key SHA-256 " + key_sha256(client_key) + ", 1 message"));
}

TEST_CASE("CoAP profile over DTLS 1.3: AES-128-CCM, short messages included", "[dtls][field][dtls13]") {
  FOR_EACH_SERVER_MODE();
  if (!dtls::dtls13_available()) return;   // (Debian's wolfSSL refuses --dtls 1.3: tests/test_dtls13_interop.cpp)
  auto server = certificate_server({"--dtls", "1.3", "--coap"});
  std::vector<std::string> argv{program_path("DTLS_ECHO_CLIENT"), "--port", server.port, "--ca", cert_file("ca.pem"),
                                "--server-name", "localhost", "--dtls", "1.3", "--coap", "--verbose"};
  Process client(argv);
  const Finished done = client.communicate("x\nshort\na line of more than sixteen bytes\n", 15s);
  CHECK(done.exit_code == 0);
  CHECK(done.out == "x\nshort\na line of more than sixteen bytes\n");
  CHECK(contains(done.err, "DTLSv1.3, cipher TLS13-AES128-CCM-SHA256"));
  const Finished stopped = server.stop();
  CHECK(contains(stopped.err, "cipher TLS13-AES128-CCM-SHA256, DTLSv1.3, CID off, not authenticated, 3 messages"));
}
