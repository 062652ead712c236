#include <smtpwire/wire/command.hpp>

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
using wire::verb;

namespace {

using smtpwire::test::escape_hex;

std::string describe(const wire::path& p) {
  if (p.null) return "null";
  if (p.postmaster) return "postmaster local=" + escape_hex(p.address.local_part);
  std::string s;
  if (!p.source_route.empty()) s = "route=" + escape_hex(p.source_route) + " ";
  return s + "local=" + escape_hex(p.address.local_part) +
         " domain=" + escape_hex(p.address.domain) +
         " kind=" + std::string(wire::to_string(p.address.kind));
}

std::string describe(const wire::command& c) {
  std::string s(wire::to_string(c.kind));
  switch (c.kind) {
    case verb::helo:
    case verb::ehlo:
    case verb::lhlo:
      s += " domain=" + escape_hex(c.domain) +
           " kind=" + std::string(wire::to_string(c.domain_kind));
      break;
    case verb::mail:
    case verb::rcpt:
      s += " " + describe(c.path);
      if (!c.params.empty()) s += " params=" + escape_hex(c.params);
      break;
    case verb::bdat:
      s += " size=" + std::to_string(c.size);
      if (c.last) s += " last";
      break;
    case verb::vrfy:
    case verb::expn:
    case verb::help:
    case verb::noop:
    case verb::xclient:
    case verb::xforward:
      if (!c.argument.empty()) s += " argument=" + escape_hex(c.argument);
      break;
    case verb::auth:
      s += " mechanism=" + escape_hex(c.mechanism);
      if (!c.initial_response.empty()) s += " initial=" + escape_hex(c.initial_response);
      break;
    default:
      break;
  }
  return s;
}

// Parses `line`; a success is also written back, and what was written must
// end with CRLF and parse (without it) to the same command.
std::string run(std::string_view line, const wire::command_options& o) {
  const auto r = wire::parse_command(line, o);
  if (!r) {
    const std::string_view peek = wire::to_string(wire::peek_verb(line));
    return "error=" + std::string(smtpwire::to_string(r.error())) +
           " verb=" + std::string(peek.empty() ? "unknown" : peek);
  }
  CHECK(wire::peek_verb(line) == r->kind);
  std::string out;
  REQUIRE(wire::write_command(out, *r, o) == errc::ok);
  REQUIRE(out.size() >= 2);
  CHECK(out.substr(out.size() - 2) == "\r\n");
  const auto back = wire::parse_command(std::string_view(out).substr(0, out.size() - 2), o);
  REQUIRE(back);
  CHECK(*back == *r);
  return describe(*r);
}

wire::command make(verb v) {
  wire::command c;
  c.kind = v;
  return c;
}

}  // namespace

TEST_CASE("command vectors", "[wire][command][vectors]") {
  for (const auto& v : smtpwire::test::load_vectors("command.md")) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string input = v.bytes("input");
    wire::command_options o;
    if (v.has("options")) {
      REQUIRE(v.text("options") == "smtputf8");
      o.path.smtputf8 = true;
    }
    CHECK(run(input, o) == v.text("expect"));
    smtpwire::test::guarded_input g(input);
    CHECK(run(g.view(), o) == v.text("expect"));
  }
}

