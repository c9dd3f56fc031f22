// dgram.dtls.record: just enough of the DTLS 1.2 record layer (RFC 6347 section 4.1) to triage datagrams
// before any wolfSSL state is touched: is it a well-formed sequence of records, is it a ClientHello (and does
// it carry a cookie), is it a HelloVerifyRequest. Pure and constexpr; it decrypts nothing.
module;
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
export module dgram.dtls.record;

export namespace dgram::dtls::record {

inline constexpr std::size_t header_size = 13;             // type, version, epoch, sequence, length
inline constexpr std::size_t handshake_header_size = 12;   // type, length, message_seq, offset, fragment len

enum class ContentType : std::uint8_t { change_cipher_spec = 20, alert = 21, handshake = 22, application_data = 23 };
enum class HandshakeType : std::uint8_t {
  client_hello = 1,
  server_hello = 2,
  hello_verify_request = 3,
  certificate = 11,
  server_key_exchange = 12,
  certificate_request = 13,
  server_hello_done = 14,
  client_key_exchange = 16,
  finished = 20,
};

constexpr std::uint32_t read16(std::span<const std::byte> at) noexcept {
  return static_cast<std::uint32_t>(at[0]) << 8 | static_cast<std::uint32_t>(at[1]);
}
constexpr std::uint32_t read24(std::span<const std::byte> at) noexcept {
  return static_cast<std::uint32_t>(at[0]) << 16 | read16(at.subspan(1));
}

// True when `datagram` is one or more complete DTLS records of known content types and DTLS versions
// (1.0 = 0xfeff or 1.2 = 0xfefd), with nothing left over.
constexpr bool well_formed(std::span<const std::byte> datagram) noexcept {
  if (datagram.empty()) return false;
  while (!datagram.empty()) {
    if (datagram.size() < header_size) return false;
    const auto type = static_cast<std::uint8_t>(datagram[0]);
    if (type < 20 || type > 23) return false;
    if (datagram[1] != std::byte{0xfe} || (datagram[2] != std::byte{0xff} && datagram[2] != std::byte{0xfd}))
      return false;
    const std::size_t length = read16(datagram.subspan(11));
    if (datagram.size() - header_size < length) return false;
    datagram = datagram.subspan(header_size + length);
  }
  return true;
}

// The first record's handshake message type, for an unencrypted (epoch 0) handshake record carrying a whole
// (unfragmented) message; nullopt otherwise.
constexpr std::optional<HandshakeType> first_handshake_type(std::span<const std::byte> datagram) noexcept {
  if (!well_formed(datagram) || datagram[0] != std::byte{22}) return std::nullopt;
  if (read16(datagram.subspan(3)) != 0) return std::nullopt;   // epoch 0: not encrypted
  const std::size_t length = read16(datagram.subspan(11));
  if (length < handshake_header_size) return std::nullopt;
  const auto message = datagram.subspan(header_size, length);
  const std::uint32_t body = read24(message.subspan(1));
  if (read24(message.subspan(6)) != 0 || read24(message.subspan(9)) != body) return std::nullopt;
  if (body > length - handshake_header_size) return std::nullopt;
  return static_cast<HandshakeType>(message[0]);
}

struct ClientHelloFacts {
  bool has_cookie;
  std::array<std::byte, 32> random;   // the client's random: the same in a retransmission and after a cookie
};

// Facts about a ClientHello datagram (see first_handshake_type); nullopt when it is not one or is malformed.
constexpr std::optional<ClientHelloFacts> client_hello(std::span<const std::byte> datagram) noexcept {
  if (first_handshake_type(datagram) != HandshakeType::client_hello) return std::nullopt;
  const auto body = datagram.subspan(header_size + handshake_header_size, read24(datagram.subspan(header_size + 1)));
  constexpr std::size_t version_and_random = 2 + 32;
  if (body.size() < version_and_random + 1) return std::nullopt;
  const std::size_t session_id = static_cast<std::size_t>(body[version_and_random]);
  const std::size_t cookie_at = version_and_random + 1 + session_id;
  if (session_id > 32 || body.size() < cookie_at + 1) return std::nullopt;
  ClientHelloFacts facts{body[cookie_at] != std::byte{0}, {}};
  for (std::size_t i = 0; i < facts.random.size(); ++i) facts.random[i] = body[2 + i];
  return facts;
}

// What a handshake datagram carries, read from its record headers alone. For one we send: whether it
// repeats an earlier flight (lowest message_seq, ChangeCipherSpec). For one we receive: which handshake
// messages the peer sent in the clear, and whether it sent an encrypted handshake record (its Finished).
struct FlightFacts {
  std::optional<std::uint32_t> lowest_message_seq;   // of the unencrypted (epoch 0) handshake records
  bool change_cipher_spec{false};
  std::optional<std::uint64_t> highest_epoch0_sequence;   // record sequence number, 48 bits
  std::uint32_t handshake_types{0};      // bit t set: an epoch-0 handshake fragment of message type t (< 32)
  bool encrypted_handshake{false};       // a handshake record of epoch 1 or later: a Finished
  bool alert{false};                     // an alert record (any epoch)

