// smtpwire — error codes, their std::error_category, the SMTP reply each
// protocol error maps to, and result<T> (a value or an errc, never a throw).
#ifndef SMTPWIRE_ERROR_HPP
#define SMTPWIRE_ERROR_HPP

#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace smtpwire {

/// Every error smtpwire reports. Value 0 (`ok`) means success, as for
/// std::error_code. Errors caused by the peer's bytes map to the reply a
/// server sends for them (see reply_for); `api_*` values mean the calling
/// application misused the library (a bug on our side of the wire, not the
/// peer's).
enum class errc : int {
  ok = 0,

  // -- line framing (wire/line.hpp) --
  line_too_long = 1,  ///< a line exceeded its configured limit
  bare_cr,            ///< CR not followed by LF
  bare_lf,            ///< LF not preceded by CR
  nul_byte,           ///< NUL where the grammar forbids it
  eight_bit_byte,     ///< a byte >= 0x80 where the grammar forbids it

  // -- replies (wire/reply.hpp) --
  reply_code_invalid = 100,  ///< not three digits 2..5, 0..5, 0..9
  reply_code_mismatch,       ///< lines of one reply carry different codes
  reply_syntax,              ///< code followed by neither SP, '-' nor CRLF
  reply_too_many_lines,      ///< more lines than the limit
  reply_too_long,            ///< more bytes than the limit
  reply_text_invalid,        ///< writer: CR, LF or NUL in reply text
  enhanced_code_invalid,     ///< writer: not class.subject.detail (RFC 3463)

  // -- commands (wire/command.hpp) --
  command_unknown = 200,  ///< verb not recognised (500 5.5.1)
  command_syntax,         ///< a known verb with a malformed argument (generic)
  helo_syntax,
  ehlo_syntax,
  lhlo_syntax,
  mail_syntax,
  rcpt_syntax,
  data_syntax,
  bdat_syntax,
  bdat_size_overflow,  ///< BDAT chunk size does not fit in 64 bits
  rset_syntax,
  vrfy_syntax,
  expn_syntax,
  help_syntax,
  noop_syntax,
  quit_syntax,
  starttls_syntax,  ///< STARTTLS takes no argument (RFC 3207 §4)
  auth_syntax,
  command_value_invalid,  ///< writer: a value would put CR, LF or NUL on the wire
  xclient_syntax,         ///< XCLIENT not followed by 1*(SP name=value) (Postfix XCLIENT_README)
  xforward_syntax,        ///< XFORWARD not followed by 1*(SP name=value) (Postfix XFORWARD_README)

  // -- paths and mailboxes (wire/path.hpp) --
  path_syntax = 300,        ///< not "<" [A-d-l ":"] mailbox ">"
  local_part_syntax,        ///< dot-string or quoted-string malformed
  local_part_too_long,      ///< > 64 octets (RFC 5321 §4.5.3.1.1)
  domain_syntax,            ///< not LDH labels separated by dots
  domain_too_long,          ///< > 255 octets (RFC 5321 §4.5.3.1.2)
  address_literal_invalid,  ///< [IPv4], [IPv6:...] or [tag:content] malformed
  path_too_long,            ///< > 256 octets (RFC 5321 §4.5.3.1.3)
  utf8_invalid,             ///< malformed, overlong or surrogate UTF-8
  utf8_not_allowed,         ///< UTF-8 in an address without SMTPUTF8 (RFC 6531)

  // -- ESMTP parameters (wire/params.hpp) --
  param_syntax = 400,     ///< keyword[=value] malformed
  param_unknown,          ///< a parameter the receiver does not support
  param_duplicate,        ///< the same keyword twice
  param_value_invalid,    ///< value outside the parameter's grammar
  param_number_overflow,  ///< a numeric value too large (SIZE, BY, …)
  param_not_allowed,      ///< valid, but not allowed here (e.g. NOTIFY on MAIL)
  notify_invalid,         ///< NEVER combined with others, or unknown keyword
  xtext_invalid,          ///< RFC 3461 xtext malformed
  base64_invalid,         ///< RFC 4648 base64 malformed (strict)
  param_too_many,         ///< more parameters than param_options::max_params
  param_conflict,         ///< two parameters that exclude each other (HOLDFOR with HOLDUNTIL)