TEST_CASE("one table drives writer and reader", "[wire][command]") {
  struct row {
    wire::command value;
    std::string_view line;  // without CRLF
  };
  std::vector<row> rows;
  auto add = [&](wire::command c, std::string_view line) { rows.push_back({c, line}); };
  {
    auto c = make(verb::ehlo);
    c.domain = "mail.example";
    add(c, "EHLO mail.example");
    c.kind = verb::lhlo;
    add(c, "LHLO mail.example");
    c.kind = verb::helo;
    add(c, "HELO mail.example");
    c.kind = verb::ehlo;
    c.domain = "[IPv6:::1]";
    c.domain_kind = wire::address_kind::ipv6;
    add(c, "EHLO [IPv6:::1]");
  }
  {
    auto c = make(verb::mail);
    c.path.null = true;
    c.params = "SIZE=1";
    add(c, "MAIL FROM:<> SIZE=1");
    c.path = {};
    c.path.address = {"\"a b\"", "[192.0.2.1]", wire::address_kind::ipv4};
    c.params = {};
    add(c, "MAIL FROM:<\"a b\"@[192.0.2.1]>");
    c.kind = verb::rcpt;
    c.path.source_route = "@r.example";
    c.params = "NOTIFY=NEVER";
    add(c, "RCPT TO:<@r.example:\"a b\"@[192.0.2.1]> NOTIFY=NEVER");
    c.path = {};
    c.path.postmaster = true;
    c.path.address.local_part = "postmaster";
    c.params = {};
    add(c, "RCPT TO:<postmaster>");
  }
  {
    auto c = make(verb::bdat);
    c.size = UINT64_MAX;
    c.last = true;
    add(c, "BDAT 18446744073709551615 LAST");
    c.size = 0;
    c.last = false;
    add(c, "BDAT 0");
  }
  {
    auto c = make(verb::auth);
    c.mechanism = "PLAIN";
    c.initial_response = "=";
    add(c, "AUTH PLAIN =");
    c.mechanism = "XOAUTH2";
    c.initial_response = "dXNlcj0=";
    add(c, "AUTH XOAUTH2 dXNlcj0=");
    c.initial_response = {};
    add(c, "AUTH XOAUTH2");
  }
  {
    auto c = make(verb::vrfy);
    c.argument = "Smith";
    add(c, "VRFY Smith");
    c.kind = verb::expn;
    add(c, "EXPN Smith");
    c.kind = verb::help;
    add(c, "HELP Smith");
    c.argument = {};
    add(c, "HELP");
    c.kind = verb::noop;
    add(c, "NOOP");
  }
  add(make(verb::data), "DATA");
  add(make(verb::rset), "RSET");
  add(make(verb::quit), "QUIT");
  add(make(verb::starttls), "STARTTLS");
  {
    // Postfix XCLIENT_README / XFORWARD_README examples.
    auto c = make(verb::xclient);
    c.argument = "NAME=spike.porcupine.org ADDR=168.100.189.2";
    add(c, "XCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2");
    c.kind = verb::xforward;
    c.argument = "NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP";
    add(c, "XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP");
  }
  for (const auto& r : rows) {
    INFO(r.line);
    std::string out = "prefix|";
    REQUIRE(wire::write_command(out, r.value) == errc::ok);
    CHECK(out == "prefix|" + std::string(r.line) + "\r\n");
    const auto back = wire::parse_command(r.line);
    REQUIRE(back);
    CHECK(*back == r.value);
  }
}

TEST_CASE("write_command refuses invalid values", "[wire][command]") {
  std::vector<wire::command> bad;
  {
    auto c = make(verb::mail);
    c.path.address = {"a", "b.example", wire::address_kind::domain};
    c.params = "SIZE=1\r\nRCPT TO:<x@y.example>";
    bad.push_back(c);
    c.params = " SIZE=1";
    bad.push_back(c);
    c.params = "SIZE=1 ";
    bad.push_back(c);
    c.params = {};
    c.path.address.local_part = "j\xc3\xb6rg";  // UTF-8 without SMTPUTF8
    bad.push_back(c);
    c.path.address.local_part = "a b";
    bad.push_back(c);
    c.kind = verb::rcpt;
    c.path = {};
    c.path.null = true;
    bad.push_back(c);
  }
  {
    auto c = make(verb::ehlo);
    bad.push_back(c);          // no domain
    c.domain = "[192.0.2.1]";  // kind left as domain
    bad.push_back(c);
    c.kind = verb::helo;
    c.domain_kind = wire::address_kind::ipv4;
    bad.push_back(c);
    c.kind = verb::ehlo;
    c.domain = std::string_view("a\0b", 3);
    c.domain_kind = wire::address_kind::domain;
    bad.push_back(c);
  }
  {
    auto c = make(verb::vrfy);
    bad.push_back(c);  // VRFY needs an argument
    c.argument = "x\ny";
    bad.push_back(c);
    c.kind = verb::noop;
    c.argument = " x";
    bad.push_back(c);
  }
  {
    auto c = make(verb::auth);
    bad.push_back(c);
    c.mechanism = "PL AIN";
    bad.push_back(c);
    c.mechanism = "PLAIN";
    c.initial_response = "abc";
    bad.push_back(c);
  }
  {
    auto c = make(verb::xclient);
    bad.push_back(c);  // XCLIENT needs attributes
    c.argument = "NAME=a\r\nMAIL FROM:<a@b>";
    bad.push_back(c);
    c.argument = "NAME=a  ADDR=192.0.2.1";
    bad.push_back(c);
    c.kind = verb::xforward;
    c.argument = "NAME=a\tb";
    bad.push_back(c);
    c.argument = "NAME=\xc3\xa9";
    bad.push_back(c);
  }
  bad.push_back(make(verb::unknown));
  for (const auto& c : bad) {
    INFO(describe(c));
    std::string out = "keep";
    CHECK(wire::write_command(out, c) == errc::command_value_invalid);
    CHECK(out == "keep");
  }
  // The same UTF-8 MAIL is fine once SMTPUTF8 is in use.
  auto c = make(verb::mail);
  c.path.address = {"j\xc3\xb6rg", "b.example", wire::address_kind::domain};
  wire::command_options o;
  o.path.smtputf8 = true;
  std::string out;
  CHECK(wire::write_command(out, c, o) == errc::ok);
  CHECK(out == "MAIL FROM:<j\xc3\xb6rg@b.example>\r\n");
}

