// Implementation of PlainHandshaker and its channel: a peer filter over a Transport, nothing more.
module;
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <vector>
module dgram.handshaker;

namespace dgram {
namespace {

class PlainChannel final : public Channel {
 public:
  PlainChannel(Transport& path, const Endpoint& peer) : path_{path}, peer_{peer} {}

  void keep_first(std::span<const std::byte> datagram) { first_.emplace(datagram.begin(), datagram.end()); }

  void send(std::span<const std::byte> message, std::error_code& ec) override {
    if (closed_) {
      ec = make_error_code(errc::closed);
      return;
    }
    path_.send_to(message, peer_, ec);
  }

  std::size_t receive(std::span<std::byte> buffer, Deadline deadline, std::error_code& ec) override {
    if (first_) return take_first(buffer, ec);
    for (;;) {
      const Received got = path_.receive_from(buffer, deadline, ec);
      if (ec && ec != errc::truncated) return 0;
      if (got.peer == peer_) return got.size;
      ++foreign_;   // another endpoint's datagram: never part of this session
      ec.clear();
    }
  }

  void close(std::error_code& ec) override {
    ec.clear();
    closed_ = true;
  }

  Endpoint peer() const noexcept override { return peer_; }
  std::size_t max_message_size() const noexcept override { return path_.max_datagram_size(); }
  std::uint64_t foreign_datagrams() const noexcept override { return foreign_; }

 private:
  std::size_t take_first(std::span<std::byte> buffer, std::error_code& ec) {
    const std::size_t size = std::min(buffer.size(), first_->size());
    std::copy_n(first_->begin(), size, buffer.begin());
    ec = size < first_->size() ? make_error_code(errc::truncated) : std::error_code{};
    first_.reset();
    return size;
  }

  Transport& path_;
  Endpoint peer_;
  std::optional<std::vector<std::byte>> first_;
  std::uint64_t foreign_{0};
  bool closed_{false};
};

}  // namespace

std::unique_ptr<Channel> PlainHandshaker::connect(Transport& path, const Endpoint& peer, Deadline,
                                                  std::error_code& ec) {
  ec.clear();
  return std::make_unique<PlainChannel>(path, peer);
}

std::unique_ptr<Channel> PlainHandshaker::accept(Transport& path, Deadline deadline, std::error_code& ec) {
  std::vector<std::byte> buffer(path.max_datagram_size());
  const Received first = path.receive_from(buffer, deadline, ec);
  if (ec) return nullptr;
  auto channel = std::make_unique<PlainChannel>(path, first.peer);
  channel->keep_first(std::span(buffer).first(first.size));
  return channel;
}

}  // namespace dgram
