// udp-echo-client: sends each stdin line as one datagram and prints each reply on its own line.
#include <fmt/core.h>

#include <chrono>
#include <iostream>
#include <string>

#include "common/cli.hpp"
#include "common/line_client.hpp"
#include "common/peer.hpp"

import dgram;

namespace ex = dgram::examples;

int main(int argc, char** argv) {
  ex::CommandLine command_line{
      "udp-echo-client", "[--host H] [--port N] [--timeout-ms T] [--retries R] < lines",
      {{"host", "H", "server host name or address (default 127.0.0.1)"},
       {"port", "N", "server UDP port (default 11111)"},
       {"timeout-ms", "T", "wait for each reply this long before retrying (default 1000)"},
       {"retries", "R", "send a line again this many times when no reply comes (default 3)"}}};
  return ex::run_program(command_line, argc, argv, [&] {
    const dgram::Endpoint server = ex::resolve_peer(command_line);
    const ex::LineClientSettings settings = ex::line_client_settings(command_line);
    dgram::UdpSocket socket = dgram::UdpSocket::connect(server);
    std::error_code ec;
    const auto channel = dgram::PlainHandshaker{}.connect(socket, server, dgram::Deadline::never(), ec);
    dgram::throw_if(ec, "connect");
    return ex::run_line_client(*channel, settings, std::cin);
  });
}
