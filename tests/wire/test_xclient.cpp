#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/ehlo.hpp>
#include <smtpwire/wire/xclient.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace wire = smtpwire::wire;
using wire::xattr;
using wire::xcommand;
using wire::xvalue_kind;

namespace {

using smtpwire::test::escape_hex;

std::string decode(std::string_view raw) {
  std::string out;
  REQUIRE(wire::xtext_decode(out, raw) == errc::ok);
  return out;
}

std::string describe(const wire::xattributes& a) {
  std::string s;
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const auto x = static_cast<xattr>(i);
    switch (a.get(x)) {
      case xvalue_kind::absent:
        continue;
      case xvalue_kind::unavailable:
        s += std::string(wire::to_string(x)) + " unavailable\n";
        continue;
      case xvalue_kind::tempunavail:
        s += std::string(wire::to_string(x)) + " tempunavail\n";
        continue;
      case xvalue_kind::value:
        break;
    }
    const std::string_view raw = a.value(x);
    s += std::string(wire::to_string(x)) + " " + escape_hex(raw);
    const std::string d = decode(raw);
    if (d != raw) s += " decoded=" + escape_hex(d);
    s += "\n";
  }
  if (!s.empty()) s.pop_back();
  return s;
}

/// Decoded copy of parsed attributes; the values live in `store`.
wire::xattributes decoded_copy(const wire::xattributes& parsed, std::deque<std::string>& store) {
  wire::xattributes d;
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const auto x = static_cast<xattr>(i);
    if (parsed.get(x) == xvalue_kind::value) {
      store.push_back(decode(parsed.value(x)));
      d.set(x, store.back());
    } else {
      d.set(x, parsed.get(x));
    }
  }
  return d;
}

/// Writes `decoded` with every attribute offered and at most `max_line`
/// octets per line, then reads every line back (command, then attributes):
/// the union of the lines must equal `decoded`, no attribute twice.
void check_write_read(xcommand c, const wire::xattributes& decoded, std::size_t max_line) {
  std::string out = "keep";
  std::size_t lines = 99;
  const errc e = wire::write_xcommands(out, c, decoded, wire::all_xattrs(c), lines, max_line);
  std::size_t longest = 0;
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const auto x = static_cast<xattr>(i);
    if (decoded.get(x) == xvalue_kind::absent) continue;
    const std::size_t v = decoded.get(x) == xvalue_kind::value
                              ? wire::xtext_encoded_size(decoded.raw[i])
                              : wire::to_string(decoded.get(x)).size();
    longest = std::max(longest, 1 + wire::to_string(x).size() + 1 + v);
  }
  INFO("max_line=" << max_line << " longest item=" << longest);
  if (wire::to_string(c).size() + longest + 2 > max_line) {
    CHECK(e == errc::line_too_long);
    CHECK(out == "keep");
    return;
  }
  REQUIRE(e == errc::ok);
  REQUIRE(out.substr(0, 4) == "keep");
  std::string_view rest = std::string_view(out).substr(4);
  wire::xattributes merged;
  std::deque<std::string> store;
  std::size_t n = 0;
  while (!rest.empty()) {
    const std::size_t crlf = rest.find("\r\n");
    REQUIRE(crlf != std::string_view::npos);
    CHECK(crlf + 2 <= max_line);
    const std::string_view line = rest.substr(0, crlf);
    rest.remove_prefix(crlf + 2);
    ++n;
    INFO(escape_hex(line));
    const auto cmd = wire::parse_command(line);
    REQUIRE(cmd);
    CHECK(cmd->kind == (c == xcommand::xclient ? wire::verb::xclient : wire::verb::xforward));
    wire::xattributes part;
    REQUIRE(wire::parse_xattributes(c, cmd->argument, part) == errc::ok);
    const wire::xattributes d = decoded_copy(part, store);
    for (std::size_t i = 0; i < wire::xattr_count; ++i) {
      if (d.kind[i] == xvalue_kind::absent) continue;
      CHECK(merged.kind[i] == xvalue_kind::absent);  // each attribute once in all
      merged.kind[i] = d.kind[i];
      merged.raw[i] = d.raw[i];
    }
  }
  CHECK(n == lines);
  CHECK(merged == decoded);
}

}  // namespace

