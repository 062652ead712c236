#include <smtpwire/wire/reply.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"
#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
using smtpwire::wire::enhanced_code;
using smtpwire::wire::reply;
using smtpwire::wire::reply_line;
using smtpwire::wire::reply_options;
using smtpwire::wire::reply_reader;
using smtpwire::wire::reply_result;
using smtpwire::wire::reply_status;
using smtpwire::wire::reply_view;
using smtpwire::wire::reply_write_options;

namespace {

using smtpwire::test::escape;

std::string code_text(const enhanced_code& e) {
  std::string s;
  REQUIRE(smtpwire::wire::write_enhanced_code(s, e) == errc::ok);
  return s;
}

reply_options parse_options(const smtpwire::test::vector_case& vc) {
  reply_options o;
  for (const auto& [key, v] : smtpwire::test::numeric_options(vc)) {
    if (key == "max_line_length")
      o.max_line_length = v;
    else if (key == "max_lines")
      o.max_lines = v;
    else if (key == "max_reply_bytes")
      o.max_reply_bytes = v;
    else if (key == "allow_8bit_text")
      o.allow_8bit_text = v != 0;
    else
      FAIL("unknown option " << key);
  }
  return o;
}

// Checks what the view promises, then logs it.
void log_reply(std::string& log, const reply_view& v) {
  if (!smtpwire::wire::is_valid_reply_code(v.code())) FAIL("invalid code in a reply view");
  const std::string_view raw = v.raw();
  if (raw.size() < 5 || raw.substr(raw.size() - 2) != "\r\n") FAIL("raw reply malformed");
  log += "reply " + std::to_string(v.code()) + "\n";
  std::size_t n = 0;
  for (const reply_line& l : v) {
    ++n;
    log += "  ";
    if (l.enhanced) log += "[" + code_text(*l.enhanced) + "] ";
    log += "\"" + escape(l.text) + "\"\n";
  }
  if (n != v.size()) FAIL("line count differs from size()");
}

// Feeds the chunks to one reader and logs what it produced. Errors are
// sticky: after one, the reader must keep returning it and consume nothing.
std::string run_replies(const std::vector<std::string_view>& chunks, const reply_options& opt,
                        std::vector<reply>* values = nullptr) {
  reply_reader reader(opt);
  const std::size_t cap = reader.buffer_capacity();
  std::string log;
  errc sticky = errc::ok;
  for (std::string_view c : chunks) {
    while (sticky == errc::ok) {
      const reply_result r = reader.read(c);
      if (r.consumed > c.size()) FAIL("consumed past the input");
      c.remove_prefix(r.consumed);
      if (r.status == reply_status::need_more) {
        if (!c.empty()) FAIL("need_more without consuming everything");
        break;
      }
      if (r.status == reply_status::error) {
        sticky = r.error;
        log += "error ";
        log += smtpwire::to_string(r.error);
        log += '\n';
        break;
      }
      log_reply(log, r.reply);
      if (values != nullptr) values->push_back(smtpwire::wire::to_reply(r.reply));
    }
    if (sticky != errc::ok) {
      const reply_result again = reader.read(c);
      if (again.status != reply_status::error || again.error != sticky || again.consumed != 0)
        FAIL("error not sticky");
      if (reader.error() != sticky) FAIL("error() disagrees");
    }
    if (reader.buffer_capacity() != cap) FAIL("buffers changed size");
  }
  log += sticky != errc::ok ? "end error\n" : reader.idle() ? "end idle\n" : "end partial\n";
  return log;
}

std::vector<std::string> wire_lines(std::string_view wire) {
  std::vector<std::string> out;
  while (!wire.empty()) {
    const auto crlf = wire.find("\r\n");
    REQUIRE(crlf != std::string_view::npos);
    out.emplace_back(wire.substr(0, crlf + 2));
    wire.remove_prefix(crlf + 2);
  }
  return out;
}

// Writes `x`, checks the wire form and that it parses back to fold_reply(x).
void check_round_trip(const reply& x, const reply_write_options& wopt) {
  std::string wire;
  REQUIRE(smtpwire::wire::write_reply(wire, x, wopt) == errc::ok);
  for (const std::string& l : wire_lines(wire))
    REQUIRE(l.size() <= wopt.max_line_length);
  reply_options ropt;
  ropt.max_lines = 1u << 20;
  ropt.max_reply_bytes = wire.size();
  const auto back = smtpwire::wire::parse_reply(wire, ropt);
  INFO("wire: " << escape(wire));
  REQUIRE(back.has_value());
  const auto folded = smtpwire::wire::fold_reply(x, wopt);
  REQUIRE(folded.has_value());
  REQUIRE(*back == *folded);
}

}  // namespace

