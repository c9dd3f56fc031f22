// The insides of dgram.dtls.engine, shared by its implementation units (context.cpp, engine.cpp,
// listener.cpp). Included inside the module purview after `module dgram.dtls.engine;`, so these definitions
// belong to the module; the wolfSSL and standard headers they need are in each unit's global module fragment.
// Not part of any interface: importers never see wolfSSL. In a module purview, member functions defined in a
// class are not implicitly inline, so the few defined here say `inline` themselves.

namespace dgram::dtls {

// The one owner of a wolfSSL handle: unique_ptr with the handle's free function.
template <auto Free>
struct Freer {
  template <typename T>
  inline void operator()(T* handle) const noexcept { Free(handle); }
};
using CtxPtr = std::unique_ptr<WOLFSSL_CTX, Freer<wolfSSL_CTX_free>>;
using SslPtr = std::unique_ptr<WOLFSSL, Freer<wolfSSL_free>>;
using X509Ptr = std::unique_ptr<WOLFSSL_X509, Freer<wolfSSL_X509_free>>;

// The SHA-256 of a DER SubjectPublicKeyInfo: how a raw public key is pinned and named.
using KeySha256 = std::array<std::byte, 32>;

struct DtlsContext::Impl {
  std::shared_ptr<void> ticket_keys;   // what the shared ticket callback reads: outlives ctx (destroyed after it)
  CtxPtr ctx;
  DtlsConfig config;
  std::vector<KeySha256> pinned_keys;   // DtlsConfig::pinned_peer_keys, parsed
};

// Seals and opens the context's session tickets with keys derived from a cluster's secret (shared_tickets.cpp);
// the returned state must outlive the context.
std::shared_ptr<void> use_shared_ticket_keys(WOLFSSL_CTX* ctx, const SharedKeys& keys);

// The friends through which the engine's units reach the insides of DtlsContext and Session (context.cpp).
DtlsContext::Impl& context_impl(const DtlsContext& context) noexcept;
void* session_handle(const Session& session) noexcept;
Session adopt_session(void* handle) noexcept;

// A certificate that failed verification, as the verify callback saw it.
struct CertificateProblem {
  long verify_error{0};   // X509_V_ERR_* (or a wolfSSL error code)
  int depth{0};           // 0: the peer's own certificate
  std::string subject;
  std::string issuer;
  std::string names;      // the names it is valid for (CN and DNS/IP subject alternative names), comma-separated
};

// What a failed handshake comes down to: a kind, the words, and the alert that tells the peer.
struct FailureExplanation {
  FailureKind kind{FailureKind::other};
  std::string why;
};

// One DTLS session object and the in-memory datagram queues its I/O callbacks read and write.
struct Engine::Impl {
  Impl(std::shared_ptr<DtlsContext> owner, Role side, const Endpoint& remote, std::error_code& ec);

  // wolfSSL's custom I/O: one call = one datagram. `context` is the Impl.
  static int receive_callback(WOLFSSL* ssl, char* buffer, int size, void* context);
  static int send_callback(WOLFSSL* ssl, char* buffer, int size, void* context);

