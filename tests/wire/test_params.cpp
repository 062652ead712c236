#include <smtpwire/wire/params.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <deque>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace wire = smtpwire::wire;

namespace {

std::string esc(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string dump_unknown(const wire::unknown_params& u) {
  std::string s;
  for (const auto& p : u) {
    s += "unknown " + esc(p.keyword);
    if (p.has_value) s += "=" + esc(p.value);
    s += '\n';
  }
  return s;
}

std::string notify_text(std::uint8_t n) {
  if (n == wire::notify_never) return "NEVER";
  std::string s;
  if (n & wire::notify_success) s += "SUCCESS,";
  if (n & wire::notify_failure) s += "FAILURE,";
  if (n & wire::notify_delay) s += "DELAY,";
  if (!s.empty()) s.pop_back();
  return s;
}

std::string dump(const wire::mail_params& m) {
  std::ostringstream o;
  if (m.size) o << "size " << *m.size << '\n';
  if (m.body)
    o << "body "
      << (*m.body == wire::body_type::seven_bit        ? "7BIT"
          : *m.body == wire::body_type::eight_bit_mime ? "8BITMIME"
                                                       : "BINARYMIME")
      << '\n';
  if (m.smtputf8) o << "smtputf8\n";
  if (m.ret) o << "ret " << (*m.ret == wire::ret_type::full ? "FULL" : "HDRS") << '\n';
  if (m.envid) o << "envid " << esc(*m.envid) << '\n';
  if (m.auth) o << "auth " << esc(*m.auth) << '\n';
  if (m.requiretls) o << "requiretls\n";
  if (m.mt_priority) o << "mt-priority " << *m.mt_priority << '\n';
  if (m.by)
    o << "by " << m.by->time << ';' << (m.by->mode == wire::by_mode::return_message ? 'R' : 'N')
      << (m.by->trace ? "T" : "") << '\n';
  if (m.holdfor) o << "holdfor " << *m.holdfor << '\n';
  if (m.holduntil) o << "holduntil " << esc(*m.holduntil) << '\n';
  std::string s = o.str() + dump_unknown(m.unknown);
  if (s.empty()) return "(none)";
  s.pop_back();
  return s;
}

std::string dump(const wire::rcpt_params& r) {
  std::string s;
  if (r.notify) s += "notify " + notify_text(r.notify) + '\n';
  if (r.orcpt) s += "orcpt " + esc(r.orcpt->addr_type) + ";" + esc(r.orcpt->addr) + '\n';
  if (r.rrvs) {
    s += "rrvs " + esc(r.rrvs->date_time);
    if (r.rrvs->action != 0) s += std::string(";") + r.rrvs->action;
    s += '\n';
  }
  s += dump_unknown(r.unknown);
  if (s.empty()) return "(none)";
  s.pop_back();
  return s;
}

wire::param_options options_of(const smtpwire::test::vector_case& v) {
  wire::param_options o;
  if (!v.has("options")) return o;
  std::istringstream in(v.text("options"));
  std::string w;
  while (in >> w) {
    if (w == "utf8_values") {
      o.utf8_values = true;
    } else if (w == "no_unknown") {
      o.allow_unknown = false;
    } else if (w.rfind("max_params=", 0) == 0) {
      o.max_params = std::stoul(w.substr(11));
    } else {
      FAIL("unknown option " << w << " in " << v.name);
    }
  }
  return o;
}

/// The text a writer produced, as the parser takes it (without the leading SP).
std::string_view after_sp(const std::string& written) {
  if (written.empty()) return {};
  REQUIRE(written[0] == ' ');
  return std::string_view(written).substr(1);
}

/// Parses `in` as MAIL or RCPT; returns the dump, or "error <name>". Valid
/// results are also written and parsed again, and must compare equal.
std::string run(std::string_view in, bool rcpt, const wire::param_options& o) {
  if (!rcpt) {
    auto r = wire::parse_mail_params(in, o);
    if (!r) return "error " + std::string(smtpwire::to_string(r.error()));
    std::string w;
    REQUIRE(wire::write_mail_params(w, *r, o) == errc::ok);
    auto again = wire::parse_mail_params(after_sp(w), o);
    INFO("written: " << esc(w));
    REQUIRE(again);
    CHECK(*again == *r);
    CHECK(dump(*again) == dump(*r));
    return dump(*r);
  }
  auto r = wire::parse_rcpt_params(in, o);
  if (!r) return "error " + std::string(smtpwire::to_string(r.error()));
  std::string w;
  REQUIRE(wire::write_rcpt_params(w, *r, o) == errc::ok);
  auto again = wire::parse_rcpt_params(after_sp(w), o);
  INFO("written: " << esc(w));
  REQUIRE(again);
  CHECK(*again == *r);
  CHECK(dump(*again) == dump(*r));
  return dump(*r);
}

}  // namespace

TEST_CASE("params vectors", "[wire][params][vectors]") {
  const auto cases = smtpwire::test::load_vectors("params.md");
  CHECK(cases.size() > 100);
  for (const auto& v : cases) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string in = v.bytes("input");
    const bool rcpt = v.has("kind") && v.text("kind") == "rcpt";
    if (v.has("kind")) REQUIRE((v.text("kind") == "rcpt" || v.text("kind") == "mail"));
    const auto o = options_of(v);
    const std::string got = run(in, rcpt, o);
    CHECK(got == v.text("expect"));
    // The same bytes right before an unreadable page: an over-read crashes.
    smtpwire::test::guarded_input g(in);
    CHECK(run(g.view(), rcpt, o) == got);
  }
}

