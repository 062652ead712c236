// smtpwire — MTA-STS (RFC 8461), sans-I/O: the `_mta-sts` TXT record (§3.1),
// the policy file (§3.2), MX host matching (§4.1) and what a policy requires
// of one delivery attempt (§5). The DNS lookup, the HTTPS fetch of
// https://mta-sts.<domain>/.well-known/mta-sts.txt and the cache stay with the
// application; this header only reads the bytes it fetched.
//
// Typical use:
//   auto rec = mta_sts::parse_record(txt);          // changed id: refetch
//   auto pol = mta_sts::parse_policy(https_body);   // cache for pol->max_age s
//   auto d = mta_sts::decide(*pol, mx_host);
//   // d.what == action::require_verified_tls: client_config::tls =
//   //   tls_policy::required, openssl::peer_identity::host = mx_host, and
//   //   deliver only when verification().passed (§4.2).
//
// What RFC 8461 §3.2 settles: fields come in any order (only the TXT
// record must begin with its version, §3.1); "If any non-repeated field --
// i.e., all fields except "mx" -- is duplicated, all entries except for the
// first SHALL be ignored", so a second "mode" (even "mode: none" after
// "mode: enforce", or an invalid value) changes nothing; "If any field is
// not specified, the policy SHALL be treated as invalid"; unknown fields
// are ignored.
//
// Strictness decisions (RFC 8461 leaves them open):
// - A field is `name ":" *WSP value *WSP`; lines end with LF or CRLF; an
//   empty line, a bare CR or any other control octet makes the policy invalid
//   (the sts-policy-record grammar has no empty line).
// - Every line, including an ignored repeat or unknown field, must follow
//   §3.2's sts-policy-extension grammar (name and value).
// - "mx" patterns are `["*."] Domain` (RFC 5321 LDH labels of 1-63 octets,
//   no trailing dot, at most 253 octets); "*", "*.*.x", "a.*.x" and "*x" are
//   invalid.
#ifndef SMTPWIRE_MTA_STS_HPP
#define SMTPWIRE_MTA_STS_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"