TEST_CASE("reply vectors, in every chunking", "[wire][reply]") {
  for (const auto& vc : smtpwire::test::load_vectors("reply.md")) {
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    const std::string input = vc.bytes("input");
    const reply_options opt = parse_options(vc);
    const std::string log =
        smtpwire::test::grind(input, [&](const auto& chunks) { return run_replies(chunks, opt); });
    CHECK(log == vc.text("expect") + "\n");
    // Every reply of the vector survives write + parse (folded when the
    // server's lines were longer than a writer may send).
    std::vector<reply> values;
    (void)run_replies({input}, opt, &values);
    for (const reply& v : values)
      check_round_trip(v, {});
  }
}

TEST_CASE("reply vectors before a guard page", "[wire][reply]") {
  for (const auto& vc : smtpwire::test::load_vectors("reply.md")) {
    INFO(vc.name);
    const std::string input = vc.bytes("input");
    const reply_options opt = parse_options(vc);
    smtpwire::test::guarded_input g(input);
    CHECK(run_replies({g.view()}, opt) == vc.text("expect") + "\n");
    for (std::size_t i = 1; i < input.size(); ++i) {
      smtpwire::test::guarded_input tail(std::string_view(input).substr(i));
      (void)run_replies({tail.view()}, opt);
    }
  }
}

TEST_CASE("reply codes", "[wire][reply]") {
  using smtpwire::wire::is_valid_reply_code;
  for (int c : {200, 211, 220, 250, 354, 421, 450, 500, 550, 559, 505, 259})
    CHECK(is_valid_reply_code(c));
  for (int c : {0, 100, 199, 260, 369, 360, 560, 600, 999, -250, 2500})
    CHECK_FALSE(is_valid_reply_code(c));
}

TEST_CASE("enhanced status codes parse and write (RFC 3463 §2)", "[wire][reply]") {
  struct row {
    const char* text;
    int cls, subject, detail;
  };
  for (const row& r : {row{"2.0.0", 2, 0, 0}, row{"5.1.1", 5, 1, 1}, row{"4.7.0", 4, 7, 0},
                       row{"2.999.999", 2, 999, 999}, row{"5.10.100", 5, 10, 100}}) {
    INFO(r.text);
    const auto e = smtpwire::wire::parse_enhanced_code(r.text);
    REQUIRE(e.has_value());
    CHECK(*e == enhanced_code{static_cast<std::uint16_t>(r.cls),
                              static_cast<std::uint16_t>(r.subject),
                              static_cast<std::uint16_t>(r.detail)});
    CHECK(code_text(*e) == r.text);
  }
  for (const char* bad : {"",        "2",      "2.0",    "2.0.",     "3.0.0",    "6.0.0",  "0.0.0",
                          "2.00.0",  "2.01.1", "2.1.01", "2.1000.0", "2.1.1000", "2.0.0 ", " 2.0.0",
                          "2.0.0.0", "2.a.0",  "a.0.0",  "2..0",     "2.0..0",   "2-0-0"}) {
    INFO(bad);
    CHECK(smtpwire::wire::parse_enhanced_code(bad).error() == errc::enhanced_code_invalid);
  }
  std::string out = "keep";
  CHECK(smtpwire::wire::write_enhanced_code(out, {3, 0, 0}) == errc::enhanced_code_invalid);
  CHECK(smtpwire::wire::write_enhanced_code(out, {2, 1000, 0}) == errc::enhanced_code_invalid);
  CHECK(smtpwire::wire::write_enhanced_code(out, {5, 0, 1000}) == errc::enhanced_code_invalid);
  CHECK(out == "keep");
}

