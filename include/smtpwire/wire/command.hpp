// smtpwire — SMTP command lines (RFC 5321 §4.1.1; STARTTLS RFC 3207; AUTH
// RFC 4954; BDAT RFC 3030; LHLO RFC 2033; Postfix's XCLIENT and XFORWARD):
// one parser from a line to a typed command, one writer back.
//
// Decisions (strict by default; none of them is configurable yet):
// - Verbs and the keywords "FROM:", "TO:" and "LAST" match in any case.
// - Exactly one SP separates a verb from its argument and an argument from
//   the next one. A space after "FROM:" or "TO:" (which the ABNF does not
//   allow) is mail_syntax / rcpt_syntax, and so is any trailing whitespace:
//   "QUIT " is quit_syntax, "MAIL FROM:<a@b> " is mail_syntax.
// - Error choice: the verb's own error (helo_syntax, mail_syntax, …) when
//   the shape of the line is wrong (missing or extra argument, bad separator,
//   missing "FROM:"); the path.hpp error (path_syntax, domain_syntax,
//   local_part_too_long, utf8_not_allowed, …) when the shape is right but the
//   address or domain inside fails its own grammar, because that error names
//   the failing part (501 5.1.x / 553 5.6.7). An empty line or an
//   unrecognised verb is command_unknown (500 5.5.1).
// - MAIL and RCPT parameters are not parsed here (wire/params.hpp does it);
//   the raw text after the path's SP is handed over as `params`. Likewise
//   the attributes of XCLIENT and XFORWARD (wire/xclient.hpp): only their
//   shape (single-SP separated VCHAR tokens) is checked here; names and
//   values are parse_xattributes' job.
#ifndef SMTPWIRE_WIRE_COMMAND_HPP
#define SMTPWIRE_WIRE_COMMAND_HPP

#include <cstdint>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"
#include "smtpwire/wire/path.hpp"
#include "smtpwire/wire/xclient.hpp"

