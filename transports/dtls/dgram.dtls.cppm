// dgram.dtls: the blocking driver (DTLS 1.2 and 1.3): DtlsHandshaker (client connect, server accept) and DtlsChannel,
// both thin loops over the sans-I/O Engine and a Transport.
//
// The server side is the tutorial's chapter-2 server without its bugs: one unconnected socket, and a loop over
// the same ServerEndpoint the event server drives (stateless cookies, handshakes of several peers under way at
// once within its limits, stalled ones dropped); the first to finish is served alone, on its engine, and
// datagrams of other peers are never mixed into the current session.
module;
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>
export module dgram.dtls;

export import dgram.handshaker;
export import dgram.dtls.config;
export import dgram.dtls.engine;
export import dgram.dtls.server_endpoint;

export namespace dgram::dtls {

// A DTLS session with one peer over a borrowed Transport: the Transport (a UdpSocket) must outlive the channel.
// Every wait is bounded by the caller's deadline and
// wakes for the engine's retransmission timer, so a lost datagram never blocks forever.
class DtlsChannel final : public Channel {
 public:
  DtlsChannel(Transport& path, Engine engine);

  void send(std::span<const std::byte> message, std::error_code& ec) override;
  // Errors as Channel::receive; errc::closed after the peer's close_notify.
  std::size_t receive(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) override;
  // Sends close_notify once.
  void close(std::error_code& ec) override;
  Endpoint peer() const noexcept override { return engine_.peer(); }
  std::size_t max_message_size() const noexcept override { return engine_.max_message_size(); }
  std::uint64_t foreign_datagrams() const noexcept override { return foreign_; }

  // What the session negotiated and who the peer proved to be (a client: the server's certificate).
  SessionInfo info() const { return engine_.info(); }
  bool resumed() const noexcept { return engine_.resumed(); }
  std::string cipher() const { return engine_.cipher(); }
  // The session to resume with later (client side).
  Session session() const { return engine_.session(); }
  const Engine& engine() const noexcept { return engine_; }

 private:
  friend class DtlsHandshaker;
  // Sends what the engine queued, then waits for one datagram from the peer or the engine's timer (whichever
  // comes first, bounded by `deadline`) and feeds it. False with ec on deadline or failure.
  bool step(Deadline deadline, std::error_code& ec);
  void flush(std::error_code& ec);

  Transport& path_;
  Engine engine_;
  std::deque<std::vector<std::byte>> early_messages_;   // decrypted before the server handed the session over
  std::unique_ptr<std::byte[]> datagram_;   // not zero-filled: a session start must not touch 18 KiB of pages
  std::uint64_t foreign_{0};
};

struct AcceptStats {
  std::uint64_t failed_handshakes{0};   // failed or stalled past handshake_timeout, then skipped
  std::string last_failure;             // why the last one failed, with the peer
};

// Called for every peer whose handshake failed or stalled (after it proved its address with a cookie).
using HandshakeFailureHandler = std::function<void(const Endpoint& peer, FailureKind kind, const std::string& why)>;

class DtlsHandshaker final : public Handshaker {
 public:
  // A client or server handshaker, as the context's configuration says.
  explicit DtlsHandshaker(std::shared_ptr<DtlsContext> context);

  // Client: handshake with `peer` (bounded by `deadline` and the configured handshake_timeout), offering
  // `resume` when it is a saved session. On failure ec is set and `failure()` says why in words.
  std::unique_ptr<DtlsChannel> connect_dtls(Transport& path, const Endpoint& peer, Deadline deadline,
                                            std::error_code& ec, const Session* resume = nullptr);
  // Server: waits until a peer completes a handshake (cookie first) and returns its session. Peers whose
  // handshake fails or stalls are counted in accept_stats() and skipped. errc::timeout when `deadline` passes
  // with no handshake under way; a handshake that started runs up to handshake_timeout even past `deadline`.
  // errc::interrupted when a signal arrives. Up to 64 handshakes may be under way at once (the endpoint's
  // rules apply: the oldest gives way); sessions established together are returned by the next calls (up to
  // 16 wait; more are closed), on the Transport they came on.
  std::unique_ptr<DtlsChannel> accept_dtls(Transport& path, Deadline deadline, std::error_code& ec);

  std::unique_ptr<Channel> connect(Transport& path, const Endpoint& peer, Deadline deadline,
                                   std::error_code& ec) override;
  std::unique_ptr<Channel> accept(Transport& path, Deadline deadline, std::error_code& ec) override;

  // Server: `handler` hears of every failed handshake as it happens (accept_stats() keeps only the last).
  void on_handshake_failure(HandshakeFailureHandler handler) { failure_handler_ = std::move(handler); }

  const std::string& failure() const noexcept { return failure_; }
  FailureKind failure_kind() const noexcept { return failure_kind_; }
  // The engine counters of the last handshake attempt, successful or not.
  const EngineStats& last_handshake_stats() const noexcept { return last_handshake_stats_; }
  const AcceptStats& accept_stats() const noexcept { return accept_stats_; }
  // Server: the endpoint's counters (cookies sent, forged cookies, stray datagrams, limits).
  ServerStats server_stats() const;

 private:
  std::unique_ptr<DtlsChannel> handshake(Transport& path, Engine engine, Deadline deadline, std::error_code& ec);
  void record_failure(const Endpoint& peer, FailureKind kind, const std::string& why);
  // Server: hands the endpoint's events on (failures) and returns a session that was established, if any.
  std::unique_ptr<DtlsChannel> take_established(Transport& path);
  void send_transmits(Transport& path);

  std::shared_ptr<DtlsContext> context_;
  std::optional<ServerEndpoint> endpoint_;
  std::deque<std::unique_ptr<DtlsChannel>> ready_;   // established while another was being handed out
  std::unique_ptr<std::byte[]> datagram_;
  std::string failure_;
  FailureKind failure_kind_{FailureKind::none};
  HandshakeFailureHandler failure_handler_;
  EngineStats last_handshake_stats_;
  AcceptStats accept_stats_;
};

}  // namespace dgram::dtls
