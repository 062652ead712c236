// smtpwire — SASL mechanism names (RFC 4422) and the codecs of the messages
// that SMTP AUTH (RFC 4954) carries for PLAIN (RFC 4616), LOGIN (the
// de-facto "Username:"/"Password:" exchange), XOAUTH2 (Google) and
// OAUTHBEARER (RFC 7628), plus the OAuth error challenge both OAuth
// mechanisms send.
//
// Every codec works on DECODED bytes: base64 is wire/base64.hpp's job. A
// parser takes the decoded message and returns views into it (valid as long
// as those bytes); a writer appends the message (still to be base64-encoded)
// to a caller's std::string. Parsers return errc::sasl_message_invalid (the
// server answers 501 5.5.2); writers return errc::sasl_value_invalid and
// append nothing when a field holds a byte or a length the message cannot
// carry (NUL for PLAIN/LOGIN, ^A and control bytes for the OAuth ones).
// For every codec, parse(write(x)) == x.
//
// Decisions (strict by default):
// - PLAIN fields must be well-formed UTF-8 (RFC 4616 §2 SAFE); a client
//   sending Latin-1 passwords is refused rather than guessed at.
// - LOGIN has no specification beyond draft-murchison-sasl-login; its fields
//   are taken as opaque octets without NUL (no charset check), 1..max_field.
// - OAUTHBEARER: only the "Bearer" scheme (RFC 6750 b64token) is modelled;
//   the gs2 channel-binding flag must be "n" or "y" (RFC 7628 §3.1: no
//   channel binding); the authzid keeps its RFC 5801 "=2C"/"=3D" escapes
//   (see append_saslname_escaped / append_saslname_unescaped); kvpairs other
//   than host, port and auth are checked and skipped; a repeated key is
//   invalid.
// - OAuth error JSON: a flat object of string members; strings are returned
//   as their raw JSON content (escapes kept, validated), unknown members are
//   skipped, "status" is required.
#ifndef SMTPWIRE_WIRE_SASL_HPP
#define SMTPWIRE_WIRE_SASL_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"

namespace smtpwire::wire::sasl {

/// The SASL mechanisms smtpwire knows by name (IANA "SASL Mechanisms").
enum class mechanism : std::uint8_t {
  plain,               ///< RFC 4616
  login,               ///< draft-murchison-sasl-login
  cram_md5,            ///< RFC 2195
  digest_md5,          ///< RFC 2831 (historic, RFC 6331)
  xoauth2,             ///< Google's OAuth 2.0 mechanism
  oauthbearer,         ///< RFC 7628
  scram_sha_1,         ///< RFC 5802
  scram_sha_1_plus,    ///< RFC 5802, with channel binding
  scram_sha_256,       ///< RFC 7677
  scram_sha_256_plus,  ///< RFC 7677, with channel binding
  external,            ///< RFC 4422 appendix A
  anonymous,           ///< RFC 4505
  gssapi,              ///< RFC 4752
  ntlm,                ///< Microsoft
  unknown,             ///< any other name (never stored in a mechanism_set)
};

/// Number of known mechanisms (the values before mechanism::unknown).
inline constexpr std::size_t mechanism_count = static_cast<std::size_t>(mechanism::unknown);

/// The registered name of `m` ("PLAIN", "SCRAM-SHA-256-PLUS", …); "" for unknown.
constexpr std::string_view to_string(mechanism m) noexcept {
  switch (m) {
    case mechanism::plain:
      return "PLAIN";
    case mechanism::login:
      return "LOGIN";
    case mechanism::cram_md5:
      return "CRAM-MD5";
    case mechanism::digest_md5:
      return "DIGEST-MD5";
    case mechanism::xoauth2:
      return "XOAUTH2";
    case mechanism::oauthbearer:
      return "OAUTHBEARER";
    case mechanism::scram_sha_1:
      return "SCRAM-SHA-1";
    case mechanism::scram_sha_1_plus:
      return "SCRAM-SHA-1-PLUS";
    case mechanism::scram_sha_256:
      return "SCRAM-SHA-256";
    case mechanism::scram_sha_256_plus:
      return "SCRAM-SHA-256-PLUS";
    case mechanism::external:
      return "EXTERNAL";
    case mechanism::anonymous:
      return "ANONYMOUS";
    case mechanism::gssapi:
      return "GSSAPI";
    case mechanism::ntlm:
      return "NTLM";
    case mechanism::unknown:
      break;
  }
  return "";
}

/// The mechanism named `name`, compared case-insensitively; unknown if none.
constexpr mechanism find_mechanism(std::string_view name) noexcept {
  return detail::find_named<mechanism>(name);
}

// RFC 4422 §3.1:  sasl-mech = 1*20mech-char
//                 mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE
/// True when `name` is a SASL mechanism name. Lower-case letters are accepted
/// too, because names compare case-insensitively.
constexpr bool is_mechanism_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 20) return false;  // RFC 4422 §3.1: at most 20
  for (char c : name)
    if (!(detail::is(c, detail::cc_alpha) || detail::is(c, detail::cc_digit) || c == '-' ||
          c == '_'))
      return false;
  return true;
}