TEST_CASE("param_reader yields keyword and value views", "[wire][params]") {
  const std::string_view s = "SIZE=10 SMTPUTF8 X-Y=a;b";
  wire::param_reader r(s);
  wire::esmtp_param p;
  REQUIRE(r.next(p));
  CHECK(p.keyword == "SIZE");
  CHECK(p.value == "10");
  CHECK(p.has_value);
  CHECK(p.keyword.data() == s.data());  // a view, not a copy
  REQUIRE(r.next(p));
  CHECK(p.keyword == "SMTPUTF8");
  CHECK_FALSE(p.has_value);
  CHECK(p.value.empty());
  REQUIRE(r.next(p));
  CHECK(p.keyword == "X-Y");
  CHECK(p.value == "a;b");
  CHECK_FALSE(r.next(p));
  CHECK(r.error() == errc::ok);
  CHECK_FALSE(r.next(p));  // stays at the end

  wire::param_reader bad("A B  C");
  REQUIRE(bad.next(p));
  REQUIRE(bad.next(p));
  CHECK(p.keyword == "B");
  CHECK_FALSE(bad.next(p));
  CHECK(bad.error() == errc::param_syntax);
  CHECK(bad.offset() == 4);  // the second SP
  CHECK_FALSE(bad.next(p));  // sticky
  CHECK(bad.error() == errc::param_syntax);

  wire::param_reader empty("");
  CHECK_FALSE(empty.next(p));
  CHECK(empty.error() == errc::ok);
}

TEST_CASE("param keywords classify in any case", "[wire][params]") {
  CHECK(wire::classify_param_keyword("mt-priority") == wire::param_keyword::mt_priority);
  CHECK(wire::classify_param_keyword("Orcpt") == wire::param_keyword::orcpt);
  CHECK(wire::classify_param_keyword("SIZ") == wire::param_keyword::unknown);
  CHECK(wire::classify_param_keyword("SIZEE") == wire::param_keyword::unknown);
  CHECK(wire::classify_param_keyword("") == wire::param_keyword::unknown);
  for (int k = 0; k < static_cast<int>(wire::param_keyword::unknown); ++k) {
    const auto kw = static_cast<wire::param_keyword>(k);
    CHECK(wire::classify_param_keyword(wire::to_string(kw)) == kw);
  }
  CHECK(wire::to_string(wire::param_keyword::unknown).empty());
}