TEST_CASE("xclient vectors", "[wire][xclient][vectors]") {
  const auto cases = smtpwire::test::load_vectors("xclient.md");
  CHECK(cases.size() > 80);
  for (const auto& v : cases) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string input = v.bytes("input");
    std::string got;
    const auto cmd = wire::parse_command(input);
    if (!cmd) {
      got = "error=" + std::string(smtpwire::to_string(cmd.error()));
    } else {
      REQUIRE((cmd->kind == wire::verb::xclient || cmd->kind == wire::verb::xforward));
      const xcommand c = cmd->kind == wire::verb::xclient ? xcommand::xclient : xcommand::xforward;
      wire::xattributes a;
      const errc e = wire::parse_xattributes(c, cmd->argument, a);
      got = e == errc::ok ? describe(a) : "error=" + std::string(smtpwire::to_string(e));
      // The argument alone before an unreadable page: same outcome.
      smtpwire::test::guarded_input g(cmd->argument);
      wire::xattributes b;
      CHECK(wire::parse_xattributes(c, g.view(), b) == e);
      if (e == errc::ok) {
        CHECK(b == a);
        std::deque<std::string> store;
        const wire::xattributes d = decoded_copy(a, store);
        CHECK(wire::validate_xattributes(c, d) == errc::ok);
        for (std::size_t max_line : {512u, 120u, 60u, 30u})
          check_write_read(c, d, max_line);
      }
    }
    CHECK(got == v.text("expect"));
  }
}

TEST_CASE("xattr names, commands and special values", "[wire][xclient]") {
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const auto a = static_cast<xattr>(i);
    const std::string name(wire::to_string(a));
    CHECK(wire::find_xattr(name) == a);
    std::string lower = name;
    for (char& ch : lower)
      ch = smtpwire::detail::ascii_lower(ch);
    CHECK(wire::find_xattr(lower) == a);
    CHECK(wire::find_xattr(name + "X") == xattr::unknown);
    CHECK(wire::xattr_bit(a) == (1u << i));
  }
  CHECK(wire::find_xattr("") == xattr::unknown);
  CHECK(wire::find_xattr("REVERSE-NAME") == xattr::unknown);
  CHECK(wire::to_string(xattr::unknown).empty());
  CHECK(wire::xattr_bit(xattr::unknown) == 0);
  // The READMEs' lists.
  const auto set = [](std::initializer_list<xattr> l) {
    std::uint16_t s = 0;
    for (xattr a : l)
      s = static_cast<std::uint16_t>(s | wire::xattr_bit(a));
    return s;
  };
  CHECK(wire::all_xattrs(xcommand::xclient) ==
        set({xattr::name, xattr::reverse_name, xattr::addr, xattr::port, xattr::proto, xattr::helo,
             xattr::login, xattr::destaddr, xattr::destport}));
  CHECK(wire::all_xattrs(xcommand::xforward) ==
        set({xattr::name, xattr::addr, xattr::port, xattr::proto, xattr::helo, xattr::ident,
             xattr::source}));
  CHECK_FALSE(wire::allowed(xcommand::xclient, xattr::unknown));
  CHECK(wire::to_string(xcommand::xclient) == "XCLIENT");
  CHECK(wire::to_string(xcommand::xforward) == "XFORWARD");
  CHECK(wire::to_string(xvalue_kind::unavailable) == "[UNAVAILABLE]");
  CHECK(wire::to_string(xvalue_kind::tempunavail) == "[TEMPUNAVAIL]");
  CHECK(wire::to_string(xvalue_kind::value).empty());

  wire::xattributes a;
  CHECK(a.empty());
  a.set(xattr::login, "x");
  a.set(xattr::addr, xvalue_kind::unavailable, "ignored");
  a.set(xattr::unknown, "ignored");
  CHECK(a.present() == set({xattr::login, xattr::addr}));
  CHECK(a.value(xattr::login) == "x");
  CHECK(a.value(xattr::addr).empty());
  CHECK(a.get(xattr::unknown) == xvalue_kind::absent);
  CHECK(a.value(xattr::unknown).empty());
  wire::xattributes b = a;
  CHECK(a == b);
  b.raw[static_cast<std::size_t>(xattr::addr)] = "not compared";
  CHECK(a == b);
  b.set(xattr::login, "y");
  CHECK(a != b);
}

