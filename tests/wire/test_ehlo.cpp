#include <smtpwire/wire/ehlo.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace wire = smtpwire::wire;
namespace sasl = smtpwire::wire::sasl;
using wire::capability;

namespace {

using smtpwire::test::escape_hex;

// The reply lines of an EHLO reply, without "250-"/"250 " and CRLF; views
// into `reply`. A local reader on purpose: wire/reply.hpp is tested on its own.
std::vector<std::string_view> split_reply(std::string_view reply) {
  std::vector<std::string_view> lines;
  while (!reply.empty()) {
    const std::size_t crlf = reply.find("\r\n");
    REQUIRE(crlf != std::string_view::npos);
    const std::string_view line = reply.substr(0, crlf);
    REQUIRE(line.size() >= 4);
    REQUIRE(line.substr(0, 3) == "250");
    const bool last = crlf + 2 == reply.size();
    REQUIRE(line[3] == (last ? ' ' : '-'));
    lines.push_back(line.substr(4));
    reply.remove_prefix(crlf + 2);
  }
  return lines;
}

std::string describe(const wire::capabilities& c, const wire::ehlo_diagnostics& d) {
  std::string s = "domain=" + escape_hex(c.domain) + "\n";
  if (!c.greeting.empty()) s += "greeting=" + escape_hex(c.greeting) + "\n";
  for (std::size_t i = 0; i < wire::capability_count; ++i) {
    const auto k = static_cast<capability>(i);
    if (!c.has(k)) continue;
    s += "cap " + std::string(wire::to_string(k));
    if (k == capability::size && c.size != 0) s += " " + std::to_string(c.size);
    if (k == capability::deliverby && c.deliverby != 0) s += " " + std::to_string(c.deliverby);
    if (k == capability::mt_priority && !c.mt_priority.empty())
      s += " " + escape_hex(c.mt_priority);
    if (k == capability::limits) {
      if (c.limits.rcptmax) s += " RCPTMAX=" + std::to_string(c.limits.rcptmax);
      if (c.limits.mailmax) s += " MAILMAX=" + std::to_string(c.limits.mailmax);
      if (c.limits.rcptdomainmax) s += " RCPTDOMAINMAX=" + std::to_string(c.limits.rcptdomainmax);
    }
    if (k == capability::xclient || k == capability::xforward)
      for (std::size_t a = 0; a < wire::xattr_count; ++a)
        if ((k == capability::xclient ? c.xclient : c.xforward) &
            wire::xattr_bit(static_cast<wire::xattr>(a)))
          s += " " + std::string(wire::to_string(static_cast<wire::xattr>(a)));
    if (k == capability::futurerelease && !c.futurerelease_max_datetime.empty())
      s += " " + std::to_string(c.futurerelease_max_interval) + " " +
           escape_hex(c.futurerelease_max_datetime);
    if (k == capability::auth) {
      for (std::size_t m = 0; m < sasl::mechanism_count; ++m)
        if (c.mechanisms.has(static_cast<sasl::mechanism>(m)))
          s += " " + std::string(sasl::to_string(static_cast<sasl::mechanism>(m)));
      for (std::size_t m = 0; m < c.other_mechanism_count; ++m)
        s += " other:" + escape_hex(c.other_mechanisms[m]);
    }
    s += "\n";
  }
  for (std::size_t i = 0; i < c.extension_count; ++i) {
    s += "ext " + escape_hex(c.extensions[i].keyword);
    if (!c.extensions[i].params.empty()) s += " [" + escape_hex(c.extensions[i].params) + "]";
    s += "\n";
  }
  if (d.greeting_malformed) s += "greeting_malformed\n";
  if (d.malformed != 0) {
    s += "malformed=" + std::to_string(d.malformed);
    for (std::size_t i = 0; i < d.malformed && i < d.max_kept; ++i)
      s += " |" + escape_hex(d.malformed_lines[i]) + "|";
    s += "\n";
  }
  if (d.duplicates != 0) s += "duplicates=" + std::to_string(d.duplicates) + "\n";
  if (d.extensions_dropped != 0)
    s += "extensions_dropped=" + std::to_string(d.extensions_dropped) + "\n";
  if (d.mechanisms_dropped != 0)
    s += "mechanisms_dropped=" + std::to_string(d.mechanisms_dropped) + "\n";
  s.pop_back();
  return s;
}

// Writes `c`, checks the reply's shape, parses it back: equal value, clean
// diagnostics.
void check_round_trip(const wire::capabilities& c, const wire::ehlo_write_options& wo = {}) {
  std::string out;
  INFO("domain=" << escape_hex(c.domain) << " greeting=" << escape_hex(c.greeting)
                 << " known=" << c.known << " mt=" << escape_hex(c.mt_priority)
                 << " exts=" << c.extension_count << " mechs=" << c.other_mechanism_count);
  std::string lists;
  for (std::size_t i = 0; i < c.extension_count && i < c.max_extensions; ++i)
    lists += " ext " + escape_hex(c.extensions[i].keyword) + " [" +
             escape_hex(c.extensions[i].params) + "]";
  for (std::size_t i = 0; i < c.other_mechanism_count && i < c.max_mechanisms; ++i)
    lists += " mech " + escape_hex(c.other_mechanisms[i]);
  INFO(lists);
  REQUIRE(wire::write_ehlo(out, c, wo) == errc::ok);
  const auto lines = split_reply(out);
  wire::ehlo_diagnostics d;
  const auto back = wire::parse_ehlo(lines, {}, &d);
  REQUIRE(back);
  INFO(escape_hex(out));
  CHECK(*back == c);
  CHECK(d.clean());
}

// Parses the lines three ways (range, pointer + count, one by one) and
// requires the same outcome; returns the log.
std::string run(const std::vector<std::string_view>& lines, const wire::ehlo_options& o) {
  wire::ehlo_diagnostics d1, d2;
  const auto r1 = wire::parse_ehlo(lines, o, &d1);
  const auto r2 = wire::parse_ehlo(lines.data(), lines.size(), o, &d2);
  wire::ehlo_reader reader(o);
  errc e3 = errc::ok;
  for (auto l : lines)
    if (e3 == errc::ok) e3 = reader.add_line(l);
  REQUIRE(r1.has_value() == r2.has_value());
  if (!r1) {
    CHECK(r1.error() == r2.error());
    CHECK(r1.error() == e3);
    CHECK(reader.add_line("PIPELINING") == e3);  // sticky
    return "error=" + std::string(smtpwire::to_string(r1.error()));
  }
  REQUIRE(e3 == errc::ok);
  CHECK(*r1 == *r2);
  CHECK(*r1 == reader.value());
  const std::string log = describe(*r1, d1);
  CHECK(describe(*r2, d2) == log);
  CHECK(describe(reader.value(), reader.diagnostics()) == log);
  // FUTURERELEASE read without its mandatory parameters is offered but has
  // nothing to write back: the writer refuses it rather than send a line
  // outside RFC 4865 §3.
  const bool bare_futurerelease =
      r1->has(capability::futurerelease) && r1->futurerelease_max_datetime.empty();
  if (!r1->domain.empty() && !bare_futurerelease) {
    check_round_trip(*r1);
  } else {
    std::string out;
    CHECK(wire::write_ehlo(out, *r1) == errc::capability_value_invalid);
    CHECK(out.empty());
  }
  return log;
}

}  // namespace

