#include "event_channel.hpp"

#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

import dgram;

namespace dgram::examples {

EventChannel::EventChannel(std::unique_ptr<dtls::ClientLoop> loop, std::unique_ptr<dtls::EventClient> client)
    : loop_{std::move(loop)}, client_{std::move(client)} {}

EventChannel::~EventChannel() {
  if (client_) loop_->remove(*client_);
}

template <typename Done>
bool EventChannel::run_until(Done done, Deadline deadline, std::error_code& ec) {
  ec.clear();
  while (!done()) {
    if (deadline.passed(Clock::now())) {
      ec = make_error_code(errc::timeout);
      return false;
    }
    loop_->run_once(deadline, ec);
    if (ec) return false;
  }
  return true;
}

std::unique_ptr<EventChannel> EventChannel::connect(std::shared_ptr<dtls::DtlsContext> context, const Endpoint& server,
                                                    const dtls::Session* resume, Deadline deadline,
                                                    std::error_code& ec, std::string& failure,
                                                    dtls::FailureKind& kind) {
  auto loop = std::make_unique<dtls::ClientLoop>(ec);
  if (ec) return nullptr;
  auto client = dtls::EventClient::connect(std::move(context), server, ec, resume);
  if (!client) return nullptr;
  loop->add(*client, ec);
  if (ec) return nullptr;
  std::unique_ptr<EventChannel> channel{new EventChannel(std::move(loop), std::move(client))};
  dtls::EventClient& handshaking = *channel->client_;
  channel->run_until([&] { return handshaking.state() != dtls::EngineState::handshaking; }, deadline, ec);
  if (handshaking.established()) return channel;
  failure = handshaking.failure().empty() ? "the handshake timed out" : handshaking.failure();
  kind = handshaking.failure_kind();
  if (!ec) ec = handshaking.socket_error() ? handshaking.socket_error() : make_error_code(errc::invalid_argument);
  return nullptr;
}

void EventChannel::send(std::span<const std::byte> message, std::error_code& ec) { client_->send(message, ec); }

std::size_t EventChannel::receive(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) {
  std::optional<std::size_t> size;
  const auto arrived = [&] {
    size = client_->receive(buffer, ec);
    return size.has_value() || client_->state() != dtls::EngineState::established;
  };
  if (!run_until(arrived, deadline, ec)) return 0;
  if (size) return *size;
  if (client_->socket_error()) {
    ec = client_->socket_error();
  } else {
    ec = make_error_code(client_->state() == dtls::EngineState::closed ? errc::closed : errc::not_connected);
  }
  return 0;
}

void EventChannel::close(std::error_code& ec) { client_->close(ec); }

}  // namespace dgram::examples
