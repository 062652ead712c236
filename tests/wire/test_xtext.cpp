#include <smtpwire/wire/xtext.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace wire = smtpwire::wire;

namespace {
bool is_upper_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}
// RFC 3461 §4 xchar, written out independently of detail/chars.hpp.
bool is_xchar(unsigned char c) {
  return c >= 33 && c <= 126 && c != '+' && c != '=';
}
}  // namespace

TEST_CASE("xtext vectors", "[wire][xtext][vectors]") {
  const auto cases = smtpwire::test::load_vectors("xtext.md");
  CHECK(cases.size() > 20);
  for (const auto& v : cases) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string enc = v.bytes("encoded");
    smtpwire::test::guarded_input g(enc);
    std::string out = "pre";
    const errc e = wire::xtext_decode(out, g.view());
    if (v.has("error")) {
      CHECK(smtpwire::to_string(e) == v.text("error"));
      CHECK(out == "pre");
      CHECK_FALSE(wire::is_xtext(g.view()));
      char buf[64];
      CHECK(wire::xtext_decode(buf, sizeof buf, g.view()).error() == e);
      continue;
    }
    REQUIRE(e == errc::ok);
    const std::string dec = v.bytes("decoded");
    CHECK(out == "pre" + dec);
    CHECK(wire::xtext_decoded_size(g.view()) == dec.size());
    std::string re;
    wire::xtext_encode(re, dec);
    CHECK(re == (v.has("canonical") ? v.bytes("canonical") : enc));
    CHECK(wire::xtext_encoded_size(dec) == re.size());
  }
}

TEST_CASE("xtext validation agrees with the RFC 3461 grammar exhaustively", "[wire][xtext]") {
  for (int c = 0; c < 256; ++c) {
    const std::string s(1, static_cast<char>(c));
    INFO(c);
    CHECK(wire::is_xtext(s) == is_xchar(static_cast<unsigned char>(c)));
  }
  int valid = 0;
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const std::string s = {'+', static_cast<char>(a), static_cast<char>(b)};
      const bool expect = is_upper_hex(static_cast<char>(a)) && is_upper_hex(static_cast<char>(b));
      if (wire::is_xtext(s) != expect) FAIL("+" << a << "," << b);
      valid += expect;
    }
  }
  CHECK(valid == 256);
  // Every escape decodes to its octet.
  for (int o = 0; o < 256; ++o) {
    static const char hex[] = "0123456789ABCDEF";
    const std::string s = {'+', hex[o >> 4], hex[o & 15]};
    std::string out;
    REQUIRE(wire::xtext_decode(out, s) == errc::ok);
    CHECK(out == std::string(1, static_cast<char>(o)));
  }
}

TEST_CASE("xtext round trip: seeded random octet strings", "[wire][xtext]") {
  std::mt19937 rng(0x7e47);
  for (int i = 0; i < 5000; ++i) {
    std::string raw(rng() % 64, '\0');
    for (auto& c : raw)
      c = static_cast<char>(i % 3 == 0 ? 33 + rng() % 94 : rng() % 256);
    std::string enc;
    wire::xtext_encode(enc, raw);
    REQUIRE(wire::is_xtext(enc));
    REQUIRE(enc.size() == wire::xtext_encoded_size(raw));
    // Canonical: only octets that are not xchars are escaped.
    std::size_t plus = 0;
    for (char c : raw)
      plus += is_xchar(static_cast<unsigned char>(c)) ? 0 : 1;
    REQUIRE(enc.size() == raw.size() + 2 * plus);
    std::string dec = "x";
    REQUIRE(wire::xtext_decode(dec, enc) == errc::ok);
    REQUIRE(dec == "x" + raw);
    std::vector<char> buf(raw.size());
    auto n = wire::xtext_decode(buf.data(), buf.size(), enc);
    REQUIRE(n);
    REQUIRE(std::string(buf.data(), *n) == raw);
  }
}

TEST_CASE("xtext decode into a buffer checks its capacity", "[wire][xtext]") {
  char buf[4] = {'-', '-', '-', '-'};
  auto r = wire::xtext_decode(buf, 3, "ab+2Bc");
  REQUIRE(r.error() == errc::api_value_invalid);
  CHECK(std::string(buf, 4) == "----");
  r = wire::xtext_decode(buf, 4, "ab+2Bc");
  REQUIRE(r);
  CHECK(*r == 4);
  CHECK(std::string(buf, 4) == "ab+c");
  CHECK(wire::xtext_decode(buf, 4, "").value() == 0);
}

TEST_CASE("xtext never reads past its input", "[wire][xtext]") {
  for (const char* s : {"+", "+4", "a+", "a+4", "+41", "abc", ""}) {
    smtpwire::test::guarded_input g(s);
    std::string out;
    const bool ok = wire::xtext_decode(out, g.view()) == errc::ok;
    CHECK(ok == wire::is_xtext(s));
    CHECK(wire::xtext_decoded_size(g.view()) <= g.view().size());
    std::string enc;
    wire::xtext_encode(enc, g.view());
    CHECK(wire::is_xtext(enc));
  }
}
