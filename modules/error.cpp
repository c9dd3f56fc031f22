// Implementation of dgram.error.
module;
#include <string>
#include <system_error>
module dgram.error;

namespace dgram {
namespace {

class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "dgram"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::timeout: return "timed out";
      case errc::would_block: return "operation would block";
      case errc::message_too_large: return "datagram too large for the transport";
      case errc::truncated: return "datagram larger than the receive buffer (truncated)";
      case errc::invalid_endpoint: return "invalid endpoint";
      case errc::resolve_failed: return "host name did not resolve";
      case errc::interrupted: return "interrupted by a signal";
      case errc::closed: return "closed";
      case errc::not_connected: return "transport is not connected";
      case errc::invalid_argument: return "invalid argument";
      case errc::empty_message: return "an empty message cannot be sent on this transport";
      case errc::no_such_session: return "the session has ended";
      case errc::not_set_up: return "not set up (its construction failed)";
      case errc::no_randomness: return "the system's random source failed";
    }
    return "unknown dgram error " + std::to_string(value);
  }

  // would_block and timeout also compare equal to their portable std::errc counterparts.
  bool equivalent(int value, const std::error_condition& condition) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::timeout: return condition == std::errc::timed_out;
      case errc::would_block: return condition == std::errc::operation_would_block;
      case errc::message_too_large: return condition == std::errc::message_size;
      case errc::interrupted: return condition == std::errc::interrupted;
      default: return default_error_condition(value) == condition;
    }
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const ErrorCategory category;
  return category;
}

void throw_if(const std::error_code& ec, const char* what) {
  if (ec) throw std::system_error(ec, what);
}

}  // namespace dgram
