// Fuzz target for wire/line.hpp. Input: byte 0 picks max_line_length and
// allow_8bit, byte 1 seeds the chunking, the rest is the byte stream.
// Invariants (abort on violation): the log of lines and errors is the same
// whole, one octet at a time and in seeded random chunks, and equals a
// byte-at-a-time model of the documented rules; no line exceeds the limit or
// contains CR, LF, NUL (or 8-bit octets when they are off); the buffer never
// grows.
#include <smtpwire/wire/line.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using smtpwire::errc;
using smtpwire::wire::line_options;
using smtpwire::wire::line_reader;
using smtpwire::wire::line_result;
using smtpwire::wire::line_status;

void check(bool ok) {
  if (!ok) std::abort();
}

void log_error(std::string& log, errc e) {
  log += "E";
  log += smtpwire::to_string(e);
  log += '\n';
}

std::string run(std::string_view in, const std::vector<std::size_t>& sizes,
                const line_options& opt) {
  line_reader reader(opt);
  const std::size_t max = reader.options().max_line_length;
  std::string log;
  std::size_t k = 0;
  while (!in.empty()) {
    const std::size_t n = sizes.empty() ? in.size() : sizes[k++ % sizes.size()];
    std::string_view chunk = in.substr(0, n);
    in.remove_prefix(chunk.size());
    for (;;) {
      const line_result r = reader.read(chunk);
      check(r.consumed <= chunk.size());
      chunk.remove_prefix(r.consumed);
      if (r.status == line_status::need_more) {
        check(chunk.empty());
        break;
      }
      if (r.status == line_status::error) {
        check(r.error != errc::ok);
        log_error(log, r.error);
        continue;
      }
      check(r.line.size() <= max - 2);
      bool high = false, control = false;
      for (char c : r.line) {
        const auto u = static_cast<unsigned char>(c);
        check(c != '\r' && c != '\n' && c != '\0');
        check(opt.allow_8bit || u < 0x80);
        high = high || u >= 0x80;
        control = control || (u < 0x20 && u != '\t') || u == 0x7f;
      }
      check(r.has_8bit == high && r.has_control == control);
      log += "L" + std::string(r.line) + "\n";
    }
    check(reader.buffer_capacity() == max);
  }
  log += reader.idle() ? "idle" : "partial";
  return log;
}

std::string model(std::string_view in, const line_options& opt) {
  const std::size_t content_max = (opt.max_line_length < 3 ? 3 : opt.max_line_length) - 2;
  std::string log, cur;
  bool discarding = false, prev_cr = false, pending_cr = false;
  auto error = [&](errc e) {
    log_error(log, e);
    cur.clear();
    discarding = true;
    prev_cr = false;
  };
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (pending_cr) {
      pending_cr = false;
      if (c == '\n') {
        log += "L" + cur + "\n";
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
  log += (discarding || pending_cr || !cur.empty()) ? "partial" : "idle";
  return log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  line_options opt;
  opt.max_line_length = (data[0] & 0x80) ? 512 : (data[0] & 0x3f);
  opt.allow_8bit = (data[0] & 0x40) == 0;
  std::uint32_t seed = data[1] * 2654435761u + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

  std::vector<std::size_t> random_sizes;
  for (std::size_t total = 0; total < in.size();) {
    seed = seed * 1103515245u + 12345u;
    const std::size_t n = 1 + (seed >> 16) % 37;
    random_sizes.push_back(n);
    total += n;
  }
  const std::string whole = run(in, {}, opt);
  check(whole == model(in, opt));
  check(run(in, {1}, opt) == whole);
  check(run(in, random_sizes, opt) == whole);
  return 0;
}
