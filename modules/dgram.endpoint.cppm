// dgram.endpoint: an IPv4 or IPv6 address with a port, as a small value type.
//
// Parsing and formatting are numeric only ("1.2.3.4:5", "[::1]:5"), so they never block. Host names are
// resolved by resolve(), which calls getaddrinfo and may block: call it at the edges of a program, never on a
// datagram's path.
module;
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>
export module dgram.endpoint;

export namespace dgram {

enum class Family : std::uint8_t { ipv4 = 4, ipv6 = 6 };

class Endpoint {
 public:
  using Ipv4Bytes = std::array<std::uint8_t, 4>;
  using Ipv6Bytes = std::array<std::uint8_t, 16>;

  // 0.0.0.0:0.
  constexpr Endpoint() noexcept = default;
  static Endpoint ipv4(Ipv4Bytes address, std::uint16_t port) noexcept;
  static Endpoint ipv6(const Ipv6Bytes& address, std::uint16_t port, std::uint32_t scope_id = 0) noexcept;
  static Endpoint loopback(Family family, std::uint16_t port) noexcept;   // 127.0.0.1 or ::1
  static Endpoint any(Family family, std::uint16_t port) noexcept;        // 0.0.0.0 or ::

  // Parses "ADDR:PORT" with a numeric IPv4 address or "[ADDR]:PORT" with a numeric IPv6 address (an optional
  // "%scope" after the IPv6 address). On failure sets ec to errc::invalid_endpoint and, when `reason` is
  // given, writes why (e.g. "port 99999 is out of range 0-65535").
  static Endpoint parse(std::string_view text, std::error_code& ec, std::string* reason = nullptr);
  // As above; throws std::system_error whose what() quotes the text and the reason.
  static Endpoint parse(std::string_view text);
  // Parses a numeric address without a port ("::1", "127.0.0.1"; brackets allowed around IPv6).
  static Endpoint from_address(std::string_view address, std::uint16_t port, std::error_code& ec);

  constexpr Family family() const noexcept { return family_; }
  constexpr std::uint16_t port() const noexcept { return port_; }
  constexpr std::uint32_t scope_id() const noexcept { return scope_id_; }
  // 4 bytes for IPv4, 16 for IPv6, network order.
  std::span<const std::uint8_t> address_bytes() const noexcept;
  Endpoint with_port(std::uint16_t port) const noexcept;
  bool is_loopback() const noexcept;

  // "1.2.3.4:5" or "[::1]:5"; parse(to_string()) gives back an equal endpoint.
  std::string to_string() const;
  // The address alone: "1.2.3.4" or "::1".
  std::string address_string() const;

  friend bool operator==(const Endpoint&, const Endpoint&) noexcept = default;

 private:
  Ipv6Bytes bytes_{};
  std::uint32_t scope_id_{0};
  std::uint16_t port_{0};
  Family family_{Family::ipv4};
};

// A hash for session tables keyed by peer.
struct EndpointHash {
  std::size_t operator()(const Endpoint& endpoint) const noexcept;
};

// Resolves a host name or numeric address for UDP with getaddrinfo, in the order it returns them.
// Blocks on DNS. On failure sets ec to errc::resolve_failed and, with `reason`, writes getaddrinfo's text.
std::vector<Endpoint> resolve(std::string_view host, std::uint16_t port, std::error_code& ec,
                              std::string* reason = nullptr);

}  // namespace dgram
