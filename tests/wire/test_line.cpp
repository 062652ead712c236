#include <smtpwire/wire/line.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"
#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
using smtpwire::wire::line_options;
using smtpwire::wire::line_reader;
using smtpwire::wire::line_result;
using smtpwire::wire::line_status;

namespace {

using smtpwire::test::escape;

line_options parse_options(const smtpwire::test::vector_case& vc) {
  line_options o;
  for (const auto& [key, v] : smtpwire::test::numeric_options(vc)) {
    if (key == "max_line_length")
      o.max_line_length = v;
    else if (key == "allow_8bit")
      o.allow_8bit = v != 0;
    else
      FAIL("unknown option " << key);
  }
  return o;
}

// Feeds the chunks to one reader and logs what it produced; checks the
// reader's contract on every call.
std::string run_lines(const std::vector<std::string_view>& chunks, const line_options& opt) {
  line_reader reader(opt);
  const std::size_t max = reader.options().max_line_length;
  std::string log;
  for (std::string_view c : chunks) {
    for (;;) {
      const std::string_view before = c;
      const line_result r = reader.read(c);
      if (r.consumed > c.size()) FAIL("consumed past the input");
      c.remove_prefix(r.consumed);
      if (r.status == line_status::need_more) {
        if (!c.empty()) FAIL("need_more without consuming everything");
        break;
      }
      if (r.status == line_status::error) {
        if (r.error == errc::ok) FAIL("error status without an error");
        log += "error ";
        log += smtpwire::to_string(r.error);
        log += '\n';
        continue;
      }
      if (r.line.size() > max - 2) FAIL("line longer than the limit");
      if (r.in_input) {
        // The line and its CRLF lie in the consumed part of this input.
        if (r.line.data() < before.data() ||
            r.line.data() + r.line.size() + 2 > before.data() + r.consumed)
          FAIL("in_input line outside the consumed input");
      }
      bool high = false, control = false;
      for (char ch : r.line) {
        const auto u = static_cast<unsigned char>(ch);
        high = high || u >= 0x80;
        control = control || (u < 0x20 && u != '\t') || u == 0x7f;
      }
      if (r.has_8bit != high || r.has_control != control) FAIL("line flags wrong");
      log += "line \"" + escape(r.line) + "\"\n";
    }
    if (reader.buffer_capacity() > max) FAIL("buffer grew past the limit");
  }
  log += reader.idle() ? "end idle\n" : "end partial\n";
  return log;
}

// A byte-at-a-time model of the documented rules, written independently of
// the reader's chunk-scanning code.
std::string model_lines(std::string_view in, const line_options& opt) {
  const std::size_t content_max = (opt.max_line_length < 3 ? 3 : opt.max_line_length) - 2;
  std::string log, cur;
  bool discarding = false, prev_cr = false, pending_cr = false;
  auto error = [&](errc e) {
    log += "error ";
    log += smtpwire::to_string(e);
    log += '\n';
    cur.clear();
    discarding = true;
    prev_cr = false;
  };
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (pending_cr) {
      pending_cr = false;
      if (c == '\n') {
        log += "line \"" + escape(cur) + "\"\n";
        cur.clear();
        continue;
      }
      error(errc::bare_cr);
    }
    if (discarding) {
      if (c == '\n' && prev_cr) discarding = false;
      prev_cr = c == '\r';
      continue;
    }
    if (c == '\r')
      pending_cr = true;
    else if (c == '\n')
      error(errc::bare_lf);
    else if (c == 0)
      error(errc::nul_byte);
    else if (c >= 0x80 && !opt.allow_8bit)
      error(errc::eight_bit_byte);
    else if (cur.size() == content_max)
      error(errc::line_too_long);
    else
      cur += ch;
  }
  log += (discarding || pending_cr || !cur.empty()) ? "end partial\n" : "end idle\n";
  return log;
}

}  // namespace

TEST_CASE("line vectors, in every chunking", "[wire][line]") {
  for (const auto& vc : smtpwire::test::load_vectors("line.md")) {
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    const std::string input = vc.bytes("input");
    const line_options opt = parse_options(vc);
    const std::string log = smtpwire::test::grind(
        input, [&](const std::vector<std::string_view>& chunks) { return run_lines(chunks, opt); });
    CHECK(log == vc.text("expect") + "\n");
    CHECK(log == model_lines(input, opt));
  }
}

TEST_CASE("line vectors before a guard page", "[wire][line]") {
  for (const auto& vc : smtpwire::test::load_vectors("line.md")) {
    INFO(vc.name);
    const std::string input = vc.bytes("input");
    const line_options opt = parse_options(vc);
    smtpwire::test::guarded_input g(input);
    CHECK(run_lines({g.view()}, opt) == vc.text("expect") + "\n");
    // Every suffix ends at the guard page too: exercises every scan tail.
    for (std::size_t i = 1; i < input.size(); ++i) {
      smtpwire::test::guarded_input tail(std::string_view(input).substr(i));
      (void)run_lines({tail.view()}, opt);
    }
  }
}

