// Implementation of dgram.udp.
module;
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <gsl/narrow>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
module dgram.udp;

import dgram.fd;
import dgram.sockaddr;

namespace dgram {
namespace {

using std::chrono::microseconds;

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

// Kernel timeouts are counted in jiffies and rounded up, so an SO_RCVTIMEO may fire up to one jiffy (10 ms at
// HZ=100) late. Waits shorter than this go through ppoll, whose timer is precise; longer ones keep a margin.
constexpr std::int64_t jiffy_margin_us = 10'000;
constexpr std::int64_t precise_wait_below_us = 4 * jiffy_margin_us;

bool set_int_option(int fd, int level, int name, int value, std::error_code& ec) {
  if (::setsockopt(fd, level, name, &value, sizeof value) == 0) return true;
  ec = last_error();
  return false;
}

// A buffer size past the system's cap (net.core.rmem_max, wmem_max) where the process may (CAP_NET_ADMIN: the
// FORCE option), else as much as the cap allows: the plain option clamps silently, receive_buffer_size() tells.
bool set_buffer_size(int fd, int force_name, int name, int bytes, std::error_code& ec) {
  if (::setsockopt(fd, SOL_SOCKET, force_name, &bytes, sizeof bytes) == 0) return true;
  return set_int_option(fd, SOL_SOCKET, name, bytes, ec);
}

int buffer_size(int fd, int name) noexcept {
  int value = 0;
  socklen_t length = sizeof value;
  return ::getsockopt(fd, SOL_SOCKET, name, &value, &length) == 0 ? value / 2 : 0;
}

// Room for the one control message a receive may carry: SO_RXQ_OVFL's 32-bit drop count.
struct OverflowControl {
  alignas(cmsghdr) std::array<unsigned char, CMSG_SPACE(sizeof(std::uint32_t))> bytes;
};

// The drop count the kernel put beside a received datagram (SO_RXQ_OVFL): only there once it dropped one.
std::optional<std::uint32_t> kernel_drop_count(const msghdr& header) noexcept {
  for (const cmsghdr* message = CMSG_FIRSTHDR(&header); message;
       message = CMSG_NXTHDR(const_cast<msghdr*>(&header), const_cast<cmsghdr*>(message))) {
    if (message->cmsg_level != SOL_SOCKET || message->cmsg_type != SO_RXQ_OVFL) continue;
    std::uint32_t count = 0;
    std::memcpy(&count, CMSG_DATA(message), sizeof count);
    return count;
  }
  return std::nullopt;
}

detail::UniqueFd open_socket(Family family, const UdpOptions& options, std::error_code& ec) {
  detail::UniqueFd fd{::socket(detail::address_family(family), SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP)};
  if (!fd) {
    ec = last_error();
    return fd;
  }
  const bool configured =
      (family != Family::ipv6 || set_int_option(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, options.dual_stack ? 0 : 1, ec)) &&
      (!options.reuse_port || set_int_option(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, ec)) &&
      (options.receive_buffer_bytes == 0 ||
       set_buffer_size(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF, options.receive_buffer_bytes, ec)) &&
      (options.send_buffer_bytes == 0 ||
       set_buffer_size(fd.get(), SO_SNDBUFFORCE, SO_SNDBUF, options.send_buffer_bytes, ec)) &&
      (!options.count_receive_overflows || set_int_option(fd.get(), SOL_SOCKET, SO_RXQ_OVFL, 1, ec));
  if (!configured) fd.reset();
  return fd;
}

// Waits for readability with a precise timer; false with ec set on timeout, signal or error.
bool wait_readable(int fd, std::int64_t wait_us, std::error_code& ec) {
  pollfd entry{fd, POLLIN, 0};
  const timespec timeout{static_cast<time_t>(wait_us / 1'000'000), static_cast<long>(wait_us % 1'000'000) * 1000};
  const int ready = ::ppoll(&entry, 1, &timeout, nullptr);
  if (ready > 0) return true;
  ec = ready == 0 ? make_error_code(errc::timeout)
                  : errno == EINTR ? make_error_code(errc::interrupted) : last_error();
  return false;
}

std::error_code send_error(int error) noexcept {
  if (error == EMSGSIZE) return make_error_code(errc::message_too_large);
  if (error == EINTR) return make_error_code(errc::interrupted);
  if (error == EAGAIN || error == EWOULDBLOCK) return make_error_code(errc::would_block);
  return {error, std::system_category()};
}

}  // namespace

UdpSocket::UdpSocket(detail::UniqueFd fd, Family family, bool connected, const UdpOptions& options) noexcept
    : fd_{std::move(fd)},
      family_{family},
      connected_{connected},
      send_flags_{options.nonblocking_send ? MSG_DONTWAIT : 0},
      count_overflows_{options.count_receive_overflows} {}

int UdpSocket::receive_buffer_size() const noexcept { return buffer_size(fd_.get(), SO_RCVBUF); }
int UdpSocket::send_buffer_size() const noexcept { return buffer_size(fd_.get(), SO_SNDBUF); }

void UdpSocket::note_kernel_drop_count(std::uint32_t count) noexcept {
  overflows_ += static_cast<std::uint32_t>(count - kernel_drop_count_);   // (modulo 2^32: it wraps)
  kernel_drop_count_ = count;
}

namespace {

bool bind_to(int fd, const Endpoint& local, std::error_code& ec) {
  const detail::SocketAddress address = detail::to_socket_address(local);
  if (::bind(fd, address.get(), address.length) == 0) return true;
  ec = last_error();
  return false;
}

}  // namespace

UdpSocket UdpSocket::bind(const Endpoint& local, std::error_code& ec, const UdpOptions& options) {
  ec.clear();
  detail::UniqueFd fd = open_socket(local.family(), options, ec);
  if (ec || !bind_to(fd.get(), local, ec)) return {};
  return UdpSocket{std::move(fd), local.family(), false, options};
}

UdpSocket UdpSocket::bind(const Endpoint& local, const UdpOptions& options) {
  std::error_code ec;
  UdpSocket socket = bind(local, ec, options);
  if (ec) throw std::system_error(ec, "bind UDP socket to " + local.to_string());
  return socket;
}

UdpSocket UdpSocket::connect(const Endpoint& peer, std::error_code& ec, const UdpOptions& options) {
  ec.clear();
  detail::UniqueFd fd = open_socket(peer.family(), options, ec);
  if (ec) return {};
  return connect_socket(std::move(fd), peer, ec, options);
}

UdpSocket UdpSocket::connect(const Endpoint& peer, const Endpoint& local, std::error_code& ec,
                             const UdpOptions& options) {
  ec.clear();
  detail::UniqueFd fd = open_socket(peer.family(), options, ec);
  if (ec || !bind_to(fd.get(), local, ec)) return {};
  return connect_socket(std::move(fd), peer, ec, options);
}

UdpSocket UdpSocket::connect_socket(detail::UniqueFd fd, const Endpoint& peer, std::error_code& ec,
                                    const UdpOptions& options) {
  const detail::SocketAddress address = detail::to_socket_address(peer);
  if (::connect(fd.get(), address.get(), address.length) != 0) {
    ec = last_error();
    return {};
  }
  return UdpSocket{std::move(fd), peer.family(), true, options};
}

UdpSocket UdpSocket::connect(const Endpoint& peer, const UdpOptions& options) {
  std::error_code ec;
  UdpSocket socket = connect(peer, ec, options);
  if (ec) throw std::system_error(ec, "connect UDP socket to " + peer.to_string());
  return socket;
}

std::size_t UdpSocket::max_datagram_size() const noexcept {
  return family_ == Family::ipv4 ? max_ipv4_datagram : max_ipv6_datagram;
}

// Keeps SO_RCVTIMEO at or below `microseconds` (0 = forever) but changes it only when it is far off, so a
// client that waits with the same timeout each time pays no extra system call per receive.
bool UdpSocket::limit_receive_timeout(std::int64_t wanted_us, std::error_code& ec) {
  const bool keep = wanted_us == 0
                        ? receive_timeout_us_ == 0
                        : receive_timeout_us_ != 0 && receive_timeout_us_ <= wanted_us &&
                              receive_timeout_us_ >= wanted_us - wanted_us / 8;
  if (keep) return true;
  const std::int64_t value = wanted_us == 0 ? 0 : wanted_us - wanted_us / 16;
  const timeval tv{static_cast<time_t>(value / 1'000'000), static_cast<suseconds_t>(value % 1'000'000)};
  if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    ec = last_error();
    return false;
  }
  receive_timeout_us_ = value;
  return true;
}