namespace smtpwire::wire {

/// The SMTP command verbs smtpwire knows.
enum class verb : std::uint8_t {
  helo,
  ehlo,
  lhlo,
  mail,
  rcpt,
  data,
  bdat,
  rset,
  vrfy,
  expn,
  help,
  noop,
  quit,
  starttls,
  auth,
  xclient,   ///< XCLIENT (Postfix XCLIENT_README)
  xforward,  ///< XFORWARD (Postfix XFORWARD_README)
  unknown,   ///< anything else (never produced by a successful parse)
};

/// The verb as written on the wire ("EHLO", "STARTTLS", …); "" for unknown.
constexpr std::string_view to_string(verb v) noexcept {
  switch (v) {
    case verb::helo:
      return "HELO";
    case verb::ehlo:
      return "EHLO";
    case verb::lhlo:
      return "LHLO";
    case verb::mail:
      return "MAIL";
    case verb::rcpt:
      return "RCPT";
    case verb::data:
      return "DATA";
    case verb::bdat:
      return "BDAT";
    case verb::rset:
      return "RSET";
    case verb::vrfy:
      return "VRFY";
    case verb::expn:
      return "EXPN";
    case verb::help:
      return "HELP";
    case verb::noop:
      return "NOOP";
    case verb::quit:
      return "QUIT";
    case verb::starttls:
      return "STARTTLS";
    case verb::auth:
      return "AUTH";
    case verb::xclient:
      return "XCLIENT";
    case verb::xforward:
      return "XFORWARD";
    case verb::unknown:
      break;
  }
  return "";
}

/// Options of parse_command and write_command.
struct command_options {
  /// Limits and SMTPUTF8 for paths, EHLO/HELO/LHLO domains and the free text
  /// of VRFY, EXPN, HELP and NOOP (see path_options; all default to RFC 5321).
  path_options path;
};

/// One parsed command. Only the members listed for `kind` are meaningful
/// (operator== compares only those); the others keep their defaults. Every
/// view points into the parsed line and lives as long as it.
struct command {
  verb kind = verb::unknown;
  /// HELO, EHLO, LHLO: the client's domain, or (EHLO, LHLO) an address literal
  /// with its brackets.
  std::string_view domain;
  address_kind domain_kind = address_kind::domain;  ///< HELO, EHLO, LHLO
  /// MAIL: the reverse-path; RCPT: the forward-path.
  wire::path path;
  /// MAIL, RCPT: the raw ESMTP parameter text after the path's SP (e.g.
  /// "SIZE=1024 BODY=8BITMIME"), empty when none; parse it with params.hpp.
  std::string_view params;
  std::uint64_t size = 0;  ///< BDAT: the chunk size in octets
  bool last = false;       ///< BDAT: "LAST" was given
  /// VRFY, EXPN: the argument (never empty); HELP, NOOP: the optional
  /// argument (empty when absent); XCLIENT, XFORWARD: the attribute list
  /// (never empty; parse it with wire/xclient.hpp's parse_xattributes).
  std::string_view argument;
  std::string_view mechanism;  ///< AUTH: the SASL mechanism name, as written
  /// AUTH: the initial response, still base64-encoded, or "=" for an empty
  /// one; empty when the client sent none.
  std::string_view initial_response;
};

/// Compares the members meaningful for the verb (byte for byte).
constexpr bool operator==(const command& a, const command& b) noexcept {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case verb::helo:
    case verb::ehlo:
    case verb::lhlo:
      return a.domain == b.domain && a.domain_kind == b.domain_kind;
    case verb::mail:
    case verb::rcpt:
      return a.path == b.path && a.params == b.params;
    case verb::bdat:
      return a.size == b.size && a.last == b.last;
    case verb::vrfy:
    case verb::expn:
    case verb::help:
    case verb::noop:
    case verb::xclient:
    case verb::xforward:
      return a.argument == b.argument;
    case verb::auth:
      return a.mechanism == b.mechanism && a.initial_response == b.initial_response;
    default:
      return true;
  }
}
constexpr bool operator!=(const command& a, const command& b) noexcept {
  return !(a == b);
}

}  // namespace smtpwire::wire

namespace smtpwire::detail {

/// Four octets as one integer, independent of the host's byte order.
constexpr std::uint32_t pack4(char a, char b, char c, char d) noexcept {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(a)) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b)) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(c)) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(d)) << 24;
}

/// Four octets at `p`, each with bit 5 set. Compared against a lower-case
/// letters-only key this is an exact case-insensitive match: setting bit 5
/// maps only 'A'..'Z' into 'a'..'z'.
constexpr std::uint32_t load4_folded(const char* p) noexcept {
  return pack4(p[0], p[1], p[2], p[3]) | 0x20202020u;
}

/// The verb that starts `line` (a 4-letter verb, STARTTLS, XCLIENT or XFORWARD, followed by SP
/// or the end of the line), in any case.
constexpr wire::verb match_verb(std::string_view line) noexcept {
  using wire::verb;
  const char* p = line.data();
  if (line.size() == 4 || (line.size() > 4 && p[4] == ' ')) {
    switch (load4_folded(p)) {
      case pack4('h', 'e', 'l', 'o'):
        return verb::helo;
      case pack4('e', 'h', 'l', 'o'):
        return verb::ehlo;
      case pack4('l', 'h', 'l', 'o'):
        return verb::lhlo;
      case pack4('m', 'a', 'i', 'l'):
        return verb::mail;
      case pack4('r', 'c', 'p', 't'):
        return verb::rcpt;
      case pack4('d', 'a', 't', 'a'):
        return verb::data;
      case pack4('b', 'd', 'a', 't'):
        return verb::bdat;
      case pack4('r', 's', 'e', 't'):
        return verb::rset;
      case pack4('v', 'r', 'f', 'y'):
        return verb::vrfy;
      case pack4('e', 'x', 'p', 'n'):
        return verb::expn;
      case pack4('h', 'e', 'l', 'p'):
        return verb::help;
      case pack4('n', 'o', 'o', 'p'):
        return verb::noop;
      case pack4('q', 'u', 'i', 't'):
        return verb::quit;
      case pack4('a', 'u', 't', 'h'):
        return verb::auth;
      default:
        return verb::unknown;
    }
  }
  if (line.size() == 8 || (line.size() > 8 && p[8] == ' ')) {
    const std::uint32_t head = load4_folded(p), tail = load4_folded(p + 4);
    if (head == pack4('s', 't', 'a', 'r') && tail == pack4('t', 't', 'l', 's'))
      return verb::starttls;
    if (head == pack4('x', 'f', 'o', 'r') && tail == pack4('w', 'a', 'r', 'd'))
      return verb::xforward;
  }
  // "XCLIENT": 7 octets; the 8th folded octet must be SP (0x20 | 0x20 == 0x20).
  if ((line.size() == 7 || (line.size() > 7 && p[7] == ' ')) &&
      load4_folded(p) == pack4('x', 'c', 'l', 'i') &&
      (pack4(p[4], p[5], p[6], 'x') | 0x20202020u) == pack4('e', 'n', 't', 'x'))
    return verb::xclient;
  return verb::unknown;
}