  // -- EHLO capabilities (wire/ehlo.hpp) --
  capability_syntax = 500,   ///< an EHLO keyword line malformed
  capability_value_invalid,  ///< writer: a capability value that cannot be written as EHLO lines
  sasl_message_invalid,      ///< a decoded SASL message outside its mechanism's grammar
  sasl_value_invalid,        ///< writer: a SASL field holding a byte or length it cannot carry
  sasl_auth_failed,          ///< server: a SASL mechanism found the client's proof wrong (535)
  sasl_crypto_failed,        ///< OpenSSL failed to hash, MAC, derive or draw random octets (454)
  sasl_parameters_refused,   ///< client: SCRAM iteration count outside the configured bounds

  // -- message content (wire/data.hpp, wire/bdat.hpp) --
  data_bare_cr = 600,         ///< bare CR inside DATA content
  data_bare_lf,               ///< bare LF inside DATA content
  data_nul,                   ///< NUL inside DATA content
  data_8bit_not_declared,     ///< 8-bit content without BODY=8BITMIME/BINARYMIME
  message_too_big,            ///< message exceeds the size limit (552 5.3.4)
  data_8bit_not_offered,      ///< client: 8-bit content, server offers no 8BITMIME
  data_binary_not_offered,    ///< client: content needs BINARYMIME+CHUNKING, not offered
  data_smtputf8_not_offered,  ///< client: non-ASCII headers, server offers no SMTPUTF8

  // -- engines (client.hpp) --
  tls_response_injection = 700,  ///< bytes received after the 220 reply to STARTTLS
  tls_not_offered,               ///< TLS required, the server's EHLO offers no STARTTLS
  tls_refused,                   ///< TLS required, STARTTLS answered with anything but 220
  tls_helo_only,                 ///< TLS required, the server refused EHLO (HELO has no STARTTLS)
  greeting_refused,              ///< the server's greeting was not 220 (e.g. 554)
  hello_refused,                 ///< EHLO and HELO refused (LMTP: LHLO refused)
  auth_not_offered,              ///< no SASL mechanism usable with the server's AUTH list
  auth_requires_tls,             ///< credentials would go in clear (not allowed by config)
  requiretls_not_offered,        ///< REQUIRETLS asked for without TLS or without the extension
  reply_unexpected,              ///< a reply code the command in flight cannot receive
  reply_unsolicited,             ///< a reply while no command is in flight
  timeout,                       ///< the server did not answer within the configured time
  tls_handshake_failed,          ///< the TLS adapter reported a failed handshake
  dsn_not_offered,               ///< DSN parameters (RFC 3461) asked for, server offers no DSN
  deliverby_not_offered,         ///< BY (RFC 2852) asked for, server offers no DELIVERBY
  mt_priority_not_offered,       ///< MT-PRIORITY (RFC 6710) asked for, server offers none
  rrvs_not_offered,              ///< RRVS (RFC 7293) asked for, server offers no RRVS
  futurerelease_not_offered,     ///< HOLDFOR/HOLDUNTIL (RFC 4865), server offers no FUTURERELEASE
  xclient_refused,               ///< the server refused the XCLIENT it offered (or sent no 220)
  mailmax_reached,               ///< the session used up the server's LIMITS MAILMAX (RFC 9422)

  // -- PROXY protocol header (wire/proxy.hpp) --
  proxy_missing = 800,      ///< required header absent: the stream starts with no PROXY signature
  proxy_version_refused,    ///< a v1 or v2 header while proxy_options does not accept that version
  proxy_v1_syntax,          ///< v1 line outside "PROXY TCP4|TCP6|UNKNOWN ..." (single spaces, CRLF)
  proxy_v1_too_long,        ///< no CRLF within 107 octets
  proxy_address_invalid,    ///< v1 address or port malformed (leading zero, range, family mismatch)
  proxy_v2_header_invalid,  ///< v2 version not 2, command not LOCAL/PROXY, or unknown family
  proxy_v2_too_long,        ///< v2 length above the address block + proxy_options::max_tlv_length
  proxy_v2_length_invalid,  ///< v2 length shorter than its family's address block
  proxy_tlv_invalid,        ///< a TLV (or SSL sub-TLV) overruns its block, repeats, or bad length
  proxy_crc32c_mismatch,    ///< the CRC32C TLV does not match the header
  proxy_truncated,          ///< the stream ended inside a header
  proxy_peer_untrusted,     ///< driver: the TCP peer is not one of the allowed load balancers
  proxy_timeout,            ///< driver: no complete header within the configured deadline
  // -- XCLIENT and XFORWARD attributes (wire/xclient.hpp) --
  xattr_unknown = 850,  ///< an attribute name the command does not take
  xattr_duplicate,      ///< the same attribute twice in one command
  xattr_value_invalid,  ///< a value outside its attribute's syntax (bad address, port, name)

