// PskFileStore: pre-shared keys by identity, loaded from `identity:hexkey` lines.
module;
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hex.hpp"
#include "read_file.hpp"
module dgram.dtls.psk_store;

namespace dgram::dtls {
namespace {

// The bytes of `hex`, or a reason (which never repeats the key's digits).
std::optional<std::vector<std::byte>> parse_key(std::string_view hex, std::string& reason) {
  if (hex.empty()) return reason = "the key is empty", std::nullopt;
  if (hex.size() % 2 != 0) return reason = "the key has an odd number of hex digits", std::nullopt;
  if (hex.size() / 2 > max_psk_key_size)
    return reason = "the key is longer than " + std::to_string(max_psk_key_size) + " bytes", std::nullopt;
  std::vector<std::byte> key(hex.size() / 2);
  if (!hex::decode(hex, key)) return reason = "the key holds a character that is not a hex digit", std::nullopt;
  return key;
}

std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

struct PskFileStore::Keys {
  // Transparent lookups: find() takes a string_view without making a string.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
  };
  std::unordered_map<std::string, std::vector<std::byte>, Hash, std::equal_to<>> by_identity;
};

PskFileStore::PskFileStore() : keys_{std::make_shared<const Keys>()} {}
PskFileStore::~PskFileStore() = default;

bool PskFileStore::load_file(const std::string& path, std::string& reason) {
  std::string why;
  const auto text = read_whole_file(path, why);
  if (!text) {
    reason = "cannot read PSK file '" + path + "': " + why;
    return false;
  }
  return load_text(*text, "PSK file '" + path + "'", reason);
}

bool PskFileStore::load_text(std::string_view text, std::string_view origin, std::string& reason) {
  auto keys = std::make_shared<Keys>();
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = trimmed(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    const auto fail = [&](const std::string& why) {
      reason = std::string(origin) + ", line " + std::to_string(line_number) + ": " + why;
      return false;
    };
    const auto colon = line.rfind(':');
    if (colon == std::string_view::npos) return fail("expected identity:hexkey");
    const std::string_view identity = trimmed(line.substr(0, colon));
    if (identity.empty()) return fail("the identity is empty");
    if (identity.size() > max_psk_identity_size)
      return fail("the identity is longer than " + std::to_string(max_psk_identity_size) + " bytes");
    std::string why;
    auto key = parse_key(trimmed(line.substr(colon + 1)), why);
    if (!key) return fail(why);
    if (!keys->by_identity.emplace(identity, std::move(*key)).second)
      return fail("identity '" + hex::printable(identity) + "' appears twice");
  }
  if (keys->by_identity.empty()) {   // every device would be locked out: surely a mistake
    reason = std::string(origin) + " holds no identity:hexkey line";
    return false;
  }
  const std::lock_guard lock(mutex_);
  keys_ = std::move(keys);
  return true;
}

std::optional<std::vector<std::byte>> PskFileStore::find(std::string_view identity) const {
  std::shared_ptr<const Keys> keys;
  {
    const std::lock_guard lock(mutex_);
    keys = keys_;
  }
  const auto found = keys->by_identity.find(identity);
  if (found == keys->by_identity.end()) return std::nullopt;
  return found->second;
}

std::size_t PskFileStore::size() const {
  const std::lock_guard lock(mutex_);
  return keys_->by_identity.size();
}

}  // namespace dgram::dtls
