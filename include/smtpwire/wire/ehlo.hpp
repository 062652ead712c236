// smtpwire — the EHLO reply: its greeting line and capability lines (RFC 5321
// §4.1.1.1) <-> a typed set of capabilities, without allocation.
//
// Input is the text of each reply line WITHOUT its "250-"/"250 " prefix and
// CRLF (wire/reply.hpp reads replies), fed one line at a time to an
// ehlo_reader or all at once to parse_ehlo. The first line is the greeting.
// Every view in the result points into those lines and lives as long as they
// do.
//
// Decisions:
// - Keywords match in any case (RFC 5321 §2.4). Known keywords are a bitset,
//   their parameters typed values; AUTH mechanisms a bitset of the known
//   ones plus up to capabilities::max_mechanisms other names; unknown
//   keywords are kept as views (keyword, raw parameters) up to
//   capabilities::max_extensions. Beyond a capacity, entries are counted in
//   ehlo_diagnostics and dropped: memory never grows.
// - A line that is not an ehlo-line (bad keyword octet, 8-bit, control
//   bytes, an empty parameter from a double or trailing SP, an empty line)
//   is IGNORED and reported in ehlo_diagnostics, never guessed at: a client
//   must never act on a capability the server did not state in the
//   grammar, and the safe outcome of ignoring it is falling back to plain
//   SMTP (or, under a TLS-required policy, refusing to continue). It is not
//   an error by default because servers in the wild send odd lines and one
//   of them should not cost the session; ehlo_options::reject_malformed
//   makes it errc::capability_syntax for strict checkers.
// - A well-formed line whose keyword is known but whose parameters are not
//   what the extension defines ("SIZE -1", "SIZE 99999999999999999999999",
//   "STARTTLS now", an AUTH name that is not a sasl-mech) still announces the
//   extension: the keyword is set, the bad parameter is ignored (SIZE and
//   DELIVERBY then read as 0, "no limit given") and the line is reported.
// - The legacy "AUTH=LOGIN PLAIN" line (sent by old servers for Outlook
//   Express era clients) is merged with "AUTH ..." into one mechanism set.
// - A repeated known keyword is reported; the first valid value of SIZE,
//   DELIVERBY, MT-PRIORITY and FUTURERELEASE, and the first LIMITS line's
//   limits, win; AUTH, XCLIENT and XFORWARD lines merge. Repeated unknown
//   keywords are each kept.
// - LIMITS (RFC 9422): unknown limit names are ignored whatever their value;
//   a malformed, zero or repeated known limit is ignored and the line
//   reported, the other limits on the line still count.
// - XCLIENT / XFORWARD (Postfix): the listed attribute names become a bit
//   set; names the command does not take or smtpwire does not know are
//   skipped without a report (Postfix adds names over time).
// - FUTURERELEASE (RFC 4865 §3) has two mandatory parameters; without them
//   (or malformed) the extension is still offered, with 0 / "" as limits,
//   and the line is reported.
// - Greeting: the domain is its first word, 1*(%d33-126), not checked against
//   the Domain grammar (servers send "localhost", address literals, names
//   with '_'); the text after the first SP may hold any octet but CR, LF and
//   NUL (8-bit included: some servers localise it). A greeting outside this
//   is reported (domain or text left empty), not an error by default.
#ifndef SMTPWIRE_WIRE_EHLO_HPP
#define SMTPWIRE_WIRE_EHLO_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/error.hpp"
#include "smtpwire/wire/params.hpp"
#include "smtpwire/wire/sasl.hpp"
#include "smtpwire/wire/xclient.hpp"