// Runs `receive(flags)` (a recvmsg or recvmmsg) until it returns data or the deadline passes. Long waits
// block in the receive itself under SO_RCVTIMEO (one system call); short ones wait in ppoll first.
template <typename Receive>
long UdpSocket::receive_until(Deadline deadline, Receive receive, std::error_code& ec) {
  ec.clear();
  for (bool first_try = true;; first_try = false) {
    int flags = MSG_DONTWAIT;
    std::int64_t left_us = 0;
    if (deadline.is_never()) {
      if (!limit_receive_timeout(0, ec)) return -1;
      flags = 0;
    } else {
      left_us = std::chrono::duration_cast<microseconds>(deadline.remaining(Clock::now())).count();
      if (left_us >= precise_wait_below_us) {
        if (!limit_receive_timeout(left_us - jiffy_margin_us, ec)) return -1;
        flags = 0;
      } else if (left_us > 0 && !wait_readable(fd_.get(), left_us, ec)) {
        return -1;
      }
    }
    const long got = receive(flags);
    if (got >= 0) return got;
    const int error = errno;
    if (error != EAGAIN && error != EWOULDBLOCK) {
      ec = error == EINTR ? make_error_code(errc::interrupted) : std::error_code{error, std::system_category()};
      return -1;
    }
    if (!deadline.is_never() && left_us <= 0) {
      ec = make_error_code(first_try ? errc::would_block : errc::timeout);
      return -1;
    }
    // SO_RCVTIMEO fired ahead of the deadline, or readiness vanished: wait again for what is left.
  }
}

