// Reading a whole file for the library's loaders (PEM files, PSK files), with the reason when it cannot be read.
// Included in a global module fragment: an ordinary inline function, not part of any module interface.
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

namespace dgram::dtls {

// The contents of `path`; nullopt with `why` ("No such file or directory", "Is a directory"...) otherwise.
// Never throws: a server reloading a file must not end on an unreadable path.
inline std::optional<std::string> read_whole_file(const std::string& path, std::string& why) {
  std::ifstream file(path, std::ios::binary);
  const int open_error = errno;
  std::error_code ec;
  const bool directory = std::filesystem::is_directory(path, ec);   // (a directory opens, and reads as nothing)
  std::ostringstream text;
  if (!file || directory || (text << file.rdbuf(), file.bad())) {
    why = std::strerror(directory ? EISDIR : (open_error != 0 ? open_error : EIO));
    return std::nullopt;
  }
  return text.str();
}

}  // namespace dgram::dtls
