#include <smtpwire/wire/data.hpp>

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
using smtpwire::detail::scan_kind;
using smtpwire::wire::data_decoder;
using smtpwire::wire::data_encoder;
using smtpwire::wire::data_encoder_options;
using smtpwire::wire::data_options;
using smtpwire::wire::data_result;
using smtpwire::wire::data_status;
using smtpwire::wire::encode_result;
using smtpwire::wire::encode_status;

namespace {

using smtpwire::test::escape;

// Every scanner this CPU can run; `scalar` is the byte-wise reference.
std::vector<scan_kind> kinds() {
  std::vector<scan_kind> k;
  for (scan_kind s :
       {scan_kind::scalar, scan_kind::swar, scan_kind::sse2, scan_kind::avx2, scan_kind::avx512})
    if (smtpwire::detail::scan_kind_available(s)) k.push_back(s);
  return k;
}

void parse_kv(const std::string& text, data_options* d, data_encoder_options* e) {
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos) FAIL("bad option " << tok);
    const std::string key = tok.substr(0, eq);
    const unsigned long long v = std::stoull(tok.substr(eq + 1));
    if (d && key == "max_message_size")
      d->max_message_size = v;
    else if (d && key == "bare_lf_in_data")
      d->bare_lf_in_data = v != 0;
    else if (d && key == "bare_cr_in_data")
      d->bare_cr_in_data = v != 0;
    else if (d && key == "nul_in_data")
      d->nul_in_data = v != 0;
    else if (d && key == "reject_8bit")
      d->reject_8bit = v != 0;
    else if (e && key == "normalize_line_ends")
      e->normalize_line_ends = v != 0;
    else if (e && key == "allow_nul")
      e->allow_nul = v != 0;
    else
      FAIL("unknown option " << key);
  }
}

struct decoded {
  std::string content;
  std::string log;
};

// Feeds the chunks to one decoder; checks its contract on every call and logs
// what it produced (content concatenated: view boundaries depend on the
// chunking, the bytes must not).
decoded run_decoder(const std::vector<std::string_view>& chunks, data_options opt) {
  data_decoder dec(opt);
  decoded out;
  std::string errors, end, rest;
  int ends = 0, error_events = 0;
  for (std::string_view c : chunks) {
    if (ends != 0) {
      rest.append(c.data(), c.size());
      continue;
    }
    for (int guard = 0;; ++guard) {
      if (guard > 1000000) FAIL("decoder does not progress");
      const data_result r = dec.decode(c);
      if (r.consumed > c.size()) FAIL("consumed past the input");
      c.remove_prefix(r.consumed);
      if (r.status == data_status::need_more) {
        if (!c.empty()) FAIL("need_more without consuming everything");
        if (!r.content.empty()) FAIL("content with need_more");
        break;
      }
      if (r.status == data_status::content) {
        if (r.content.empty()) FAIL("empty content");
        if (error_events != 0) FAIL("content after an error");
        out.content.append(r.content.data(), r.content.size());
        continue;
      }
      if (r.status == data_status::error) {
        if (r.error == errc::ok || ++error_events != 1) FAIL("error reported twice or empty");
        errors = "error " + std::string(smtpwire::to_string(r.error)) + " at " +
                 std::to_string(r.error_offset) + "\n";
        continue;
      }
      ++ends;
      if (r.error != dec.error()) FAIL("end carries another error");
      if ((r.error == errc::ok) != (error_events == 0)) FAIL("end error without an error event");
      end = "end at " + std::to_string(dec.wire_octets()) + "\n";
      rest.append(c.data(), c.size());
      const data_result again = dec.decode("more");
      if (again.status != data_status::end || again.consumed != 0) FAIL("not done after end");
      break;
    }
  }
  out.log = "content \"" + escape(out.content) + "\"\n" + errors +
            (ends ? end + "rest \"" + escape(rest) + "\"\n" : "no end\n");
  out.log += "stats octets=" + std::to_string(dec.octets()) +
             " lines=" + std::to_string(dec.lines()) + " 8bit=" + (dec.eight_bit() ? "1" : "0") +
             " long=" + (dec.long_lines() ? "1" : "0") + "\n";
  return out;
}

