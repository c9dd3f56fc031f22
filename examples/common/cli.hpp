// Command-line handling shared by the example programs: options, --help, and the exit-code convention
// (0 success, 1 runtime failure, 2 usage error), each failure as one line on stderr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace dgram::examples {

// A mistake in how the program was called: exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Option {
  std::string name;          // without the leading "--"
  std::string value_name;    // empty for a flag
  std::string help;
};

class CommandLine {
 public:
  CommandLine(std::string program, std::string synopsis, std::vector<Option> options);

  // Parses argv; throws UsageError for an unknown option, a missing value or a stray argument.
  void parse(int argc, char** argv);
  bool help_requested() const { return help_; }
  std::string help_text() const;
  const std::string& program() const { return program_; }

  bool flag(std::string_view name) const;
  std::optional<std::string> value(std::string_view name) const;
  std::string value_or(std::string_view name, std::string fallback) const;
  // An integer option in [min, max]; throws UsageError naming the option otherwise.
  std::int64_t integer(std::string_view name, std::int64_t fallback, std::int64_t min, std::int64_t max) const;

 private:
  const Option* find(std::string_view name) const;

  std::string program_;
  std::string synopsis_;
  std::vector<Option> options_;
  std::map<std::string, std::string, std::less<>> values_;
  bool help_{false};
};

// "00 01 f2 03" or "0001f203": pairs of hex digits, white space or ':' between pairs. Throws UsageError naming
// `option` and the position of the first bad character.
std::vector<std::byte> parse_hex(std::string_view text, std::string_view option);

// "1 message", "2 messages": the count with the noun in the right number.
std::string plural(std::uint64_t count, std::string_view singular, std::string_view plural_form = {});

// Runs `body` with the conventions above: prints help and returns 0 when --help was given; turns a
// UsageError into "PROGRAM: message" + a --help hint and 2, any other exception into "PROGRAM: message" and 1.
int run_program(CommandLine& command_line, int argc, char** argv, const std::function<int()>& body);

}  // namespace dgram::examples
