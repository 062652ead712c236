// smtpwire — SMTP paths and mailboxes (RFC 5321 §4.1.2, §4.1.3, §4.5.3.1;
// RFC 6531 §3.3 for SMTPUTF8): parsers that return views into the caller's
// input, and writers that refuse anything the parsers would not read back.
#ifndef SMTPWIRE_WIRE_PATH_HPP
#define SMTPWIRE_WIRE_PATH_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"

namespace smtpwire::wire {

/// What follows the '@' of a mailbox (or the argument of EHLO).
enum class address_kind : std::uint8_t {
  domain,   ///< a domain name (LDH labels; U-labels under SMTPUTF8)
  ipv4,     ///< "[" IPv4-address-literal "]"
  ipv6,     ///< "[IPv6:" IPv6-addr "]"
  general,  ///< "[" Standardized-tag ":" 1*dcontent "]"
};

/// "domain", "ipv4", "ipv6" or "general".
constexpr std::string_view to_string(address_kind k) noexcept {
  switch (k) {
    case address_kind::domain:
      return "domain";
    case address_kind::ipv4:
      return "ipv4";
    case address_kind::ipv6:
      return "ipv6";
    case address_kind::general:
      return "general";
  }
  return "unknown";
}

/// Limits and grammar switches for every path parser and writer.
struct path_options {
  std::size_t max_local_part = 64;  ///< octets; default 64, RFC 5321 §4.5.3.1.1 minimum 64
  std::size_t max_domain = 255;     ///< octets; default 255, RFC 5321 §4.5.3.1.2 minimum 255
  std::size_t max_path = 256;       ///< octets incl. "<" ">"; default 256, §4.5.3.1.3 minimum 256
  /// Accept UTF-8 (RFC 6531 §3.3) in local parts and domains. Set it only when
  /// the transaction uses SMTPUTF8; when false any octet >= 0x80 in an address
  /// gives errc::utf8_not_allowed. Default false.
  bool smtputf8 = false;
};

/// A mailbox (RFC 5321 §4.1.2 `Mailbox`). Both views point into the parsed
/// input and live as long as it.
struct mailbox {
  /// The local part as written: a dot-string, or a quoted-string with its
  /// quotes and quoted-pairs (see unquote_local_part). Case-sensitive.
  std::string_view local_part;
  /// The domain, or the whole address literal including its brackets.
  std::string_view domain;
  address_kind kind = address_kind::domain;  ///< what `domain` holds
};

/// A reverse-path or forward-path (RFC 5321 §4.1.2 `Path`, `Reverse-path`,
/// `Forward-path`, and `<Postmaster>` of §4.1.1.3). Views point into the
/// parsed input.
struct path {
  /// The obsolete source route (`A-d-l`, e.g. "@a.example,@b.example")
  /// without its trailing ':'; empty when absent. Report it, never route on
  /// it (RFC 5321 §3.3, Appendix C).
  std::string_view source_route;
  mailbox address;          ///< empty when `null`; domain empty when `postmaster`
  bool null = false;        ///< the null reverse-path "<>"
  bool postmaster = false;  ///< "<Postmaster>" without a domain (any case)
};

/// A parsed address literal (RFC 5321 §4.1.3). Views point into the input.
struct address_literal {
  address_kind kind = address_kind::ipv4;  ///< never address_kind::domain
  std::string_view tag;    ///< "IPv6" (as written) or the Standardized-tag; empty for IPv4
  std::string_view value;  ///< the text after "tag:" (or the dotted quad), no brackets
};

constexpr bool operator==(const mailbox& a, const mailbox& b) noexcept {
  return a.local_part == b.local_part && a.domain == b.domain && a.kind == b.kind;
}
constexpr bool operator!=(const mailbox& a, const mailbox& b) noexcept {
  return !(a == b);
}
constexpr bool operator==(const path& a, const path& b) noexcept {
  return a.source_route == b.source_route && a.address == b.address && a.null == b.null &&
         a.postmaster == b.postmaster;
}
constexpr bool operator!=(const path& a, const path& b) noexcept {
  return !(a == b);
}
constexpr bool operator==(const address_literal& a, const address_literal& b) noexcept {
  return a.kind == b.kind && a.tag == b.tag && a.value == b.value;
}
constexpr bool operator!=(const address_literal& a, const address_literal& b) noexcept {
  return !(a == b);
}

/// True when no part of `p` holds an octet >= 0x80. A server that offers
/// SMTPUTF8 parses with path_options::smtputf8 set and then requires the
/// SMTPUTF8 MAIL parameter when this is false (RFC 6531 §3.4).
constexpr bool is_ascii(const path& p) noexcept {
  return detail::is_ascii(p.source_route) && detail::is_ascii(p.address.local_part) &&
         detail::is_ascii(p.address.domain);
}

}  // namespace smtpwire::wire