// An independent model of the rules, on the whole input at once: find the
// first "\r\n.\r\n" of CRLF + input, unstuff, then apply errors, leniencies
// and the size limit octet by octet. Returns the delivered content, the error
// line and the end line as run_decoder logs them (without stats).
std::string model_decoder(std::string_view in, const data_options& opt) {
  const std::string s = "\r\n" + std::string(in);
  const std::size_t q = s.find("\r\n.\r\n");
  const std::size_t region = q == std::string::npos ? in.size() : q;
  std::string content, error;
  auto at = [&](std::size_t j) -> int {
    return j < in.size() ? static_cast<unsigned char>(in[j]) : -1;
  };
  for (std::size_t j = 0; j < region; ++j) {
    const char c = in[j];
    const bool line_start = j == 0 || (j >= 2 && in[j - 2] == '\r' && in[j - 1] == '\n');
    if (c == '.' && line_start) continue;  // transparency dot (or the unseen end)
    // Without an end the last octet's successor may be unknown: a final CR
    // is held back, a final line-start dot is not content.
    if (q == std::string::npos && c == '\r' && j + 1 == in.size()) {
      // Unless a line-start dot precedes it (it may end the message), the
      // CR is content whatever follows: only the size limit can fail it.
      const bool after_dot = j >= 1 && in[j - 1] == '.' &&
                             (j == 1 || (j >= 3 && in[j - 3] == '\r' && in[j - 2] == '\n'));
      if (after_dot) break;
      if (content.size() >= opt.max_message_size)
        error = "error message_too_big at " + std::to_string(j) + "\n";
      break;
    }
    std::string piece(1, c);
    errc e = errc::ok;
    if (c == '\r' && at(j + 1) != '\n') {
      if (opt.bare_cr_in_data)
        piece = "\r\n";
      else
        e = errc::data_bare_cr;
    } else if (c == '\n' && (j == 0 || in[j - 1] != '\r')) {
      if (opt.bare_lf_in_data)
        piece = "\r\n";
      else
        e = errc::data_bare_lf;
    } else if (c == '\0' && !opt.nul_in_data) {
      e = errc::data_nul;
    } else if (static_cast<unsigned char>(c) >= 0x80 && opt.reject_8bit) {
      e = errc::data_8bit_not_declared;
    }
    if (content.size() >= opt.max_message_size ||
        content.size() + piece.size() > opt.max_message_size)
      e = errc::message_too_big;
    if (e != errc::ok) {
      error = "error " + std::string(smtpwire::to_string(e)) + " at " + std::to_string(j) + "\n";
      break;
    }
    content += piece;
  }
  std::string log = "content \"" + escape(content) + "\"\n" + error;
  if (q == std::string::npos)
    log += "no end\n";
  else
    log += "end at " + std::to_string(q + 3) + "\nrest \"" + escape(in.substr(q + 3)) + "\"\n";
  return log;
}

std::string without_stats(const std::string& log) {
  return log.substr(0, log.rfind("stats "));
}

std::string run_encoder(const std::vector<std::string_view>& chunks, data_encoder_options opt) {
  data_encoder enc(opt);
  std::string wire, err;
  auto take = [&](const encode_result& r) {
    if (r.status == encode_status::output) {
      if (r.output.empty()) FAIL("empty output");
      wire.append(r.output.data(), r.output.size());
    } else if (r.status == encode_status::error) {
      err = "error " + std::string(smtpwire::to_string(r.error)) + " at " +
            std::to_string(r.error_offset) + "\n";
    }
  };
  for (std::string_view c : chunks) {
    while (err.empty()) {
      const encode_result r = enc.encode(c);
      if (r.consumed > c.size()) FAIL("consumed past the input");
      c.remove_prefix(r.consumed);
      take(r);
      if (r.status == encode_status::need_more) {
        if (!c.empty()) FAIL("need_more without consuming everything");
        break;
      }
    }
  }
  for (int k = 0; err.empty(); ++k) {
    if (k > 3) FAIL("finish does not end");
    const encode_result r = enc.finish();
    take(r);
    if (r.status == encode_status::done) break;
  }
  // The refused octet's offset is checked in the log; the octets before it
  // may have been sent already, so the wire so far is logged too.
  return "wire \"" + escape(wire) + "\"\n" + err;
}