TEST_CASE("unknown parameters iterate without the known ones", "[wire][params]") {
  auto r = wire::parse_mail_params("XA=1 SIZE=5 xb BODY=7BIT XC=q");
  REQUIRE(r);
  const auto& u = r->unknown;
  CHECK(u.size() == 3);
  CHECK_FALSE(u.empty());
  std::vector<std::string> seen;
  for (const auto& p : u)
    seen.push_back(std::string(p.keyword) + "|" + std::string(p.value));
  CHECK(seen == std::vector<std::string>{"XA|1", "xb|", "XC|q"});
  REQUIRE(u.find("XB"));
  CHECK_FALSE(u.find("XB")->has_value);
  CHECK_FALSE(u.find("SIZE"));  // known ones are not "unknown"
  CHECK_FALSE(u.find("XD"));

  auto none = wire::parse_mail_params("SIZE=5");
  REQUIRE(none);
  CHECK(none->unknown.empty());
  CHECK(none->unknown.size() == 0);
  CHECK(none->unknown.begin() == none->unknown.end());

  // Equality is over the unknown parameters only, byte for byte.
  CHECK(wire::unknown_params("XA=1 SIZE=2") == wire::unknown_params("BODY=7BIT XA=1"));
  CHECK(wire::unknown_params("XA=1") != wire::unknown_params("xa=1"));
  CHECK(wire::unknown_params("XA=1") != wire::unknown_params("XA=1 XB"));
  // Malformed application text stops iterating at the malformation.
  CHECK(wire::unknown_params("XA  XB").size() == 1);
}

TEST_CASE("replies for parameter errors follow the RFCs", "[wire][params]") {
  // RFC 1870 §6.1: a size above the server's fixed limit is 552 (5.3.4).
  CHECK(smtpwire::reply_for(errc::param_number_overflow).code == 552);
  CHECK(smtpwire::reply_for(errc::param_number_overflow).enhanced == "5.3.4");
  // RFC 5321 §4.1.1.11: unrecognised or unimplementable parameters are 555.
  CHECK(smtpwire::reply_for(errc::param_unknown).code == 555);
  CHECK(smtpwire::reply_for(errc::param_not_allowed).code == 555);
  CHECK(smtpwire::reply_for(errc::param_unknown).enhanced == "5.5.4");
  // Syntax and value errors are 501 (RFC 5321 §4.2.2), 5.5.4 (RFC 3463).
  for (errc e : {errc::param_syntax, errc::param_duplicate, errc::param_value_invalid,
                 errc::notify_invalid, errc::xtext_invalid, errc::param_too_many}) {
    INFO(smtpwire::to_string(e));
    CHECK(smtpwire::reply_for(e).code == 501);
    CHECK(smtpwire::reply_for(e).enhanced == "5.5.4");
  }
  // RFC 4954 §4: undecodable base64 is 501 5.5.2.
  CHECK(smtpwire::reply_for(errc::base64_invalid).code == 501);
  CHECK(smtpwire::reply_for(errc::base64_invalid).enhanced == "5.5.2");
}

