// A device that reports to the collector (collector.cpp), written against dgram's public interface only: a
// blocking DTLS client with a client certificate that sends five readings and checks each acknowledgement.
//
// Usage: reporter CERTS_DIR ADDRESS:PORT [--anonymous]   (--anonymous: no client certificate, to be refused)
#include <chrono>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

import dgram;

namespace dtls = dgram::dtls;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const bool anonymous = argc == 4 && std::string_view(argv[3]) == "--anonymous";
  if (argc < 3 || (argc == 4 && !anonymous) || argc > 4) {
    std::fprintf(stderr, "usage: reporter CERTS_DIR ADDRESS:PORT [--anonymous]\n");
    return 2;
  }
  const std::string certs = argv[1];
  std::error_code ec;
  std::string reason;
  const dgram::Endpoint server = dgram::Endpoint::parse(argv[2], ec, &reason);
  if (ec) {
    std::fprintf(stderr, "reporter: %s\n", reason.c_str());
    return 2;
  }
  dtls::DtlsConfig config = dtls::client_config(dtls::Pem::file(certs + "/ca.pem"), "localhost");
  if (!anonymous) {
    config.certificate_chain = dtls::Pem::file(certs + "/client.pem");
    config.private_key = dtls::Pem::file(certs + "/client.key");
  }
  const auto context = dtls::DtlsContext::create(config, ec, &reason);
  if (!context) {
    std::fprintf(stderr, "reporter: %s\n", reason.c_str());
    return 1;
  }
  auto socket = dgram::UdpSocket::connect(server, ec);
  if (ec) {
    std::fprintf(stderr, "reporter: %s\n", ec.message().c_str());
    return 1;
  }
  dtls::DtlsHandshaker handshaker(context);
  const auto channel = handshaker.connect_dtls(socket, server, dgram::Deadline::after(10s), ec);
  if (!channel) {
    std::fprintf(stderr, "reporter: no session with %s (%s): %s\n", server.to_string().c_str(),
                 dtls::to_string(handshaker.failure_kind()).c_str(), handshaker.failure().c_str());
    return 1;
  }
  std::printf("reporter: connected to %s\n", dtls::identity_of(channel->info()).c_str());
  std::vector<std::byte> buffer(channel->max_message_size());
  for (int reading = 1; reading <= 5; ++reading) {
    const std::string text = "temperature " + std::to_string(20 + reading);
    channel->send(std::as_bytes(std::span(text)), ec);
    const std::size_t size = ec ? 0 : channel->receive(buffer, dgram::Deadline::after(5s), ec);
    const std::string answer(reinterpret_cast<const char*>(buffer.data()), size);
    if (ec || answer != "ack " + std::to_string(reading)) {
      std::fprintf(stderr, "reporter: reading %d: %s\n", reading, ec ? ec.message().c_str() : ("got '" + answer + "'").c_str());
      return 1;
    }
  }
  channel->close(ec);
  std::printf("reporter: 5 readings acknowledged\n");
  return 0;
}