  // -- API misuse by the application (not the peer) --
  api_bad_state = 900,  ///< a call that the current state does not allow
  api_value_invalid,    ///< a value the application passed is invalid

  // -- MTA-STS (mta_sts.hpp) and TLSRPT (tlsrpt.hpp) --
  mta_sts_record_invalid = 1000,  ///< TXT record outside RFC 8461 §3.1 (version, id, field syntax)
  mta_sts_policy_too_large,       ///< policy body above policy_options::max_size
  mta_sts_policy_syntax,          ///< a policy line not "name: value", or a control octet in it
  mta_sts_version_invalid,        ///< the policy's version field not "STSv1"
  mta_sts_field_missing,    ///< version, mode or max_age absent, or no mx while mode is not none
  mta_sts_mode_invalid,     ///< mode not enforce, testing or none
  mta_sts_max_age_invalid,  ///< max_age not 1*10DIGIT within 0..31557600
  mta_sts_mx_invalid,       ///< mx not a domain or "*." domain
  tlsrpt_value_invalid = 1050,  ///< writer: a report field empty, out of range or not UTF-8

  // -- server engine: parameters checked against what EHLO offered (server.hpp) --
  by_time_below_minimum = 1100,  ///< BY in R mode below the offered min-by-time (RFC 2852 §4)
  holdfor_too_long,              ///< HOLDFOR above the offered max interval (RFC 4865 §3)
  holduntil_too_late,            ///< HOLDUNTIL after the offered max date-time (RFC 4865 §3)
};

/// The reply a server sends for a protocol error: basic code, enhanced status
/// code (RFC 3463, empty when none fits) and a text that names the expected
/// syntax. The strings are static.
struct reply_template {
  int code;
  std::string_view enhanced;
  std::string_view text;
};

