// dgram.transport: the abstract Transport, which moves whole datagrams between endpoints.
//
// A Transport never splits or joins datagrams: one send is one datagram on the wire, one receive returns one
// datagram. Implementations: UdpSocket (dgram.udp); later, DTLS sessions decorate one. Calls on one Transport
// from several threads at once are not supported unless an implementation says otherwise.
module;
#include <cstddef>
#include <span>
#include <system_error>
export module dgram.transport;

export import dgram.clock;
export import dgram.endpoint;
export import dgram.error;

export namespace dgram {

// One datagram received: `size` bytes at the start of the caller's buffer, from `peer`.
struct Received {
  std::size_t size{0};
  Endpoint peer;
};

// A slot of a batch receive: the caller provides `buffer`; receive_batch fills `size` and `peer`, and sets
// `truncated` when the datagram was larger than the buffer (its tail is lost).
struct ReceiveSlot {
  std::span<std::byte> buffer;
  std::size_t size{0};
  Endpoint peer;
  bool truncated{false};
};

// A datagram of a batch send; the bytes are borrowed for the duration of the call.
struct SendSlot {
  std::span<const std::byte> payload;
  Endpoint peer;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Sends one datagram to `peer` (on a connected transport: to the connected peer, `peer` is ignored).
  // Blocks only while the kernel's send buffer is full. Errors: errc::message_too_large; system errors
  // (e.g. std::errc::connection_refused on a connected transport after an ICMP port unreachable).
  virtual void send_to(std::span<const std::byte> datagram, const Endpoint& peer, std::error_code& ec) = 0;

  // Waits until one datagram arrives or `deadline` passes, and copies it into `buffer`.
  // Errors: errc::timeout when the deadline passed (a passed deadline still takes a datagram already
  // queued); errc::truncated when the datagram was larger than `buffer` (size is then buffer.size());
  // errc::interrupted when a signal arrived; system errors.
  virtual Received receive_from(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) = 0;

  // Waits as receive_from does for the first datagram, then takes those already queued without waiting,
  // up to slots.size(). Returns how many slots it filled (0 only with an error).
  virtual std::size_t receive_batch(std::span<ReceiveSlot> slots, Deadline deadline, std::error_code& ec) = 0;

  // Sends the datagrams in order; returns how many were sent. Stops at the first failure, which is in ec.
  virtual std::size_t send_batch(std::span<const SendSlot> datagrams, std::error_code& ec) = 0;

  // The address this transport is bound to (with the real port after binding port 0).
  virtual Endpoint local_endpoint(std::error_code& ec) const = 0;

  // The largest datagram this transport can send to a peer of the transport's family.
  virtual std::size_t max_datagram_size() const noexcept = 0;
};

}  // namespace dgram