namespace smtpwire::detail {

/// Octet classes of the path grammar, one lookup per byte.
enum path_class : std::uint8_t {
  pc_atext = 1u << 0,     ///< atext (ASCII)
  pc_letdig = 1u << 1,    ///< Let-dig = ALPHA / DIGIT
  pc_ldh = 1u << 2,       ///< ALPHA / DIGIT / "-"
  pc_qtext = 1u << 3,     ///< qtextSMTP (ASCII)
  pc_dcontent = 1u << 4,  ///< dcontent
  pc_digit = 1u << 5,     ///< DIGIT
  pc_hex = 1u << 6,       ///< HEXDIG
  pc_qpair = 1u << 7,     ///< %d32-126, the octet after "\" in quoted-pairSMTP
};

struct path_char_table {
  std::uint8_t flags[256];
};

constexpr path_char_table make_path_char_table() noexcept {
  path_char_table t{};
  for (int i = 0; i < 256; ++i) {
    const char c = static_cast<char>(i);
    std::uint8_t f = 0;
    if (is(c, cc_atext) && i < 0x80) f |= pc_atext;
    if (is(c, cc_alpha) || is(c, cc_digit)) f |= pc_letdig | pc_ldh;
    if (c == '-') f |= pc_ldh;
    if (is(c, cc_qtext) && i < 0x80) f |= pc_qtext;
    if (is(c, cc_dcontent) && i < 0x80) f |= pc_dcontent;
    if (is(c, cc_digit)) f |= pc_digit;
    if (is(c, cc_hex)) f |= pc_hex;
    if (i >= 32 && i <= 126) f |= pc_qpair;
    t.flags[i] = f;
  }
  return t;
}

inline constexpr path_char_table path_chars = make_path_char_table();

constexpr std::uint8_t path_class_of(char c) noexcept {
  return path_chars.flags[static_cast<unsigned char>(c)];
}

constexpr bool is_high(char c) noexcept {
  return static_cast<unsigned char>(c) >= 0x80;
}

/// Skips one UTF-8 sequence at `p` (an octet >= 0x80, SMTPUTF8 on).
constexpr errc skip_utf8(const char*& p, const char* end) noexcept {
  const std::size_t n = utf8_sequence_length(p, static_cast<std::size_t>(end - p));
  if (n == 0) return errc::utf8_invalid;
  p += n;
  return errc::ok;
}

/// Every scanner below leaves `p` on the offending octet when it fails, so
/// that finish() can tell an 8-bit octet without SMTPUTF8 from bad syntax.
constexpr errc finish(errc e, const char* p, const char* end, bool smtputf8) noexcept {
  if (e == errc::ok || smtputf8 || p == end || !is_high(*p)) return e;
  switch (e) {
    case errc::path_syntax:
    case errc::local_part_syntax:
    case errc::domain_syntax:
    case errc::address_literal_invalid:
      return errc::utf8_not_allowed;
    default:
      return e;
  }
}

// RFC 5321 §4.1.2:  Dot-string = Atom *("."  Atom)    Atom = 1*atext
// RFC 6531 §3.3:    atext =/ UTF8-non-ascii
/// Scans a dot-string; stops at the first octet that cannot continue it.
constexpr errc scan_dot_string(const char*& p, const char* end, bool smtputf8) noexcept {
  bool need_atom = true;
  while (p != end) {
    const char c = *p;
    if (path_class_of(c) & pc_atext) {
      ++p;
      need_atom = false;
    } else if (c == '.') {
      if (need_atom) return errc::local_part_syntax;
      need_atom = true;
      ++p;
    } else if (smtputf8 && is_high(c)) {
      if (const errc e = skip_utf8(p, end); e != errc::ok) return e;
      need_atom = false;
    } else {
      break;
    }
  }
  return need_atom ? errc::local_part_syntax : errc::ok;
}

// RFC 5321 §4.1.2:
//   Quoted-string   = DQUOTE *QcontentSMTP DQUOTE
//   QcontentSMTP    = qtextSMTP / quoted-pairSMTP
//   quoted-pairSMTP = %d92 %d32-126
//   qtextSMTP       = %d32-33 / %d35-91 / %d93-126
// RFC 6531 §3.3:    qtextSMTP =/ UTF8-non-ascii
/// Scans a quoted-string starting at its opening DQUOTE.
constexpr errc scan_quoted_string(const char*& p, const char* end, bool smtputf8) noexcept {
  ++p;
  while (p != end) {
    const char c = *p;
    if (c == '"') {
      ++p;
      return errc::ok;
    }
    if (c == '\\') {
      ++p;
      if (p == end || !(path_class_of(*p) & pc_qpair)) return errc::local_part_syntax;
      ++p;
    } else if (path_class_of(c) & pc_qtext) {
      ++p;
    } else if (smtputf8 && is_high(c)) {
      if (const errc e = skip_utf8(p, end); e != errc::ok) return e;
    } else {
      return errc::local_part_syntax;
    }
  }
  return errc::local_part_syntax;  // unterminated
}

/// Scans a local part (dot-string or quoted-string) and checks its length.
constexpr errc scan_local_part(const char*& p, const char* end,
                               const wire::path_options& o) noexcept {
  const char* start = p;
  const errc e = (p != end && *p == '"') ? scan_quoted_string(p, end, o.smtputf8)
                                         : scan_dot_string(p, end, o.smtputf8);
  if (e != errc::ok) return e;
  if (static_cast<std::size_t>(p - start) > o.max_local_part) return errc::local_part_too_long;
  return errc::ok;
}

// RFC 5321 §4.1.2:
//   Domain     = sub-domain *("." sub-domain)
//   sub-domain = Let-dig [Ldh-str]
//   Let-dig    = ALPHA / DIGIT
//   Ldh-str    = *( ALPHA / DIGIT / "-" ) Let-dig
// RFC 6531 §3.3:  sub-domain =/ U-label
// A U-label is accepted as LDH octets mixed with well-formed UTF-8; its IDNA2008
// validity (RFC 5891) is the resolver's business, not the wire grammar's.
/// Scans a domain; stops at the first octet that cannot continue it.
constexpr errc scan_domain(const char*& p, const char* end, const wire::path_options& o) noexcept {
  const char* start = p;
  for (;;) {
    if (p == end) return errc::domain_syntax;
    if (path_class_of(*p) & pc_letdig) {
      ++p;
    } else if (o.smtputf8 && is_high(*p)) {
      if (const errc e = skip_utf8(p, end); e != errc::ok) return e;
    } else {
      return errc::domain_syntax;
    }
    bool hyphen_last = false;
    while (p != end) {
      const char c = *p;
      if (path_class_of(c) & pc_letdig) {
        ++p;
        hyphen_last = false;
      } else if (c == '-') {
        ++p;
        hyphen_last = true;
      } else if (o.smtputf8 && is_high(c)) {
        if (const errc e = skip_utf8(p, end); e != errc::ok) return e;
        hyphen_last = false;
      } else {
        break;
      }
    }
    if (hyphen_last) return errc::domain_syntax;
    if (p == end || *p != '.') break;
    ++p;
  }
  if (static_cast<std::size_t>(p - start) > o.max_domain) return errc::domain_too_long;
  return errc::ok;
}

// RFC 5321 §4.1.3:
//   IPv4-address-literal = Snum 3("."  Snum)
//   Snum                 = 1*3DIGIT   ; representing a decimal integer value
//                                     ; in the range 0 through 255
/// Scans a dotted quad.
constexpr errc scan_ipv4(const char*& p, const char* end) noexcept {
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (p == end || *p != '.') return errc::address_literal_invalid;
      ++p;
    }
    int value = 0, digits = 0;
    while (p != end && digits < 4 && (path_class_of(*p) & pc_digit)) {
      value = value * 10 + (*p - '0');
      ++digits;
      ++p;
    }
    if (digits == 0 || digits > 3 || value > 255) return errc::address_literal_invalid;
  }
  return errc::ok;
}