TEST_CASE("EHLO lists become the offered attribute sets", "[wire][xclient][ehlo]") {
  const std::vector<std::string_view> lines = {"mx.example", "XCLIENT NAME ADDR PROTO HELO",
                                               "XFORWARD NAME ADDR PROTO HELO SOURCE"};
  const auto caps = wire::parse_ehlo(lines);
  REQUIRE(caps);
  CHECK(caps->offers_xclient(xattr::name));
  CHECK(caps->offers_xclient(xattr::helo));
  CHECK_FALSE(caps->offers_xclient(xattr::login));
  CHECK_FALSE(caps->offers_xclient(xattr::unknown));
  CHECK(caps->offers_xforward(xattr::source));
  CHECK_FALSE(caps->offers_xforward(xattr::ident));
  wire::capabilities none;
  none.xclient = wire::all_xattrs(xcommand::xclient);  // bits without the keyword
  CHECK_FALSE(none.offers_xclient(xattr::name));

  // Only offered attributes are written.
  wire::xattributes d;
  d.set(xattr::name, "spike.porcupine.org");
  d.set(xattr::addr, "168.100.189.2");
  d.set(xattr::login, "wietse");
  d.set(xattr::port, xvalue_kind::unavailable);
  std::string out;
  std::size_t n = 0;
  REQUIRE(wire::write_xcommands(out, xcommand::xclient, d, caps->xclient, n) == errc::ok);
  CHECK(n == 1);
  CHECK(out == "XCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2\r\n");
  out.clear();
  REQUIRE(wire::write_xcommands(out, xcommand::xclient, d, 0, n) == errc::ok);
  CHECK(n == 0);
  CHECK(out.empty());
}