/// A set of known mechanisms, one bit each (no allocation).
class mechanism_set {
 public:
  constexpr mechanism_set() noexcept = default;
  /// True when `m` is in the set (always false for mechanism::unknown).
  constexpr bool has(mechanism m) const noexcept {
    return m != mechanism::unknown && (bits_ & bit(m)) != 0;
  }
  /// Adds `m`; mechanism::unknown is ignored.
  constexpr void add(mechanism m) noexcept {
    if (m != mechanism::unknown) bits_ |= bit(m);
  }
  /// Removes `m`.
  constexpr void remove(mechanism m) noexcept {
    if (m != mechanism::unknown) bits_ &= ~bit(m);
  }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  /// The raw bits, bit i for mechanism value i.
  constexpr std::uint32_t bits() const noexcept { return bits_; }
  friend constexpr bool operator==(mechanism_set a, mechanism_set b) noexcept {
    return a.bits_ == b.bits_;
  }
  friend constexpr bool operator!=(mechanism_set a, mechanism_set b) noexcept {
    return a.bits_ != b.bits_;
  }

 private:
  static constexpr std::uint32_t bit(mechanism m) noexcept {
    return std::uint32_t{1} << static_cast<unsigned>(m);
  }
  std::uint32_t bits_ = 0;
};

/// Limits of the SASL codecs.
struct options {
  /// PLAIN authzid/authcid/passwd and LOGIN username/password, in octets.
  std::size_t max_field = 255;  // default 255; RFC 4616 §2: MUST accept at least 255
  /// XOAUTH2/OAUTHBEARER user, authzid, host and bearer token, in octets.
  /// Real access tokens (JWTs) run to a few KiB.
  std::size_t max_token = 8192;  // default 8192; no RFC minimum (RFC 7628 sets none)
};

/// A PLAIN message (RFC 4616). authzid is empty when absent. Views point
/// into the parsed message.
struct plain {
  std::string_view authzid;  ///< authorization identity ("act as"), empty when none
  std::string_view authcid;  ///< authentication identity (the user name)
  std::string_view passwd;   ///< the password
};
constexpr bool operator==(const plain& a, const plain& b) noexcept {
  return a.authzid == b.authzid && a.authcid == b.authcid && a.passwd == b.passwd;
}
constexpr bool operator!=(const plain& a, const plain& b) noexcept {
  return !(a == b);
}

/// An XOAUTH2 initial client response (Google). Views point into the message.
struct xoauth2 {
  std::string_view user;   ///< the account (an e-mail address)
  std::string_view token;  ///< the OAuth 2.0 access token (RFC 6750 b64token)
};
constexpr bool operator==(const xoauth2& a, const xoauth2& b) noexcept {
  return a.user == b.user && a.token == b.token;
}
constexpr bool operator!=(const xoauth2& a, const xoauth2& b) noexcept {
  return !(a == b);
}