namespace smtpwire::wire {

/// The EHLO keywords smtpwire knows.
enum class capability : std::uint8_t {
  size,                 ///< SIZE [n] (RFC 1870)
  eightbitmime,         ///< 8BITMIME (RFC 6152)
  pipelining,           ///< PIPELINING (RFC 2920)
  starttls,             ///< STARTTLS (RFC 3207)
  auth,                 ///< AUTH mechanisms (RFC 4954)
  enhancedstatuscodes,  ///< ENHANCEDSTATUSCODES (RFC 2034)
  smtputf8,             ///< SMTPUTF8 (RFC 6531)
  chunking,             ///< CHUNKING (RFC 3030)
  binarymime,           ///< BINARYMIME (RFC 3030)
  dsn,                  ///< DSN (RFC 3461)
  requiretls,           ///< REQUIRETLS (RFC 8689)
  deliverby,            ///< DELIVERBY [min-by-time] (RFC 2852)
  mt_priority,          ///< MT-PRIORITY [profile] (RFC 6710)
  vrfy,                 ///< VRFY (RFC 5321 §3.5.2)
  etrn,                 ///< ETRN (RFC 1985)
  help,                 ///< HELP (RFC 5321 §4.1.1.8)
  limits,               ///< LIMITS [limit ...] (RFC 9422)
  xclient,              ///< XCLIENT [attribute-name ...] (Postfix XCLIENT_README)
  xforward,             ///< XFORWARD [attribute-name ...] (Postfix XFORWARD_README)
  rrvs,                 ///< RRVS (RFC 7293)
  futurerelease,        ///< FUTURERELEASE max-interval max-date-time (RFC 4865)
  unknown,              ///< any other keyword (never set in capabilities)
};

/// Number of known capabilities (the values before capability::unknown).
inline constexpr std::size_t capability_count = static_cast<std::size_t>(capability::unknown);

/// The keyword of `c` as written on the wire ("8BITMIME", "MT-PRIORITY", …);
/// "" for unknown.
constexpr std::string_view to_string(capability c) noexcept {
  switch (c) {
    case capability::size:
      return "SIZE";
    case capability::eightbitmime:
      return "8BITMIME";
    case capability::pipelining:
      return "PIPELINING";
    case capability::starttls:
      return "STARTTLS";
    case capability::auth:
      return "AUTH";
    case capability::enhancedstatuscodes:
      return "ENHANCEDSTATUSCODES";
    case capability::smtputf8:
      return "SMTPUTF8";
    case capability::chunking:
      return "CHUNKING";
    case capability::binarymime:
      return "BINARYMIME";
    case capability::dsn:
      return "DSN";
    case capability::requiretls:
      return "REQUIRETLS";
    case capability::deliverby:
      return "DELIVERBY";
    case capability::mt_priority:
      return "MT-PRIORITY";
    case capability::vrfy:
      return "VRFY";
    case capability::etrn:
      return "ETRN";
    case capability::help:
      return "HELP";
    case capability::limits:
      return "LIMITS";
    case capability::xclient:
      return "XCLIENT";
    case capability::xforward:
      return "XFORWARD";
    case capability::rrvs:
      return "RRVS";
    case capability::futurerelease:
      return "FUTURERELEASE";
    case capability::unknown:
      break;
  }
  return "";
}

/// The known capability whose keyword is `keyword` (any case); unknown if none.
constexpr capability find_capability(std::string_view keyword) noexcept {
  return detail::find_named<capability>(keyword);
}

/// An EHLO keyword smtpwire does not know, with its parameters. Views point
/// into the reply line.
struct extension {
  std::string_view keyword;  ///< as the server wrote it (case kept)
  std::string_view params;   ///< the raw text after the keyword's SP; empty when none
};
constexpr bool operator==(const extension& a, const extension& b) noexcept {
  return a.keyword == b.keyword && a.params == b.params;
}
constexpr bool operator!=(const extension& a, const extension& b) noexcept {
  return !(a == b);
}

/// The limits of the LIMITS keyword (RFC 9422 §5) smtpwire knows; 0 = that
/// limit not given (or given malformed, which RFC 9422 §4 says to ignore).
struct limits_offer {
  std::uint32_t rcptmax = 0;        ///< RCPTMAX: recipients per transaction
  std::uint32_t mailmax = 0;        ///< MAILMAX: transactions per session
  std::uint32_t rcptdomainmax = 0;  ///< RCPTDOMAINMAX: recipient domains per transaction
};
constexpr bool operator==(const limits_offer& a, const limits_offer& b) noexcept {
  return a.rcptmax == b.rcptmax && a.mailmax == b.mailmax && a.rcptdomainmax == b.rcptdomainmax;
}
constexpr bool operator!=(const limits_offer& a, const limits_offer& b) noexcept {
  return !(a == b);
}

/// What a server offers in its EHLO reply. A plain value (about 1 KiB, no
/// allocation); every view points into the reply lines it was parsed from,
/// or into whatever the application set. Typed values are meaningful only
/// when their capability is set; otherwise they stay at their defaults.
struct capabilities {
  /// Unknown keywords kept; more are counted in ehlo_diagnostics::extensions_dropped.
  static constexpr std::size_t max_extensions = 32;  // default 32; no RFC limit
  /// Unknown AUTH mechanism names kept; more are counted in
  /// ehlo_diagnostics::mechanisms_dropped.
  static constexpr std::size_t max_mechanisms = 8;  // default 8; no RFC limit