TEST_CASE("verbs are recognised in every case and never by prefix", "[wire][command]") {
  const verb all[] = {verb::helo,    verb::ehlo,    verb::lhlo, verb::mail,     verb::rcpt,
                      verb::data,    verb::bdat,    verb::rset, verb::vrfy,     verb::expn,
                      verb::help,    verb::noop,    verb::quit, verb::starttls, verb::auth,
                      verb::xclient, verb::xforward};
  static_assert(sizeof all / sizeof all[0] == static_cast<std::size_t>(verb::unknown));
  std::mt19937 rng(7);
  for (verb v : all) {
    const std::string name(wire::to_string(v));
    for (int round = 0; round < 16; ++round) {
      std::string mixed = name;
      for (char& ch : mixed)
        if (rng() & 1) ch = static_cast<char>(ch + ('a' - 'A'));
      CHECK(wire::peek_verb(mixed) == v);
      CHECK(wire::peek_verb(mixed + " x") == v);
      CHECK(wire::peek_verb(mixed + "x") == verb::unknown);
      CHECK(wire::peek_verb(mixed.substr(0, mixed.size() - 1)) == verb::unknown);
      // Bit 5 set on a non-letter must not fold into a letter.
      std::string off = mixed;
      off[rng() % off.size()] ^= 0x40;
      CHECK(wire::peek_verb(off) == verb::unknown);
    }
  }
}

namespace {

// Seeded generator of valid commands. Strings live in `store` so the views in
// the generated commands stay valid.
class generator {
 public:
  explicit generator(std::uint64_t seed) : rng_(seed) {}

  wire::command next(bool utf8) {
    utf8_ = utf8;
    const verb all[] = {verb::helo,    verb::ehlo,    verb::lhlo, verb::mail,     verb::rcpt,
                        verb::data,    verb::bdat,    verb::rset, verb::vrfy,     verb::expn,
                        verb::help,    verb::noop,    verb::quit, verb::starttls, verb::auth,
                        verb::xclient, verb::xforward};
    wire::command c = make(all[pick(17)]);
    switch (c.kind) {
      case verb::helo:
        c.domain = keep(domain());
        break;
      case verb::ehlo:
      case verb::lhlo:
        c.domain = keep(host(c.domain_kind));
        break;
      case verb::mail:
      case verb::rcpt:
        c.path = path(c.kind == verb::rcpt);
        c.params = keep(params());
        break;
      case verb::bdat:
        c.size = size();
        c.last = pick(2) == 0;
        break;
      case verb::vrfy:
      case verb::expn:
        c.argument = keep(text());
        break;
      case verb::help:
      case verb::noop:
        if (pick(2)) c.argument = keep(text());
        break;
      case verb::auth:
        c.mechanism = keep(mechanism());
        if (pick(3) == 1) c.initial_response = "=";
        if (pick(3) == 2) c.initial_response = keep(base64());
        break;
      case verb::xclient:
      case verb::xforward: {
        // The command layer takes any single-SP list of VCHAR tokens.
        std::string a;
        const std::size_t n = 1 + pick(4);
        for (std::size_t i = 0; i < n; ++i) {
          if (i) a += ' ';
          const std::size_t len = 1 + pick(12);
          for (std::size_t j = 0; j < len; ++j)
            a += static_cast<char>(33 + pick(94));
        }
        c.argument = keep(a);
        break;
      }
      default:
        break;
    }
    return c;
  }