/// The syntax error of verb `v`.
constexpr errc syntax_error_of(wire::verb v) noexcept {
  using wire::verb;
  switch (v) {
    case verb::helo:
      return errc::helo_syntax;
    case verb::ehlo:
      return errc::ehlo_syntax;
    case verb::lhlo:
      return errc::lhlo_syntax;
    case verb::mail:
      return errc::mail_syntax;
    case verb::rcpt:
      return errc::rcpt_syntax;
    case verb::data:
      return errc::data_syntax;
    case verb::bdat:
      return errc::bdat_syntax;
    case verb::rset:
      return errc::rset_syntax;
    case verb::vrfy:
      return errc::vrfy_syntax;
    case verb::expn:
      return errc::expn_syntax;
    case verb::help:
      return errc::help_syntax;
    case verb::noop:
      return errc::noop_syntax;
    case verb::quit:
      return errc::quit_syntax;
    case verb::starttls:
      return errc::starttls_syntax;
    case verb::auth:
      return errc::auth_syntax;
    case verb::xclient:
      return errc::xclient_syntax;
    case verb::xforward:
      return errc::xforward_syntax;
    case verb::unknown:
      break;
  }
  return errc::command_unknown;
}

// RFC 5321 §4.1.1.6-4.1.1.8, §4.1.2:  "VRFY" SP String, "EXPN" SP String,
// "HELP" [ SP String ], "NOOP" [ SP String ];  String = Atom / Quoted-string.
// Real clients send "VRFY user@example.org" and "NOOP hello there", which are
// not a String but harm nobody, so the argument is taken as free text: 1*(VCHAR
// / SP), not starting or ending with SP; UTF-8 only under SMTPUTF8 (RFC 6531
// §3.7.4.2). The engine interprets it.
/// Checks a free-text argument; returns `syntax` for a bad octet.
constexpr errc check_text_argument(std::string_view s, bool smtputf8, errc syntax) noexcept {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return syntax;
  const char* p = s.data();
  const char* end = p + s.size();
  while (p != end) {
    const char c = *p;
    if (c == ' ' || is(c, cc_vchar)) {
      ++p;
    } else if (is_high(c)) {
      if (!smtputf8) return errc::utf8_not_allowed;
      if (const errc e = skip_utf8(p, end); e != errc::ok) return e;
    } else {
      return syntax;
    }
  }
  return errc::ok;
}

// RFC 4954 §4:  initial-response = base64 / "="
// RFC 4422 §3.1 (via RFC 4954):
//   base64          = base64-terminal / ( 1*(4base64-char) [base64-terminal] )
//   base64-char     = ALPHA / DIGIT / "+" / "/"
//   base64-terminal = (2base64-char "==") / (3base64-char "=")
/// Checks the syntax of an initial response without decoding it.
constexpr errc check_initial_response(std::string_view s) noexcept {
  if (s == "=") return errc::ok;
  if (s.empty() || s.size() % 4 != 0) return errc::base64_invalid;
  std::size_t pad = 0;
  if (s.back() == '=') pad = s[s.size() - 2] == '=' ? 2 : 1;
  for (std::size_t i = 0; i < s.size() - pad; ++i)
    if (!is(s[i], cc_b64)) return errc::base64_invalid;
  return errc::ok;
}

