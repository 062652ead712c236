#include <smtpwire/wire/path.hpp>

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

using smtpwire::test::escape_hex;

std::string describe(const wire::mailbox& m) {
  return "local=" + escape_hex(m.local_part) + " domain=" + escape_hex(m.domain) +
         " kind=" + std::string(wire::to_string(m.kind));
}

std::string describe(const wire::path& p) {
  if (p.null) return "null";
  if (p.postmaster) return "postmaster local=" + escape_hex(p.address.local_part);
  std::string s;
  if (!p.source_route.empty()) s = "route=" + escape_hex(p.source_route) + " ";
  return s + describe(p.address);
}

wire::path_options parse_options(const smtpwire::test::vector_case& v) {
  wire::path_options o;
  if (!v.has("options")) return o;
  std::istringstream in(v.text("options"));
  std::string word;
  while (in >> word) {
    const auto eq = word.find('=');
    const std::string key = word.substr(0, eq);
    if (key == "smtputf8") {
      o.smtputf8 = true;
      continue;
    }
    REQUIRE(eq != std::string::npos);
    const std::size_t n = std::stoul(word.substr(eq + 1));
    if (key == "max_local_part")
      o.max_local_part = n;
    else if (key == "max_domain")
      o.max_domain = n;
    else if (key == "max_path")
      o.max_path = n;
    else
      FAIL("unknown option " << key);
  }
  return o;
}

// Parses `in` with the grammar named in the vector; a success is also written
// back with the matching writer and must parse to the same value.
std::string run(const std::string& grammar, std::string_view in, const wire::path_options& o) {
  auto err = [](errc e) { return "error=" + std::string(smtpwire::to_string(e)); };
  if (grammar == "reverse" || grammar == "forward") {
    const bool fwd = grammar == "forward";
    const auto r = fwd ? wire::parse_forward_path(in, o) : wire::parse_reverse_path(in, o);
    if (!r) return err(r.error());
    std::string out;
    REQUIRE(wire::write_path(out, *r, o) == errc::ok);
    CHECK(out == in);
    return describe(*r);
  }
  if (grammar == "mailbox") {
    const auto r = wire::parse_mailbox(in, o);
    if (!r) return err(r.error());
    std::string out;
    REQUIRE(wire::write_mailbox(out, *r, o) == errc::ok);
    CHECK(out == in);
    return describe(*r);
  }
  if (grammar == "domain") {
    const auto r = wire::parse_domain(in, o);
    if (!r) return err(r.error());
    CHECK(r->data() == in.data());
    return "ok";
  }
  if (grammar == "literal") {
    const auto r = wire::parse_address_literal(in);
    if (!r) return err(r.error());
    return "kind=" + std::string(wire::to_string(r->kind)) + " tag=" + escape_hex(r->tag) +
           " value=" + escape_hex(r->value);
  }
  FAIL("unknown grammar " << grammar);
  return {};
}

}  // namespace

TEST_CASE("path vectors", "[wire][path][vectors]") {
  for (const auto& v : smtpwire::test::load_vectors("path.md")) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string input = v.bytes("input");
    const auto o = parse_options(v);
    const std::string grammar = v.text("grammar");
    CHECK(run(grammar, input, o) == v.text("expect"));
    // The same bytes ending right before an unreadable page: no over-read.
    smtpwire::test::guarded_input g(input);
    CHECK(run(grammar, g.view(), o) == v.text("expect"));
  }
}

TEST_CASE("views point into the input", "[wire][path]") {
  const std::string in = "<@r.example:\"a b\"@[IPv6:::1]>";
  const auto r = wire::parse_forward_path(in);
  REQUIRE(r);
  CHECK(r->source_route.data() == in.data() + 1);
  CHECK(r->address.local_part.data() == in.data() + 12);
  CHECK(r->address.domain.data() == in.data() + 18);
  CHECK(r->address.kind == wire::address_kind::ipv6);
  CHECK(wire::is_ascii(*r));
}

TEST_CASE("every prefix of a valid path fails cleanly", "[wire][path]") {
  const std::string in = "<@a.example,@b.example:\"q\\\"x\"@[IPv6:1:2::3:4:192.0.2.1]>";
  REQUIRE(wire::parse_forward_path(in));
  for (std::size_t n = 0; n < in.size(); ++n) {
    smtpwire::test::guarded_input g(std::string_view(in).substr(0, n));
    INFO(n);
    CHECK_FALSE(wire::parse_forward_path(g.view()));
  }
}