  std::string_view domain;    ///< the greeting's first word (the server's name)
  std::string_view greeting;  ///< the greeting's text after the domain's SP; may be empty
  std::uint32_t known = 0;    ///< bit i set: capability value i offered (use has/set)
  /// SIZE: the fixed maximum message size in octets; 0 = none given (RFC
  /// 1870 §4: no parameter or 0 means no fixed limit) or unreadable.
  std::uint64_t size = 0;
  /// DELIVERBY: the minimum by-time in seconds; 0 = none given or unreadable.
  std::uint32_t deliverby = 0;
  /// MT-PRIORITY: the priority assignment policy ("MIXER", "STANAG4406",
  /// "NSEP", …) as written; empty when none given.
  std::string_view mt_priority;
  /// LIMITS: the known limits given (0 = not given); other limit names are
  /// ignored (RFC 9422 §4).
  limits_offer limits;
  /// XCLIENT: the attribute names listed (bit xattr_bit(a) per wire::xattr;
  /// names the command does not take, and unknown names, are not kept).
  std::uint16_t xclient = 0;
  /// XFORWARD: the attribute names listed, as for xclient.
  std::uint16_t xforward = 0;
  /// FUTURERELEASE: the longest HOLDFOR interval in seconds (RFC 4865 §3);
  /// 0 when the keyword's parameters were unreadable.
  std::uint32_t futurerelease_max_interval = 0;
  /// FUTURERELEASE: the latest HOLDUNTIL date-time (RFC 3339), as written;
  /// empty when unreadable.
  std::string_view futurerelease_max_datetime;
  sasl::mechanism_set mechanisms;  ///< AUTH: the known mechanisms offered
  /// AUTH: other mechanism names, as written, in order of first appearance
  /// (the first other_mechanism_count entries are meaningful).
  std::array<std::string_view, max_mechanisms> other_mechanisms{};
  std::size_t other_mechanism_count = 0;
  /// Unknown keywords, in reply order (the first extension_count are meaningful).
  std::array<extension, max_extensions> extensions{};
  std::size_t extension_count = 0;

  /// True when capability `c` is offered.
  constexpr bool has(capability c) const noexcept {
    return c != capability::unknown && (known & (std::uint32_t{1} << static_cast<unsigned>(c)));
  }
  /// Sets or clears capability `c` (unknown is ignored).
  constexpr void set(capability c, bool on = true) noexcept {
    if (c == capability::unknown) return;
    const std::uint32_t bit = std::uint32_t{1} << static_cast<unsigned>(c);
    known = on ? (known | bit) : (known & ~bit);
  }
  /// True when XCLIENT is offered and lists attribute `a`.
  constexpr bool offers_xclient(xattr a) const noexcept {
    return has(capability::xclient) && (xclient & xattr_bit(a)) != 0;
  }
  /// True when XFORWARD is offered and lists attribute `a`.
  constexpr bool offers_xforward(xattr a) const noexcept {
    return has(capability::xforward) && (xforward & xattr_bit(a)) != 0;
  }
  /// True when AUTH is offered with mechanism `m`.
  constexpr bool offers(sasl::mechanism m) const noexcept {
    return has(capability::auth) && mechanisms.has(m);
  }
  /// Appends an unknown mechanism name; false (nothing kept) when full.
  constexpr bool add_other_mechanism(std::string_view name) noexcept {
    if (other_mechanism_count == max_mechanisms) return false;
    other_mechanisms[other_mechanism_count++] = name;
    return true;
  }
  /// Appends an unknown keyword; false (nothing kept) when full.
  constexpr bool add_extension(std::string_view keyword, std::string_view params = {}) noexcept {
    if (extension_count == max_extensions) return false;
    extensions[extension_count++] = extension{keyword, params};
    return true;
  }
  /// The unknown keyword `keyword` (any case), or nullptr when absent.
  constexpr const extension* find_extension(std::string_view keyword) const noexcept {
    for (std::size_t i = 0; i < extension_count && i < max_extensions; ++i)
      if (detail::iequals(extensions[i].keyword, keyword)) return &extensions[i];
    return nullptr;
  }
};

/// Compares every meaningful member (views byte for byte, lists in order).
constexpr bool operator==(const capabilities& a, const capabilities& b) noexcept {
  if (a.domain != b.domain || a.greeting != b.greeting || a.known != b.known || a.size != b.size ||
      a.deliverby != b.deliverby || a.mt_priority != b.mt_priority || a.limits != b.limits ||
      a.xclient != b.xclient || a.xforward != b.xforward ||
      a.futurerelease_max_interval != b.futurerelease_max_interval ||
      a.futurerelease_max_datetime != b.futurerelease_max_datetime ||
      a.mechanisms != b.mechanisms || a.other_mechanism_count != b.other_mechanism_count ||
      a.extension_count != b.extension_count)
    return false;
  for (std::size_t i = 0; i < a.other_mechanism_count && i < a.max_mechanisms; ++i)
    if (a.other_mechanisms[i] != b.other_mechanisms[i]) return false;
  for (std::size_t i = 0; i < a.extension_count && i < a.max_extensions; ++i)
    if (a.extensions[i] != b.extensions[i]) return false;
  return true;
}
constexpr bool operator!=(const capabilities& a, const capabilities& b) noexcept {
  return !(a == b);
}

/// Options of the EHLO reader.
struct ehlo_options {
  /// Strict: a line outside the grammar (see the decisions at the top) is
  /// errc::capability_syntax instead of being ignored and reported. For
  /// conformance checkers; a client talking to the world leaves it off.
  bool reject_malformed = false;
  /// Leniency: SP and HTAB at the end of a keyword line are ignored
  /// ("AUTH PLAIN LOGIN "), instead of making the line malformed.
  bool trailing_whitespace = false;
};

/// What the reader ignored or dropped. Views point into the reply lines.
struct ehlo_diagnostics {
  /// Malformed lines kept (as views) for logging.
  static constexpr std::size_t max_kept = 4;  // default 4; no RFC limit
  /// Lines outside the grammar, or with parameters their extension does not
  /// define (see the decisions at the top); the first max_kept are in
  /// malformed_lines.
  std::size_t malformed = 0;
  std::array<std::string_view, max_kept> malformed_lines{};
  bool greeting_malformed = false;     ///< the greeting's domain or text was unreadable
  std::size_t duplicates = 0;          ///< repeated known keywords
  std::size_t extensions_dropped = 0;  ///< unknown keywords beyond capabilities::max_extensions
  std::size_t mechanisms_dropped = 0;  ///< unknown AUTH names beyond capabilities::max_mechanisms
  /// True when nothing was ignored, repeated or dropped.
  constexpr bool clean() const noexcept {
    return malformed == 0 && !greeting_malformed && duplicates == 0 && extensions_dropped == 0 &&
           mechanisms_dropped == 0;
  }
};

}  // namespace smtpwire::wire