// What the encoder promises: bare CR / bare LF become CRLF, and a non-empty
// message ends with CRLF.
std::string normalise(std::string_view x) {
  std::string out;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] == '\r') {
      out += "\r\n";
      if (i + 1 < x.size() && x[i + 1] == '\n') ++i;
    } else if (x[i] == '\n') {
      out += "\r\n";
    } else {
      out += x[i];
    }
  }
  if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0))
    out += "\r\n";
  return out;
}

std::string decode_all(std::string_view wire, data_options opt) {
  const decoded d = run_decoder({wire}, opt);
  if (d.log.find("\nerror ") != std::string::npos || d.log.find("no end") != std::string::npos)
    FAIL("decode failed: " << d.log);
  return d.content;
}

std::string random_message(std::mt19937& rng, std::string_view alphabet, std::size_t max_len) {
  std::string s(rng() % (max_len + 1), 'a');
  for (char& c : s)
    c = alphabet[rng() % alphabet.size()];
  return s;
}

std::vector<std::string_view> random_chunks(std::string_view s, std::mt19937& rng) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const std::size_t n = 1 + rng() % (1 + (rng() % 2 ? 7 : 200));
    out.push_back(s.substr(0, n));
    s.remove_prefix(n < s.size() ? n : s.size());
  }
  if (out.empty()) out.push_back(s);
  return out;
}

}  // namespace

TEST_CASE("data decoder vectors, every scanner, every chunking", "[wire][data]") {
  int cases = 0;
  for (const auto& vc : smtpwire::test::load_vectors("data.md")) {
    if (!vc.has("input")) continue;
    ++cases;
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    const std::string input = vc.bytes("input");
    data_options opt;
    if (vc.has("options")) parse_kv(vc.text("options"), &opt, nullptr);
    std::string first;
    for (scan_kind k : kinds()) {
      INFO("scanner " << smtpwire::detail::to_string(k));
      opt.scan = k;
      const std::string log = smtpwire::test::grind(
          input, [&](const std::vector<std::string_view>& ch) { return run_decoder(ch, opt).log; });
      CHECK(without_stats(log) == vc.text("expect") + "\n");
      CHECK(without_stats(log) == model_decoder(input, opt));
      if (vc.has("stats"))
        CHECK(log.substr(log.rfind("stats ")) == "stats " + vc.text("stats") + "\n");
      if (first.empty()) first = log;
      CHECK(log == first);
    }
    // Content that decoded cleanly survives a round trip through the encoder.
    const decoded d = run_decoder({input}, opt);
    if (d.log.find("\nerror ") == std::string::npos && d.log.find("no end") == std::string::npos &&
        !opt.nul_in_data) {
      std::string wire;
      REQUIRE(smtpwire::wire::encode_data(wire, d.content) == errc::ok);
      CHECK(decode_all(wire, data_options{}) == d.content);
    }
  }
  CHECK(cases >= 40);
}

TEST_CASE("decoder vectors shifted across 64-octet blocks agree with the model", "[wire][data]") {
  // The block scanners only run on inputs longer than a block, so each
  // vector is replayed behind a content line of every length that moves it
  // across a block edge, and followed by filler lines, whole and in chunks.
  std::mt19937 rng(3);
  for (const auto& vc : smtpwire::test::load_vectors("data.md")) {
    if (!vc.has("input")) continue;
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    data_options opt;
    if (vc.has("options")) parse_kv(vc.text("options"), &opt, nullptr);
    if (opt.max_message_size != data_options{}.max_message_size) opt.max_message_size += 200;
    for (std::size_t pad = 0; pad < 130; ++pad) {
      const std::string input = std::string(pad, 'P') + "\r\n" + vc.bytes("input") +
                                std::string(70, 'Z') + "\r\n" + std::string(70, 'Z');
      const std::string model = model_decoder(input, opt);
      std::string first;
      for (scan_kind k : kinds()) {
        INFO("pad " << pad << " scanner " << smtpwire::detail::to_string(k));
        opt.scan = k;
        const std::string whole = run_decoder({input}, opt).log;
        CHECK(without_stats(whole) == model);
        if (first.empty()) first = whole;
        CHECK(whole == first);
        CHECK(run_decoder(random_chunks(input, rng), opt).log == whole);
      }
    }
  }
}