// RFC 4422 §3.1:  sasl-mech = 1*20mech-char
//                 mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE
// Lower-case letters are accepted too: mechanism names compare case-insensitively.
/// True when `s` is a SASL mechanism name.
constexpr bool is_sasl_mechanism(std::string_view s) noexcept {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (!(is(c, cc_alpha) || is(c, cc_digit) || c == '-' || c == '_')) return false;
  return true;
}

/// Parses the argument of HELO (`allow_literal` false) or EHLO/LHLO.
inline errc parse_hello(const char* p, const char* end, const wire::path_options& o,
                        bool allow_literal, errc syntax, wire::command& c) noexcept {
  if (p == end || *p != ' ') return syntax;
  ++p;
  const char* start = p;
  if (p == end || (!allow_literal && *p == '[')) return syntax;
  errc e = scan_host(p, end, o, c.domain_kind);
  if (e == errc::ok && p != end) e = *p == ' ' ? syntax : errc::domain_syntax;
  e = finish(e, p, end, o.smtputf8);
  c.domain = std::string_view(start, static_cast<std::size_t>(p - start));
  return e;
}

// RFC 5321 §4.1.1.2-4.1.1.3:
//   mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
//   rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
//          Forward-path ) [SP Rcpt-parameters] CRLF
/// Parses the part of MAIL/RCPT after the verb; `keyword` is "from:" or "to:".
inline errc parse_mail_rcpt(const char* p, const char* end, const wire::path_options& o,
                            bool forward, errc syntax, wire::command& c) noexcept {
  const std::size_t klen = forward ? 3 : 5;
  if (end - p < static_cast<std::ptrdiff_t>(klen + 1) || p[0] != ' ') return syntax;
  ++p;
  const bool keyword_ok = forward ? (ascii_lower(p[0]) == 't' && ascii_lower(p[1]) == 'o')
                                  : load4_folded(p) == pack4('f', 'r', 'o', 'm');
  if (!keyword_ok || p[klen - 1] != ':') return syntax;
  p += klen;
  if (p != end && *p == ' ') return syntax;  // no SP after the colon in the ABNF
  if (const errc e = scan_path(p, end, o, forward, c.path); e != errc::ok) return e;
  if (p == end) return errc::ok;
  if (*p != ' ') return syntax;
  ++p;
  const std::string_view params(p, static_cast<std::size_t>(end - p));
  if (params.empty() || params.front() == ' ' || params.back() == ' ' ||
      has_line_breaking_byte(params))
    return syntax;
  c.params = params;
  return errc::ok;
}

// RFC 3030 §2:  bdat-cmd   ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
//               chunk-size ::= 1*DIGIT
//               end-marker ::= "LAST"
/// Parses the part of BDAT after the verb. A syntax error wins over an
/// overflowing size, so that "BDAT 99999999999999999999 X" is bdat_syntax.
constexpr errc parse_bdat(const char* p, const char* end, wire::command& c) noexcept {
  if (p == end || *p != ' ') return errc::bdat_syntax;
  ++p;
  if (p == end || !is(*p, cc_digit)) return errc::bdat_syntax;
  std::uint64_t v = 0;
  bool overflow = false;
  constexpr std::uint64_t max = ~std::uint64_t{0};
  while (p != end && is(*p, cc_digit)) {
    const auto d = static_cast<std::uint64_t>(*p - '0');
    if (v > (max - d) / 10)
      overflow = true;
    else
      v = v * 10 + d;
    ++p;
  }
  if (p != end) {
    if (*p != ' ' || end - p != 5 || load4_folded(p + 1) != pack4('l', 'a', 's', 't'))
      return errc::bdat_syntax;
    c.last = true;
  }
  if (overflow) return errc::bdat_size_overflow;
  c.size = v;
  return errc::ok;
}