namespace smtpwire::detail {

// RFC 5321 §4.1.1.1:  ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
/// True when `s` is an ehlo-keyword.
constexpr bool is_ehlo_keyword(std::string_view s) noexcept {
  if (s.empty() || !(is(s[0], cc_alpha) || is(s[0], cc_digit))) return false;
  for (char c : s)
    if (!(is(c, cc_alpha) || is(c, cc_digit) || c == '-')) return false;
  return true;
}

// RFC 5321 §4.1.1.1:  *( SP ehlo-param );  ehlo-param = 1*(%d33-126)
/// True when `s` (the text after the keyword's SP) is one or more
/// ehlo-params separated by single SPs.
constexpr bool is_ehlo_params(std::string_view s) noexcept {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  char prev = 'x';
  for (char c : s) {
    if (c == ' ' ? prev == ' ' : !is(c, cc_vchar)) return false;
    prev = c;
  }
  return true;
}

// RFC 9422 §4:  limit-name = 1*(ALPHA / DIGIT / "-" / "_")
/// True when `s` is a LIMITS limit name.
constexpr bool is_limit_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!(is(c, cc_alpha) || is(c, cc_digit) || c == '-' || c == '_')) return false;
  return true;
}

/// Parses 1..max_digits decimal digits into `v`; false on any other octet,
/// on too many digits or on overflow of std::uint64_t.
constexpr bool parse_decimal(std::string_view s, std::size_t max_digits,
                             std::uint64_t& v) noexcept {
  if (s.empty() || s.size() > max_digits) return false;
  std::uint64_t r = 0;
  for (char c : s) {
    if (!is(c, cc_digit)) return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (r > (~std::uint64_t{0} - d) / 10) return false;
    r = r * 10 + d;
  }
  v = r;
  return true;
}

/// Appends the decimal digits of `v`.
inline void append_decimal(std::string& out, std::uint64_t v) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0)
    out.push_back(digits[--n]);
}

}  // namespace smtpwire::detail

namespace smtpwire::wire {

/// Reads an EHLO reply one line at a time: the greeting first, then one
/// capability per line. Holds a capabilities value and its diagnostics,
/// both with views into the lines given (keep them alive). No allocation.
class ehlo_reader {
 public:
  explicit constexpr ehlo_reader(const ehlo_options& o = {}) noexcept : options_(o) {}

  /// Reads the next line (text after "250-"/"250 ", without CRLF): the
  /// greeting on the first call, a capability line after. Returns errc::ok,
  /// or (only under ehlo_options::reject_malformed) errc::capability_syntax
  /// for a line outside the grammar; an error is sticky: later calls return
  /// it and read nothing.
  [[nodiscard]] constexpr errc add_line(std::string_view line) noexcept {
    if (error_ != errc::ok) return error_;
    const std::size_t before = diag_.malformed;
    if (lines_++ == 0) {
      read_greeting(line);
      if (diag_.greeting_malformed && options_.reject_malformed) error_ = errc::capability_syntax;
      return error_;
    }
    read_keyword_line(line);
    if (diag_.malformed != before && options_.reject_malformed) error_ = errc::capability_syntax;
    return error_;
  }

