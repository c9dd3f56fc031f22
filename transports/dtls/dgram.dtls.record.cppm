// dgram.dtls.record: just enough of the DTLS record layer to triage datagrams before any wolfSSL state is
// touched: is it a well-formed sequence of records (DTLS 1.2 headers, RFC 6347 4.1, and the DTLS 1.3 unified
// header, RFC 9147 4, and DTLS 1.2 records with a Connection ID, RFC 9146), is it a ClientHello (and does it carry a cookie), a HelloVerifyRequest or a
// HelloRetryRequest, which Connection ID does it carry. Pure and constexpr; it decrypts nothing.
module;
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
export module dgram.dtls.record;

export namespace dgram::dtls::record {

inline constexpr std::size_t header_size = 13;             // type, version, epoch, sequence, length
inline constexpr std::size_t handshake_header_size = 12;   // type, length, message_seq, offset, fragment len

// tls12_cid: a DTLS 1.2 record with a Connection ID (RFC 9146), always encrypted (its real type is inside).
enum class ContentType : std::uint8_t {
  change_cipher_spec = 20,
  alert = 21,
  handshake = 22,
  application_data = 23,
  tls12_cid = 25,
};
enum class HandshakeType : std::uint8_t {
  client_hello = 1,
  server_hello = 2,
  hello_verify_request = 3,
  new_session_ticket = 4,
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
// A DTLS 1.2 record header's sequence number (bytes 5 to 10).
constexpr std::uint64_t record_sequence(std::span<const std::byte> header) noexcept {
  return static_cast<std::uint64_t>(read24(header.subspan(5))) << 24 | read24(header.subspan(8));
}

// The length of the Connection IDs dgram issues (a server's; its clients use none). A DTLS 1.3 record and a
// DTLS 1.2 tls12_cid record carry the CID without its length, so parsing a record with one needs to know it.
inline constexpr std::size_t connection_id_size = 8;

// One record of a datagram. DTLS 1.2 and unencrypted DTLS 1.3 records have the 13-byte header, DTLS 1.2
// records with a Connection ID that header with the CID before the length (type 25: type, version, epoch,
// sequence, CID, length); encrypted DTLS 1.3 records the unified header (first byte 001CSLEE: C a CID follows,
// S a 16-bit sequence number, L a length; without L the record runs to the end of the datagram).
struct Record {
  std::uint8_t content_type;          // 20-23, 25 (tls12_cid), 26 (ack); 0 for a unified header (encrypted)
  bool unified;
  std::span<const std::byte> header;
  std::span<const std::byte> connection_id;   // empty unless a unified header with C or a tls12_cid record
  std::span<const std::byte> fragment;
};

// The shortest encrypted DTLS 1.3 record: its inner content type and a 16-byte AEAD tag (every DTLS 1.3 suite
// dgram allows has one: TLS13-AES128-CCM-8-SHA256 is refused, see DtlsContext::create).
inline constexpr std::size_t min_ciphertext = 17;

// Splits the first record off `rest`; nullopt when it is malformed.
constexpr std::optional<Record> next_record(std::span<const std::byte>& rest) noexcept {
  if (rest.empty()) return std::nullopt;
  const auto first = static_cast<std::uint8_t>(rest[0]);
  if ((first & 0xe0) == 0x20) {   // unified header
    const std::size_t cid = (first & 0x10) ? connection_id_size : 0;
    const std::size_t sequence = (first & 0x08) ? 2 : 1;
    const bool has_length = (first & 0x04) != 0;
    const std::size_t header = 1 + cid + sequence + (has_length ? 2 : 0);
    if (rest.size() < header) return std::nullopt;
    const std::size_t length = has_length ? read16(rest.subspan(header - 2)) : rest.size() - header;
    if (rest.size() - header < length || length < min_ciphertext) return std::nullopt;
    const Record record{0, true, rest.first(header), rest.subspan(1, cid), rest.subspan(header, length)};
    rest = rest.subspan(header + length);
    return record;
  }
  const std::size_t cid = first == static_cast<std::uint8_t>(ContentType::tls12_cid) ? connection_id_size : 0;
  const std::size_t header = header_size + cid;
  if (rest.size() < header) return std::nullopt;
  if ((first < 20 || first > 23) && first != 25 && first != 26) return std::nullopt;
  if (rest[1] != std::byte{0xfe} || (rest[2] != std::byte{0xff} && rest[2] != std::byte{0xfd})) return std::nullopt;
  if (cid > 0 && (rest[2] != std::byte{0xfd} || read16(rest.subspan(3)) == 0)) return std::nullopt;   // 1.2, encrypted
  const std::size_t length = read16(rest.subspan(header - 2));
  if (rest.size() - header < length) return std::nullopt;
  const Record record{first, false, rest.first(header), rest.subspan(header_size - 2, cid), rest.subspan(header, length)};
  rest = rest.subspan(header + length);
  return record;
}

// True when `datagram` is one or more complete DTLS records (13-byte headers of known content types and DTLS
// versions, 1.0 = 0xfeff or 1.2 = 0xfefd, DTLS 1.2 records with a Connection ID, or DTLS 1.3 unified headers),
// with nothing left over.
constexpr bool well_formed(std::span<const std::byte> datagram) noexcept {
  if (datagram.empty()) return false;
  while (!datagram.empty())
    if (!next_record(datagram)) return false;
  return true;
}

// Whether every record has the 13-byte header (what a DTLS 1.2 session may receive). Needs well_formed.
constexpr bool dtls12_headers_only(std::span<const std::byte> datagram) noexcept {
  while (!datagram.empty())
    if (next_record(datagram)->unified) return false;
  return true;
}

// Whether every record states its length, so that another record may follow it in the same datagram.
constexpr bool packable(std::span<const std::byte> datagram) noexcept {
  if (!well_formed(datagram)) return false;
  while (!datagram.empty()) {
    const auto record = next_record(datagram);
    if (record->unified && (static_cast<std::uint8_t>(record->header[0]) & 0x04) == 0) return false;
  }
  return true;
}

// The Connection ID of the first record (a DTLS 1.3 or tls12_cid record with one); empty otherwise.
constexpr std::span<const std::byte> connection_id(std::span<const std::byte> datagram) noexcept {
  const auto record = next_record(datagram);
  return record ? record->connection_id : std::span<const std::byte>{};
}

// Whether the first record is an unencrypted (epoch 0) handshake record. Needs a well_formed datagram.
constexpr bool starts_with_plaintext_handshake(std::span<const std::byte> datagram) noexcept {
  return datagram.size() >= header_size && datagram[0] == std::byte{22} && read16(datagram.subspan(3)) == 0;
}

// The first record's handshake message type, for an unencrypted (epoch 0) handshake record carrying a whole
// (unfragmented) message; nullopt otherwise.
// (first_record_handshake_type: the same for a datagram already known to be well_formed.)
constexpr std::optional<HandshakeType> first_record_handshake_type(std::span<const std::byte> datagram) noexcept {
  if (datagram[0] != std::byte{22} || read16(datagram.subspan(3)) != 0) return std::nullopt;   // epoch 0: clear
  const std::size_t length = read16(datagram.subspan(11));
  if (length < handshake_header_size) return std::nullopt;
  const auto message = datagram.subspan(header_size, length);
  const std::uint32_t body = read24(message.subspan(1));
  if (read24(message.subspan(6)) != 0 || read24(message.subspan(9)) != body) return std::nullopt;
  if (body > length - handshake_header_size) return std::nullopt;
  return static_cast<HandshakeType>(message[0]);
}

constexpr std::optional<HandshakeType> first_handshake_type(std::span<const std::byte> datagram) noexcept {
  return well_formed(datagram) ? first_record_handshake_type(datagram) : std::nullopt;
}

// The extensions of a ClientHello body (from its legacy cookie on) that decide how a server answers it: a DTLS 1.3
// cookie (type 44: the answer to a HelloRetryRequest) and a pre-shared key (type 41: a resumption ticket or an
// external PSK's identity, with its binder).
struct HelloExtensions {
  bool cookie{false};
  bool pre_shared_key{false};
  bool key_share{false};
  bool psk_dhe_ke{false};   // psk_key_exchange_modes lists psk_dhe_ke
};
constexpr HelloExtensions hello_extensions(std::span<const std::byte> from_cookie) noexcept {
  HelloExtensions found;
  std::size_t at = 1 + static_cast<std::size_t>(from_cookie[0]);                 // legacy cookie
  if (from_cookie.size() < at + 2) return found;
  at += 2 + read16(from_cookie.subspan(at));                                     // cipher suites
  if (from_cookie.size() < at + 1) return found;
  at += 1 + static_cast<std::size_t>(from_cookie[at]);                           // compression methods
  if (from_cookie.size() < at + 2) return found;
  const std::size_t end = std::min(from_cookie.size(), at + 2 + read16(from_cookie.subspan(at)));
  for (at += 2; at + 4 <= end; at += 4 + read16(from_cookie.subspan(at + 2))) {
    const std::uint32_t type = read16(from_cookie.subspan(at));
    found.cookie = found.cookie || type == 44;
    found.pre_shared_key = found.pre_shared_key || type == 41;
    // (A key_share with no entries asks the server to choose: wolfSSL's client sends one when it has none.)
    const bool has_entries = at + 6 <= end && read16(from_cookie.subspan(at + 4)) > 0;
    found.key_share = found.key_share || (type == 51 && has_entries);
    if (type == 45 && at + 5 <= end) {   // psk_key_exchange_modes: a length byte, then the modes (1: psk_dhe_ke)
      const std::size_t modes_end = std::min(end, at + 5 + static_cast<std::size_t>(from_cookie[at + 4]));
      for (std::size_t mode = at + 5; mode < modes_end; ++mode) found.psk_dhe_ke = found.psk_dhe_ke || from_cookie[mode] == std::byte{1};
    }
  }
  return found;
}

// Whether the datagram starts with a DTLS 1.3 HelloRetryRequest: a ServerHello whose random is the fixed value
// of RFC 8446 4.1.3 (the stateless cookie challenge of DTLS 1.3, as HelloVerifyRequest is of 1.2).
constexpr bool starts_with_hello_retry_request(std::span<const std::byte> datagram) noexcept {
  constexpr std::array<std::uint8_t, 32> magic{0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
                                               0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
                                               0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};
  if (first_handshake_type(datagram) != HandshakeType::server_hello) return false;
  const auto body = datagram.subspan(header_size + handshake_header_size);
  if (body.size() < 2 + magic.size()) return false;
  for (std::size_t i = 0; i < magic.size(); ++i)
    if (static_cast<std::uint8_t>(body[2 + i]) != magic[i]) return false;
  return true;
}

struct ClientHelloFacts {
  bool has_cookie;                    // a legacy (DTLS 1.2) cookie or a DTLS 1.3 cookie extension
  bool has_cookie_extension{false};   // the DTLS 1.3 one
  bool has_pre_shared_key{false};     // a resumption ticket or an external PSK (DTLS 1.3)
  // What a DTLS 1.3 hello offers for its key exchange (read for tests and tools; the endpoint routes without
  // them): an (EC)DHE key share, and psk_dhe_ke among its PSK key exchange modes (not with psk_ke only).
  bool has_key_share{false};
  bool offers_psk_dhe_ke{false};
  std::array<std::byte, 32> random;   // the client's random: the same in a retransmission and after a cookie
  std::uint64_t record_sequence{0};   // of the record carrying it (a client's first few hellos: 0, 1, 2, ...)
  // Only the first fragment of a larger ClientHello: a DTLS 1.3 hello with a post-quantum key share outgrows
  // a datagram once it carries the cookie. (Its facts are those of the fragment: a cookie extension beyond it
  // is not seen, and wolfSSL drops such a hello.)
  bool first_fragment{false};
};

// Whether a set of handshake message types (bit t: type t, as FlightFacts::handshake_types) has `type`.
constexpr bool includes(std::uint32_t types, HandshakeType type) noexcept {
  return static_cast<std::uint8_t>(type) < 32 && (types >> static_cast<std::uint8_t>(type) & 1u) != 0;
}

// The first fragment of a ClientHello larger than its first record (an unencrypted handshake record whose one
// fragment starts the message at offset 0 and ends before it does): the fragment's body; empty otherwise.
// Needs a well_formed datagram.
constexpr std::span<const std::byte> first_client_hello_fragment(std::span<const std::byte> datagram) noexcept {
  if (datagram[0] != std::byte{22} || read16(datagram.subspan(3)) != 0) return {};
  const std::size_t length = read16(datagram.subspan(11));
  if (length < handshake_header_size) return {};
  const auto message = datagram.subspan(header_size, length);
  if (message[0] != std::byte{static_cast<std::uint8_t>(HandshakeType::client_hello)}) return {};
  const std::uint32_t body = read24(message.subspan(1));
  const std::uint32_t fragment = read24(message.subspan(9));
  if (read24(message.subspan(6)) != 0 || fragment >= body || fragment != length - handshake_header_size) return {};
  return message.subspan(handshake_header_size);
}

// Facts about a ClientHello datagram already known to be well_formed (see first_handshake_type): a whole
// ClientHello or the first fragment of one; nullopt when it is neither or is malformed.
constexpr std::optional<ClientHelloFacts> client_hello_of_well_formed(std::span<const std::byte> datagram) noexcept {
  std::span<const std::byte> body = first_client_hello_fragment(datagram);
  const bool first_fragment = !body.empty();
  if (!first_fragment) {
    if (first_record_handshake_type(datagram) != HandshakeType::client_hello) return std::nullopt;
    body = datagram.subspan(header_size + handshake_header_size, read24(datagram.subspan(header_size + 1)));
  }
  constexpr std::size_t version_and_random = 2 + 32;
  if (body.size() < version_and_random + 1) return std::nullopt;
  const std::size_t session_id = static_cast<std::size_t>(body[version_and_random]);
  const std::size_t cookie_at = version_and_random + 1 + session_id;
  if (session_id > 32 || body.size() < cookie_at + 1) return std::nullopt;
  ClientHelloFacts facts{.has_cookie = body[cookie_at] != std::byte{0}, .random = {},
                         .record_sequence = record_sequence(datagram)};
  for (std::size_t i = 0; i < facts.random.size(); ++i) facts.random[i] = body[2 + i];
  const HelloExtensions extensions = hello_extensions(body.subspan(cookie_at));
  facts.has_cookie_extension = extensions.cookie;
  facts.has_pre_shared_key = extensions.pre_shared_key;
  facts.has_key_share = extensions.key_share;
  facts.offers_psk_dhe_ke = extensions.psk_dhe_ke;
  facts.has_cookie = facts.has_cookie || facts.has_cookie_extension;
  facts.first_fragment = first_fragment;
  return facts;
}

constexpr std::optional<ClientHelloFacts> client_hello(std::span<const std::byte> datagram) noexcept {
  return well_formed(datagram) ? client_hello_of_well_formed(datagram) : std::nullopt;
}

// A handshake message that an unencrypted fragment announces: its message_seq and declared length.
struct AnnouncedMessage {
  std::uint32_t message_seq{0};
  std::uint32_t length{0};
};

// How many distinct announced messages FlightFacts lists: a client sends about six in the clear, and a server
// engine refuses more than this many in one handshake (Engine's reassembly budget).
inline constexpr std::size_t max_announced_messages = 16;

// What a handshake datagram carries, read from its record headers alone. For one we send: whether it
// repeats an earlier flight (lowest message_seq, ChangeCipherSpec). For one we receive: which handshake
// messages the peer sent in the clear, and whether it sent an encrypted handshake record (its Finished).
struct FlightFacts {
  std::optional<std::uint32_t> lowest_message_seq;   // of the unencrypted (epoch 0) handshake fragments
  bool change_cipher_spec{false};
  std::optional<std::uint64_t> highest_epoch0_sequence;   // record sequence number, 48 bits
  std::uint32_t handshake_types{0};      // bit t set: an epoch-0 handshake fragment of message type t (< 32)
  bool encrypted_handshake{false};       // a handshake record of epoch 1 or later: a Finished
  bool alert{false};                     // an alert record (any epoch)
  // The messages the epoch-0 handshake fragments announce, each once, in order of appearance; `more_announced`
  // when there were more than max_announced_messages.
  std::array<AnnouncedMessage, max_announced_messages> announced{};
  std::size_t announced_count{0};
  bool more_announced{false};