TEST_CASE("writers: table of values and their text", "[wire][params]") {
  struct row {
    wire::mail_params m;
    const char* text;
  };
  std::vector<row> rows;
  {
    wire::mail_params m;
    rows.push_back({m, ""});
  }
  {
    wire::mail_params m;
    m.size = 18446744073709551615ull;
    m.body = wire::body_type::binary_mime;
    rows.push_back({m, " SIZE=18446744073709551615 BODY=BINARYMIME"});
  }
  {
    wire::mail_params m;
    m.smtputf8 = true;
    m.requiretls = true;
    m.ret = wire::ret_type::hdrs;
    m.envid = "QQ314159";
    m.auth = "e+3Dmc2@example.com";
    rows.push_back({m, " SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=e+3Dmc2@example.com REQUIRETLS"});
  }
  {
    wire::mail_params m;
    m.mt_priority = -9;
    m.by = wire::deliver_by{-999999999, wire::by_mode::notify, true};
    m.unknown = wire::unknown_params("XA=1 SIZE=9 XB");
    rows.push_back({m, " MT-PRIORITY=-9 BY=-999999999;NT XA=1 XB"});
  }
  {
    wire::mail_params m;
    m.by = wire::deliver_by{999999999, wire::by_mode::return_message, false};
    m.body = wire::body_type::seven_bit;
    rows.push_back({m, " BODY=7BIT BY=999999999;R"});
  }
  {
    wire::mail_params m;
    m.holdfor = 999999999;
    m.unknown = wire::unknown_params("HOLDUNTIL=2030-01-01T00:00:00Z XA");  // known: skipped
    rows.push_back({m, " HOLDFOR=999999999 XA"});
  }
  {
    wire::mail_params m;
    m.holduntil = "2009-10-12T12:00:00-05:00";  // RFC 4865 §3's style of example
    m.by = wire::deliver_by{60, wire::by_mode::notify, false};
    rows.push_back({m, " BY=60;N HOLDUNTIL=2009-10-12T12:00:00-05:00"});
  }
  for (const auto& r : rows) {
    std::string out = "MAIL FROM:<a@b.example>";
    REQUIRE(wire::write_mail_params(out, r.m) == errc::ok);
    CHECK(out == std::string("MAIL FROM:<a@b.example>") + r.text);
    std::string w;
    REQUIRE(wire::write_mail_params(w, r.m) == errc::ok);
    auto back = wire::parse_mail_params(after_sp(w));
    REQUIRE(back);
    CHECK(*back == r.m);
  }
  wire::rcpt_params rp;
  rp.notify = wire::notify_delay | wire::notify_success;
  rp.orcpt = wire::orcpt_param{"rfc822", "Bob@Example.COM"};
  std::string out;
  REQUIRE(wire::write_rcpt_params(out, rp) == errc::ok);
  CHECK(out == " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob@Example.COM");
  rp = {};
  rp.notify = wire::notify_never;
  out.clear();
  REQUIRE(wire::write_rcpt_params(out, rp) == errc::ok);
  CHECK(out == " NOTIFY=NEVER");
  // RFC 7293 §3 example: RRVS=2014-04-03T23:01:00Z, with and without an action.
  rp = {};
  rp.rrvs = wire::rrvs_param{"2014-04-03T23:01:00Z", 0};
  out.clear();
  REQUIRE(wire::write_rcpt_params(out, rp) == errc::ok);
  CHECK(out == " RRVS=2014-04-03T23:01:00Z");
  rp.rrvs->action = 'C';
  rp.notify = wire::notify_failure;
  out.clear();
  REQUIRE(wire::write_rcpt_params(out, rp) == errc::ok);
  CHECK(out == " NOTIFY=FAILURE RRVS=2014-04-03T23:01:00Z;C");
  auto back = wire::parse_rcpt_params(after_sp(out));
  REQUIRE(back);
  CHECK(*back == rp);
}