// RFC 5321 §4.1.3:
//   IPv6-addr   = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp
//   IPv6-hex    = 1*4HEXDIG
//   IPv6-full   = IPv6-hex 7(":" IPv6-hex)
//   IPv6-comp   = [IPv6-hex *5(":" IPv6-hex)] "::" [IPv6-hex *5(":" IPv6-hex)]
//                 ; "::" represents at least 2 16-bit groups of zeros; no more
//                 ; than 6 groups in addition to the "::" may be present
//   IPv6v4-full = IPv6-hex 5(":" IPv6-hex) ":" IPv4-address-literal
//   IPv6v4-comp = [IPv6-hex *3(":" IPv6-hex)] "::"
//                 [IPv6-hex *3(":" IPv6-hex) ":"] IPv4-address-literal
//                 ; "::" represents at least 2 16-bit groups of zeros; no more
//                 ; than 4 groups in addition to the "::" and the IPv4 part
/// Scans an IPv6 address (after "IPv6:"), enforcing the group counts above.
constexpr errc scan_ipv6(const char*& p, const char* end) noexcept {
  int groups = 0;
  bool compressed = false, v4 = false;
  if (end - p >= 2 && p[0] == ':' && p[1] == ':') {
    compressed = true;
    p += 2;
  }
  const auto at_group = [&] { return p != end && (path_class_of(*p) & pc_hex); };
  if (!compressed || at_group()) {
    for (;;) {
      const char* t = p;
      while (t != end && t - p < 5 && (path_class_of(*t) & pc_hex))
        ++t;
      if (t != end && *t == '.') {
        // A dotted quad ends the address; the counts below check its place.
        if (const errc e = scan_ipv4(p, end); e != errc::ok) return e;
        v4 = true;
        break;
      }
      if (t == p || t - p > 4) {
        if (t - p > 4) p += 4;
        return errc::address_literal_invalid;
      }
      p = t;
      ++groups;
      if (p == end || *p != ':') break;
      if (end - p >= 2 && p[1] == ':') {
        if (compressed) return errc::address_literal_invalid;
        compressed = true;
        p += 2;
        if (!at_group()) break;
      } else {
        ++p;
      }
    }
  }
  const bool ok = compressed ? groups <= (v4 ? 4 : 6) : groups == (v4 ? 6 : 8);
  return ok ? errc::ok : errc::address_literal_invalid;
}

