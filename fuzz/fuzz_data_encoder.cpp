// Fuzz target: the DATA encoder (wire/data.hpp). Byte 0 picks the options
// (bit 0: allow_nul, bit 1: refuse bare line ends) and seeds the chunking;
// the rest is the message. Invariants (abort() when broken): every scanner
// and every chunking give the same wire octets; with normalisation on, the
// encoder refuses only NUL (when not allowed), and decoding its output gives
// back the normalised message followed by the exact next command; with
// normalisation off, it refuses exactly the messages with a bare CR or LF.
#include <smtpwire/wire/data.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace wire = smtpwire::wire;
using smtpwire::errc;
using smtpwire::detail::scan_kind;

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

// Encodes in chunks chosen by `seed` (0: whole); returns the error.
errc encode(std::string_view msg, const wire::data_encoder_options& opt, std::uint32_t seed,
            std::string& out) {
  wire::data_encoder enc(opt);
  while (!msg.empty()) {
    std::size_t len = msg.size();
    if (seed != 0) {
      seed = seed * 1103515245u + 12345u;
      const std::size_t pick = 1 + (seed >> 16) % 131;
      if (pick < len) len = pick;
    }
    std::string_view c = msg.substr(0, len);
    msg.remove_prefix(len);
    for (;;) {
      const wire::encode_result r = enc.encode(c);
      if (r.consumed > c.size()) std::abort();
      c.remove_prefix(r.consumed);
      if (r.status == wire::encode_status::error) return r.error;
      if (r.status == wire::encode_status::output) {
        if (r.output.empty()) std::abort();
        out.append(r.output.data(), r.output.size());
      }
      if (r.status == wire::encode_status::need_more) break;
    }
  }
  for (int k = 0;; ++k) {
    if (k > 3) std::abort();
    const wire::encode_result r = enc.finish();
    if (r.status == wire::encode_status::error) return r.error;
    if (r.status == wire::encode_status::done) return errc::ok;
    out.append(r.output.data(), r.output.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  wire::data_encoder_options opt;
  opt.allow_nul = data[0] & 1;
  opt.normalize_line_ends = !(data[0] & 2);
  const std::string_view msg(reinterpret_cast<const char*>(data + 1), size - 1);

  opt.scan = scan_kind::scalar;
  std::string ref;
  const errc ref_error = encode(msg, opt, 0, ref);
  for (scan_kind k : {scan_kind::swar, scan_kind::sse2, scan_kind::avx2, scan_kind::avx512}) {
    if (!smtpwire::detail::scan_kind_available(k)) continue;
    opt.scan = k;
    for (std::uint32_t seed : {0u, 1u + data[0]}) {
      std::string out;
      if (encode(msg, opt, seed, out) != ref_error || out != ref) std::abort();
    }
  }
  const bool has_nul = msg.find('\0') != std::string_view::npos;
  bool bare = false;
  for (std::size_t i = 0; i < msg.size(); ++i) {
    if (msg[i] == '\r' && (i + 1 == msg.size() || msg[i + 1] != '\n')) bare = true;
    if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r')) bare = true;
  }
  const bool refused = (has_nul && !opt.allow_nul) || (bare && !opt.normalize_line_ends);
  if (refused != (ref_error != errc::ok)) std::abort();
  if (refused) return 0;

  wire::data_options d;
  d.nul_in_data = opt.allow_nul;
  d.max_message_size = ~std::uint64_t{0};
  wire::data_decoder dec(d);
  const std::string stream = ref + "QUIT\r\n";
  std::string_view in = stream;
  std::string content;
  for (;;) {
    const wire::data_result r = dec.decode(in);
    in.remove_prefix(r.consumed);
    if (r.status == wire::data_status::content)
      content.append(r.content.data(), r.content.size());
    else if (r.status == wire::data_status::end)
      break;
    else
      std::abort();  // an error, or need_more before the end
  }
  if (content != normalise(msg) || in != "QUIT\r\n") std::abort();
  return 0;
}
