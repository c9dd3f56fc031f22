// dgram.udp: the UDP socket transport.
//
// UdpSocket is the one owner of a UDP socket fd: move-only, closed by its destructor. IPv4 and IPv6,
// unconnected (a server: many peers on one socket) or connected (a client: one peer, and ICMP errors such as
// port unreachable surface as std::errc::connection_refused). Receives wait with one system call in the
// common case: the socket's SO_RCVTIMEO is kept close to the caller's deadline instead of polling first.
module;
#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
export module dgram.udp;

export import dgram.transport;
import dgram.fd;

export namespace dgram {

struct UdpOptions {
  bool reuse_port = false;          // SO_REUSEPORT: several sockets share one port (threaded acceptors)
  bool dual_stack = false;          // an IPv6 socket also takes IPv4 (IPV6_V6ONLY off)
  // The socket's buffers; 0 keeps the system default (net.core.rmem_default, wmem_default). The kernel caps
  // what is asked at net.core.rmem_max / wmem_max unless the process has CAP_NET_ADMIN (then SO_RCVBUFFORCE is
  // used): receive_buffer_size() says what it got. A server that takes bursts of many clients needs megabytes.
  int receive_buffer_bytes = 0;
  int send_buffer_bytes = 0;
  // Count the datagrams the kernel drops for a full receive buffer (SO_RXQ_OVFL): receive_overflows().
  bool count_receive_overflows = false;
  // Sends never wait for buffer space: a full send buffer is errc::would_block and the datagram is not sent
  // (lost, as it could be on the network). For event loops, which must not block.
  bool nonblocking_send = false;
};

class UdpSocket final : public Transport {
 public:
  // The largest datagrams of each family: 65535 minus the IPv4 header and the UDP header, and 65535 minus the
  // UDP header for IPv6 (whose payload length does not count its own header).
  static constexpr std::size_t max_ipv4_datagram = 65507;
  static constexpr std::size_t max_ipv6_datagram = 65527;
  // How many datagrams one receive_batch / send_batch system call moves at most.
  static constexpr std::size_t max_batch = 64;

  // A socket bound to `local`; port 0 lets the kernel pick a free port (read it with local_endpoint()).
  static UdpSocket bind(const Endpoint& local, std::error_code& ec, const UdpOptions& options = {});
  static UdpSocket bind(const Endpoint& local, const UdpOptions& options = {});   // throws std::system_error
  // A socket connected to `peer` from an ephemeral port: it receives from `peer` only.
  static UdpSocket connect(const Endpoint& peer, std::error_code& ec, const UdpOptions& options = {});
  static UdpSocket connect(const Endpoint& peer, const UdpOptions& options = {});  // throws std::system_error
  // The same from `local` (port 0: an ephemeral port of that address): a load generator spreads its sockets
  // over several source addresses, as each address has only so many ports.
  static UdpSocket connect(const Endpoint& peer, const Endpoint& local, std::error_code& ec,
                           const UdpOptions& options = {});

  UdpSocket() noexcept = default;   // holds no socket; every operation fails with bad_file_descriptor

  bool is_open() const noexcept { return static_cast<bool>(fd_); }
  bool is_connected() const noexcept { return connected_; }
  int native_handle() const noexcept { return fd_.get(); }
  Family family() const noexcept { return family_; }

  // Transport. A deadline that has already passed when the call starts makes a receive a poll: nothing
  // queued gives errc::would_block; a deadline that passes while waiting gives errc::timeout.
  void send_to(std::span<const std::byte> datagram, const Endpoint& peer, std::error_code& ec) override;
  Received receive_from(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) override;
  std::size_t receive_batch(std::span<ReceiveSlot> slots, Deadline deadline, std::error_code& ec) override;
  std::size_t send_batch(std::span<const SendSlot> datagrams, std::error_code& ec) override;
  Endpoint local_endpoint(std::error_code& ec) const override;
  std::size_t max_datagram_size() const noexcept override;

  // With UdpOptions::count_receive_overflows: the datagrams the kernel dropped since the socket opened because
  // its receive buffer was full, as of the last datagram received (the kernel tells with each one); 0 otherwise.
  std::uint64_t receive_overflows() const noexcept { return overflows_; }
  // The buffer sizes in effect, in the terms UdpOptions asks in (the kernel reports twice that: it counts its
  // bookkeeping too); 0 when they cannot be read.
  int receive_buffer_size() const noexcept;
  int send_buffer_size() const noexcept;

 private:
  UdpSocket(detail::UniqueFd fd, Family family, bool connected, const UdpOptions& options) noexcept;
  static UdpSocket connect_socket(detail::UniqueFd fd, const Endpoint& peer, std::error_code& ec,
                                  const UdpOptions& options);
  // The kernel's running count of drops, as it came beside a received datagram (SO_RXQ_OVFL).
  void note_kernel_drop_count(std::uint32_t count) noexcept;
  template <typename Receive>
  long receive_until(Deadline deadline, Receive receive, std::error_code& ec);
  bool limit_receive_timeout(std::int64_t microseconds, std::error_code& ec);

  detail::UniqueFd fd_;
  Family family_{Family::ipv4};
  bool connected_{false};
  int send_flags_{0};                    // MSG_DONTWAIT with UdpOptions::nonblocking_send
  std::int64_t receive_timeout_us_{0};   // the socket's SO_RCVTIMEO as last set; 0 = wait forever
  bool count_overflows_{false};
  std::uint32_t kernel_drop_count_{0};   // the kernel's 32-bit running count, as last seen
  std::uint64_t overflows_{0};           // its increments, summed (it wraps)
};

}  // namespace dgram
