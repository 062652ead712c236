#include <smtpwire/wire/bdat.hpp>
#include <smtpwire/wire/command.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
using smtpwire::wire::bdat_options;
using smtpwire::wire::bdat_piece;
using smtpwire::wire::bdat_reader;
using smtpwire::wire::bdat_result;
using smtpwire::wire::bdat_splitter;
using smtpwire::wire::bdat_status;

namespace {

using smtpwire::test::escape;

std::string run_bdat(const std::vector<std::string_view>& chunks, bdat_options opt) {
  bdat_reader reader(opt);
  std::string log, line, chunk;
  bool in_chunk = false;
  for (std::string_view c : chunks) {
    while (!c.empty() || in_chunk) {
      if (in_chunk) {
        const bdat_result r = reader.read(c);
        if (r.consumed > c.size()) FAIL("consumed past the input");
        c.remove_prefix(r.consumed);
        if (r.status == bdat_status::content) {
          if (r.content.empty()) FAIL("empty content");
          chunk.append(r.content.data(), r.content.size());
          continue;
        }
        if (r.status == bdat_status::need_more) {
          if (!c.empty()) FAIL("need_more with input left");
          break;
        }
        log += "chunk \"" + escape(chunk) + "\" end " + (r.last ? "last " : "") +
               std::string(smtpwire::to_string(r.error)) + "\n";
        chunk.clear();
        in_chunk = false;
        if (reader.in_chunk()) FAIL("still in a chunk after chunk_end");
        continue;
      }
      line += c.front();
      c.remove_prefix(1);
      if (line.size() < 2 || line.compare(line.size() - 2, 2, "\r\n") != 0) continue;
      line.resize(line.size() - 2);
      // Command lines go through the real command grammar.
      const auto cmd = smtpwire::wire::parse_command(line);
      if (cmd && cmd->kind == smtpwire::wire::verb::bdat) {
        const errc e = reader.begin_chunk(cmd->size, cmd->last);
        log += "bdat " + std::to_string(cmd->size) + (cmd->last ? " last" : "") + " -> " +
               std::string(smtpwire::to_string(e)) + "\n";
        in_chunk = e != errc::api_bad_state;
      } else if (cmd.error() == errc::bdat_syntax) {
        log += "syntax \"" + escape(line) + "\"\n";
      } else if (cmd.error() == errc::bdat_size_overflow) {
        log += "overflow \"" + escape(line) + "\"\n";
      } else {
        log += "command \"" + escape(line) + "\"\n";
      }
      line.clear();
    }
  }
  if (in_chunk) {
    if (!chunk.empty()) log += "chunk so far \"" + escape(chunk) + "\"\n";
    log += "open " + std::to_string(reader.remaining()) + "\n";
  } else {
    log += line.empty() ? "idle\n" : "partial\n";
  }
  return log;
}

}  // namespace

TEST_CASE("bdat vectors, every chunking", "[wire][bdat]") {
  int cases = 0;
  for (const auto& vc : smtpwire::test::load_vectors("bdat.md")) {
    ++cases;
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    bdat_options opt;
    if (vc.has("options")) {
      const std::string o = vc.text("options");
      REQUIRE(o.rfind("max_message_size=", 0) == 0);
      opt.max_message_size = std::stoull(o.substr(17));
    }
    const std::string stream = vc.bytes("stream");
    const std::string log = smtpwire::test::grind(
        stream, [&](const std::vector<std::string_view>& ch) { return run_bdat(ch, opt); });
    CHECK(log == vc.text("expect") + "\n");
  }
  CHECK(cases >= 12);
}

TEST_CASE("bdat sizes are overflow-safe", "[wire][bdat]") {
  bdat_options opt;
  opt.max_message_size = 10;
  bdat_reader r(opt);
  REQUIRE(r.begin_chunk(8, false) == errc::ok);
  bdat_result res = r.read("12345678");
  CHECK(res.status == bdat_status::content);
  CHECK(r.read("").status == bdat_status::chunk_end);
  // 8 + (2^64 - 1) wraps to 7 <= 10 in naive arithmetic.
  CHECK(r.begin_chunk(std::numeric_limits<std::uint64_t>::max(), true) == errc::message_too_big);
  CHECK(r.octets() == 8);
  CHECK(r.announced_octets() == std::numeric_limits<std::uint64_t>::max());
  // Dropped octets are consumed, not delivered.
  res = r.read("abcdef");
  CHECK(res.status == bdat_status::need_more);
  CHECK(res.consumed == 6);
  CHECK(r.remaining() == std::numeric_limits<std::uint64_t>::max() - 6);
  r.reset();
  CHECK(r.error() == errc::ok);
  CHECK(r.begin_chunk(10, true) == errc::ok);
  bdat_options unlimited;
  unlimited.max_message_size = std::numeric_limits<std::uint64_t>::max();
  bdat_reader u(unlimited);
  CHECK(u.begin_chunk(std::numeric_limits<std::uint64_t>::max(), false) == errc::ok);
}