/// An OAUTHBEARER client response (RFC 7628 §3.1). Views point into the message.
struct oauthbearer {
  /// The gs2 authzid in its RFC 5801 wire form ("=2C" for ',', "=3D" for
  /// '='), empty when absent.
  std::string_view authzid;
  std::string_view host;   ///< "host" kvpair value, empty when absent
  std::string_view port;   ///< "port" kvpair value (1..65535 in decimal), empty when absent
  std::string_view token;  ///< the Bearer token of the "auth" kvpair (RFC 6750 b64token)
  /// gs2 flag "y" (client supports channel binding, thinks the server does
  /// not) instead of "n".
  bool cb_flag_y = false;
};
constexpr bool operator==(const oauthbearer& a, const oauthbearer& b) noexcept {
  return a.authzid == b.authzid && a.host == b.host && a.port == b.port && a.token == b.token &&
         a.cb_flag_y == b.cb_flag_y;
}
constexpr bool operator!=(const oauthbearer& a, const oauthbearer& b) noexcept {
  return !(a == b);
}

/// The JSON error a server sends as a challenge when an OAuth token fails
/// (RFC 7628 §3.2.2; Google's XOAUTH2 sends the same shape). Each member is
/// the raw content of its JSON string (escapes kept), empty when absent.
struct oauth_error {
  std::string_view status;                ///< required: "invalid_token", "400", …
  std::string_view scope;                 ///< optional
  std::string_view schemes;               ///< optional (XOAUTH2: "Bearer")
  std::string_view openid_configuration;  ///< optional: the "openid-configuration" URL
};
constexpr bool operator==(const oauth_error& a, const oauth_error& b) noexcept {
  return a.status == b.status && a.scope == b.scope && a.schemes == b.schemes &&
         a.openid_configuration == b.openid_configuration;
}
constexpr bool operator!=(const oauth_error& a, const oauth_error& b) noexcept {
  return !(a == b);
}

/// The prompt of a LOGIN challenge.
enum class login_prompt : std::uint8_t {
  username,  ///< "Username:" (also "User Name", any case)
  password,  ///< "Password:" (any case)
};

/// The OAUTHBEARER client's answer to an error challenge (RFC 7628 §3.2.3):
/// a lone kvsep. XOAUTH2 clients answer with an empty message instead.
inline constexpr std::string_view oauthbearer_error_ack{"\x01", 1};

}  // namespace smtpwire::wire::sasl

namespace smtpwire::detail {

/// True when `s` is 1..max octets, has no NUL and (if `utf8`) is valid UTF-8.
constexpr bool is_sasl_field(std::string_view s, std::size_t max, bool utf8) noexcept {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (c == '\0') return false;
  return !utf8 || is_valid_utf8(s);
}

/// True when `s` is 1..max octets of UTF-8 without control bytes
/// (%x00-1F, %x7F): the OAuth fields, where ^A separates pairs.
constexpr bool is_oauth_text(std::string_view s, std::size_t max) noexcept {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) return false;
  }
  return is_valid_utf8(s);
}

// RFC 6750 §2.1:  b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
/// True when `s` is a b64token of at most `max` octets.
constexpr bool is_b64token(std::string_view s, std::size_t max) noexcept {
  if (s.empty() || s.size() > max) return false;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (!(is(c, cc_alpha) || is(c, cc_digit) || c == '-' || c == '.' || c == '_' || c == '~' ||
          c == '+' || c == '/'))
      break;
    ++i;
  }
  if (i == 0) return false;
  while (i < s.size() && s[i] == '=')
    ++i;
  return i == s.size();
}