TEST_CASE("reply writer table: value <-> bytes", "[wire][reply]") {
  const std::optional<enhanced_code> none;
  struct row {
    reply value;
    const char* wire;
  };
  const row rows[] = {
      {{250, none, {"OK"}}, "250 OK\r\n"},
      {{250, enhanced_code{2, 1, 0}, {"Ok"}}, "250 2.1.0 Ok\r\n"},
      {{250, none, {"mx.example", "PIPELINING", "SIZE 10240000"}},
       "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n"},
      {{250, none, {""}}, "250\r\n"},
      {{250, none, {"", ""}}, "250-\r\n250\r\n"},
      {{250, enhanced_code{2, 0, 0}, {""}}, "250 2.0.0\r\n"},
      {{221, enhanced_code{2, 0, 0}, {"Bye", ""}}, "221-2.0.0 Bye\r\n221 2.0.0\r\n"},
      {{354, none, {"End data with <CR><LF>.<CR><LF>"}}, "354 End data with <CR><LF>.<CR><LF>\r\n"},
      {{550, enhanced_code{5, 1, 1}, {"a", "b"}}, "550-5.1.1 a\r\n550 5.1.1 b\r\n"},
      {{250, none, {" lead"}}, "250  lead\r\n"},
      {{250, enhanced_code{2, 0, 0}, {" lead"}}, "250 2.0.0  lead\r\n"},
      {{250, none, {"2.0.0 x", "y"}}, "250-2.0.0 x\r\n250 y\r\n"},
      {{250, none, {"5.0.0 other class"}}, "250 5.0.0 other class\r\n"},
      {{421, enhanced_code{4, 7, 0}, {"tab\there", "caf\xc3\xa9"}},
       "421-4.7.0 tab\there\r\n421 4.7.0 caf\xc3\xa9\r\n"},
      {{559, enhanced_code{5, 999, 999}, {"x"}}, "559 5.999.999 x\r\n"},
  };
  for (const row& r : rows) {
    INFO(r.wire);
    std::string out = "prefix";
    REQUIRE(smtpwire::wire::write_reply(out, r.value) == errc::ok);
    CHECK(out == std::string("prefix") + r.wire);
    const auto back = smtpwire::wire::parse_reply(r.wire);
    REQUIRE(back.has_value());
    CHECK(*back == r.value);
  }
}

TEST_CASE("reply writer refuses what it must not send", "[wire][reply]") {
  const std::optional<enhanced_code> none;
  struct row {
    reply value;
    errc error;
    std::size_t max_line_length;
  };
  const row rows[] = {
      {{250, none, {"O\rK"}}, errc::reply_text_invalid, 512},
      {{250, none, {"OK\r\n250 injected"}}, errc::reply_text_invalid, 512},
      {{250, none, {"a", "O\nK"}}, errc::reply_text_invalid, 512},
      {{250, none, {std::string("O\0K", 3)}}, errc::reply_text_invalid, 512},
      {{250, none, {"\x1b[2J"}}, errc::reply_text_invalid, 512},
      {{250, none, {"del\x7f"}}, errc::reply_text_invalid, 512},
      {{199, none, {"x"}}, errc::reply_code_invalid, 512},
      {{600, none, {"x"}}, errc::reply_code_invalid, 512},
      {{260, none, {"x"}}, errc::reply_code_invalid, 512},
      {{250, enhanced_code{4, 1, 1}, {"x"}}, errc::enhanced_code_invalid, 512},
      {{354, enhanced_code{3, 0, 0}, {"x"}}, errc::enhanced_code_invalid, 512},
      {{354, enhanced_code{2, 0, 0}, {"x"}}, errc::enhanced_code_invalid, 512},
      {{250, enhanced_code{2, 1000, 0}, {"x"}}, errc::enhanced_code_invalid, 512},
      {{250, none, {}}, errc::api_value_invalid, 512},
      {{250, enhanced_code{2, 0, 0}, {"x"}}, errc::api_value_invalid, 12},
      {{250, none, {"x"}}, errc::api_value_invalid, 6},
      // Would read back as an enhanced code on every line: pass it in `enhanced`.
      {{250, none, {"2.0.0 Ok"}}, errc::reply_text_invalid, 512},
      {{250, none, {"2.0.0"}}, errc::reply_text_invalid, 512},
      {{250, none, {"2.0.0 a", "2.0.0 b"}}, errc::reply_text_invalid, 512},
  };
  for (const row& r : rows) {
    INFO(escape(r.value.lines.empty() ? "" : r.value.lines.back()) << " " << r.value.code);
    std::string out = "keep";
    CHECK(smtpwire::wire::write_reply(out, r.value, {r.max_line_length}) == r.error);
    CHECK(out == "keep");
    CHECK(smtpwire::wire::fold_reply(r.value, {r.max_line_length}).error() == r.error);
  }
  std::string out;
  CHECK(smtpwire::wire::write_reply(out, 250, "2.1.0 Ok") == errc::reply_text_invalid);
  CHECK(smtpwire::wire::write_reply(out, 250, enhanced_code{2, 1, 0}, "Ok") == errc::ok);
  CHECK(out == "250 2.1.0 Ok\r\n");
}

