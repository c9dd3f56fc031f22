// dgram.dtls.event_client: EventClient, the engine behind a non-blocking connected socket.
module;
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>
module dgram.dtls.event_client;

namespace dgram::dtls {

EventClient::EventClient(UdpSocket socket, Engine engine, const std::optional<Endpoint>& local)
    : socket_{std::move(socket)}, engine_{std::move(engine)}, datagram_(max_datagram_size),
      rebind_from_{local ? std::optional(local->with_port(0)) : std::nullopt} {}

EventClient::~EventClient() = default;

UdpSocket EventClient::open_socket(const Endpoint& server, const std::optional<Endpoint>& local, std::error_code& ec) {
  UdpOptions options;
  options.nonblocking_send = true;
  return local ? UdpSocket::connect(server, *local, ec, options) : UdpSocket::connect(server, ec, options);
}

std::unique_ptr<EventClient> EventClient::connect(std::shared_ptr<DtlsContext> context, const Endpoint& server,
                                                  std::error_code& ec, const Session* resume,
                                                  const std::optional<Endpoint>& local) {
  ec.clear();
  if (context->config().role != Role::client) {
    ec = make_error_code(errc::invalid_argument);
    return nullptr;
  }
  UdpSocket socket = open_socket(server, local, ec);
  if (ec) return nullptr;
  Engine engine = Engine::client(std::move(context), server, resume, ec);
  if (ec) return nullptr;
  engine.start(Clock::now(), ec);   // (the engine's timer ends the handshake at handshake_timeout)
  if (ec) return nullptr;
  std::unique_ptr<EventClient> client{new EventClient(std::move(socket), std::move(engine), local)};
  client->flush(ec);   // a datagram the kernel could not take is resent by the retransmission timer
  return ec ? nullptr : std::move(client);
}

int EventClient::descriptor() const noexcept { return socket_.native_handle(); }

void EventClient::rebind(std::error_code& ec) {
  UdpSocket fresh = open_socket(engine_.peer(), rebind_from_, ec);
  if (ec) return;
  socket_ = std::move(fresh);
  socket_error_.clear();   // (an ICMP error of the old path says nothing about the new one)
}

Deadline EventClient::next_deadline() const noexcept {
  if (socket_error_) return Deadline::never();
  return engine_.next_timer();
}

void EventClient::flush(std::error_code& ec) {
  ec.clear();
  for (const auto& datagram : engine_.outgoing()) {
    socket_.send_to(datagram, engine_.peer(), ec);
    if (ec && ec != errc::would_block) break;   // a datagram the kernel could not take is lost, as on the network
    ec.clear();
  }
  engine_.clear_outgoing();
}

void EventClient::take_messages(std::error_code& ec) {
  while (engine_.state() == EngineState::established) {
    const auto size = engine_.take_message(datagram_, ec);
    if (!size) return;
    messages_.emplace_back(datagram_.begin(), datagram_.begin() + static_cast<std::ptrdiff_t>(*size));
  }
}

void EventClient::on_readable(std::error_code& ec) {
  ec.clear();
  if (socket_error_) {   // ended: read and drop what still comes, so a level-triggered poller does not spin
    while (!ec) socket_.receive_from(datagram_, Deadline::now_or_never(), ec);
    ec = socket_error_;
    return;
  }
  // Linux reports a pending ICMP error before the datagrams already queued, so a server's close_notify can sit
  // behind the "connection refused" its exit caused: read on, and let a session that ended cleanly stay closed.
  std::error_code refused;
  int errors_in_a_row = 0;
  for (;;) {
    const Received got = socket_.receive_from(datagram_, Deadline::now_or_never(), ec);
    if (ec == errc::would_block || ec == errc::timeout || ec == errc::interrupted) {
      ec.clear();
      break;
    }
    if (ec == errc::truncated) continue;   // larger than any DTLS datagram: not ours
    if (ec) {   // connection refused (ICMP) and the like: nothing more will come back once the queue is read
      refused = ec;
      if (++errors_in_a_row > 1) break;   // (not a one-off report the kernel clears as it gives it)
      continue;
    }
    errors_in_a_row = 0;
    // The engine keeps its own copy, so the buffer may take the decrypted messages next.
    engine_.on_datagram(std::span(datagram_).first(got.size), Clock::now(), ec);
    if (!ec) take_messages(ec);
    std::error_code send_error;
    flush(send_error);   // answers, and the alert of a failed handshake
    if (ec) return;
  }
  if (refused && engine_.state() != EngineState::closed) {
    socket_error_ = refused;
    socket_failure_ = refused == std::errc::connection_refused
                          ? "no server at " + engine_.peer().to_string() + " (connection refused)"
                          : refused.message();
    ec = refused;
  }
}

void EventClient::on_deadline(std::error_code& ec) {
  ec.clear();
  if (socket_error_) return;
  engine_.on_timer(Clock::now(), ec);   // a resend, or the end of a handshake past its timeout
  std::error_code send_error;
  flush(send_error);
}

EngineState EventClient::state() const noexcept { return socket_error_ ? EngineState::failed : engine_.state(); }

void EventClient::send(std::span<const std::byte> message, std::error_code& ec) {
  engine_.send(message, ec);
  if (!ec) flush(ec);
}

std::optional<std::size_t> EventClient::receive(std::span<std::byte> buffer, std::error_code& ec) {
  ec.clear();
  if (messages_.empty()) return std::nullopt;
  std::vector<std::byte> message = std::move(messages_.front());
  messages_.pop_front();
  const std::size_t size = std::min(message.size(), buffer.size());
  std::copy_n(message.begin(), size, buffer.begin());
  if (size < message.size()) ec = make_error_code(errc::truncated);
  return size;
}

void EventClient::close(std::error_code& ec) {
  engine_.close();
  flush(ec);
}

const Endpoint& EventClient::peer() const noexcept { return engine_.peer(); }
bool EventClient::resumed() const noexcept { return engine_.resumed(); }
std::string EventClient::cipher() const { return engine_.cipher(); }
std::size_t EventClient::max_message_size() const noexcept { return engine_.max_message_size(); }
Session EventClient::session() const { return engine_.session(); }
const std::string& EventClient::failure() const noexcept {
  return socket_error_ && engine_.failure().empty() ? socket_failure_ : engine_.failure();
}
FailureKind EventClient::failure_kind() const noexcept {
  if (engine_.failure_kind() != FailureKind::none) return engine_.failure_kind();
  if (socket_error_ == errc::timeout) return FailureKind::timed_out;
  return socket_error_ ? FailureKind::other : FailureKind::none;
}
const EngineStats& EventClient::stats() const noexcept { return engine_.stats(); }

}  // namespace dgram::dtls