  constexpr bool has(HandshakeType type) const noexcept {
    return static_cast<std::uint8_t>(type) < 32 && (handshake_types >> static_cast<std::uint8_t>(type) & 1u) != 0;
  }
};

constexpr FlightFacts flight_facts(std::span<const std::byte> datagram) noexcept {
  FlightFacts facts;
  if (!well_formed(datagram)) return facts;
  while (!datagram.empty()) {
    const std::size_t length = read16(datagram.subspan(11));
    const auto type = static_cast<ContentType>(datagram[0]);
    const bool epoch0 = read16(datagram.subspan(3)) == 0;   // not encrypted
    if (type == ContentType::change_cipher_spec) facts.change_cipher_spec = true;
    if (type == ContentType::alert) facts.alert = true;
    if (type == ContentType::handshake && !epoch0) facts.encrypted_handshake = true;
    if (epoch0) {
      std::uint64_t sequence = 0;
      for (std::size_t i = 5; i < 11; ++i) sequence = sequence << 8 | static_cast<std::uint64_t>(datagram[i]);
      if (!facts.highest_epoch0_sequence || sequence > *facts.highest_epoch0_sequence)
        facts.highest_epoch0_sequence = sequence;
    }
    if (type == ContentType::handshake && epoch0 && length >= handshake_header_size) {
      const std::uint32_t sequence = read16(datagram.subspan(header_size + 4));
      if (!facts.lowest_message_seq || sequence < *facts.lowest_message_seq) facts.lowest_message_seq = sequence;
      if (const auto message_type = static_cast<std::uint8_t>(datagram[header_size]); message_type < 32)
        facts.handshake_types |= 1u << message_type;
    }
    datagram = datagram.subspan(header_size + length);
  }
  return facts;
}

// Alert descriptions (RFC 5246 section 7.2, RFC 4279 for PSK): those the engine sends or explains.
enum class AlertDescription : std::uint8_t {
  close_notify = 0,
  bad_record_mac = 20,
  handshake_failure = 40,
  bad_certificate = 42,
  certificate_expired = 45,
  unknown_ca = 48,
  decrypt_error = 51,
  protocol_version = 70,
  insufficient_security = 71,
  internal_error = 80,
  unknown_psk_identity = 115,
  certificate_required = 116,
};

// A plaintext (epoch 0) fatal alert record with the given record sequence number: what a side that has not
// yet switched ciphers sends to abort a handshake.

constexpr std::array<std::byte, header_size + 2> fatal_alert(std::uint64_t sequence, AlertDescription description) noexcept {
  std::array<std::byte, header_size + 2> out{};
  out[0] = std::byte{21};
  out[1] = std::byte{0xfe};
  out[2] = std::byte{0xfd};
  for (std::size_t i = 0; i < 6; ++i) out[10 - i] = static_cast<std::byte>((sequence >> (8 * i)) & 0xff);
  out[12] = std::byte{2};
  out[13] = std::byte{2};   // level: fatal
  out[14] = static_cast<std::byte>(description);
  return out;
}

}  // namespace dgram::dtls::record