namespace smtpwire::mta_sts {

/// The TXT record's content (§3.1). `id` is a view into the parsed text.
struct record {
  std::string_view id;  ///< 1-32 ALPHA/DIGIT; a change tells the sender to refetch the policy
};

/// A policy's mode (§3.2 "mode").
enum class mode : std::uint8_t {
  enforce,  ///< MX hosts must match and offer PKIX-verified TLS, or mail is not sent to them
  testing,  ///< deliver as without MTA-STS; report failures (TLSRPT, RFC 8460)
  none,     ///< no MTA-STS requirement (used to withdraw a policy)
};

/// "enforce", "testing" or "none": the policy file's spelling.
constexpr std::string_view to_string(mode m) noexcept {
  switch (m) {
    case mode::enforce:
      return "enforce";
    case mode::testing:
      return "testing";
    case mode::none:
      return "none";
  }
  return "unknown";
}

/// A parsed policy. Owns its strings: a policy is cached for max_age seconds,
/// far longer than the fetched body usually lives.
struct policy {
  mode policy_mode = mode::none;
  std::uint32_t max_age = 0;    ///< seconds, 0..31557600 (§3.2)
  std::vector<std::string> mx;  ///< patterns as written ("mail.example.com", "*.example.net")
};

inline bool operator==(const policy& a, const policy& b) {
  return a.policy_mode == b.policy_mode && a.max_age == b.max_age && a.mx == b.mx;
}
inline bool operator!=(const policy& a, const policy& b) {
  return !(a == b);
}

/// Limits for parse_policy.
struct policy_options {
  std::size_t max_size = 64 * 1024;  ///< octets of the body; default 64 KiB, RFC 8461 sets no bound
};

/// The largest max_age a policy may carry (§3.2: 31557600 s, one year).
inline constexpr std::uint32_t max_age_limit = 31557600;

namespace detail {

constexpr bool is_wsp(char c) noexcept {
  return c == ' ' || c == '\t';
}
constexpr bool is_alnum(char c) noexcept {
  return smtpwire::detail::is(c, smtpwire::detail::cc_alpha) ||
         smtpwire::detail::is(c, smtpwire::detail::cc_digit);
}

// RFC 8461 §3.1 / §3.2:
//   sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
/// True when `s` is an extension (or field) name.
constexpr bool is_ext_name(std::string_view s) noexcept {
  if (s.empty() || s.size() > 32 || !is_alnum(s[0])) return false;
  for (char c : s.substr(1))
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// RFC 5321 §4.1.2:  Domain = sub-domain *("." sub-domain)
//                   sub-domain = Let-dig [Ldh-str]
// plus the DNS limits (RFC 1035 §2.3.4): labels of at most 63 octets, a name
// of at most 253 octets written without the root dot.
/// True when `s` is an LDH domain name without trailing dot.
constexpr bool is_ldh_domain(std::string_view s) noexcept {
  if (s.empty() || s.size() > 253) return false;
  std::size_t label = 0;
  char prev = '.';
  for (char c : s) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if (is_alnum(c) || (c == '-' && label != 0)) {
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label != 0 && prev != '-';
}

}  // namespace detail

// RFC 8461 §3.2:  sts-policy-mx-value = ["*."] Domain
/// True when `pattern` is a valid "mx" value: a domain name, or "*." followed
/// by one. The whole pattern is at most 253 octets.
constexpr bool is_mx_pattern(std::string_view pattern) noexcept {
  if (pattern.size() > 253) return false;
  if (pattern.size() >= 2 && pattern[0] == '*' && pattern[1] == '.') pattern.remove_prefix(2);
  return detail::is_ldh_domain(pattern);
}

/// True when `txt` begins with "v=STSv1;": §3.1 tells senders to discard the
/// other TXT records at `_mta-sts.<domain>` before requiring exactly one.
constexpr bool is_sts_record(std::string_view txt) noexcept {
  return txt.substr(0, 8) == "v=STSv1;";
}

// RFC 8461 §3.1:
//   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//   sts-field       = sts-id / sts-extension
//   sts-field-delim = *WSP ";" *WSP
//   sts-version     = %s"v=STSv1"
//   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//   sts-extension   = sts-ext-name "=" sts-ext-value
//   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
/// Parses one TXT record's text (its character-strings already concatenated,
/// RFC 7208 §3.3 style). The id is required and must appear once; extensions
/// are checked and ignored. Errors: errc::mta_sts_record_invalid. The view in
/// the result points into `txt`.
inline result<record> parse_record(std::string_view txt) noexcept {
  constexpr std::string_view version = "v=STSv1";
  if (txt.substr(0, version.size()) != version) return errc::mta_sts_record_invalid;
  std::size_t i = version.size();
  record r;
  bool have_id = false, fields = false;
  for (;;) {
    // sts-field-delim
    while (i < txt.size() && detail::is_wsp(txt[i]))
      ++i;
    if (i == txt.size() || txt[i] != ';') return errc::mta_sts_record_invalid;
    ++i;
    while (i < txt.size() && detail::is_wsp(txt[i]))
      ++i;
    if (i == txt.size()) break;  // the optional trailing delimiter
    const std::size_t eq = txt.find('=', i);
    if (eq == std::string_view::npos) return errc::mta_sts_record_invalid;
    const std::string_view name = txt.substr(i, eq - i);
    std::size_t end = eq + 1;
    while (end < txt.size()) {
      const auto c = static_cast<unsigned char>(txt[end]);
      if (c < 0x21 || c > 0x7e || c == ';' || c == '=') break;
      ++end;
    }
    const std::string_view value = txt.substr(eq + 1, end - eq - 1);
    if (value.empty()) return errc::mta_sts_record_invalid;
    if (name == "id") {
      if (have_id || value.size() > 32) return errc::mta_sts_record_invalid;
      for (char c : value)
        if (!detail::is_alnum(c)) return errc::mta_sts_record_invalid;
      r.id = value;
      have_id = true;
    } else if (!detail::is_ext_name(name)) {
      return errc::mta_sts_record_invalid;
    }
    fields = true;
    i = end;
    if (i == txt.size()) break;
  }
  if (!fields || !have_id) return errc::mta_sts_record_invalid;
  return r;
}

namespace detail {

// RFC 8461 §3.2:
//   sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]
//   sts-policy-vchar     = VCHAR / UTF8-2 / UTF8-3 / UTF8-4
/// True when `v` (trailing WSP already dropped) is an extension value.
constexpr bool is_ext_value(std::string_view v) noexcept {
  if (v.empty() || v.front() == ' ') return false;
  std::size_t i = 0;
  while (i < v.size()) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      const std::size_t n = smtpwire::detail::utf8_sequence_length(v.data() + i, v.size() - i);
      if (n == 0) return false;
      i += n;
    } else if (c >= 0x20 && c < 0x7f) {
      ++i;
    } else {
      return false;
    }
  }
  return true;
}

// RFC 8461 §3.2:  sts-policy-max-age-value = 1*10DIGIT  (maximum 31557600)
constexpr bool parse_max_age(std::string_view v, std::uint32_t& out) noexcept {
  if (v.empty() || v.size() > 10) return false;
  std::uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (n > max_age_limit) return false;
  out = static_cast<std::uint32_t>(n);
  return true;
}

}  // namespace detail

// RFC 8461 §3.2:
//   sts-policy-record      = sts-policy-field *WSP
//                            *(sts-policy-term sts-policy-field *WSP)
//                            [sts-policy-term]
//   sts-policy-field       = sts-policy-version / sts-policy-mode /
//                            sts-policy-max-age / sts-policy-mx /
//                            sts-policy-extension
//   sts-policy-field-delim = ":" *WSP
//   sts-policy-term        = LF / CRLF
//   version: %s"STSv1"   mode: %s"testing" / %s"enforce" / %s"none"
//   max_age: 1*10DIGIT   mx: ["*."] Domain
/// Parses a policy body as fetched over HTTPS (whole: the fetch already
/// bounded it). Fields in any order; of a repeated version, mode or max_age
/// the first counts and the others are ignored (§3.2). Errors, in order of
/// the offending line: mta_sts_policy_too_large (body above
/// options.max_size), mta_sts_policy_syntax (line or field grammar, control
/// octets, bad UTF-8), mta_sts_version_invalid (the version field not
/// "STSv1"), mta_sts_mode_invalid, mta_sts_max_age_invalid,
/// mta_sts_mx_invalid; then mta_sts_field_missing when version, mode or
/// max_age is absent, or no mx is given while mode is not none.
inline result<policy> parse_policy(std::string_view body, const policy_options& options = {}) {
  if (body.size() > options.max_size) return errc::mta_sts_policy_too_large;
  if (body.empty()) return errc::mta_sts_policy_syntax;
  policy p;
  bool have_version = false, have_mode = false, have_max_age = false;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t lf = body.find('\n', pos);
    std::string_view line =
        body.substr(pos, lf == std::string_view::npos ? std::string_view::npos : lf - pos);
    pos = lf == std::string_view::npos ? body.size() : lf + 1;
    if (lf != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return errc::mta_sts_policy_syntax;
    const std::string_view name = line.substr(0, colon);
    if (!detail::is_ext_name(name)) return errc::mta_sts_policy_syntax;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && detail::is_wsp(value.front()))
      value.remove_prefix(1);
    while (!value.empty() && detail::is_wsp(value.back()))
      value.remove_suffix(1);
    // Every known value is also a valid extension value, so this one check
    // rejects control octets (a CR left inside a line) and bad UTF-8 for all.
    if (!detail::is_ext_value(value)) return errc::mta_sts_policy_syntax;
    if (name == "version") {
      if (have_version) continue;  // §3.2: all entries except for the first SHALL be ignored
      if (value != "STSv1") return errc::mta_sts_version_invalid;
      have_version = true;
    } else if (name == "mode") {
      if (have_mode) continue;
      if (value == "enforce")
        p.policy_mode = mode::enforce;
      else if (value == "testing")
        p.policy_mode = mode::testing;
      else if (value == "none")
        p.policy_mode = mode::none;
      else
        return errc::mta_sts_mode_invalid;
      have_mode = true;
    } else if (name == "max_age") {
      if (have_max_age) continue;
      if (!detail::parse_max_age(value, p.max_age)) return errc::mta_sts_max_age_invalid;
      have_max_age = true;
    } else if (name == "mx") {
      if (!is_mx_pattern(value)) return errc::mta_sts_mx_invalid;
      p.mx.emplace_back(value);
    }
  }
  if (!have_version || !have_mode || !have_max_age) return errc::mta_sts_field_missing;
  if (p.mx.empty() && p.policy_mode != mode::none) return errc::mta_sts_field_missing;
  return p;
}