TEST_CASE("data encoder vectors, every scanner, every chunking", "[wire][data]") {
  int cases = 0;
  for (const auto& vc : smtpwire::test::load_vectors("data.md")) {
    if (!vc.has("message")) continue;
    ++cases;
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    const std::string message = vc.bytes("message");
    data_encoder_options opt;
    if (vc.has("options")) parse_kv(vc.text("options"), nullptr, &opt);
    std::string expect = "wire \"" + escape(vc.bytes("wire")) + "\"\n";
    if (vc.has("error")) expect += vc.text("error") + "\n";
    for (scan_kind k : kinds()) {
      INFO("scanner " << smtpwire::detail::to_string(k));
      opt.scan = k;
      const std::string log = smtpwire::test::grind(
          message, [&](const std::vector<std::string_view>& ch) { return run_encoder(ch, opt); });
      CHECK(log == expect);
    }
    if (!vc.has("error")) {
      data_options dopt;
      dopt.nul_in_data = opt.allow_nul;
      CHECK(decode_all(vc.bytes("wire"), dopt) == normalise(message));
    }
  }
  CHECK(cases >= 12);
}

TEST_CASE("data decoder vectors before a guard page", "[wire][data]") {
  for (const auto& vc : smtpwire::test::load_vectors("data.md")) {
    if (!vc.has("input")) continue;
    INFO(vc.name);
    const std::string input = vc.bytes("input");
    data_options opt;
    if (vc.has("options")) parse_kv(vc.text("options"), &opt, nullptr);
    for (scan_kind k : kinds()) {
      opt.scan = k;
      smtpwire::test::guarded_input g(input);
      CHECK(without_stats(run_decoder({g.view()}, opt).log) == vc.text("expect") + "\n");
      for (std::size_t i = 1; i < input.size(); ++i) {
        smtpwire::test::guarded_input tail(std::string_view(input).substr(i));
        (void)run_decoder({tail.view()}, opt);
      }
    }
  }
}

TEST_CASE("decoder: scanners agree with each other and with the model on random data",
          "[wire][data]") {
  std::mt19937 rng(20240101);
  const std::string_view alphabets[] = {
      std::string_view(".\r\na\0", 5),
      std::string_view(".\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 50),
      std::string_view("\r\n..abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
                       "0123456789\xc3\xa9",
                       76),
      std::string_view("\r\n.\x80", 4),
  };
  for (int round = 0; round < 3000; ++round) {
    const std::string_view alphabet = alphabets[round % 4];
    std::string msg = random_message(rng, alphabet, round % 3 == 0 ? 600 : 150);
    if (round % 2) msg += "\r\n.\r\nQUIT\r\n";
    data_options opt;
    opt.bare_lf_in_data = rng() % 4 == 0;
    opt.bare_cr_in_data = rng() % 4 == 0;
    opt.nul_in_data = rng() % 4 == 0;
    opt.reject_8bit = rng() % 4 == 0;
    if (rng() % 3 == 0) opt.max_message_size = rng() % 300;
    INFO("round " << round << " input \"" << escape(msg) << "\"");
    const std::string model = model_decoder(msg, opt);
    std::string whole_scalar;
    for (scan_kind k : kinds()) {
      opt.scan = k;
      const std::string whole = run_decoder({msg}, opt).log;
      if (whole_scalar.empty()) whole_scalar = whole;
      CHECK(whole == whole_scalar);
      CHECK(without_stats(whole) == model);
      CHECK(run_decoder(random_chunks(msg, rng), opt).log == whole);
    }
  }
}

// Mail-like content: CRLF lines of 0..300 octets (a few of 900..1100), with
// rare special octets — line-start dots, bare CR / LF, NUL, 8-bit octets
// (among them 0x8a, 0x8d, 0xae: LF, CR and '.' with bit 7 set) — so that
// the scanners' multi-block looks both succeed over long runs and fail at
// every kind of octet in every position of a look.
std::string mail_like(std::mt19937& rng, std::size_t size, unsigned special_per_mille) {
  static const char specials[] = {'.', '\r', '\n', '\0', '\x80', '\x8a', '\x8d', '\xae', '\xff'};
  std::string s;
  while (s.size() < size) {
    std::size_t len = rng() % 16 == 0 ? 900 + rng() % 201 : rng() % 301;
    for (std::size_t i = 0; i < len; ++i) {
      if (rng() % 1000 < special_per_mille)
        s += specials[rng() % sizeof specials];
      else
        s += static_cast<char>('A' + rng() % 58);
    }
    s += "\r\n";
  }
  return s;
}

TEST_CASE("decoder and encoder: scanners agree on long mail-like content", "[wire][data]") {
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    const std::string body =
        mail_like(rng, 1000 + rng() % 5000, round % 3 == 0 ? 0 : 1 + round % 4);
    const std::string msg = body + (round % 2 ? ".\r\nQUIT\r\n" : "");
    data_options opt;
    opt.bare_lf_in_data = rng() % 4 == 0;
    opt.bare_cr_in_data = rng() % 4 == 0;
    opt.nul_in_data = rng() % 4 == 0;
    opt.reject_8bit = rng() % 8 == 0;
    if (rng() % 4 == 0) opt.max_message_size = rng() % 6000;
    INFO("round " << round);
    const std::string model = model_decoder(msg, opt);
    std::string whole_scalar, wire_scalar;
    data_encoder_options eo;
    eo.allow_nul = rng() % 2 == 0;
    eo.normalize_line_ends = rng() % 2 == 0;
    for (scan_kind k : kinds()) {
      INFO("scanner " << smtpwire::detail::to_string(k));
      opt.scan = k;
      const std::string whole = run_decoder({msg}, opt).log;
      if (whole_scalar.empty()) whole_scalar = whole;
      CHECK(whole == whole_scalar);
      CHECK(without_stats(whole) == model);
      CHECK(run_decoder(random_chunks(msg, rng), opt).log == whole);
      eo.scan = k;
      const std::string wire = run_encoder({body}, eo);
      if (wire_scalar.empty()) wire_scalar = wire;
      CHECK(wire == wire_scalar);
      CHECK(run_encoder(random_chunks(body, rng), eo) == wire);
    }
  }
}

