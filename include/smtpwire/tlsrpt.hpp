// smtpwire — SMTP TLS Reporting (RFC 8460): the JSON report (§4) a sending
// MTA builds from the TLS results of its delivery attempts and sends to the
// recipient domain's `rua` address. Sans-I/O: the application counts sessions
// (count_success / count_failure, or its own counters), fills a report and
// calls write_report; compression, signing and delivery are its business.
#ifndef SMTPWIRE_TLSRPT_HPP
#define SMTPWIRE_TLSRPT_HPP

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"

namespace smtpwire::tlsrpt {

/// The policy a report block describes (§4.4 "policy-type").
enum class policy_type : std::uint8_t {
  sts,              ///< an MTA-STS policy (RFC 8461)
  tlsa,             ///< DANE TLSA records (RFC 6698, RFC 7672)
  no_policy_found,  ///< neither was found
};

/// "sts", "tlsa" or "no-policy-found": the report's spelling.
constexpr std::string_view to_string(policy_type t) noexcept {
  switch (t) {
    case policy_type::sts:
      return "sts";
    case policy_type::tlsa:
      return "tlsa";
    case policy_type::no_policy_found:
      return "no-policy-found";
  }
  return "unknown";
}

/// Why a session failed (§4.3 result types).
enum class result_type : std::uint8_t {
  // Negotiation failures (§4.3.1)
  starttls_not_supported,     ///< the MX did not offer STARTTLS
  certificate_host_mismatch,  ///< the certificate does not name the MX host (or policy mx)
  certificate_expired,        ///< the certificate has expired
  certificate_not_trusted,    ///< no chain to a trusted root
  validation_failure,         ///< any other verification failure (see failure_reason_code)
  // Policy failures (§4.3.2)
  tlsa_invalid,            ///< DANE: the TLSA records are invalid
  dnssec_invalid,          ///< DANE: no valid DNSSEC signatures
  dane_required,           ///< DANE: TLSA records required but absent
  sts_policy_fetch_error,  ///< MTA-STS: the policy could not be fetched
  sts_policy_invalid,      ///< MTA-STS: the policy did not parse
  sts_webpki_invalid,      ///< MTA-STS: the policy host's HTTPS certificate did not validate
};

/// The §4.3 spelling ("certificate-host-mismatch", …).
constexpr std::string_view to_string(result_type r) noexcept {
  switch (r) {
    case result_type::starttls_not_supported:
      return "starttls-not-supported";
    case result_type::certificate_host_mismatch:
      return "certificate-host-mismatch";
    case result_type::certificate_expired:
      return "certificate-expired";
    case result_type::certificate_not_trusted:
      return "certificate-not-trusted";
    case result_type::validation_failure:
      return "validation-failure";
    case result_type::tlsa_invalid:
      return "tlsa-invalid";
    case result_type::dnssec_invalid:
      return "dnssec-invalid";
    case result_type::dane_required:
      return "dane-required";
    case result_type::sts_policy_fetch_error:
      return "sts-policy-fetch-error";
    case result_type::sts_policy_invalid:
      return "sts-policy-invalid";
    case result_type::sts_webpki_invalid:
      return "sts-webpki-invalid";
  }
  return "unknown";
}

/// One "failure-details" entry: sessions that failed the same way between the
/// same endpoints. Empty optional strings are left out of the report.
struct failure_detail {
  result_type result = result_type::validation_failure;
  std::string sending_mta_ip;         ///< optional; the sender's IP address
  std::string receiving_mx_hostname;  ///< optional; the MX host name
  std::string receiving_mx_helo;      ///< optional; the MX's EHLO/HELO name
  std::string receiving_ip;           ///< optional; the MX's IP address
  std::uint64_t failed_session_count = 0;
  std::string additional_information;  ///< optional; a URI with more detail
  std::string failure_reason_code;     ///< optional; e.g. an X509_V_ERR_* name
};

/// One "policies" entry: a policy, its session summary and its failures.
struct policy_result {
  policy_type type = policy_type::no_policy_found;
  /// The policy as lines: the MTA-STS body's lines or the TLSA records in
  /// presentation form; optional (omitted when empty).
  std::vector<std::string> policy_string;
  std::string policy_domain;         ///< required; the recipient domain the policy is for
  std::vector<std::string> mx_host;  ///< optional; the policy's MX patterns
  std::uint64_t total_successful_session_count = 0;
  std::uint64_t total_failure_session_count = 0;
  std::vector<failure_detail> failure_details;
};

/// The whole report (§4.4).
struct report {
  std::string organization_name;  ///< required; the sending organisation
  std::int64_t start = 0;         ///< required; Unix seconds, written as RFC 3339 UTC
  std::int64_t end = 0;           ///< required; Unix seconds, >= start
  std::string contact_info;       ///< required; an e-mail address or URI
  std::string report_id;          ///< required; unique per report
  std::vector<policy_result> policies;
};

/// Counts one successful session under `p`.
inline void count_success(policy_result& p) noexcept {
  ++p.total_successful_session_count;
}

/// Counts one failed session under `p`: adds it to the failure_details entry
/// with the same result type and endpoints (creating it) and to
/// total_failure_session_count.
inline void count_failure(policy_result& p, result_type r, std::string_view sending_mta_ip,
                          std::string_view receiving_mx_hostname,
                          std::string_view receiving_ip = {}) {
  ++p.total_failure_session_count;
  for (auto& f : p.failure_details) {
    if (f.result == r && f.sending_mta_ip == sending_mta_ip &&
        f.receiving_mx_hostname == receiving_mx_hostname && f.receiving_ip == receiving_ip) {
      ++f.failed_session_count;
      return;
    }
  }
  failure_detail f;
  f.result = r;
  f.sending_mta_ip = std::string(sending_mta_ip);
  f.receiving_mx_hostname = std::string(receiving_mx_hostname);
  f.receiving_ip = std::string(receiving_ip);
  f.failed_session_count = 1;
  p.failure_details.push_back(std::move(f));
}

/// What one delivery attempt found, in the terms of the client engine and
/// the OpenSSL adapter (openssl::channel), for classify().
struct session_outcome {
  /// False when the client engine failed with errc::tls_not_offered,
  /// tls_refused or tls_helo_only (no TLS session could start).
  bool starttls_offered = true;
  /// channel::verification().passed: chain, validity and name (or DANE)
  /// verified.
  bool verified = false;
  /// channel::verification().code: X509_V_OK (0) or an X509_V_ERR_* value;
  /// 0 with verified false means the handshake failed before verification.
  long verify_code = 0;
  /// MTA-STS: decide(policy, mx).mx_matches; false is a policy failure even
  /// when TLS verified (RFC 8461 §4.1).
  bool policy_mx_matched = true;
};

/// classify()'s answer.
struct classification {
  bool failed = false;  ///< false: count_success; true: count_failure with `result`
  result_type result = result_type::validation_failure;
  /// The OpenSSL name of verify_code for failure_detail::failure_reason_code
  /// (a static string), empty when the code is not one classify knows.
  std::string_view reason_code;
};

// RFC 8460 §4.3.1 negotiation failures, from OpenSSL's X509_V_ERR_* values
// (stable across OpenSSL 1.1 and 3.x; the core does not include OpenSSL).
/// The RFC 8460 result type of one session: starttls-not-supported without
/// TLS; certificate-expired for X509_V_ERR_CERT_HAS_EXPIRED;
/// certificate-host-mismatch for X509_V_ERR_HOSTNAME_MISMATCH;
/// certificate-not-trusted for a chain without trusted root (unknown
/// issuer, self-signed, untrusted); validation-failure for anything else,
/// including an MX host outside the MTA-STS policy.
constexpr classification classify(const session_outcome& s) noexcept {
  classification c;
  if (!s.starttls_offered) {
    c.failed = true;
    c.result = result_type::starttls_not_supported;
    return c;
  }
  struct known {
    long code;
    result_type result;
    std::string_view name;
  };
  constexpr known table[] = {
      {2, result_type::certificate_not_trusted, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT"},
      {9, result_type::validation_failure, "X509_V_ERR_CERT_NOT_YET_VALID"},
      {10, result_type::certificate_expired, "X509_V_ERR_CERT_HAS_EXPIRED"},
      {18, result_type::certificate_not_trusted, "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"},
      {19, result_type::certificate_not_trusted, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN"},
      {20, result_type::certificate_not_trusted, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"},
      {21, result_type::certificate_not_trusted, "X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE"},
      {27, result_type::certificate_not_trusted, "X509_V_ERR_CERT_UNTRUSTED"},
      {62, result_type::certificate_host_mismatch, "X509_V_ERR_HOSTNAME_MISMATCH"},
      {65, result_type::validation_failure, "X509_V_ERR_DANE_NO_MATCH"},
  };
  if (!s.verified) {
    c.failed = true;
    c.result = result_type::validation_failure;
    for (const auto& k : table) {
      if (k.code == s.verify_code) {
        c.result = k.result;
        c.reason_code = k.name;
      }
    }
    return c;
  }
  if (!s.policy_mx_matched) {
    c.failed = true;
    c.result = result_type::validation_failure;
  }
  return c;
}

namespace detail {

// RFC 8259 §7: a string is quoted; '"', '\' and U+0000..U+001F are escaped.
// Other code points pass through as UTF-8, which must be well-formed (§8.1).
/// Appends `s` as a JSON string; false (out unchanged) on malformed UTF-8.
inline bool append_json_string(std::string& out, std::string_view s) {
  if (!smtpwire::detail::is_valid_utf8(s)) return false;
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return true;
}

/// Days since 1970-01-01 to a proleptic Gregorian civil date (the
/// era-of-400-years method).
constexpr void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

}  // namespace detail

/// The earliest and latest Unix times format_datetime accepts: years 0000..9999.
inline constexpr std::int64_t min_time = -62167219200;  // 0000-01-01T00:00:00Z
inline constexpr std::int64_t max_time = 253402300799;  // 9999-12-31T23:59:59Z

// RFC 3339 §5.6:  date-time = full-date "T" full-time
//   full-date = date-fullyear "-" date-month "-" date-mday
//   full-time = partial-time time-offset   (written here with offset "Z")
/// Appends `t` (Unix seconds) as "YYYY-MM-DDTHH:MM:SSZ". Returns
/// errc::tlsrpt_value_invalid (nothing appended) outside min_time..max_time.
inline errc format_datetime(std::string& out, std::int64_t t) {
  if (t < min_time || t > max_time) return errc::tlsrpt_value_invalid;
  std::int64_t days = t / 86400, secs = t % 86400;
  if (secs < 0) {
    secs += 86400;
    --days;
  }
  std::int64_t y = 0;
  unsigned mo = 0, d = 0;
  detail::civil_from_days(days, y, mo, d);
  char buf[20];
  auto put = [&buf](std::size_t at, std::int64_t v, std::size_t width) {
    for (std::size_t i = width; i-- > 0; v /= 10)
      buf[at + i] = static_cast<char>('0' + v % 10);
  };
  put(0, y, 4);
  buf[4] = '-';
  put(5, mo, 2);
  buf[7] = '-';
  put(8, d, 2);
  buf[10] = 'T';
  put(11, secs / 3600, 2);
  buf[13] = ':';
  put(14, secs / 60 % 60, 2);
  buf[16] = ':';
  put(17, secs % 60, 2);
  buf[19] = 'Z';
  out.append(buf, sizeof buf);
  return errc::ok;
}

namespace detail {

class json_writer {
 public:
  explicit json_writer(std::string& out) : out_(out) {}
  bool ok() const noexcept { return ok_; }
  void open(char c) {
    out_ += c;
    first_ = true;
  }
  void close(char c) {
    out_ += c;
    first_ = false;
  }
  void key(std::string_view k) {
    comma();
    ok_ = append_json_string(out_, k) && ok_;
    out_ += ':';
    first_ = true;
  }
  void string(std::string_view v) {
    comma();
    ok_ = append_json_string(out_, v) && ok_;
    first_ = false;
  }
  void number(std::uint64_t v) {
    comma();
    out_ += std::to_string(v);
    first_ = false;
  }
  void field(std::string_view k, std::string_view v) {
    key(k);
    string(v);
  }
  void optional_field(std::string_view k, std::string_view v) {
    if (!v.empty()) field(k, v);
  }
  void field(std::string_view k, std::uint64_t v) {
    key(k);
    number(v);
  }
  /// Before an element: a comma unless it is the first of its container or
  /// the value of a key.
  void comma() {
    if (!first_) out_ += ',';
    first_ = false;
  }

 private:
  std::string& out_;
  bool first_ = true;
  bool ok_ = true;
};

}  // namespace detail

// RFC 8460 §4.4: the report object, field names as registered there:
//   organization-name, date-range {start-datetime, end-datetime},
//   contact-info, report-id, policies [ {policy {policy-type, policy-string,
//   policy-domain, mx-host}, summary {total-successful-session-count,
//   total-failure-session-count}, failure-details [ {result-type,
//   sending-mta-ip, receiving-mx-hostname, receiving-mx-helo, receiving-ip,
//   failed-session-count, additional-information, failure-reason-code} ]} ]
/// Appends `r` as compact JSON (RFC 8259, no insignificant whitespace), keys
/// in the order above; "mx-host" is written as an array of strings (§4.4
/// describes it as the list of MX hosts; Appendix B's example showed a
/// single string until erratum 6241 made it an array, which is what
/// receivers such as mox parse), "policy-string" as an array of the policy's
/// lines, "receiving-mx-hostname" as a string, the date-range as RFC 3339
/// UTC date-times ("2016-04-01T00:00:00Z", as in Appendix B), and
/// "failure-details" only when non-empty. Returns
/// errc::tlsrpt_value_invalid and leaves `out` unchanged when a required
/// string is empty, a string is not well-formed UTF-8, `end` < `start`, a
/// time is outside min_time..max_time, or a policy's failure_details add up
/// to more than its total_failure_session_count.
inline errc write_report(std::string& out, const report& r) {
  if (r.organization_name.empty() || r.contact_info.empty() || r.report_id.empty() ||
      r.end < r.start)
    return errc::tlsrpt_value_invalid;
  std::string s;
  detail::json_writer w(s);
  w.open('{');
  w.field("organization-name", r.organization_name);
  w.key("date-range");
  w.open('{');
  w.key("start-datetime");
  w.comma();
  std::string t;
  if (format_datetime(t, r.start) != errc::ok) return errc::tlsrpt_value_invalid;
  s += '"' + t + '"';
  t.clear();
  w.key("end-datetime");
  w.comma();
  if (format_datetime(t, r.end) != errc::ok) return errc::tlsrpt_value_invalid;
  s += '"' + t + '"';
  w.close('}');
  w.field("contact-info", r.contact_info);
  w.field("report-id", r.report_id);
  w.key("policies");
  w.open('[');
  for (const auto& p : r.policies) {
    if (p.policy_domain.empty()) return errc::tlsrpt_value_invalid;
    std::uint64_t failed = 0;
    for (const auto& f : p.failure_details) {
      if (f.failed_session_count > p.total_failure_session_count - failed)
        return errc::tlsrpt_value_invalid;
      failed += f.failed_session_count;
    }
    w.comma();
    w.open('{');
    w.key("policy");
    w.open('{');
    w.field("policy-type", to_string(p.type));
    if (!p.policy_string.empty()) {
      w.key("policy-string");
      w.open('[');
      for (const auto& l : p.policy_string)
        w.string(l);
      w.close(']');
    }
    w.field("policy-domain", p.policy_domain);
    if (!p.mx_host.empty()) {
      w.key("mx-host");
      w.open('[');
      for (const auto& m : p.mx_host)
        w.string(m);
      w.close(']');
    }
    w.close('}');
    w.key("summary");
    w.open('{');
    w.field("total-successful-session-count", p.total_successful_session_count);
    w.field("total-failure-session-count", p.total_failure_session_count);
    w.close('}');
    if (!p.failure_details.empty()) {
      w.key("failure-details");
      w.open('[');
      for (const auto& f : p.failure_details) {
        w.comma();
        w.open('{');
        w.field("result-type", to_string(f.result));
        w.optional_field("sending-mta-ip", f.sending_mta_ip);
        w.optional_field("receiving-mx-hostname", f.receiving_mx_hostname);
        w.optional_field("receiving-mx-helo", f.receiving_mx_helo);
        w.optional_field("receiving-ip", f.receiving_ip);
        w.field("failed-session-count", f.failed_session_count);
        w.optional_field("additional-information", f.additional_information);
        w.optional_field("failure-reason-code", f.failure_reason_code);
        w.close('}');
      }
      w.close(']');
    }
    w.close('}');
  }
  w.close(']');
  w.close('}');
  if (!w.ok()) return errc::tlsrpt_value_invalid;
  out += s;
  return errc::ok;
}

}  // namespace smtpwire::tlsrpt

#endif  // SMTPWIRE_TLSRPT_HPP
