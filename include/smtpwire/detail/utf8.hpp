// smtpwire — UTF-8 validation (RFC 3629 §4) for the SMTPUTF8 grammars
// (RFC 6531 §3.3: UTF8-non-ascii in addresses).
#ifndef SMTPWIRE_DETAIL_UTF8_HPP
#define SMTPWIRE_DETAIL_UTF8_HPP

#include <cstddef>
#include <string_view>

namespace smtpwire::detail {

// RFC 3629 §4:
//   UTF8-2    = %xC2-DF UTF8-tail
//   UTF8-3    = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
//               %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
//   UTF8-4    = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
//               %xF4 %x80-8F 2( UTF8-tail )
//   UTF8-tail = %x80-BF
/// Length (2..4) of the well-formed non-ASCII UTF-8 sequence that starts at
/// `p`, reading at most `avail` bytes; 0 when it is malformed, truncated,
/// overlong, a surrogate (U+D800..DFFF) or above U+10FFFF. `p[0]` must be
/// >= 0x80.
constexpr std::size_t utf8_sequence_length(const char* p, std::size_t avail) noexcept {
  const auto b = [p](std::size_t i) { return static_cast<unsigned char>(p[i]); };
  const auto tail = [](unsigned char c) { return c >= 0x80 && c <= 0xBF; };
  const unsigned char c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return avail >= 2 && tail(b(1)) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 3) return 0;
    // The second byte's range excludes overlongs (E0) and surrogates (ED).
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
    return b(1) >= lo && b(1) <= hi && tail(b(2)) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 4) return 0;
    // Excludes overlongs (F0) and code points above U+10FFFF (F4).
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
    return b(1) >= lo && b(1) <= hi && tail(b(2)) && tail(b(3)) ? 4 : 0;
  }
  return 0;  // a lone tail byte, C0/C1 (always overlong) or F5..FF
}

/// True when `s` is entirely well-formed UTF-8 (ASCII included).
constexpr bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s.data() + i, s.size() - i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// True when every octet of `s` is below 0x80.
constexpr bool is_ascii(std::string_view s) noexcept {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

}  // namespace smtpwire::detail

#endif  // SMTPWIRE_DETAIL_UTF8_HPP