TEST_CASE("decoder: statistics", "[wire][data]") {
  for (scan_kind k : kinds()) {
    INFO(smtpwire::detail::to_string(k));
    data_options opt;
    opt.scan = k;
    // Lines of 997..1000 octets, with and without a transparency dot (which
    // does not count), their ends at every position of a 64-octet block and
    // followed by enough lines that the block scanner sees them.
    for (std::size_t len : {997u, 998u, 999u, 1000u}) {
      for (int dot = 0; dot < 2; ++dot) {
        for (std::size_t pad = 0; pad < 66; ++pad) {
          std::string msg = "Subject: " + std::string(pad, 'p') + "\r\n\r\n";
          msg += dot ? ".." : "";
          msg += std::string(len - (dot ? 1 : 0), 'x');
          for (int k = 0; k < 4; ++k)
            msg += "\r\n" + std::string(70, 'y');
          msg += "\r\n.\r\n";
          const decoded d = run_decoder({msg}, opt);
          INFO("len " << len << " dot " << dot << " pad " << pad);
          CHECK(d.log.find(len > 998 ? "long=1" : "long=0") != std::string::npos);
          CHECK(d.log.find("lines=7 ") != std::string::npos);
          const std::size_t octets = 9 + pad + 4 + len + 4 * 72 + 2;
          CHECK(d.log.find("octets=" + std::to_string(octets) + " ") != std::string::npos);
        }
      }
    }
    const decoded e = run_decoder({std::string_view("caf\xc3\xa9\r\n.\r\n")}, opt);
    CHECK(e.log.find("8bit=1") != std::string::npos);
  }
}

TEST_CASE("decoder: errors are reported once and decoding goes on to the real end",
          "[wire][data]") {
  for (scan_kind k : kinds()) {
    data_options opt;
    opt.scan = k;
    opt.max_message_size = 100;
    data_decoder dec(opt);
    // Over the limit, with a fake end and a bare LF inside the drained part.
    std::string msg(300, 'a');
    msg += "\r\n\n.\nMAIL FROM:<x@y>\r\n..\r\n.\r\nRSET\r\n";
    std::string_view in = msg;
    int errors = 0, content = 0;
    for (;;) {
      const data_result r = dec.decode(in);
      in.remove_prefix(r.consumed);
      if (r.status == data_status::content) content += static_cast<int>(r.content.size());
      if (r.status == data_status::error) {
        ++errors;
        CHECK(r.error == errc::message_too_big);
        CHECK(r.error_offset == 100);
      }
      if (r.status == data_status::end || r.status == data_status::need_more) break;
    }
    CHECK(errors == 1);
    CHECK(content == 100);
    CHECK(dec.done());
    CHECK(in == "RSET\r\n");
    CHECK(dec.error() == errc::message_too_big);
    dec.reset();
    CHECK_FALSE(dec.done());
    CHECK(dec.error() == errc::ok);
    CHECK(dec.decode(".\r\n").status == data_status::end);
  }
}