/// The default reply for `e` (see reply_template). For `errc::ok` and the
/// api_* values, which the peer never sees, it returns 451 4.3.0.
constexpr reply_template reply_for(errc e) noexcept {
  switch (e) {
    case errc::ok:
      break;
    case errc::line_too_long:
      return {500, "5.5.6", "Line too long"};
    case errc::bare_cr:
      return {500, "5.5.2", "Bare CR in command: only CRLF ends a line"};
    case errc::bare_lf:
      return {500, "5.5.2", "Bare LF in command: only CRLF ends a line"};
    case errc::nul_byte:
      return {500, "5.5.2", "NUL byte not allowed"};
    case errc::eight_bit_byte:
      return {500, "5.5.2", "8-bit byte not allowed here"};
    case errc::reply_code_invalid:
    case errc::reply_code_mismatch:
    case errc::reply_syntax:
    case errc::reply_too_many_lines:
    case errc::reply_too_long:
    case errc::reply_text_invalid:
    case errc::enhanced_code_invalid:
      // Reply errors happen on the client side; no server reply applies.
      break;
    case errc::command_unknown:
      return {500, "5.5.1", "Command unrecognized"};
    case errc::command_syntax:
      return {501, "5.5.4", "Syntax error in parameters or arguments"};
    case errc::helo_syntax:
      return {501, "5.5.4", "Syntax: HELO domain"};
    case errc::ehlo_syntax:
      return {501, "5.5.4", "Syntax: EHLO domain-or-address-literal"};
    case errc::lhlo_syntax:
      return {501, "5.5.4", "Syntax: LHLO domain-or-address-literal"};
    case errc::mail_syntax:
      return {501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]"};
    case errc::rcpt_syntax:
      return {501, "5.5.4", "Syntax: RCPT TO:<address> [parameters]"};
    case errc::data_syntax:
      return {501, "5.5.4", "Syntax: DATA"};
    case errc::bdat_syntax:
      return {501, "5.5.4", "Syntax: BDAT chunk-size [LAST]"};
    case errc::bdat_size_overflow:
      return {552, "5.3.4", "BDAT chunk size too large"};
    case errc::rset_syntax:
      return {501, "5.5.4", "Syntax: RSET"};
    case errc::vrfy_syntax:
      return {501, "5.5.4", "Syntax: VRFY string"};
    case errc::expn_syntax:
      return {501, "5.5.4", "Syntax: EXPN string"};
    case errc::help_syntax:
      return {501, "5.5.4", "Syntax: HELP [string]"};
    case errc::noop_syntax:
      return {501, "5.5.4", "Syntax: NOOP [string]"};
    case errc::quit_syntax:
      return {501, "5.5.4", "Syntax: QUIT"};
    case errc::starttls_syntax:
      return {501, "5.5.4", "Syntax: STARTTLS (no parameters allowed)"};
    case errc::auth_syntax:
      return {501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"};
    case errc::command_value_invalid:
      break;
    case errc::xclient_syntax:
      return {501, "5.5.4", "Syntax: XCLIENT attribute=value ..."};
    case errc::xforward_syntax:
      return {501, "5.5.4", "Syntax: XFORWARD attribute=value ..."};
    case errc::path_syntax:
      return {501, "5.1.3", "Bad address syntax: expected <local-part@domain>"};
    case errc::local_part_syntax:
      return {501, "5.1.3", "Bad local part: expected dot-string or quoted-string"};
    case errc::local_part_too_long:
      return {501, "5.1.3", "Local part longer than 64 octets"};
    case errc::domain_syntax:
      return {501, "5.1.2", "Bad domain: expected letters, digits, hyphens and dots"};
    case errc::domain_too_long:
      return {501, "5.1.2", "Domain longer than 255 octets"};
    case errc::address_literal_invalid:
      return {501, "5.1.2", "Bad address literal: expected [IPv4], [IPv6:...] or [tag:text]"};
    case errc::path_too_long:
      return {501, "5.1.3", "Path longer than 256 octets"};
    case errc::utf8_invalid:
      return {501, "5.6.7", "Malformed UTF-8 in address"};
    case errc::utf8_not_allowed:
      return {553, "5.6.7", "Non-ASCII address requires SMTPUTF8"};
    case errc::param_syntax:
      return {501, "5.5.4", "Syntax: keyword[=value] parameters"};
    case errc::param_unknown:
      return {555, "5.5.4", "Parameter not recognized"};
    case errc::param_duplicate:
      return {501, "5.5.4", "Parameter given twice"};
    case errc::param_value_invalid:
      return {501, "5.5.4", "Invalid parameter value"};
    case errc::param_number_overflow:
      // Only SIZE (RFC 1870) has an unbounded number: a declared size above
      // 2^64-1 exceeds any limit, which RFC 1870 §6.1 answers with 552.
      return {552, "5.3.4", "Declared SIZE exceeds the message size limit"};
    case errc::param_not_allowed:
      return {555, "5.5.4", "Parameter not allowed here"};
    case errc::notify_invalid:
      return {501, "5.5.4", "Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY"};
    case errc::xtext_invalid:
      return {501, "5.5.4", "Invalid xtext (RFC 3461)"};
    case errc::base64_invalid:
      return {501, "5.5.2", "Invalid base64"};
    case errc::param_too_many:
      return {501, "5.5.4", "Too many parameters"};
    case errc::param_conflict:
      // RFC 4865 §3: HOLDFOR and HOLDUNTIL together is a syntax error.
      return {501, "5.5.4", "Parameters exclude each other (HOLDFOR and HOLDUNTIL)"};
    case errc::capability_syntax:
    case errc::capability_value_invalid:
      // EHLO replies are read by clients and written from the server's own
      // configuration; no reply to the peer applies.
      break;
    case errc::sasl_message_invalid:
      return {501, "5.5.2", "Malformed SASL response for this mechanism"};
    case errc::sasl_auth_failed:
      return {535, "5.7.8", "Authentication credentials invalid"};
    case errc::sasl_crypto_failed:
      return {454, "4.7.0", "Temporary authentication failure"};
    case errc::sasl_parameters_refused:
      break;
    case errc::sasl_value_invalid:
      break;
    case errc::data_bare_cr:
      return {550, "5.6.0", "Bare CR in message content (only CRLF ends a line)"};
    case errc::data_bare_lf:
      return {550, "5.6.0", "Bare LF in message content (only CRLF ends a line)"};
    case errc::data_nul:
      return {550, "5.6.0", "NUL byte in message content"};
    case errc::data_8bit_not_declared:
      return {554, "5.6.1", "8-bit content requires BODY=8BITMIME"};
    case errc::message_too_big:
      return {552, "5.3.4", "Message size exceeds fixed limit"};
    case errc::data_8bit_not_offered:
      return {554, "5.6.3", "8-bit content but the server does not offer 8BITMIME"};
    case errc::data_binary_not_offered:
      return {554, "5.6.3", "Content needs BINARYMIME and CHUNKING, not offered"};
    case errc::data_smtputf8_not_offered:
      return {554, "5.6.7", "Non-ASCII headers need SMTPUTF8, not offered"};
    case errc::tls_response_injection:
    case errc::tls_not_offered:
    case errc::tls_refused:
    case errc::tls_helo_only:
    case errc::greeting_refused:
    case errc::hello_refused:
    case errc::auth_not_offered:
    case errc::auth_requires_tls:
    case errc::requiretls_not_offered:
    case errc::reply_unexpected:
    case errc::reply_unsolicited:
    case errc::timeout:
    case errc::tls_handshake_failed:
    case errc::dsn_not_offered:
    case errc::deliverby_not_offered:
    case errc::mt_priority_not_offered:
    case errc::rrvs_not_offered:
    case errc::futurerelease_not_offered:
    case errc::xclient_refused:
    case errc::mailmax_reached:
      // Client engine errors: the server's misbehaviour or the client's
      // policy; no server reply applies.
      break;
    // PROXY headers come from the load balancer, before the greeting: a bad
    // one is a fault on the server's side of the path, so 421 (retry later),
    // never a permanent 5xx that would bounce the client's mail.
    case errc::proxy_missing:
      return {421, "4.3.0", "PROXY protocol header required"};
    case errc::proxy_version_refused:
      return {421, "4.3.0", "PROXY protocol version not accepted"};
    case errc::proxy_v1_syntax:
    case errc::proxy_v1_too_long:
    case errc::proxy_address_invalid:
      return {421, "4.3.0", "Invalid PROXY protocol v1 header"};
    case errc::proxy_v2_header_invalid:
    case errc::proxy_v2_too_long:
    case errc::proxy_v2_length_invalid:
    case errc::proxy_tlv_invalid:
      return {421, "4.3.0", "Invalid PROXY protocol v2 header"};
    case errc::proxy_crc32c_mismatch:
      return {421, "4.3.0", "PROXY protocol v2 header checksum mismatch"};
    case errc::proxy_truncated:
      return {421, "4.3.0", "Truncated PROXY protocol header"};
    case errc::proxy_peer_untrusted:
      return {421, "4.3.0", "Connection not accepted from this address"};
    case errc::proxy_timeout:
      return {421, "4.4.2", "Timeout waiting for the PROXY protocol header"};
    case errc::xattr_unknown:
      return {501, "5.5.4", "Bad attribute name for this command"};
    case errc::xattr_duplicate:
      return {501, "5.5.4", "Attribute given twice"};
    case errc::xattr_value_invalid:
      return {501, "5.5.4", "Bad attribute value syntax"};
    case errc::api_bad_state:
    case errc::api_value_invalid:
      break;
    case errc::mta_sts_record_invalid:
    case errc::mta_sts_policy_too_large:
    case errc::mta_sts_policy_syntax:
    case errc::mta_sts_version_invalid:
    case errc::mta_sts_field_missing:
    case errc::mta_sts_mode_invalid:
    case errc::mta_sts_max_age_invalid:
    case errc::mta_sts_mx_invalid:
    case errc::tlsrpt_value_invalid:
      // Read from DNS and HTTPS or written by the sender: no SMTP peer sees them.
      break;
    case errc::by_time_below_minimum:
      return {501, "5.5.4", "BY time below the minimum this server offers (RFC 2852)"};
    case errc::holdfor_too_long:
      return {501, "5.5.4", "HOLDFOR longer than the maximum this server offers (RFC 4865)"};
    case errc::holduntil_too_late:
      return {501, "5.5.4", "HOLDUNTIL later than the maximum this server offers (RFC 4865)"};
  }
  return {451, "4.3.0", "Local error in processing"};
}

/// A short, stable, human-readable name for `e` ("bare_lf", …).
constexpr std::string_view to_string(errc e) noexcept {
  switch (e) {
#define SMTPWIRE_ERRC_NAME(x) \
  case errc::x:               \
    return #x;
    SMTPWIRE_ERRC_NAME(ok)
    SMTPWIRE_ERRC_NAME(line_too_long)
    SMTPWIRE_ERRC_NAME(bare_cr)
    SMTPWIRE_ERRC_NAME(bare_lf)
    SMTPWIRE_ERRC_NAME(nul_byte)
    SMTPWIRE_ERRC_NAME(eight_bit_byte)
    SMTPWIRE_ERRC_NAME(reply_code_invalid)
    SMTPWIRE_ERRC_NAME(reply_code_mismatch)
    SMTPWIRE_ERRC_NAME(reply_syntax)
    SMTPWIRE_ERRC_NAME(reply_too_many_lines)
    SMTPWIRE_ERRC_NAME(reply_too_long)
    SMTPWIRE_ERRC_NAME(reply_text_invalid)
    SMTPWIRE_ERRC_NAME(enhanced_code_invalid)
    SMTPWIRE_ERRC_NAME(command_unknown)
    SMTPWIRE_ERRC_NAME(command_syntax)
    SMTPWIRE_ERRC_NAME(helo_syntax)
    SMTPWIRE_ERRC_NAME(ehlo_syntax)
    SMTPWIRE_ERRC_NAME(lhlo_syntax)
    SMTPWIRE_ERRC_NAME(mail_syntax)
    SMTPWIRE_ERRC_NAME(rcpt_syntax)
    SMTPWIRE_ERRC_NAME(data_syntax)
    SMTPWIRE_ERRC_NAME(bdat_syntax)
    SMTPWIRE_ERRC_NAME(bdat_size_overflow)
    SMTPWIRE_ERRC_NAME(rset_syntax)
    SMTPWIRE_ERRC_NAME(vrfy_syntax)
    SMTPWIRE_ERRC_NAME(expn_syntax)
    SMTPWIRE_ERRC_NAME(help_syntax)
    SMTPWIRE_ERRC_NAME(noop_syntax)
    SMTPWIRE_ERRC_NAME(quit_syntax)
    SMTPWIRE_ERRC_NAME(starttls_syntax)
    SMTPWIRE_ERRC_NAME(auth_syntax)
    SMTPWIRE_ERRC_NAME(command_value_invalid)
    SMTPWIRE_ERRC_NAME(xclient_syntax)
    SMTPWIRE_ERRC_NAME(xforward_syntax)
    SMTPWIRE_ERRC_NAME(path_syntax)
    SMTPWIRE_ERRC_NAME(local_part_syntax)
    SMTPWIRE_ERRC_NAME(local_part_too_long)
    SMTPWIRE_ERRC_NAME(domain_syntax)
    SMTPWIRE_ERRC_NAME(domain_too_long)
    SMTPWIRE_ERRC_NAME(address_literal_invalid)
    SMTPWIRE_ERRC_NAME(path_too_long)
    SMTPWIRE_ERRC_NAME(utf8_invalid)
    SMTPWIRE_ERRC_NAME(utf8_not_allowed)
    SMTPWIRE_ERRC_NAME(param_syntax)
    SMTPWIRE_ERRC_NAME(param_unknown)
    SMTPWIRE_ERRC_NAME(param_duplicate)
    SMTPWIRE_ERRC_NAME(param_value_invalid)
    SMTPWIRE_ERRC_NAME(param_number_overflow)
    SMTPWIRE_ERRC_NAME(param_not_allowed)
    SMTPWIRE_ERRC_NAME(notify_invalid)
    SMTPWIRE_ERRC_NAME(xtext_invalid)
    SMTPWIRE_ERRC_NAME(base64_invalid)
    SMTPWIRE_ERRC_NAME(param_too_many)
    SMTPWIRE_ERRC_NAME(param_conflict)
    SMTPWIRE_ERRC_NAME(capability_syntax)
    SMTPWIRE_ERRC_NAME(capability_value_invalid)
    SMTPWIRE_ERRC_NAME(sasl_message_invalid)
    SMTPWIRE_ERRC_NAME(sasl_value_invalid)
    SMTPWIRE_ERRC_NAME(sasl_auth_failed)
    SMTPWIRE_ERRC_NAME(sasl_crypto_failed)
    SMTPWIRE_ERRC_NAME(sasl_parameters_refused)
    SMTPWIRE_ERRC_NAME(data_bare_cr)
    SMTPWIRE_ERRC_NAME(data_bare_lf)
    SMTPWIRE_ERRC_NAME(data_nul)
    SMTPWIRE_ERRC_NAME(data_8bit_not_declared)
    SMTPWIRE_ERRC_NAME(message_too_big)
    SMTPWIRE_ERRC_NAME(data_8bit_not_offered)
    SMTPWIRE_ERRC_NAME(data_binary_not_offered)
    SMTPWIRE_ERRC_NAME(data_smtputf8_not_offered)
    SMTPWIRE_ERRC_NAME(tls_response_injection)
    SMTPWIRE_ERRC_NAME(tls_not_offered)
    SMTPWIRE_ERRC_NAME(tls_refused)
    SMTPWIRE_ERRC_NAME(tls_helo_only)
    SMTPWIRE_ERRC_NAME(greeting_refused)
    SMTPWIRE_ERRC_NAME(hello_refused)
    SMTPWIRE_ERRC_NAME(auth_not_offered)
    SMTPWIRE_ERRC_NAME(auth_requires_tls)
    SMTPWIRE_ERRC_NAME(requiretls_not_offered)
    SMTPWIRE_ERRC_NAME(reply_unexpected)
    SMTPWIRE_ERRC_NAME(reply_unsolicited)
    SMTPWIRE_ERRC_NAME(timeout)
    SMTPWIRE_ERRC_NAME(tls_handshake_failed)
    SMTPWIRE_ERRC_NAME(dsn_not_offered)
    SMTPWIRE_ERRC_NAME(deliverby_not_offered)
    SMTPWIRE_ERRC_NAME(mt_priority_not_offered)
    SMTPWIRE_ERRC_NAME(rrvs_not_offered)
    SMTPWIRE_ERRC_NAME(futurerelease_not_offered)
    SMTPWIRE_ERRC_NAME(xclient_refused)
    SMTPWIRE_ERRC_NAME(mailmax_reached)
    SMTPWIRE_ERRC_NAME(proxy_missing)
    SMTPWIRE_ERRC_NAME(proxy_version_refused)
    SMTPWIRE_ERRC_NAME(proxy_v1_syntax)
    SMTPWIRE_ERRC_NAME(proxy_v1_too_long)
    SMTPWIRE_ERRC_NAME(proxy_address_invalid)
    SMTPWIRE_ERRC_NAME(proxy_v2_header_invalid)
    SMTPWIRE_ERRC_NAME(proxy_v2_too_long)
    SMTPWIRE_ERRC_NAME(proxy_v2_length_invalid)
    SMTPWIRE_ERRC_NAME(proxy_tlv_invalid)
    SMTPWIRE_ERRC_NAME(proxy_crc32c_mismatch)
    SMTPWIRE_ERRC_NAME(proxy_truncated)
    SMTPWIRE_ERRC_NAME(proxy_peer_untrusted)
    SMTPWIRE_ERRC_NAME(proxy_timeout)
    SMTPWIRE_ERRC_NAME(xattr_unknown)
    SMTPWIRE_ERRC_NAME(xattr_duplicate)
    SMTPWIRE_ERRC_NAME(xattr_value_invalid)
    SMTPWIRE_ERRC_NAME(api_bad_state)
    SMTPWIRE_ERRC_NAME(api_value_invalid)
    SMTPWIRE_ERRC_NAME(mta_sts_record_invalid)
    SMTPWIRE_ERRC_NAME(mta_sts_policy_too_large)
    SMTPWIRE_ERRC_NAME(mta_sts_policy_syntax)
    SMTPWIRE_ERRC_NAME(mta_sts_version_invalid)
    SMTPWIRE_ERRC_NAME(mta_sts_field_missing)
    SMTPWIRE_ERRC_NAME(mta_sts_mode_invalid)
    SMTPWIRE_ERRC_NAME(mta_sts_max_age_invalid)
    SMTPWIRE_ERRC_NAME(mta_sts_mx_invalid)
    SMTPWIRE_ERRC_NAME(tlsrpt_value_invalid)
    SMTPWIRE_ERRC_NAME(by_time_below_minimum)
    SMTPWIRE_ERRC_NAME(holdfor_too_long)
    SMTPWIRE_ERRC_NAME(holduntil_too_late)
#undef SMTPWIRE_ERRC_NAME
  }
  return "unknown";
}

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "smtpwire"; }
  std::string message(int ev) const override {
    const errc e = static_cast<errc>(ev);
    const reply_template r = reply_for(e);
    std::string m(to_string(e));
    if (r.code != 451) {
      m += ": ";
      m += r.text;
    }
    return m;
  }
};
}  // namespace detail

