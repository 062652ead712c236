// smtpwire — xtext (RFC 3461 §4), the encoding of ENVID, ORCPT and the
// MAIL AUTH= parameter (RFC 4954 §5): validation, decoding and encoding.
//
// Decisions (strict; none is configurable):
// - Only upper-case hex digits follow '+' ("+2B", never "+2b"), as the RFC's
//   hexchar rule demands; lower case is errc::xtext_invalid.
// - Any "+HH" is accepted when decoding, even one that encodes a character
//   that could have been written as an xchar ("+41" for "A"): the grammar
//   allows it. The encoder never produces such needless escapes, so
//   decode(encode(x)) == x and encode is canonical.
// - The empty string is valid xtext (the ABNF is `*( xchar / hexchar )`);
//   callers that need a non-empty value check that themselves.
// - Decoding accepts every octet value in "+HH" (NUL and 8-bit included):
//   the grammar does; what a decoded value may contain is the caller's rule.
//
// Nothing here allocates except by growing the caller's std::string, and a
// function that fails appends nothing.
#ifndef SMTPWIRE_WIRE_XTEXT_HPP
#define SMTPWIRE_WIRE_XTEXT_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/error.hpp"

namespace smtpwire::detail::xtext_impl {
/// Value of an upper-case hex digit, or -1 (lower case is not a hexchar).
constexpr int upper_hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
inline constexpr char upper_hex_digits[] = "0123456789ABCDEF";

/// True when all 8 octets of `v` are xchars (%x21-2A / %x2C-3C / %x3E-7E).
/// Values are mostly long runs of xchars; testing 8 at a time (SWAR) lets
/// those runs move at memcpy-like speed.
inline bool all_xchar8(std::uint64_t v) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
  if (v & high) return false;
  // With the high bits clear no byte carries into the next one.
  const bool all_ge_21 = ((v + ones * (0x80 - 0x21)) & high) == high;
  const bool any_ge_7f = ((v + ones * (0x80 - 0x7F)) & high) != 0;
  const auto has_zero = [](std::uint64_t x) { return ((x - ones) & ~x & high) != 0; };
  return all_ge_21 && !any_ge_7f && !has_zero(v ^ (ones * '+')) && !has_zero(v ^ (ones * '='));
}

inline std::uint64_t load8(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

/// Decodes `in` into `dst` (room for in.size() octets); returns the octets
/// written, or SIZE_MAX when `in` is not xtext.
inline std::size_t decode(std::string_view in, char* dst) noexcept {
  const char* p = in.data();
  const char* const end = p + in.size();
  char* w = dst;
  while (p != end) {
    if (end - p >= 8 && all_xchar8(load8(p))) {
      std::memcpy(w, p, 8);
      p += 8;
      w += 8;
      continue;
    }
    const char c = *p;
    if (is(c, cc_xchar)) {
      *w++ = c;
      ++p;
      continue;
    }
    if (c != '+' || end - p < 3) return SIZE_MAX;
    const int hi = upper_hex_value(p[1]), lo = upper_hex_value(p[2]);
    if (hi < 0 || lo < 0) return SIZE_MAX;
    *w++ = static_cast<char>(hi * 16 + lo);
    p += 3;
  }
  return static_cast<std::size_t>(w - dst);
}
}  // namespace smtpwire::detail::xtext_impl

namespace smtpwire::wire {

// RFC 3461 §4:
//   xtext   = *( xchar / hexchar )
//   xchar   = any ASCII CHAR between "!" (33) and "~" (126) inclusive,
//             except for "+" and "="
//   hexchar = ASCII "+" immediately followed by two upper case
//             hexadecimal digits
/// Checks that `s` is xtext; returns errc::ok or errc::xtext_invalid.
/// Reads only the bytes of `s`.
constexpr errc validate_xtext(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (detail::is(c, detail::cc_xchar)) continue;
    if (c != '+' || s.size() - i < 3 || detail::xtext_impl::upper_hex_value(s[i + 1]) < 0 ||
        detail::xtext_impl::upper_hex_value(s[i + 2]) < 0)
      return errc::xtext_invalid;
    i += 2;
  }
  return errc::ok;
}

