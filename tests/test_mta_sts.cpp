#include <smtpwire/mta_sts.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace sts = smtpwire::mta_sts;

namespace {

std::string describe(const smtpwire::result<sts::policy>& r) {
  if (!r) return "error " + std::string(smtpwire::to_string(r.error()));
  std::string s = "mode=" + std::string(sts::to_string(r->policy_mode)) +
                  " max_age=" + std::to_string(r->max_age) + " mx=";
  for (std::size_t i = 0; i < r->mx.size(); ++i)
    s += (i ? "," : "") + smtpwire::test::escape_hex(r->mx[i]);
  return s;
}

std::string describe(const smtpwire::result<sts::record>& r) {
  if (!r) return "error " + std::string(smtpwire::to_string(r.error()));
  return "id=" + smtpwire::test::escape_hex(r->id);
}

// Every CRLF turned into LF (RFC 8461 §3.2 allows either line end).
std::string to_lf(std::string s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!(s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')) out += s[i];
  return out;
}

}  // namespace

TEST_CASE("mta_sts vectors", "[mta_sts]") {
  const auto cases = smtpwire::test::load_vectors("mta_sts.md");
  std::size_t policies = 0, records = 0;
  for (const auto& c : cases) {
    INFO(c.file << ":" << c.line << " " << c.name);
    const std::string expect = c.text("expect");
    if (c.has("policy")) {
      ++policies;
      const std::string body = c.bytes("policy");
      const auto r = sts::parse_policy(body);
      CHECK(describe(r) == expect);
      {
        smtpwire::test::guarded_input g(body);
        CHECK(describe(sts::parse_policy(g.view())) == expect);
      }
      const bool bare_cr = to_lf(body).find('\r') != std::string::npos;
      if (!bare_cr) CHECK(describe(sts::parse_policy(to_lf(body))) == expect);
      if (r) {
        std::string written;
        REQUIRE(sts::write_policy(written, *r) == errc::ok);
        const auto back = sts::parse_policy(written);
        REQUIRE(back);
        CHECK(*back == *r);
      }
    } else {
      ++records;
      const std::string txt = c.bytes("record");
      CHECK(describe(sts::parse_record(txt)) == expect);
      smtpwire::test::guarded_input g(txt);
      CHECK(describe(sts::parse_record(g.view())) == expect);
    }
  }
  CHECK(policies >= 40);
  CHECK(records >= 20);
}

TEST_CASE("mta_sts policy: every truncation of the RFC example is read within bounds",
          "[mta_sts]") {
  const std::string body =
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
      "mx: backupmx.example.com\r\nmax_age: 604800\r\n";
  // A policy has no end marker (the HTTPS response bounds it), so a cut
  // inside the last value's digits still parses, as a smaller max_age; every
  // other cut is refused (a missing field, a half mx pattern, a bare CR).
  const std::size_t digits = body.find("604800");
  for (std::size_t n = 0; n <= body.size(); ++n) {
    INFO("cut at " << n);
    smtpwire::test::guarded_input g(std::string_view(body).substr(0, n));
    const auto r = sts::parse_policy(g.view());
    const bool in_digits = n > digits && n <= digits + 6;
    CHECK(static_cast<bool>(r) == (in_digits || n == body.size()));
    if (r && in_digits) CHECK(r->max_age == std::stoul(body.substr(digits, n - digits)));
    if (r && !in_digits) CHECK(r->max_age == 604800);
  }
}

TEST_CASE("mta_sts policy size limit", "[mta_sts]") {
  std::string body = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n";
  sts::policy_options o;
  o.max_size = body.size();
  CHECK(sts::parse_policy(body, o));
  o.max_size = body.size() - 1;
  CHECK(sts::parse_policy(body, o).error() == errc::mta_sts_policy_too_large);

  // The default is 64 KiB: padding with ignored fields up to it is accepted,
  // one more octet is not.
  std::string big = body;
  while (big.size() + 16 < 64 * 1024)
    big += "x: 0123456789ab\n";
  big += "z: " + std::string(64 * 1024 - big.size() - 4, 'y') + "\n";
  REQUIRE(big.size() == 64 * 1024);
  CHECK(sts::parse_policy(big));
  big.insert(big.size() - 1, "y");
  CHECK(sts::parse_policy(big).error() == errc::mta_sts_policy_too_large);
}

TEST_CASE("mta_sts max_age boundaries", "[mta_sts]") {
  auto age = [](std::string_view v) {
    return sts::parse_policy(
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: " + std::string(v) + "\n");
  };
  CHECK(age("0")->max_age == 0);
  CHECK(age("31557600")->max_age == 31557600);
  CHECK(age("0031557600")->max_age == 31557600);
  CHECK(age("31557601").error() == errc::mta_sts_max_age_invalid);
  CHECK(age("9999999999").error() == errc::mta_sts_max_age_invalid);
  CHECK(age("4294967295").error() == errc::mta_sts_max_age_invalid);
  CHECK(age("1e3").error() == errc::mta_sts_max_age_invalid);
}

TEST_CASE("mta_sts mx pattern syntax", "[mta_sts]") {
  const std::string l63(63, 'a'), l64(64, 'a');
  struct row {
    std::string pattern;
    bool valid;
  };
  const row rows[] = {
      {"mail.example.com", true},
      {"*.example.net", true},
      {"*.com", true},
      {"localhost", true},
      {"1.2.3.4", true},  // LDH labels: digits are letters-or-digits
      {"xn--bcher-kva.example", true},
      {"*", false},
      {"*.", false},
      {"*.*.example.com", false},
      {"*example.com", false},
      {"a.*.example.com", false},
      {"**.example.com", false},
      {"*-.example.com", false},
      {".example.com", false},
      {"example.com.", false},
      {"", false},
      {l63 + ".example", true},
      {l64 + ".example", false},
      {l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b'), true},   // 253 octets
      {l63 + "." + l63 + "." + l63 + "." + std::string(62, 'b'), false},  // 254 octets
      {"*." + l63 + "." + l63 + "." + l63 + "." + std::string(59, 'b'), true},
      {"*." + l63 + "." + l63 + "." + l63 + "." + std::string(60, 'b'), false},
  };
  for (const auto& r : rows) {
    INFO(r.pattern);
    CHECK(sts::is_mx_pattern(r.pattern) == r.valid);
  }
}

TEST_CASE("mta_sts MX host matching (RFC 8461 §4.1)", "[mta_sts]") {
  struct row {
    std::string_view pattern, host;
    bool match;
  };
  const row rows[] = {
      {"mail.example.com", "mail.example.com", true},
      {"mail.example.com", "MAIL.Example.COM", true},
      {"MAIL.EXAMPLE.COM", "mail.example.com", true},
      {"mail.example.com", "mail.example.com.", true},  // DNS answers end in the root dot
      {"mail.example.com", "mail.example.com..", false},
      {"mail.example.com", "mail.example.co", false},
      {"mail.example.com", "xmail.example.com", false},
      {"mail.example.com", "a.mail.example.com", false},
      {"*.example.com", "mx1.example.com", true},
      {"*.example.com", "MX1.EXAMPLE.COM.", true},
      {"*.example.com", "example.com", false},  // not the bare parent
      {"*.example.com", "example.com.", false},
      {"*.example.com", "a.b.example.com", false},  // exactly one label
      {"*.example.com", "mx1.example.com.evil", false},
      {"*.example.com", "mx1example.com", false},
      {"*.example.com", ".example.com", false},
      {"*.example.com", "*.example.com", false},  // a host is never a pattern
      {"*.example.com", "mx1.notexample.com", false},
      {"*.com", "example.com", true},
      {"*.com", "com", false},
      {"*.*.example.com", "a.b.example.com", false},  // invalid patterns match nothing
      {"a.*.example.com", "a.b.example.com", false},
      {"*", "example", false},
      {"mail.example.com", "", false},
      {"mail.example.com", ".", false},
      {"*.example.com", "-x.example.com", false},
  };
  for (const auto& r : rows) {
    INFO(r.pattern << " ~ " << r.host);
    CHECK(sts::matches(r.pattern, r.host) == r.match);
  }
}

TEST_CASE("mta_sts decide: what a policy requires of one MX", "[mta_sts]") {
  auto pol = [](std::string_view m) {
    auto r = sts::parse_policy("version: STSv1\nmode: " + std::string(m) +
                               "\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n");
    REQUIRE(r);
    return *r;
  };
  const auto enforce = pol("enforce"), testing = pol("testing"), none = pol("none");

  auto d = sts::decide(enforce, "mail.example.com.");
  CHECK(d.what == sts::action::require_verified_tls);
  CHECK(d.mx_matches);
  CHECK(d.require_tls);
  CHECK(d.require_verified_name);

  d = sts::decide(enforce, "mx9.example.net");
  CHECK(d.what == sts::action::require_verified_tls);

  d = sts::decide(enforce, "mail.attacker.example");
  CHECK(d.what == sts::action::skip_mx);
  CHECK_FALSE(d.mx_matches);
  CHECK_FALSE(d.require_tls);
  CHECK_FALSE(d.require_verified_name);

  d = sts::decide(enforce, "example.net");
  CHECK(d.what == sts::action::skip_mx);

  d = sts::decide(testing, "mail.example.com");
  CHECK(d.what == sts::action::report_only);
  CHECK(d.mx_matches);
  CHECK_FALSE(d.require_tls);
  d = sts::decide(testing, "mail.attacker.example");
  CHECK(d.what == sts::action::report_only);
  CHECK_FALSE(d.mx_matches);

  d = sts::decide(none, "mail.example.com");
  CHECK(d.what == sts::action::no_requirement);
  CHECK_FALSE(d.require_tls);

  CHECK(sts::to_string(sts::action::skip_mx) == "skip_mx");
  CHECK(sts::to_string(sts::action::require_verified_tls) == "require_verified_tls");
}

TEST_CASE("mta_sts record selection (RFC 8461 §3.1)", "[mta_sts]") {
  CHECK(sts::is_sts_record("v=STSv1; id=a"));
  CHECK(sts::is_sts_record("v=STSv1;id=a"));
  CHECK_FALSE(sts::is_sts_record("v=STSv1 ; id=a"));
  CHECK_FALSE(sts::is_sts_record("v=spf1 -all"));
  CHECK_FALSE(sts::is_sts_record("v=STSv1"));
}

TEST_CASE("mta_sts write_policy refuses what it cannot write", "[mta_sts]") {
  sts::policy p;
  p.policy_mode = sts::mode::enforce;
  p.max_age = 60;
  p.mx = {"mx.example.com", "*.*.example.com"};
  std::string out = "keep";
  CHECK(sts::write_policy(out, p) == errc::mta_sts_mx_invalid);
  CHECK(out == "keep");
  p.mx = {"mx.example.com\r\nmode: none"};
  CHECK(sts::write_policy(out, p) == errc::mta_sts_mx_invalid);
  p.mx = {"mx.example.com"};
  p.max_age = sts::max_age_limit + 1;
  CHECK(sts::write_policy(out, p) == errc::mta_sts_max_age_invalid);
  p.max_age = sts::max_age_limit;
  out.clear();
  CHECK(sts::write_policy(out, p) == errc::ok);
  CHECK(out == "version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 31557600\r\n");
}

TEST_CASE("mta_sts errc names", "[mta_sts]") {
  CHECK(smtpwire::to_string(errc::mta_sts_mx_invalid) == "mta_sts_mx_invalid");
  CHECK(smtpwire::to_string(errc::tlsrpt_value_invalid) == "tlsrpt_value_invalid");
  // Not an SMTP peer's error: the local-error fallback, like api_* values.
  CHECK(smtpwire::reply_for(errc::mta_sts_policy_syntax).code == 451);
}
