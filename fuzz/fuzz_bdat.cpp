// Fuzz target: BDAT framing (wire/bdat.hpp). Byte 0 = number of chunk
// commands k (1..8) and bit 7 a small message limit; then k records of 3
// bytes (size selector, 2 bytes of size; selector 0xff = an absurd size
// near 2^64) for begin_chunk, the LAST flag on the final one; the rest is the
// byte stream. Invariants (abort() when broken): the reader consumes exactly
// each chunk's size (never a byte more), delivers exactly the chunk octets
// while the message is under the limit and none after, reports
// message_too_big exactly when the running total passes the limit (without
// overflow), a chunked run equals the whole run, and bdat_splitter's pieces
// reassemble the stream with well-formed command lines.
#include <smtpwire/wire/bdat.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace wire = smtpwire::wire;
using smtpwire::errc;

struct chunk_spec {
  std::uint64_t size;
  bool last;
};

std::string run(const std::vector<chunk_spec>& specs, std::string_view stream, std::uint64_t limit,
                std::size_t piece) {
  wire::bdat_options o;
  o.max_message_size = limit;
  wire::bdat_reader r(o);
  std::string log;
  std::uint64_t total = 0;
  bool over = false;
  for (const chunk_spec& s : specs) {
    const errc e = r.begin_chunk(s.size, s.last);
    over = over || s.size > limit - total;
    if (!over) total += s.size;
    if ((e == errc::message_too_big) != over) std::abort();
    if (r.begin_chunk(1, false) != errc::api_bad_state) std::abort();
    std::uint64_t got = 0;
    for (;;) {
      std::string_view in = stream.substr(0, piece < stream.size() ? piece : stream.size());
      const wire::bdat_result res = r.read(in);
      if (res.consumed > in.size()) std::abort();
      got += res.consumed;
      if (res.status == wire::bdat_status::content) {
        if (over || res.content.empty() || res.content.data() != in.data()) std::abort();
        log.append(res.content.data(), res.content.size());
      }
      stream.remove_prefix(res.consumed);
      if (res.status == wire::bdat_status::chunk_end) {
        if (got != s.size || res.last != s.last) std::abort();
        if ((res.error == errc::message_too_big) != over) std::abort();
        log += "|end|";
        break;
      }
      if (res.status == wire::bdat_status::need_more && stream.empty()) {
        if (got > s.size) std::abort();
        log += "|short|";
        return log;
      }
    }
    if (s.last) {
      if (!r.complete() || r.begin_chunk(0, true) != errc::api_bad_state) std::abort();
      break;
    }
  }
  log += "|rest|";
  log.append(stream.data(), stream.size());
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t k = 1 + (data[0] & 7);
  const std::uint64_t limit = (data[0] & 0x80) ? 300 : ~std::uint64_t{0} - 5;
  if (size < 1 + 3 * k) return 0;
  std::vector<chunk_spec> specs;
  for (std::size_t i = 0; i < k; ++i) {
    const std::uint8_t* p = data + 1 + 3 * i;
    std::uint64_t n = static_cast<std::uint64_t>(p[1]) | static_cast<std::uint64_t>(p[2]) << 8;
    if (p[0] == 0xff)
      n = ~std::uint64_t{0} - n;
    else
      n %= 1u + p[0];
    specs.push_back({n, i + 1 == k});
  }
  const std::string_view stream(reinterpret_cast<const char*>(data + 1 + 3 * k), size - 1 - 3 * k);
  const std::string whole = run(specs, stream, limit, stream.size() + 1);
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{64}})
    if (run(specs, stream, limit, piece) != whole) std::abort();

  // Client side: split the stream into chunks and read them back.
  const std::size_t chunk_size = data[0] >> 3;
  wire::bdat_splitter sp(stream, chunk_size);
  wire::bdat_piece pc;
  std::string back, expect_cmd;
  int pieces = 0;
  while (sp.next(pc)) {
    if (++pieces > 100000) std::abort();
    const std::string_view cmd = pc.command.view();
    expect_cmd = "BDAT " + std::to_string(pc.payload.size()) + (pc.last ? " LAST" : "") + "\r\n";
    if (cmd != expect_cmd) std::abort();
    if (chunk_size != 0 && pc.payload.size() > chunk_size) std::abort();
    back.append(pc.payload.data(), pc.payload.size());
  }
  if (back != stream || !pc.last) std::abort();
  return 0;
}
