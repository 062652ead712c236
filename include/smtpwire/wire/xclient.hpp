// smtpwire — Postfix's XCLIENT and XFORWARD commands: their attribute lists
// <-> typed, validated values, without allocation.
//
// Sources: Postfix XCLIENT_README (NAME, REVERSE_NAME, ADDR, PORT, PROTO,
// HELO, LOGIN, DESTADDR, DESTPORT) and XFORWARD_README (NAME, ADDR, PORT,
// PROTO, HELO, IDENT, SOURCE). Both share one grammar:
//   xclient-command  = "XCLIENT" 1*( SP attribute-name "=" attribute-value )
//   xforward-command = "XFORWARD" 1*( SP attribute-name "=" attribute-value )
//   attribute-value  = xtext                                   (RFC 3461 §4)
// and the special values "[UNAVAILABLE]" (any attribute) and "[TEMPUNAVAIL]"
// (NAME and REVERSE_NAME: the name lookup failed temporarily).
//
// Input of parse_xattributes: the text after "XCLIENT " / "XFORWARD ", i.e.
// wire::command::argument. Every view in the result points into that text.
//
// Decisions (strict by default; none is configurable):
// - Attribute names match in any case; each may appear at most once in one
//   command (Postfix lets a later one win; a repeated attribute from a
//   trusted proxy is a bug worth refusing). A name the command does not
//   take is errc::xattr_unknown.
// - Values are checked after xtext decoding (the README's rules apply to the
//   decoded text); the result keeps the raw xtext so that nothing is copied.
//   The special values match in any case, also when written as "+HH".
// - Per attribute (decoded):
//   NAME, REVERSE_NAME  a host name: dot-separated labels of 1..63 letters,
//                       digits, '-' or '_', 1..255 octets in all, not ending
//                       in an all-digit label (that would be an address).
//   HELO                1..255 octets of %d33-126: the point of forwarding it
//                       is to pass on what the original client said, even a
//                       bad name, to the access rules; only the charset is
//                       enforced so that nothing unprintable reaches logs.
//   ADDR, DESTADDR      an IPv4 dotted quad, or "IPV6:" (any case) followed
//                       by an IPv6 address (RFC 5321 §4.1.3 IPv6-addr).
//   PORT, DESTPORT      1..5 digits, 0..65535.
//   PROTO               XCLIENT: "SMTP" or "ESMTP" (any case); XFORWARD: the
//                       up-stream protocol name, 1..64 octets of %d33-126.
//   LOGIN               1..255 octets, no control octet (C0, DEL); octets
//                       >= 0x80 must be well-formed UTF-8 (SASL names).
//   IDENT               1..64 octets of %d33-126 (the up-stream queue id).
//   SOURCE              "LOCAL" or "REMOTE" (any case).
//   A value whose decoded text is a special value never counts as a value.
// - Which attributes a server offers and whether the peer may send XCLIENT
//   at all (trusted hosts only) is the engine's business, not the grammar's.
#ifndef SMTPWIRE_WIRE_XCLIENT_HPP
#define SMTPWIRE_WIRE_XCLIENT_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"
#include "smtpwire/wire/path.hpp"
#include "smtpwire/wire/xtext.hpp"

