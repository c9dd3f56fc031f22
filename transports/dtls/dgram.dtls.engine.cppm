// dgram.dtls.engine: DTLS 1.2 and 1.3 as a sans-I/O engine over wolfSSL.
//
// The engine never touches a socket or a clock. Drivers give it datagrams (on_datagram), timer events
// (on_timer, when next_timer() has passed) and messages to encrypt (send); they take the datagrams it wants
// sent (outgoing) and the messages it decrypted (take_message). wolfSSL reaches it only through custom I/O
// callbacks over in-memory buffers, so the blocking, event-driven and threaded drivers all run this one engine.
//
// Ownership: DtlsContext owns the wolfSSL context (shared by every engine made from it, held by shared_ptr);
// Engine owns one wolfSSL session object; Session owns a resumable wolfSSL session. All move-only.
// An Engine is used by one thread at a time; a DtlsContext may make engines on several threads.
//
// For applications: DtlsContext, Session, SessionInfo and PeerCertificate, FailureKind, EngineStats and the
// capability checks. For drivers (the sans-I/O layer): Engine, Listener, CookieSecrets, RecordNumber.
module;
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>
export module dgram.dtls.engine;

export import dgram.clock;
export import dgram.endpoint;
export import dgram.error;
export import dgram.dtls.config;
export import dgram.dtls.record;

export namespace dgram::dtls {

// The largest DTLS datagram a driver needs to read: a full 16 KiB record plus headers and padding. Anything
// larger is no record wolfSSL could take; drivers read into buffers of this size and drop what is truncated.
inline constexpr std::size_t max_datagram_size = 16384 + 2048;

// What goes to an address that has not shown it receives (a stateless answer to a ClientHello, a session's
// new address) is at most this many times what came from it: QUIC's anti-amplification factor (RFC 9000 8).
inline constexpr std::size_t anti_amplification_factor = 3;

// wolfSSL's error codes (negative numbers) with wolfSSL's own text; the category's name is "wolfssl".
const std::error_category& wolfssl_category() noexcept;

// What the wolfSSL this build links can do (-Dwolfssl: Debian's 5.5.4 has none; the optimized build all).
bool dtls13_available() noexcept;
bool connection_id_available() noexcept;   // for DTLS 1.2 (RFC 9146) and 1.3
bool post_quantum_available() noexcept;    // the ML-KEM hybrid groups (Group::x25519_mlkem768...), DTLS 1.3
bool srtp_available() noexcept;            // DTLS-SRTP and the keying-material exporter
bool raw_public_keys_available() noexcept;
// Whether wolfSSL uses AES-NI here, and so prefers AES-128-GCM by default (DtlsConfig::cipher_list).
bool aes_ni_available() noexcept;
// The cipher list a configuration uses: its own, or its profile's for its version, key type and this build.
std::string cipher_list_for(const DtlsConfig& config);
// The cipher suites this build's wolfSSL has, by wolfSSL's names (what DtlsConfig::cipher_list may name).
std::vector<std::string> available_cipher_suites();
// "5.7.2", for messages.
std::string wolfssl_version();

class DtlsContext {
 public:
  // Loads the certificates, key and settings. On failure sets ec and writes one readable line to `reason`
  // (which file, and what is wrong with it). Returns nullptr on failure.
  static std::shared_ptr<DtlsContext> create(const DtlsConfig& config, std::error_code& ec,
                                             std::string* reason = nullptr);
  ~DtlsContext();
  DtlsContext(const DtlsContext&) = delete;
  DtlsContext& operator=(const DtlsContext&) = delete;

  const DtlsConfig& config() const noexcept;

  struct Impl;