// RFC 5321 §4.1.3:
//   address-literal  = "[" ( IPv4-address-literal / IPv6-address-literal /
//                            General-address-literal ) "]"
//   IPv6-address-literal    = "IPv6:" IPv6-addr
//   General-address-literal = Standardized-tag ":" 1*dcontent
//   Standardized-tag        = Ldh-str
//   dcontent                = %d33-90 / %d94-126
// The tag "IPv6" (any case, as ABNF strings are) always means IPv6-addr.
/// Scans an address literal starting at its "[".
constexpr errc scan_address_literal(const char*& p, const char* end,
                                    wire::address_literal* out) noexcept {
  ++p;
  const char* content = p;
  while (p != end && (path_class_of(*p) & pc_ldh))
    ++p;
  wire::address_literal lit{};
  if (p != end && *p == ':' && p != content && (path_class_of(p[-1]) & pc_letdig)) {
    lit.tag = std::string_view(content, static_cast<std::size_t>(p - content));
    ++p;
    const char* value = p;
    if (iequals(lit.tag, "IPv6")) {
      lit.kind = wire::address_kind::ipv6;
      if (const errc e = scan_ipv6(p, end); e != errc::ok) return e;
    } else {
      lit.kind = wire::address_kind::general;
      while (p != end && (path_class_of(*p) & pc_dcontent))
        ++p;
      if (p == value) return errc::address_literal_invalid;
    }
    lit.value = std::string_view(value, static_cast<std::size_t>(p - value));
  } else {
    p = content;
    lit.kind = wire::address_kind::ipv4;
    if (const errc e = scan_ipv4(p, end); e != errc::ok) return e;
    lit.value = std::string_view(content, static_cast<std::size_t>(p - content));
  }
  if (p == end || *p != ']') return errc::address_literal_invalid;
  ++p;
  if (out) *out = lit;
  return errc::ok;
}

