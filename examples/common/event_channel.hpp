// A Channel over the non-blocking EventClient, for programs written against Channel (the line client): its
// waits are a ClientLoop's, so `dtls-echo-client --nonblocking` runs the same line protocol on the
// event-driven client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <system_error>

import dgram;

namespace dgram::examples {

class EventChannel final : public Channel {
 public:
  // Handshakes with `server` (offering `resume` when set) until established, failed or `deadline`. On
  // failure returns nullptr with ec set and `failure`/`kind` saying why.
  static std::unique_ptr<EventChannel> connect(std::shared_ptr<dtls::DtlsContext> context, const Endpoint& server,
                                               const dtls::Session* resume, Deadline deadline, std::error_code& ec,
                                               std::string& failure, dtls::FailureKind& kind);
  ~EventChannel() override;

  void send(std::span<const std::byte> message, std::error_code& ec) override;
  std::size_t receive(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) override;
  void close(std::error_code& ec) override;
  Endpoint peer() const noexcept override { return client_->peer(); }
  std::size_t max_message_size() const noexcept override { return client_->max_message_size(); }
  std::uint64_t foreign_datagrams() const noexcept override { return 0; }   // a connected socket gets none

  bool resumed() const noexcept { return client_->resumed(); }
  std::string cipher() const { return client_->cipher(); }
  dtls::Session session() const { return client_->session(); }
  const dtls::Engine& engine() const noexcept { return client_->engine(); }

 private:
  EventChannel(std::unique_ptr<dtls::ClientLoop> loop, std::unique_ptr<dtls::EventClient> client);
  // Runs the loop until `done()` or `deadline`; false with errc::timeout when the deadline came first.
  template <typename Done>
  bool run_until(Done done, Deadline deadline, std::error_code& ec);

  std::unique_ptr<dtls::ClientLoop> loop_;
  std::unique_ptr<dtls::EventClient> client_;
};

}  // namespace dgram::examples
