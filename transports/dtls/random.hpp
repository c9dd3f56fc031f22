// Random bytes from the kernel's CSPRNG, for cookie secrets, Connection IDs and hash keys. Internal to the
// DTLS units (included in a global module fragment).
#pragma once

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <span>
#include <system_error>

namespace dgram::dtls::detail {

// getrandom(2) neither throws nor needs a descriptor (workers call this while serving), and blocks only before
// the pool is first seeded at boot. Interrupted calls are retried; any other failure (no getrandom: ENOSYS,
// a seccomp filter: EPERM) is returned, never retried forever.
inline std::error_code fill_random(std::span<std::byte> bytes) noexcept {
  std::size_t filled = 0;
  for (int interruptions = 0; filled < bytes.size() && interruptions < 100;) {
    const ssize_t got = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (got > 0) {
      filled += static_cast<std::size_t>(got);
    } else if (got < 0 && errno == EINTR) {
      ++interruptions;
    } else {
      return {got < 0 ? errno : EIO, std::system_category()};
    }
  }
  return filled == bytes.size() ? std::error_code{} : std::make_error_code(std::errc::interrupted);
}

}  // namespace dgram::dtls::detail