TEST_CASE("writers refuse invalid values and append nothing", "[wire][params]") {
  const auto mail_err = [](const wire::mail_params& m, wire::param_options o = {}) {
    std::string out = "keep";
    const errc e = wire::write_mail_params(out, m, o);
    CHECK(out == "keep");
    return e;
  };
  const auto rcpt_err = [](const wire::rcpt_params& r, wire::param_options o = {}) {
    std::string out = "keep";
    const errc e = wire::write_rcpt_params(out, r, o);
    CHECK(out == "keep");
    return e;
  };
  wire::mail_params m;
  m.envid = "a+2b";
  CHECK(mail_err(m) == errc::xtext_invalid);
  m.envid = "a b";
  CHECK(mail_err(m) == errc::xtext_invalid);
  m.envid = "";
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.envid = std::string_view(
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
      "AAAAAAAAAAAAAAAAAAAAAAAAA");  // 101 octets
  CHECK(mail_err(m) == errc::param_value_invalid);
  m = {};
  m.auth = "";
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.auth = "e=mc2@example.com";
  CHECK(mail_err(m) == errc::xtext_invalid);
  m = {};
  m.mt_priority = 10;
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.mt_priority = -10;
  CHECK(mail_err(m) == errc::param_value_invalid);
  m = {};
  m.by = wire::deliver_by{1000000000, wire::by_mode::notify, false};
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.by = wire::deliver_by{1, static_cast<wire::by_mode>(7), false};
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.by = wire::deliver_by{0, wire::by_mode::return_message, false};  // RFC 2852 §4
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.by = wire::deliver_by{-5, wire::by_mode::return_message, true};
  CHECK(mail_err(m) == errc::param_value_invalid);
  m = {};
  m.body = static_cast<wire::body_type>(9);
  CHECK(mail_err(m) == errc::param_value_invalid);
  m = {};
  m.size = 1;  // written first, then the unknown part fails: nothing may remain
  m.unknown = wire::unknown_params("XA XB xa");
  CHECK(mail_err(m) == errc::param_duplicate);
  m.unknown = wire::unknown_params("XA  XB");
  CHECK(mail_err(m) == errc::param_syntax);
  m.unknown = wire::unknown_params("XA=\xc3\xa9");
  CHECK(mail_err(m) == errc::param_syntax);
  wire::param_options utf8;
  utf8.utf8_values = true;
  std::string ok;
  CHECK(wire::write_mail_params(ok, m, utf8) == errc::ok);
  CHECK(ok == " SIZE=1 XA=\xc3\xa9");
  m.unknown = wire::unknown_params("XA");
  wire::param_options strict;
  strict.allow_unknown = false;
  CHECK(mail_err(m, strict) == errc::param_unknown);
  wire::param_options two;
  two.max_params = 1;
  CHECK(mail_err(m, two) == errc::param_too_many);

  wire::rcpt_params r;
  r.notify = wire::notify_never | wire::notify_success;
  CHECK(rcpt_err(r) == errc::notify_invalid);
  r.notify = 0x10;
  CHECK(rcpt_err(r) == errc::notify_invalid);
  r.notify = wire::notify_failure | 0x20;
  CHECK(rcpt_err(r) == errc::notify_invalid);
  r = {};
  r.orcpt = wire::orcpt_param{"rfc.822", "a@b"};
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.orcpt = wire::orcpt_param{"", "a@b"};
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.orcpt = wire::orcpt_param{"rfc822", ""};
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.orcpt = wire::orcpt_param{"rfc822", "a=b"};
  CHECK(rcpt_err(r) == errc::xtext_invalid);
  r.orcpt = wire::orcpt_param{"rfc822", std::string_view("x\r\nQUIT")};
  CHECK(rcpt_err(r) == errc::xtext_invalid);
  r = {};
  r.rrvs = wire::rrvs_param{"2014-04-03T23:01:00Z", 'c'};  // only upper case is stored
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.rrvs = wire::rrvs_param{"2014-04-03T23:01:00Z", 'X'};
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.rrvs = wire::rrvs_param{"2014-04-31T23:01:00Z", 'R'};
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.rrvs = wire::rrvs_param{"", 0};
  CHECK(rcpt_err(r) == errc::param_value_invalid);
  r.rrvs = wire::rrvs_param{std::string_view("2014-04-03T23:01:00Z\r\nQUIT"), 0};
  CHECK(rcpt_err(r) == errc::param_value_invalid);

  m = {};
  m.holdfor = 1000000000;  // 10 digits: RFC 4865 allows 1*9DIGIT
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.holdfor = 10;
  m.holduntil = "2030-01-01T00:00:00Z";
  CHECK(mail_err(m) == errc::param_conflict);
  m.holdfor.reset();
  m.holduntil = "2030-01-01 00:00:00Z";
  CHECK(mail_err(m) == errc::param_value_invalid);
  m.holduntil = "2030-01-01T00:00:00";
  CHECK(mail_err(m) == errc::param_value_invalid);
}