  // Runs wolfSSL_connect / wolfSSL_accept as far as the queued input allows.
  void advance_handshake(std::error_code& ec);
  // A wolfSSL error ends the handshake: explained (handshake_failure.cpp), the peer told, ec set.
  void fail(int error, std::error_code& ec);
  void fail(FailureKind kind, std::string why, std::error_code& ec);
  // Makes sure the peer hears that the handshake failed: wolfSSL does not send an alert for every fatal error.
  void tell_peer_we_failed(std::uint8_t alert_description);
  // Notes what a peer's handshake datagram carries (for explaining failures); during the handshake, fails it
  // when the peer's Finished keeps arriving undecryptable after its ChangeCipherSpec (the keys differ).
  void note_peer_flight(const record::DatagramView& datagram, std::uint64_t handed_before, std::error_code& ec);
  bool peer_flight_before_finished_seen() const;
  // Asks for a DTLS 1.3 Connection ID; `receive_id` is the one the peer shall put in its records to us (none for a
  // client). False when this wolfSSL cannot.
  // DTLS-SRTP on a server: wolfSSL skips DTLS 1.2's cookie exchange for a session that has SRTP profiles, so
  // they are set only from wolfSSL's "ClientHello good" callback, which runs once the cookie has verified
  // (and before the hello's extensions are read); a Listener's probe forgets them before its next hello.
  static int offer_srtp_after_cookie(WOLFSSL* ssl, void* context);
  void forget_srtp_profiles();
  bool use_connection_id(std::span<const std::byte> receive_id);
  // Tells wolfSSL the peer's address: its stateless cookie is computed over it.
  void set_cookie_peer(const Endpoint& remote);
  void push_input(std::span<const std::byte> datagram);
  // Packs the datagrams written since output[first] into as few as fit (see engine.cpp).
  void pack_flight(std::size_t first);
  // Server: sends the first part of a DTLS 1.2 full handshake's flight before the signature, when
  // may_split_flight (see engine.cpp).
  // True when `datagram` was taken and wolfSSL is to hear WANT_WRITE.
  bool split_flight(std::span<const std::byte> datagram);
  // True for a datagram that repeats an earlier flight and was prompted by input, not by our timer, when we
  // resent one too recently: see send_callback.
  bool damp_retransmission(std::span<const std::byte> datagram);
  // Whether a resend prompted by the peer's input may go now: at most one per `interval`, counted from the last
  // one allowed (damp_retransmission and answer_repeated_flight share that clock).
  bool input_resend_allowed(std::chrono::milliseconds interval);
  // `bytes` in a buffer taken from spare when there is one (no allocation per datagram in steady state).
  std::vector<std::byte> recycled_copy(std::span<const std::byte> bytes);
  // Server, handshaking: whether the datagram's plaintext handshake fragments stay within
  // max_handshake_reassembly (declared message lengths, each message counted once), noting them when they do.
  bool within_handshake_budget(const record::FlightFacts& flight);
  // Starts the handshake's clock (see handshake_deadline).
  void begin_handshake(TimePoint start);
  // Once established: resend final_flight when the peer's datagram repeats its handshake flight.
  void answer_repeated_flight(const record::FlightFacts& flight);
  // The path check's next step (see check_path): sends our KeyUpdate once no earlier one of ours waits for an
  // answer, or notes the answer.
  void advance_path_check(std::error_code& ec);
  // Starts or stops the timer once established (later_timer_since) as wolfSSL and the path check need it.
  void update_later_timer();
  // The timer once established: resends our KeyUpdate and sends owed ACKs, tries a waiting path check again;
  // gives up after later_timer_limit runs.
  void run_later_timer(std::error_code& ec);

