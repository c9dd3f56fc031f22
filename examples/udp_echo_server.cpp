// udp-echo-server: echoes every datagram back to its sender, byte for byte, for any number of clients on one
// socket. Chapter 1 of the tutorial, with batch I/O (recvmmsg/sendmmsg) and a clean stop on SIGINT/SIGTERM.
#include <fmt/core.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <system_error>
#include <vector>

#include "common/cli.hpp"
#include "common/peer.hpp"
#include "common/stop_signal.hpp"

import dgram;

namespace ex = dgram::examples;

namespace {

struct Served {
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
  std::uint64_t send_failures = 0;
};

Served serve(dgram::UdpSocket& socket) {
  Served served;
  constexpr std::size_t batch = dgram::UdpSocket::max_batch;
  std::vector<std::byte> storage(batch * 65536);
  std::array<dgram::ReceiveSlot, batch> slots;
  std::array<dgram::SendSlot, batch> replies;
  for (std::size_t i = 0; i < batch; ++i) slots[i].buffer = std::span(storage).subspan(i * 65536, 65536);
  while (!ex::stop_requested()) {
    std::error_code ec;
    const std::size_t count = socket.receive_batch(slots, dgram::Deadline::after(ex::stop_check_interval), ec);
    if (ec == dgram::errc::timeout || ec == dgram::errc::interrupted) continue;
    if (ec) throw std::system_error(ec, "receive");
    for (std::size_t i = 0; i < count; ++i) {
      replies[i] = {slots[i].buffer.first(slots[i].size), slots[i].peer};
      served.bytes += slots[i].size;
    }
    served.datagrams += count;
    for (std::size_t sent = 0; sent < count;) {
      sent += socket.send_batch(std::span(replies).subspan(sent, count - sent), ec);
      if (ec) {   // one peer's failure (e.g. its ICMP error) must not stop the others' replies
        ++served.send_failures;
        ++sent;
      }
    }
  }
  return served;
}

}  // namespace

int main(int argc, char** argv) {
  ex::CommandLine command_line{"udp-echo-server", "[--bind ADDR] [--port N]",
                               {{"bind", "ADDR", "address or host name to listen on (default 127.0.0.1; :: for IPv6 and IPv4)"},
                                {"port", "N", "UDP port (default 11111; 0 picks a free port)"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    const ex::ListenAddress address = ex::listen_address(command_line);
    ex::install_stop_handlers();
    dgram::UdpSocket socket = dgram::UdpSocket::bind(address.local, address.options);
    std::error_code ec;
    fmt::print("listening on {}\n", socket.local_endpoint(ec).to_string());
    std::fflush(stdout);
    const Served served = serve(socket);
    fmt::print(stderr, "udp-echo-server: served {} ({}), {}\n", ex::plural(served.datagrams, "datagram"),
               ex::plural(served.bytes, "byte"), ex::plural(served.send_failures, "send failure"));
    return 0;
  });
}
