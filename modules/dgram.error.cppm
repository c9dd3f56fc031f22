// dgram.error: the error codes of dgram's own category.
//
// Expected failures travel as std::error_code. Operating-system failures keep std::system_category (so
// `ec == std::errc::connection_refused` works); failures that dgram itself detects use dgram::errc below.
// Would-block and timeout are distinct: would_block means "nothing now, try when ready" (a state of a
// non-blocking call), timeout means "the caller's deadline passed".
module;
#include <string>
#include <system_error>
export module dgram.error;

export namespace dgram {

enum class errc {
  timeout = 1,           // the deadline passed before the operation could complete
  would_block,           // a non-blocking operation has nothing to do yet
  message_too_large,     // the datagram exceeds what the transport can carry (65507 bytes for UDP over IPv4)
  truncated,             // the datagram was larger than the caller's buffer; the tail was lost
  invalid_endpoint,      // an address text is not ADDR:PORT / [ADDR]:PORT or is out of range
  resolve_failed,        // a host name did not resolve to any usable address
  interrupted,           // a signal interrupted a blocking wait; the caller decides whether to go on
  closed,                // the peer or the session has closed
  not_connected,         // the operation needs a connected transport
  invalid_argument,      // a caller-side precondition does not hold (detail in the message of the thrower)
  empty_message,         // the transport cannot carry an empty message (DTLS on wolfSSL sends no empty records)
  no_such_session,       // the server's session has ended (or the id never named one of its sessions)
  not_set_up,            // the object could not be set up: its constructor's error said why
  no_randomness,         // the kernel's random source failed (getrandom)
};

// The category of dgram::errc; its name() is "dgram".
const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Throws std::system_error when ec holds an error; `what` names the operation that failed.
void throw_if(const std::error_code& ec, const char* what);

}  // namespace dgram

export template <>
struct std::is_error_code_enum<dgram::errc> : std::true_type {};
