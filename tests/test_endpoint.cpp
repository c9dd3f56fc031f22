// dgram.endpoint: numeric parsing and formatting, bad input with clear reasons, resolution.
#include <catch2/catch.hpp>

#include <string>
#include <system_error>
#include <unordered_set>

import dgram;

namespace {

std::string reason_for(const std::string& text) {
  std::error_code ec;
  std::string reason;
  dgram::Endpoint::parse(text, ec, &reason);
  CHECK(ec == dgram::errc::invalid_endpoint);
  return reason;
}

}  // namespace

TEST_CASE("parse and format IPv4", "[endpoint]") {
  const auto e = dgram::Endpoint::parse("1.2.3.4:5");
  CHECK(e.family() == dgram::Family::ipv4);
  CHECK(e.port() == 5);
  CHECK(e.address_bytes().size() == 4);
  CHECK(e.address_bytes()[3] == 4);
  CHECK(e.to_string() == "1.2.3.4:5");
  CHECK(dgram::Endpoint::parse("127.0.0.1:65535").port() == 65535);
  CHECK(dgram::Endpoint::parse("0.0.0.0:0") == dgram::Endpoint{});
}

TEST_CASE("parse and format IPv6", "[endpoint]") {
  const auto e = dgram::Endpoint::parse("[::1]:5");
  CHECK(e.family() == dgram::Family::ipv6);
  CHECK(e.port() == 5);
  CHECK(e == dgram::Endpoint::loopback(dgram::Family::ipv6, 5));
  CHECK(e.to_string() == "[::1]:5");
  CHECK(e.is_loopback());
  const auto scoped = dgram::Endpoint::parse("[fe80::1%7]:11111");
  CHECK(scoped.scope_id() == 7);
  CHECK(scoped.to_string() == "[fe80::1%7]:11111");
  CHECK(dgram::Endpoint::parse(scoped.to_string()) == scoped);
}

TEST_CASE("bad endpoints give errc::invalid_endpoint and a reason", "[endpoint]") {
  CHECK(reason_for("1.2.3.4:99999") == "port 99999 is out of range 0-65535");
  CHECK(reason_for("[::1") == "missing ']' after the IPv6 address");
  CHECK(reason_for("") == "empty endpoint (expected ADDR:PORT or [ADDR]:PORT)");
  CHECK(reason_for("1.2.3.4") == "missing ':PORT'");
  CHECK(reason_for("1.2.3.4:") == "missing port after ':'");
  CHECK(reason_for("1.2.3.4:-1") == "port '-1' is not a number in range 0-65535");
  CHECK(reason_for("1.2.3.4:12ab") == "port '12ab' is not a number in range 0-65535");
  CHECK(reason_for("::1:5") == "an IPv6 address needs brackets: [ADDR]:PORT");
  CHECK(reason_for("[::1]5") == "missing ':PORT' after ']'");
  CHECK(reason_for("[1.2.3.4]:5") == "brackets are for IPv6 addresses only");
  CHECK(reason_for("256.1.1.1:5") == "'256.1.1.1' is not a numeric IPv4 or IPv6 address");
  CHECK(reason_for("localhost:5") == "'localhost' is not a numeric IPv4 or IPv6 address");
  CHECK(reason_for("[fe80::1%no-such-if0]:5") == "unknown interface 'no-such-if0' in IPv6 scope");
}

TEST_CASE("the throwing parse quotes the text and the reason", "[endpoint]") {
  try {
    dgram::Endpoint::parse("1.2.3.4:99999");
    FAIL("no exception");
  } catch (const std::system_error& error) {
    CHECK(error.code() == dgram::errc::invalid_endpoint);
    CHECK(std::string(error.what()).find("'1.2.3.4:99999': port 99999 is out of range 0-65535") != std::string::npos);
  }
}

TEST_CASE("errors compare with their conditions", "[endpoint][error]") {
  const std::error_code timeout = dgram::errc::timeout;
  const std::error_code would_block = dgram::errc::would_block;
  CHECK(timeout != would_block);
  CHECK(timeout == std::errc::timed_out);
  CHECK(would_block == std::errc::operation_would_block);
  CHECK(timeout != std::errc::operation_would_block);
  CHECK(std::string(timeout.category().name()) == "dgram");
  CHECK(timeout.message() == "timed out");
}

TEST_CASE("resolve numeric addresses without DNS, and localhost", "[endpoint]") {
  std::error_code ec;
  auto found = dgram::resolve("127.0.0.1", 80, ec);
  REQUIRE(!ec);
  REQUIRE(found.size() == 1);
  CHECK(found[0].to_string() == "127.0.0.1:80");
  found = dgram::resolve("[::1]", 80, ec);
  REQUIRE(!ec);
  CHECK(found.at(0).to_string() == "[::1]:80");
  found = dgram::resolve("localhost", 80, ec);
  REQUIRE(!ec);
  REQUIRE(!found.empty());
  for (const auto& e : found) CHECK(e.is_loopback());
  std::string reason;
  found = dgram::resolve("no-such-host.invalid", 80, ec, &reason);
  CHECK(ec == dgram::errc::resolve_failed);
  CHECK(!reason.empty());
}

TEST_CASE("EndpointHash separates ports, addresses and families", "[endpoint]") {
  std::unordered_set<dgram::Endpoint, dgram::EndpointHash> set;
  for (std::uint16_t port = 1; port <= 1000; ++port) {
    set.insert(dgram::Endpoint::loopback(dgram::Family::ipv4, port));
    set.insert(dgram::Endpoint::loopback(dgram::Family::ipv6, port));
  }
  CHECK(set.size() == 2000);
  CHECK(set.count(dgram::Endpoint::parse("127.0.0.1:500")) == 1);
}
