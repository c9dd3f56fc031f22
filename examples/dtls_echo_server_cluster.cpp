// dtls-echo-server's cluster options (event and threaded modes): the shared key file, this node's number and
// every node's cluster address, the rotation periods, and what SIGTERM does (docs/deploy.md).
#include <fmt/core.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/cli.hpp"
#include "common/peer.hpp"
#include "dtls_echo_server.hpp"

import dgram;

namespace dgram::examples {
namespace {

// "10.0.0.1:7000", "[fd00::1]:7000" or "node-1.dgram:7000" (a host name, resolved now: a StatefulSet's pods
// have stable names, not addresses).
Endpoint node_address(std::string_view item, std::size_t node) {
  std::error_code ec;
  std::string reason;
  const Endpoint numeric = Endpoint::parse(item, ec, &reason);
  if (!ec) return numeric;
  const std::size_t colon = item.rfind(':');
  const std::string host(item.substr(0, colon == std::string_view::npos ? 0 : colon));
  const std::string port_text(colon == std::string_view::npos ? "" : item.substr(colon + 1));
  char* end = nullptr;
  const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (host.empty() || port_text.empty() || *end != '\0' || port == 0 || port > 65535)
    throw UsageError(fmt::format("--cluster-nodes: '{}' (node {}) is not ADDR:PORT or HOST:PORT", item, node));
  const auto found = first_address(host, static_cast<std::uint16_t>(port), reason);
  if (!found) throw std::runtime_error(fmt::format("--cluster-nodes: cannot resolve '{}' (node {}): {}", host, node, reason));
  return *found;
}

std::vector<Endpoint> node_addresses(std::string_view list) {
  std::vector<Endpoint> nodes;
  for (std::size_t start = 0; start <= list.size();) {
    const std::size_t end = std::min(list.find(',', start), list.size());
    const std::string_view item = list.substr(start, end - start);
    nodes.push_back(node_address(item, nodes.size()));
    start = end + 1;
  }
  return nodes;
}

}  // namespace

std::vector<Option> cluster_options() {
  return {
      {"cluster-key", "FILE", "event and threaded modes: a cluster's shared secret (32 bytes, raw or hex; mode 600): cookies and session tickets every node with it accepts"},
      {"node", "N", "this node's number in --cluster-nodes: records whose Connection ID names another node are forwarded to it (needs --cluster-key and --cid)"},
      {"cluster-nodes", "LIST", "every node's cluster address, ADDR:PORT or HOST:PORT, comma-separated in node order (this node binds its own)"},
      {"node-bits", "B", "leading Connection ID bits that name the node, 1-8 (default 8: up to 256 nodes); the next 8 name the worker"},
      {"cookie-rotation-s", "S", "with --cluster-key: cookie secrets change every S seconds, in step on every node (default 30)"},
      {"ticket-rotation-s", "S", "with --cluster-key: ticket keys change every S seconds; a ticket resumes for one to two periods (default 3600)"},
      {"drain-timeout-ms", "T", "event and threaded modes: SIGTERM drains (no new handshakes, sessions served until they end or T ms pass, then close_notify) instead of stopping; a second SIGTERM or SIGINT stops at once"},
      {"health-file", "PATH", "event and threaded modes: a file that exists while the server takes new handshakes (removed when it drains or stops)"},
  };
}

void apply_cluster_options(const CommandLine& command_line, const std::string& mode, EchoServerOptions& server) {
  for (const char* option : {"cluster-key", "node", "cluster-nodes", "node-bits", "cookie-rotation-s", "ticket-rotation-s",
                             "drain-timeout-ms", "health-file"}) {
    if (mode == "blocking" && command_line.value(option))
      throw UsageError(fmt::format("--{} needs --mode event or threaded", option));
  }
  const auto key_file = command_line.value("cluster-key");
  for (const char* option : {"node", "cookie-rotation-s", "ticket-rotation-s"}) {
    if (!key_file && command_line.value(option)) throw UsageError(fmt::format("--{} needs --cluster-key", option));
  }
  if (key_file) {
    std::string why;
    const auto secret = dtls::read_shared_secret(*key_file, why);
    if (!secret) throw std::runtime_error(why);
    dtls::SharedKeys keys;
    keys.secret = *secret;
    keys.cookie_rotation = std::chrono::seconds{command_line.integer("cookie-rotation-s", 30, 1, 86'400)};
    keys.ticket_rotation = std::chrono::seconds{command_line.integer("ticket-rotation-s", 3600, 1, 604'800)};
    server.config.shared_keys = keys;
  }
  const auto node_list = command_line.value("cluster-nodes");
  if (command_line.value("node").has_value() != node_list.has_value())
    throw UsageError("--node and --cluster-nodes go together");
  if (!node_list && command_line.value("node-bits")) throw UsageError("--node-bits needs --node and --cluster-nodes");
  if (node_list) {
    if (!server.config.connection_id)
      throw UsageError("--node needs --cid: a Connection ID is how a node knows a record is another node's");
    dtls::ClusterSettings cluster;
    cluster.layout = {static_cast<std::uint8_t>(command_line.integer("node-bits", 8, 1, 8)), 8};
    cluster.nodes = node_addresses(*node_list);
    if (cluster.nodes.size() > cluster.layout.max_nodes())
      throw UsageError(fmt::format("--cluster-nodes names {} nodes; --node-bits {} allows {}", cluster.nodes.size(),
                                   cluster.layout.node_bits, cluster.layout.max_nodes()));
    cluster.node = static_cast<std::uint32_t>(command_line.integer("node", 0, 0, static_cast<std::int64_t>(cluster.nodes.size()) - 1));
    server.cluster = cluster;
  }
  if (command_line.value("drain-timeout-ms"))
    server.drain_timeout = std::chrono::milliseconds{command_line.integer("drain-timeout-ms", 30'000, 0, 86'400'000)};
  server.health_file = command_line.value("health-file");
}

}  // namespace dgram::examples
