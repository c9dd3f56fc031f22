// dgram.dtls.config: everything a DTLS endpoint is configured with, as plain C++ values.
//
// No wolfSSL type or macro appears here: a DtlsContext (dgram.dtls.engine) turns a DtlsConfig into a
// wolfSSL context and reports what is wrong with it (unreadable file, key not matching the certificate...).
module;
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
export module dgram.dtls.config;

export namespace dgram::dtls {

// PEM text, from a file or from memory. Exactly one of the two is set.
struct Pem {
  std::string path;   // read when the context is built; errors name the file
  std::string text;   // used as is when path is empty

  static Pem file(std::string path) { return Pem{std::move(path), {}}; }
  static Pem memory(std::string text) { return Pem{{}, std::move(text)}; }
  std::string describe() const { return path.empty() ? std::string("in-memory PEM") : "'" + path + "'"; }
};

// Key-exchange groups, offered (client) or accepted (server) in this order. The two post-quantum hybrids
// (ML-KEM-768, FIPS 203, with X25519 or P-256: the groups TLS deployments adopted) are DTLS 1.3 only and need
// post_quantum_available(); a DTLS 1.2 handshake skips them.
enum class Group : std::uint16_t {
  x25519 = 29,
  secp256r1 = 23,
  secp384r1 = 24,
  secp521r1 = 25,
  secp256r1_mlkem768 = 4587,
  x25519_mlkem768 = 4588,
};

// The SRTP protection profiles DtlsConfig::srtp_profiles may name (wolfSSL's, as OpenSSL spells them).
inline constexpr std::string_view srtp_profile_names[] = {"SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_256_GCM",
                                                          "SRTP_AES128_CM_SHA1_80", "SRTP_AES128_CM_SHA1_32"};

// The group's name as TLS registries spell it: "X25519", "P-256", "X25519MLKEM768"...
constexpr std::string_view to_string(Group group) noexcept {
  switch (group) {
    case Group::x25519: return "X25519";
    case Group::secp256r1: return "P-256";
    case Group::secp384r1: return "P-384";
    case Group::secp521r1: return "P-521";
    case Group::secp256r1_mlkem768: return "SecP256r1MLKEM768";
    case Group::x25519_mlkem768: return "X25519MLKEM768";
  }
  return "unknown group";
}
inline constexpr Group all_groups[] = {Group::x25519_mlkem768, Group::secp256r1_mlkem768, Group::x25519,
                                       Group::secp256r1, Group::secp384r1, Group::secp521r1};
constexpr bool is_post_quantum(Group group) noexcept {
  return group == Group::x25519_mlkem768 || group == Group::secp256r1_mlkem768;
}
// The group a name means (to_string's, case-insensitive, or "secp256r1"...); nullopt for none.
constexpr std::optional<Group> group_named(std::string_view name) noexcept {
  const auto same = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
      if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
  };
  for (const Group group : all_groups)
    if (same(name, to_string(group))) return group;
  if (same(name, "secp256r1")) return Group::secp256r1;
  if (same(name, "secp384r1")) return Group::secp384r1;
  if (same(name, "secp521r1")) return Group::secp521r1;
  return std::nullopt;
}

// The sizes RFC 4279 asks every implementation to support, and what wolfSSL holds.
inline constexpr std::size_t max_psk_identity_size = 128;
inline constexpr std::size_t max_psk_key_size = 64;

struct PreSharedKey {
  std::string identity;
  std::vector<std::byte> key;
};

// A server's pre-shared keys by identity: one per device for a CoAP or LwM2M server with thousands of them
// (PskFileStore in dgram.dtls.psk_store is a ready one). find() runs on the serving thread in the middle of a
// handshake (in a ThreadedServer, on several workers at once): it must be thread-safe, must not block (no
// network or disk: keep the keys in memory) and should be O(1). Returns nullopt for an unknown identity.
class PskStore {
 public:
  virtual ~PskStore() = default;
  virtual std::optional<std::vector<std::byte>> find(std::string_view identity) const = 0;
};

enum class Role { client, server };