  /// The capabilities read so far.
  constexpr const capabilities& value() const noexcept { return caps_; }
  /// What was ignored, repeated or dropped so far.
  constexpr const ehlo_diagnostics& diagnostics() const noexcept { return diag_; }
  /// Lines read so far (the greeting included).
  constexpr std::size_t line_count() const noexcept { return lines_; }
  /// The sticky error (errc::ok when none).
  constexpr errc error() const noexcept { return error_; }
  /// Forgets everything read (e.g. before the EHLO that follows STARTTLS).
  constexpr void reset() noexcept {
    caps_ = capabilities{};
    diag_ = ehlo_diagnostics{};
    lines_ = 0;
    valued_ = 0;
    seen_auth_ = false;
    error_ = errc::ok;
  }

 private:
  constexpr void malformed(std::string_view line) noexcept {
    if (diag_.malformed < ehlo_diagnostics::max_kept) diag_.malformed_lines[diag_.malformed] = line;
    ++diag_.malformed;
  }

  // RFC 5321 §4.1.1.1:  "250" SP Domain [ SP ehlo-greet ] / "250-" Domain [ SP ehlo-greet ]
  //                     ehlo-greet = 1*(%d0-9 / %d11-12 / %d14-127)
  constexpr void read_greeting(std::string_view line) noexcept {
    const std::size_t sp = line.find(' ');
    const std::string_view domain = line.substr(0, sp);
    const std::string_view text =
        sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    bool domain_ok = !domain.empty();
    for (char c : domain)
      if (!detail::is(c, detail::cc_vchar)) domain_ok = false;
    const bool text_ok = !detail::has_line_breaking_byte(text);
    if (domain_ok) caps_.domain = domain;
    if (text_ok) caps_.greeting = text;
    if (!domain_ok || !text_ok) diag_.greeting_malformed = true;
  }

  // RFC 5321 §4.1.1.1:  ehlo-line = ehlo-keyword *( SP ehlo-param )
  constexpr void read_keyword_line(std::string_view line) noexcept {
    if (options_.trailing_whitespace)
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t'))
        line.remove_suffix(1);
    // The legacy "AUTH=mech mech" form: '=' is not a keyword octet, so it is
    // recognised before the generic grammar.
    if (line.size() >= 5 && detail::iequals(line.substr(0, 5), "auth=")) {
      const std::string_view mechs = line.substr(5);
      if (!mechs.empty() && !detail::is_ehlo_params(mechs)) return malformed(line);
      read_auth(line, mechs);
      return;
    }
    const std::size_t sp = line.find(' ');
    const std::string_view keyword = line.substr(0, sp);
    const std::string_view params =
        sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (!detail::is_ehlo_keyword(keyword) ||
        (sp != std::string_view::npos && !detail::is_ehlo_params(params)))
      return malformed(line);
    const capability c = find_capability(keyword);
    if (c == capability::unknown) {
      if (!caps_.add_extension(keyword, params)) ++diag_.extensions_dropped;
      return;
    }
    if (c == capability::auth) {
      if (seen_auth_) ++diag_.duplicates;
      seen_auth_ = true;
      read_auth(line, params);
      return;
    }
    if (caps_.has(c)) ++diag_.duplicates;
    caps_.set(c);
    const std::uint32_t bit = std::uint32_t{1} << static_cast<unsigned>(c);
    switch (c) {
      case capability::size: {
        // RFC 1870 §4:  size-param ::= [1*DIGIT]
        std::uint64_t v = 0;
        if (params.empty()) return;
        if (!detail::parse_decimal(params, 20, v)) return malformed(line);
        if (!(valued_ & bit)) caps_.size = v;
        valued_ |= bit;
        return;
      }
      case capability::deliverby: {
        // RFC 2852 §4:  "DELIVERBY" [SP min-by-time];  min-by-time ::= 1*9DIGIT
        std::uint64_t v = 0;
        if (params.empty()) return;
        if (!detail::parse_decimal(params, 9, v)) return malformed(line);
        if (!(valued_ & bit)) caps_.deliverby = static_cast<std::uint32_t>(v);
        valued_ |= bit;
        return;
      }
      case capability::limits:
        // RFC 9422 §4:  "LIMITS" [SP limit *(SP limit)]
        if (params.empty()) return;
        read_limits(line, params, bit);
        return;
      case capability::xclient:
      case capability::xforward:
        read_xattr_names(c, params);
        return;
      case capability::futurerelease: {
        // RFC 4865 §3:  "FUTURERELEASE" SP max-future-release-interval SP
        //               max-future-release-date-time
        //   max-future-release-interval  = 1*9DIGIT   ; seconds
        //   max-future-release-date-time = date-time  ; RFC 3339 §5.6
        const std::size_t sp2 = params.find(' ');
        const std::string_view interval = params.substr(0, sp2);
        const std::string_view when =
            sp2 == std::string_view::npos ? std::string_view{} : params.substr(sp2 + 1);
        std::uint64_t v = 0;
        if (!detail::parse_decimal(interval, 9, v) || !is_date_time(when)) return malformed(line);
        if (!(valued_ & bit)) {
          caps_.futurerelease_max_interval = static_cast<std::uint32_t>(v);
          caps_.futurerelease_max_datetime = when;
        }
        valued_ |= bit;
        return;
      }
      case capability::mt_priority:
        // RFC 6710 §3:  "MT-PRIORITY" [SP priority-profile];  the profile is
        // "MIXER" / "STANAG4406" / "NSEP" / another esmtp-keyword.
        if (params.empty()) return;
        if (!detail::is_ehlo_keyword(params)) return malformed(line);
        if (!(valued_ & bit)) caps_.mt_priority = params;
        valued_ |= bit;
        return;
      default:
        if (!params.empty()) malformed(line);  // these extensions define no parameter
        return;
    }
  }