TEST_CASE("is_date_time: RFC 3339 §5.6 and §5.8 examples and calendar edges", "[wire][params]") {
  // RFC 3339 §5.8 examples.
  for (const char* ok :
       {"1985-04-12T23:20:50.52Z", "1996-12-19T16:39:57-08:00", "1990-12-31T23:59:60Z",
        "1990-12-31T15:59:60-08:00", "1937-01-01T12:00:27.87+00:20"}) {
    INFO(ok);
    CHECK(wire::is_date_time(ok));
  }
  for (const char* ok : {"2024-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "0000-01-01t00:00:00z",
                         "9999-12-31T23:59:59.999999999999+23:59", "2016-12-31T23:59:60Z",
                         "2017-01-01T05:29:60+05:30", "2030-06-30T23:59:59-00:00"}) {
    INFO(ok);
    CHECK(wire::is_date_time(ok));
  }
  for (const char* bad : {
           "",                           // empty
           "2023-02-29T00:00:00Z",       // not a leap year
           "1900-02-29T00:00:00Z",       // century, not a leap year
           "2024-02-30T00:00:00Z",       // February 30
           "2024-04-31T00:00:00Z",       // April has 30 days
           "2024-00-10T00:00:00Z",       // month 0
           "2024-13-10T00:00:00Z",       // month 13
           "2024-01-00T00:00:00Z",       // day 0
           "2024-01-10T24:00:00Z",       // hour 24
           "2024-01-10T23:60:00Z",       // minute 60
           "2024-01-10T23:59:61Z",       // second 61
           "2024-01-10T12:00:60Z",       // leap second not at the end of a UTC day
           "2024-01-10T23:59:60+01:00",  // 22:59:60 UTC
           "2024-01-10T00:00:00",        // no offset
           "2024-01-10T00:00:00+0100",   // offset without colon
           "2024-01-10T00:00:00+24:00",  // offset hour 24
           "2024-01-10T00:00:00+01:60",  // offset minute 60
           "2024-01-10 00:00:00Z",       // SP instead of T (RFC 3339 NOTE, not the ABNF)
           "2024-01-10T00:00:00.Z",      // empty fraction
           "2024-01-10T00:00:00,5Z",     // comma fraction
           "2024-1-10T00:00:00Z",        // one-digit month
           "24-01-10T00:00:00Z",         // two-digit year
           "2024-01-10T00:00:00ZZ",      // trailing octet
           "2024-01-10T00:00:00+01:00:00",
           "+2024-01-10T00:00:00Z",
           "2024-01-10T00:00:00\xc2\xa0Z",
       }) {
    INFO(bad);
    CHECK_FALSE(wire::is_date_time(bad));
  }
}

namespace {

/// Seeded random values for the round-trip generator; strings live in `store`.
struct generator {
  std::mt19937_64 rng;
  std::deque<std::string> store;

  std::uint64_t pick(std::uint64_t n) { return rng() % n; }
  bool coin() { return rng() & 1; }