TEST_CASE("reply writer folds long text into 512-octet lines", "[wire][reply]") {
  SECTION("at spaces") {
    std::string text;
    while (text.size() < 1500)
      text += "word" + std::to_string(text.size()) + " ";
    text.pop_back();
    std::string out;
    REQUIRE(smtpwire::wire::write_reply(out, 550, enhanced_code{5, 7, 1}, text) == errc::ok);
    const auto lines = wire_lines(out);
    REQUIRE(lines.size() >= 3);
    std::string joined;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string& l = lines[i];
      CHECK(l.size() <= 512);
      CHECK(l.compare(0, 10, i + 1 == lines.size() ? "550 5.7.1 " : "550-5.7.1 ") == 0);
      const std::string piece = l.substr(10, l.size() - 12);
      if (i + 1 != lines.size()) CHECK(piece.back() == ' ');  // folded after a space
      joined += piece;
    }
    CHECK(joined == text);
  }
  SECTION("hard split without spaces, never inside a UTF-8 sequence") {
    std::string text = "x";
    for (int i = 0; i < 400; ++i)
      text += "\xc3\xa9";
    std::string out;
    REQUIRE(smtpwire::wire::write_reply(out, 250, text) == errc::ok);
    const auto lines = wire_lines(out);
    REQUIRE(lines.size() == 2);
    // Budget 512 - "250-" - CRLF = 506; octet 506 is a continuation octet.
    CHECK(lines[0].size() == 4 + 505 + 2);
    CHECK(static_cast<unsigned char>(lines[1][4]) == 0xc3);
    CHECK(lines[0].substr(4, 505) + lines[1].substr(4, lines[1].size() - 6) == text);
  }
  SECTION("exactly 512 octets is not folded, 513 is") {
    const std::string fits(506, 'a');
    std::string out;
    REQUIRE(smtpwire::wire::write_reply(out, 250, fits) == errc::ok);
    CHECK(out.size() == 512);
    CHECK(wire_lines(out).size() == 1);
    out.clear();
    REQUIRE(smtpwire::wire::write_reply(out, 250, fits + "b") == errc::ok);
    CHECK(out == "250-" + fits + "\r\n250 b\r\n");
    const reply v{250, std::nullopt, {fits + "b"}};
    const auto folded = smtpwire::wire::fold_reply(v);
    REQUIRE(folded.has_value());
    CHECK(folded->lines == std::vector<std::string>{fits, "b"});
    CHECK(*smtpwire::wire::fold_reply(reply{250, std::nullopt, {fits}}) ==
          reply{250, std::nullopt, {fits}});
  }
  SECTION("EHLO writer from a braced list") {
    std::string out;
    REQUIRE(smtpwire::wire::write_reply_lines(
                out, 250, std::nullopt, {"mx.example.com", "PIPELINING", "8BITMIME"}) == errc::ok);
    CHECK(out == "250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
  }
}