TEST_CASE("write_xcommands: encoding, splitting and refusals", "[wire][xclient]") {
  const std::uint16_t all = wire::all_xattrs(xcommand::xclient);
  {
    wire::xattributes d;
    d.set(xattr::name, xvalue_kind::tempunavail);
    d.set(xattr::addr, "IPV6:2001:db8::1");
    d.set(xattr::port, "25");
    d.set(xattr::proto, "ESMTP");
    d.set(xattr::helo, "[192.0.2.1]");
    d.set(xattr::login, "a b+c=d\xc3\xa9");
    std::string out;
    std::size_t n = 0;
    REQUIRE(wire::write_xcommands(out, xcommand::xclient, d, all, n) == errc::ok);
    CHECK(n == 1);
    CHECK(out ==
          "XCLIENT NAME=[TEMPUNAVAIL] ADDR=IPV6:2001:db8::1 PORT=25 PROTO=ESMTP "
          "HELO=[192.0.2.1] LOGIN=a+20b+2Bc+3Dd+C3+A9\r\n");
    // Split: each line at most 40 octets with CRLF, attributes whole.
    out.clear();
    REQUIRE(wire::write_xcommands(out, xcommand::xclient, d, all, n, 40) == errc::ok);
    CHECK(n == 4);
    CHECK(out ==
          "XCLIENT NAME=[TEMPUNAVAIL]\r\n"
          "XCLIENT ADDR=IPV6:2001:db8::1 PORT=25\r\n"
          "XCLIENT PROTO=ESMTP HELO=[192.0.2.1]\r\n"
          "XCLIENT LOGIN=a+20b+2Bc+3Dd+C3+A9\r\n");
    // Exactly fitting: "XCLIENT LOGIN=a+20b+2Bc+3Dd+C3+A9\r\n" is 35 octets.
    wire::xattributes one;
    one.set(xattr::login, "a b+c=d\xc3\xa9");
    out.clear();
    CHECK(wire::write_xcommands(out, xcommand::xclient, one, all, n, 35) == errc::ok);
    CHECK(out.size() == 35);
    out = "keep";
    CHECK(wire::write_xcommands(out, xcommand::xclient, one, all, n, 34) == errc::line_too_long);
    CHECK(out == "keep");
    CHECK(n == 0);
  }
  // Many long attributes at the RFC 5321 line limit: several lines, each <= 512.
  {
    std::deque<std::string> store;
    wire::xattributes d;
    store.push_back(std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') +
                    "." + std::string(63, 'd'));
    d.set(xattr::name, store.back());
    d.set(xattr::reverse_name, store.back());
    store.push_back(std::string(255, '~'));
    d.set(xattr::helo, store.back());
    std::string euros;
    for (int i = 0; i < 85; ++i)
      euros += "\xe2\x82\xac";
    store.push_back(euros);  // 255 octets, each escaped: 765 encoded
    d.set(xattr::login, store.back());
    d.set(xattr::addr, "IPV6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    d.set(xattr::destaddr, "255.255.255.255");
    d.set(xattr::port, "65535");
    d.set(xattr::destport, "0");
    d.set(xattr::proto, "SMTP");
    std::string out = "keep";
    std::size_t n = 0;
    // LOGIN alone encodes to 765 octets: too long for 512.
    CHECK(wire::write_xcommands(out, xcommand::xclient, d, all, n) == errc::line_too_long);
    CHECK(out == "keep");
    store.push_back(std::string(150, '+'));  // 450 encoded: fits 512 alone
    d.set(xattr::login, store.back());
    out.clear();
    REQUIRE(wire::write_xcommands(out, xcommand::xclient, d, all, n) == errc::ok);
    CHECK(n == 4);
    check_write_read(xcommand::xclient, d, 512);
    check_write_read(xcommand::xclient, d, 1000);
    check_write_read(xcommand::xclient, d, 480);
  }
  // Refusals: invalid values, an attribute the command does not take (even
  // when not offered), [TEMPUNAVAIL] outside NAME / REVERSE_NAME.
  const auto refuses = [&](xcommand c, const wire::xattributes& d, errc want) {
    std::string out = "keep";
    std::size_t n = 7;
    CHECK(wire::write_xcommands(out, c, d, wire::all_xattrs(c), n) == want);
    CHECK(out == "keep");
    CHECK(n == 0);
    CHECK(wire::validate_xattributes(c, d) == want);
  };
  const std::pair<xattr, std::string_view> bad_values[] = {
      {xattr::name, "168.100.189.2"},
      {xattr::name, ""},
      {xattr::name, "a b"},
      {xattr::name, "[UNAVAILABLE]"},  // a value that would read back as special
      {xattr::login, "[tempunavail]"},
      {xattr::addr, "::1"},
      {xattr::addr, "IPV6:::1\r\nRSET"},
      {xattr::port, "65536"},
      {xattr::port, ""},
      {xattr::proto, "LMTP"},
      {xattr::helo, "a b"},
      {xattr::helo, std::string_view("a\0b", 3)},
      {xattr::login, "a\r\nMAIL FROM:<>"},
      {xattr::login, "\xff"},
      {xattr::destport, "-1"},
  };
  for (const auto& b : bad_values) {
    INFO(wire::to_string(b.first) << "=" << escape_hex(b.second));
    wire::xattributes d;
    d.set(b.first, b.second);
    refuses(xcommand::xclient, d, errc::xattr_value_invalid);
  }
  {
    wire::xattributes d;
    d.set(xattr::ident, "abc");
    refuses(xcommand::xclient, d, errc::xattr_unknown);
    d = {};
    d.set(xattr::login, "alice");
    refuses(xcommand::xforward, d, errc::xattr_unknown);
    d = {};
    d.set(xattr::helo, xvalue_kind::tempunavail);
    refuses(xcommand::xclient, d, errc::xattr_value_invalid);
    d = {};
    d.set(xattr::source, "REMOTE");
    d.set(xattr::proto, "UUCP");  // XFORWARD takes any short protocol name
    std::string out;
    std::size_t n = 0;
    REQUIRE(wire::write_xcommands(out, xcommand::xforward, d, wire::all_xattrs(xcommand::xforward),
                                  n) == errc::ok);
    CHECK(out == "XFORWARD PROTO=UUCP SOURCE=REMOTE\r\n");
    d.set(xattr::source, "ELSEWHERE");
    refuses(xcommand::xforward, d, errc::xattr_value_invalid);
  }
}

TEST_CASE("replies for XCLIENT / XFORWARD errors", "[wire][xclient]") {
  for (errc e : {errc::xclient_syntax, errc::xforward_syntax, errc::xattr_unknown,
                 errc::xattr_duplicate, errc::xattr_value_invalid}) {
    INFO(smtpwire::to_string(e));
    // XCLIENT_README: 501 for bad syntax, names and values.
    CHECK(smtpwire::reply_for(e).code == 501);
    CHECK(smtpwire::reply_for(e).enhanced == "5.5.4");
    CHECK(smtpwire::to_string(e) != "unknown");
    CHECK(smtpwire::make_error_code(e).message().find(smtpwire::to_string(e)) == 0);
  }
}

namespace {

/// Seeded random attributes, decoded values valid for their attribute.
struct generator {
  std::mt19937_64 rng;
  std::deque<std::string> store;

  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng() % n); }
  std::string_view keep(std::string s) {
    store.push_back(std::move(s));
    return store.back();
  }
  std::string chars(std::string_view set, std::size_t min, std::size_t max) {
    std::string s;
    const std::size_t n = min + pick(max - min + 1);
    for (std::size_t i = 0; i < n; ++i)
      s += set[pick(set.size())];
    return s;
  }
  std::string host() {
    std::string s;
    const std::size_t labels = 1 + pick(4);
    for (std::size_t i = 0; i < labels; ++i) {
      if (i) s += '.';
      s += chars("abcXYZ019-_", 1, 20);
    }
    s += ".x" + chars("abc", 0, 3);  // the last label is never all digits
    return s.size() <= 255 ? s : "a.example";
  }
  std::string address() {
    if (pick(2)) {
      return std::to_string(pick(256)) + "." + std::to_string(pick(256)) + "." +
             std::to_string(pick(256)) + "." + std::to_string(pick(256));
    }
    std::string s = pick(2) ? "IPV6:" : "ipv6:";
    const std::size_t groups = pick(2) ? 8 : pick(7);
    for (std::size_t i = 0; i < groups; ++i) {
      if (i) s += ':';
      s += chars("0123456789abcdefABCDEF", 1, 4);
    }
    if (groups < 8) s += "::";
    return s;
  }
  std::string login() {
    std::string s;
    const std::size_t n = 1 + pick(40);
    for (std::size_t i = 0; i < n; ++i) {
      switch (pick(4)) {
        case 0:
          s += "\xc3\xa9";
          break;
        case 1:
          s += static_cast<char>(0x20 + pick(0x5f));
          break;
        default:
          s += "+= a";
      }
    }
    return s.size() <= 255 ? s : s.substr(0, 200) + "x";
  }
  std::string_view value(xcommand c, xattr a) {
    switch (a) {
      case xattr::name:
      case xattr::reverse_name:
        return keep(host());
      case xattr::addr:
      case xattr::destaddr:
        return keep(address());
      case xattr::port:
      case xattr::destport:
        return keep(std::to_string(pick(65536)));
      case xattr::proto:
        if (c == xcommand::xclient) return pick(2) ? "SMTP" : "esmtp";
        return keep(chars("ABCXYZ019!~[", 1, 64));
      case xattr::helo:
        return keep(chars("abc.-_[]!~:019", 1, 255));
      case xattr::login:
        return keep(login());
      case xattr::ident:
        return keep(chars("ABCXYZ019!~", 1, 64));
      case xattr::source:
        return pick(2) ? "LOCAL" : "remote";
      case xattr::unknown:
        break;
    }
    return {};
  }
  wire::xattributes next(xcommand c) {
    wire::xattributes d;
    for (std::size_t i = 0; i < wire::xattr_count; ++i) {
      const auto a = static_cast<xattr>(i);
      if (!wire::allowed(c, a) || pick(3) == 0) continue;
      const std::size_t k = pick(8);
      if (k == 0)
        d.set(a, xvalue_kind::unavailable);
      else if (k == 1 && (a == xattr::name || a == xattr::reverse_name))
        d.set(a, xvalue_kind::tempunavail);
      else
        d.set(a, value(c, a));
    }
    return d;
  }
};

}  // namespace