Received UdpSocket::receive_from(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) {
  // recvfrom, not recvmsg: the same work with a cheaper kernel entry (no msghdr to copy in). MSG_TRUNC makes it
  // return the datagram's real length, which tells a truncation.
  // Counting overflows takes recvmsg: the count comes as a control message.
  detail::SocketAddress from;
  OverflowControl control;
  iovec vector{buffer.data(), buffer.size()};
  msghdr header{};
  const long got = receive_until(
      deadline,
      [&](int flags) {
        from.length = sizeof from.storage;
        if (!count_overflows_)
          return static_cast<long>(
              ::recvfrom(fd_.get(), buffer.data(), buffer.size(), flags | MSG_TRUNC, from.get(), &from.length));
        header = {};
        header.msg_name = from.get();
        header.msg_namelen = from.length;
        header.msg_iov = &vector;
        header.msg_iovlen = 1;
        header.msg_control = control.bytes.data();
        header.msg_controllen = control.bytes.size();
        const long size = ::recvmsg(fd_.get(), &header, flags | MSG_TRUNC);
        from.length = header.msg_namelen;
        return size;
      },
      ec);
  if (got >= 0 && count_overflows_)
    if (const auto dropped = kernel_drop_count(header)) note_kernel_drop_count(*dropped);
  if (got < 0) return {};
  Received out{static_cast<std::size_t>(got), detail::from_socket_address(from.get(), from.length)};
  if (out.size > buffer.size()) {
    out.size = buffer.size();
    ec = make_error_code(errc::truncated);
  }
  return out;
}

