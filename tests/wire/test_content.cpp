#include <smtpwire/wire/content.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"

using smtpwire::errc;
using smtpwire::wire::body_type;
using smtpwire::wire::content_profile;
using smtpwire::wire::content_scanner;
using smtpwire::wire::plan_transfer;
using smtpwire::wire::required_body;
using smtpwire::wire::scan_content;
using smtpwire::wire::server_offer;
using smtpwire::wire::transfer_preferences;

namespace {

std::string show(const content_profile& p) {
  return "octets=" + std::to_string(p.octets) + " lines=" + std::to_string(p.lines) +
         " longest=" + std::to_string(p.longest_line) + " 8bit=" + std::to_string(p.eight_bit) +
         " nul=" + std::to_string(p.nul) + " cr=" + std::to_string(p.bare_cr) +
         " lf=" + std::to_string(p.bare_lf) + " hdr8=" + std::to_string(p.eight_bit_in_headers) +
         " eol=" + std::to_string(p.ends_with_line_end);
}

std::string profile_chunked(const std::vector<std::string_view>& chunks) {
  content_scanner s;
  for (auto c : chunks)
    s.feed(c);
  return show(s.profile());
}

}  // namespace

TEST_CASE("content profiles", "[wire][content]") {
  struct row {
    std::string_view in;
    const char* expect;
  };
  const row rows[] = {
      {"", "octets=0 lines=0 longest=0 8bit=0 nul=0 cr=0 lf=0 hdr8=0 eol=1"},
      {"a\r\n", "octets=3 lines=1 longest=1 8bit=0 nul=0 cr=0 lf=0 hdr8=0 eol=1"},
      {"abc", "octets=3 lines=0 longest=3 8bit=0 nul=0 cr=0 lf=0 hdr8=0 eol=0"},
      {"a\nbb\rccc\r", "octets=9 lines=3 longest=3 8bit=0 nul=0 cr=1 lf=1 hdr8=0 eol=1"},
      {"S: x\r\n\r\nbody \xc3\xa9\r\n",
       "octets=17 lines=3 longest=7 8bit=1 nul=0 cr=0 lf=0 hdr8=0 eol=1"},
      {"S: \xc3\xa9\r\n\r\nbody\r\n",
       "octets=15 lines=3 longest=5 8bit=1 nul=0 cr=0 lf=0 hdr8=1 eol=1"},
      {std::string_view("a\0b\r\n", 5),
       "octets=5 lines=1 longest=3 8bit=0 nul=1 cr=0 lf=0 hdr8=0 eol=1"},
      {"\r\r\n", "octets=3 lines=2 longest=0 8bit=0 nul=0 cr=1 lf=0 hdr8=0 eol=1"},
  };
  for (const row& r : rows) {
    INFO(std::string(r.in));
    const std::string log = smtpwire::test::grind(r.in, profile_chunked);
    CHECK(log == r.expect);
    CHECK(show(scan_content(r.in)) == r.expect);
  }
}

TEST_CASE("line length limits need BINARYMIME", "[wire][content]") {
  const std::string ok = std::string(998, 'x') + "\r\n";
  const std::string too_long = std::string(999, 'x') + "\r\n";
  CHECK(scan_content(ok).longest_line == 998);
  CHECK(required_body(scan_content(ok)) == body_type::seven_bit);
  CHECK(required_body(scan_content(too_long)) == body_type::binary_mime);
  CHECK(required_body(scan_content("caf\xc3\xa9")) == body_type::eight_bit_mime);
  CHECK(required_body(scan_content(std::string_view("\0", 1))) == body_type::binary_mime);
  CHECK(required_body(scan_content("a\nb")) == body_type::seven_bit);
  CHECK(required_body(scan_content("a\nb"), false) == body_type::binary_mime);
  CHECK(smtpwire::wire::to_string(body_type::eight_bit_mime) == "8BITMIME");
}

TEST_CASE("transfer plans", "[wire][content]") {
  const content_profile ascii = scan_content("Subject: x\r\n\r\nhello\r\n");
  const content_profile eight = scan_content("Subject: x\r\n\r\ncaf\xc3\xa9\r\n");
  const content_profile utf8_hdr = scan_content("Subject: caf\xc3\xa9\r\n\r\nx\r\n");
  const content_profile binary = scan_content(std::string_view("a\0b\r\n", 5));
  const content_profile bare = scan_content("a\nb\n");
  server_offer none;
  server_offer all;
  all.eight_bit_mime = all.binary_mime = all.chunking = all.smtputf8 = true;
  server_offer chunking_only;
  chunking_only.chunking = true;
  server_offer binary_no_8bit;
  binary_no_8bit.binary_mime = binary_no_8bit.chunking = true;

  auto t = plan_transfer(ascii, none);
  CHECK(t.error == errc::ok);
  CHECK_FALSE(t.use_bdat);
  CHECK(t.body == body_type::seven_bit);

  CHECK(plan_transfer(eight, none).error == errc::data_8bit_not_offered);
  t = plan_transfer(eight, all);
  CHECK(t.error == errc::ok);
  CHECK(t.body == body_type::eight_bit_mime);
  CHECK_FALSE(t.use_bdat);
  t = plan_transfer(eight, binary_no_8bit);
  CHECK(t.error == errc::ok);
  CHECK(t.body == body_type::binary_mime);
  CHECK(t.use_bdat);

  CHECK(plan_transfer(binary, none).error == errc::data_binary_not_offered);
  CHECK(plan_transfer(binary, chunking_only).error == errc::data_binary_not_offered);
  t = plan_transfer(binary, all);
  CHECK(t.use_bdat);
  CHECK(t.body == body_type::binary_mime);

  server_offer no_utf8 = all;
  no_utf8.smtputf8 = false;
  CHECK(plan_transfer(utf8_hdr, no_utf8).error == errc::data_smtputf8_not_offered);
  t = plan_transfer(utf8_hdr, all);
  CHECK(t.smtputf8);
  CHECK(t.body == body_type::eight_bit_mime);

  transfer_preferences bdat;
  bdat.prefer_bdat = true;
  CHECK(plan_transfer(ascii, chunking_only, bdat).use_bdat);
  CHECK_FALSE(plan_transfer(ascii, none, bdat).use_bdat);
  // Bare line ends need the DATA encoder's normalisation.
  CHECK_FALSE(plan_transfer(bare, chunking_only, bdat).use_bdat);
  transfer_preferences raw;
  raw.normalize_line_ends = false;
  CHECK(plan_transfer(bare, none, raw).error == errc::data_binary_not_offered);
  CHECK(plan_transfer(bare, all, raw).use_bdat);
}

TEST_CASE("content scanner is split-invariant on random data", "[wire][content]") {
  std::mt19937 rng(99);
  const std::string_view alphabet("\r\n.a\0\xe9 ", 7);
  for (int round = 0; round < 300; ++round) {
    std::string s(rng() % 200, 'a');
    for (char& c : s)
      c = alphabet[rng() % alphabet.size()];
    content_scanner a;
    std::size_t at = 0;
    while (at < s.size()) {
      const std::size_t n = 1 + rng() % 9;
      a.feed(std::string_view(s).substr(at, n));
      at += n;
    }
    CHECK(a.profile() == scan_content(s));
  }
}