TEST_CASE("reply round trip on seeded random values", "[wire][reply]") {
  std::mt19937 rng(0x5e7e);
  const std::vector<std::string> atoms = {"a",
                                          "Ok",
                                          " ",
                                          "  ",
                                          "\t",
                                          ".",
                                          "2",
                                          "5",
                                          "0",
                                          "1",
                                          "2.0.0",
                                          "5.1.1",
                                          "2.1.5 ",
                                          "x.y",
                                          "\xc3\xa9",
                                          "\xe2\x82\xac",
                                          "<bob@example.com>",
                                          "-",
                                          "250",
                                          "\"q\""};
  const int codes[] = {211, 214, 220, 221, 250, 251, 252, 354, 421, 450, 451, 452,
                       500, 501, 502, 503, 504, 550, 551, 552, 553, 554, 555, 235};
  int written = 0, refused = 0, folded_count = 0;
  for (int round = 0; round < 4000; ++round) {
    reply x;
    x.code = codes[rng() % (sizeof codes / sizeof codes[0])];
    if (x.code / 100 != 3 && rng() % 2 == 0)
      x.enhanced =
          enhanced_code{static_cast<std::uint16_t>(x.code / 100),
                        static_cast<std::uint16_t>(rng() % 3 == 0 ? rng() % 1000 : rng() % 8),
                        static_cast<std::uint16_t>(rng() % 3 == 0 ? rng() % 1000 : rng() % 8)};
    const std::size_t nlines = 1 + rng() % (rng() % 4 == 0 ? 30 : 4);
    for (std::size_t i = 0; i < nlines; ++i) {
      std::string t;
      const std::size_t target = rng() % 10 == 0 ? 300 + rng() % 1500 : rng() % 60;
      while (t.size() < target)
        t += atoms[rng() % atoms.size()];
      x.lines.push_back(t);
    }
    reply_write_options wopt;
    wopt.max_line_length = rng() % 4 == 0 ? 24 + rng() % 100 : 512;
    INFO("round " << round);
    std::string wire;
    const errc e = smtpwire::wire::write_reply(wire, x, wopt);
    if (e != errc::ok) {
      // The only refusal for these values: codes on every line, none given.
      REQUIRE(e == errc::reply_text_invalid);
      REQUIRE_FALSE(x.enhanced);
      ++refused;
      continue;
    }
    ++written;
    check_round_trip(x, wopt);
    // fold_reply(x) == x exactly when every line fits.
    const std::size_t enh_len = x.enhanced ? code_text(*x.enhanced).size() + 1 : 0;
    bool fits = true;
    for (const std::string& t : x.lines)
      fits = fits && 4 + enh_len + t.size() + 2 <= wopt.max_line_length;
    const auto folded = smtpwire::wire::fold_reply(x, wopt);
    REQUIRE(folded.has_value());
    CHECK((*folded == x) == fits);
    if (!fits) ++folded_count;
    // The pieces of each line, concatenated, are the line.
    std::size_t k = 0;
    for (const std::string& t : x.lines) {
      std::string acc;
      do {
        REQUIRE(k < folded->lines.size());
        acc += folded->lines[k++];
      } while (acc.size() < t.size());
      REQUIRE(acc == t);
    }
    REQUIRE(k == folded->lines.size());
    // Split invariance of the parse of what we wrote.
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0;;) {
      at += 1 + rng() % 64;
      if (at >= wire.size()) break;
      cuts.push_back(at);
    }
    reply_options ropt;
    ropt.max_lines = 1u << 20;
    ropt.max_reply_bytes = wire.size();
    REQUIRE(run_replies(smtpwire::test::views(smtpwire::test::split_at(wire, cuts)), ropt) ==
            run_replies({wire}, ropt));
  }
  CHECK(written > 3000);
  CHECK(refused > 0);
  CHECK(folded_count > 300);
}

TEST_CASE("reply views: in place when whole, buffered when split", "[wire][reply]") {
  reply_reader reader;
  const std::string in = "250-mx.example\r\n250 SIZE 100\r\n354 go\r\n";
  reply_result r = reader.read(in);
  REQUIRE(r.status == reply_status::reply);
  CHECK(r.consumed == 30);
  CHECK(r.reply.raw().data() == in.data());
  CHECK(r.reply.raw() == "250-mx.example\r\n250 SIZE 100\r\n");
  CHECK(r.reply.size() == 2);
  CHECK(r.reply.is_positive());
  CHECK(r.reply.is_positive_completion());
  CHECK_FALSE(r.reply.enhanced());
  r = reader.read(std::string_view(in).substr(30));
  REQUIRE(r.status == reply_status::reply);
  CHECK(r.reply.code() == 354);
  CHECK(r.reply.is_positive_intermediate());
  CHECK(reader.idle());

  const std::string a = "421-4.7.0 Try again later\r\n42", b = "1 4.7.0 closing\r\n";
  r = reader.read(a);
  CHECK(r.status == reply_status::need_more);
  CHECK_FALSE(reader.idle());
  r = reader.read(b);
  REQUIRE(r.status == reply_status::reply);
  CHECK(r.reply.raw() == a + b);
  CHECK((r.reply.raw().data() < a.data() || r.reply.raw().data() >= a.data() + a.size()));
  CHECK(r.reply.is_transient());
  CHECK_FALSE(r.reply.is_positive());
  REQUIRE(r.reply.enhanced());
  CHECK(*r.reply.enhanced() == enhanced_code{4, 7, 0});
  CHECK(r.reply.front().text == "Try again later");
  const reply v = smtpwire::wire::to_reply(r.reply);
  CHECK(v == reply{421, enhanced_code{4, 7, 0}, {"Try again later", "closing"}});
  CHECK(v.is_transient());
}

