// A UDP relay on loopback that sits between clients and a server and injects faults (loss, duplication,
// reordering, corruption), so DTLS tests can prove that handshakes and echoes survive a hostile path.
// Plain C++ and POSIX sockets: no dgram modules and no Catch2, so any test (or tool) can use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dgram::testing {

// Each probability is in [0, 1] and is drawn independently for every datagram in each direction.
struct RelayFaults {
  double drop = 0;        // probability a datagram is lost
  double duplicate = 0;   // probability it is delivered twice (back to back)
  double reorder = 0;     // probability it is held back and delivered after the next datagram in that
                          // direction for that client (or after at most 20 ms if none follows)
  double corrupt = 0;     // probability it is mutated: one of (flip 1-3 distinct random bits, truncate to a
                          // random shorter length >= 1, append 1-16 random bytes)
  std::uint64_t seed = 1; // deterministic fault pattern: the same seed and the same order of arrivals
                          // give the same faults (arrival order across sockets is up to the scheduler)
};

// Over both directions. Every datagram received ends up either forwarded or dropped (except one still held
// back for reordering); duplicated, reordered and corrupted count datagrams that were also forwarded or
// dropped, so they overlap with those two.
struct RelayCounts {
  std::uint64_t forwarded = 0;   // sent on at least once
  std::uint64_t dropped = 0;     // lost by choice, from a client beyond the cap, or refused by the kernel
  std::uint64_t duplicated = 0;  // whose second copy was sent too
  std::uint64_t reordered = 0;   // held back behind a later datagram
  std::uint64_t corrupted = 0;   // mutated before sending
};

class UdpRelay {
 public:
  // Listens on `listen_host` ("127.0.0.1" or "::1", numeric only) port 0 and forwards to
  // server_host:server_port (numeric). Each distinct client address gets its own upstream UDP socket
  // (ephemeral port), so the server sees one peer per client and replies go back to the right client; at most
  // 4096 clients, after which datagrams from new ones are dropped (and counted) so a test bug cannot exhaust
  // fds. Faults apply independently to both directions (client->server and server->client). Starts a
  // thread; throws std::runtime_error if sockets cannot be made (or a host is not a numeric address), and
  // std::invalid_argument for a probability outside [0, 1].
  UdpRelay(const std::string& server_host, std::uint16_t server_port, RelayFaults faults,
           const std::string& listen_host = "127.0.0.1");
  // Stops the thread (eventfd wake-up, not a polled flag) and joins; closes every socket. Datagrams still
  // held back for reordering are discarded.
  ~UdpRelay();
  UdpRelay(const UdpRelay&) = delete;
  UdpRelay& operator=(const UdpRelay&) = delete;

  std::uint16_t port() const;    // where clients should send (on listen_host)
  RelayCounts counts() const;    // thread-safe, consistent snapshot
  std::size_t clients() const;   // distinct client addresses seen and given an upstream socket (<= 4096)
  // NAT rebinding: from now on every client's datagrams reach the server from a new port (replies to the old
  // one are no longer received). Returns once done (false if the relay did not answer within 5 s).
  bool move_clients();
  // The same, done by the relay itself just before it forwards the `nth` client datagram (from now on) whose
  // first byte is `first_byte`: a rebinding at a chosen point of a session whose peer the test does not drive
  // (a DTLS 1.2 record with a Connection ID starts with 25). moves() says whether it has happened.
  void move_clients_before(std::uint8_t first_byte, std::size_t nth);
  std::uint64_t moves() const;

 private:
  struct Impl;   // sockets, thread and random state live in the .cpp: this header stays free of POSIX
  std::unique_ptr<Impl> impl_;
};

}  // namespace dgram::testing