  constexpr bool has(HandshakeType type) const noexcept { return includes(handshake_types, type); }
  constexpr void announce(std::uint32_t message_seq, std::uint32_t length) noexcept {
    for (std::size_t i = 0; i < announced_count; ++i)
      if (announced[i].message_seq == message_seq) return;
    if (announced_count == announced.size()) {
      more_announced = true;
      return;
    }
    announced[announced_count++] = {message_seq, length};
  }
};

// Adds what one record says to `facts`: every handshake fragment of an unencrypted record (a record may
// carry several).
constexpr void add_record(FlightFacts& facts, const Record& record) noexcept {
  if (record.unified) return;   // DTLS 1.3, encrypted: nothing to read
  const auto type = static_cast<ContentType>(record.content_type);
  const bool epoch0 = read16(record.header.subspan(3)) == 0;   // not encrypted
  if (type == ContentType::change_cipher_spec) facts.change_cipher_spec = true;
  if (type == ContentType::alert) facts.alert = true;
  // (A tls12_cid record hides its type; during a handshake the peer encrypts only its Finished.)
  if ((type == ContentType::handshake || type == ContentType::tls12_cid) && !epoch0) facts.encrypted_handshake = true;
  if (!epoch0) return;
  const std::uint64_t sequence = record_sequence(record.header);
  if (!facts.highest_epoch0_sequence || sequence > *facts.highest_epoch0_sequence) facts.highest_epoch0_sequence = sequence;
  if (type != ContentType::handshake) return;
  for (auto rest = record.fragment; rest.size() >= handshake_header_size;) {
    const std::uint32_t message_seq = read16(rest.subspan(4));
    if (!facts.lowest_message_seq || message_seq < *facts.lowest_message_seq) facts.lowest_message_seq = message_seq;
    if (const auto message_type = static_cast<std::uint8_t>(rest[0]); message_type < 32)
      facts.handshake_types |= 1u << message_type;
    facts.announce(message_seq, read24(rest.subspan(1)));
    rest = rest.subspan(std::min(rest.size(), handshake_header_size + read24(rest.subspan(9))));
  }
}

constexpr FlightFacts flight_facts(std::span<const std::byte> datagram) noexcept {
  FlightFacts facts;
  if (!well_formed(datagram)) return facts;
  while (const auto record = next_record(datagram)) add_record(facts, *record);
  return facts;
}

// A datagram on its way in, read once (view()): what the server endpoint, the Listener and the engine each
// need from its record headers, passed down instead of parsed again at every layer.
struct DatagramView {
  std::span<const std::byte> bytes;
  std::span<const std::byte> connection_id;       // of its first record (one with a CID); empty otherwise
  bool dtls12_headers_only{true};                 // no DTLS 1.3 unified header (what a DTLS 1.2 session takes)
  bool starts_with_plaintext_handshake{false};    // its first record is an unencrypted handshake record
  std::optional<ClientHelloFacts> hello;          // its first record is a ClientHello
  FlightFacts flight;
};

// Reads `datagram` in one walk over its records; nullopt when it is not well_formed.
constexpr std::optional<DatagramView> view(std::span<const std::byte> datagram) noexcept {
  if (datagram.empty()) return std::nullopt;
  DatagramView seen{datagram, {}, true, starts_with_plaintext_handshake(datagram), std::nullopt, {}};
  for (auto rest = datagram; !rest.empty();) {
    const bool first = rest.size() == datagram.size();
    const auto record = next_record(rest);
    if (!record) return std::nullopt;
    if (first) seen.connection_id = record->connection_id;
    seen.dtls12_headers_only = seen.dtls12_headers_only && !record->unified;
    add_record(seen.flight, *record);
  }
  if (seen.starts_with_plaintext_handshake) seen.hello = client_hello_of_well_formed(datagram);
  return seen;
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
