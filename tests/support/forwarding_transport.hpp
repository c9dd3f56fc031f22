// A Transport that forwards every call to another one; tests derive from it to watch or change what is sent
// (keep copies, stop sending) without writing out the whole interface each time.
#pragma once

#include <cstddef>
#include <span>
#include <system_error>

import dgram;

namespace dgram::testing {

class ForwardingTransport : public Transport {
 public:
  explicit ForwardingTransport(Transport& inner) : inner_{inner} {}

  void send_to(std::span<const std::byte> datagram, const Endpoint& peer, std::error_code& ec) override {
    inner_.send_to(datagram, peer, ec);
  }
  Received receive_from(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) override {
    return inner_.receive_from(buffer, deadline, ec);
  }
  std::size_t receive_batch(std::span<ReceiveSlot> slots, Deadline deadline, std::error_code& ec) override {
    return inner_.receive_batch(slots, deadline, ec);
  }
  std::size_t send_batch(std::span<const SendSlot> datagrams, std::error_code& ec) override {
    return inner_.send_batch(datagrams, ec);
  }
  Endpoint local_endpoint(std::error_code& ec) const override { return inner_.local_endpoint(ec); }
  std::size_t max_datagram_size() const noexcept override { return inner_.max_datagram_size(); }

 private:
  Transport& inner_;
};

}  // namespace dgram::testing
