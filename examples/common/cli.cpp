#include "cli.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <exception>

namespace dgram::examples {

CommandLine::CommandLine(std::string program, std::string synopsis, std::vector<Option> options)
    : program_{std::move(program)}, synopsis_{std::move(synopsis)}, options_{std::move(options)} {}

const Option* CommandLine::find(std::string_view name) const {
  for (const Option& option : options_)
    if (option.name == name) return &option;
  return nullptr;
}

void CommandLine::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (!arg.starts_with("--")) throw UsageError(fmt::format("unexpected argument '{}'", arg));
    arg.remove_prefix(2);
    std::optional<std::string_view> inline_value;
    if (const auto equals = arg.find('='); equals != std::string_view::npos) {
      inline_value = arg.substr(equals + 1);
      arg = arg.substr(0, equals);
    }
    const Option* option = find(arg);
    if (!option) throw UsageError(fmt::format("unknown option '--{}'", arg));
    if (option->value_name.empty()) {
      if (inline_value) throw UsageError(fmt::format("option '--{}' takes no value", arg));
      values_[option->name] = "";
    } else if (inline_value) {
      values_[option->name] = std::string(*inline_value);
    } else if (i + 1 < argc) {
      // `--port $PORT --ca x` with PORT unset: say that --port lacks its value, not "unexpected argument 'x'".
      const std::string_view next = argv[i + 1];
      const std::string_view next_name = next.substr(0, next.find('=')).substr(std::min<std::size_t>(2, next.size()));
      if (next.starts_with("--") && find(next_name))
        throw UsageError(fmt::format("option '--{}' needs a value ({}), but '{}' follows it", arg, option->value_name, next));
      values_[option->name] = argv[++i];
    } else {
      throw UsageError(fmt::format("option '--{}' needs a value ({})", arg, option->value_name));
    }
  }
}

std::string CommandLine::help_text() const {
  std::string text = fmt::format("Usage: {} {}\n\nOptions:\n", program_, synopsis_);
  const auto left_of = [](const Option& option) {
    return option.value_name.empty() ? "--" + option.name : "--" + option.name + " " + option.value_name;
  };
  std::size_t width = 26;   // the descriptions start in one column, past the longest option
  for (const Option& option : options_) width = std::max(width, left_of(option).size());
  for (const Option& option : options_) text += fmt::format("  {:<{}} {}\n", left_of(option), width, option.help);
  text += fmt::format("  {:<{}} {}\n", "--help", width, "show this help and exit");
  text += "\nExit status: 0 success, 1 runtime failure, 2 usage error.\n";
  return text;
}

bool CommandLine::flag(std::string_view name) const { return values_.find(name) != values_.end(); }

std::optional<std::string> CommandLine::value(std::string_view name) const {
  const auto found = values_.find(name);
  if (found == values_.end()) return std::nullopt;
  return found->second;
}

std::string CommandLine::value_or(std::string_view name, std::string fallback) const {
  return value(name).value_or(std::move(fallback));
}

std::int64_t CommandLine::integer(std::string_view name, std::int64_t fallback, std::int64_t min,
                                  std::int64_t max) const {
  const std::optional<std::string> text = value(name);
  if (!text) return fallback;
  std::int64_t number = 0;
  const auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), number);
  if (error != std::errc{} || end != text->data() + text->size() || number < min || number > max)
    throw UsageError(fmt::format("--{} must be an integer from {} to {}, got '{}'", name, min, max, *text));
  return number;
}

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::vector<std::byte> parse_hex(std::string_view text, std::string_view option) {
  std::vector<std::byte> bytes;
  int high = -1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == ':') {
      if (high >= 0) throw UsageError(fmt::format("{}: lone hex digit before position {}", option, i + 1));
      continue;
    }
    const int digit = hex_digit(c);
    if (digit < 0) throw UsageError(fmt::format("{}: '{}' at position {} is not a hex digit", option, c, i + 1));
    if (high < 0) {
      high = digit;
    } else {
      bytes.push_back(static_cast<std::byte>(high << 4 | digit));
      high = -1;
    }
  }
  if (high >= 0) throw UsageError(fmt::format("{}: odd number of hex digits", option));
  return bytes;
}

std::string plural(std::uint64_t count, std::string_view singular, std::string_view plural_form) {
  if (count == 1) return fmt::format("1 {}", singular);
  if (plural_form.empty()) return fmt::format("{} {}s", count, singular);
  return fmt::format("{} {}", count, plural_form);
}

int run_program(CommandLine& command_line, int argc, char** argv, const std::function<int()>& body) {
  const std::string& program = command_line.program();
  try {
    command_line.parse(argc, argv);
    if (command_line.help_requested()) {
      fmt::print("{}", command_line.help_text());
      return 0;
    }
    return body();
  } catch (const UsageError& error) {
    fmt::print(stderr, "{}: {}\nTry '{} --help'.\n", program, error.what(), program);
    return 2;
  } catch (const std::exception& error) {
    fmt::print(stderr, "{}: {}\n", program, error.what());
    return 1;
  }
}

}  // namespace dgram::examples
