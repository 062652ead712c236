#include <smtpwire/wire/sasl.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
namespace sasl = smtpwire::wire::sasl;

namespace {

using smtpwire::test::escape_hex;

// A test-only RFC 4648 decoder, to check that the vectors' bytes are what the
// documents print (wire/base64.hpp is tested on its own).
std::string unbase64(std::string_view s) {
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    const std::size_t v = alphabet.find(c);
    REQUIRE(v != std::string_view::npos);
    acc = acc << 6 | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string err(errc e) {
  return "error=" + std::string(smtpwire::to_string(e));
}

// Parses `input` with `codec`; a success is written back (the bytes must be
// `rewritten`) and parsed again to the same value. Returns the log.
std::string run(const std::string& codec, std::string_view input, const sasl::options& o,
                const std::string& rewritten) {
  std::string out;
  if (codec == "plain") {
    const auto r = sasl::parse_plain(input, o);
    if (!r) return err(r.error());
    REQUIRE(sasl::write_plain(out, *r, o) == errc::ok);
    CHECK(out == rewritten);
    const auto back = sasl::parse_plain(out, o);
    REQUIRE(back);
    CHECK(*back == *r);
    return "authzid=" + escape_hex(r->authzid) + " authcid=" + escape_hex(r->authcid) +
           " passwd=" + escape_hex(r->passwd);
  }
  if (codec == "login-prompt") {
    const auto r = sasl::parse_login_prompt(input);
    if (!r) return err(r.error());
    sasl::write_login_prompt(out, *r);
    CHECK(out == rewritten);
    const auto back = sasl::parse_login_prompt(out);
    REQUIRE(back);
    CHECK(*back == *r);
    return *r == sasl::login_prompt::username ? "prompt=username" : "prompt=password";
  }
  if (codec == "login") {
    const auto r = sasl::parse_login_response(input, o);
    if (!r) return err(r.error());
    CHECK(r->data() == input.data());
    REQUIRE(sasl::write_login_response(out, *r, o) == errc::ok);
    CHECK(out == rewritten);
    return "value=" + escape_hex(*r);
  }
  if (codec == "xoauth2") {
    const auto r = sasl::parse_xoauth2(input, o);
    if (!r) return err(r.error());
    REQUIRE(sasl::write_xoauth2(out, *r, o) == errc::ok);
    CHECK(out == rewritten);
    const auto back = sasl::parse_xoauth2(out, o);
    REQUIRE(back);
    CHECK(*back == *r);
    return "user=" + escape_hex(r->user) + " token=" + escape_hex(r->token);
  }
  if (codec == "oauthbearer") {
    CHECK(sasl::is_oauthbearer_error_ack(input) == (input == "\x01"));
    const auto r = sasl::parse_oauthbearer(input, o);
    if (!r) return err(r.error());
    REQUIRE(sasl::write_oauthbearer(out, *r, o) == errc::ok);
    CHECK(out == rewritten);
    const auto back = sasl::parse_oauthbearer(out, o);
    REQUIRE(back);
    CHECK(*back == *r);
    return std::string("cb=") + (r->cb_flag_y ? "y" : "n") + " authzid=" + escape_hex(r->authzid) +
           " host=" + escape_hex(r->host) + " port=" + escape_hex(r->port) +
           " token=" + escape_hex(r->token);
  }
  if (codec == "oauth-error") {
    const auto r = sasl::parse_oauth_error(input);
    if (!r) return err(r.error());
    REQUIRE(sasl::write_oauth_error(out, *r) == errc::ok);
    CHECK(out == rewritten);
    const auto back = sasl::parse_oauth_error(out);
    REQUIRE(back);
    CHECK(*back == *r);
    return "status=" + escape_hex(r->status) + " scope=" + escape_hex(r->scope) +
           " schemes=" + escape_hex(r->schemes) +
           " openid-configuration=" + escape_hex(r->openid_configuration);
  }
  FAIL("unknown codec " << codec);
  return {};
}

}  // namespace

TEST_CASE("sasl vectors", "[wire][sasl][vectors]") {
  for (const auto& v : smtpwire::test::load_vectors("sasl.md")) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const std::string codec = v.text("codec");
    const std::string input = v.bytes("input");
    if (v.has("base64")) CHECK(unbase64(v.text("base64")) == input);
    sasl::options o;
    if (v.has("options")) {
      const std::string opt = v.text("options");
      if (opt.rfind("max_field=", 0) == 0)
        o.max_field = std::stoul(opt.substr(10));
      else if (opt.rfind("max_token=", 0) == 0)
        o.max_token = std::stoul(opt.substr(10));
      else
        FAIL("unknown option " << opt);
    }
    const std::string rewritten = v.has("rewritten") ? v.bytes("rewritten") : input;
    CHECK(run(codec, input, o, rewritten) == v.text("expect"));
    smtpwire::test::guarded_input g(input);
    CHECK(run(codec, g.view(), o, rewritten) == v.text("expect"));
  }
}

