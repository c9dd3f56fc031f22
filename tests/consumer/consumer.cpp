// Round-trips one datagram over loopback through the library, imported as a module.
#include <chrono>
#include <cstdio>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

import dgram;

int main() {
  using namespace std::chrono_literals;
  auto server = dgram::UdpSocket::bind(dgram::Endpoint::loopback(dgram::Family::ipv4, 0));
  std::error_code ec;
  auto client = dgram::UdpSocket::connect(server.local_endpoint(ec));
  constexpr std::string_view hello = "hello from a consumer";
  client.send_to(std::as_bytes(std::span(hello)), {}, ec);
  std::vector<std::byte> buffer(64);
  const auto got = server.receive_from(buffer, dgram::Deadline::after(5s), ec);
  if (ec || got.size != hello.size()) {
    std::fprintf(stderr, "consumer: round trip failed: %s\n", ec.message().c_str());
    return 1;
  }
  std::printf("consumer: received %zu bytes from %s\n", got.size, got.peer.to_string().c_str());
  return 0;
}