TEST_CASE("ehlo vectors", "[wire][ehlo][vectors]") {
  for (const auto& v : smtpwire::test::load_vectors("ehlo.md")) {
    INFO(v.file << ":" << v.line << " " << v.name);
    wire::ehlo_options o;
    if (v.has("options")) {
      for (const auto& opt : v.lines("options")) {
        if (opt == "reject_malformed")
          o.reject_malformed = true;
        else if (opt == "trailing_whitespace")
          o.trailing_whitespace = true;
        else
          FAIL("unknown option " << opt);
      }
    }
    const std::string input = v.bytes("input");
    const auto lines = split_reply(input);
    CHECK(run(lines, o) == v.text("expect"));
    // Each line alone before an inaccessible page: no over-read.
    std::vector<std::unique_ptr<smtpwire::test::guarded_input>> guards;
    std::vector<std::string_view> guarded;
    for (auto l : lines) {
      guards.push_back(std::make_unique<smtpwire::test::guarded_input>(l));
      guarded.push_back(guards.back()->view());
    }
    CHECK(run(guarded, o) == v.text("expect"));
  }
}

TEST_CASE("ehlo: one table drives writer and reader", "[wire][ehlo]") {
  struct row {
    wire::capabilities value;
    std::string reply;
  };
  std::vector<row> rows;
  {
    wire::capabilities c;
    c.domain = "mx.example";
    rows.push_back({c, "250 mx.example\r\n"});
    c.greeting = "Hello [192.0.2.1]";
    rows.push_back({c, "250 mx.example Hello [192.0.2.1]\r\n"});
    c.set(capability::size);
    rows.push_back({c, "250-mx.example Hello [192.0.2.1]\r\n250 SIZE\r\n"});
    c.size = 10240000;
    c.set(capability::pipelining);
    c.set(capability::auth);
    c.mechanisms.add(sasl::mechanism::login);
    c.mechanisms.add(sasl::mechanism::plain);
    c.mechanisms.add(sasl::mechanism::scram_sha_256_plus);
    REQUIRE(c.add_other_mechanism("X-FOO_2"));
    c.set(capability::xclient);
    c.xclient = wire::xattr_bit(wire::xattr::name) | wire::xattr_bit(wire::xattr::addr);
    REQUIRE(c.add_extension("XCLIENT-NOT", "NAME ADDR"));
    REQUIRE(c.add_extension("x-lower"));
    rows.push_back({c,
                    "250-mx.example Hello [192.0.2.1]\r\n250-SIZE 10240000\r\n250-PIPELINING\r\n"
                    "250-AUTH PLAIN LOGIN SCRAM-SHA-256-PLUS X-FOO_2\r\n250-XCLIENT NAME ADDR\r\n"
                    "250-XCLIENT-NOT NAME ADDR\r\n250 x-lower\r\n"});
  }
  {
    // RFC 9422 §5 limits (written MAILMAX RCPTMAX RCPTDOMAINMAX, zeros left out),
    // Postfix's XFORWARD list, RRVS and FUTURERELEASE (RFC 4865 §3).
    wire::capabilities c;
    c.domain = "relay.example";
    c.set(capability::limits);
    c.limits.rcptmax = 100;
    c.limits.rcptdomainmax = 999999;
    c.set(capability::xforward);
    c.xforward = wire::all_xattrs(wire::xcommand::xforward);
    c.set(capability::rrvs);
    c.set(capability::futurerelease);
    c.futurerelease_max_interval = 604800;
    c.futurerelease_max_datetime = "2030-12-31T23:59:59Z";
    rows.push_back({c,
                    "250-relay.example\r\n250-LIMITS RCPTMAX=100 RCPTDOMAINMAX=999999\r\n"
                    "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n250-RRVS\r\n"
                    "250 FUTURERELEASE 604800 2030-12-31T23:59:59Z\r\n"});
    c.limits = {};
    c.limits.mailmax = 1;
    c.xforward = 0;
    c.futurerelease_max_interval = 0;
    rows.push_back({c,
                    "250-relay.example\r\n250-LIMITS MAILMAX=1\r\n250-XFORWARD\r\n250-RRVS\r\n"
                    "250 FUTURERELEASE 0 2030-12-31T23:59:59Z\r\n"});
  }
  {
    wire::capabilities c;
    c.domain = "[IPv6:2001:db8::1]";
    for (std::size_t i = 0; i < wire::capability_count; ++i)
      c.set(static_cast<capability>(i));
    c.size = 18446744073709551615u;
    c.deliverby = 999999999;
    c.mt_priority = "STANAG4406";
    c.mechanisms.add(sasl::mechanism::xoauth2);
    c.limits.mailmax = 999999;
    c.xclient = wire::all_xattrs(wire::xcommand::xclient);
    c.futurerelease_max_interval = 999999999;
    c.futurerelease_max_datetime = "9999-12-31t23:59:60.999z";
    rows.push_back({c,
                    "250-[IPv6:2001:db8::1]\r\n250-SIZE 18446744073709551615\r\n250-8BITMIME\r\n"
                    "250-PIPELINING\r\n250-STARTTLS\r\n250-AUTH XOAUTH2\r\n"
                    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
                    "250-BINARYMIME\r\n250-DSN\r\n250-REQUIRETLS\r\n250-DELIVERBY 999999999\r\n"
                    "250-MT-PRIORITY STANAG4406\r\n250-VRFY\r\n250-ETRN\r\n250-HELP\r\n"
                    "250-LIMITS MAILMAX=999999\r\n"
                    "250-XCLIENT NAME REVERSE_NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n"
                    "250-XFORWARD\r\n250-RRVS\r\n"
                    "250 FUTURERELEASE 999999999 9999-12-31t23:59:60.999z\r\n"});
  }
  for (const auto& r : rows) {
    INFO(escape_hex(r.reply));
    std::string out = "prefix";
    REQUIRE(wire::write_ehlo(out, r.value) == errc::ok);
    CHECK(out == "prefix" + r.reply);
    wire::ehlo_diagnostics d;
    const auto back = wire::parse_ehlo(split_reply(r.reply), {}, &d);
    REQUIRE(back);
    CHECK(*back == r.value);
    CHECK(d.clean());
  }
}