TEST_CASE("decoder: a long message streams through a small buffer", "[wire][data]") {
  // 16 MiB of MIME-like lines fed 4 KiB at a time: memory is the decoder
  // object itself (a few words), whatever the size.
  static_assert(sizeof(data_decoder) <= 160, "the decoder holds no buffer");
  std::string block;
  while (block.size() < 4096 - 78)
    block += std::string(76, 'Q') + "\r\n";
  block += std::string(4096 - block.size() - 2, '.') + "\r\n";  // a line-start dot run
  data_decoder dec;
  std::uint64_t content = 0;
  const std::uint64_t blocks = (16u << 20) / block.size();
  for (std::uint64_t b = 0; b < blocks; ++b) {
    std::string_view in = block;
    while (!in.empty()) {
      const data_result r = dec.decode(in);
      in.remove_prefix(r.consumed);
      REQUIRE(r.status != data_status::error);
      REQUIRE(r.status != data_status::end);
      content += r.content.size();
    }
  }
  std::string_view tail = ".\r\n";
  data_result r;
  while ((r = dec.decode(tail)).status == data_status::content)
    tail.remove_prefix(r.consumed);
  CHECK(r.status == data_status::end);
  CHECK(content == dec.octets());
  CHECK(content == blocks * (block.size() - 1));
}

TEST_CASE("property: decode(encode(x)) == normalise(x), every chunking", "[wire][data]") {
  std::mt19937 rng(7);
  const std::string_view alphabets[] = {
      std::string_view(".\r\na\0", 5),
      std::string_view(".\r\n", 3),
      std::string_view("ab.\r\n\xff cdefghijklmnopqrstuvwxyz", 31),
  };
  for (int round = 0; round < 4000; ++round) {
    const std::string x = random_message(rng, alphabets[round % 3], round % 5 == 0 ? 700 : 60);
    INFO("x \"" << escape(x) << "\"");
    data_encoder_options eo;
    eo.allow_nul = true;
    data_options dopt;
    dopt.nul_in_data = true;
    for (scan_kind k : kinds()) {
      eo.scan = k;
      dopt.scan = k;
      const std::string wire_log = run_encoder(random_chunks(x, rng), eo);
      REQUIRE(wire_log.find("\"\n") == wire_log.size() - 2);  // no error
      std::string wire;
      REQUIRE(smtpwire::wire::encode_data(wire, x, eo) == errc::ok);
      CHECK(wire_log == "wire \"" + escape(wire) + "\"\n");
      const decoded d = run_decoder(random_chunks(wire + "NOOP\r\n", rng), dopt);
      CHECK(d.content == normalise(x));
      CHECK(d.log.find("rest \"NOOP\\r\\n\"") != std::string::npos);
    }
    // Default options refuse NUL, and only NUL.
    std::string wire;
    const errc e = smtpwire::wire::encode_data(wire, x);
    CHECK((e == errc::data_nul) == (x.find('\0') != std::string::npos));
    CHECK((e == errc::ok) == (wire.size() > 0));
  }
}

TEST_CASE("encoder refuses bare line ends when asked to", "[wire][data]") {
  data_encoder_options o;
  o.normalize_line_ends = false;
  std::string w;
  CHECK(smtpwire::wire::encode_data(w, "a\nb", o) == errc::data_bare_lf);
  CHECK(smtpwire::wire::encode_data(w, "a\rb", o) == errc::data_bare_cr);
  CHECK(smtpwire::wire::encode_data(w, "a\r", o) == errc::data_bare_cr);
  CHECK(w.empty());
  CHECK(smtpwire::wire::encode_data(w, "a\r\n", o) == errc::ok);
  CHECK(w == "a\r\n.\r\n");
  data_encoder enc;
  (void)enc.encode("x");
  (void)enc.finish();
  CHECK(enc.encode("y").error == errc::api_bad_state);
}
