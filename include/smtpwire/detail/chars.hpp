// smtpwire — character classes of the SMTP grammars, as constexpr tables.
#ifndef SMTPWIRE_DETAIL_CHARS_HPP
#define SMTPWIRE_DETAIL_CHARS_HPP

#include <cstdint>
#include <string_view>

namespace smtpwire::detail {

/// Bit flags of one octet's classes.
enum char_class : std::uint16_t {
  cc_alpha = 1u << 0,        ///< ALPHA (RFC 5234)
  cc_digit = 1u << 1,        ///< DIGIT
  cc_hex = 1u << 2,          ///< HEXDIG, either case
  cc_atext = 1u << 3,        ///< atext (RFC 5322 §3.2.3), ASCII only
  cc_qtext = 1u << 4,        ///< qtextSMTP (RFC 5321 §4.1.2): %d32-33 / %d35-91 / %d93-126
  cc_vchar = 1u << 5,        ///< VCHAR %x21-7E
  cc_xchar = 1u << 6,        ///< xchar (RFC 3461): %x21-2A / %x2C-3C / %x3E-7E
  cc_dcontent = 1u << 7,     ///< dcontent (RFC 5321 §4.1.3): %d33-90 / %d94-126
  cc_b64 = 1u << 8,          ///< base64 alphabet (RFC 4648 §4), without '='
  cc_esmtp_value = 1u << 9,  ///< esmtp-value chars: %d33-60 / %d62-126
};

constexpr std::uint16_t classify(unsigned char c) noexcept {
  std::uint16_t f = 0;
  const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  const bool digit = c >= '0' && c <= '9';
  if (alpha) f |= cc_alpha;
  if (digit) f |= cc_digit;
  if (digit || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')) f |= cc_hex;
  if (alpha || digit ||
      std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos)
    f |= cc_atext;
  if ((c >= 32 && c <= 33) || (c >= 35 && c <= 91) || (c >= 93 && c <= 126)) f |= cc_qtext;
  if (c >= 0x21 && c <= 0x7e) f |= cc_vchar;
  if ((c >= 0x21 && c <= 0x2a) || (c >= 0x2c && c <= 0x3c) || (c >= 0x3e && c <= 0x7e))
    f |= cc_xchar;
  if ((c >= 33 && c <= 90) || (c >= 94 && c <= 126)) f |= cc_dcontent;
  if (alpha || digit || c == '+' || c == '/') f |= cc_b64;
  if ((c >= 33 && c <= 60) || (c >= 62 && c <= 126)) f |= cc_esmtp_value;
  return f;
}

struct char_table {
  std::uint16_t flags[256];
};

constexpr char_table make_char_table() noexcept {
  char_table t{};
  for (int i = 0; i < 256; ++i)
    t.flags[i] = classify(static_cast<unsigned char>(i));
  return t;
}

inline constexpr char_table chars = make_char_table();

/// True when octet `c` has every class bit in `mask`.
constexpr bool is(char c, std::uint16_t mask) noexcept {
  return (chars.flags[static_cast<unsigned char>(c)] & mask) == mask;
}

/// ASCII lower-casing of one octet (locale-independent).
constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

/// ASCII case-insensitive equality (SMTP verbs, keywords, domains).
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

/// The value of the keyword enum E whose to_string() is `name` (any case),
/// or E::unknown. E's named values are those before its last, `unknown`;
/// to_string is found by argument-dependent lookup in E's namespace.
template <class E>
constexpr E find_named(std::string_view name) noexcept {
  for (std::size_t i = 0; i < static_cast<std::size_t>(E::unknown); ++i) {
    const auto e = static_cast<E>(i);
    if (iequals(name, to_string(e))) return e;
  }
  return E::unknown;
}

/// True when `s` contains CR, LF or NUL: the bytes no writer may put inside a
/// line (they would end it early or inject another line).
constexpr bool has_line_breaking_byte(std::string_view s) noexcept {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return true;
  return false;
}

}  // namespace smtpwire::detail

#endif  // SMTPWIRE_DETAIL_CHARS_HPP