TEST_CASE("legacy AUTH= line: written on request, merged when read", "[wire][ehlo]") {
  wire::capabilities c;
  c.domain = "mail.example.org";
  c.set(capability::auth);
  c.mechanisms.add(sasl::mechanism::plain);
  c.mechanisms.add(sasl::mechanism::login);
  REQUIRE(c.add_other_mechanism("X-OTHER"));
  wire::ehlo_write_options wo;
  wo.legacy_auth_line = true;
  std::string out;
  REQUIRE(wire::write_ehlo(out, c, wo) == errc::ok);
  CHECK(out ==
        "250-mail.example.org\r\n250-AUTH PLAIN LOGIN X-OTHER\r\n250 AUTH=PLAIN LOGIN X-OTHER\r\n");
  check_round_trip(c, wo);
  // No mechanism: no legacy line (it would be an empty list).
  wire::capabilities bare;
  bare.domain = "a";
  bare.set(capability::auth);
  out.clear();
  REQUIRE(wire::write_ehlo(out, bare, wo) == errc::ok);
  CHECK(out == "250-a\r\n250 AUTH\r\n");
}

TEST_CASE("writer refuses values that would not parse back", "[wire][ehlo]") {
  const auto refuses = [](const wire::capabilities& c) {
    std::string out = "keep";
    CHECK(wire::write_ehlo(out, c) == errc::capability_value_invalid);
    CHECK(out == "keep");
  };
  wire::capabilities base;
  base.domain = "mx.example";
  {
    auto c = base;
    c.domain = "";
    refuses(c);
    c.domain = "mx example";
    refuses(c);
    c.domain = "mx\x01";
    refuses(c);
  }
  for (std::string_view g : {std::string_view("a\r\n250 STARTTLS"), std::string_view("a\nb"),
                             std::string_view("a\0b", 3)}) {
    auto c = base;
    c.greeting = g;
    refuses(c);
  }
  {
    auto c = base;
    c.size = 5;  // without SIZE set
    refuses(c);
    c = base;
    c.set(capability::deliverby);
    c.deliverby = 1000000000;  // 10 digits
    refuses(c);
    c = base;
    c.mt_priority = "MIXER";  // without MT-PRIORITY set
    refuses(c);
    c.set(capability::mt_priority);
    c.mt_priority = "MIX ER";
    refuses(c);
    c = base;
    c.mechanisms.add(sasl::mechanism::plain);  // without AUTH set
    refuses(c);
    c = base;
    c.known = 1u << wire::capability_count;  // a bit with no capability
    refuses(c);
    c = base;
    c.limits.rcptmax = 5;  // without LIMITS set
    refuses(c);
    c.set(capability::limits);
    c.limits.rcptmax = 1000000;  // RFC 9422: 1*6DIGIT
    refuses(c);
    c = base;
    c.xclient = wire::xattr_bit(wire::xattr::name);  // without XCLIENT set
    refuses(c);
    c.set(capability::xclient);
    c.xclient = wire::xattr_bit(wire::xattr::ident);  // an XFORWARD-only name
    refuses(c);
    c.xclient = 1u << 12;  // no attribute
    refuses(c);
    c = base;
    c.set(capability::xforward);
    c.xforward = wire::xattr_bit(wire::xattr::login);  // an XCLIENT-only name
    refuses(c);
    c = base;
    c.futurerelease_max_interval = 60;  // without FUTURERELEASE set
    refuses(c);
    c = base;
    c.futurerelease_max_datetime = "2030-01-01T00:00:00Z";
    refuses(c);
    c.set(capability::futurerelease);
    c.futurerelease_max_datetime = "";  // the parameters are mandatory
    refuses(c);
    c.futurerelease_max_datetime = "2030-02-30T00:00:00Z";
    refuses(c);
    c.futurerelease_max_datetime = "2030-01-01T00:00:00Z\r\n250 STARTTLS";
    refuses(c);
    c.futurerelease_max_datetime = "2030-01-01T00:00:00Z";
    c.futurerelease_max_interval = 1000000000;
    refuses(c);
  }
  for (std::string_view m : {"PLAIN", "plain", "BAD NAME", "", "X=Y", "A123456789012345678901"}) {
    auto c = base;
    c.set(capability::auth);
    REQUIRE(c.add_other_mechanism(m));
    refuses(c);
  }
  {
    auto c = base;
    c.set(capability::auth);
    REQUIRE(c.add_other_mechanism("X-A"));
    REQUIRE(c.add_other_mechanism("x-a"));  // the reader would merge them
    refuses(c);
    c.other_mechanism_count = wire::capabilities::max_mechanisms + 1;
    refuses(c);
  }
  const std::pair<std::string_view, std::string_view> bad_ext[] = {
      {"SIZE", ""},      {"xclient", "NAME"}, {"LIMITS", "RCPTMAX=1"},
      {"size", ""},      {"-X", ""},          {"X_Y", ""},
      {"", ""},          {"X", " a"},         {"X", "a "},
      {"X", "a  b"},     {"X", "a\tb"},       {"AUTH=X", ""},
      {"X", "\xc3\xa9"}, {"X\r\nY", ""},      {"X", "a\r\n250 STARTTLS"}};
  for (const auto& e : bad_ext) {
    INFO(escape_hex(e.first) << " / " << escape_hex(e.second));
    auto c = base;
    REQUIRE(c.add_extension(e.first, e.second));
    refuses(c);
  }
  {
    auto c = base;
    c.extension_count = wire::capabilities::max_extensions + 1;
    refuses(c);
  }
}