namespace smtpwire::wire {

/// The two Postfix commands that carry client attributes.
enum class xcommand : std::uint8_t {
  xclient,   ///< XCLIENT: overrides the session's client facts (then a new 220 greeting)
  xforward,  ///< XFORWARD: facts about the original client for the next transaction
};

/// The command's verb as written on the wire ("XCLIENT", "XFORWARD").
constexpr std::string_view to_string(xcommand c) noexcept {
  return c == xcommand::xclient ? "XCLIENT" : "XFORWARD";
}

/// Attribute names of both commands (XCLIENT_README, XFORWARD_README).
enum class xattr : std::uint8_t {
  name,          ///< NAME: the up-stream host name (both)
  reverse_name,  ///< REVERSE_NAME: the unverified reverse-DNS name (XCLIENT)
  addr,          ///< ADDR: the up-stream IP address (both)
  port,          ///< PORT: the up-stream TCP port (both)
  proto,         ///< PROTO: SMTP / ESMTP (XCLIENT), the up-stream protocol (XFORWARD)
  helo,          ///< HELO: the HELO/EHLO argument the original client sent (both)
  login,         ///< LOGIN: the SASL login name (XCLIENT)
  destaddr,      ///< DESTADDR: the local address the client connected to (XCLIENT)
  destport,      ///< DESTPORT: the local port the client connected to (XCLIENT)
  ident,         ///< IDENT: the up-stream queue id (XFORWARD)
  source,        ///< SOURCE: LOCAL or REMOTE origin (XFORWARD)
  unknown,       ///< any other name (never stored)
};

/// Number of known attributes (the values before xattr::unknown).
inline constexpr std::size_t xattr_count = static_cast<std::size_t>(xattr::unknown);

/// The attribute's name as written on the wire ("NAME", "REVERSE_NAME", …);
/// "" for unknown.
constexpr std::string_view to_string(xattr a) noexcept {
  switch (a) {
    case xattr::name:
      return "NAME";
    case xattr::reverse_name:
      return "REVERSE_NAME";
    case xattr::addr:
      return "ADDR";
    case xattr::port:
      return "PORT";
    case xattr::proto:
      return "PROTO";
    case xattr::helo:
      return "HELO";
    case xattr::login:
      return "LOGIN";
    case xattr::destaddr:
      return "DESTADDR";
    case xattr::destport:
      return "DESTPORT";
    case xattr::ident:
      return "IDENT";
    case xattr::source:
      return "SOURCE";
    case xattr::unknown:
      break;
  }
  return "";
}

/// The attribute named `name` (any case), or xattr::unknown.
constexpr xattr find_xattr(std::string_view name) noexcept {
  return detail::find_named<xattr>(name);
}

/// True when command `c` takes attribute `a` (XCLIENT: NAME REVERSE_NAME
/// ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT; XFORWARD: NAME ADDR PORT
/// PROTO HELO IDENT SOURCE).
constexpr bool allowed(xcommand c, xattr a) noexcept {
  switch (a) {
    case xattr::name:
    case xattr::addr:
    case xattr::port:
    case xattr::proto:
    case xattr::helo:
      return true;
    case xattr::reverse_name:
    case xattr::login:
    case xattr::destaddr:
    case xattr::destport:
      return c == xcommand::xclient;
    case xattr::ident:
    case xattr::source:
      return c == xcommand::xforward;
    case xattr::unknown:
      break;
  }
  return false;
}

/// The bit of attribute `a` in an attribute set (capabilities::xclient,
/// capabilities::xforward, write_xcommands' `offered`); 0 for unknown.
constexpr std::uint16_t xattr_bit(xattr a) noexcept {
  return a == xattr::unknown ? std::uint16_t{0}
                             : static_cast<std::uint16_t>(1u << static_cast<unsigned>(a));
}

/// The set of every attribute command `c` takes.
constexpr std::uint16_t all_xattrs(xcommand c) noexcept {
  std::uint16_t s = 0;
  for (std::size_t i = 0; i < xattr_count; ++i)
    if (allowed(c, static_cast<xattr>(i))) s = static_cast<std::uint16_t>(s | (1u << i));
  return s;
}

/// What one attribute holds.
enum class xvalue_kind : std::uint8_t {
  absent,       ///< not given
  value,        ///< a value (see xattributes::raw)
  unavailable,  ///< "[UNAVAILABLE]": the fact is not known
  tempunavail,  ///< "[TEMPUNAVAIL]": NAME / REVERSE_NAME lookup failed temporarily
};

/// The special value written for `k` ("[UNAVAILABLE]", "[TEMPUNAVAIL]");
/// "" for absent and value.
constexpr std::string_view to_string(xvalue_kind k) noexcept {
  switch (k) {
    case xvalue_kind::unavailable:
      return "[UNAVAILABLE]";
    case xvalue_kind::tempunavail:
      return "[TEMPUNAVAIL]";
    default:
      return "";
  }
}

/// One command's attributes, indexed by xattr. Parsed: `raw` holds the xtext
/// as written (a view into the parsed text). Given to write_xcommands: `raw`
/// holds the DECODED value (the writer encodes it). Only kind == value has a
/// meaningful `raw`; operator== compares only that.
struct xattributes {
  std::array<xvalue_kind, xattr_count> kind{};  ///< absent unless given
  std::array<std::string_view, xattr_count> raw{};