/// Scans `Domain / address-literal`, checks its length and records its kind.
constexpr errc scan_host(const char*& p, const char* end, const wire::path_options& o,
                         wire::address_kind& kind) noexcept {
  if (p != end && *p == '[') {
    const char* start = p;
    wire::address_literal lit{};
    if (const errc e = scan_address_literal(p, end, &lit); e != errc::ok) return e;
    if (static_cast<std::size_t>(p - start) > o.max_domain) return errc::domain_too_long;
    kind = lit.kind;
    return errc::ok;
  }
  kind = wire::address_kind::domain;
  return scan_domain(p, end, o);
}

// RFC 5321 §4.1.2:  Mailbox = Local-part "@" ( Domain / address-literal )
/// Scans a mailbox; stops after its domain or literal.
constexpr errc scan_mailbox(const char*& p, const char* end, const wire::path_options& o,
                            wire::mailbox& out) noexcept {
  const char* lp = p;
  if (const errc e = scan_local_part(p, end, o); e != errc::ok) return e;
  out.local_part = std::string_view(lp, static_cast<std::size_t>(p - lp));
  if (p == end || *p != '@')
    return (p == end || *p == '>') ? errc::path_syntax : errc::local_part_syntax;
  ++p;
  const char* d = p;
  if (const errc e = scan_host(p, end, o, out.kind); e != errc::ok) return e;
  out.domain = std::string_view(d, static_cast<std::size_t>(p - d));
  return errc::ok;
}

// RFC 5321 §4.1.2:
//   Reverse-path = Path / "<>"
//   Forward-path = Path
//   Path         = "<" [ A-d-l ":" ] Mailbox ">"
//   A-d-l        = At-domain *( "," At-domain )
//   At-domain    = "@" Domain
// RFC 5321 §4.1.1.3:  "<Postmaster>" is a forward-path too (case-insensitive).
/// Scans a path starting at "<"; `forward` selects Forward-path (which allows
/// "<Postmaster>" and forbids "<>"). Leaves `p` after ">".
constexpr errc scan_path_impl(const char*& p, const char* end, const wire::path_options& o,
                              bool forward, wire::path& out) noexcept {
  const char* start = p;
  if (p == end || *p != '<') return errc::path_syntax;
  ++p;
  if (p != end && *p == '>') {
    if (forward) return errc::path_syntax;
    ++p;
    out.null = true;
    return errc::ok;
  }
  if (p != end && *p == '@') {
    const char* route = p;
    for (;;) {
      ++p;
      if (const errc e = scan_domain(p, end, o); e != errc::ok) return e;
      if (p == end || *p != ',') break;
      ++p;
      if (p == end || *p != '@') return errc::path_syntax;
    }
    if (p == end || *p != ':')
      return (p == end || *p == '>') ? errc::path_syntax : errc::domain_syntax;
    out.source_route = std::string_view(route, static_cast<std::size_t>(p - route));
    ++p;
  }
  const char* lp = p;
  if (forward && out.source_route.empty() && end - p >= 11 &&
      iequals(std::string_view(p, 10), "postmaster") && p[10] == '>') {
    p += 11;
    out.address.local_part = std::string_view(lp, 10);
    out.postmaster = true;
    return errc::ok;
  }
  if (const errc e = scan_mailbox(p, end, o, out.address); e != errc::ok) return e;
  if (p == end || *p != '>') return p == end ? errc::path_syntax : errc::domain_syntax;
  ++p;
  if (static_cast<std::size_t>(p - start) > o.max_path) return errc::path_too_long;
  return errc::ok;
}

