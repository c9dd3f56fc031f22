// dgram.dtls.psk_store: PskFileStore, the ready PskStore of a server with many pre-shared keys (one per device).
module;
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>
export module dgram.dtls.psk_store;

import dgram.dtls.config;

export namespace dgram::dtls {

// Keys by identity in memory (a hash table: O(1) lookups, 100,000 identities in ~20 MB), loaded from text with
// one `identity:hexkey` line per device ('#' starts a comment line; blank lines are skipped; an identity may
// hold ':', the key is what follows the last one; blanks around either are ignored). Loading is all or
// nothing: a text with any bad line, or without any key (it would lock every device out), changes nothing and
// says which line and why, so a server can reload its file (on SIGHUP, say) while it serves, and a bad edit
// keeps the keys it had. Reasons never contain a key. Thread-safe: find() may run on every worker while another
// thread loads.
class PskFileStore final : public PskStore {
 public:
  PskFileStore();
  ~PskFileStore() override;

  // Replaces every key with those of the file at `path`. False with `reason` (file, line, what) on failure.
  bool load_file(const std::string& path, std::string& reason);
  // The same from text; `origin` names it in reasons.
  bool load_text(std::string_view text, std::string_view origin, std::string& reason);

  std::optional<std::vector<std::byte>> find(std::string_view identity) const override;
  std::size_t size() const;

 private:
  struct Keys;
  mutable std::mutex mutex_;   // guards the pointer only: a load builds the new table first, then swaps
  std::shared_ptr<const Keys> keys_;
};

}  // namespace dgram::dtls