// RFC 4954 §4:  "AUTH" SP sasl-mech [SP initial-response]
/// Parses the part of AUTH after the verb (the first line only).
constexpr errc parse_auth(const char* p, const char* end, wire::command& c) noexcept {
  if (p == end || *p != ' ') return errc::auth_syntax;
  ++p;
  const char* mech = p;
  while (p != end && *p != ' ')
    ++p;
  c.mechanism = std::string_view(mech, static_cast<std::size_t>(p - mech));
  if (!is_sasl_mechanism(c.mechanism)) return errc::auth_syntax;
  if (p == end) return errc::ok;
  ++p;
  if (p == end) return errc::auth_syntax;
  c.initial_response = std::string_view(p, static_cast<std::size_t>(end - p));
  if (c.initial_response.front() == ' ') return errc::auth_syntax;
  for (char ch : c.initial_response)
    if (ch == ' ' || !is(ch, cc_vchar)) return errc::auth_syntax;
  return check_initial_response(c.initial_response);
}

}  // namespace smtpwire::detail

namespace smtpwire::wire {

/// The verb `line` starts with (verb::unknown when none), without checking
/// the rest. Lets an engine react to a command whose arguments are bad (e.g.
/// count a rejected RCPT, or know that a bad BDAT line announced no chunk).
constexpr verb peek_verb(std::string_view line) noexcept {
  return detail::match_verb(line);
}

/// Parses one command line given WITHOUT its CRLF (line framing is
/// wire/line.hpp's job); every view in the result points into `line`.
/// Grammar per verb (RFC 5321 §4.1.1 unless noted):
///   "EHLO" SP ( Domain / address-literal )        (LHLO: RFC 2033 §4.1, same)
///   "HELO" SP Domain
///   "MAIL FROM:" Reverse-path [SP Mail-parameters]
///   "RCPT TO:" ( "<Postmaster>" / Forward-path ) [SP Rcpt-parameters]
///   "DATA" / "RSET" / "QUIT" / "STARTTLS" (RFC 3207 §4: no parameters)
///   "BDAT" SP chunk-size [SP "LAST"]                        (RFC 3030 §2)
///   "VRFY" SP String / "EXPN" SP String / "HELP" [SP String] / "NOOP" [SP String]
///   "AUTH" SP sasl-mech [SP initial-response]               (RFC 4954 §4)
///   "XCLIENT" / "XFORWARD" SP 1*VCHAR *(SP 1*VCHAR)  (Postfix; the attributes
///                                     are checked by parse_xattributes)
/// Errors: command_unknown for an empty line or unknown verb; the verb's
/// *_syntax error; bdat_size_overflow (a size above 2^64-1); base64_invalid
/// (a malformed AUTH initial response); the path.hpp errors for a bad address
/// or domain (see the decisions at the top of this header).
[[nodiscard]] inline result<command> parse_command(std::string_view line,
                                                   const command_options& o = {}) noexcept {
  command c{};
  c.kind = detail::match_verb(line);
  const char* end = line.data() + line.size();
  // The verb's length is only added once match_verb has seen that many octets.
  const char* p = c.kind == verb::unknown ? end : line.data() + to_string(c.kind).size();
  errc e = errc::ok;
  switch (c.kind) {
    case verb::helo:
      e = detail::parse_hello(p, end, o.path, false, errc::helo_syntax, c);
      break;
    case verb::ehlo:
      e = detail::parse_hello(p, end, o.path, true, errc::ehlo_syntax, c);
      break;
    case verb::lhlo:
      e = detail::parse_hello(p, end, o.path, true, errc::lhlo_syntax, c);
      break;
    case verb::mail:
      e = detail::parse_mail_rcpt(p, end, o.path, false, errc::mail_syntax, c);
      break;
    case verb::rcpt:
      e = detail::parse_mail_rcpt(p, end, o.path, true, errc::rcpt_syntax, c);
      break;
    case verb::data:
    case verb::rset:
    case verb::quit:
    case verb::starttls:
      if (p != end) e = detail::syntax_error_of(c.kind);
      break;
    case verb::bdat:
      e = detail::parse_bdat(p, end, c);
      break;
    case verb::vrfy:
    case verb::expn:
    case verb::help:
    case verb::noop: {
      const bool optional = c.kind == verb::help || c.kind == verb::noop;
      const errc syntax = detail::syntax_error_of(c.kind);
      if (p == end) {
        if (!optional) e = syntax;
        break;
      }
      if (*p != ' ') {
        e = syntax;
        break;
      }
      ++p;
      c.argument = std::string_view(p, static_cast<std::size_t>(end - p));
      e = detail::check_text_argument(c.argument, o.path.smtputf8, syntax);
      break;
    }
    case verb::auth:
      e = detail::parse_auth(p, end, c);
      break;
    case verb::xclient:
    case verb::xforward: {
      const errc syntax = detail::syntax_error_of(c.kind);
      if (p == end || *p != ' ') {
        e = syntax;
        break;
      }
      ++p;
      c.argument = std::string_view(p, static_cast<std::size_t>(end - p));
      e = detail::xclient_impl::is_attribute_list(c.argument) ? errc::ok : syntax;
      break;
    }
    case verb::unknown:
      e = errc::command_unknown;
      break;
  }
  if (e != errc::ok) return e;
  return c;
}

/// Appends `c` as one command line WITH its CRLF, the verb in upper case
/// ("MAIL FROM:<a@b> SIZE=1\r\n"). The command must be valid under `o` and
/// parse back to itself (parse(write(c)) == c); otherwise nothing is
/// appended and command_value_invalid is returned, in particular for any
/// value that would put CR, LF or NUL on the wire and for verb::unknown.
[[nodiscard]] inline errc write_command(std::string& out, const command& c,
                                        const command_options& o = {}) {
  const std::string_view views[] = {
      c.domain,   c.path.source_route, c.path.address.local_part, c.path.address.domain, c.params,
      c.argument, c.mechanism,         c.initial_response};
  for (std::string_view v : views)
    if (detail::has_line_breaking_byte(v)) return errc::command_value_invalid;
  if (c.kind == verb::unknown) return errc::command_value_invalid;
  const std::size_t old = out.size();
  out.append(to_string(c.kind));
  switch (c.kind) {
    case verb::helo:
    case verb::ehlo:
    case verb::lhlo:
      out.append(" ").append(c.domain);
      break;
    case verb::mail:
    case verb::rcpt:
      out.append(c.kind == verb::mail ? " FROM:<" : " TO:<");
      if (!c.path.null) {
        if (!c.path.source_route.empty()) out.append(c.path.source_route).append(":");
        out.append(c.path.address.local_part);
        if (!c.path.postmaster) out.append("@").append(c.path.address.domain);
      }
      out.append(">");
      if (!c.params.empty()) out.append(" ").append(c.params);
      break;
    case verb::bdat: {
      char digits[20];
      int n = 0;
      std::uint64_t v = c.size;
      do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
      } while (v != 0);
      out.push_back(' ');
      while (n > 0)
        out.push_back(digits[--n]);
      if (c.last) out.append(" LAST");
      break;
    }
    case verb::vrfy:
    case verb::expn:
    case verb::help:
    case verb::noop:
    case verb::xclient:
    case verb::xforward:
      if (!c.argument.empty()) out.append(" ").append(c.argument);
      break;
    case verb::auth:
      out.append(" ").append(c.mechanism);
      if (!c.initial_response.empty()) out.append(" ").append(c.initial_response);
      break;
    default:
      break;
  }
  const auto back = parse_command(std::string_view(out).substr(old), o);
  if (!back || *back != c) {
    out.resize(old);
    return errc::command_value_invalid;
  }
  out.append("\r\n");
  return errc::ok;
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_COMMAND_HPP