TEST_CASE("PLAIN: the RFC 4616 255-octet minimum is the default limit", "[wire][sasl]") {
  const std::string f255(255, 'a'), f256(256, 'a');
  const std::string ok = f255 + '\0' + f255 + '\0' + f255;
  const auto r = sasl::parse_plain(ok);
  REQUIRE(r);
  CHECK(r->authzid.size() == 255);
  CHECK(r->passwd.size() == 255);
  for (const std::string& bad :
       {f256 + '\0' + "u" + '\0' + "p", "\0" + f256 + '\0' + "p", std::string("\0u\0", 3) + f256}) {
    CHECK(sasl::parse_plain(bad).error() == errc::sasl_message_invalid);
  }
  sasl::plain p{"", f256, "x"};
  std::string out = "keep";
  CHECK(sasl::write_plain(out, p) == errc::sasl_value_invalid);
  sasl::options big;
  big.max_field = 1024;
  CHECK(sasl::write_plain(out, p, big) == errc::ok);
  CHECK(out == "keep" + std::string(1, '\0') + f256 + '\0' + "x");
}

TEST_CASE("writers refuse NUL, ^A and other bytes their message cannot carry", "[wire][sasl]") {
  const std::string_view nul("a\0b", 3);
  const auto refused = [](errc e, const std::string& out) {
    CHECK(e == errc::sasl_value_invalid);
    CHECK(out.empty());
  };
  std::string out;
  refused(sasl::write_plain(out, {nul, "u", "p"}), out);
  refused(sasl::write_plain(out, {"", nul, "p"}), out);
  refused(sasl::write_plain(out, {"", "u", nul}), out);
  refused(sasl::write_plain(out, {"", "", "p"}), out);
  refused(sasl::write_plain(out, {"", "u", ""}), out);
  refused(sasl::write_plain(out, {"", "u", "\xff"}), out);
  refused(sasl::write_login_response(out, nul), out);
  refused(sasl::write_login_response(out, ""), out);
  refused(sasl::write_xoauth2(out, {"a\x01"
                                    "b",
                                    "tok"}),
          out);
  refused(sasl::write_xoauth2(out, {"a@b", "to\x01k"}), out);
  refused(sasl::write_xoauth2(out, {"a@b", "to ken"}), out);
  refused(sasl::write_xoauth2(out, {"a\r\nb", "tok"}), out);
  refused(sasl::write_xoauth2(out, {"", "tok"}), out);
  refused(sasl::write_xoauth2(out, {"a@b", ""}), out);
  sasl::oauthbearer ob;
  ob.token = "tok";
  ob.authzid = "a,b";
  refused(sasl::write_oauthbearer(out, ob), out);
  ob.authzid = "a\x01";
  refused(sasl::write_oauthbearer(out, ob), out);
  ob.authzid = "a=3";
  refused(sasl::write_oauthbearer(out, ob), out);
  ob.authzid = "";
  ob.host = "h\x01";
  refused(sasl::write_oauthbearer(out, ob), out);
  ob.host = "";
  ob.port = "0";
  refused(sasl::write_oauthbearer(out, ob), out);
  ob.port = "123456";
  refused(sasl::write_oauthbearer(out, ob), out);
  ob.port = "";
  ob.token = "";
  refused(sasl::write_oauthbearer(out, ob), out);
  refused(sasl::write_oauth_error(out, {}), out);
  refused(sasl::write_oauth_error(out, {"a\"b", "", "", ""}), out);
  refused(sasl::write_oauth_error(out, {"ok", "a\\", "", ""}), out);
  refused(sasl::write_oauth_error(out, {"ok", "", "\x01", ""}), out);
  refused(sasl::write_oauth_error(out, {"ok", "", "", "\\u12"}), out);
}

TEST_CASE("OAUTHBEARER error acknowledgement and saslname escaping", "[wire][sasl]") {
  CHECK(sasl::is_oauthbearer_error_ack(std::string_view("\x01", 1)));
  CHECK_FALSE(sasl::is_oauthbearer_error_ack(""));
  CHECK_FALSE(sasl::is_oauthbearer_error_ack("\x01\x01"));
  std::string wire_form;
  REQUIRE(sasl::append_saslname_escaped(wire_form, "a,b=c@d") == errc::ok);
  CHECK(wire_form == "a=2Cb=3Dc@d");
  std::string plain;
  REQUIRE(sasl::append_saslname_unescaped(plain, wire_form) == errc::ok);
  CHECK(plain == "a,b=c@d");
  std::string out;
  CHECK(sasl::append_saslname_escaped(out, "") == errc::sasl_value_invalid);
  CHECK(sasl::append_saslname_escaped(out, "a\x01") == errc::sasl_value_invalid);
  CHECK(sasl::append_saslname_unescaped(out, "a=") == errc::sasl_value_invalid);
  CHECK(sasl::append_saslname_unescaped(out, "a,b") == errc::sasl_value_invalid);
  CHECK(out.empty());
  // The escaped form goes into the message; the parser hands it back as written.
  sasl::oauthbearer ob;
  ob.authzid = wire_form;
  ob.token = "T";
  REQUIRE(sasl::write_oauthbearer(out, ob) == errc::ok);
  CHECK(out ==
        "n,a=a=2Cb=3Dc@d,\x01"
        "auth=Bearer T\x01\x01");
}