TEST_CASE("capacities: hostile replies are counted, never stored past the limit", "[wire][ehlo]") {
  std::deque<std::string> store;
  std::vector<std::string_view> lines{"mx.example"};
  for (int i = 0; i < 1000; ++i) {
    store.push_back("X-UNKNOWN-" + std::to_string(i) + " p" + std::to_string(i));
    lines.push_back(store.back());
  }
  std::string auth = "AUTH PLAIN";
  for (int i = 0; i < 1000; ++i)
    auth += " X-M" + std::to_string(i);
  lines.push_back(auth);
  lines.push_back("AUTH=LOGIN X-M0 x-m1");  // merged, duplicates of kept names ignored
  lines.push_back("STARTTLS");
  wire::ehlo_diagnostics d;
  const auto r = wire::parse_ehlo(lines, {}, &d);
  REQUIRE(r);
  CHECK(r->extension_count == wire::capabilities::max_extensions);
  CHECK(d.extensions_dropped == 1000 - wire::capabilities::max_extensions);
  CHECK(r->extensions[0].keyword == "X-UNKNOWN-0");
  CHECK(r->extensions[0].params == "p0");
  CHECK(r->other_mechanism_count == wire::capabilities::max_mechanisms);
  // The names after the capacity were dropped; re-announcing a kept one is no drop.
  CHECK(d.mechanisms_dropped == 1000 - wire::capabilities::max_mechanisms);
  CHECK(r->offers(sasl::mechanism::plain));
  CHECK(r->offers(sasl::mechanism::login));
  CHECK(r->has(capability::starttls));
  CHECK(d.malformed == 0);
  check_round_trip(*r);

  // 10,000 malformed lines: counted, the first few kept for logging.
  wire::ehlo_reader reader;
  REQUIRE(reader.add_line("mx.example") == errc::ok);
  for (int i = 0; i < 10000; ++i)
    REQUIRE(reader.add_line("BAD_LINE") == errc::ok);
  CHECK(reader.diagnostics().malformed == 10000);
  CHECK(reader.diagnostics().malformed_lines[3] == "BAD_LINE");
  CHECK(reader.line_count() == 10001);
}

