// smtpwire — base64 (RFC 4648 §4), as SMTP AUTH (RFC 4954) and the content
// layer use it: strict validation, table-driven decoding four characters at
// a time, and encoding.
//
// Decisions (strict; none is configurable):
// - Only the §4 alphabet (A-Z a-z 0-9 + /) and '=' padding. No line breaks,
//   no spaces, no URL-safe alphabet (RFC 4648 §3.3: characters outside the
//   alphabet are rejected, not skipped).
// - Padding is mandatory and exact (§3.2): the length is a multiple of 4 and
//   '=' appears only as the last one or two characters of the last quantum.
// - Canonical encoding only (§3.5): the pad bits of a final "xx==" or "xxx="
//   quantum must be zero, so every octet string has exactly one accepted
//   encoding and decode(encode(x)) == x, encode(decode(s)) == s.
// - The empty string is valid and decodes to nothing (RFC 4954's "=" for an
//   empty initial response is the command layer's business).
//
// Nothing here allocates except by growing the caller's std::string, and a
// function that fails appends nothing.
#ifndef SMTPWIRE_WIRE_BASE64_HPP
#define SMTPWIRE_WIRE_BASE64_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpwire/error.hpp"

namespace smtpwire::detail::base64_impl {
inline constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline constexpr std::uint8_t invalid = 0x80;  // any value with this bit is not a sextet

struct decode_table {
  std::uint8_t v[256];
};
constexpr decode_table make_decode_table() noexcept {
  decode_table t{};
  for (auto& x : t.v)
    x = invalid;
  for (int i = 0; i < 64; ++i)
    t.v[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  return t;
}
inline constexpr decode_table table = make_decode_table();

constexpr std::uint32_t sextet(char c) noexcept {
  return table.v[static_cast<unsigned char>(c)];
}

/// Decodes `in` (n % 4 == 0) into `dst`, which has room for the decoded
/// size; returns false at the first malformed quantum. Writes only within
/// the decoded size.
constexpr bool decode(const char* in, std::size_t n, char* dst) noexcept {
  if (n == 0) return true;
  const char* const last = in + n - 4;
  // Every quantum but the last is four alphabet characters: OR-ing the
  // table values tests all four for the invalid bit at once.
  for (; in != last; in += 4, dst += 3) {
    const std::uint32_t a = sextet(in[0]), b = sextet(in[1]), c = sextet(in[2]), d = sextet(in[3]);
    if ((a | b | c | d) & invalid) return false;
    const std::uint32_t v = a << 18 | b << 12 | c << 6 | d;
    dst[0] = static_cast<char>(v >> 16);
    dst[1] = static_cast<char>(v >> 8 & 0xFF);
    dst[2] = static_cast<char>(v & 0xFF);
  }
  const std::uint32_t a = sextet(in[0]), b = sextet(in[1]);
  if ((a | b) & invalid) return false;
  if (in[3] != '=') {
    const std::uint32_t c = sextet(in[2]), d = sextet(in[3]);
    if ((c | d) & invalid) return false;
    const std::uint32_t v = a << 18 | b << 12 | c << 6 | d;
    dst[0] = static_cast<char>(v >> 16);
    dst[1] = static_cast<char>(v >> 8 & 0xFF);
    dst[2] = static_cast<char>(v & 0xFF);
    return true;
  }
  if (in[2] == '=') {
    // "xx==": 12 bits carry one octet; the low 4 bits of b must be zero.
    if (b & 0x0F) return false;
    dst[0] = static_cast<char>(a << 2 | b >> 4);
    return true;
  }
  // "xxx=": 18 bits carry two octets; the low 2 bits of c must be zero.
  const std::uint32_t c = sextet(in[2]);
  if ((c & invalid) || (c & 0x03)) return false;
  const std::uint32_t v = a << 18 | b << 12 | c << 6;
  dst[0] = static_cast<char>(v >> 16);
  dst[1] = static_cast<char>(v >> 8 & 0xFF);
  return true;
}

constexpr void encode(const unsigned char* in, std::size_t n, char* dst) noexcept {
  std::size_t i = 0;
  for (; n - i >= 3; i += 3, dst += 4) {
    const std::uint32_t v = std::uint32_t{in[i]} << 16 | std::uint32_t{in[i + 1]} << 8 | in[i + 2];
    dst[0] = alphabet[v >> 18];
    dst[1] = alphabet[v >> 12 & 0x3F];
    dst[2] = alphabet[v >> 6 & 0x3F];
    dst[3] = alphabet[v & 0x3F];
  }
  if (n - i == 1) {
    const std::uint32_t v = std::uint32_t{in[i]} << 16;
    dst[0] = alphabet[v >> 18];
    dst[1] = alphabet[v >> 12 & 0x3F];
    dst[2] = '=';
    dst[3] = '=';
  } else if (n - i == 2) {
    const std::uint32_t v = std::uint32_t{in[i]} << 16 | std::uint32_t{in[i + 1]} << 8;
    dst[0] = alphabet[v >> 18];
    dst[1] = alphabet[v >> 12 & 0x3F];
    dst[2] = alphabet[v >> 6 & 0x3F];
    dst[3] = '=';
  }
}
}  // namespace smtpwire::detail::base64_impl

namespace smtpwire::wire {

/// The length of the base64 encoding of `n` octets: 4 * ceil(n / 3).
/// `n` must not exceed SIZE_MAX / 4 * 3.
constexpr std::size_t base64_encoded_size(std::size_t n) noexcept {
  return n / 3 * 4 + (n % 3 != 0 ? 4 : 0);
}

/// The number of octets the base64 text `s` decodes to: 3 per quantum minus
/// one per '=' at its end. Exact when `s` is valid; 0 when its length is not
/// a multiple of 4.
constexpr std::size_t base64_decoded_size(std::string_view s) noexcept {
  if (s.empty() || s.size() % 4 != 0) return 0;
  std::size_t n = s.size() / 4 * 3;
  if (s[s.size() - 1] == '=') --n;
  if (s[s.size() - 2] == '=') --n;
  return n;
}

// RFC 4648 §4 (in the ABNF RFC 4954 §4 gives for it):
//   base64          = base64-terminal / ( 1*(4base64-char) [base64-terminal] )
//   base64-char     = ALPHA / DIGIT / "+" / "/"
//   base64-terminal = (2base64-char "==") / (3base64-char "=")
// plus the empty string, and §3.5: the pad bits of a terminal are zero.
/// Checks that `s` is strict, canonical base64 (see the file comment);
/// returns errc::ok or errc::base64_invalid. Reads only the bytes of `s`.
constexpr errc validate_base64(std::string_view s) noexcept {
  if (s.size() % 4 != 0) return errc::base64_invalid;
  if (s.empty()) return errc::ok;
  // Decoding into a 3-octet scratch block per quantum checks exactly what
  // decode checks, without an output buffer.
  for (std::size_t i = 0; i < s.size(); i += 4) {
    char scratch[3] = {};
    const bool last = i + 4 == s.size();
    if (!last) {
      const char* q = s.data() + i;
      if ((detail::base64_impl::sextet(q[0]) | detail::base64_impl::sextet(q[1]) |
           detail::base64_impl::sextet(q[2]) | detail::base64_impl::sextet(q[3])) &
          detail::base64_impl::invalid)
        return errc::base64_invalid;
    } else if (!detail::base64_impl::decode(s.data() + i, 4, scratch)) {
      return errc::base64_invalid;
    }
  }
  return errc::ok;
}

/// True when `s` is strict, canonical base64 (see validate_base64).
constexpr bool is_base64(std::string_view s) noexcept {
  return validate_base64(s) == errc::ok;
}

/// Decodes the base64 text `in` and appends the octets to `out`. Returns
/// errc::ok, or errc::base64_invalid with `out` unchanged. `out` grows once,
/// by exactly the decoded size.
[[nodiscard]] inline errc base64_decode(std::string& out, std::string_view in) {
  if (in.size() % 4 != 0) return errc::base64_invalid;
  const std::size_t at = out.size();
  out.resize(at + base64_decoded_size(in));
  if (!detail::base64_impl::decode(in.data(), in.size(), &out[0] + at)) {
    out.resize(at);
    return errc::base64_invalid;
  }
  return errc::ok;
}

/// Decodes the base64 text `in` into `dst`, which has room for `cap` octets.
/// Returns the number of octets written, errc::base64_invalid, or
/// errc::api_value_invalid when `cap` < base64_decoded_size(in). On
/// base64_invalid, `dst` may hold partial output.
[[nodiscard]] inline result<std::size_t> base64_decode(char* dst, std::size_t cap,
                                                       std::string_view in) noexcept {
  if (in.size() % 4 != 0) return errc::base64_invalid;
  const std::size_t n = base64_decoded_size(in);
  if (n > cap) return errc::api_value_invalid;
  if (!detail::base64_impl::decode(in.data(), in.size(), dst)) return errc::base64_invalid;
  return n;
}

/// Appends the padded base64 encoding of the octets `raw` to `out`. `out`
/// grows once, by base64_encoded_size(raw.size()).
inline void base64_encode(std::string& out, std::string_view raw) {
  const std::size_t at = out.size();
  out.resize(at + base64_encoded_size(raw.size()));
  detail::base64_impl::encode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                              &out[0] + at);
}

/// Writes the padded base64 encoding of `raw` to `dst`, which has room for
/// base64_encoded_size(raw.size()) characters; returns that size.
inline std::size_t base64_encode(char* dst, std::string_view raw) noexcept {
  detail::base64_impl::encode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size(), dst);
  return base64_encoded_size(raw.size());
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_BASE64_HPP