TEST_CASE("line reader agrees with a byte-at-a-time model on random input", "[wire][line]") {
  std::mt19937 rng(20261129);
  const char alphabet[] = {'a',  'a',  'a',  'a',    'a',    'a',    'b',    ' ',  '\r',  '\r',
                           '\n', '\n', '\0', '\xc3', '\x80', '\x7f', '\x01', '\t', '\x1f'};
  for (int round = 0; round < 3000; ++round) {
    line_options opt;
    opt.max_line_length = rng() % 3 == 0 ? rng() % 8 : 3 + rng() % 70;
    opt.allow_8bit = rng() % 2 == 0;
    std::string in;
    const std::size_t n = rng() % 300;
    // Long runs of plain octets reach the 16-octet scan; breaks stay rare.
    for (std::size_t i = 0; i < n; ++i)
      in +=
          rng() % 4 == 0 ? alphabet[rng() % sizeof alphabet] : static_cast<char>('c' + rng() % 20);
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0;;) {
      at += 1 + rng() % 40;
      if (at >= in.size()) break;
      cuts.push_back(at);
    }
    const std::string expected = model_lines(in, opt);
    INFO("round " << round << " input \"" << escape(in) << "\"");
    REQUIRE(run_lines({in}, opt) == expected);
    REQUIRE(run_lines(smtpwire::test::views(smtpwire::test::split_at(in, cuts)), opt) == expected);
  }
}

TEST_CASE("line reader memory stays bounded", "[wire][line]") {
  line_options opt;  // 512
  line_reader reader(opt);
  const std::size_t cap = reader.buffer_capacity();
  CHECK(cap == 512);

  SECTION("an endless line is reported once and never stored") {
    const std::string chunk(4096, 'x');
    int errors = 0;
    for (int i = 0; i < 1024; ++i) {  // 4 MiB without CRLF
      std::string_view in = chunk;
      while (!in.empty()) {
        const line_result r = reader.read(in);
        in.remove_prefix(r.consumed);
        if (r.status == line_status::line) FAIL("an over-long line came back");
        if (r.status == line_status::error) {
          CHECK(r.error == errc::line_too_long);
          ++errors;
        }
      }
      REQUIRE(reader.buffer_capacity() == cap);
    }
    CHECK(errors == 1);
    CHECK_FALSE(reader.idle());
    // Its end, then a good line.
    std::string_view in = "tail\r\nQUIT\r\n";
    line_result r = reader.read(in);
    CHECK(r.status == line_status::line);
    CHECK(r.line == "QUIT");
    CHECK(reader.idle());
  }

  SECTION("a flood of short lines, 1 octet at a time, stays in the buffer") {
    const std::string line = "RCPT TO:<a@example.org>\r\n";
    std::size_t lines = 0;
    for (int i = 0; i < 20000; ++i) {
      for (char ch : line) {
        const line_result r = reader.read(std::string_view(&ch, 1));
        REQUIRE(r.consumed == 1);
        if (r.status == line_status::line) {
          REQUIRE_FALSE(r.in_input);
          REQUIRE(r.line == "RCPT TO:<a@example.org>");
          ++lines;
        }
      }
    }
    CHECK(lines == 20000);
    CHECK(reader.buffer_capacity() == cap);
  }
}

TEST_CASE("line reader returns lines in place when they are whole", "[wire][line]") {
  line_reader reader;
  const std::string in = "EHLO a.example\r\nMAIL FROM:<>\r\nRCPT";
  line_result r = reader.read(in);
  REQUIRE(r.status == line_status::line);
  CHECK(r.in_input);
  CHECK(r.line.data() == in.data());
  CHECK(r.consumed == 16);
  r = reader.read(std::string_view(in).substr(16));
  REQUIRE(r.status == line_status::line);
  CHECK(r.in_input);
  CHECK(r.line == "MAIL FROM:<>");
  r = reader.read(std::string_view(in).substr(30));
  CHECK(r.status == line_status::need_more);
  CHECK(r.consumed == 4);
  CHECK_FALSE(reader.idle());
  r = reader.read(" TO:<b@example.org>\r\n");
  REQUIRE(r.status == line_status::line);
  CHECK_FALSE(r.in_input);
  CHECK(r.line == "RCPT TO:<b@example.org>");
  CHECK(reader.idle());
}

TEST_CASE("line reader reset forgets a partial line", "[wire][line]") {
  line_reader reader;
  CHECK(reader.read("STARTTLS\r\nMAIL FROM:<inj").status == line_status::line);
  CHECK(reader.read("MAIL FROM:<inj").status == line_status::need_more);
  CHECK_FALSE(reader.idle());
  reader.reset();
  CHECK(reader.idle());
  const line_result r = reader.read("EHLO x\r\n");
  REQUIRE(r.status == line_status::line);
  CHECK(r.line == "EHLO x");
}

TEST_CASE("line reader options are normalised", "[wire][line]") {
  line_reader reader(line_options{0, true});
  CHECK(reader.options().max_line_length == 3);
  CHECK(reader.read("\r\n").status == line_status::line);
}