TEST_CASE("xclient round trip: seeded random attributes", "[wire][xclient]") {
  generator g{std::mt19937_64(0x0C11E47), {}};
  int split = 0;
  for (int i = 0; i < 3000; ++i) {
    const xcommand c = (i & 1) ? xcommand::xforward : xcommand::xclient;
    const wire::xattributes d = g.next(c);
    REQUIRE(wire::validate_xattributes(c, d) == errc::ok);
    const std::size_t max_line = 40 + g.pick(600);
    INFO("round " << i);
    check_write_read(c, d, max_line);
    std::string out;
    std::size_t n = 0;
    if (wire::write_xcommands(out, c, d, wire::all_xattrs(c), n, max_line) == errc::ok && n > 1)
      ++split;
    if (i % 16 == 0) g.store.clear();
  }
  CHECK(split > 300);  // the splitting path is exercised
}

TEST_CASE("xclient: random mutations never crash and round trip when valid", "[wire][xclient]") {
  const std::string seeds[] = {
      "NAME=spike.porcupine.org ADDR=168.100.189.2 PORT=25 PROTO=ESMTP HELO=x LOGIN=a+20b",
      "NAME=[TEMPUNAVAIL] ADDR=IPV6:2001:db8::1 DESTADDR=192.0.2.1 DESTPORT=587",
      "IDENT=ABC SOURCE=REMOTE PROTO=UUCP HELO=[UNAVAILABLE]"};
  const std::string alphabet = "=+ :.[]09AFaf\x7f\x80\xc3\xa9\r\nIPV6";
  std::mt19937 rng(99);
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % 3];
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
    const xcommand c = (i % 3 == 2) ? xcommand::xforward : xcommand::xclient;
    smtpwire::test::guarded_input g(s);
    wire::xattributes a;
    INFO(escape_hex(s));
    if (wire::parse_xattributes(c, g.view(), a) != errc::ok) continue;
    ++ok;
    std::deque<std::string> store;
    const wire::xattributes d = decoded_copy(a, store);
    REQUIRE(wire::validate_xattributes(c, d) == errc::ok);
    check_write_read(c, d, 512);
  }
  CHECK(ok > 1000);
}