TEST_CASE("reply reader errors are sticky until reset", "[wire][reply]") {
  reply_reader reader;
  reply_result r = reader.read("250-a\r\n550 b\r\n");
  REQUIRE(r.status == reply_status::error);
  CHECK(r.error == errc::reply_code_mismatch);
  r = reader.read("250 fine\r\n");
  CHECK(r.status == reply_status::error);
  CHECK(r.error == errc::reply_code_mismatch);
  CHECK(r.consumed == 0);
  CHECK_FALSE(reader.idle());
  reader.reset();
  CHECK(reader.error() == errc::ok);
  r = reader.read("250 fine\r\n");
  CHECK(r.status == reply_status::reply);
}

TEST_CASE("STARTTLS: bytes after the 220 are visible", "[wire][reply]") {
  reply_reader reader;
  const std::string in = "220 2.0.0 Ready to start TLS\r\n250 injected";
  reply_result r = reader.read(in);
  REQUIRE(r.status == reply_status::reply);
  CHECK(r.reply.code() == 220);
  CHECK(reader.idle());
  CHECK(r.consumed < in.size());  // the caller sees the injected bytes left over
  r = reader.read(std::string_view(in).substr(r.consumed));
  CHECK(r.status == reply_status::need_more);
  CHECK_FALSE(reader.idle());
}

TEST_CASE("reply reader memory stays bounded", "[wire][reply]") {
  SECTION("10,000-line reply") {
    std::string in;
    for (int i = 0; i < 10000; ++i)
      in += "250-line " + std::to_string(i) + "\r\n";
    in += "250 end\r\n";
    for (std::size_t chunk : {in.size(), std::size_t{7}}) {
      reply_reader reader;
      const std::size_t cap = reader.buffer_capacity();
      CHECK(cap == 2048 + 16384);
      errc got = errc::ok;
      for (std::size_t at = 0; at < in.size() && got == errc::ok;) {
        const reply_result r = reader.read(std::string_view(in).substr(at, chunk));
        at += r.consumed;
        if (r.status == reply_status::reply) FAIL("a 10,000-line reply came back");
        if (r.status == reply_status::error) got = r.error;
        REQUIRE(reader.buffer_capacity() == cap);
      }
      CHECK(got == errc::reply_too_many_lines);
    }
    reply_options big;
    big.max_lines = 100000;
    reply_reader reader(big);
    CHECK(reader.read(in).error == errc::reply_too_long);
  }
  SECTION("endless line") {
    reply_reader reader;
    const std::size_t cap = reader.buffer_capacity();
    const std::string chunk = "250 " + std::string(4092, 'x');
    errc got = errc::ok;
    for (int i = 0; i < 256 && got == errc::ok; ++i) {
      const reply_result r = reader.read(chunk);
      if (r.status == reply_status::error) got = r.error;
      REQUIRE(reader.buffer_capacity() == cap);
    }
    CHECK(got == errc::line_too_long);
  }
  SECTION("a flood of replies one octet at a time") {
    reply_reader reader;
    const std::size_t cap = reader.buffer_capacity();
    const std::string one = "250-a\r\n250 2.1.5 Ok\r\n";
    std::size_t replies = 0;
    for (int i = 0; i < 5000; ++i)
      for (char ch : one) {
        const reply_result r = reader.read(std::string_view(&ch, 1));
        REQUIRE(r.consumed == 1);
        if (r.status == reply_status::reply) {
          REQUIRE(r.reply.raw() == one);
          ++replies;
        }
      }
    CHECK(replies == 5000);
    CHECK(reader.buffer_capacity() == cap);
  }
}
