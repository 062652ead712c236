// Fuzz target: any bytes as the ESMTP parameter text of MAIL or RCPT. The
// first byte picks the command and options (bit 0: RCPT; bit 1: UTF-8 values;
// bit 2: unknown parameters refused; bit 3: max_params = 4). Invariants: a
// successful parse writes back under the same options, the written text
// parses to an equal value and writing that gives the same text again;
// without UTF-8 values no accepted input holds an octet >= 0x80; the
// param_reader agrees with the parser about syntax; unknown_params only
// yields unknown keywords.
#include <smtpwire/wire/params.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
namespace wire = smtpwire::wire;
using smtpwire::errc;

std::string_view after_sp(const std::string& s) {
  if (s.empty()) return {};
  if (s[0] != ' ') std::abort();
  return std::string_view(s).substr(1);
}

void check_unknown(const wire::unknown_params& u) {
  for (const auto& p : u)
    if (wire::classify_param_keyword(p.keyword) != wire::param_keyword::unknown) std::abort();
}

template <class Params, class Parse, class Write>
void check(std::string_view in, const wire::param_options& o, Parse parse, Write write) {
  const auto r = parse(in, o);
  // The reader alone: syntax only.
  wire::param_reader reader(in, o.utf8_values);
  wire::esmtp_param p;
  std::size_t n = 0;
  while (reader.next(p))
    ++n;
  if (!r) {
    // A text the reader accepts, within the count limit, is never a syntax error.
    if (reader.error() == errc::ok && n <= o.max_params && r.error() == errc::param_syntax)
      std::abort();
    return;
  }
  if (reader.error() != errc::ok || n > o.max_params) std::abort();
  if (!o.utf8_values && !smtpwire::detail::is_ascii(in)) std::abort();
  check_unknown(r->unknown);
  std::string w;
  if (write(w, *r, o) != errc::ok) std::abort();
  const auto again = parse(after_sp(w), o);
  if (!again || !(*again == *r)) std::abort();
  std::string w2;
  if (write(w2, *again, o) != errc::ok || w2 != w) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  wire::param_options o;
  o.utf8_values = (data[0] & 2) != 0;
  o.allow_unknown = (data[0] & 4) == 0;
  if (data[0] & 8) o.max_params = 4;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    check<wire::rcpt_params>(
        in, o,
        [](std::string_view s, const wire::param_options& x) {
          return wire::parse_rcpt_params(s, x);
        },
        [](std::string& out, const wire::rcpt_params& v, const wire::param_options& x) {
          return wire::write_rcpt_params(out, v, x);
        });
  } else {
    check<wire::mail_params>(
        in, o,
        [](std::string_view s, const wire::param_options& x) {
          return wire::parse_mail_params(s, x);
        },
        [](std::string& out, const wire::mail_params& v, const wire::param_options& x) {
          return wire::write_mail_params(out, v, x);
        });
  }
  return 0;
}