  // RFC 9422 §4:  limit = limit-name ["=" limit-value]
  // RFC 9422 §5:  "MAILMAX=" / "RCPTMAX=" / "RCPTDOMAINMAX=" 1*6DIGIT
  // Unknown limit names are ignored whatever their value. A known limit that
  // is malformed, zero or repeated is ignored and the line reported; the
  // others on the line still count (RFC 9422 §4: a bad limit must not cost
  // the rest).
  constexpr void read_limits(std::string_view line, std::string_view params,
                             std::uint32_t bit) noexcept {
    limits_offer l;
    unsigned seen = 0;
    bool bad = false;
    while (!params.empty()) {
      const std::size_t sp = params.find(' ');
      const std::string_view token = params.substr(0, sp);
      params = sp == std::string_view::npos ? std::string_view{} : params.substr(sp + 1);
      const std::size_t eq = token.find('=');
      const std::string_view name = token.substr(0, eq);
      const std::string_view value =
          eq == std::string_view::npos ? std::string_view{} : token.substr(eq + 1);
      if (!detail::is_limit_name(name) || (eq != std::string_view::npos && value.empty())) {
        bad = true;
        continue;
      }
      std::uint32_t* slot = nullptr;
      unsigned which = 0;
      if (detail::iequals(name, "RCPTMAX")) {
        slot = &l.rcptmax;
        which = 1;
      } else if (detail::iequals(name, "MAILMAX")) {
        slot = &l.mailmax;
        which = 2;
      } else if (detail::iequals(name, "RCPTDOMAINMAX")) {
        slot = &l.rcptdomainmax;
        which = 4;
      } else {
        continue;
      }
      std::uint64_t v = 0;
      if ((seen & which) || !detail::parse_decimal(value, 6, v) || v == 0) {
        bad = true;
        seen |= which;
        continue;
      }
      seen |= which;
      *slot = static_cast<std::uint32_t>(v);
    }
    if (!(valued_ & bit)) caps_.limits = l;
    valued_ |= bit;
    if (bad) malformed(line);
  }

  // XCLIENT_README / XFORWARD_README: the keyword lists the attribute names
  // the server accepts. Names the command does not take, or that smtpwire
  // does not know, are skipped without a report: Postfix adds names over
  // time, and a client never sends what it does not know anyway.
  constexpr void read_xattr_names(capability c, std::string_view params) noexcept {
    const xcommand cmd = c == capability::xclient ? xcommand::xclient : xcommand::xforward;
    std::uint16_t& set = c == capability::xclient ? caps_.xclient : caps_.xforward;
    while (!params.empty()) {
      const std::size_t sp = params.find(' ');
      const xattr a = find_xattr(params.substr(0, sp));
      params = sp == std::string_view::npos ? std::string_view{} : params.substr(sp + 1);
      if (allowed(cmd, a)) set = static_cast<std::uint16_t>(set | xattr_bit(a));
    }
  }

  // RFC 4954 §3: "AUTH" followed by a space-separated list of sasl-mech names.
  constexpr void read_auth(std::string_view line, std::string_view mechs) noexcept {
    caps_.set(capability::auth);
    bool bad = false;
    while (!mechs.empty()) {
      const std::size_t sp = mechs.find(' ');
      const std::string_view name = mechs.substr(0, sp);
      mechs = sp == std::string_view::npos ? std::string_view{} : mechs.substr(sp + 1);
      if (!sasl::is_mechanism_name(name)) {
        bad = true;
        continue;
      }
      const sasl::mechanism m = sasl::find_mechanism(name);
      if (m != sasl::mechanism::unknown) {
        caps_.mechanisms.add(m);
        continue;
      }
      bool dup = false;
      for (std::size_t i = 0; i < caps_.other_mechanism_count; ++i)
        if (detail::iequals(caps_.other_mechanisms[i], name)) dup = true;
      if (!dup && !caps_.add_other_mechanism(name)) ++diag_.mechanisms_dropped;
    }
    if (bad) malformed(line);
  }