/// Parses `Bearer SP b64token` (scheme case-insensitive, RFC 6750 §2.1) into `token`.
constexpr bool parse_bearer(std::string_view v, std::size_t max, std::string_view& token) noexcept {
  if (v.size() < 7 || !iequals(v.substr(0, 7), "bearer ")) return false;
  token = v.substr(7);
  return is_b64token(token, max);
}

// RFC 5801 §4:  saslname = 1*(UTF8-char-safe / "=2C" / "=3D")
//               UTF8-char-safe = %x01-2B / %x2D-3C / %x3E-7F / UTF8-2 / UTF8-3 / UTF8-4
// ^A is excluded too: in OAUTHBEARER it separates pairs.
/// True when `s` is a saslname of at most `max` octets, without ^A.
constexpr bool is_saslname(std::string_view s, std::size_t max) noexcept {
  if (s.empty() || s.size() > max || !is_valid_utf8(s)) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\0' || c == '\x01' || c == ',') return false;
    if (c == '=') {
      if (s.size() - i < 3 ||
          !((s[i + 1] == '2' && s[i + 2] == 'C') || (s[i + 1] == '3' && s[i + 2] == 'D')))
        return false;
      i += 2;
    }
  }
  return true;
}

// RFC 7628 §3.1:  value = *(VCHAR / SP / HTAB / CR / LF)
/// True when `s` is a kvpair value.
constexpr bool is_kv_value(std::string_view s) noexcept {
  for (char c : s)
    if (!(is(c, cc_vchar) || c == ' ' || c == '\t' || c == '\r' || c == '\n')) return false;
  return true;
}

/// True when `s` is a port: 1..5 digits, value 1..65535.
constexpr bool is_port(std::string_view s) noexcept {
  if (s.empty() || s.size() > 5) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    if (!is(c, cc_digit)) return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return v >= 1 && v <= 65535;
}

// RFC 8259 §7:  string = quotation-mark *char quotation-mark
//   char = unescaped / escape ( %x22 / %x5C / %x2F / %x62 / %x66 / %x6E / %x72 / %x74 / %x75
//   4HEXDIG ) unescaped = %x20-21 / %x23-5B / %x5D-10FFFF
/// Length of the one JSON string `char` at `p` (a quote is not one); 0 when
/// malformed.
constexpr std::size_t json_char_length(const char* p, const char* end) noexcept {
  const auto c = static_cast<unsigned char>(*p);
  if (c < 0x20 || c == '"') return 0;
  if (c >= 0x80) return utf8_sequence_length(p, static_cast<std::size_t>(end - p));
  if (c != '\\') return 1;
  if (end - p < 2) return 0;
  const char e = p[1];
  if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't')
    return 2;
  if (e != 'u' || end - p < 6) return 0;
  for (int i = 2; i < 6; ++i)
    if (!is(p[i], cc_hex)) return 0;
  return 6;
}

/// Scans the content of a JSON string starting after its opening quote; on
/// success `p` points at the closing quote.
constexpr bool scan_json_string(const char*& p, const char* end) noexcept {
  while (p != end) {
    if (*p == '"') return true;
    const std::size_t n = json_char_length(p, end);
    if (n == 0) return false;
    p += n;
  }
  return false;
}

