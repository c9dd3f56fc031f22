// dgram.checksum: published vectors (also static_asserted in the module), properties, streaming, and UDP
// checksums that an independent implementation (tshark) validates.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "support/process.hpp"

import dgram;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::byte> random_bytes(std::size_t size, std::uint32_t seed) {
  std::mt19937 generator{seed};
  std::vector<std::byte> out(size);
  for (auto& b : out) b = static_cast<std::byte>(generator() & 0xff);
  return out;
}

// Compile-time use from a test: the functions are constexpr for callers too.
constexpr std::array<std::byte, 2> two{std::byte{0x12}, std::byte{0x34}};
static_assert(dgram::ones_complement_sum(two) == 0x1234);
static_assert(dgram::internet_checksum(two) == 0xedcb);

}  // namespace

TEST_CASE("RFC 1071 example", "[checksum]") {
  const auto data = bytes({0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7});
  CHECK(dgram::ones_complement_sum(data) == 0xddf2);
  CHECK(dgram::internet_checksum(data) == 0x220d);
}

TEST_CASE("the tutorial's example words 0x9E62 + 0x514D", "[checksum]") {
  CHECK(dgram::internet_checksum(bytes({0x9e, 0x62, 0x51, 0x4d})) == 0x1050);
}

TEST_CASE("empty input sums to zero", "[checksum]") {
  CHECK(dgram::ones_complement_sum({}) == 0);
  CHECK(dgram::internet_checksum({}) == 0xffff);
}

TEST_CASE("an odd length is padded with a zero byte", "[checksum]") {
  CHECK(dgram::internet_checksum(bytes({0x01, 0x02, 0x03})) == dgram::internet_checksum(bytes({0x01, 0x02, 0x03, 0x00})));
  CHECK(dgram::ones_complement_sum(bytes({0xab})) == 0xab00);
}

TEST_CASE("carries wrap around (end-around carry)", "[checksum]") {
  CHECK(dgram::ones_complement_sum(bytes({0xff, 0xff, 0x00, 0x01})) == 0x0001);
  std::vector<std::byte> many(200000, std::byte{0xff});   // forces the accumulator to fold repeatedly
  CHECK(dgram::ones_complement_sum(many) == 0xffff);
}

TEST_CASE("appending the checksum makes the data sum to 0xffff", "[checksum]") {
  for (std::uint32_t seed = 1; seed <= 50; ++seed) {
    auto data = random_bytes(2 * (seed * 7 % 300), seed);   // even lengths: the checksum lands on a word
    const std::uint16_t checksum = dgram::internet_checksum(data);
    data.push_back(static_cast<std::byte>(checksum >> 8));
    data.push_back(static_cast<std::byte>(checksum & 0xff));
    INFO("seed " << seed);
    CHECK(dgram::ones_complement_sum(data) == 0xffff);
  }
}

TEST_CASE("streaming in pieces of any length gives the one-shot result", "[checksum]") {
  const auto data = random_bytes(1001, 7);
  const std::uint16_t expected = dgram::internet_checksum(data);
  for (std::size_t piece : {1u, 2u, 3u, 7u, 64u, 999u}) {
    dgram::OnesComplementSum sum;
    for (std::size_t at = 0; at < data.size(); at += piece)
      sum.add(std::span(data).subspan(at, std::min(piece, data.size() - at)));
    INFO("piece " << piece);
    CHECK(sum.checksum() == expected);
  }
}

TEST_CASE("UDP checksum: a computed zero is sent as 0xffff", "[checksum]") {
  // Find a payload whose checksum computes to 0 by solving for its last word.
  const std::array<std::uint8_t, 4> a{10, 0, 0, 1}, b{10, 0, 0, 2};
  const auto zero_word = bytes({0, 0});
  const std::uint16_t with_zero = dgram::udp_checksum_ipv4(a, b, 1, 2, zero_word);
  // Adding the complement of the current sum makes the sum 0xffff, so the checksum computes to 0.
  const std::uint16_t fix = static_cast<std::uint16_t>(with_zero);
  const auto payload = bytes({fix >> 8, fix & 0xff});
  CHECK(dgram::udp_checksum_ipv4(a, b, 1, 2, payload) == 0xffff);
}

// ---- Independent validation: write a pcap of raw IP packets and let tshark check the UDP checksums. -------