/// True when `s` is xtext (see validate_xtext).
constexpr bool is_xtext(std::string_view s) noexcept {
  return validate_xtext(s) == errc::ok;
}

/// The number of octets `s` decodes to when `s` is valid xtext; for other
/// input a count that is still at most s.size().
constexpr std::size_t xtext_decoded_size(std::string_view s) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); i += s[i] == '+' ? 3 : 1)
    ++n;
  return n;
}

/// The number of octets xtext_encode appends for `raw`.
inline std::size_t xtext_encoded_size(std::string_view raw) noexcept {
  std::size_t n = raw.size(), i = 0;
  for (; raw.size() - i >= 8; i += 8) {
    if (detail::xtext_impl::all_xchar8(detail::xtext_impl::load8(raw.data() + i))) continue;
    for (std::size_t j = i; j < i + 8; ++j)
      n += detail::is(raw[j], detail::cc_xchar) ? 0 : 2;
  }
  for (; i < raw.size(); ++i)
    n += detail::is(raw[i], detail::cc_xchar) ? 0 : 2;
  return n;
}

/// Decodes the xtext `in` and appends the octets to `out`. Returns errc::ok,
/// or errc::xtext_invalid with `out` unchanged. One pass: `out` is grown by
/// in.size() and then cut to the decoded size.
[[nodiscard]] inline errc xtext_decode(std::string& out, std::string_view in) {
  const std::size_t at = out.size();
  out.resize(at + in.size());
  const std::size_t n = detail::xtext_impl::decode(in, &out[0] + at);
  if (n == SIZE_MAX) {
    out.resize(at);
    return errc::xtext_invalid;
  }
  out.resize(at + n);
  return errc::ok;
}

/// Decodes the xtext `in` into `dst`, which has room for `cap` octets.
/// Returns the number of octets written, errc::xtext_invalid, or
/// errc::api_value_invalid when `cap` < xtext_decoded_size(in). A single
/// pass when `cap` >= in.size(), and then on xtext_invalid `dst` may hold
/// partial output; otherwise `in` is validated first and nothing is written
/// on error.
[[nodiscard]] inline result<std::size_t> xtext_decode(char* dst, std::size_t cap,
                                                      std::string_view in) noexcept {
  if (cap >= in.size()) {
    const std::size_t n = detail::xtext_impl::decode(in, dst);
    if (n == SIZE_MAX) return errc::xtext_invalid;
    return n;
  }
  if (const errc e = validate_xtext(in); e != errc::ok) return e;
  if (xtext_decoded_size(in) > cap) return errc::api_value_invalid;
  std::size_t n = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '+') {
      dst[n++] = in[i];
      continue;
    }
    dst[n++] = static_cast<char>(detail::xtext_impl::upper_hex_value(in[i + 1]) * 16 +
                                 detail::xtext_impl::upper_hex_value(in[i + 2]));
    i += 2;
  }
  return n;
}

/// Appends the xtext encoding of the octets `raw` to `out`: each xchar as
/// itself, every other octet ('+', '=', SP, controls, 8-bit) as "+HH" with
/// upper-case hex. Total: any octet string has an encoding. `out` grows once.
inline void xtext_encode(std::string& out, std::string_view raw) {
  const std::size_t at = out.size();
  out.resize(at + xtext_encoded_size(raw));
  char* w = &out[0] + at;
  const char* p = raw.data();
  const char* const end = p + raw.size();
  while (p != end) {
    if (end - p >= 8 && detail::xtext_impl::all_xchar8(detail::xtext_impl::load8(p))) {
      std::memcpy(w, p, 8);
      p += 8;
      w += 8;
      continue;
    }
    const char c = *p++;
    if (detail::is(c, detail::cc_xchar)) {
      *w++ = c;
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    *w++ = '+';
    *w++ = detail::xtext_impl::upper_hex_digits[u >> 4];
    *w++ = detail::xtext_impl::upper_hex_digits[u & 0xF];
  }
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_XTEXT_HPP