TEST_CASE("unquote_local_part removes quotes and quoted-pairs", "[wire][path]") {
  std::string out = "x:";
  CHECK(wire::unquote_local_part(out, "\"a\\\\b\\\"c d\"") == errc::ok);
  CHECK(out == "x:a\\b\"c d");
  out.clear();
  CHECK(wire::unquote_local_part(out, "plain.dot") == errc::ok);
  CHECK(out == "plain.dot");
  out.clear();
  CHECK(wire::unquote_local_part(out, "\"\"") == errc::ok);
  CHECK(out.empty());
  CHECK(wire::unquote_local_part(out, "\"open") == errc::local_part_syntax);
  CHECK(wire::unquote_local_part(out, "a..b") == errc::local_part_syntax);
  CHECK(wire::unquote_local_part(out, "") == errc::local_part_syntax);
  CHECK(out.empty());
}

TEST_CASE("write_local_part quotes only when needed", "[wire][path]") {
  const wire::path_options utf8{64, 255, 256, true};
  struct row {
    std::string_view value;
    std::string_view wire;
    errc e;
    bool smtputf8;
  };
  const row rows[] = {
      {"john.smith", "john.smith", errc::ok, false},
      {"John Smith", "\"John Smith\"", errc::ok, false},
      {"a\"b\\c", "\"a\\\"b\\\\c\"", errc::ok, false},
      {"", "\"\"", errc::ok, false},
      {".a", "\".a\"", errc::ok, false},
      {"a..b", "\"a..b\"", errc::ok, false},
      {"j\xc3\xb6rg", "j\xc3\xb6rg", errc::ok, true},
      {"j\xc3\xb6 rg", "\"j\xc3\xb6 rg\"", errc::ok, true},
      {"j\xc3\xb6rg", "", errc::utf8_not_allowed, false},
      {"\xc3", "", errc::utf8_invalid, true},
      {"a\tb", "", errc::local_part_syntax, false},
      {"a\rb", "", errc::command_value_invalid, false},
      {std::string_view("a\0b", 3), "", errc::command_value_invalid, false},
  };
  for (const auto& r : rows) {
    INFO(escape_hex(r.value));
    std::string out;
    CHECK(wire::write_local_part(out, r.value, r.smtputf8 ? utf8 : wire::path_options{}) == r.e);
    CHECK(out == r.wire);
    if (r.e != errc::ok) continue;
    // What was written is a local part whose unquoted form is the value.
    std::string back;
    CHECK(wire::unquote_local_part(back, out) == errc::ok);
    CHECK(back == r.value);
  }
  std::string out;
  CHECK(wire::write_local_part(out, std::string(64, 'a')) == errc::ok);
  out.clear();
  CHECK(wire::write_local_part(out, std::string(63, ' ')) == errc::local_part_too_long);
  CHECK(out.empty());
}

TEST_CASE("path writers refuse invalid values", "[wire][path]") {
  std::string out = "keep";
  wire::path p;
  p.address = {"a", "b.example", wire::address_kind::ipv4};  // wrong kind
  CHECK(wire::write_path(out, p) == errc::api_value_invalid);
  p.address = {"a\r\nRSET", "b.example", wire::address_kind::domain};
  CHECK(wire::write_path(out, p) == errc::command_value_invalid);
  p.address = {"a b", "b.example", wire::address_kind::domain};
  CHECK(wire::write_path(out, p) == errc::local_part_syntax);
  p.address = {"a", "b..example", wire::address_kind::domain};
  CHECK(wire::write_path(out, p) == errc::domain_syntax);
  p.address = {"a>", "b.example", wire::address_kind::domain};
  CHECK(wire::write_path(out, p) == errc::path_syntax);
  p.address = {"Postmaster", "", wire::address_kind::domain};
  p.postmaster = true;
  CHECK(wire::write_path(out, p) == errc::ok);
  CHECK(out == "keep<Postmaster>");
  p = {};
  p.null = true;
  out.clear();
  CHECK(wire::write_path(out, p) == errc::ok);
  CHECK(out == "<>");
  out.clear();
  CHECK(wire::write_mailbox(out, {"a", "[300.1.1.1]", wire::address_kind::ipv4}) ==
        errc::address_literal_invalid);
  CHECK(out.empty());
}

TEST_CASE("UTF-8 validation follows RFC 3629", "[wire][path][utf8]") {
  using smtpwire::detail::is_valid_utf8;
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"));
  CHECK(is_valid_utf8("\xed\x9f\xbf\xee\x80\x80"));  // U+D7FF, U+E000 around the surrogates
  for (const char* bad : {"\xc0\x80", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf",
                          "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80",
                          "\xc2", "\xe1\x80", "\xf1\x80\x80", "\xc2\x41", "\xff"}) {
    INFO(escape_hex(bad));
    CHECK_FALSE(is_valid_utf8(bad));
  }
}