TEST_CASE("reader: strict mode is sticky; reset forgets everything", "[wire][ehlo]") {
  wire::ehlo_options o;
  o.reject_malformed = true;
  wire::ehlo_reader r(o);
  CHECK(r.add_line("mx.example") == errc::ok);
  CHECK(r.add_line("PIPELINING") == errc::ok);
  CHECK(r.add_line("SIZE x") == errc::capability_syntax);
  CHECK(r.add_line("STARTTLS") == errc::capability_syntax);
  CHECK(r.error() == errc::capability_syntax);
  CHECK_FALSE(r.value().has(capability::starttls));
  r.reset();
  CHECK(r.error() == errc::ok);
  CHECK(r.line_count() == 0);
  CHECK(r.value() == wire::capabilities{});
  CHECK(r.add_line("after.tls") == errc::ok);
  CHECK(r.add_line("AUTH PLAIN") == errc::ok);
  CHECK(r.value().offers(sasl::mechanism::plain));
  CHECK_FALSE(r.value().has(capability::pipelining));

  const std::vector<std::string_view> none;
  CHECK(wire::parse_ehlo(none).error() == errc::capability_syntax);
  CHECK(wire::parse_ehlo(none.data(), 0).error() == errc::capability_syntax);
  const std::array<std::string, 2> owned{"mx.example", "smtputf8"};
  const auto r2 = wire::parse_ehlo(owned);
  REQUIRE(r2);
  CHECK(r2->has(capability::smtputf8));
  CHECK(r2->find_extension("smtputf8") == nullptr);
}

