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

struct DtlsContext::Impl {
  CtxPtr ctx;
  DtlsConfig config;
};

// One DTLS session object and the in-memory datagram queues its I/O callbacks read and write.
struct Engine::Impl {
  Impl(std::shared_ptr<DtlsContext> owner, Role side, const Endpoint& remote, std::error_code& ec);

  // wolfSSL's custom I/O: one call = one datagram. `context` is the Impl.
  static int receive_callback(WOLFSSL* ssl, char* buffer, int size, void* context);
  static int send_callback(WOLFSSL* ssl, char* buffer, int size, void* context);

  // Runs wolfSSL_connect / wolfSSL_accept as far as the queued input allows.
  void advance_handshake(std::error_code& ec);
  void fail(int error, std::error_code& ec);
  void fail(std::string why, std::error_code& ec);
  // Makes sure the peer hears that the handshake failed: wolfSSL does not send an alert for every fatal error.
  void tell_peer_we_failed();
  // Tells wolfSSL the peer's address: its stateless cookie is computed over it.
  void set_cookie_peer(const Endpoint& remote);
  void push_input(std::span<const std::byte> datagram);
  // True for a datagram that repeats an earlier flight and was prompted by input, not by our timer, when we
  // resent one too recently: see send_callback.
  bool damp_retransmission(std::span<const std::byte> datagram);
  // Whether a resend prompted by the peer's input may go now: at most one per `interval`, counted from the last
  // one allowed (damp_retransmission and answer_repeated_flight share that clock).
  bool input_resend_allowed(std::chrono::milliseconds interval);
  // `bytes` in a buffer taken from spare when there is one (no allocation per datagram in steady state).
  std::vector<std::byte> recycled_copy(std::span<const std::byte> bytes);
  // Once established: resend final_flight when the peer's datagram repeats its handshake flight.
  void answer_repeated_flight(std::span<const std::byte> datagram);

  std::shared_ptr<DtlsContext> context;
  SslPtr ssl;
  Role role;
  Endpoint peer;
  EngineState state{EngineState::handshaking};
  std::deque<std::vector<std::byte>> input;
  std::vector<std::vector<std::byte>> output;
  std::vector<std::vector<std::byte>> spare;   // recycled datagram buffers
  std::vector<std::byte> scratch;              // for take_message into a buffer smaller than a record
  TimePoint now{};
  std::optional<TimePoint> flight_sent_at;     // when the last handshake flight went out
  std::string failure;
  EngineStats stats;
  std::uint64_t handed_over{0};                // datagrams given to wolfSSL by receive_callback
  // Retransmission damping (see send_callback): what we sent so far, and when we last resent on input.
  std::optional<std::uint32_t> highest_message_seq_sent;
  bool change_cipher_spec_sent{false};
  std::optional<std::uint64_t> highest_epoch0_sequence_sent;
  bool in_timer{false};
  std::optional<TimePoint> last_input_retransmission;
  // The flight that completed our side of the handshake (the server's Finished in a full handshake, the
  // client's in a resumed one). If it is lost the peer resends its own flight, and wolfSSL 5.5.4 does not
  // answer once its handshake is done: the engine answers with this copy until the peer's first message.
  std::vector<std::vector<std::byte>> final_flight;
  bool close_sent{false};
};

}  // namespace dgram::dtls