  ehlo_options options_;
  capabilities caps_{};
  ehlo_diagnostics diag_{};
  std::size_t lines_ = 0;
  std::uint32_t valued_ = 0;  // capabilities whose value was already taken
  bool seen_auth_ = false;
  errc error_ = errc::ok;
};

/// Parses `n` EHLO reply lines (see ehlo_reader::add_line); the views point
/// into the lines. When `diag` is not null it receives the diagnostics.
/// Errors: capability_syntax when there is no line at all, or (under
/// ehlo_options::reject_malformed) for a line outside the grammar.
[[nodiscard]] inline result<capabilities> parse_ehlo(const std::string_view* lines, std::size_t n,
                                                     const ehlo_options& o = {},
                                                     ehlo_diagnostics* diag = nullptr) noexcept {
  if (n == 0) return errc::capability_syntax;
  ehlo_reader r(o);
  for (std::size_t i = 0; i < n; ++i)
    if (const errc e = r.add_line(lines[i]); e != errc::ok) return e;
  if (diag != nullptr) *diag = r.diagnostics();
  return r.value();
}

/// Parses EHLO reply lines from any range whose elements convert to
/// std::string_view (std::vector<std::string>, std::array<std::string_view,
/// N>, …); as the pointer overload otherwise. The range's elements must
/// outlive the result.
template <class Lines>
[[nodiscard]] result<capabilities> parse_ehlo(const Lines& lines, const ehlo_options& o = {},
                                              ehlo_diagnostics* diag = nullptr) noexcept {
  using std::begin;
  using std::end;
  ehlo_reader r(o);
  for (auto it = begin(lines); it != end(lines); ++it)
    if (const errc e = r.add_line(std::string_view(*it)); e != errc::ok) return e;
  if (r.line_count() == 0) return errc::capability_syntax;
  if (diag != nullptr) *diag = r.diagnostics();
  return r.value();
}

/// Options of write_ehlo.
struct ehlo_write_options {
  /// Also write the legacy "AUTH=mech ..." line after "AUTH mech ..." (as
  /// Postfix's broken_sasl_auth_clients does) for clients that only read
  /// that form. Parsing merges both, so round trips are unaffected.
  bool legacy_auth_line = false;
};

}  // namespace smtpwire::wire

namespace smtpwire::detail {

/// True when `c` can be written as EHLO lines that parse back to `c`.
constexpr bool is_writable(const wire::capabilities& c) noexcept {
  using wire::capability;
  if (c.domain.empty()) return false;
  for (char ch : c.domain)
    if (!is(ch, cc_vchar)) return false;
  if (has_line_breaking_byte(c.greeting)) return false;
  if ((c.known >> wire::capability_count) != 0) return false;
  if (!c.has(capability::size) && c.size != 0) return false;
  if (!c.has(capability::deliverby) && c.deliverby != 0) return false;
  if (c.deliverby > 999999999) return false;  // RFC 2852 §4: 1*9DIGIT
  if (!c.mt_priority.empty() &&
      (!c.has(capability::mt_priority) || !is_ehlo_keyword(c.mt_priority)))
    return false;
  if (c.other_mechanism_count > c.max_mechanisms || c.extension_count > c.max_extensions)
    return false;
  constexpr std::uint32_t limit_max = 999999;  // RFC 9422 §5: 1*6DIGIT
  const wire::limits_offer& l = c.limits;
  if (!c.has(capability::limits) && l != wire::limits_offer{}) return false;
  if (l.rcptmax > limit_max || l.mailmax > limit_max || l.rcptdomainmax > limit_max) return false;
  if (!c.has(capability::xclient) && c.xclient != 0) return false;
  if (!c.has(capability::xforward) && c.xforward != 0) return false;
  if ((c.xclient & ~wire::all_xattrs(wire::xcommand::xclient)) != 0 ||
      (c.xforward & ~wire::all_xattrs(wire::xcommand::xforward)) != 0)
    return false;
  if (c.has(capability::futurerelease)) {
    // The parameters are mandatory (RFC 4865 §3).
    if (c.futurerelease_max_interval > 999999999 ||
        !wire::is_date_time(c.futurerelease_max_datetime))
      return false;
  } else if (c.futurerelease_max_interval != 0 || !c.futurerelease_max_datetime.empty()) {
    return false;
  }
  if (!c.has(capability::auth) && (!c.mechanisms.empty() || c.other_mechanism_count != 0))
    return false;
  if ((c.mechanisms.bits() >> wire::sasl::mechanism_count) != 0) return false;
  for (std::size_t i = 0; i < c.other_mechanism_count; ++i) {
    const std::string_view m = c.other_mechanisms[i];
    if (!wire::sasl::is_mechanism_name(m) ||
        wire::sasl::find_mechanism(m) != wire::sasl::mechanism::unknown)
      return false;
    for (std::size_t j = 0; j < i; ++j)
      if (iequals(c.other_mechanisms[j], m)) return false;
  }
  for (std::size_t i = 0; i < c.extension_count; ++i) {
    const wire::extension& e = c.extensions[i];
    if (!is_ehlo_keyword(e.keyword) || wire::find_capability(e.keyword) != capability::unknown)
      return false;
    if (!e.params.empty() && !is_ehlo_params(e.params)) return false;
  }
  return true;
}

}  // namespace smtpwire::detail