  /// What attribute `a` holds (absent for xattr::unknown).
  constexpr xvalue_kind get(xattr a) const noexcept {
    return a == xattr::unknown ? xvalue_kind::absent : kind[static_cast<std::size_t>(a)];
  }
  /// The raw text of `a` when it holds a value, "" otherwise.
  constexpr std::string_view value(xattr a) const noexcept {
    return get(a) == xvalue_kind::value ? raw[static_cast<std::size_t>(a)] : std::string_view{};
  }
  /// Sets attribute `a` (ignored for xattr::unknown); `v` matters only for
  /// xvalue_kind::value.
  constexpr void set(xattr a, xvalue_kind k, std::string_view v = {}) noexcept {
    if (a == xattr::unknown) return;
    kind[static_cast<std::size_t>(a)] = k;
    raw[static_cast<std::size_t>(a)] = k == xvalue_kind::value ? v : std::string_view{};
  }
  /// Sets attribute `a` to the value `v`.
  constexpr void set(xattr a, std::string_view v) noexcept { set(a, xvalue_kind::value, v); }
  /// The set of attributes not absent (xattr_bit per attribute).
  constexpr std::uint16_t present() const noexcept {
    std::uint16_t s = 0;
    for (std::size_t i = 0; i < xattr_count; ++i)
      if (kind[i] != xvalue_kind::absent) s = static_cast<std::uint16_t>(s | (1u << i));
    return s;
  }
  /// True when no attribute is given.
  constexpr bool empty() const noexcept { return present() == 0; }
};

/// Same kinds, and the same raw text where kind == value.
constexpr bool operator==(const xattributes& a, const xattributes& b) noexcept {
  for (std::size_t i = 0; i < xattr_count; ++i) {
    if (a.kind[i] != b.kind[i]) return false;
    if (a.kind[i] == xvalue_kind::value && a.raw[i] != b.raw[i]) return false;
  }
  return true;
}
constexpr bool operator!=(const xattributes& a, const xattributes& b) noexcept {
  return !(a == b);
}

}  // namespace smtpwire::wire

namespace smtpwire::detail::xclient_impl {

/// Longest decoded value of any attribute (host names: RFC 5321 §4.5.3.1.2).
inline constexpr std::size_t max_value = 255;  // default 255; Postfix VALID_HOSTNAME_LEN 255
/// Longest PROTO (XFORWARD) and IDENT value.
inline constexpr std::size_t max_short_value = 64;  // 64, as XFORWARD_README states
/// Longest label of a host name.
inline constexpr std::size_t max_label = 63;  // 63, RFC 1035 §2.3.4

constexpr bool all_in(std::string_view v, std::size_t max) noexcept {
  if (v.empty() || v.size() > max) return false;
  for (char c : v)
    if (!is(c, cc_vchar)) return false;
  return true;
}

constexpr bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is(c, cc_digit)) return false;
  return true;
}

// XCLIENT_README: NAME is a host name. Letters, digits, '-' and '_' (which
// real names carry and Postfix accepts) in labels of at most 63 octets, 255
// in all.
constexpr bool is_host_name(std::string_view v) noexcept {
  if (v.empty() || v.size() > max_value) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= v.size(); ++i) {
    if (i == v.size() || v[i] == '.') {
      if (label == 0 || label > max_label) return false;
      label = 0;
      continue;
    }
    const char c = v[i];
    if (!(is(c, cc_alpha) || is(c, cc_digit) || c == '-' || c == '_')) return false;
    ++label;
  }
  // An all-digit last label would make "168.100.189.2" a name.
  const std::size_t last = v.rfind('.');
  return !all_digits(last == std::string_view::npos ? v : v.substr(last + 1));
}

// XCLIENT_README: ADDR is an IPv4 address, or "IPV6:" and an IPv6 address.
constexpr bool is_address(std::string_view v) noexcept {
  const char* p = v.data();
  const char* end = p + v.size();
  if (v.size() > 5 && iequals(v.substr(0, 5), "IPV6:")) {
    p += 5;
    return scan_ipv6(p, end) == errc::ok && p == end;
  }
  if (v.empty() || !is(v[0], cc_digit)) return false;
  // Leading zeros are refused: "010" is octal to inet_aton, decimal to others.
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] == '0' && (i == 0 || v[i - 1] == '.') && i + 1 < v.size() && is(v[i + 1], cc_digit))
      return false;
  return scan_ipv4(p, end) == errc::ok && p == end;
}

constexpr bool is_port(std::string_view v) noexcept {
  if (v.empty() || v.size() > 5 || !all_digits(v)) return false;
  std::uint32_t n = 0;
  for (char c : v)
    n = n * 10 + static_cast<std::uint32_t>(c - '0');
  return n <= 65535;
}