// Which cipher suites an empty DtlsConfig::cipher_list means.
enum class CipherProfile {
  standard,   // AEAD suites with ephemeral key exchange: ChaCha20 or AES-GCM first as fits this build
  coap,       // what CoAP (RFC 7252 section 9.1.3) and LwM2M devices run: AES-128-CCM-8 first, then CCM and GCM
};

// The protocol versions an endpoint speaks. DTLS 1.3 (RFC 9147) needs a wolfSSL built with it (dgram's
// -Dwolfssl=optimized); dtls13_available() says whether this build has it.
enum class Version {
  dtls1_2,   // DTLS 1.2 only
  dtls1_3,   // DTLS 1.3 only
  any,       // DTLS 1.3 preferred, 1.2 accepted
};

// ChaCha20-Poly1305 first: without AES-NI (Debian's wolfSSL) it is about twice as fast as AES-GCM.
inline constexpr const char* default_cipher_list =
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
// With AES-NI (the optimized wolfSSL) AES-128-GCM is the faster one (4 GiB/s against 1.5): the default there.
inline constexpr const char* default_aesni_cipher_list =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* default_psk_cipher_list =
    "PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256";
// DTLS 1.3 suites (certificates and pre-shared keys alike), added in front for Version::dtls1_3 and any. AES-GCM
// first: the wolfSSL that has DTLS 1.3 here also has AES-NI, where AES-GCM is the faster one.
inline constexpr const char* default_tls13_cipher_list = "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256";
// CipherProfile::coap. RFC 7252 makes TLS_PSK_WITH_AES_128_CCM_8 mandatory with pre-shared keys and
// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 with raw public keys and certificates; LwM2M adds the CBC-SHA256 suites of
// its 1.0 devices. Need the optimized wolfSSL (Debian's has CCM, but not the static-PSK suites). DTLS 1.3 leaves
// out TLS13-AES128-CCM-8-SHA256: wolfSSL 5.7.2 does not pad its records to the 16 bytes of ciphertext that
// RFC 9147 4.2.3 needs with an 8-byte tag, so a message under 8 bytes could not be sent.
inline constexpr const char* coap_psk_cipher_list =
    "PSK-AES128-CCM-8:PSK-AES128-CCM:PSK-AES128-GCM-SHA256:ECDHE-PSK-AES128-CBC-SHA256:PSK-AES128-CBC-SHA256";
inline constexpr const char* coap_certificate_cipher_list =
    "ECDHE-ECDSA-AES128-CCM-8:ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES128-GCM-SHA256";
inline constexpr const char* coap_tls13_cipher_list = "TLS13-AES128-CCM-SHA256:TLS13-AES128-GCM-SHA256";

// Key material that every node of a server cluster holds (docs/deploy.md): the cookie secrets and the
// session-ticket keys are derived from `secret` for each period of wall-clock time (HKDF-SHA256 over the period's
// number), so nodes that share the secret issue cookies and tickets every other node accepts, and rotate in
// step without talking to each other. The current and previous period's keys are accepted (a ticket also from
// the next period: nodes' clocks differ a little); keep the nodes' clocks in step (NTP) to well under a period.
// read_shared_secret (dgram.dtls.engine) reads it from a key file.
struct SharedKeys {
  using Secret = std::array<std::byte, 32>;
  Secret secret{};
  std::chrono::seconds cookie_rotation{30};     // a cookie is accepted for one to two of these
  std::chrono::seconds ticket_rotation{3600};   // a ticket resumes for one to two of these (clients are told two)
};

struct DtlsConfig {
  Role role = Role::client;
  Version version = Version::dtls1_2;

  // Our certificate chain (leaf first) and its private key. Required for a server without PSK.
  std::optional<Pem> certificate_chain;
  std::optional<Pem> private_key;
  // Certificate authorities that may sign the peer's certificate.
  std::vector<Pem> trusted_authorities;

  // Raw public keys (RFC 7250), how constrained devices authenticate without certificates. Needs
  // raw_public_keys_available() (the optimized wolfSSL).
  // Present the bare public key of private_key (its SubjectPublicKeyInfo) instead of a certificate chain.
  bool raw_public_key = false;
  // Accept only a peer that presents a raw public key pinned here (a server asks every client for one): PEM
  // "PUBLIC KEY" blocks and/or lines of the SHA-256 of a key's DER SubjectPublicKeyInfo in hex (':' between
  // bytes allowed, as `openssl pkey -pubin -outform DER | sha256sum` prints it); '#' starts a comment line.
  // A certificate in its place, or a key not pinned, fails the handshake saying which. A server that pins keys
  // resumes no session (the key is checked on every handshake); pins and pre-shared keys do not go together.
  std::optional<Pem> pinned_peer_keys;