/// The "smtpwire" error category (a function-local static: no global
/// constructor, one instance per program).
inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

/// Makes `e` usable as a std::error_code.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// A value of type T or an errc; never throws. Accessing the value of an
/// error result is a programming error and aborts (the core builds without
/// exceptions).
template <class T>
class [[nodiscard]] result {
 public:
  result(const T& v) : has_(true), error_(errc::ok) { new (&storage_) T(v); }
  result(T&& v) : has_(true), error_(errc::ok) { new (&storage_) T(std::move(v)); }
  result(errc e) noexcept : has_(false), error_(e) {}
  result(const result& o) : has_(o.has_), error_(o.error_) {
    if (has_) new (&storage_) T(*o.ptr());
  }
  result(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
      : has_(o.has_), error_(o.error_) {
    if (has_) new (&storage_) T(std::move(*o.ptr()));
  }
  result& operator=(const result& o) {
    if (this != &o) {
      reset();
      has_ = o.has_;
      error_ = o.error_;
      if (has_) new (&storage_) T(*o.ptr());
    }
    return *this;
  }
  result& operator=(result&& o) noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      reset();
      has_ = o.has_;
      error_ = o.error_;
      if (has_) new (&storage_) T(std::move(*o.ptr()));
    }
    return *this;
  }
  ~result() { reset(); }

  bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }
  /// The error; errc::ok when a value is held.
  errc error() const noexcept { return error_; }

  T& value() & { return *checked(); }
  const T& value() const& { return *checked(); }
  T&& value() && { return std::move(*checked()); }
  T& operator*() & { return *checked(); }
  const T& operator*() const& { return *checked(); }
  T* operator->() { return checked(); }
  const T* operator->() const { return checked(); }

 private:
  T* ptr() noexcept { return std::launder(reinterpret_cast<T*>(&storage_)); }
  const T* ptr() const noexcept { return std::launder(reinterpret_cast<const T*>(&storage_)); }
  T* checked() {
    if (!has_) std::abort();
    return ptr();
  }
  const T* checked() const {
    if (!has_) std::abort();
    return ptr();
  }
  void reset() noexcept {
    if (has_) ptr()->~T();
    has_ = false;
  }

  alignas(T) unsigned char storage_[sizeof(T)];
  bool has_;
  errc error_;
};

}  // namespace smtpwire

namespace std {
template <>
struct is_error_code_enum<smtpwire::errc> : true_type {};
}  // namespace std

#endif  // SMTPWIRE_ERROR_HPP