/// scan_path_impl, with 8-bit octets mapped to errc::utf8_not_allowed.
constexpr errc scan_path(const char*& p, const char* end, const wire::path_options& o, bool forward,
                         wire::path& out) noexcept {
  const errc e = scan_path_impl(p, end, o, forward, out);
  return finish(e, p, end, o.smtputf8);
}

/// True when `s` needs no quoting: a dot-string (8-bit allowed iff `smtputf8`).
constexpr bool is_dot_string(std::string_view s, bool smtputf8) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  return scan_dot_string(p, end, smtputf8) == errc::ok && p == end;
}

}  // namespace smtpwire::detail

namespace smtpwire::wire {

/// Parses `s`, which must be exactly one Reverse-path ("<>" or a Path, see
/// detail::scan_path_impl for the ABNF). The views of the result point into
/// `s`. Errors: path_syntax, local_part_syntax, local_part_too_long,
/// domain_syntax, domain_too_long, address_literal_invalid, path_too_long,
/// utf8_invalid, utf8_not_allowed.
[[nodiscard]] inline result<path> parse_reverse_path(std::string_view s,
                                                     const path_options& o = {}) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  path out{};
  errc e = detail::scan_path(p, end, o, false, out);
  if (e == errc::ok && p != end) e = detail::finish(errc::path_syntax, p, end, o.smtputf8);
  if (e != errc::ok) return e;
  return out;
}

/// Parses `s`, which must be exactly one Forward-path (a Path, or
/// "<Postmaster>" in any case). Views point into `s`; errors as
/// parse_reverse_path ("<>" is path_syntax).
[[nodiscard]] inline result<path> parse_forward_path(std::string_view s,
                                                     const path_options& o = {}) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  path out{};
  errc e = detail::scan_path(p, end, o, true, out);
  if (e == errc::ok && p != end) e = detail::finish(errc::path_syntax, p, end, o.smtputf8);
  if (e != errc::ok) return e;
  return out;
}

/// Parses `s`, which must be exactly one Mailbox (local-part "@" domain or
/// address literal, no angle brackets; see detail::scan_mailbox). Views point
/// into `s`. The path length limit does not apply.
[[nodiscard]] inline result<mailbox> parse_mailbox(std::string_view s,
                                                   const path_options& o = {}) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  mailbox out{};
  errc e = detail::scan_mailbox(p, end, o, out);
  if (e == errc::ok && p != end) e = errc::domain_syntax;
  e = detail::finish(e, p, end, o.smtputf8);
  if (e != errc::ok) return e;
  return out;
}

/// Parses `s`, which must be exactly one Domain (see detail::scan_domain) of
/// at most o.max_domain octets; returns `s`. Errors: domain_syntax,
/// domain_too_long, utf8_invalid, utf8_not_allowed.
[[nodiscard]] inline result<std::string_view> parse_domain(std::string_view s,
                                                           const path_options& o = {}) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  errc e = detail::scan_domain(p, end, o);
  if (e == errc::ok && p != end) e = errc::domain_syntax;
  e = detail::finish(e, p, end, o.smtputf8);
  if (e != errc::ok) return e;
  return s;
}

/// Parses `s`, which must be exactly one address literal with its brackets
/// (see detail::scan_address_literal). Views point into `s`. Errors:
/// address_literal_invalid, utf8_not_allowed (an 8-bit octet; address
/// literals are ASCII even under SMTPUTF8).
[[nodiscard]] inline result<address_literal> parse_address_literal(std::string_view s) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  address_literal out{};
  errc e = errc::address_literal_invalid;
  if (p != end && *p == '[') e = detail::scan_address_literal(p, end, &out);
  if (e == errc::ok && p != end) e = errc::address_literal_invalid;
  e = detail::finish(e, p, end, false);
  if (e != errc::ok) return e;
  return out;
}