  std::string_view keep(std::string s) {
    store.push_back(std::move(s));
    return store.back();
  }
  std::string_view xtext(std::size_t min, std::size_t max) {
    std::string raw;
    const std::size_t n = min + pick(max - min + 1);
    for (std::size_t i = 0; i < n; ++i)
      raw.push_back(static_cast<char>(pick(256)));
    std::string enc;
    wire::xtext_encode(enc, raw);
    // Trim to max octets at an escape boundary so the value keeps its limit.
    while (enc.size() > max) {
      enc.pop_back();
      if (enc.size() >= 2 && enc[enc.size() - 2] == '+') enc.resize(enc.size() - 2);
      if (!enc.empty() && enc.back() == '+') enc.pop_back();
    }
    if (enc.empty()) enc = "x";
    return keep(enc);
  }
  /// A valid RFC 3339 date-time: every calendar day, both letter cases,
  /// fractions, numeric offsets, and leap seconds where they may fall.
  std::string_view date_time() {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int year = static_cast<int>(pick(10000));
    const int month = 1 + static_cast<int>(pick(12));
    const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    const int day = 1 + static_cast<int>(pick(days[month - 1] + (month == 2 && leap ? 1 : 0)));
    int hour = static_cast<int>(pick(24)), minute = static_cast<int>(pick(60));
    int second = static_cast<int>(pick(60));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d%c", year, month, day, coin() ? 'T' : 't');
    std::string s = buf;
    std::string offset;
    int east = 0;
    switch (pick(3)) {
      case 0:
        offset = "Z";
        break;
      case 1:
        offset = "z";
        break;
      default: {
        const int oh = static_cast<int>(pick(24)), om = static_cast<int>(pick(60));
        const bool neg = coin();
        east = (neg ? -1 : 1) * (oh * 60 + om);
        std::snprintf(buf, sizeof buf, "%c%02d:%02d", neg ? '-' : '+', oh, om);
        offset = buf;
      }
    }
    if (pick(8) == 0) {  // a leap second: 23:59:60 UTC in local time
      const int local = ((1439 + east) % 1440 + 1440) % 1440;
      hour = local / 60;
      minute = local % 60;
      second = 60;
    }
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", hour, minute, second);
    s += buf;
    if (coin()) {
      s.push_back('.');
      const std::size_t n = 1 + pick(9);
      for (std::size_t i = 0; i < n; ++i)
        s.push_back(static_cast<char>('0' + pick(10)));
    }
    s += offset;
    REQUIRE(wire::is_date_time(s));
    return keep(s);
  }

  std::string_view unknown_text(bool rcpt) {
    static const char kchars[] = "ABCXYZabcxyz0189-";
    std::string s;
    const std::size_t n = pick(4);
    std::vector<std::string> used;
    for (std::size_t i = 0; i < n; ++i) {
      std::string kw(1, "XYZQW"[pick(5)]);
      const std::size_t len = pick(8);
      for (std::size_t j = 0; j < len; ++j)
        kw.push_back(kchars[pick(sizeof kchars - 1)]);
      bool dup = wire::classify_param_keyword(kw) != wire::param_keyword::unknown;
      for (const auto& u : used)
        dup = dup || smtpwire::detail::iequals(u, kw);
      if (dup) continue;
      used.push_back(kw);
      if (!s.empty()) s.push_back(' ');
      s += kw;
      if (coin()) {
        s.push_back('=');
        const std::size_t vlen = 1 + pick(12);
        for (std::size_t j = 0; j < vlen; ++j) {
          char c;
          do
            c = static_cast<char>(33 + pick(94));
          while (c == '=');
          s.push_back(c);
        }
      }
    }
    // Known keywords inside the unknown text are skipped by iteration and
    // writers; include some to check that.
    if (coin()) s = (s.empty() ? std::string() : s + " ") + (rcpt ? "NOTIFY=NEVER" : "SIZE=77");
    return keep(s);
  }