namespace {

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

void put32le(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::vector<std::uint8_t> udp_packet(const dgram::Endpoint& src, const dgram::Endpoint& dst,
                                     std::span<const std::byte> payload, std::uint16_t checksum) {
  std::vector<std::uint8_t> ip;
  const auto udp_length = static_cast<std::uint16_t>(8 + payload.size());
  if (src.family() == dgram::Family::ipv4) {
    ip = {0x45, 0x00};
    put16(ip, static_cast<std::uint16_t>(20 + udp_length));
    ip.insert(ip.end(), {0x00, 0x01, 0x00, 0x00, 64, 17, 0x00, 0x00});
    ip.insert(ip.end(), src.address_bytes().begin(), src.address_bytes().end());
    ip.insert(ip.end(), dst.address_bytes().begin(), dst.address_bytes().end());
    const std::uint16_t header_checksum = dgram::internet_checksum(std::as_bytes(std::span(ip)));
    ip[10] = static_cast<std::uint8_t>(header_checksum >> 8);
    ip[11] = static_cast<std::uint8_t>(header_checksum & 0xff);
  } else {
    ip = {0x60, 0x00, 0x00, 0x00};
    put16(ip, udp_length);
    ip.insert(ip.end(), {17, 64});
    ip.insert(ip.end(), src.address_bytes().begin(), src.address_bytes().end());
    ip.insert(ip.end(), dst.address_bytes().begin(), dst.address_bytes().end());
  }
  put16(ip, src.port());
  put16(ip, dst.port());
  put16(ip, udp_length);
  put16(ip, checksum);
  for (std::byte b : payload) ip.push_back(static_cast<std::uint8_t>(b));
  return ip;
}

std::uint16_t our_udp_checksum(const dgram::Endpoint& src, const dgram::Endpoint& dst,
                               std::span<const std::byte> payload) {
  if (src.family() == dgram::Family::ipv4) {
    std::array<std::uint8_t, 4> s{}, d{};
    std::copy_n(src.address_bytes().begin(), 4, s.begin());
    std::copy_n(dst.address_bytes().begin(), 4, d.begin());
    return dgram::udp_checksum_ipv4(s, d, src.port(), dst.port(), payload);
  }
  std::array<std::uint8_t, 16> s{}, d{};
  std::copy_n(src.address_bytes().begin(), 16, s.begin());
  std::copy_n(dst.address_bytes().begin(), 16, d.begin());
  return dgram::udp_checksum_ipv6(s, d, src.port(), dst.port(), payload);
}

// A pcap file with LINKTYPE_RAW (101): each record is one IPv4 or IPv6 packet.
void write_pcap(const std::string& path, const std::vector<std::vector<std::uint8_t>>& packets) {
  std::vector<std::uint8_t> file;
  put32le(file, 0xa1b2c3d4);
  file.insert(file.end(), {2, 0, 4, 0});   // version 2.4
  put32le(file, 0);
  put32le(file, 0);
  put32le(file, 65535);
  put32le(file, 101);
  for (const auto& packet : packets) {
    put32le(file, 0);
    put32le(file, 0);
    put32le(file, static_cast<std::uint32_t>(packet.size()));
    put32le(file, static_cast<std::uint32_t>(packet.size()));
    file.insert(file.end(), packet.begin(), packet.end());
  }
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(file.data()),
                                              static_cast<std::streamsize>(file.size()));
}

}  // namespace

TEST_CASE("tshark validates our UDP checksums over IPv4 and IPv6", "[checksum][interop]") {
  const std::string tshark = dgram::testing::program_path("TSHARK");
  const std::string pcap = std::string(std::getenv("MESON_BUILD_ROOT") ? std::getenv("MESON_BUILD_ROOT") : ".") +
                           "/checksum-test-" + std::to_string(::getpid()) + ".pcap";
  const auto v4a = dgram::Endpoint::parse("127.0.0.1:40000"), v4b = dgram::Endpoint::parse("127.0.0.2:11111");
  const auto v6a = dgram::Endpoint::parse("[::1]:5353"), v6b = dgram::Endpoint::parse("[fe80::1:2:3]:11111");
  std::vector<std::vector<std::uint8_t>> packets;
  std::vector<std::string> expected;
  for (std::size_t size : {0u, 1u, 2u, 33u, 1472u}) {
    const auto payload = random_bytes(size, static_cast<std::uint32_t>(size + 1));
    packets.push_back(udp_packet(v4a, v4b, payload, our_udp_checksum(v4a, v4b, payload)));
    packets.push_back(udp_packet(v6a, v6b, payload, our_udp_checksum(v6a, v6b, payload)));
    expected.insert(expected.end(), {"1", "1"});   // udp.checksum.status 1 = Good
  }
  // Control: a wrong checksum must be reported as bad, or tshark is not really checking.
  const auto payload = random_bytes(10, 99);
  packets.push_back(udp_packet(v4a, v4b, payload, static_cast<std::uint16_t>(our_udp_checksum(v4a, v4b, payload) ^ 0x0101)));
  expected.push_back("0");
  packets.push_back(udp_packet(v6a, v6b, payload, static_cast<std::uint16_t>(our_udp_checksum(v6a, v6b, payload) ^ 0x0101)));
  expected.push_back("0");
  write_pcap(pcap, packets);

  dgram::testing::Process run({tshark, "-n", "-r", pcap, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-e",
                               "udp.checksum.status"});
  const auto finished = run.wait(std::chrono::seconds(60));
  std::remove(pcap.c_str());
  INFO("tshark stderr: " << finished.err);
  REQUIRE(finished.exit_code == 0);
  std::vector<std::string> statuses;
  std::string line;
  for (char c : finished.out) {
    if (c == '\n') {
      statuses.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  CHECK(statuses == expected);
}