  // Client: verify the server's certificate against trusted_authorities (on by default; needs one).
  // Server: ask every client for a certificate and verify the one it sends against trusted_authorities (the CAs
  // that sign client certificates); a client that sends none is still served, unauthenticated. Without
  // trusted_authorities a server asks no client (server_config() turns this off).
  bool verify_peer = true;
  // Server: ask every client for a certificate, verify it, and refuse a client that sends none: client-certificate
  // authentication (require_client_certificates() sets it up). Needs trusted_authorities: DtlsContext::create
  // refuses the configuration without them. The certificate each client proved is in SessionInfo::peer_certificate.
  bool require_peer_certificate = false;
  // Client: the DNS name or IP address the server's certificate must carry. Empty: chain checked, name not.
  std::string expected_server_name;

  // wolfSSL's names (ECDHE-ECDSA-AES128-CCM-8) or IANA's (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8), ':'-separated,
  // preferred first; a name this build lacks fails DtlsContext::create naming it (available_cipher_suites()).
  // Empty: the profile's list: for standard, default_cipher_list (default_aesni_cipher_list where wolfSSL has
  // AES-NI: aes_ni_available()), or default_psk_cipher_list with pre-shared keys; for coap, coap_psk_cipher_list
  // or coap_certificate_cipher_list (a server with both a certificate and pre-shared keys: both lists). DTLS 1.3
  // suites in front when the version allows 1.3. The standard lists shrink to the suites this build has; the
  // CoAP profile is all or nothing (a build without its suites refuses it, naming one).
  std::string cipher_list;
  CipherProfile cipher_profile = CipherProfile::standard;

  // DTLS-SRTP (RFC 5764, what WebRTC and other media programs key SRTP with): the SRTP protection profiles
  // offered (client) or accepted (server), ':'-separated, preferred first, of srtp_profile_names. Empty: no
  // use_srtp extension. The negotiated one is SessionInfo::srtp_profile; its keys come from
  // Engine::srtp_keying_material. Needs srtp_available().
  std::string srtp_profiles;
  // Keep what the keying-material exporter (RFC 5705, RFC 8446 7.5: Engine::export_keying_material) needs
  // after the handshake: the randoms and master secret, a few hundred bytes per session that are otherwise
  // freed. Implied by srtp_profiles.
  bool keying_material_exporter = false;
  // Never wolfSSL's P-521-first default: offering it first makes handshakes with OpenSSL ~3.5x slower.
  // Classical by default: a hybrid key share adds 1.2 KB to the ClientHello (which then comes in fragments once
  // it carries the cookie) and 1.1 KB to the ServerHello; put x25519_mlkem768 first to prefer it (DTLS 1.3).
  std::vector<Group> groups{Group::x25519, Group::secp256r1};

  // Client: the identity and key it offers. Server: one identity it accepts (see also psk_store).
  std::optional<PreSharedKey> psk;
  // Server: the keys of many identities, looked up during each PSK handshake (before `psk`, which may be unset).
  // A server with a store and no certificate or raw key resumes no session: a key removed from the store takes
  // effect at once. (On a server with both, a resumed PSK session reports no identity: wolfSSL's sessions do
  // not keep it.)
  std::shared_ptr<const PskStore> psk_store;

