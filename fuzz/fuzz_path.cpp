// Fuzz target: any bytes as a reverse-path, forward-path, mailbox, domain and
// address literal. The first byte picks the options (bit 0: SMTPUTF8; bits
// 1-2: tighter limits). Invariants: every successful path or mailbox parse
// writes back to the same bytes; an unquoted local part re-quoted by
// write_local_part unquotes to the same text; a parse without SMTPUTF8 never
// accepts an octet >= 0x80.
#include <smtpwire/wire/path.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
namespace wire = smtpwire::wire;

void check_path(std::string_view in, const wire::path_options& o, bool forward) {
  const auto r = forward ? wire::parse_forward_path(in, o) : wire::parse_reverse_path(in, o);
  if (!r) return;
  if (!o.smtputf8 && !smtpwire::detail::is_ascii(in)) std::abort();
  if (r->null && forward) std::abort();
  std::string out;
  if (wire::write_path(out, *r, o) != smtpwire::errc::ok || out != in) std::abort();
  if (r->null || r->postmaster) return;
  std::string unquoted;
  if (wire::unquote_local_part(unquoted, r->address.local_part) != smtpwire::errc::ok) std::abort();
  // Re-quoting may grow the local part past the limit; only a success is checked.
  std::string requoted;
  if (wire::write_local_part(requoted, unquoted, o) != smtpwire::errc::ok) return;
  std::string twice;
  if (wire::unquote_local_part(twice, requoted) != smtpwire::errc::ok || twice != unquoted)
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  wire::path_options o;
  o.smtputf8 = (data[0] & 1) != 0;
  if (data[0] & 2) o.max_local_part = 8;
  if (data[0] & 4) o.max_domain = 16;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  check_path(in, o, false);
  check_path(in, o, true);
  if (const auto m = wire::parse_mailbox(in, o)) {
    std::string out;
    if (wire::write_mailbox(out, *m, o) != smtpwire::errc::ok || out != in) std::abort();
  }
  if (const auto d = wire::parse_domain(in, o)) {
    if (d->size() != in.size() || d->size() > o.max_domain) std::abort();
  }
  if (const auto l = wire::parse_address_literal(in)) {
    if (!smtpwire::detail::is_ascii(in) || l->kind == wire::address_kind::domain) std::abort();
  }
  return 0;
}
