// dgram.handshaker: turning an insecure datagram path into a session with one peer.
//
// A Handshaker runs whatever exchange a protocol needs (none for raw UDP, a DTLS handshake for DTLS) over a
// Transport and yields a Channel: a datagram session with exactly one peer. Programs written against Channel
// (the echo clients, for one) work unchanged over every variant.
module;
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <system_error>
#include <vector>
export module dgram.handshaker;

export import dgram.transport;

export namespace dgram {

// A datagram session with one peer. It borrows the Transport it runs on, which must outlive it.
class Channel {
 public:
  virtual ~Channel() = default;

  // Sends one message to the peer. Errors as Transport::send_to, plus errc::closed after close().
  virtual void send(std::span<const std::byte> message, std::error_code& ec) = 0;

  // Waits for the peer's next message or the deadline. Datagrams from other endpoints are dropped and
  // counted in foreign_datagrams(), never returned. Errors as Transport::receive_from, plus errc::closed when
  // the peer closed the session.
  virtual std::size_t receive(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) = 0;

  // Ends the session (DTLS sends close_notify; raw UDP has nothing to say). Idempotent.
  virtual void close(std::error_code& ec) = 0;

  virtual Endpoint peer() const noexcept = 0;
  // The largest message send() accepts.
  virtual std::size_t max_message_size() const noexcept = 0;
  // Datagrams that arrived from other endpoints and were dropped.
  virtual std::uint64_t foreign_datagrams() const noexcept = 0;
};

class Handshaker {
 public:
  virtual ~Handshaker() = default;

  // Client side: opens a session with `peer` over `path`. Blocks until the session is up, it failed, or the
  // deadline passed (errc::timeout).
  virtual std::unique_ptr<Channel> connect(Transport& path, const Endpoint& peer, Deadline deadline,
                                           std::error_code& ec) = 0;

  // Server side: waits for one peer to open a session over `path` and returns it.
  virtual std::unique_ptr<Channel> accept(Transport& path, Deadline deadline, std::error_code& ec) = 0;
};

// The trivial handshake of raw UDP: connect() exchanges nothing; accept() takes the first datagram's sender
// as the peer and hands that first datagram to the channel's first receive().
class PlainHandshaker final : public Handshaker {
 public:
  std::unique_ptr<Channel> connect(Transport& path, const Endpoint& peer, Deadline deadline,
                                   std::error_code& ec) override;
  std::unique_ptr<Channel> accept(Transport& path, Deadline deadline, std::error_code& ec) override;
};

}  // namespace dgram