/// True when `s` is the content of a JSON string (its quotes left out).
constexpr bool is_json_string_content(std::string_view s) noexcept {
  const char* p = s.data();
  const char* end = p + s.size();
  while (p != end) {
    const std::size_t n = json_char_length(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

/// Skips JSON whitespace (RFC 8259 §2: SP, HTAB, LF, CR).
constexpr void skip_json_ws(const char*& p, const char* end) noexcept {
  while (p != end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    ++p;
}

}  // namespace smtpwire::detail

namespace smtpwire::wire::sasl {

// RFC 4616 §2:
//   message   = [authzid] UTF8NUL authcid UTF8NUL passwd
//   authcid   = 1*SAFE ; MUST accept up to 255 octets
//   authzid   = 1*SAFE ; MUST accept up to 255 octets
//   passwd    = 1*SAFE ; MUST accept up to 255 octets
//   SAFE      = UTF1 / UTF2 / UTF3 / UTF4 ; any UTF-8 character except NUL
/// Parses a decoded PLAIN message; views point into `message`. Errors:
/// sasl_message_invalid for a missing or extra NUL, an empty authcid or
/// passwd, a field over o.max_field octets, or malformed UTF-8.
[[nodiscard]] inline result<plain> parse_plain(std::string_view message,
                                               const options& o = {}) noexcept {
  const std::size_t first = message.find('\0');
  if (first == std::string_view::npos) return errc::sasl_message_invalid;
  const std::size_t second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return errc::sasl_message_invalid;
  plain p{};
  p.authzid = message.substr(0, first);
  p.authcid = message.substr(first + 1, second - first - 1);
  p.passwd = message.substr(second + 1);
  if ((!p.authzid.empty() && !detail::is_sasl_field(p.authzid, o.max_field, true)) ||
      !detail::is_sasl_field(p.authcid, o.max_field, true) ||
      !detail::is_sasl_field(p.passwd, o.max_field, true))
    return errc::sasl_message_invalid;
  return p;
}

/// Appends the PLAIN message of `p`. Errors: sasl_value_invalid (nothing
/// appended) when a field would not parse back: NUL, malformed UTF-8, an
/// empty authcid or passwd, or a field over o.max_field octets.
[[nodiscard]] inline errc write_plain(std::string& out, const plain& p, const options& o = {}) {
  if ((!p.authzid.empty() && !detail::is_sasl_field(p.authzid, o.max_field, true)) ||
      !detail::is_sasl_field(p.authcid, o.max_field, true) ||
      !detail::is_sasl_field(p.passwd, o.max_field, true))
    return errc::sasl_value_invalid;
  out.append(p.authzid).push_back('\0');
  out.append(p.authcid).push_back('\0');
  out.append(p.passwd);
  return errc::ok;
}

// draft-murchison-sasl-login-00 §2: the server prompts "User Name" then
// "Password"; deployed servers send "Username:" and "Password:".
/// Classifies a decoded LOGIN challenge: "Username:", "User Name" (with or
/// without a colon, any case) or "Password:" (colon optional, any case).
/// Clients should answer by step order and use this only as a check.
/// Errors: sasl_message_invalid for anything else.
[[nodiscard]] inline result<login_prompt> parse_login_prompt(std::string_view challenge) noexcept {
  std::string_view s = challenge;
  if (!s.empty() && s.back() == ':') s.remove_suffix(1);
  if (detail::iequals(s, "username") || detail::iequals(s, "user name"))
    return login_prompt::username;
  if (detail::iequals(s, "password")) return login_prompt::password;
  return errc::sasl_message_invalid;
}

/// Appends the server's LOGIN challenge for `p` ("Username:" or "Password:").
inline void write_login_prompt(std::string& out, login_prompt p) {
  out.append(p == login_prompt::username ? "Username:" : "Password:");
}

/// Parses a decoded LOGIN response (the user name or the password): 1 to
/// o.max_field octets without NUL; returns `message` itself. Errors:
/// sasl_message_invalid.
[[nodiscard]] inline result<std::string_view> parse_login_response(std::string_view message,
                                                                   const options& o = {}) noexcept {
  if (!detail::is_sasl_field(message, o.max_field, false)) return errc::sasl_message_invalid;
  return message;
}

/// Appends a LOGIN response. Errors: sasl_value_invalid (nothing appended)
/// for an empty value, a NUL or more than o.max_field octets.
[[nodiscard]] inline errc write_login_response(std::string& out, std::string_view value,
                                               const options& o = {}) {
  if (!detail::is_sasl_field(value, o.max_field, false)) return errc::sasl_value_invalid;
  out.append(value);
  return errc::ok;
}

// Google, "OAuth 2.0 Mechanism" (XOAUTH2):
//   "user=" {User} "^Aauth=Bearer " {Access Token} "^A^A"
/// Parses a decoded XOAUTH2 initial response; views point into `message`.
/// The user is 1..o.max_token octets of UTF-8 without control bytes; the
/// token an RFC 6750 b64token; "Bearer" matches in any case. Errors:
/// sasl_message_invalid.
[[nodiscard]] inline result<xoauth2> parse_xoauth2(std::string_view message,
                                                   const options& o = {}) noexcept {
  if (message.size() < 5 || message.substr(0, 5) != "user=") return errc::sasl_message_invalid;
  if (message.size() < 2 || message.substr(message.size() - 2) != "\x01\x01")
    return errc::sasl_message_invalid;
  const std::string_view body = message.substr(5, message.size() - 5 - 2);
  const std::size_t sep = body.find('\x01');
  if (sep == std::string_view::npos) return errc::sasl_message_invalid;
  xoauth2 x{};
  x.user = body.substr(0, sep);
  const std::string_view auth = body.substr(sep + 1);
  if (!detail::is_oauth_text(x.user, o.max_token)) return errc::sasl_message_invalid;
  if (auth.size() < 5 || auth.substr(0, 5) != "auth=" ||
      !detail::parse_bearer(auth.substr(5), o.max_token, x.token))
    return errc::sasl_message_invalid;
  return x;
}

/// Appends the XOAUTH2 initial response of `x`. Errors: sasl_value_invalid
/// (nothing appended) for a control byte (^A included) or malformed UTF-8 in
/// the user, a token that is not a b64token, or a field over o.max_token.
[[nodiscard]] inline errc write_xoauth2(std::string& out, const xoauth2& x, const options& o = {}) {
  if (!detail::is_oauth_text(x.user, o.max_token) || !detail::is_b64token(x.token, o.max_token))
    return errc::sasl_value_invalid;
  out.append("user=")
      .append(x.user)
      .append(
          "\x01"
          "auth=Bearer ")
      .append(x.token);
  out.append("\x01\x01");
  return errc::ok;
}

// RFC 7628 §3.1:
//   kvsep          = %x01
//   key            = 1*(ALPHA)
//   value          = *(VCHAR / SP / HTAB / CR / LF )
//   kvpair         = key "=" value kvsep
//   client-resp    = (gs2-header kvsep *kvpair kvsep) / kvsep
// RFC 5801 §4:
//   gs2-header     = gs2-cb-flag "," [ gs2-authzid ] ","
//   gs2-cb-flag    = ("p=" cb-name) / "n" / "y"
//   gs2-authzid    = "a=" saslname
// The "auth" pair (RFC 7628 §3.1) is required: "auth=Bearer " b64token.
/// Parses a decoded OAUTHBEARER client response with credentials; views
/// point into `message`. The lone-kvsep form (the answer to an error
/// challenge) is not credentials: test it with is_oauthbearer_error_ack.
/// Errors: sasl_message_invalid (see the decisions at the top).
[[nodiscard]] inline result<oauthbearer> parse_oauthbearer(std::string_view message,
                                                           const options& o = {}) noexcept {
  constexpr errc bad = errc::sasl_message_invalid;
  oauthbearer r{};
  if (message.size() < 2 || (message[0] != 'n' && message[0] != 'y') || message[1] != ',')
    return bad;
  r.cb_flag_y = message[0] == 'y';
  std::string_view rest = message.substr(2);
  const std::size_t comma = rest.find(',');
  if (comma == std::string_view::npos) return bad;
  if (comma != 0) {
    const std::string_view a = rest.substr(0, comma);
    if (a.size() < 2 || a.substr(0, 2) != "a=") return bad;
    r.authzid = a.substr(2);
    if (!detail::is_saslname(r.authzid, o.max_token)) return bad;
  }
  rest = rest.substr(comma + 1);
  if (rest.empty() || rest[0] != '\x01') return bad;
  rest.remove_prefix(1);
  bool seen_host = false, seen_port = false, seen_auth = false;
  for (;;) {
    if (rest.empty()) return bad;
    if (rest[0] == '\x01') {
      if (rest.size() != 1) return bad;
      break;
    }
    const std::size_t kvsep = rest.find('\x01');
    if (kvsep == std::string_view::npos) return bad;
    const std::string_view pair = rest.substr(0, kvsep);
    rest.remove_prefix(kvsep + 1);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) return bad;
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = pair.substr(eq + 1);
    for (char c : key)
      if (!detail::is(c, detail::cc_alpha)) return bad;
    if (!detail::is_kv_value(value)) return bad;
    if (key == "auth") {
      if (seen_auth || !detail::parse_bearer(value, o.max_token, r.token)) return bad;
      seen_auth = true;
    } else if (key == "host") {
      if (seen_host || !detail::is_oauth_text(value, o.max_token)) return bad;
      seen_host = true;
      r.host = value;
    } else if (key == "port") {
      if (seen_port || !detail::is_port(value)) return bad;
      seen_port = true;
      r.port = value;
    }
  }
  if (!seen_auth) return bad;
  return r;
}

/// True when `message` is the lone kvsep an OAUTHBEARER client sends to
/// answer an error challenge (RFC 7628 §3.2.3).
constexpr bool is_oauthbearer_error_ack(std::string_view message) noexcept {
  return message == oauthbearer_error_ack;
}

/// Appends the OAUTHBEARER client response of `r` ("n,a=...,^Ahost=...^A
/// port=...^Aauth=Bearer ...^A^A"; empty host/port/authzid are left out).
/// Errors: sasl_value_invalid (nothing appended) for an authzid that is not
/// a saslname in wire form, a host with control bytes, a port outside
/// 1..65535, a token that is not a b64token, or a field over o.max_token.
[[nodiscard]] inline errc write_oauthbearer(std::string& out, const oauthbearer& r,
                                            const options& o = {}) {
  if ((!r.authzid.empty() && !detail::is_saslname(r.authzid, o.max_token)) ||
      (!r.host.empty() && !detail::is_oauth_text(r.host, o.max_token)) ||
      (!r.port.empty() && !detail::is_port(r.port)) || !detail::is_b64token(r.token, o.max_token))
    return errc::sasl_value_invalid;
  out.push_back(r.cb_flag_y ? 'y' : 'n');
  out.push_back(',');
  if (!r.authzid.empty()) out.append("a=").append(r.authzid);
  out.append(",\x01");
  if (!r.host.empty()) out.append("host=").append(r.host).push_back('\x01');
  if (!r.port.empty()) out.append("port=").append(r.port).push_back('\x01');
  out.append("auth=Bearer ").append(r.token).append("\x01\x01");
  return errc::ok;
}

/// Appends `name` in RFC 5801 saslname wire form (',' as "=2C", '=' as
/// "=3D"). Errors: sasl_value_invalid (nothing appended) for an empty name,
/// NUL, ^A or malformed UTF-8.
[[nodiscard]] inline errc append_saslname_escaped(std::string& out, std::string_view name) {
  if (name.empty() || !detail::is_valid_utf8(name)) return errc::sasl_value_invalid;
  for (char c : name)
    if (c == '\0' || c == '\x01') return errc::sasl_value_invalid;
  for (char c : name) {
    if (c == ',')
      out.append("=2C");
    else if (c == '=')
      out.append("=3D");
    else
      out.push_back(c);
  }
  return errc::ok;
}

/// Appends the plain name that saslname `wire` encodes. Errors:
/// sasl_value_invalid (nothing appended) when `wire` is not a saslname.
[[nodiscard]] inline errc append_saslname_unescaped(std::string& out, std::string_view wire) {
  if (!detail::is_saslname(wire, wire.size())) return errc::sasl_value_invalid;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (wire[i] == '=') {
      out.push_back(wire[i + 2] == 'C' ? ',' : '=');
      i += 2;
    } else {
      out.push_back(wire[i]);
    }
  }
  return errc::ok;
}

// RFC 7628 §3.2.2: the error is a JSON object (RFC 8259) with members
// "status" (required), "scope" and "openid-configuration"; Google's XOAUTH2
// adds "schemes". Only string values are accepted here.
/// Parses a decoded OAuth error challenge; views are raw JSON string contents
/// inside `json`. Errors: sasl_message_invalid for anything but a flat
/// object of string members with a "status", or a known member twice.
[[nodiscard]] inline result<oauth_error> parse_oauth_error(std::string_view json) noexcept {
  constexpr errc bad = errc::sasl_message_invalid;
  const char* p = json.data();
  const char* end = p + json.size();
  oauth_error r{};
  bool seen[4] = {false, false, false, false};
  detail::skip_json_ws(p, end);
  if (p == end || *p != '{') return bad;
  ++p;
  detail::skip_json_ws(p, end);
  bool first = true;
  for (;;) {
    if (p == end) return bad;
    if (*p == '}') {
      if (!first) return bad;  // "{...,}" has a trailing comma
      ++p;
      break;
    }
    if (*p != '"') return bad;
    const char* ks = ++p;
    if (!detail::scan_json_string(p, end)) return bad;
    const std::string_view key(ks, static_cast<std::size_t>(p - ks));
    ++p;
    detail::skip_json_ws(p, end);
    if (p == end || *p != ':') return bad;
    ++p;
    detail::skip_json_ws(p, end);
    if (p == end || *p != '"') return bad;
    const char* vs = ++p;
    if (!detail::scan_json_string(p, end)) return bad;
    const std::string_view value(vs, static_cast<std::size_t>(p - vs));
    ++p;
    int slot = -1;
    if (key == "status") slot = 0;
    if (key == "scope") slot = 1;
    if (key == "schemes") slot = 2;
    if (key == "openid-configuration") slot = 3;
    if (slot >= 0) {
      if (seen[slot]) return bad;
      seen[slot] = true;
      std::string_view* fields[4] = {&r.status, &r.scope, &r.schemes, &r.openid_configuration};
      *fields[slot] = value;
    }
    detail::skip_json_ws(p, end);
    if (p == end) return bad;
    if (*p == ',') {
      ++p;
      detail::skip_json_ws(p, end);
      first = false;
      if (p != end && *p == '}') return bad;
      continue;
    }
    if (*p != '}') return bad;
    ++p;
    break;
  }
  detail::skip_json_ws(p, end);
  if (p != end || r.status.empty()) return bad;
  return r;
}

/// Appends `e` as a compact JSON object (members in the order status, scope,
/// schemes, openid-configuration; empty ones left out). Each member must
/// already be valid JSON string content (escapes written out, as
/// parse_oauth_error returns them). Errors: sasl_value_invalid (nothing
/// appended) for an empty status or a member that is not JSON string content.
[[nodiscard]] inline errc write_oauth_error(std::string& out, const oauth_error& e) {
  const std::string_view names[4] = {"status", "scope", "schemes", "openid-configuration"};
  const std::string_view values[4] = {e.status, e.scope, e.schemes, e.openid_configuration};
  if (e.status.empty()) return errc::sasl_value_invalid;
  for (std::string_view v : values)
    if (!detail::is_json_string_content(v)) return errc::sasl_value_invalid;
  out.push_back('{');
  bool first = true;
  for (int i = 0; i < 4; ++i) {
    if (values[i].empty()) continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out.append(names[i]).append("\":\"").append(values[i]);
    out.push_back('"');
  }
  out.push_back('}');
  return errc::ok;
}

}  // namespace smtpwire::wire::sasl

#endif  // SMTPWIRE_WIRE_SASL_HPP
