// dgram.dtls: the blocking driver loops over Engine.
module;
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>
module dgram.dtls;

namespace dgram::dtls {
namespace {

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

ListenerStats DtlsHandshaker::listener_stats() const { return listener_ ? listener_->stats() : ListenerStats{}; }

std::unique_ptr<DtlsChannel> DtlsHandshaker::handshake(Transport& path, Engine engine, Deadline deadline,
                                                       std::error_code& ec) {
  const Deadline limit = deadline.min(Deadline::after(context_->config().handshake_timeout));
  auto channel = std::make_unique<DtlsChannel>(path, std::move(engine));
  struct RecordStats {   // records the counters on every return below
    const DtlsChannel& channel;
    EngineStats& into;
    ~RecordStats() { into = channel.engine().stats(); }
  } record_stats{*channel, last_handshake_stats_};
  while (channel->engine().state() == EngineState::handshaking) {
    if (!channel->step(limit, ec)) {
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

std::unique_ptr<DtlsChannel> DtlsHandshaker::accept_dtls(Transport& path, Deadline deadline, std::error_code& ec) {
  if (!listener_) {
    listener_.emplace(context_, ec);
    if (ec) return nullptr;
  }
  for (;;) {
    const Received got = path.receive_from(buffer_of(datagram_), deadline, ec);
    if (ec == errc::truncated) continue;
    if (ec) return nullptr;
    std::error_code hello_error;
    std::optional<Engine> engine =
        listener_->on_datagram(got.peer, buffer_of(datagram_).first(got.size), Clock::now(), hello_error);
    std::error_code ignored;   // a reply that cannot be sent is a lost datagram; the peer retransmits
    for (const auto& reply : listener_->replies()) path.send_to(reply, got.peer, ignored);
    listener_->clear_replies();
    if (hello_error && !listener_->failure().empty())
      record_failure(got.peer, listener_->failure_kind(), listener_->failure());
    if (!engine) continue;
    // Once a peer proved its address, its handshake may run its full handshake_timeout, past `deadline`.
    auto channel = handshake(path, std::move(*engine), Deadline::never(), ec);
    if (channel) return channel;
    if (ec == errc::interrupted) return nullptr;
    record_failure(got.peer, failure_kind_, failure_);   // that peer failed or vanished: serve the next one
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