 private:
  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  std::string_view keep(std::string s) {
    store_.push_back(std::move(s));
    return store_.back();
  }
  char from(std::string_view set) { return set[pick(set.size())]; }

  // A random non-ASCII code point (no surrogates), UTF-8 encoded.
  std::string utf8_char() {
    std::uint32_t cp = 0;
    switch (pick(3)) {
      case 0:
        cp = 0x80 + static_cast<std::uint32_t>(pick(0x780));
        break;
      case 1:
        do
          cp = 0x800 + static_cast<std::uint32_t>(pick(0xF800));
        while (cp >= 0xD800 && cp <= 0xDFFF);
        break;
      default:
        cp = 0x10000 + static_cast<std::uint32_t>(pick(0x100000));
    }
    std::string s;
    if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    }
    s += static_cast<char>(0x80 | (cp & 0x3F));
    return s;
  }

  std::string atom() {
    std::string s;
    const std::size_t n = 1 + pick(6);
    for (std::size_t i = 0; i < n; ++i) {
      if (utf8_ && pick(4) == 0)
        s += utf8_char();
      else
        s += from("abcXYZ019!#$%&'*+-/=?^_`{|}~");
    }
    return s;
  }

  std::string local_part() {
    for (;;) {
      std::string s;
      if (pick(3) == 0) {
        s = "\"";
        const std::size_t n = pick(10);
        for (std::size_t i = 0; i < n; ++i) {
          const std::size_t k = pick(8);
          if (k == 0) {
            s += '\\';
            s += static_cast<char>(32 + pick(95));
          } else if (k == 1 && utf8_) {
            s += utf8_char();
          } else {
            char ch;
            do
              ch = static_cast<char>(32 + pick(95));
            while (ch == '"' || ch == '\\');
            s += ch;
          }
        }
        s += '"';
      } else {
        const std::size_t n = 1 + pick(3);
        for (std::size_t i = 0; i < n; ++i)
          s += (i ? "." : "") + atom();
      }
      if (s.size() <= 64) return s;
    }
  }

  std::string label() {
    std::string s;
    const std::size_t n = 1 + pick(8);
    for (std::size_t i = 0; i < n; ++i) {
      if (utf8_ && pick(5) == 0)
        s += utf8_char();
      else if (i > 0 && i + 1 < n && pick(4) == 0)
        s += '-';
      else
        s += from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    }
    return s;
  }

  std::string domain() {
    std::string s = label();
    const std::size_t n = pick(4);
    for (std::size_t i = 0; i < n; ++i)
      s += "." + label();
    return s;
  }

  std::string ipv4() {
    std::string s;
    for (int i = 0; i < 4; ++i)
      s += (i ? "." : "") + std::to_string(pick(256));
    return s;
  }