/// Writes `p` as a policy body with CRLF line ends ("version" first, then
/// mode, each mx, max_age), the form parse_policy reads back to an equal
/// value. Returns errc::mta_sts_mx_invalid (and writes nothing) when a
/// pattern is not valid, errc::mta_sts_max_age_invalid above max_age_limit.
inline errc write_policy(std::string& out, const policy& p) {
  if (p.max_age > max_age_limit) return errc::mta_sts_max_age_invalid;
  for (const auto& m : p.mx)
    if (!is_mx_pattern(m)) return errc::mta_sts_mx_invalid;
  out += "version: STSv1\r\nmode: ";
  out += to_string(p.policy_mode);
  out += "\r\n";
  for (const auto& m : p.mx) {
    out += "mx: ";
    out += m;
    out += "\r\n";
  }
  out += "max_age: ";
  out += std::to_string(p.max_age);
  out += "\r\n";
  return errc::ok;
}

// RFC 8461 §4.1: MX host names are matched against the patterns
// case-insensitively; a "*." pattern matches exactly one extra leftmost label
// ("*.example.com" matches "mx.example.com", neither "example.com" nor
// "a.b.example.com").
/// True when `host` (an MX host name; one trailing root dot is ignored)
/// matches `pattern`. A host that is not an LDH domain matches nothing.
constexpr bool matches(std::string_view pattern, std::string_view host) noexcept {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (!detail::is_ldh_domain(host) || !is_mx_pattern(pattern)) return false;
  if (pattern[0] == '*') {
    const std::size_t dot = host.find('.');
    if (dot == std::string_view::npos) return false;
    return smtpwire::detail::iequals(host.substr(dot + 1), pattern.substr(2));
  }
  return smtpwire::detail::iequals(host, pattern);
}

