// What the DTLS fuzz targets share: the invariant check, the test certificates' contexts, a reader that turns
// the fuzzer's bytes into decisions, and the few wire fields the targets check against (cookies).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

import dgram;

namespace dgram::fuzz {

using Datagram = std::vector<std::byte>;

// An invariant that does not hold is a finding: abort, so libFuzzer keeps the input.
inline void require(bool condition) {
  if (!condition) std::abort();
}

inline std::shared_ptr<dtls::DtlsContext> context(const dtls::DtlsConfig& config) {
  std::error_code ec;
  auto made = dtls::DtlsContext::create(config, ec);
  require(made != nullptr);
  return made;
}
// Contexts from certs/ (DGRAM_FUZZ_CERTS is the source tree's certs/ folder), made once per process.
inline const std::shared_ptr<dtls::DtlsContext>& client_context() {
  static const auto made = context(dtls::client_config(dtls::Pem::file(DGRAM_FUZZ_CERTS "/ca.pem"), "localhost"));
  return made;
}
inline const std::shared_ptr<dtls::DtlsContext>& server_context() {
  static const auto made = context(dtls::server_config(dtls::Pem::file(DGRAM_FUZZ_CERTS "/server-ecdsa.pem"),
                                                       dtls::Pem::file(DGRAM_FUZZ_CERTS "/server-ecdsa.key")));
  return made;
}

// The fuzzer's bytes as a stream of decisions; once they run out, every read is 0 ("no mutation").
class Decisions {
 public:
  Decisions(const std::uint8_t* data, std::size_t size) : data_{data}, size_{size} {}
  bool empty() const { return used_ >= size_; }
  std::uint8_t byte() { return used_ < size_ ? data_[used_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(byte() << 8 | byte()); }
  // Up to `count` of the remaining bytes, as a datagram.
  Datagram bytes(std::size_t count) {
    Datagram out;
    while (count-- > 0 && !empty()) out.push_back(std::byte{byte()});
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t used_{0};
};

// One message from `from` to `to` over a clean path: what `to` decrypted.
inline std::optional<std::string> relay(dtls::Engine& from, dtls::Engine& to, const std::string& message,
                                        TimePoint now) {
  std::error_code ec;
  from.send(std::as_bytes(std::span(message)), ec);
  require(!ec);
  for (const auto& d : from.outgoing()) to.on_datagram(d, now, ec);
  from.clear_outgoing();
  std::vector<std::byte> buffer(to.max_message_size());
  const auto size = to.take_message(buffer, ec);
  if (!size) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(buffer.data()), *size);
}

// The cookie of a datagram that is one DTLS 1.2 ClientHello (`hello`) or HelloVerifyRequest; nullopt when the
// datagram is neither or too short to hold one.
inline std::optional<Datagram> cookie_of(std::span<const std::byte> datagram, bool hello) {
  constexpr std::size_t body = 13 + 12;   // record header + handshake header
  const auto at = [&](std::size_t i) { return std::to_integer<std::size_t>(datagram[i]); };
  if (datagram.size() < body + 3 || at(0) != 22 || at(13) != (hello ? 1u : 3u)) return std::nullopt;
  std::size_t offset = body + 2;   // client_version / server_version
  if (hello) {
    offset += 32;                  // random
    if (datagram.size() <= offset) return std::nullopt;
    offset += 1 + at(offset);      // session_id
  }
  if (datagram.size() <= offset) return std::nullopt;
  const std::size_t length = at(offset);
  if (datagram.size() < offset + 1 + length) return std::nullopt;
  return Datagram(datagram.begin() + static_cast<std::ptrdiff_t>(offset + 1),
                  datagram.begin() + static_cast<std::ptrdiff_t>(offset + 1 + length));
}

}  // namespace dgram::fuzz