  std::shared_ptr<DtlsContext> context;
  SslPtr ssl;
  // A flight split at the Certificate (split_flight): paused until the next call into wolfSSL (on_timer's at
  // once, or the peer's datagram), in which wolfSSL first resends the Certificate's datagram (split_datagram):
  // not sent twice.
  enum class FlightSplit { none, paused, resuming, done };
  bool may_split_flight{false};   // set by the Listener (Listener::split_flights)
  FlightSplit flight_split{FlightSplit::none};
  std::vector<std::byte> split_datagram;
  Role role;
  Endpoint peer;
  EngineState state{EngineState::handshaking};
  std::deque<std::vector<std::byte>> input;
  std::vector<std::vector<std::byte>> output;
  std::vector<std::vector<std::byte>> spare;   // recycled datagram buffers
  std::vector<std::byte> scratch;              // for take_message into a buffer smaller than a record
  TimePoint now{};
  std::optional<TimePoint> flight_sent_at;     // when the last handshake flight went out
  // When the handshake fails as timed out (DtlsConfig::handshake_timeout after it began: the client's start,
  // a server's verified cookie). next_timer() includes it, so every driver enforces it by running timers.
  std::optional<TimePoint> handshake_deadline;
  // The plaintext handshake messages the peer announced (message_seq, declared length) and their sum, for the
  // reassembly budget.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> announced_messages;
  std::size_t announced_bytes{0};
  int retransmit_wait_seconds{1};              // until the next resend of that flight: 1, 2, 4... up to the cap
  std::string failure;
  FailureKind failure_kind{FailureKind::none};
  EngineStats stats;
  std::uint64_t handed_over{0};                // datagrams given to wolfSSL by receive_callback
  // Retransmission damping (see send_callback): what we sent so far, and when we last resent on input.
  std::optional<std::uint32_t> highest_message_seq_sent;
  bool change_cipher_spec_sent{false};
  std::uint32_t sent_handshake_types{0};   // bit t: we sent a handshake message of type t in the clear
  std::optional<std::uint64_t> highest_epoch0_sequence_sent;
  bool in_timer{false};
  std::optional<TimePoint> last_input_retransmission;
  std::optional<std::uint64_t> resend_allowed_for_input;   // stats.datagrams_in of the input whose resend went
  // The flight that completed our side of the handshake (the server's Finished in a full handshake, the
  // client's in a resumed one). If it is lost the peer resends its own flight, and wolfSSL 5.5.4 does not
  // answer once its handshake is done: the engine answers with this copy until the peer's first message.
  std::vector<std::vector<std::byte>> final_flight;
  bool close_sent{false};
  // A path check under way (Engine::check_path): whether our KeyUpdate went out (it waits while an earlier
  // KeyUpdate is under way).
  struct PathCheck {
    bool sent{false};
  };
  std::optional<PathCheck> path_check;
  // Once established, the timer runs while there is work only it does (a path check, a KeyUpdate to resend, ACKs
  // owed): since when (or its last run), and how often it ran.
  std::optional<TimePoint> later_timer_since;
  int later_timer_runs{0};
  bool path_confirmed{false};
  // For explaining a failed handshake: what the peer sent in the clear, and what went wrong locally.
  std::uint32_t peer_handshake_types{0};   // bit t: the peer sent a handshake message of type t
  bool peer_change_cipher_spec{false};
  int undecryptable_finished{0};           // the peer's Finished arrived after its ChangeCipherSpec, unreadable
  std::vector<std::byte> last_undecryptable_finished;   // the datagram that carried the last one counted
  std::optional<CertificateProblem> certificate_problem;
  std::optional<std::string> unknown_psk_identity;   // server: an identity the client offered that we lack
  std::string psk_identity;                          // server: the identity whose key the handshake used
  std::optional<FailureExplanation> key_refusal;     // the peer's raw public key is not pinned
};

// Raw public keys (raw_public_keys.cpp). Presents the public half of `private_key_pem` instead of a certificate.
bool present_raw_public_key(WOLFSSL_CTX* ctx, const DtlsConfig& config, const std::string& private_key_pem,
                            std::string& reason);
// Parses the pinned keys `text` into context.pinned_keys and asks peers for raw public keys.
bool pin_peer_keys(DtlsContext::Impl& context, const std::string& text, std::string& reason);
// Whether the peer presented a raw public key (the negotiated certificate type), not a certificate.
bool peer_presented_raw_key(WOLFSSL* ssl, Role our_role);
// The SHA-256 of the raw public key the peer presented; nullopt when it presented none (a certificate, nothing).
std::optional<KeySha256> peer_raw_key_sha256(WOLFSSL* ssl, Role our_role);
// Once established: why the peer's key is not acceptable under the pinned keys, or nullopt when it is (or none
// are pinned).
std::optional<FailureExplanation> check_pinned_peer_key(const Engine::Impl& engine);
// The verify callback's part for a peer wolfSSL accepted: with pinned keys, 1 when the peer's key (store's first
// certificate buffer, a raw public key) is pinned, else 0 with engine.key_refusal saying why.
int accept_pinned_key(Engine::Impl& engine, WOLFSSL_X509_STORE_CTX* store);

// A server asks clients for certificates when it requires one, or verifies them and has CAs to verify with.
inline bool asks_client_certificates(const DtlsConfig& config) {
  return config.require_peer_certificate || (config.verify_peer && !config.trusted_authorities.empty());
}
// Whether `role` verifies the certificate its peer sends under `config` (the context's verify mode says the same).
inline bool verifies_peer_certificate(const DtlsConfig& config, Role role) {
  return role == Role::client ? config.verify_peer && !config.psk : asks_client_certificates(config);
}

// Whether sessions keep what the keying-material exporter needs (DTLS-SRTP derives its keys with it).
inline bool exports_keying_material(const DtlsConfig& config) {
  return config.keying_material_exporter || !config.srtp_profiles.empty();
}

// "server" or "client": the other side of `impl`, for messages.
inline const char* peer_side(const Engine::Impl& impl) { return impl.role == Role::client ? "server" : "client"; }

// Why the handshake of `impl` failed with wolfSSL error `error` (handshake_failure.cpp).
FailureExplanation explain_failure(const Engine::Impl& impl, int error);
// The name of a TLS alert, also for those wolfSSL has no text for.
std::string alert_name(int description);
// The names the peer's certificate is valid for, for a failure message.
std::string peer_certificate_names(WOLFSSL* ssl);

// Certificates in words (peer_certificate.cpp).
KeySha256 sha256_of(std::span<const unsigned char> der);
// "/O=dgram/CN=localhost" -> "O=dgram, CN=localhost", escaped for logs; "?" when unreadable.
std::string readable_name(WOLFSSL_X509_NAME* name);
// A certificate's subject alternative names in words: DNS names and IP addresses, with `every_kind` also URIs
// and e-mail addresses. Escaped for logs.
std::vector<std::string> alternative_names(WOLFSSL_X509* certificate, bool every_kind);
// The names a certificate is valid for: its DNS and IP alternative names, else its common name; "no name".
std::string certificate_names(WOLFSSL_X509* certificate);
// The DER of the first entry of the peer's chain as wolfSSL keeps it with the session (a certificate or a raw
// public key); nullopt when it sent none. Valid while the session lives.
std::optional<std::span<const unsigned char>> peer_leaf_der(WOLFSSL* ssl);
// The leaf certificate of the peer's verified chain, described; nullopt when it sent none. (A raw public key
// reads as a certificate without a subject here: the caller asks peer_presented_raw_key first.)
std::optional<PeerCertificate> describe_peer_certificate(WOLFSSL* ssl);
// The verify callback every context installs: records the first failing certificate in its engine.
int record_certificate_problem(int preverified, WOLFSSL_X509_STORE_CTX* store);

}  // namespace dgram::dtls