/// True when `host` matches one of the policy's mx patterns.
inline bool matches(const policy& p, std::string_view host) noexcept {
  for (const auto& m : p.mx)
    if (matches(m, host)) return true;
  return false;
}

/// What a policy asks of one delivery attempt to one MX host (§5).
enum class action : std::uint8_t {
  /// mode none: deliver as if no policy existed.
  no_requirement,
  /// mode enforce and the host matches: client_config::tls =
  /// tls_policy::required; openssl::peer_identity::host = the MX host; deliver
  /// only when the handshake verified the chain and that name (PKIX, §4.2).
  require_verified_tls,
  /// mode enforce and the host matches no pattern: do not deliver to it (§5).
  skip_mx,
  /// mode testing: deliver as without MTA-STS, but check as for enforce and
  /// report what would have failed (TLSRPT, RFC 8460).
  report_only,
};

/// "no_requirement", "require_verified_tls", "skip_mx" or "report_only".
constexpr std::string_view to_string(action a) noexcept {
  switch (a) {
    case action::no_requirement:
      return "no_requirement";
    case action::require_verified_tls:
      return "require_verified_tls";
    case action::skip_mx:
      return "skip_mx";
    case action::report_only:
      return "report_only";
  }
  return "unknown";
}

/// The outcome of decide().
struct decision {
  action what = action::no_requirement;
  /// The MX host matched a pattern. Under report_only a false value is itself
  /// a failure to report (tlsrpt::classify's policy_mx_matched).
  bool mx_matches = false;
  /// TLS must succeed or the attempt fails (client_config::tls =
  /// tls_policy::required); true only for require_verified_tls.
  bool require_tls = false;
  /// The certificate must verify for the MX host name (the OpenSSL
  /// adapter's verification().passed with peer_identity::host = the host);
  /// true only for require_verified_tls.
  bool require_verified_name = false;
};

/// What `p` requires of a delivery attempt to `mx_host` (§5).
inline decision decide(const policy& p, std::string_view mx_host) noexcept {
  decision d;
  d.mx_matches = matches(p, mx_host);
  switch (p.policy_mode) {
    case mode::none:
      d.what = action::no_requirement;
      break;
    case mode::testing:
      d.what = action::report_only;
      break;
    case mode::enforce:
      d.what = d.mx_matches ? action::require_verified_tls : action::skip_mx;
      d.require_tls = d.require_verified_name = d.mx_matches;
      break;
  }
  return d;
}

}  // namespace smtpwire::mta_sts

#endif  // SMTPWIRE_MTA_STS_HPP