TEST_CASE("bdat reader API misuse", "[wire][bdat]") {
  bdat_reader r;
  CHECK(r.read("abc").status == bdat_status::need_more);  // no chunk open
  CHECK(r.read("abc").consumed == 0);
  REQUIRE(r.begin_chunk(2, false) == errc::ok);
  CHECK(r.begin_chunk(2, false) == errc::api_bad_state);
  bdat_result res = r.read("abc");
  CHECK(res.consumed == 2);
  CHECK(res.content == "ab");
  res = r.read("c");
  CHECK(res.status == bdat_status::chunk_end);
  CHECK(res.consumed == 0);
  CHECK_FALSE(res.last);
  CHECK(r.chunks() == 1);
}

TEST_CASE("bdat command lines", "[wire][bdat]") {
  using smtpwire::wire::make_bdat_command;
  CHECK(make_bdat_command(0, true).view() == "BDAT 0 LAST\r\n");
  CHECK(make_bdat_command(1000, false).view() == "BDAT 1000\r\n");
  CHECK(make_bdat_command(std::numeric_limits<std::uint64_t>::max(), true).view() ==
        "BDAT 18446744073709551615 LAST\r\n");
  static_assert(make_bdat_command(7, false).size == 8, "constexpr formatting");
  std::string out = "x";
  smtpwire::wire::write_bdat_command(out, 42, true);
  CHECK(out == "xBDAT 42 LAST\r\n");
  // Every formatted line parses back with the command grammar (RFC 3030).
  for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{9}, std::uint64_t{10},
                          std::uint64_t{123456789}, std::numeric_limits<std::uint64_t>::max()}) {
    for (bool last : {false, true}) {
      const auto c = make_bdat_command(v, last);
      std::string_view line = c.view();
      REQUIRE(line.size() >= 2);
      line.remove_suffix(2);
      const auto cmd = smtpwire::wire::parse_command(line);
      REQUIRE(cmd);
      CHECK(cmd->kind == smtpwire::wire::verb::bdat);
      CHECK(cmd->size == v);
      CHECK(cmd->last == last);
    }
  }
}

TEST_CASE("bdat splitter", "[wire][bdat]") {
  auto split = [](std::string_view msg, std::size_t n) {
    bdat_splitter s(msg, n);
    bdat_piece p;
    std::string log;
    while (s.next(p))
      log += std::string(p.command.view()) + "[" + std::string(p.payload) + "]";
    CHECK_FALSE(s.next(p));
    return log;
  };
  CHECK(split("", 4) == "BDAT 0 LAST\r\n[]");
  CHECK(split("abcdefgh", 4) == "BDAT 4\r\n[abcd]BDAT 4 LAST\r\n[efgh]");
  CHECK(split("abcdefghi", 4) == "BDAT 4\r\n[abcd]BDAT 4\r\n[efgh]BDAT 1 LAST\r\n[i]");
  CHECK(split("abc", 0) == "BDAT 3 LAST\r\n[abc]");
  CHECK(split("abc", 100) == "BDAT 3 LAST\r\n[abc]");
}

TEST_CASE("bdat splitter output read back by the reader", "[wire][bdat]") {
  std::string msg;
  for (int i = 0; i < 1000; ++i)
    msg += static_cast<char>(i * 37);
  for (std::size_t n : {1u, 7u, 64u, 999u, 1000u, 4096u}) {
    std::string stream;
    bdat_splitter s(msg, n);
    bdat_piece p;
    while (s.next(p)) {
      stream += p.command.view();
      stream += p.payload;
    }
    stream += "QUIT\r\n";
    bdat_options opt;
    const std::string log = run_bdat({stream}, opt);
    CHECK(log.find("command \"QUIT\"\nidle\n") != std::string::npos);
    CHECK(log.find("end last ok") != std::string::npos);
    CHECK(log.find("message_too_big") == std::string::npos);
  }
}
