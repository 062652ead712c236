// Fuzz target: the DATA decoder (wire/data.hpp). Byte 0 picks the options
// (bit 0: bare_lf_in_data, 1: bare_cr_in_data, 2: nul_in_data, 3:
// reject_8bit, 4: a small size limit taken from byte 1), byte 1 also seeds
// the chunking; the rest is the stream after the DATA line. Invariants, each
// an abort() when broken: every scanner gives the same result; a chunked run
// equals the whole run; at most one end and at most one error event; no
// content after the error; the content, error, offset and end equal those of
// a naive model written from RFC 5321 §4.1.1.4 / §4.5.2.
#include <smtpwire/wire/data.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace wire = smtpwire::wire;
using smtpwire::errc;
using smtpwire::detail::scan_kind;

struct outcome {
  std::string content;
  errc error = errc::ok;
  std::uint64_t error_offset = 0;
  bool ended = false;
  std::uint64_t end_at = 0;
  std::uint64_t octets = 0, lines = 0;
  bool eight_bit = false, long_lines = false;
  bool operator==(const outcome& o) const {
    return content == o.content && error == o.error && error_offset == o.error_offset &&
           ended == o.ended && end_at == o.end_at && octets == o.octets && lines == o.lines &&
           eight_bit == o.eight_bit && long_lines == o.long_lines;
  }
};

outcome run(std::string_view in, const wire::data_options& opt, std::uint32_t seed) {
  wire::data_decoder dec(opt);
  outcome o;
  int errors = 0;
  std::size_t at = 0;
  while (at <= in.size() && !o.ended) {
    std::size_t len = in.size() - at;
    if (seed != 0) {
      seed = seed * 1103515245u + 12345u;
      const std::size_t pick = 1 + (seed >> 16) % 97;
      if (pick < len) len = pick;
    }
    std::string_view c = in.substr(at, len);
    at += len;
    for (int guard = 0;; ++guard) {
      if (guard > 100000) std::abort();
      const wire::data_result r = dec.decode(c);
      if (r.consumed > c.size()) std::abort();
      c.remove_prefix(r.consumed);
      if (r.status == wire::data_status::need_more) {
        if (!c.empty()) std::abort();
        break;
      }
      if (r.status == wire::data_status::content) {
        if (r.content.empty() || errors != 0) std::abort();
        o.content.append(r.content.data(), r.content.size());
      } else if (r.status == wire::data_status::error) {
        if (++errors != 1 || r.error == errc::ok) std::abort();
        o.error = r.error;
        o.error_offset = r.error_offset;
      } else {
        if (r.error != o.error) std::abort();
        o.ended = true;
        o.end_at = dec.wire_octets();
        const wire::data_result again = dec.decode(c);
        if (again.status != wire::data_status::end || again.consumed != 0) std::abort();
        break;
      }
    }
    if (at == in.size()) break;
  }
  o.octets = dec.octets();
  o.lines = dec.lines();
  o.eight_bit = dec.eight_bit();
  o.long_lines = dec.long_lines();
  return o;
}

// The model: content, error and end only (statistics are the decoder's own).
outcome model(std::string_view in, const wire::data_options& opt) {
  outcome o;
  const std::string s = "\r\n" + std::string(in);
  const std::size_t q = s.find("\r\n.\r\n");
  const std::size_t region = q == std::string::npos ? in.size() : q;
  for (std::size_t j = 0; j < region; ++j) {
    const char c = in[j];
    if (c == '.' && (j == 0 || (j >= 2 && in[j - 2] == '\r' && in[j - 1] == '\n'))) continue;
    if (q == std::string::npos && c == '\r' && j + 1 == in.size()) {
      // Unless a line-start dot precedes it (it may end the message), the
      // CR is content whatever follows: only the size limit can fail it.
      const bool after_dot = j >= 1 && in[j - 1] == '.' &&
                             (j == 1 || (j >= 3 && in[j - 3] == '\r' && in[j - 2] == '\n'));
      if (after_dot) break;
      if (o.content.size() >= opt.max_message_size) {
        o.error = errc::message_too_big;
        o.error_offset = j;
      }
      break;
    }
    const bool next_lf = j + 1 < in.size() && in[j + 1] == '\n';
    std::size_t add = 1;
    errc e = errc::ok;
    if (c == '\r' && !next_lf) {
      if (opt.bare_cr_in_data)
        add = 2;
      else
        e = errc::data_bare_cr;
    } else if (c == '\n' && (j == 0 || in[j - 1] != '\r')) {
      if (opt.bare_lf_in_data)
        add = 2;
      else
        e = errc::data_bare_lf;
    } else if (c == '\0' && !opt.nul_in_data) {
      e = errc::data_nul;
    } else if (static_cast<unsigned char>(c) >= 0x80 && opt.reject_8bit) {
      e = errc::data_8bit_not_declared;
    }
    if (o.content.size() + add > opt.max_message_size) e = errc::message_too_big;
    if (e != errc::ok) {
      o.error = e;
      o.error_offset = j;
      break;
    }
    o.content += add == 2 ? std::string("\r\n") : std::string(1, c);
  }
  if (q != std::string::npos) {
    o.ended = true;
    o.end_at = q + 3;
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  wire::data_options opt;
  opt.bare_lf_in_data = data[0] & 1;
  opt.bare_cr_in_data = data[0] & 2;
  opt.nul_in_data = data[0] & 4;
  opt.reject_8bit = data[0] & 8;
  if (data[0] & 16) opt.max_message_size = data[1];
  const std::uint32_t seed = 1u + data[1];
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

  opt.scan = scan_kind::scalar;
  const outcome ref = run(in, opt, 0);
  const outcome m = model(in, opt);
  if (ref.content != m.content || ref.error != m.error || ref.error_offset != m.error_offset ||
      ref.ended != m.ended || ref.end_at != m.end_at)
    std::abort();
  for (scan_kind k :
       {scan_kind::scalar, scan_kind::swar, scan_kind::sse2, scan_kind::avx2, scan_kind::avx512}) {
    if (!smtpwire::detail::scan_kind_available(k)) continue;
    opt.scan = k;
    if (!(run(in, opt, 0) == ref)) std::abort();
    if (!(run(in, opt, seed) == ref)) std::abort();
  }
  return 0;
}