  // Resumption: session IDs via the server's cache, and RFC 5077 tickets (DTLS 1.3 resumes by ticket only). A
  // server that asks for client certificates issues no tickets: a ticket does not keep the client's certificate
  // (the cache does), so its DTLS 1.2 sessions resume by session ID and its DTLS 1.3 sessions not at all.
  bool session_cache = true;
  bool session_tickets = true;
  // Server, DTLS 1.3, opt-in: a ClientHello keyed by a pre-shared key this server knows (a ticket it accepts,
  // or an external PSK's identity) is answered at once, without the cookie round trip (HelloRetryRequest),
  // as a DTLS 1.2 resumption is: resumptions about 1.3 times as fast. The price is the address proof: anyone
  // holding a ticket (any client that once completed a handshake) or a PSK can make the server spend a
  // resumed handshake's work (a key exchange, a handshake slot until its timeout) on hellos from addresses
  // they do not own, which the per-source handshake limit cannot tell apart. ServerEndpoint takes each such
  // hello once (a copy from another address is challenged), never from a live session's address (it would
  // replace that session), and holds what it sends to the address to three times what came from there until
  // the handshake ends. Off: every hello proves its address first (RFC 9147 5.1's default). Needs the
  // optimized wolfSSL (Debian's always challenges).
  bool resumption_skips_cookie = false;
  // DTLS 1.3: how handshakes keyed by a pre-shared key (a resumption ticket, or an external PSK) agree their keys.
  // true: a server adds a fresh (EC)DHE key when the client offers it (psk_dhe_ke), so a stolen ticket key or
  // PSK does not decrypt them (forward secrecy), and still serves a client that offers only psk_ke on the key
  // alone; a client offers both modes and follows the server's choice. false: the key alone (psk_ke), as in a
  // DTLS 1.2 resumption or a PSK cipher suite without DHE: a server saves its key exchange and fails a client
  // that offers only psk_dhe_ke (OpenSSL's default); a client offers psk_ke only (its hello keeps a key share,
  // for a server that refuses the ticket and goes on in full).
  bool psk_forward_secrecy = true;
  // Server: cookie secrets and ticket keys derived from a cluster's shared secret instead of random ones of this
  // process (a ThreadedServer's workers share those anyway): a cookie or ticket one node issued verifies on
  // every node with the same secret, DTLS 1.2 and 1.3. Unset: each process has its own.
  std::optional<SharedKeys> shared_keys;

  // Connection IDs (DTLS 1.3, and DTLS 1.2 by RFC 9146): a server gives each session a random ID
  // (record::connection_id_size bytes) that the client puts in every record, so a session survives the
  // client's address changing (NAT rebinding). Both sides must ask. Needs connection_id_available().
  bool connection_id = false;

  // A handshake that has not completed after this long fails with errc::timeout. (How long an established
  // session may stay idle is the serving program's choice: it bounds its receive deadlines.)
  std::chrono::milliseconds handshake_timeout{10'000};
  // Handshake flights are resent after 1 s, then 2, 4... seconds. At the default, 64, a flight is given up
  // after its wait reaches 64 s (7 resends, wolfSSL's own limit). Below 64 the wait stops growing at this
  // many seconds and resends go on until handshake_timeout (or 30 resends of one flight): handshakes finish
  // sooner on a lossy path, at the cost of more resends.
  int retransmission_timeout_max_seconds = 64;
};

// Whether `config` authenticates with pre-shared keys (one key, or a server's store of them).
inline bool uses_psk(const DtlsConfig& config) { return config.psk.has_value() || config.psk_store != nullptr; }

// A DtlsConfig for a client with default choices; `ca` verifies the server, named `server_name`.
inline DtlsConfig client_config(Pem ca, std::string server_name) {
  DtlsConfig config;
  config.role = Role::client;
  config.trusted_authorities.push_back(std::move(ca));
  config.expected_server_name = std::move(server_name);
  return config;
}

// A DtlsConfig for a server with default choices: it authenticates itself, and asks clients for nothing.
inline DtlsConfig server_config(Pem certificate_chain, Pem private_key) {
  DtlsConfig config;
  config.role = Role::server;
  config.certificate_chain = std::move(certificate_chain);
  config.private_key = std::move(private_key);
  config.verify_peer = false;
  return config;
}

// Makes a server authenticate its clients by certificate: every client must present one signed by
// `client_authority` (call again to trust more CAs: then tell devices apart by PeerCertificate::sha256, as two
// CAs may issue the same subject). Who each client is: SessionInfo::peer_certificate.
inline void require_client_certificates(DtlsConfig& server, Pem client_authority) {
  server.trusted_authorities.push_back(std::move(client_authority));
  server.verify_peer = true;
  server.require_peer_certificate = true;
}

}  // namespace dgram::dtls