TEST_CASE("mechanism names", "[wire][sasl]") {
  for (std::size_t i = 0; i < sasl::mechanism_count; ++i) {
    const auto m = static_cast<sasl::mechanism>(i);
    CHECK(sasl::is_mechanism_name(sasl::to_string(m)));
    CHECK(sasl::find_mechanism(sasl::to_string(m)) == m);
  }
  CHECK(sasl::find_mechanism("scram-sha-256-plus") == sasl::mechanism::scram_sha_256_plus);
  CHECK(sasl::find_mechanism("SCRAM-SHA-256-PLU") == sasl::mechanism::unknown);
  CHECK(sasl::find_mechanism("") == sasl::mechanism::unknown);
  CHECK(sasl::is_mechanism_name("X_Y-1"));
  CHECK(sasl::is_mechanism_name(std::string(20, 'A')));
  CHECK_FALSE(sasl::is_mechanism_name(std::string(21, 'A')));
  CHECK_FALSE(sasl::is_mechanism_name(""));
  CHECK_FALSE(sasl::is_mechanism_name("A=B"));
  sasl::mechanism_set s;
  CHECK(s.empty());
  s.add(sasl::mechanism::ntlm);
  s.add(sasl::mechanism::unknown);
  CHECK(s.has(sasl::mechanism::ntlm));
  CHECK_FALSE(s.has(sasl::mechanism::unknown));
  CHECK(s.bits() == 1u << static_cast<unsigned>(sasl::mechanism::ntlm));
  s.remove(sasl::mechanism::ntlm);
  CHECK(s.empty());
}

TEST_CASE("seeded generator: parse(write(x)) == x for every codec", "[wire][sasl]") {
  std::mt19937 rng(0x5a51);
  const auto gen = [&](std::string_view alphabet, std::size_t min, std::size_t max) {
    std::string s;
    const std::size_t n = min + rng() % (max - min + 1);
    for (std::size_t i = 0; i < n; ++i)
      s += alphabet[rng() % alphabet.size()];
    return s;
  };
  std::string utf8_text;
  for (char c = 0x20; c < 0x7f; ++c)
    utf8_text += c;
  const std::string token_chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
  for (int round = 0; round < 3000; ++round) {
    INFO("round " << round);
    std::string out;
    {
      // PLAIN: ASCII plus whole UTF-8 characters.
      const auto field = [&](std::size_t min) {
        std::string s = gen(utf8_text, min, 40);
        if (rng() % 3 == 0) s += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91";
        return s;
      };
      const std::string z = field(0), c = field(1), p = field(1);
      const sasl::plain v{z, c, p};
      REQUIRE(sasl::write_plain(out, v) == errc::ok);
      const auto back = sasl::parse_plain(out);
      REQUIRE(back);
      CHECK(*back == v);
    }
    {
      out.clear();
      const std::string u = gen(utf8_text, 1, 40), t = gen(token_chars, 1, 60) + gen("=", 0, 2);
      const sasl::xoauth2 v{u, t};
      REQUIRE(sasl::write_xoauth2(out, v) == errc::ok);
      const auto back = sasl::parse_xoauth2(out);
      REQUIRE(back);
      CHECK(*back == v);
    }
    {
      out.clear();
      std::string authzid;
      if (rng() % 2) {
        const std::string plain_name = gen(utf8_text, 1, 30);
        REQUIRE(sasl::append_saslname_escaped(authzid, plain_name) == errc::ok);
        std::string again;
        REQUIRE(sasl::append_saslname_unescaped(again, authzid) == errc::ok);
        CHECK(again == plain_name);
      }
      const std::string host = rng() % 2 ? gen(utf8_text, 1, 30) : std::string();
      const std::string port = rng() % 2 ? std::to_string(1 + rng() % 65535) : std::string();
      const std::string token = gen(token_chars, 1, 80);
      sasl::oauthbearer v;
      v.authzid = authzid;
      v.host = host;
      v.port = port;
      v.token = token;
      v.cb_flag_y = rng() % 2;
      REQUIRE(sasl::write_oauthbearer(out, v) == errc::ok);
      const auto back = sasl::parse_oauthbearer(out);
      REQUIRE(back);
      CHECK(*back == v);
    }
    {
      out.clear();
      const std::string json_text = gen("abc xyz:/._-019", 0, 30);
      const std::string st = gen("abc_019", 1, 10) + (rng() % 4 ? "" : "\\\"\\u00e9\\n");
      const std::string config = rng() % 2 ? json_text : std::string();
      const sasl::oauth_error v{st, json_text, rng() % 2 ? "Bearer" : "", config};
      REQUIRE(sasl::write_oauth_error(out, v) == errc::ok);
      const auto back = sasl::parse_oauth_error(out);
      REQUIRE(back);
      CHECK(*back == v);
    }
  }
}