namespace smtpwire::wire {

/// Appends `c` as a complete EHLO reply: "250-" lines and a last "250 "
/// line, each with CRLF; the greeting ("domain [SP text]") first, then the
/// known capabilities in enum order (keywords upper case), AUTH with its
/// known mechanisms in enum order then the others, then the unknown
/// keywords in order. LIMITS is written with its non-zero limits (MAILMAX
/// RCPTMAX RCPTDOMAINMAX), XCLIENT and XFORWARD with their attribute names in
/// xattr order, FUTURERELEASE as "interval date-time". The output parses back
/// to `c`. Errors: capability_value_invalid (nothing appended) for a value
/// that would not, or that is outside its extension's grammar:
/// an empty or non-VCHAR domain, CR/LF/NUL in the greeting, a typed value
/// or mechanism without its capability set, a counted entry beyond its
/// capacity, an invalid or duplicate (other) mechanism name, an unknown
/// keyword that is not an ehlo-keyword or is a known one, parameters that
/// are not ehlo-params, a limit above 999999 (RFC 9422: 1*6DIGIT), an
/// attribute bit the command does not take, and FUTURERELEASE without a
/// valid date-time or with an interval above 999999999.
[[nodiscard]] inline errc write_ehlo(std::string& out, const capabilities& c,
                                     const ehlo_write_options& o = {}) {
  if (!detail::is_writable(c)) return errc::capability_value_invalid;
  std::size_t last = out.size();
  auto begin_line = [&] {
    last = out.size();
    out.append("250-");
  };
  begin_line();
  out.append(c.domain);
  if (!c.greeting.empty()) out.append(" ").append(c.greeting);
  out.append("\r\n");
  auto append_mechanisms = [&] {
    for (std::size_t i = 0; i < sasl::mechanism_count; ++i) {
      const auto m = static_cast<sasl::mechanism>(i);
      if (c.mechanisms.has(m)) out.append(" ").append(sasl::to_string(m));
    }
    for (std::size_t i = 0; i < c.other_mechanism_count; ++i)
      out.append(" ").append(c.other_mechanisms[i]);
  };
  for (std::size_t i = 0; i < capability_count; ++i) {
    const auto k = static_cast<capability>(i);
    if (!c.has(k)) continue;
    begin_line();
    out.append(to_string(k));
    switch (k) {
      case capability::size:
        if (c.size != 0) detail::append_decimal(out.append(" "), c.size);
        break;
      case capability::deliverby:
        if (c.deliverby != 0) detail::append_decimal(out.append(" "), c.deliverby);
        break;
      case capability::mt_priority:
        if (!c.mt_priority.empty()) out.append(" ").append(c.mt_priority);
        break;
      case capability::limits: {
        const auto limit = [&](std::string_view name, std::uint32_t v) {
          if (v != 0) detail::append_decimal(out.append(" ").append(name).append("="), v);
        };
        limit("MAILMAX", c.limits.mailmax);
        limit("RCPTMAX", c.limits.rcptmax);
        limit("RCPTDOMAINMAX", c.limits.rcptdomainmax);
        break;
      }
      case capability::xclient:
      case capability::xforward: {
        const std::uint16_t set = k == capability::xclient ? c.xclient : c.xforward;
        for (std::size_t a = 0; a < xattr_count; ++a)
          if (set & xattr_bit(static_cast<xattr>(a)))
            out.append(" ").append(to_string(static_cast<xattr>(a)));
        break;
      }
      case capability::futurerelease:
        detail::append_decimal(out.append(" "), c.futurerelease_max_interval);
        out.append(" ").append(c.futurerelease_max_datetime);
        break;
      case capability::auth:
        append_mechanisms();
        if (o.legacy_auth_line && (!c.mechanisms.empty() || c.other_mechanism_count != 0)) {
          out.append("\r\n");
          begin_line();
          out.append("AUTH=");
          const std::size_t at = out.size();
          append_mechanisms();
          out.erase(at, 1);  // the list starts without SP after '='
        }
        break;
      default:
        break;
    }
    out.append("\r\n");
  }
  for (std::size_t i = 0; i < c.extension_count; ++i) {
    begin_line();
    out.append(c.extensions[i].keyword);
    if (!c.extensions[i].params.empty()) out.append(" ").append(c.extensions[i].params);
    out.append("\r\n");
  }
  out[last + 3] = ' ';
  return errc::ok;
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_EHLO_HPP
