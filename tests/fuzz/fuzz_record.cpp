// libFuzzer target: DTLS record triage and the plaintext alert builder (dgram.dtls.record), any bytes.
// Besides "no crash, no UB", it checks that the parsers agree with each other.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>

import dgram;

namespace record = dgram::dtls::record;

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  const bool well_formed = record::well_formed(bytes);
  const auto type = record::first_handshake_type(bytes);
  const auto hello = record::client_hello(bytes);
  const record::FlightFacts facts = record::flight_facts(bytes);
  require(well_formed || !type);   // only a well-formed datagram has a handshake type
  require(!hello || type == record::HandshakeType::client_hello);
  require(well_formed || (!facts.lowest_message_seq && !facts.change_cipher_spec && facts.handshake_types == 0 &&
                          !facts.encrypted_handshake && !facts.alert));
  if (facts.handshake_types != 0) require(facts.lowest_message_seq.has_value());   // read together
  // An alert built from the input's first bytes is always one well-formed alert record and no handshake.
  std::uint64_t sequence = 0;
  for (std::size_t i = 0; i < size && i < 8; ++i) sequence = sequence << 8 | data[i];
  const auto alert = record::fatal_alert(sequence & 0xffff'ffff'ffffu,
                                         static_cast<record::AlertDescription>(size > 8 ? data[8] : 40));
  require(record::well_formed(alert));
  require(!record::first_handshake_type(alert));
  require(record::flight_facts(alert).alert);
  return 0;
}
