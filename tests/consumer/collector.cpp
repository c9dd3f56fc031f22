// A telemetry collector written against dgram's public interface only, as an application would: a DTLS server
// that serves only clients with a certificate signed by its CA, counts each session's readings, answers every
// reading with "ack N", and prints one line per session naming the client's certificate. SIGINT or SIGTERM
// stops it: open sessions are closed (close_notify) and summarised, and it exits 0.
//
// Usage: collector CERTS_DIR [ADDRESS:PORT]   (port 0, the default, picks a free one; the first line on stdout
// is "listening on ADDRESS:PORT")
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>

import dgram;

namespace dtls = dgram::dtls;

namespace {

// What the signal handler stops: EventServer::stop() is safe in a signal handler.
std::atomic<dtls::EventServer*> running_server{nullptr};

extern "C" void stop_on_signal(int) {
  if (dtls::EventServer* server = running_server.load()) server->stop();
}

class Collector final : public dtls::SessionHandler {
 public:
  void on_established(dtls::EventServer&, dtls::SessionId id, const dtls::SessionInfo& session) override {
    readings_[id] = 0;   // per-session state, keyed by SessionId
    std::printf("collector: %s connected: %s\n", session.peer.to_string().c_str(), dtls::to_string(session).c_str());
  }
  void on_message(dtls::EventServer& server, dtls::SessionId id, std::span<const std::byte>) override {
    const std::uint64_t count = ++readings_[id];
    const std::string ack = "ack " + std::to_string(count);
    std::error_code ec;
    server.send(id, std::as_bytes(std::span(ack)), ec);
    if (ec) std::fprintf(stderr, "collector: could not acknowledge a reading: %s\n", ec.message().c_str());
  }
  void on_ended(dtls::EventServer&, const dtls::SessionSummary& summary) override {
    std::printf("collector: session %s (%s) ended (%s): %llu readings\n", summary.session.peer.to_string().c_str(),
                dtls::identity_of(summary.session).c_str(), dtls::to_string(summary.end).c_str(),
                static_cast<unsigned long long>(readings_[summary.id]));
    std::fflush(stdout);
    readings_.erase(summary.id);
  }
  void on_handshake_failed(dtls::EventServer&, const dgram::Endpoint& peer, dtls::FailureKind kind,
                           const std::string& why) override {
    std::printf("collector: refused %s (%s): %s\n", peer.to_string().c_str(), dtls::to_string(kind).c_str(), why.c_str());
    std::fflush(stdout);
  }

 private:
  std::unordered_map<dtls::SessionId, std::uint64_t> readings_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || std::string(argv[1]) == "--help") {
    std::fprintf(argc == 2 ? stdout : stderr, "usage: collector CERTS_DIR [ADDRESS:PORT]\n");
    return argc == 2 ? 0 : 2;
  }
  const std::string certs = argv[1];
  std::error_code ec;
  std::string reason;
  const dgram::Endpoint local = dgram::Endpoint::parse(argc == 3 ? argv[2] : "127.0.0.1:0", ec, &reason);
  if (ec) {
    std::fprintf(stderr, "collector: %s\n", reason.c_str());
    return 2;
  }
  dtls::DtlsConfig config =
      dtls::server_config(dtls::Pem::file(certs + "/server-ecdsa.pem"), dtls::Pem::file(certs + "/server-ecdsa.key"));
  dtls::require_client_certificates(config, dtls::Pem::file(certs + "/ca.pem"));
  const auto context = dtls::DtlsContext::create(config, ec, &reason);
  if (!context) {
    std::fprintf(stderr, "collector: %s\n", reason.c_str());
    return 1;
  }
  Collector collector;
  dtls::EventServer server(context, local, dtls::EventServerSettings{}, collector, ec);
  if (ec) {
    std::fprintf(stderr, "collector: cannot serve on %s: %s\n", local.to_string().c_str(), ec.message().c_str());
    return 1;
  }
  running_server = &server;
  std::signal(SIGINT, stop_on_signal);
  std::signal(SIGTERM, stop_on_signal);
  std::printf("listening on %s\n", server.local_endpoint().to_string().c_str());
  std::fflush(stdout);
  server.run(ec);
  running_server = nullptr;
  if (ec) {
    std::fprintf(stderr, "collector: %s\n", ec.message().c_str());
    return 1;
  }
  return 0;
}