  std::string hex_groups(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
      if (i) s += ':';
      const std::size_t digits = 1 + pick(4);
      for (std::size_t d = 0; d < digits; ++d)
        s += from("0123456789abcdefABCDEF");
    }
    return s;
  }

  // One of the four IPv6-addr forms of RFC 5321 §4.1.3.
  std::string ipv6() {
    const std::string tag = pick(2) ? "IPv6:" : "ipv6:";
    switch (pick(4)) {
      case 0:
        return tag + hex_groups(8);
      case 1: {
        const std::size_t a = pick(7), b = pick(7 - a);
        return tag + hex_groups(a) + "::" + hex_groups(b);
      }
      case 2:
        return tag + hex_groups(6) + ":" + ipv4();
      default: {
        const std::size_t a = pick(5), b = pick(5 - a);
        return tag + hex_groups(a) + "::" + hex_groups(b) + (b ? ":" : "") + ipv4();
      }
    }
  }

  std::string host(wire::address_kind& kind) {
    switch (pick(5)) {
      case 0:
        kind = wire::address_kind::ipv4;
        return "[" + ipv4() + "]";
      case 1:
        kind = wire::address_kind::ipv6;
        return "[" + ipv6() + "]";
      case 2: {
        kind = wire::address_kind::general;
        std::string s = "[x-" + std::string(1, from("abc9")) + ":";
        const std::size_t n = 1 + pick(10);
        for (std::size_t i = 0; i < n; ++i) {
          char ch;
          do
            ch = static_cast<char>(33 + pick(94));
          while (ch == '[' || ch == '\\' || ch == ']');
          s += ch;
        }
        return s + "]";
      }
      default: {
        kind = wire::address_kind::domain;
        return domain();
      }
    }
  }

  wire::path path(bool forward) {
    wire::path p;
    if (!forward && pick(5) == 0) {
      p.null = true;
      return p;
    }
    if (forward && pick(8) == 0) {
      std::string pm = "postmaster";
      for (char& ch : pm)
        if (pick(2)) ch = static_cast<char>(ch - ('a' - 'A'));
      p.postmaster = true;
      p.address.local_part = keep(pm);
      return p;
    }
    if (pick(8) == 0) {
      std::string route = "@" + domain();
      if (pick(2)) route += ",@" + domain();
      p.source_route = keep(route);
    }
    p.address.local_part = keep(local_part());
    p.address.domain = keep(host(p.address.kind));
    return p;
  }

  std::string params() {
    const char* const all[] = {"",
                               "SIZE=12345",
                               "BODY=8BITMIME",
                               "SMTPUTF8",
                               "SIZE=1 BODY=7BIT",
                               "NOTIFY=SUCCESS,FAILURE",
                               "RET=HDRS ENVID=QQ314159",
                               "ORCPT=rfc822;a+40b"};
    return all[pick(8)];
  }

  std::uint64_t size() {
    switch (pick(3)) {
      case 0:
        return pick(100000);
      case 1:
        return UINT64_MAX - pick(1000);
      default:
        return rng_();
    }
  }

  std::string text() {
    std::string s;
    const std::size_t n = 1 + pick(12);
    for (std::size_t i = 0; i < n; ++i) {
      if (utf8_ && pick(6) == 0)
        s += utf8_char();
      else if (i > 0 && i + 1 < n && pick(5) == 0)
        s += ' ';
      else
        s += static_cast<char>(33 + pick(94));
    }
    return s;
  }

  std::string mechanism() {
    std::string s;
    const std::size_t n = 1 + pick(20);
    for (std::size_t i = 0; i < n; ++i)
      s += from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
    return s;
  }

  std::string base64() {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const std::size_t bytes = 1 + pick(40);
    std::string s;
    for (std::size_t i = 0; i < bytes; i += 3) {
      const std::size_t left = bytes - i;
      s += alphabet[pick(64)];
      s += alphabet[pick(64)];
      s += left > 1 ? alphabet[pick(64)] : '=';
      s += left > 2 ? alphabet[pick(64)] : '=';
    }
    return s;
  }

  std::mt19937_64 rng_;
  std::deque<std::string> store_;
  bool utf8_ = false;
};

}  // namespace

TEST_CASE("parse(write(x)) == x for generated commands", "[wire][command][roundtrip]") {
  generator gen(0x5eed5eedULL);
  int non_ascii = 0;
  for (int i = 0; i < 20000; ++i) {
    const bool utf8 = (i & 1) != 0;
    wire::command_options o;
    o.path.smtputf8 = utf8;
    const wire::command c = gen.next(utf8);
    std::string out;
    const errc e = wire::write_command(out, c, o);
    INFO(i << ": " << describe(c));
    REQUIRE(e == errc::ok);
    REQUIRE(out.size() >= 2);
    const std::string_view line = std::string_view(out).substr(0, out.size() - 2);
    const auto back = wire::parse_command(line, o);
    REQUIRE(back);
    REQUIRE(*back == c);
    if (!smtpwire::detail::is_ascii(line)) {
      ++non_ascii;
      // Without SMTPUTF8 the same command is refused, never written.
      std::string refused;
      CHECK(wire::write_command(refused, c) == errc::command_value_invalid);
      CHECK(refused.empty());
    }
  }
  CHECK(non_ascii > 1000);
}
