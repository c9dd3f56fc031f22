// libFuzzer target: DTLS record triage and the plaintext alert builder (dgram.dtls.record), any bytes.
// Besides "no crash, no UB", it checks that the parsers agree with each other (the one-walk view() with
// each separate one).
#include <algorithm>
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
  // (A ClientHello's first fragment is a hello without a whole-message type.)
  require(!hello || (hello->first_fragment ? !type : type == record::HandshakeType::client_hello));
  require(well_formed || (!facts.lowest_message_seq && !facts.change_cipher_spec && facts.handshake_types == 0 &&
                          !facts.encrypted_handshake && !facts.alert));
  if (facts.handshake_types != 0) require(facts.lowest_message_seq.has_value());   // read together
  require(facts.announced_count <= facts.announced.size());
  // The one-walk view agrees with each separate parser.
  const auto view = record::view(bytes);
  require(view.has_value() == well_formed);
  if (view) {
    require(view->bytes.data() == bytes.data() && view->bytes.size() == bytes.size());
    require(std::ranges::equal(view->connection_id, record::connection_id(bytes)));
    require(view->dtls12_headers_only == record::dtls12_headers_only(bytes));
    require(view->starts_with_plaintext_handshake == record::starts_with_plaintext_handshake(bytes));
    require(view->hello.has_value() == hello.has_value());
    if (hello) require(view->hello->random == hello->random && view->hello->has_cookie == hello->has_cookie &&
                       view->hello->record_sequence == hello->record_sequence &&
                       view->hello->first_fragment == hello->first_fragment &&
                       view->hello->has_cookie_extension == hello->has_cookie_extension);
    require(view->flight.handshake_types == facts.handshake_types && view->flight.lowest_message_seq == facts.lowest_message_seq &&
            view->flight.announced_count == facts.announced_count && view->flight.alert == facts.alert &&
            view->flight.change_cipher_spec == facts.change_cipher_spec);
  }
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
