#include <smtpwire/wire/base64.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace wire = smtpwire::wire;

namespace {

/// A slow, obviously-correct strict decoder (bit accumulator), written from
/// RFC 4648 §4/§3.5 independently of the library: nullopt when invalid.
bool reference_decode(const std::string& s, std::string& out) {
  static const std::string abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.clear();
  if (s.size() % 4 != 0) return false;
  std::size_t pads = 0;
  while (pads < s.size() && s[s.size() - 1 - pads] == '=')
    ++pads;
  if (pads > 2) return false;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < s.size() - pads; ++i) {
    const auto v = abc.find(s[i]);
    if (v == std::string::npos) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits are the pad bits: they must be zero (canonical, §3.5).
  return (acc & ((1u << bits) - 1)) == 0;
}

}  // namespace

TEST_CASE("base64 vectors", "[wire][base64][vectors]") {
  const auto cases = smtpwire::test::load_vectors("base64.md");
  CHECK(cases.size() > 30);
  for (const auto& v : cases) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string enc = v.bytes("encoded");
    smtpwire::test::guarded_input g(enc);
    std::string out = "pre";
    const errc e = wire::base64_decode(out, g.view());
    if (v.has("error")) {
      CHECK(smtpwire::to_string(e) == v.text("error"));
      CHECK(out == "pre");
      CHECK(wire::validate_base64(g.view()) == e);
      char buf[300];
      CHECK(wire::base64_decode(buf, sizeof buf, g.view()).error() == e);
      std::string ref;
      CHECK_FALSE(reference_decode(enc, ref));
      continue;
    }
    REQUIRE(e == errc::ok);
    const std::string dec = v.bytes("decoded");
    CHECK(out == "pre" + dec);
    CHECK(wire::is_base64(g.view()));
    CHECK(wire::base64_decoded_size(g.view()) == dec.size());
    std::string re;
    wire::base64_encode(re, dec);
    CHECK(re == enc);
    CHECK(wire::base64_encoded_size(dec.size()) == enc.size());
  }
}

TEST_CASE("base64 final quanta: exactly the canonical ones are valid", "[wire][base64]") {
  static const std::string abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int two = 0, three = 0;
  for (char a : abc) {
    for (char b : abc) {
      const std::string q2 = {a, b, '=', '='};
      two += wire::is_base64(q2);
      for (char c : abc)
        three += wire::is_base64(std::string{a, b, c, '='});
    }
  }
  CHECK(two == 64 * 4);          // 4 of 64 second sextets have zero low bits
  CHECK(three == 64 * 64 * 16);  // 16 of 64 third sextets have zero low bits
}

TEST_CASE("base64 agrees with a reference decoder on random text", "[wire][base64]") {
  std::mt19937 rng(0xb64);
  const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/====== \r\n-_.\x80";
  int valid = 0;
  for (int i = 0; i < 200000; ++i) {
    std::string s(rng() % 13, 'A');
    for (auto& c : s)
      c = chars[rng() % chars.size()];
    std::string ref, got;
    const bool ok = reference_decode(s, ref);
    INFO(s);
    REQUIRE((wire::base64_decode(got, s) == errc::ok) == ok);
    REQUIRE(wire::is_base64(s) == ok);
    if (ok) {
      REQUIRE(got == ref);
      ++valid;
    } else {
      REQUIRE(got.empty());
    }
  }
  CHECK(valid > 100);
}

TEST_CASE("base64 round trip: seeded random octet strings", "[wire][base64]") {
  std::mt19937 rng(0x5eed64);
  for (int i = 0; i < 5000; ++i) {
    std::string raw(rng() % 200, '\0');
    for (auto& c : raw)
      c = static_cast<char>(rng() % 256);
    std::string enc = "x";
    wire::base64_encode(enc, raw);
    REQUIRE(enc.size() == 1 + wire::base64_encoded_size(raw.size()));
    const std::string_view body = std::string_view(enc).substr(1);
    REQUIRE(wire::is_base64(body));
    REQUIRE(wire::base64_decoded_size(body) == raw.size());
    std::string dec = "y";
    REQUIRE(wire::base64_decode(dec, body) == errc::ok);
    REQUIRE(dec == "y" + raw);
    std::vector<char> buf(raw.size() + 1);
    auto n = wire::base64_decode(buf.data(), raw.size(), body);
    REQUIRE(n);
    REQUIRE(std::string(buf.data(), *n) == raw);
    std::vector<char> ebuf(wire::base64_encoded_size(raw.size()));
    REQUIRE(wire::base64_encode(ebuf.data(), raw) == ebuf.size());
    REQUIRE(std::string(ebuf.begin(), ebuf.end()) == body);
  }
}

TEST_CASE("base64 decode into a buffer checks its capacity", "[wire][base64]") {
  char buf[6] = {};
  CHECK(wire::base64_decode(buf, 5, "Zm9vYmFy").error() == errc::api_value_invalid);
  auto r = wire::base64_decode(buf, 6, "Zm9vYmFy");
  REQUIRE(r);
  CHECK(std::string(buf, *r) == "foobar");
  CHECK(wire::base64_decode(buf, 0, "").value() == 0);
  CHECK(wire::base64_decoded_size("Zm9") == 0);
  CHECK(wire::base64_encoded_size(0) == 0);
  CHECK(wire::base64_encoded_size(1) == 4);
  CHECK(wire::base64_encoded_size(3) == 4);
  CHECK(wire::base64_encoded_size(4) == 8);
}

TEST_CASE("base64 never reads past its input", "[wire][base64]") {
  for (const char* s : {"", "Z", "Zg", "Zg=", "Zg==", "Zm9v", "Zm9vY", "Zm9vYg==", "===="}) {
    smtpwire::test::guarded_input g(s);
    std::string out;
    const bool ok = wire::base64_decode(out, g.view()) == errc::ok;
    std::string ref;
    CHECK(ok == reference_decode(s, ref));
    CHECK(wire::is_base64(g.view()) == ok);
    std::string enc;
    wire::base64_encode(enc, g.view());
    CHECK(wire::is_base64(enc));
  }
}