  wire::mail_params mail() {
    wire::mail_params m;
    if (coin()) m.size = coin() ? rng() : pick(100000);
    if (coin()) m.body = static_cast<wire::body_type>(pick(3));
    m.smtputf8 = coin();
    if (coin()) m.ret = static_cast<wire::ret_type>(pick(2));
    if (coin()) m.envid = xtext(1, 100);
    if (coin()) m.auth = coin() ? std::string_view("<>") : xtext(1, 80);
    m.requiretls = coin();
    if (coin()) m.mt_priority = static_cast<int>(pick(19)) - 9;
    if (coin()) {
      wire::deliver_by b;
      b.time = static_cast<std::int64_t>(pick(1999999999)) - 999999999;
      b.mode = coin() ? wire::by_mode::notify : wire::by_mode::return_message;
      if (b.mode == wire::by_mode::return_message && b.time <= 0) b.time = 1 - b.time;
      b.trace = coin();
      m.by = b;
    }
    switch (pick(3)) {
      case 0:
        m.holdfor = static_cast<std::uint32_t>(coin() ? pick(1000000000) : pick(100));
        break;
      case 1:
        m.holduntil = date_time();
        break;
      default:
        break;
    }
    m.unknown = wire::unknown_params(unknown_text(false));
    return m;
  }
  wire::rcpt_params rcpt() {
    wire::rcpt_params r;
    if (coin()) {
      if (pick(4) == 0) {
        r.notify = wire::notify_never;
      } else {
        do
          r.notify = static_cast<std::uint8_t>(pick(8) << 1);
        while (r.notify == 0);
      }
    }
    if (coin()) r.orcpt = wire::orcpt_param{coin() ? "rfc822" : "utf-8", xtext(1, 200)};
    if (coin()) r.rrvs = wire::rrvs_param{date_time(), "\0CR"[pick(3)]};
    r.unknown = wire::unknown_params(unknown_text(true));
    return r;
  }
};

}  // namespace

TEST_CASE("params round trip: thousands of seeded random values", "[wire][params]") {
  generator g{std::mt19937_64(0x9a7a5eed), {}};
  for (int i = 0; i < 4000; ++i) {
    const wire::mail_params m = g.mail();
    std::string w;
    REQUIRE(wire::write_mail_params(w, m) == errc::ok);
    INFO(esc(w));
    auto back = wire::parse_mail_params(after_sp(w));
    REQUIRE(back);
    REQUIRE(*back == m);

    const wire::rcpt_params r = g.rcpt();
    std::string wr;
    REQUIRE(wire::write_rcpt_params(wr, r) == errc::ok);
    INFO(esc(wr));
    auto rback = wire::parse_rcpt_params(after_sp(wr));
    REQUIRE(rback);
    REQUIRE(*rback == r);
    if (i % 8 == 0) g.store.clear();
  }
}

TEST_CASE("params: random mutations never crash and round trip when valid", "[wire][params]") {
  const std::vector<std::string> seeds = {
      "SIZE=1024 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<> REQUIRETLS MT-PRIORITY=-3 "
      "BY=12;RT XFOO=bar",
      "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+20b@c.example XR=1",
      "HOLDUNTIL=2030-12-31T23:59:60.5Z SIZE=1", "RRVS=2014-04-03T23:01:00+05:30;R NOTIFY=NEVER"};
  std::mt19937 rng(1234);
  const std::string alphabet = "=; ,+-09AZaz~!\x7f\x80\xc3\xa9\r\n\t";
  int valid = 0;
  for (int i = 0; i < 20000; ++i) {
    const bool rcpt = i & 1;
    std::string s = seeds[(rcpt ? 1 : 0) + ((i & 4) ? 2 : 0)];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const std::size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s.erase(at, 1 + rng() % 4);
          break;
        default:
          s.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    wire::param_options o;
    o.utf8_values = (i & 2) != 0;
    smtpwire::test::guarded_input gi(s);
    INFO(esc(s));
    if (run(gi.view(), rcpt, o).rfind("error ", 0) != 0) ++valid;
  }
  CHECK(valid > 1000);  // the mutations keep a fair share of valid inputs
}