TEST_CASE("keyword lookup is exact and case-insensitive", "[wire][ehlo]") {
  for (std::size_t i = 0; i < wire::capability_count; ++i) {
    const auto c = static_cast<capability>(i);
    const std::string_view kw = wire::to_string(c);
    CHECK(wire::find_capability(kw) == c);
    std::string lower(kw);
    for (auto& ch : lower)
      ch = smtpwire::detail::ascii_lower(ch);
    CHECK(wire::find_capability(lower) == c);
    CHECK(wire::find_capability(std::string(kw) + "X") == capability::unknown);
    CHECK(wire::find_capability(kw.substr(0, kw.size() - 1)) == capability::unknown);
  }
  // Bit 5 folding must not merge non-letters: '8' vs 0x18, '-' vs 0x0d.
  CHECK(wire::find_capability("\x18"
                              "BITMIME") == capability::unknown);
  CHECK(wire::find_capability("MT\rPRIORITY") == capability::unknown);
}

TEST_CASE("seeded generator: parse(write(x)) == x", "[wire][ehlo]") {
  std::mt19937 rng(20240601);
  std::deque<std::string> store;  // stable storage for the generated views
  const auto pick = [&](std::string_view alphabet, std::size_t min, std::size_t max) {
    std::string s;
    const std::size_t n = min + rng() % (max - min + 1);
    for (std::size_t i = 0; i < n; ++i)
      s += alphabet[rng() % alphabet.size()];
    store.push_back(s);
    return std::string_view(store.back());
  };
  const std::string_view alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string vchar;
  for (char c = 33; c < 127; ++c)
    vchar += c;
  std::string greet = vchar + " \t\x01\x7f\xc3\xa9\xff";
  for (int round = 0; round < 3000; ++round) {
    wire::capabilities c;
    c.domain = pick(vchar, 1, 20);
    if (rng() % 2) c.greeting = pick(greet, 0, 40);
    c.known = static_cast<std::uint32_t>(rng()) & ((1u << wire::capability_count) - 1);
    if (c.has(capability::size) && rng() % 2)
      c.size = (static_cast<std::uint64_t>(rng()) << 32 | rng()) >> (rng() % 64);
    if (c.has(capability::deliverby) && rng() % 2) c.deliverby = rng() % 1000000000;
    if (c.has(capability::mt_priority) && rng() % 2) {
      std::string profile(pick(alnum, 1, 1));
      profile += pick("-AB1", 0, 8);
      store.push_back(profile);
      c.mt_priority = store.back();
    }
    if (c.has(capability::limits)) {
      const auto limit = [&]() -> std::uint32_t {
        return rng() % 3 == 0 ? 0 : 1 + static_cast<std::uint32_t>(rng() % 999999);
      };
      c.limits = {limit(), limit(), limit()};
    }
    if (c.has(capability::xclient))
      c.xclient = static_cast<std::uint16_t>(rng()) & wire::all_xattrs(wire::xcommand::xclient);
    if (c.has(capability::xforward))
      c.xforward = static_cast<std::uint16_t>(rng()) & wire::all_xattrs(wire::xcommand::xforward);
    if (c.has(capability::futurerelease)) {
      c.futurerelease_max_interval = rng() % 1000000000;
      static const char* const when[] = {"2030-01-01T00:00:00Z", "1999-12-31t23:59:60.5z",
                                         "2032-02-29T12:34:56.789+05:30",
                                         "2000-06-30T18:59:60-05:00"};
      c.futurerelease_max_datetime = when[rng() % 4];
    }
    if (c.has(capability::auth)) {
      c.mechanisms = sasl::mechanism_set{};
      for (std::size_t m = 0; m < sasl::mechanism_count; ++m)
        if (rng() % 3 == 0) c.mechanisms.add(static_cast<sasl::mechanism>(m));
      const std::size_t others = rng() % (wire::capabilities::max_mechanisms + 1);
      for (std::size_t i = 0; i < others; ++i) {
        const std::string_view name = pick("ABCXYZ019-_", 1, 20);
        bool clash = sasl::find_mechanism(name) != sasl::mechanism::unknown;
        for (std::size_t j = 0; j < c.other_mechanism_count; ++j)
          clash = clash || smtpwire::detail::iequals(c.other_mechanisms[j], name);
        if (!clash) REQUIRE(c.add_other_mechanism(name));
      }
    }
    const std::size_t exts = rng() % 6 == 0 ? wire::capabilities::max_extensions : rng() % 5;
    for (std::size_t i = 0; i < exts; ++i) {
      std::string kw(pick(alnum, 1, 1));
      kw += pick(std::string(alnum) + "-", 0, 12);
      store.push_back(kw);
      const std::string_view k = store.back();
      if (wire::find_capability(k) != capability::unknown) continue;
      std::string params;
      const std::size_t np = rng() % 4;
      for (std::size_t p = 0; p < np; ++p) {
        if (p) params += ' ';
        params += pick(vchar, 1, 10);
      }
      store.push_back(params);
      REQUIRE(c.add_extension(k, store.back()));
    }
    wire::ehlo_write_options wo;
    wo.legacy_auth_line = rng() % 2;
    INFO("round " << round);
    check_round_trip(c, wo);
  }
}
