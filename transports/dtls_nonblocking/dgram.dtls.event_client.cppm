// dgram.dtls.event_client: a DTLS 1.2 client that never blocks, for any event loop.
//
// EventClient owns a connected, non-blocking UDP socket and an Engine. The caller's loop waits for
// descriptor() to become readable or for next_deadline() to pass and then calls on_readable() or
// on_deadline(); neither ever waits. ClientLoop is such a loop (epoll) for programs without one of their own,
// and runs one or thousands of clients.
module;
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>
export module dgram.dtls.event_client;

export import dgram.dtls.engine;
export import dgram.udp;
import dgram.fd;

export namespace dgram::dtls {

class EventClient {
 public:
  // Opens a socket connected to `server` and sends the ClientHello, offering `resume` when set. Fails (ec)
  // only for socket errors or a context that is not a client's. The handshake then runs as the caller's loop
  // calls on_readable()/on_deadline(); it fails at the context's handshake_timeout at the latest.
  // With `local` the socket sends from that address (port 0: any free port of it; rebind() keeps the address).
  static std::unique_ptr<EventClient> connect(std::shared_ptr<DtlsContext> context, const Endpoint& server,
                                              std::error_code& ec, const Session* resume = nullptr,
                                              const std::optional<Endpoint>& local = std::nullopt);
  ~EventClient();

  // Readable means datagrams are waiting: call on_readable().
  int descriptor() const noexcept;
  // When on_deadline() is due (a retransmission, the handshake's time limit, or DTLS 1.3 work after the
  // handshake: a KeyUpdate to resend, ACKs owed); never() when none is.
  Deadline next_deadline() const noexcept;
  // Reads every datagram queued on the socket, feeds the engine, sends its answers, and keeps decrypted
  // messages for receive(). Never blocks. A failed handshake or a fatal error sets ec (failure() says why);
  // ICMP port unreachable is std::errc::connection_refused.
  void on_readable(std::error_code& ec);
  // Retransmits or ends a handshake that ran out of time (errc::timeout). Never blocks.
  void on_deadline(std::error_code& ec);

  EngineState state() const noexcept;
  bool established() const noexcept { return state() == EngineState::established; }
  // Sends one message now. Needs established(); errors as Engine::send, and the socket's.
  void send(std::span<const std::byte> message, std::error_code& ec);
  // The next message received, copied into `buffer`; nullopt when none is waiting (errc::truncated when
  // `buffer` is too small: its start is kept).
  std::optional<std::size_t> receive(std::span<std::byte> buffer, std::error_code& ec);
  // Sends close_notify (once).
  void close(std::error_code& ec);
  // Moves to a new local port (a new socket connected to the same server) and keeps the session: what a device
  // does when its network changes, and how a test makes a NAT rebinding. With a Connection ID the server follows
  // (its records name the session, not the address); without one it sees a stranger. descriptor() changes:
  // remove the client from its ClientLoop first and add it again after. ec: the new socket's errors (the old
  // one is kept then).
  void rebind(std::error_code& ec);

  const Endpoint& peer() const noexcept;
  // Once established: what the session negotiated and who the server proved to be.
  SessionInfo info() const { return engine_.info(); }
  bool resumed() const noexcept;
  std::string cipher() const;
  std::size_t max_message_size() const noexcept;
  Session session() const;
  const Engine& engine() const noexcept { return engine_; }
  const std::string& failure() const noexcept;
  FailureKind failure_kind() const noexcept;
  // The socket error that ended the client (std::errc::connection_refused, errc::timeout), if one did.
  const std::error_code& socket_error() const noexcept { return socket_error_; }
  const EngineStats& stats() const noexcept;

 private:
  EventClient(UdpSocket socket, Engine engine, const std::optional<Endpoint>& local);
  static UdpSocket open_socket(const Endpoint& server, const std::optional<Endpoint>& local, std::error_code& ec);
  void flush(std::error_code& ec);
  void take_messages(std::error_code& ec);

  UdpSocket socket_;
  Engine engine_;
  std::deque<std::vector<std::byte>> messages_;
  std::vector<std::byte> datagram_;
  std::error_code socket_error_;   // a socket failure (connection refused) ends the client too
  std::string socket_failure_;
  // The caller's local address, if it chose one, with port 0: a rebind takes a new port of it (the old socket
  // still holds the first).
  std::optional<Endpoint> rebind_from_;
};

// An epoll loop over EventClients (which it borrows: remove a client before destroying it).
class ClientLoop {
 public:
  explicit ClientLoop(std::error_code& ec);
  ~ClientLoop();
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  void add(EventClient& client, std::error_code& ec);
  void remove(EventClient& client) noexcept;
  // Waits until a client is readable or its deadline passes (at most until `deadline`), then services every
  // client that is due. A client's own failure is left in that client (state(), failure()); ec only for epoll.
  // Returns how many clients were serviced.
  std::size_t run_once(Deadline deadline, std::error_code& ec);

 private:
  detail::UniqueFd epoll_;
  std::vector<EventClient*> clients_;
};

}  // namespace dgram::dtls