constexpr bool is_login(std::string_view v) noexcept {
  if (v.empty() || v.size() > max_value) return false;
  for (std::size_t i = 0; i < v.size();) {
    const auto u = static_cast<unsigned char>(v[i]);
    if (u < 0x20 || u == 0x7F) return false;
    if (u < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(v.data() + i, v.size() - i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// The special value `v` spells (any case), or xvalue_kind::value.
constexpr wire::xvalue_kind special_of(std::string_view v) noexcept {
  if (iequals(v, "[UNAVAILABLE]")) return wire::xvalue_kind::unavailable;
  if (iequals(v, "[TEMPUNAVAIL]")) return wire::xvalue_kind::tempunavail;
  return wire::xvalue_kind::value;
}

/// True when `k` may stand for attribute `a`.
constexpr bool special_allowed(wire::xattr a, wire::xvalue_kind k) noexcept {
  if (k == wire::xvalue_kind::unavailable) return true;
  return k == wire::xvalue_kind::tempunavail &&
         (a == wire::xattr::name || a == wire::xattr::reverse_name);
}

/// True when the decoded `v` is a valid (non-special) value of `a` in `c`.
constexpr bool valid_value(wire::xcommand c, wire::xattr a, std::string_view v) noexcept {
  using wire::xattr;
  if (special_of(v) != wire::xvalue_kind::value) return false;
  switch (a) {
    case xattr::name:
    case xattr::reverse_name:
      return is_host_name(v);
    case xattr::helo:
      return all_in(v, max_value);
    case xattr::addr:
    case xattr::destaddr:
      return is_address(v);
    case xattr::port:
    case xattr::destport:
      return is_port(v);
    case xattr::proto:
      if (c == wire::xcommand::xclient) return iequals(v, "SMTP") || iequals(v, "ESMTP");
      return all_in(v, max_short_value);
    case xattr::login:
      return is_login(v);
    case xattr::ident:
      return all_in(v, max_short_value);
    case xattr::source:
      return iequals(v, "LOCAL") || iequals(v, "REMOTE");
    case xattr::unknown:
      break;
  }
  return false;
}

constexpr errc syntax_of(wire::xcommand c) noexcept {
  return c == wire::xcommand::xclient ? errc::xclient_syntax : errc::xforward_syntax;
}

/// True when `s` is 1*( attribute-name "=" 1*VCHAR ) separated by single SPs:
/// the shape parse_command accepts for XCLIENT / XFORWARD arguments.
constexpr bool is_attribute_list(std::string_view s) noexcept {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  char prev = 'x';
  for (char c : s) {
    if (c == ' ' ? prev == ' ' : !is(c, cc_vchar)) return false;
    prev = c;
  }
  return true;
}

}  // namespace smtpwire::detail::xclient_impl

namespace smtpwire::wire {

// XCLIENT_README / XFORWARD_README:
//   1*( SP attribute-name "=" attribute-value );  attribute-value = xtext
/// Parses the attributes after "XCLIENT " / "XFORWARD " (no leading SP) of
/// command `c` into `out` (reset first); views point into `args`. Errors,
/// for the first offending attribute, left to right: xclient_syntax /
/// xforward_syntax (empty text, a leading, trailing or doubled SP, a token
/// without "=" or with an empty name or value, an octet outside %d33-126),
/// xattr_unknown (a name `c` does not take), xattr_duplicate,
/// xtext_invalid, xattr_value_invalid (see the rules at the top of this
/// header). On error `out` holds the attributes read before the bad one.
[[nodiscard]] constexpr errc parse_xattributes(xcommand c, std::string_view args,
                                               xattributes& out) noexcept {
  namespace impl = detail::xclient_impl;
  out = xattributes{};
  const errc syntax = impl::syntax_of(c);
  if (!impl::is_attribute_list(args)) return syntax;
  std::size_t at = 0;
  while (at < args.size()) {
    std::size_t sp = args.find(' ', at);
    if (sp == std::string_view::npos) sp = args.size();
    const std::string_view token = args.substr(at, sp - at);
    at = sp + 1;
    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == token.size()) return syntax;
    const xattr a = find_xattr(token.substr(0, eq));
    if (a == xattr::unknown || !allowed(c, a)) return errc::xattr_unknown;
    if (out.get(a) != xvalue_kind::absent) return errc::xattr_duplicate;
    const std::string_view raw = token.substr(eq + 1);
    if (const errc e = validate_xtext(raw); e != errc::ok) return e;
    if (xtext_decoded_size(raw) > impl::max_value) return errc::xattr_value_invalid;
    char buf[impl::max_value] = {};
    std::size_t n = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '+') {
        buf[n++] = raw[i];
        continue;
      }
      buf[n++] = static_cast<char>(detail::xtext_impl::upper_hex_value(raw[i + 1]) * 16 +
                                   detail::xtext_impl::upper_hex_value(raw[i + 2]));
      i += 2;
    }
    const std::string_view decoded(buf, n);
    const xvalue_kind k = impl::special_of(decoded);
    if (k != xvalue_kind::value) {
      if (!impl::special_allowed(a, k)) return errc::xattr_value_invalid;
      out.set(a, k);
      continue;
    }
    if (!impl::valid_value(c, a, decoded)) return errc::xattr_value_invalid;
    out.set(a, raw);
  }
  return errc::ok;
}

/// Checks decoded attributes for command `c` as write_xcommands would:
/// errc::ok, xattr_unknown (an attribute given that `c` does not take) or
/// xattr_value_invalid (a value outside its attribute's rules, or
/// [TEMPUNAVAIL] on an attribute other than NAME / REVERSE_NAME).
[[nodiscard]] constexpr errc validate_xattributes(xcommand c, const xattributes& decoded) noexcept {
  namespace impl = detail::xclient_impl;
  for (std::size_t i = 0; i < xattr_count; ++i) {
    const auto a = static_cast<xattr>(i);
    const xvalue_kind k = decoded.kind[i];
    if (k == xvalue_kind::absent) continue;
    if (!allowed(c, a)) return errc::xattr_unknown;
    if (k == xvalue_kind::value) {
      if (!impl::valid_value(c, a, decoded.raw[i])) return errc::xattr_value_invalid;
    } else if (!impl::special_allowed(a, k)) {
      return errc::xattr_value_invalid;
    }
  }
  return errc::ok;
}

/// Appends the attributes of `decoded` (raw = DECODED values) as one or more
/// complete command lines "XCLIENT A=v B=w\r\n" of command `c`, values
/// xtext-encoded, attributes in xattr order, each line at most `max_line`
/// octets with its CRLF (split between attributes). Only attributes whose
/// xattr_bit is in `offered` (the server's EHLO list) are written; the
/// others are left out silently. `lines` receives the number of lines
/// (0 and nothing appended when no offered attribute is given). Errors, with
/// nothing appended: those of validate_xattributes for any given attribute
/// (offered or not), and line_too_long when one attribute alone does not
/// fit a line.
[[nodiscard]] inline errc write_xcommands(
    std::string& out, xcommand c, const xattributes& decoded, std::uint16_t offered,
    std::size_t& lines,
    std::size_t max_line = 512) {  // default 512; RFC 5321 §4.5.3.1.4: 512
  lines = 0;
  if (const errc e = validate_xattributes(c, decoded); e != errc::ok) return e;
  const std::string_view verb = to_string(c);
  const std::size_t at = out.size();
  std::size_t line_start = std::string::npos;
  std::size_t n = 0;
  for (std::size_t i = 0; i < xattr_count; ++i) {
    const auto a = static_cast<xattr>(i);
    const xvalue_kind k = decoded.kind[i];
    if (k == xvalue_kind::absent || !(offered & xattr_bit(a))) continue;
    const std::string_view special = to_string(k);
    const std::size_t value_size =
        k == xvalue_kind::value ? xtext_encoded_size(decoded.raw[i]) : special.size();
    const std::size_t item = 1 + to_string(a).size() + 1 + value_size;
    if (verb.size() + item + 2 > max_line) {
      out.resize(at);
      return errc::line_too_long;
    }
    if (line_start != std::string::npos && out.size() - line_start + item + 2 > max_line) {
      out.append("\r\n");
      line_start = std::string::npos;
    }
    if (line_start == std::string::npos) {
      line_start = out.size();
      out.append(verb);
      ++n;
    }
    out.push_back(' ');
    out.append(to_string(a)).push_back('=');
    if (k == xvalue_kind::value)
      xtext_encode(out, decoded.raw[i]);
    else
      out.append(special);
  }
  if (line_start != std::string::npos) out.append("\r\n");
  lines = n;
  return errc::ok;
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_XCLIENT_HPP
