// dgram.dtls: the blocking driver loops over Engine.
module;
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>
module dgram.dtls;

namespace dgram::dtls {
namespace {

// Established sessions that wait for the blocking server to take them, at most.
constexpr std::size_t max_waiting_sessions = 16;

std::span<std::byte> buffer_of(const std::unique_ptr<std::byte[]>& storage) { return {storage.get(), max_datagram_size}; }

// Waiting with a deadline that has just passed reports would_block; for a driver both mean "time is up".
bool time_is_up(const std::error_code& ec) { return ec == errc::timeout || ec == errc::would_block; }

}  // namespace

DtlsChannel::DtlsChannel(Transport& path, Engine engine)
    : path_{path}, engine_{std::move(engine)}, datagram_{std::make_unique_for_overwrite<std::byte[]>(max_datagram_size)} {}

void DtlsChannel::flush(std::error_code& ec) {
  ec.clear();
  for (const auto& datagram : engine_.outgoing()) {
    path_.send_to(datagram, engine_.peer(), ec);
    if (ec) break;
  }
  engine_.clear_outgoing();
}

bool DtlsChannel::step(Deadline deadline, std::error_code& ec) {
  flush(ec);
  if (ec) return false;
  const Deadline timer = engine_.next_timer();
  const Received got = path_.receive_from(buffer_of(datagram_), deadline.min(timer), ec);
  if (time_is_up(ec)) {
    if (!timer.passed(Clock::now())) {
      ec = make_error_code(errc::timeout);
      return false;
    }
    engine_.on_timer(Clock::now(), ec);   // retransmit the last flight
    return !ec;
  }
  if (ec == errc::truncated) {   // larger than any DTLS datagram: not ours to read
    ec.clear();
    return true;
  }
  if (ec) return false;
  if (got.peer != engine_.peer()) {
    ++foreign_;
    return true;
  }
  engine_.on_datagram(buffer_of(datagram_).first(got.size), Clock::now(), ec);
  return !ec;
}

void DtlsChannel::send(std::span<const std::byte> message, std::error_code& ec) {
  engine_.send(message, ec);
  if (!ec) flush(ec);
}

std::size_t DtlsChannel::receive(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) {
  ec.clear();
  if (!early_messages_.empty()) {
    const std::vector<std::byte> message = std::move(early_messages_.front());
    early_messages_.pop_front();
    const std::size_t size = std::min(message.size(), buffer.size());
    std::copy_n(message.begin(), size, buffer.begin());
    if (size < message.size()) ec = make_error_code(errc::truncated);
    return size;
  }
  for (;;) {
    if (const auto size = engine_.take_message(buffer, ec)) return *size;
    if (ec) return 0;
    if (engine_.state() == EngineState::closed) {
      ec = make_error_code(errc::closed);
      return 0;
    }
    if (!step(deadline, ec)) return 0;
  }
}

void DtlsChannel::close(std::error_code& ec) {
  engine_.close();
  flush(ec);
}

DtlsHandshaker::DtlsHandshaker(std::shared_ptr<DtlsContext> context)
    : context_{std::move(context)}, datagram_{std::make_unique_for_overwrite<std::byte[]>(max_datagram_size)} {}

ServerStats DtlsHandshaker::server_stats() const { return endpoint_ ? endpoint_->stats() : ServerStats{}; }

// A client's handshake (the engine ends it at DtlsConfig::handshake_timeout; `deadline` is the caller's).
std::unique_ptr<DtlsChannel> DtlsHandshaker::handshake(Transport& path, Engine engine, Deadline deadline,
                                                       std::error_code& ec) {
  auto channel = std::make_unique<DtlsChannel>(path, std::move(engine));
  struct RecordStats {   // records the counters on every return below
    const DtlsChannel& channel;
    EngineStats& into;
    ~RecordStats() { into = channel.engine().stats(); }
  } record_stats{*channel, last_handshake_stats_};
  while (channel->engine().state() == EngineState::handshaking) {
    if (!channel->step(deadline, ec)) {
      std::error_code ignored;
      channel->flush(ignored);   // the fatal alert wolfSSL queued, so the peer stops at once too
      failure_ = channel->engine().failure();
      failure_kind_ = channel->engine().failure_kind();
      if (failure_.empty()) {
        failure_ = time_is_up(ec) ? "the handshake timed out" : ec.message();
        failure_kind_ = time_is_up(ec) ? FailureKind::timed_out : FailureKind::other;
      }
      return nullptr;
    }
  }
  channel->flush(ec);   // the last flight
  if (channel->engine().state() != EngineState::established) {
    failure_ = channel->engine().failure();
    failure_kind_ = channel->engine().failure_kind();
    if (!ec) ec = make_error_code(errc::closed);
    return nullptr;
  }
  return ec ? nullptr : std::move(channel);
}

std::unique_ptr<DtlsChannel> DtlsHandshaker::connect_dtls(Transport& path, const Endpoint& peer, Deadline deadline,
                                                          std::error_code& ec, const Session* resume) {
  failure_.clear();
  failure_kind_ = FailureKind::none;
  Engine engine = Engine::client(context_, peer, resume, ec);
  if (!ec) engine.start(Clock::now(), ec);
  if (ec) {
    failure_ = engine.failure();
    failure_kind_ = engine.failure_kind();
    return nullptr;
  }
  return handshake(path, std::move(engine), deadline, ec);
}

void DtlsHandshaker::send_transmits(Transport& path) {
  std::error_code ignored;   // a reply that cannot be sent is a lost datagram; the peer retransmits
  for (const auto& datagram : endpoint_->transmits()) path.send_to(datagram.payload, datagram.peer, ignored);
  endpoint_->clear_transmits();
}

// Sessions established in the same round (several handshakes run at once) wait in `ready_`, served in turn;
// past max_waiting_sessions they are closed.
std::unique_ptr<DtlsChannel> DtlsHandshaker::take_established(Transport& path) {
  std::vector<std::pair<SessionId, DtlsChannel*>> taken;   // this round's, for their early messages
  while (auto event = endpoint_->next_event()) {
    if (const auto* failed = std::get_if<HandshakeFailed>(&*event)) {
      record_failure(failed->peer, failed->kind, failed->why);
    } else if (const auto* up = std::get_if<SessionEstablished>(&*event)) {
      if (ready_.size() >= max_waiting_sessions) {   // served one at a time: more would wait past their peers' patience
        endpoint_->close(up->id);
      } else if (auto engine = endpoint_->release(up->id)) {   // (none when the same datagram also closed it)
        ready_.push_back(std::make_unique<DtlsChannel>(path, std::move(*engine)));
        taken.emplace_back(up->id, ready_.back().get());
      }
    } else if (const auto* message = std::get_if<SessionMessage>(&*event)) {
      for (const auto& [id, channel] : taken)
        if (id == message->id) channel->early_messages_.emplace_back(message->message.begin(), message->message.end());
    }
  }
  if (ready_.empty()) return nullptr;
  std::unique_ptr<DtlsChannel> next = std::move(ready_.front());
  ready_.pop_front();
  return next;
}

std::unique_ptr<DtlsChannel> DtlsHandshaker::accept_dtls(Transport& path, Deadline deadline, std::error_code& ec) {
  ec.clear();
  if (!endpoint_) {
    ServerEndpointSettings settings;
    settings.max_sessions = 64;   // handshakes under way at once (established ones are handed out)
    endpoint_.emplace(context_, settings, ec);
    if (ec) {
      endpoint_.reset();
      return nullptr;
    }
  }
  for (;;) {
    std::unique_ptr<DtlsChannel> channel = take_established(path);
    send_transmits(path);
    if (channel) {
      channel->flush(ec);   // the server's last flight
      return ec ? nullptr : std::move(channel);
    }
    // Once a peer proved its address, its handshake may run its full handshake_timeout, past `deadline`.
    const bool handshaking = endpoint_->sessions() > 0;
    if (!handshaking && deadline.passed(Clock::now())) {
      ec = make_error_code(errc::timeout);
      return nullptr;
    }
    const Deadline wait = (handshaking ? Deadline::never() : deadline).min(endpoint_->next_timer());
    const Received got = path.receive_from(buffer_of(datagram_), wait, ec);
    if (time_is_up(ec)) {
      ec.clear();
      endpoint_->on_timer(Clock::now());
      continue;
    }
    if (ec == errc::truncated) {
      ec.clear();
      endpoint_->note_truncated();
      continue;
    }
    if (ec) return nullptr;
    endpoint_->handle(Clock::now(), got.peer, buffer_of(datagram_).first(got.size));
  }
}

void DtlsHandshaker::record_failure(const Endpoint& peer, FailureKind kind, const std::string& why) {
  ++accept_stats_.failed_handshakes;
  accept_stats_.last_failure = peer.to_string() + ": " + why;
  if (failure_handler_) failure_handler_(peer, kind, why);
}

std::unique_ptr<Channel> DtlsHandshaker::connect(Transport& path, const Endpoint& peer, Deadline deadline,
                                                 std::error_code& ec) {
  return connect_dtls(path, peer, deadline, ec);
}

std::unique_ptr<Channel> DtlsHandshaker::accept(Transport& path, Deadline deadline, std::error_code& ec) {
  return accept_dtls(path, deadline, ec);
}

}  // namespace dgram::dtls