 private:
  friend Impl& context_impl(const DtlsContext& context) noexcept;   // (the engine's units only)
  explicit DtlsContext(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

// A resumable session that a client saved after a handshake (session ID and, when the server gave one, a
// ticket). Empty when default-constructed.
class Session {
 public:
  Session() noexcept;
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  // The WOLFSSL_SESSION, for the engine's units only.
  friend void* session_handle(const Session& session) noexcept;
  friend Session adopt_session(void* handle) noexcept;
  void* handle_{nullptr};
};

enum class EngineState { handshaking, established, closed, failed };

// Why a handshake failed, as a kind a program can explain in its own words (with its own option names);
// Engine::failure() has the details in words.
enum class FailureKind {
  none,
  untrusted_certificate,       // the peer's certificate does not verify against the trusted CAs (or expired)
  certificate_name_mismatch,   // the server's certificate does not carry the expected name or address
  certificate_required,        // a client certificate is required and none was sent
  unknown_psk_identity,        // the server does not know the client's pre-shared key identity
  psk_mismatch,                // both sides use the same identity but their pre-shared keys differ
  no_shared_cipher,            // no cipher suite or group in common (e.g. a certificate client, PSK-only server)
  unpinned_key,                // the peer's raw public key is not among DtlsConfig::pinned_peer_keys
  certificate_type_mismatch,   // a certificate where a raw public key was required, or the reverse
  version_mismatch,            // no DTLS version in common (DtlsConfig::version)
  peer_closed,                 // the peer closed or aborted the session during the handshake
  timed_out,                   // the peer stopped answering
  crowded_out,                 // server: dropped unfinished for a newer handshake (too many under way)
  other,
};

struct EngineStats {
  std::uint64_t datagrams_in{0};
  std::uint64_t datagrams_out{0};
  std::uint64_t dropped_datagrams{0};   // malformed, oversized, or records wolfSSL discarded (replays, bad MACs)
  std::uint64_t retransmissions{0};     // handshake flights sent again after a timeout
  std::uint64_t damped_retransmissions{0};   // resends prompted by the peer's resends, held back (no storms)
  std::uint64_t over_handshake_budget{0};    // server: datagrams dropped whose handshake fragments would take
                                             // the handshake past max_handshake_reassembly (not in dropped_datagrams)
};

// A server's budget for the handshake messages a client sends in the clear (DTLS 1.2: ClientHellos,
// certificate chain, key exchange; 1.3: ClientHellos), by the lengths their fragments declare: wolfSSL sets
// aside a message's whole declared length for its first fragment, up to 19 messages of 18 KiB each (365 KiB
// for one handshake that never completes). Far above any real client's flight (a chain of four RSA-4096
// certificates is about 8 KiB), far below that pool. Fragments past it are dropped and counted.
inline constexpr std::size_t max_handshake_reassembly = 32 * 1024;

// A DTLS record number: the epoch, then the sequence number within it. Newer compares greater.
struct RecordNumber {
  std::uint64_t epoch{0};
  std::uint64_t sequence{0};
  friend auto operator<=>(const RecordNumber&, const RecordNumber&) = default;
};

// The certificate a peer authenticated with: its chain verified against DtlsConfig::trusted_authorities.
// Text the peer chose is escaped (no control characters reach a log). subject and issuer are for people (one
// line, RDNs joined by ", " as wolfSSL lists them, unescaped commas in values, at most 512 bytes): to recognise
// a device, key it by sha256.
struct PeerCertificate {
  std::string subject;              // "O=dgram, CN=sensor-17"
  std::string issuer;               // the CA that signed it, the same way
  std::vector<std::string> names;   // its subject alternative names (DNS names, IP addresses, URIs, e-mail), in
                                    // the order wolfSSL lists them
  std::string sha256;               // SHA-256 of its DER encoding in hex (`openssl x509 -fingerprint -sha256`'s
                                    // bytes, lower case, without ':'): a stable key for a device
};

// What an established session negotiated, and who the peer proved to be: at most one of peer_certificate,
// psk_identity and peer_key_sha256 is set. None is when the peer was not asked to authenticate (a server that
// does not ask for client certificates, a client that does not verify its server) and for a PSK session resumed
// on a server that also has a certificate (wolfSSL's session does not keep the identity).
struct SessionInfo {
  Endpoint peer;                  // in a SessionSummary: its address when the session ended
  std::string version;            // "DTLSv1.2" or "DTLSv1.3"
  std::string cipher;             // wolfSSL's standard name of the suite
  std::string srtp_profile;       // the DTLS-SRTP profile negotiated (DtlsConfig::srtp_profiles); empty without
  std::string key_exchange;       // the group of the (EC)DHE or hybrid key exchange ("X25519", "SECP256R1",
                                  // "X25519MLKEM768"); empty without one (a plain pre-shared key, resumption)
  bool resumed{false};
  bool connection_id{false};      // the session uses a Connection ID
  std::vector<std::byte> receive_connection_id;   // the ID the peer puts in its records to us (a server's: the
                                                  // one it routes by); empty without
  std::optional<PeerCertificate> peer_certificate;
  std::string psk_identity;       // the pre-shared key identity it authenticated with; empty without PSK
  std::string peer_key_sha256;    // the peer's raw public key: SHA-256 of its SubjectPublicKeyInfo, hex; or empty
};

// Who the peer proved to be, in a few words: "certificate O=dgram, CN=sensor-17 (SHA-256 ab12...)",
// "PSK identity sensor-17", "raw key SHA-256 ab12...", "PSK session resumed, identity not kept" (DTLS 1.2)
// or "not authenticated".
std::string identity_of(const SessionInfo& session);
// One line for a log: "DTLSv1.3, cipher TLS_AES_128_GCM_SHA256, resumed no, CID on, certificate ...[, key
// exchange X25519][, SRTP SRTP_AEAD_AES_128_GCM]".
std::string to_string(const SessionInfo& session);
// "untrusted certificate", "timed out"...: the kind's name in words (Engine::failure() has the details).
std::string to_string(FailureKind kind);
std::string to_string(EngineState state);

class Engine {
 public:
  // A client engine that will open a session with `peer`, offering `resume` when it is set.
  static Engine client(std::shared_ptr<DtlsContext> context, const Endpoint& peer, const Session* resume,
                       std::error_code& ec);
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  // Client: writes the ClientHello into outgoing(). Server engines come from a Listener already started.
  void start(TimePoint now, std::error_code& ec);
  // One datagram from the peer. A failure of the handshake sets ec (and state() becomes failed); a malformed
  // or undecryptable datagram is dropped and counted, never an error. Once established, call take_message()
  // until it returns nullopt after each datagram: that is also when the engine answers a peer that
  // retransmits its last handshake flight.
  void on_datagram(std::span<const std::byte> datagram, TimePoint now, std::error_code& ec);
  // The same for a datagram already read (record::view): a caller that read it does not have it read again.
  void on_datagram(const record::DatagramView& datagram, TimePoint now, std::error_code& ec);
  // Call once next_timer() has passed: retransmits the last handshake flight, or ends the handshake when
  // DtlsConfig::handshake_timeout has passed since it began (errc::timeout, FailureKind::timed_out; a client's
  // began at start(), a server's when its cookie verified). ec also when retransmissions are exhausted
  // (wolfSSL gives up after its timeout reaches 64 s).
  void on_timer(TimePoint now, std::error_code& ec);
  // When the engine needs on_timer(): a resend or the handshake deadline; once established, only while DTLS 1.3
  // has work that needs a timer (a path check waiting for its answer, a KeyUpdate to resend, ACKs owed).
  Deadline next_timer() const noexcept;

  // Encrypts one message as one record into outgoing(). Needs state() == established; a message larger than
  // max_message_size() is errc::message_too_large, an empty one errc::empty_message (wolfSSL 5.5.4 writes no
  // empty records).
  void send(std::span<const std::byte> message, std::error_code& ec);
  // Decrypts the next message into `buffer` and returns its size, or nullopt when there is none (yet).
  // A buffer smaller than the message gets its start and errc::truncated. The peer's close_notify makes
  // state() closed and returns nullopt.
  std::optional<std::size_t> take_message(std::span<std::byte> buffer, std::error_code& ec);
  // Queues close_notify (once) and makes state() closed.
  void close() noexcept;

  // Datagrams for the peer, oldest first. The driver sends them all, then calls clear_outgoing().
  std::span<const std::vector<std::byte>> outgoing() const noexcept;
  void clear_outgoing() noexcept;

  EngineState state() const noexcept;
  const Endpoint& peer() const noexcept;
  // The peer's address moved (a record from the new one authenticated): replies go there from now on.
  void set_peer(const Endpoint& peer);
  // The newest record from the peer that authenticated: a record from another address moves a session only when
  // it advanced this (RFC 9146 section 6), so a genuine record held back and replayed from elsewhere moves
  // nothing. nullopt where this build cannot tell (DTLS 1.2; Debian's wolfSSL): such a session does not move.
  std::optional<RecordNumber> newest_peer_record() const noexcept;
  // Once established: asks the peer to show that it receives at peer(), with a DTLS 1.3 KeyUpdate that asks for
  // one back (an earlier unanswered KeyUpdate of ours is answered first; resent by on_timer, given up after
  // about two minutes). path_confirmed() turns true when the answer came. False for DTLS 1.2, which has no such
  // exchange.
  bool check_path(TimePoint now, std::error_code& ec);
  bool path_confirmed() const noexcept;
  bool resumed() const noexcept;
  // wolfSSL's standard name of the negotiated suite (e.g. TLS_AES_128_GCM_SHA256, ECDHE-ECDSA-CHACHA20-POLY1305).
  std::string cipher() const;
  std::string key_exchange() const;   // SessionInfo::key_exchange
  std::string srtp_profile() const;   // SessionInfo::srtp_profile
  // "DTLSv1.2" or "DTLSv1.3" once established.
  std::string version() const;
  // Whether the session uses a Connection ID (both sides asked; DTLS 1.3, or 1.2 by RFC 9146).
  bool connection_id_in_use() const noexcept;
  // The Connection ID the peer puts in its records to us (a server's own CID); empty when there is none.
  std::vector<std::byte> receive_connection_id() const;
  // The Connection ID we put in our records to the peer (a client's: the server's CID); empty when none.
  std::vector<std::byte> send_connection_id() const;
  // Keying material exported from the established session (RFC 5705 for DTLS 1.2, RFC 8446 7.5 for 1.3):
  // `length` bytes for `label` and, when given, `context`; both peers derive the same. Needs
  // DtlsConfig::keying_material_exporter (or srtp_profiles); errc::invalid_argument before the handshake
  // finished, without it, or for a label TLS reserves ("client finished", "master secret"...).
  std::vector<std::byte> export_keying_material(std::string_view label, std::optional<std::span<const std::byte>> context,
                                                std::size_t length, std::error_code& ec) const;
  // The DTLS-SRTP keys of the negotiated profile, laid out as RFC 5764 4.2 says: client write key, server
  // write key, client write salt, server write salt. errc::invalid_argument without a negotiated profile.
  std::vector<std::byte> srtp_keying_material(std::error_code& ec) const;
  // The pre-shared key identity the session authenticated with (a server: the client's); empty without PSK.
  std::string psk_identity() const;
  // The SHA-256 of the peer's raw public key (RFC 7250) in hex, once established; empty when it sent none.
  std::string peer_key_sha256() const;
  // The certificate the peer authenticated with, once established; nullopt when it sent none (PSK, a raw public
  // key, or not asked) or when we did not verify it (a client with verify_peer off). On a resumed session: the
  // one of the handshake that made the session.
  std::optional<PeerCertificate> peer_certificate() const;
  // All of the above, once established.
  SessionInfo info() const;
  std::size_t max_message_size() const noexcept;
  // Client, once established: the session to offer next time for resumption. DTLS 1.3 tickets arrive after the
  // handshake, with or before the server's first message: take the session after a message from the server.
  Session session() const;
  // Why the handshake failed, in words (what went wrong, with the certificate's subject and issuer or the
  // names it holds where that is the cause); empty otherwise.
  const std::string& failure() const noexcept;
  FailureKind failure_kind() const noexcept;
  const EngineStats& stats() const noexcept;

  struct Impl;

 private:
  friend class Listener;
  explicit Engine(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

struct ListenerStats {
  std::uint64_t hello_verify_requests{0};   // stateless cookie challenges sent (HelloVerify/RetryRequests)
  std::uint64_t bad_cookies{0};             // ClientHellos whose cookie did not verify (forged or stale)
  std::uint64_t dropped_datagrams{0};       // datagrams from peers without a session that were no ClientHello
  std::uint64_t sessions_started{0};        // ClientHellos with a valid cookie, handed over as engines
  std::uint64_t started_without_cookie{0};  // of those, DTLS 1.3 hellos keyed by a known PSK, served at once
  std::uint64_t failed_handshakes{0};       // ClientHellos with a valid cookie that cannot be served
  std::uint64_t answers_withheld{0};        // challenges not sent: over 3 times the hello that asked for them
};

// What the Listener did with the last datagram it was given.
enum class HelloVerdict {
  dropped,      // not a ClientHello that may open a session (counted in ListenerStats::dropped_datagrams)
  challenged,   // a cookie challenge went back (a HelloVerifyRequest or HelloRetryRequest)
  refused,      // a DTLS 1.3 cookie that did not verify: an alert went back
  withheld,     // a challenge was due but over 3 times the hello: nothing sent (no amplification)
  started,      // the cookie verified: a session engine was handed out
  failed,       // the cookie verified, but the hello cannot be served (failure() says why)
};

// The secret behind the Listener's cookies, shared by every Listener of a server (the threaded server's workers)
// so that a cookie one of them issued verifies on another. It rotates every `rotation_interval` (lazily, on the
// first ClientHello after the interval, by the clock the Listener is given) or on rotate(); a cookie made with
// the previous secret is still accepted, one from two secrets ago gets a new challenge. So a cookie, and a
// ClientHello carrying one, can be replayed for one to two intervals (30 s by default): short, as a replayed
// verified hello costs a server a session object (ServerEndpoint also refuses a recently used one). Thread-safe: the
// per-ClientHello check is one atomic load; copying a new secret takes a mutex once per rotation.
class CookieSecrets {
 public:
  using Secret = std::array<unsigned char, 32>;
  struct Snapshot {
    std::uint64_t generation{0};
    Secret current{};
    std::optional<Secret> previous;
  };

  // Throws std::system_error (errc::no_randomness) when the kernel gives no random bytes for the first secret.
  explicit CookieSecrets(std::chrono::seconds rotation_interval = std::chrono::seconds(30));
  // A cluster's secrets: derived from `keys.secret` for each wall-clock period of keys.cookie_rotation, so every
  // node with the same keys has the same secrets at the same time (rotate() then changes nothing: the clock does).
  explicit CookieSecrets(const SharedKeys& keys);
  // The secrets a server with `config` uses: a cluster's (config.shared_keys), else random ones rotating every
  // `rotation_interval`.
  static std::shared_ptr<CookieSecrets> for_config(const DtlsConfig& config,
                                                   std::chrono::seconds rotation_interval = std::chrono::seconds(30));
  CookieSecrets(const CookieSecrets&) = delete;
  CookieSecrets& operator=(const CookieSecrets&) = delete;

  // A new random secret; the current one becomes the previous one. False when the random source failed: the
  // secrets stay as they were.
  bool rotate();
  std::chrono::seconds rotation_interval() const noexcept;
  // Rotates when the interval has passed since the last rotation (the first call starts the interval), then
  // returns the generation: it changes with every rotation.
  std::uint64_t refresh(TimePoint now);
  Snapshot snapshot() const;

 private:
  static constexpr TimePoint::rep not_started = std::numeric_limits<TimePoint::rep>::min();
  void derive_for(std::uint64_t period);

  std::chrono::seconds interval_;
  std::optional<SharedKeys::Secret> shared_;   // set: derived from a cluster's secret by the wall clock
  std::atomic<std::uint64_t> period_{0};       // (shared) the period the secrets were derived for
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<TimePoint::rep> next_rotation_{not_started};   // in ticks of the steady clock
  mutable std::mutex mutex_;
  Secret current_{};
  std::optional<Secret> previous_;
};

// Reads a cluster's key file (DtlsConfig::shared_keys): 32 bytes, raw or as 64 hex digits (white space around
// them allowed; `openssl rand -hex 32` writes one), a regular file that only its owner may read or write. nullopt
// with one line in `why` otherwise (which file, and what is wrong).
std::optional<SharedKeys::Secret> read_shared_secret(const std::string& path, std::string& why);

// The leading `bits` bits (at most 16) of the Connection IDs a Listener issues: `value`. Without bits: none.
struct ConnectionIdPrefix {
  std::uint16_t value{0};
  std::uint8_t bits{8};
};

// The stateless front door of a server port (RFC 6347 section 4.2.1, RFC 9147 section 5.1). A ClientHello
// without a valid cookie gets a HelloVerifyRequest (DTLS 1.2) or a HelloRetryRequest with a cookie (DTLS 1.3)
// and leaves no state behind: the Listener holds one wolfSSL object that it reuses for every peer and gives
// away only when a cookie verifies. So no memory is spent on a peer before it proved it receives at its
// address.
class Listener {
 public:
  // `secrets` may be shared with other Listeners (of other threads); without one the Listener makes its own.
  // With connection IDs configured, each session gets a random one whose first byte is
  // `prefix` in its leading bits (the threaded server's worker, a cluster's node: whoever receives a record can
  // tell whose session it is).
  Listener(std::shared_ptr<DtlsContext> context, std::error_code& ec,
           std::shared_ptr<CookieSecrets> secrets = nullptr, ConnectionIdPrefix prefix = {});
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();

  // A datagram from `peer`, which has no session. Returns a started server engine for a ClientHello with a
  // valid cookie (send its outgoing()). Otherwise replies() holds what to send back to `peer` (a
  // HelloVerifyRequest, a HelloRetryRequest or a fatal alert), possibly nothing (the datagram was dropped and
  // counted). ec is set when a ClientHello with a valid cookie cannot be served (no cipher suite in common):
  // failure() and failure_kind() say why, until the next such failure.
  // A ClientHello whose record sequence number is 32 or more is dropped unread (a client numbers its hellos
  // from 0; such a hello would cost a fresh wolfSSL object, see listener.cpp). A challenge more than
  // anti_amplification_factor times the hello that asked for it is withheld (a DTLS 1.3 hello with no key
  // share gets about 1.5 times its size, and must: see listener.cpp).
  std::optional<Engine> on_datagram(const Endpoint& peer, std::span<const std::byte> datagram, TimePoint now,
                                    std::error_code& ec);
  // The same for a datagram already read (record::view). With `resumption_without_cookie` (and
  // DtlsConfig::resumption_skips_cookie) a DTLS 1.3 hello keyed by a pre-shared key the server knows (a ticket,
  // an external PSK) is served without the cookie round trip; the caller decides which hellos may (see
  // ServerEndpoint: not copies, not from a live session's address).
  std::optional<Engine> on_datagram(const Endpoint& peer, const record::DatagramView& datagram, TimePoint now,
                                    std::error_code& ec, bool resumption_without_cookie = false);
  // Whether the handshakes it starts from now on send a DTLS 1.2 server flight in two parts, the ServerHello
  // and Certificate before the key exchange is signed, so that the client checks the certificate meanwhile:
  // about 60 us less per handshake for a server with nothing else to do, but one more datagram and call into
  // wolfSSL per handshake, which a busy server spends better on other peers (ServerEndpoint splits while no
  // other handshake is under way). Off at first.
  void split_flights(bool split) noexcept;
  // Makes the wolfSSL object that answers the next ClientHello, if the last one became a session (on_datagram
  // makes it when needed otherwise). For after the sending: it keeps a wolfSSL_new off the handshake's path.
  void prepare() noexcept;
  HelloVerdict last_verdict() const noexcept;
  // Whether the last datagram carried a cookie that did not verify (challenged again, or refused).
  bool last_cookie_bad() const noexcept;
  std::span<const std::vector<std::byte>> replies() const noexcept;
  void clear_replies() noexcept;
  const ListenerStats& stats() const noexcept;
  const std::string& failure() const noexcept;
  FailureKind failure_kind() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dgram::dtls