/// Appends the local part `lp` (as written, e.g. from mailbox::local_part)
/// to `out` with its quotes and quoted-pair backslashes removed. Returns
/// local_part_syntax (appending nothing) when `lp` is not a quoted-string
/// or dot-string; 8-bit octets are copied as they are.
[[nodiscard]] inline errc unquote_local_part(std::string& out, std::string_view lp) {
  const char* p = lp.data();
  const char* end = p + lp.size();
  const errc e = (p != end && *p == '"') ? detail::scan_quoted_string(p, end, true)
                                         : detail::scan_dot_string(p, end, true);
  if (e != errc::ok || p != end) return errc::local_part_syntax;
  if (lp.front() != '"') {
    out.append(lp);
    return errc::ok;
  }
  for (std::size_t i = 1; i + 1 < lp.size(); ++i) {
    if (lp[i] == '\\') ++i;
    out.push_back(lp[i]);
  }
  return errc::ok;
}

/// Appends `value` (an unquoted local part) to `out` as a dot-string when it
/// is one, else as a quoted-string with '"' and '\' escaped. Refuses (and
/// appends nothing) control octets (local_part_syntax), CR/LF/NUL
/// (command_value_invalid), 8-bit without o.smtputf8 (utf8_not_allowed),
/// malformed UTF-8 (utf8_invalid) and a result longer than o.max_local_part
/// (local_part_too_long).
[[nodiscard]] inline errc write_local_part(std::string& out, std::string_view value,
                                           const path_options& o = {}) {
  if (detail::has_line_breaking_byte(value)) return errc::command_value_invalid;
  if (detail::is_dot_string(value, o.smtputf8)) {
    if (value.size() > o.max_local_part) return errc::local_part_too_long;
    out.append(value);
    return errc::ok;
  }
  std::size_t quoted = 2;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (detail::is_high(c)) {
      if (!o.smtputf8) return errc::utf8_not_allowed;
      const std::size_t n = detail::utf8_sequence_length(value.data() + i, value.size() - i);
      if (n == 0) return errc::utf8_invalid;
      quoted += n;
      i += n - 1;
      continue;
    }
    if (!(detail::path_class_of(c) & detail::pc_qpair)) return errc::local_part_syntax;
    quoted += (c == '"' || c == '\\') ? 2 : 1;
  }
  if (quoted > o.max_local_part) return errc::local_part_too_long;
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return errc::ok;
}

/// Appends "local@domain" to `out`. The mailbox must parse back to itself
/// under `o` (kind included); otherwise nothing is appended and the parse
/// error (or command_value_invalid for CR/LF/NUL, or api_value_invalid for a
/// wrong kind) is returned.
[[nodiscard]] inline errc write_mailbox(std::string& out, const mailbox& m,
                                        const path_options& o = {}) {
  if (detail::has_line_breaking_byte(m.local_part) || detail::has_line_breaking_byte(m.domain))
    return errc::command_value_invalid;
  const std::size_t old = out.size();
  out.append(m.local_part).push_back('@');
  out.append(m.domain);
  const auto back = parse_mailbox(std::string_view(out).substr(old), o);
  const errc e = !back ? back.error() : (*back != m ? errc::api_value_invalid : errc::ok);
  if (e != errc::ok) out.resize(old);
  return e;
}

/// Appends the path `p` with its angle brackets ("<>", "<Postmaster>",
/// "<@route:local@domain>"). The path must parse back to itself under `o`
/// (as a reverse-path when null, else as a forward-path); otherwise nothing
/// is appended and the error is returned as for write_mailbox.
[[nodiscard]] inline errc write_path(std::string& out, const path& p, const path_options& o = {}) {
  if (detail::has_line_breaking_byte(p.source_route) ||
      detail::has_line_breaking_byte(p.address.local_part) ||
      detail::has_line_breaking_byte(p.address.domain))
    return errc::command_value_invalid;
  const std::size_t old = out.size();
  out.push_back('<');
  if (!p.null) {
    if (!p.source_route.empty()) out.append(p.source_route).push_back(':');
    out.append(p.address.local_part);
    if (!p.postmaster) out.append("@").append(p.address.domain);
  }
  out.push_back('>');
  const std::string_view written = std::string_view(out).substr(old);
  const auto back = p.null ? parse_reverse_path(written, o) : parse_forward_path(written, o);
  const errc e = !back ? back.error() : (*back != p ? errc::api_value_invalid : errc::ok);
  if (e != errc::ok) out.resize(old);
  return e;
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_PATH_HPP