std::size_t UdpSocket::receive_batch(std::span<ReceiveSlot> slots, Deadline deadline, std::error_code& ec) {
  const std::size_t count = std::min(slots.size(), max_batch);
  std::array<mmsghdr, max_batch> headers;
  std::array<iovec, max_batch> vectors;
  std::array<sockaddr_storage, max_batch> addresses;
  std::array<OverflowControl, max_batch> controls;
  for (std::size_t i = 0; i < count; ++i) {
    vectors[i] = {slots[i].buffer.data(), slots[i].buffer.size()};
    headers[i] = {};
    headers[i].msg_hdr.msg_name = &addresses[i];
    headers[i].msg_hdr.msg_namelen = sizeof addresses[i];
    headers[i].msg_hdr.msg_iov = &vectors[i];
    headers[i].msg_hdr.msg_iovlen = 1;
    if (count_overflows_) {
      headers[i].msg_hdr.msg_control = controls[i].bytes.data();
      headers[i].msg_hdr.msg_controllen = controls[i].bytes.size();
    }
  }
  const long got = receive_until(
      deadline,
      [&](int flags) {
        return static_cast<long>(
            ::recvmmsg(fd_.get(), headers.data(), gsl::narrow<unsigned>(count), flags | MSG_WAITFORONE, nullptr));
      },
      ec);
  if (got <= 0) return 0;
  for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
    ReceiveSlot& slot = slots[i];
    slot.truncated = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    slot.size = std::min<std::size_t>(headers[i].msg_len, slot.buffer.size());
    slot.peer = detail::from_socket_address(reinterpret_cast<const sockaddr*>(&addresses[i]),
                                            headers[i].msg_hdr.msg_namelen);
    if (count_overflows_)
      if (const auto dropped = kernel_drop_count(headers[i].msg_hdr)) note_kernel_drop_count(*dropped);
  }
  return static_cast<std::size_t>(got);
}

void UdpSocket::send_to(std::span<const std::byte> datagram, const Endpoint& peer, std::error_code& ec) {
  ec.clear();
  if (datagram.size() > max_datagram_size()) {
    ec = make_error_code(errc::message_too_large);
    return;
  }
  ssize_t sent;
  if (connected_) {
    sent = ::send(fd_.get(), datagram.data(), datagram.size(), send_flags_);
  } else {
    const detail::SocketAddress address = detail::to_socket_address(peer, family_);
    sent = ::sendto(fd_.get(), datagram.data(), datagram.size(), send_flags_, address.get(), address.length);
  }
  if (sent < 0) ec = send_error(errno);
}

std::size_t UdpSocket::send_batch(std::span<const SendSlot> datagrams, std::error_code& ec) {
  ec.clear();
  std::size_t done = 0;
  std::array<mmsghdr, max_batch> headers;
  std::array<iovec, max_batch> vectors;
  std::array<detail::SocketAddress, max_batch> addresses;
  while (done < datagrams.size()) {
    const std::size_t count = std::min(datagrams.size() - done, max_batch);
    std::size_t ready = 0;
    for (; ready < count; ++ready) {
      const SendSlot& slot = datagrams[done + ready];
      if (slot.payload.size() > max_datagram_size()) break;
      vectors[ready] = {const_cast<std::byte*>(slot.payload.data()), slot.payload.size()};
      headers[ready] = {};
      if (!connected_) {
        addresses[ready] = detail::to_socket_address(slot.peer, family_);
        headers[ready].msg_hdr.msg_name = addresses[ready].get();
        headers[ready].msg_hdr.msg_namelen = addresses[ready].length;
      }
      headers[ready].msg_hdr.msg_iov = &vectors[ready];
      headers[ready].msg_hdr.msg_iovlen = 1;
    }
    if (ready == 0) {
      ec = make_error_code(errc::message_too_large);
      return done;
    }
    const int sent = ::sendmmsg(fd_.get(), headers.data(), gsl::narrow<unsigned>(ready), send_flags_);
    if (sent < 0) {
      ec = send_error(errno);
      return done;
    }
    // A partial send leaves the rest for the next round, which either sends it or reports its error.
    done += static_cast<std::size_t>(sent);
  }
  return done;
}

Endpoint UdpSocket::local_endpoint(std::error_code& ec) const {
  ec.clear();
  detail::SocketAddress address;
  address.length = sizeof address.storage;
  if (::getsockname(fd_.get(), address.get(), &address.length) != 0) {
    ec = last_error();
    return {};
  }
  return detail::from_socket_address(address.get(), address.length);
}

}  // namespace dgram
