// The README's option lists agree with the programs: every option a program's --help lists appears in that
// program's bullet of the README ("The example programs"), so the README cannot fall behind the code.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.hpp"

using namespace std::chrono_literals;
using dgram::testing::Finished;
using dgram::testing::Process;

namespace {

std::string readme() {
  const char* path = std::getenv("DGRAM_README");
  REQUIRE(path);
  std::ifstream file(path);
  REQUIRE(file);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The README bullet "- `PROGRAM ...`" with its continuation lines (up to the next bullet or blank line).
std::string bullet_of(const std::string& text, const std::string& program) {
  const auto start = text.find("\n- `" + program + " ");
  if (start == std::string::npos) return {};
  std::string bullet;
  std::istringstream lines(text.substr(start + 1));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || (!bullet.empty() && line.starts_with("- "))) break;
    bullet += line + "\n";
  }
  return bullet;
}

std::set<std::string> options_in(const std::string& text) {
  std::set<std::string> options;
  const std::regex option(R"(--[a-z][a-z0-9-]*)");
  for (std::sregex_iterator match(text.begin(), text.end(), option), end; match != end; ++match)
    options.insert(match->str());
  return options;
}

}  // namespace

TEST_CASE("README: each example program's bullet names every option its --help lists", "[readme][examples]") {
  const std::string text = readme();
  const std::vector<std::pair<const char*, std::string>> programs{
      {"UDP_ECHO_SERVER", "udp-echo-server"}, {"UDP_ECHO_CLIENT", "udp-echo-client"},
      {"UDP_CHECKSUM", "udp-checksum"},       {"DTLS_ECHO_SERVER", "dtls-echo-server"},
      {"DTLS_ECHO_CLIENT", "dtls-echo-client"}};
  int checked = 0;
  for (const auto& [variable, name] : programs) {
    const char* path = std::getenv(variable);
    if (!path) continue;   // a variant this build does not have
    ++checked;
    INFO(name);
    const Finished help = Process({path, "--help"}).wait(10s);
    REQUIRE(help.exit_code == 0);
    const std::set<std::string> listed = options_in(help.out);
    CHECK(listed.size() >= 2);
    const std::string bullet = bullet_of(text, name);
    REQUIRE_FALSE(bullet.empty());
    const std::set<std::string> documented = options_in(bullet);
    for (const std::string& option : listed) {
      INFO(option << " is in --help but not in the README");
      CHECK(documented.count(option) == 1);
    }
  }
  CHECK(checked >= 1);
}
