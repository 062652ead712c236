// Fuzz target for wire/reply.hpp. Input: bytes 0-2 pick the reader's limits
// and allow_8bit_text, byte 3 seeds the chunking, the rest is the server's
// byte stream. Invariants (abort on violation): the log of replies and the
// final error is the same whole, one octet at a time and in seeded random
// chunks; every reply parsed, turned into a value, written and parsed again
// equals the value as the writer folds it (and the value itself when no line
// needed folding); every written line has at most 512 octets; buffers never
// grow.
#include <smtpwire/wire/reply.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using smtpwire::errc;
using smtpwire::result;
using namespace smtpwire::wire;

void check(bool ok) {
  if (!ok) std::abort();
}

void round_trip(const reply& x) {
  std::string wire;
  check(write_reply(wire, x) == errc::ok);
  for (std::string_view w = wire; !w.empty();) {
    const std::size_t crlf = w.find("\r\n");
    check(crlf != std::string_view::npos && crlf + 2 <= 512);
    w.remove_prefix(crlf + 2);
  }
  reply_options big;
  big.max_lines = 1u << 20;
  big.max_reply_bytes = wire.size();
  const result<reply> back = parse_reply(wire, big);
  check(back.has_value());
  const result<reply> folded = fold_reply(x);
  check(folded.has_value());
  check(*back == *folded);
  bool fits = true;
  std::string enh;
  if (x.enhanced) check(write_enhanced_code(enh, *x.enhanced) == errc::ok);
  const std::size_t overhead = 4 + (enh.empty() ? 0 : enh.size() + 1) + 2;
  for (const std::string& t : x.lines)
    fits = fits && overhead + t.size() <= 512;
  check(fits == (*folded == x));
}

std::string run(std::string_view in, const std::vector<std::size_t>& sizes,
                const reply_options& opt, bool check_round_trip) {
  reply_reader reader(opt);
  const std::size_t cap = reader.buffer_capacity();
  std::string log;
  std::size_t k = 0;
  while (!in.empty() && reader.error() == errc::ok) {
    const std::size_t n = sizes.empty() ? in.size() : sizes[k++ % sizes.size()];
    std::string_view chunk = in.substr(0, n);
    in.remove_prefix(chunk.size());
    for (;;) {
      const reply_result r = reader.read(chunk);
      check(r.consumed <= chunk.size());
      chunk.remove_prefix(r.consumed);
      if (r.status == reply_status::need_more) {
        check(chunk.empty());
        break;
      }
      if (r.status == reply_status::error) {
        const reply_result again = reader.read(chunk);
        check(again.status == reply_status::error && again.error == r.error && again.consumed == 0);
        break;
      }
      check(is_valid_reply_code(r.reply.code()));
      check(r.reply.size() >= 1 && r.reply.size() <= reader.options().max_lines);
      check(r.reply.raw().size() <= reader.options().max_reply_bytes);
      const reply x = to_reply(r.reply);
      log += std::to_string(x.code);
      if (x.enhanced) {
        std::string e;
        check(write_enhanced_code(e, *x.enhanced) == errc::ok);
        log += "[" + e + "]";
      }
      for (const std::string& t : x.lines)
        log += "|" + t;
      log += '\n';
      if (check_round_trip) round_trip(x);
    }
    check(reader.buffer_capacity() == cap);
  }
  if (reader.error() != errc::ok)
    log += smtpwire::to_string(reader.error());
  else
    log += reader.idle() ? "idle" : "partial";
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  reply_options opt;
  if ((data[0] & 0x80) == 0) opt.max_line_length = data[0];
  if ((data[1] & 0x80) == 0) opt.max_lines = data[1] & 0x3f;
  if ((data[2] & 0x80) == 0) opt.max_reply_bytes = 4u * (data[2] & 0x7f);
  opt.allow_8bit_text = (data[1] & 0x40) == 0;
  std::uint32_t seed = data[3] * 2654435761u + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 4), size - 4);

  std::vector<std::size_t> random_sizes;
  for (std::size_t total = 0; total < in.size();) {
    seed = seed * 1103515245u + 12345u;
    const std::size_t n = 1 + (seed >> 16) % 41;
    random_sizes.push_back(n);
    total += n;
  }
  const std::string whole = run(in, {}, opt, true);
  check(run(in, {1}, opt, false) == whole);
  check(run(in, random_sizes, opt, false) == whole);
  return 0;
}
