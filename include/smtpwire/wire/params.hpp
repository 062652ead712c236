// smtpwire — ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 grammar):
// SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET,
// ENVID, NOTIFY, ORCPT (RFC 3461), AUTH (RFC 4954 §5), REQUIRETLS
// (RFC 8689), MT-PRIORITY (RFC 6710), BY (RFC 2852), HOLDFOR and HOLDUNTIL
// (RFC 4865) and RRVS (RFC 7293) as typed, validated values; any other
// parameter is kept, unparsed, for the application.
//
// Input: the raw parameter text of a MAIL or RCPT command, i.e.
// wire::command::params (what follows the path after one SP, possibly
// empty). Everything returned is a view into that text and lives as long as
// it; nothing allocates.
//
// Decisions (strict by default):
// - Exactly one SP between parameters: a leading, trailing or doubled SP is
//   param_syntax, and so are "KEY=" (esmtp-value is 1*char), a keyword that
//   starts with '-', and any octet outside esmtp-value. Octets >= 0x80 in a
//   value are param_syntax unless param_options::utf8_values (RFC 6531 §3.3),
//   and then must be well-formed UTF-8.
// - Keywords and the enumerated values (BODY, RET, NOTIFY, the BY mode and
//   trace) match in any case (RFC 5321 §2.4); writers use upper case.
// - Any keyword given twice, in any case, is param_duplicate; unknown ones
//   included.
// - A MAIL parameter on RCPT, or a RCPT one on MAIL, is param_not_allowed.
// - Errors are reported for the first offending parameter, left to right; for
//   one parameter the order is: syntax, count limit, unknown (if refused),
//   not allowed here, duplicate, conflict (HOLDFOR / HOLDUNTIL), value.
// - SIZE: 1*20DIGIT (RFC 1870 §6); leading zeros are accepted within those 20
//   digits. A number above 2^64-1 is param_number_overflow (reply 552 5.3.4,
//   RFC 1870 §6.1), whatever its length; more than 20 digits that still fit
//   (leading zeros) are param_value_invalid.
// - ENVID (RFC 3461 §4.4) and AUTH (RFC 4954 §5) are kept as their raw,
//   validated xtext (decode with wire/xtext.hpp). AUTH's decoded mailbox is
//   not checked against RFC 5322 addr-spec here: that is the AUTH layer's
//   policy (it must ignore an AUTH= it does not trust, RFC 4954 §5).
// - ORCPT (RFC 3461 §4.2): addr-type is 1*atext; the address is non-empty
//   xtext. RFC 6533's UTF-8 address forms are not decoded (xtext only).
// - BY (RFC 2852 §4): by-time is ["-" / "+"] 1*9DIGIT and the ";" by-mode is
//   mandatory; in R mode the by-time must be positive (a message cannot be
//   returned "by now"). Comparing by-time with the server's min-by-time (R
//   mode) is the server's policy, not grammar, and is not done here.
// - HOLDFOR is 1*9DIGIT seconds, HOLDUNTIL an RFC 3339 date-time (checked
//   with is_date_time, kept as written); both in one MAIL is param_conflict
//   (RFC 4865 §3: 501). Comparing them with the server's FUTURERELEASE
//   limits is the server's policy.
// - RRVS (RFC 7293 §3): date-time [";" ("C" / "R")], the action in any case,
//   stored upper case.
// - Unknown parameters are kept as a view of the whole raw text that iterates
//   only the parameters with unknown keywords (unknown_params): no fixed
//   array, no limit beyond max_params, no allocation.
// - Whether a known parameter belongs to an extension the server actually
//   advertised (RFC 5321 §4.1.1.11: 555 otherwise) is the engine's check:
//   every known parameter is parsed here.
// - Writers append each parameter as SP KEYWORD["=" VALUE], so that their
//   output directly follows a path on a command line; parse the written text
//   from its second octet (wire::command::params never starts with SP).
#ifndef SMTPWIRE_WIRE_PARAMS_HPP
#define SMTPWIRE_WIRE_PARAMS_HPP

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"
#include "smtpwire/wire/xtext.hpp"

namespace smtpwire::wire {

/// The parameter keywords smtpwire knows.
enum class param_keyword : std::uint8_t {
  size,         ///< SIZE (RFC 1870), MAIL
  body,         ///< BODY (RFC 6152, RFC 3030), MAIL
  smtputf8,     ///< SMTPUTF8 (RFC 6531), MAIL
  ret,          ///< RET (RFC 3461), MAIL
  envid,        ///< ENVID (RFC 3461), MAIL
  auth,         ///< AUTH (RFC 4954 §5), MAIL
  requiretls,   ///< REQUIRETLS (RFC 8689), MAIL
  mt_priority,  ///< MT-PRIORITY (RFC 6710), MAIL
  by,           ///< BY (RFC 2852), MAIL
  notify,       ///< NOTIFY (RFC 3461), RCPT
  orcpt,        ///< ORCPT (RFC 3461), RCPT
  rrvs,         ///< RRVS (RFC 7293), RCPT
  holdfor,      ///< HOLDFOR (RFC 4865), MAIL
  holduntil,    ///< HOLDUNTIL (RFC 4865), MAIL
  unknown,      ///< any other keyword
};

/// The keyword as written by the writers ("SIZE", "MT-PRIORITY", …); "" for
/// unknown.
constexpr std::string_view to_string(param_keyword k) noexcept {
  switch (k) {
    case param_keyword::size:
      return "SIZE";
    case param_keyword::body:
      return "BODY";
    case param_keyword::smtputf8:
      return "SMTPUTF8";
    case param_keyword::ret:
      return "RET";
    case param_keyword::envid:
      return "ENVID";
    case param_keyword::auth:
      return "AUTH";
    case param_keyword::requiretls:
      return "REQUIRETLS";
    case param_keyword::mt_priority:
      return "MT-PRIORITY";
    case param_keyword::by:
      return "BY";
    case param_keyword::notify:
      return "NOTIFY";
    case param_keyword::orcpt:
      return "ORCPT";
    case param_keyword::rrvs:
      return "RRVS";
    case param_keyword::holdfor:
      return "HOLDFOR";
    case param_keyword::holduntil:
      return "HOLDUNTIL";
    case param_keyword::unknown:
      break;
  }
  return "";
}

/// The known keyword `keyword` names (any case), or param_keyword::unknown.
constexpr param_keyword classify_param_keyword(std::string_view keyword) noexcept {
  return detail::find_named<param_keyword>(keyword);
}

/// True for the keywords RCPT takes (NOTIFY, ORCPT, RRVS); the other known
/// ones are MAIL parameters.
constexpr bool is_rcpt_keyword(param_keyword k) noexcept {
  return k == param_keyword::notify || k == param_keyword::orcpt || k == param_keyword::rrvs;
}

// RFC 3339 §5.6:
//   date-fullyear   = 4DIGIT
//   date-month      = 2DIGIT  ; 01-12
//   date-mday       = 2DIGIT  ; 01-28, 01-29, 01-30, 01-31 based on month/year
//   time-hour       = 2DIGIT  ; 00-23
//   time-minute     = 2DIGIT  ; 00-59
//   time-second     = 2DIGIT  ; 00-58, 00-59, 00-60 based on leap second rules
//   time-secfrac    = "." 1*DIGIT
//   time-numoffset  = ("+" / "-") time-hour ":" time-minute
//   time-offset     = "Z" / time-numoffset
//   partial-time    = time-hour ":" time-minute ":" time-second [time-secfrac]
//   full-date       = date-fullyear "-" date-month "-" date-mday
//   full-time       = partial-time time-offset
//   date-time       = full-date "T" full-time
// "T" and "Z" may be lower case (§5.6 NOTE). Second 60 is accepted only
// where a leap second can fall: the last minute of a UTC day (§5.7), the
// offset taken into account; whether IERS inserted one then is not checked.
/// True when `s` is an RFC 3339 date-time, with real calendar dates (no
/// February 30, February 29 only in leap years) and in-range times.
constexpr bool is_date_time(std::string_view s) noexcept {
  const auto two_digits = [](std::string_view t, std::size_t i) {
    if (i + 2 > t.size() || t[i] < '0' || t[i] > '9' || t[i + 1] < '0' || t[i + 1] > '9') return -1;
    return (t[i] - '0') * 10 + (t[i + 1] - '0');
  };
  if (s.size() < 20) return false;  // "YYYY-MM-DDTHH:MM:SSZ"
  const int y1 = two_digits(s, 0), y2 = two_digits(s, 2);
  if (y1 < 0 || y2 < 0 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return false;
  const int year = y1 * 100 + y2;
  const int month = two_digits(s, 5), day = two_digits(s, 8);
  const int hour = two_digits(s, 11), minute = two_digits(s, 14), second = two_digits(s, 17);
  if (month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 60)
    return false;
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  constexpr int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (day > days[month - 1] + (month == 2 && leap ? 1 : 0)) return false;
  std::size_t i = 19;
  if (i < s.size() && s[i] == '.') {
    const std::size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      ++i;
    if (i == start) return false;
  }
  if (i == s.size()) return false;
  int offset = 0;  // minutes east of UTC
  if (s[i] == 'Z' || s[i] == 'z') {
    ++i;
  } else if (s[i] == '+' || s[i] == '-') {
    const int oh = two_digits(s, i + 1), om = two_digits(s, i + 4);
    if (oh < 0 || oh > 23 || om < 0 || om > 59 || i + 3 >= s.size() || s[i + 3] != ':')
      return false;
    offset = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
    i += 6;
  } else {
    return false;
  }
  if (i != s.size()) return false;
  if (second == 60) {
    const int utc = ((hour * 60 + minute - offset) % 1440 + 1440) % 1440;
    if (utc != 1439) return false;
  }
  return true;
}

/// One parameter as written. Both views point into the parsed text.
struct esmtp_param {
  std::string_view keyword;  ///< as written (compare with detail::iequals)
  std::string_view value;    ///< empty when there is no "=" value
  bool has_value = false;    ///< "KEY=value" rather than "KEY"
};

constexpr bool operator==(const esmtp_param& a, const esmtp_param& b) noexcept {
  return a.keyword == b.keyword && a.value == b.value && a.has_value == b.has_value;
}
constexpr bool operator!=(const esmtp_param& a, const esmtp_param& b) noexcept {
  return !(a == b);
}

/// Options of the parsers and writers. A writer given the same options as
/// the parser only writes what that parser accepts.
struct param_options {
  /// Accept UTF8-non-ascii in esmtp-value (RFC 6531 §3.3). Set it when the
  /// transaction uses SMTPUTF8; default false (octets >= 0x80 are
  /// param_syntax).
  bool utf8_values = false;
  /// Keep parameters with unknown keywords in `unknown` (true, the default)
  /// or refuse them with errc::param_unknown (555 5.5.4, RFC 5321 §4.1.1.11).
  bool allow_unknown = true;
  std::size_t max_params = 32;  ///< parameters per command; default 32, no RFC minimum
  std::size_t max_envid = 100;  ///< ENVID value octets; default 100, RFC 3461 §4.4 maximum 100
  std::size_t max_orcpt = 500;  ///< ORCPT value octets; default 500, RFC 3461 §4.2 maximum 500
};

// RFC 5321 §4.1.2:
//   Mail-parameters = esmtp-param *(SP esmtp-param)
//   esmtp-param     = esmtp-keyword ["=" esmtp-value]
//   esmtp-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
//   esmtp-value     = 1*(%d33-60 / %d62-126)
// RFC 6531 §3.3:  esmtp-value =/ UTF8-non-ascii  (under SMTPUTF8)
/// Reads raw parameter text one parameter at a time, without allocating:
/// `while (r.next(p)) …; if (r.error() != errc::ok) …`. Errors are sticky.
class param_reader {
 public:
  /// Reads `params` (no leading SP; may be empty); `utf8_values` as in
  /// param_options. The reader points into `params`.
  constexpr explicit param_reader(std::string_view params, bool utf8_values = false) noexcept
      : s_(params), utf8_(utf8_values) {}

  /// Reads the next parameter into `p`; false at the end or on an error.
  constexpr bool next(esmtp_param& p) noexcept {
    if (done_) return false;
    if (pos_ == s_.size()) {
      done_ = true;
      if (need_more_) error_ = errc::param_syntax;  // a trailing SP
      return false;
    }
    const std::size_t start = pos_;
    if (!detail::is(s_[pos_], detail::cc_alpha) && !detail::is(s_[pos_], detail::cc_digit))
      return fail();
    ++pos_;
    while (pos_ < s_.size() && (detail::is(s_[pos_], detail::cc_alpha) ||
                                detail::is(s_[pos_], detail::cc_digit) || s_[pos_] == '-'))
      ++pos_;
    esmtp_param q;
    q.keyword = s_.substr(start, pos_ - start);
    if (pos_ < s_.size() && s_[pos_] == '=') {
      const std::size_t vstart = ++pos_;
      while (pos_ < s_.size()) {
        const char c = s_[pos_];
        if (detail::is(c, detail::cc_esmtp_value)) {
          ++pos_;
        } else if (static_cast<unsigned char>(c) >= 0x80 && utf8_) {
          const std::size_t n = detail::utf8_sequence_length(s_.data() + pos_, s_.size() - pos_);
          if (n == 0) return fail();
          pos_ += n;
        } else {
          break;
        }
      }
      if (pos_ == vstart) return fail();
      q.value = s_.substr(vstart, pos_ - vstart);
      q.has_value = true;
    }
    need_more_ = false;
    if (pos_ < s_.size()) {
      if (s_[pos_] != ' ') return fail();
      ++pos_;
      need_more_ = true;
    }
    p = q;
    return true;
  }

  /// errc::ok, or errc::param_syntax once next() has met malformed text.
  constexpr errc error() const noexcept { return error_; }
  /// Offset in the text of the next unread octet (of the error, after one).
  constexpr std::size_t offset() const noexcept { return pos_; }

 private:
  constexpr bool fail() noexcept {
    done_ = true;
    error_ = errc::param_syntax;
    return false;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  bool utf8_ = false;
  bool need_more_ = false;
  bool done_ = false;
  errc error_ = errc::ok;
};

/// The parameters with unknown keywords among some raw parameter text: a
/// view of the whole text that iterates only those (known keywords are
/// skipped), in order, without allocating. Built by the parsers (then the
/// text is valid); an application may build one from its own text for the
/// writers, which check it. Iterating malformed text stops at the first
/// malformation.
class unknown_params {
 public:
  constexpr unknown_params() noexcept = default;
  /// A view of `raw` (parameter text as wire::command::params holds it).
  constexpr explicit unknown_params(std::string_view raw) noexcept : raw_(raw) {}

  /// A forward iterator over the unknown parameters.
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = esmtp_param;
    using difference_type = std::ptrdiff_t;
    using pointer = const esmtp_param*;
    using reference = const esmtp_param&;

    constexpr iterator() noexcept : reader_({}, true) {}
    constexpr reference operator*() const noexcept { return cur_; }
    constexpr pointer operator->() const noexcept { return &cur_; }
    constexpr iterator& operator++() noexcept {
      advance();
      return *this;
    }
    constexpr iterator operator++(int) noexcept {
      iterator t = *this;
      advance();
      return t;
    }
    friend constexpr bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.end_ == b.end_ && (a.end_ || a.reader_.offset() == b.reader_.offset());
    }
    friend constexpr bool operator!=(const iterator& a, const iterator& b) noexcept {
      return !(a == b);
    }

   private:
    friend class unknown_params;
    constexpr explicit iterator(std::string_view raw) noexcept : reader_(raw, true), end_(false) {
      advance();
    }
    constexpr void advance() noexcept {
      while (reader_.next(cur_))
        if (classify_param_keyword(cur_.keyword) == param_keyword::unknown) return;
      end_ = true;
      cur_ = {};
    }

    param_reader reader_;
    esmtp_param cur_;
    bool end_ = true;
  };

  constexpr iterator begin() const noexcept { return iterator(raw_); }
  constexpr iterator end() const noexcept { return iterator(); }
  /// True when no parameter has an unknown keyword.
  constexpr bool empty() const noexcept { return begin() == end(); }
  /// The number of unknown parameters.
  constexpr std::size_t size() const noexcept {
    std::size_t n = 0;
    for (auto it = begin(); it != end(); ++it)
      ++n;
    return n;
  }
  /// The unknown parameter named `keyword` (any case), if present.
  constexpr std::optional<esmtp_param> find(std::string_view keyword) const noexcept {
    for (const esmtp_param& p : *this)
      if (detail::iequals(p.keyword, keyword)) return p;
    return std::nullopt;
  }
  /// The whole raw text this view iterates (known parameters included).
  constexpr std::string_view raw() const noexcept { return raw_; }

 private:
  std::string_view raw_;
};

/// Equal when both iterate the same unknown parameters, byte for byte.
constexpr bool operator==(const unknown_params& a, const unknown_params& b) noexcept {
  auto i = a.begin(), j = b.begin();
  for (; i != a.end() && j != b.end(); ++i, ++j)
    if (*i != *j) return false;
  return i == a.end() && j == b.end();
}
constexpr bool operator!=(const unknown_params& a, const unknown_params& b) noexcept {
  return !(a == b);
}

/// BODY values.
enum class body_type : std::uint8_t {
  seven_bit,       ///< 7BIT (RFC 6152): US-ASCII lines of at most 998 octets, no NUL
  eight_bit_mime,  ///< 8BITMIME (RFC 6152): octets >= 0x80 in lines, no NUL
  binary_mime,     ///< BINARYMIME (RFC 3030; requires BDAT): any octets, any line length
};

/// The BODY parameter value for `b` ("7BIT", "8BITMIME", "BINARYMIME").
constexpr std::string_view to_string(body_type b) noexcept {
  switch (b) {
    case body_type::seven_bit:
      return "7BIT";
    case body_type::eight_bit_mime:
      return "8BITMIME";
    case body_type::binary_mime:
      return "BINARYMIME";
  }
  return "7BIT";
}

/// RET values (RFC 3461 §4.3).
enum class ret_type : std::uint8_t {
  full,  ///< FULL: return the whole message in a DSN
  hdrs,  ///< HDRS: return the headers only
};

/// The by-mode of BY (RFC 2852 §4).
enum class by_mode : std::uint8_t {
  notify,          ///< N: deliver late if need be, with a "delayed" DSN
  return_message,  ///< R: return the message if not delivered in time
};

/// A BY parameter (RFC 2852 §4).
struct deliver_by {
  /// Seconds from now; |time| <= 999999999; zero or negative only in N mode
  /// (RFC 2852 §4).
  std::int64_t time = 0;
  by_mode mode = by_mode::notify;
  bool trace = false;  ///< the "T" trace modifier
};

constexpr bool operator==(const deliver_by& a, const deliver_by& b) noexcept {
  return a.time == b.time && a.mode == b.mode && a.trace == b.trace;
}
constexpr bool operator!=(const deliver_by& a, const deliver_by& b) noexcept {
  return !(a == b);
}

/// NOTIFY flags (RFC 3461 §4.1), combined in rcpt_params::notify.
enum notify_flags : std::uint8_t {
  notify_never = 1u << 0,    ///< NEVER; only ever alone
  notify_success = 1u << 1,  ///< SUCCESS
  notify_failure = 1u << 2,  ///< FAILURE
  notify_delay = 1u << 3,    ///< DELAY
};

/// An ORCPT parameter (RFC 3461 §4.2). Views into the parsed text.
struct orcpt_param {
  std::string_view addr_type;  ///< e.g. "rfc822", as written (1*atext)
  std::string_view addr;       ///< the address, raw xtext (non-empty)
};

constexpr bool operator==(const orcpt_param& a, const orcpt_param& b) noexcept {
  return a.addr_type == b.addr_type && a.addr == b.addr;
}
constexpr bool operator!=(const orcpt_param& a, const orcpt_param& b) noexcept {
  return !(a == b);
}

/// An RRVS parameter (RFC 7293 §3). Views into the parsed text.
struct rrvs_param {
  std::string_view date_time;  ///< RFC 3339 date-time, as written
  char action = 0;             ///< 'R' reject, 'C' continue, 0 = none given
};

constexpr bool operator==(const rrvs_param& a, const rrvs_param& b) noexcept {
  return a.date_time == b.date_time && a.action == b.action;
}
constexpr bool operator!=(const rrvs_param& a, const rrvs_param& b) noexcept {
  return !(a == b);
}

/// The parameters of a MAIL command. An absent parameter is an empty
/// optional (false for SMTPUTF8 and REQUIRETLS). Views point into the parsed
/// text.
struct mail_params {
  std::optional<std::uint64_t> size;      ///< SIZE, in octets
  std::optional<body_type> body;          ///< BODY
  bool smtputf8 = false;                  ///< SMTPUTF8 given
  std::optional<ret_type> ret;            ///< RET
  std::optional<std::string_view> envid;  ///< ENVID, raw xtext (<= max_envid octets)
  std::optional<std::string_view> auth;   ///< AUTH, raw xtext; "<>" for "no identity"
  bool requiretls = false;                ///< REQUIRETLS given
  std::optional<int> mt_priority;         ///< MT-PRIORITY, -9..9
  std::optional<deliver_by> by;           ///< BY
  /// HOLDFOR (RFC 4865): seconds to hold the message, 0..999999999.
  std::optional<std::uint32_t> holdfor;
  /// HOLDUNTIL (RFC 4865): RFC 3339 date-time as written (is_date_time).
  std::optional<std::string_view> holduntil;
  unknown_params unknown;  ///< parameters with other keywords
};

constexpr bool operator==(const mail_params& a, const mail_params& b) noexcept {
  return a.size == b.size && a.body == b.body && a.smtputf8 == b.smtputf8 && a.ret == b.ret &&
         a.envid == b.envid && a.auth == b.auth && a.requiretls == b.requiretls &&
         a.mt_priority == b.mt_priority && a.by == b.by && a.holdfor == b.holdfor &&
         a.holduntil == b.holduntil && a.unknown == b.unknown;
}
constexpr bool operator!=(const mail_params& a, const mail_params& b) noexcept {
  return !(a == b);
}

/// The parameters of a RCPT command. Views point into the parsed text.
struct rcpt_params {
  /// NOTIFY as notify_flags bits; 0 when NOTIFY is absent.
  std::uint8_t notify = 0;
  std::optional<orcpt_param> orcpt;  ///< ORCPT
  std::optional<rrvs_param> rrvs;    ///< RRVS
  unknown_params unknown;            ///< parameters with other keywords
};

constexpr bool operator==(const rcpt_params& a, const rcpt_params& b) noexcept {
  return a.notify == b.notify && a.orcpt == b.orcpt && a.rrvs == b.rrvs && a.unknown == b.unknown;
}
constexpr bool operator!=(const rcpt_params& a, const rcpt_params& b) noexcept {
  return !(a == b);
}

}  // namespace smtpwire::wire

namespace smtpwire::detail::params_impl {

constexpr int digit(char c) noexcept {
  return c >= '0' && c <= '9' ? c - '0' : -1;
}

// RFC 1870 §6:  size-value ::= 1*20DIGIT
constexpr errc parse_size(std::string_view v, std::uint64_t& out) noexcept {
  if (v.empty()) return errc::param_value_invalid;
  std::uint64_t r = 0;
  bool overflow = false;
  for (char c : v) {
    const int d = digit(c);
    if (d < 0) return errc::param_value_invalid;
    if (r > (UINT64_MAX - static_cast<std::uint64_t>(d)) / 10) overflow = true;
    if (!overflow) r = r * 10 + static_cast<std::uint64_t>(d);
  }
  if (overflow) return errc::param_number_overflow;
  if (v.size() > 20) return errc::param_value_invalid;
  out = r;
  return errc::ok;
}

// RFC 6152 §3 / RFC 3030 §3:  body-value ::= "7BIT" / "8BITMIME" / "BINARYMIME"
constexpr errc parse_body(std::string_view v, wire::body_type& out) noexcept {
  if (iequals(v, "7BIT")) {
    out = wire::body_type::seven_bit;
  } else if (iequals(v, "8BITMIME")) {
    out = wire::body_type::eight_bit_mime;
  } else if (iequals(v, "BINARYMIME")) {
    out = wire::body_type::binary_mime;
  } else {
    return errc::param_value_invalid;
  }
  return errc::ok;
}

constexpr std::string_view body_name(wire::body_type b) noexcept {
  switch (b) {
    case wire::body_type::seven_bit:
      return "7BIT";
    case wire::body_type::eight_bit_mime:
      return "8BITMIME";
    case wire::body_type::binary_mime:
      return "BINARYMIME";
  }
  return "";
}

// RFC 3461 §4.3:  ret-value = "FULL" / "HDRS"
constexpr errc parse_ret(std::string_view v, wire::ret_type& out) noexcept {
  if (iequals(v, "FULL")) {
    out = wire::ret_type::full;
  } else if (iequals(v, "HDRS")) {
    out = wire::ret_type::hdrs;
  } else {
    return errc::param_value_invalid;
  }
  return errc::ok;
}

constexpr std::string_view ret_name(wire::ret_type r) noexcept {
  switch (r) {
    case wire::ret_type::full:
      return "FULL";
    case wire::ret_type::hdrs:
      return "HDRS";
  }
  return "";
}

// RFC 6710 (the MT-PRIORITY MAIL parameter):
//   priority-value = ( ["-"] %x31-39 ) / "0"   ; -9 .. 9
constexpr errc parse_mt_priority(std::string_view v, int& out) noexcept {
  if (v == "0") {
    out = 0;
    return errc::ok;
  }
  const bool neg = !v.empty() && v[0] == '-';
  const std::string_view d = neg ? v.substr(1) : v;
  if (d.size() != 1 || d[0] < '1' || d[0] > '9') return errc::param_value_invalid;
  out = neg ? -(d[0] - '0') : d[0] - '0';
  return errc::ok;
}

inline constexpr std::int64_t by_time_max = 999999999;  // 9 digits, RFC 2852 §4

// RFC 2852 §4:
//   by-value ::= by-time ";" by-mode [ by-trace ]
//   by-time  ::= [ "-" / "+" ] 1*9digit
//   by-mode  ::= "N" / "R"
//   by-trace ::= "T"
constexpr errc parse_by(std::string_view v, wire::deliver_by& out) noexcept {
  std::size_t i = 0;
  bool neg = false;
  if (i < v.size() && (v[i] == '-' || v[i] == '+')) neg = v[i++] == '-';
  const std::size_t digits_at = i;
  std::int64_t t = 0;
  while (i < v.size() && digit(v[i]) >= 0) {
    if (i - digits_at == 9) return errc::param_value_invalid;
    t = t * 10 + digit(v[i++]);
  }
  if (i == digits_at || i == v.size() || v[i] != ';') return errc::param_value_invalid;
  ++i;
  if (i == v.size()) return errc::param_value_invalid;
  const char m = ascii_lower(v[i++]);
  if (m != 'n' && m != 'r') return errc::param_value_invalid;
  bool trace = false;
  if (i < v.size()) {
    if (ascii_lower(v[i++]) != 't') return errc::param_value_invalid;
    trace = true;
  }
  if (i != v.size()) return errc::param_value_invalid;
  // RFC 2852 §4: a by-time of zero or less is only meaningful in N mode; the
  // message cannot be returned before it was sent.
  if (m == 'r' && (neg || t == 0)) return errc::param_value_invalid;
  out.time = neg ? -t : t;
  out.mode = m == 'r' ? wire::by_mode::return_message : wire::by_mode::notify;
  out.trace = trace;
  return errc::ok;
}

inline constexpr std::uint32_t holdfor_max = 999999999;  // 9 digits, RFC 4865 §3

// RFC 4865 §3:  holdfor-value = 1*9DIGIT
constexpr errc parse_holdfor(std::string_view v, std::uint32_t& out) noexcept {
  if (v.empty() || v.size() > 9) return errc::param_value_invalid;
  std::uint32_t n = 0;
  for (char c : v) {
    if (digit(c) < 0) return errc::param_value_invalid;
    n = n * 10 + static_cast<std::uint32_t>(digit(c));
  }
  out = n;
  return errc::ok;
}

// RFC 7293 §3:  rrvs-param = "RRVS=" date-time [ ";" ( "C" / "R" ) ]
constexpr errc parse_rrvs(std::string_view v, wire::rrvs_param& out) noexcept {
  const std::size_t semi = v.find(';');
  const std::string_view when = v.substr(0, semi);
  if (!wire::is_date_time(when)) return errc::param_value_invalid;
  char action = 0;
  if (semi != std::string_view::npos) {
    if (v.size() != semi + 2) return errc::param_value_invalid;
    const char a = ascii_lower(v[semi + 1]);
    if (a != 'c' && a != 'r') return errc::param_value_invalid;
    action = a == 'c' ? 'C' : 'R';
  }
  out.date_time = when;
  out.action = action;
  return errc::ok;
}

// RFC 3461 §4.1:
//   notify-esmtp-value  = "NEVER" / 1#notify-list-element
//   notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"
// "NEVER" stands alone; no list element twice. The list is comma-separated
// without spaces or empty elements (esmtp-value has no SP).
constexpr errc parse_notify(std::string_view v, std::uint8_t& out) noexcept {
  std::uint8_t flags = 0;
  std::size_t at = 0;
  for (;;) {
    const std::size_t comma = v.find(',', at);
    const std::string_view e =
        v.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at);
    std::uint8_t bit = 0;
    if (iequals(e, "NEVER")) {
      bit = wire::notify_never;
    } else if (iequals(e, "SUCCESS")) {
      bit = wire::notify_success;
    } else if (iequals(e, "FAILURE")) {
      bit = wire::notify_failure;
    } else if (iequals(e, "DELAY")) {
      bit = wire::notify_delay;
    } else {
      return errc::notify_invalid;
    }
    if (flags & bit) return errc::notify_invalid;
    flags = static_cast<std::uint8_t>(flags | bit);
    if (comma == std::string_view::npos) break;
    at = comma + 1;
  }
  if ((flags & wire::notify_never) && flags != wire::notify_never) return errc::notify_invalid;
  out = flags;
  return errc::ok;
}

/// True when `n` is a NOTIFY value the writer may write.
constexpr bool valid_notify(std::uint8_t n) noexcept {
  if (n == wire::notify_never) return true;
  return n != 0 && (n & ~(wire::notify_success | wire::notify_failure | wire::notify_delay)) == 0;
}

constexpr bool is_atom(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is(c, cc_atext)) return false;
  return true;
}

// RFC 3461 §4.2:
//   orcpt-parameter = "ORCPT=" original-recipient-address
//   original-recipient-address = addr-type ";" xtext
//   addr-type = atom
constexpr errc parse_orcpt(std::string_view v, std::size_t max, wire::orcpt_param& out) noexcept {
  const std::size_t semi = v.find(';');
  if (semi == std::string_view::npos || !is_atom(v.substr(0, semi)))
    return errc::param_value_invalid;
  const std::string_view addr = v.substr(semi + 1);
  if (const errc e = wire::validate_xtext(addr); e != errc::ok) return e;
  if (addr.empty() || v.size() > max) return errc::param_value_invalid;
  out.addr_type = v.substr(0, semi);
  out.addr = addr;
  return errc::ok;
}

/// Checks an xtext-valued parameter (ENVID, AUTH): non-empty xtext of at
/// most `max` octets.
constexpr errc check_xtext_value(std::string_view v, std::size_t max) noexcept {
  if (const errc e = wire::validate_xtext(v); e != errc::ok) return e;
  if (v.empty() || v.size() > max) return errc::param_value_invalid;
  return errc::ok;
}

/// True when an earlier parameter of `s` (before offset `before`) has the
/// keyword `kw` (any case). Bounded by max_params readings.
constexpr bool seen_before(std::string_view s, std::size_t before, std::string_view kw) noexcept {
  wire::param_reader r(s, true);
  wire::esmtp_param p;
  while (r.next(p) && static_cast<std::size_t>(p.keyword.data() - s.data()) < before)
    if (iequals(p.keyword, kw)) return true;
  return false;
}

/// Parses `s` as MAIL (rcpt == false) or RCPT parameters into `m` or `r`.
constexpr errc parse(std::string_view s, const wire::param_options& o, bool rcpt,
                     wire::mail_params* m, wire::rcpt_params* r) noexcept {
  wire::param_reader reader(s, o.utf8_values);
  wire::esmtp_param p;
  std::size_t count = 0;
  std::uint32_t seen = 0;
  while (reader.next(p)) {
    if (++count > o.max_params) return errc::param_too_many;
    const wire::param_keyword k = wire::classify_param_keyword(p.keyword);
    if (k == wire::param_keyword::unknown) {
      if (!o.allow_unknown) return errc::param_unknown;
      if (seen_before(s, static_cast<std::size_t>(p.keyword.data() - s.data()), p.keyword))
        return errc::param_duplicate;
      continue;
    }
    if (wire::is_rcpt_keyword(k) != rcpt) return errc::param_not_allowed;
    const std::uint32_t bit = 1u << static_cast<unsigned>(k);
    if (seen & bit) return errc::param_duplicate;
    seen |= bit;
    // RFC 4865 §3: HOLDFOR and HOLDUNTIL exclude each other.
    constexpr std::uint32_t hold = (1u << static_cast<unsigned>(wire::param_keyword::holdfor)) |
                                   (1u << static_cast<unsigned>(wire::param_keyword::holduntil));
    if ((seen & hold) == hold) return errc::param_conflict;
    const std::string_view v = p.value;
    // Parameters with a value require one; SMTPUTF8 and REQUIRETLS forbid it.
    const bool valueless =
        k == wire::param_keyword::smtputf8 || k == wire::param_keyword::requiretls;
    if (p.has_value == valueless)
      return k == wire::param_keyword::notify ? errc::notify_invalid : errc::param_value_invalid;
    errc e = errc::ok;
    switch (k) {
      case wire::param_keyword::size: {
        std::uint64_t n = 0;
        e = parse_size(v, n);
        if (e == errc::ok) m->size = n;
        break;
      }
      case wire::param_keyword::body: {
        wire::body_type b{};
        e = parse_body(v, b);
        if (e == errc::ok) m->body = b;
        break;
      }
      case wire::param_keyword::smtputf8:
        m->smtputf8 = true;
        break;
      case wire::param_keyword::ret: {
        wire::ret_type t{};
        e = parse_ret(v, t);
        if (e == errc::ok) m->ret = t;
        break;
      }
      case wire::param_keyword::envid:
        e = check_xtext_value(v, o.max_envid);
        if (e == errc::ok) m->envid = v;
        break;
      case wire::param_keyword::auth:
        // RFC 4954 §5: auth-param = "AUTH=" xtext ; an xtext addr-spec or "<>"
        e = check_xtext_value(v, v.size());
        if (e == errc::ok) m->auth = v;
        break;
      case wire::param_keyword::requiretls:
        m->requiretls = true;
        break;
      case wire::param_keyword::mt_priority: {
        int n = 0;
        e = parse_mt_priority(v, n);
        if (e == errc::ok) m->mt_priority = n;
        break;
      }
      case wire::param_keyword::by: {
        wire::deliver_by b;
        e = parse_by(v, b);
        if (e == errc::ok) m->by = b;
        break;
      }
      case wire::param_keyword::notify:
        e = parse_notify(v, r->notify);
        break;
      case wire::param_keyword::orcpt: {
        wire::orcpt_param x;
        e = parse_orcpt(v, o.max_orcpt, x);
        if (e == errc::ok) r->orcpt = x;
        break;
      }
      case wire::param_keyword::rrvs: {
        wire::rrvs_param x;
        e = parse_rrvs(v, x);
        if (e == errc::ok) r->rrvs = x;
        break;
      }
      case wire::param_keyword::holdfor: {
        std::uint32_t n = 0;
        e = parse_holdfor(v, n);
        if (e == errc::ok) m->holdfor = n;
        break;
      }
      case wire::param_keyword::holduntil:
        e = wire::is_date_time(v) ? errc::ok : errc::param_value_invalid;
        if (e == errc::ok) m->holduntil = v;
        break;
      case wire::param_keyword::unknown:
        break;
    }
    if (e != errc::ok) return e;
  }
  return reader.error();
}

/// Appends the decimal digits of `v`.
inline void append_signed(std::string& out, std::int64_t v) {
  char digits[20];
  int n = 0;
  const bool neg = v < 0;
  std::uint64_t u = neg ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (neg) out.push_back('-');
  while (n > 0)
    out.push_back(digits[--n]);
}

inline void append_unsigned(std::string& out, std::uint64_t u) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  while (n > 0)
    out.push_back(digits[--n]);
}

inline void append_param(std::string& out, std::string_view keyword, std::string_view value) {
  out.push_back(' ');
  out.append(keyword);
  if (!value.empty()) out.append("=").append(value);
}

/// Checks the unknown parameters and appends them; `known` parameters have
/// been written already and count towards max_params.
inline errc write_unknown(std::string& out, const wire::unknown_params& u, std::size_t known,
                          const wire::param_options& o) {
  wire::param_reader reader(u.raw(), o.utf8_values);
  wire::esmtp_param p;
  std::size_t count = known;
  while (reader.next(p)) {
    if (wire::classify_param_keyword(p.keyword) != wire::param_keyword::unknown) continue;
    if (++count > o.max_params) return errc::param_too_many;
    if (!o.allow_unknown) return errc::param_unknown;
    for (const wire::esmtp_param& q : u) {
      if (q.keyword.data() == p.keyword.data()) break;
      if (iequals(q.keyword, p.keyword)) return errc::param_duplicate;
    }
    out.push_back(' ');
    out.append(p.keyword);
    if (p.has_value) out.append("=").append(p.value);
  }
  return reader.error();
}

}  // namespace smtpwire::detail::params_impl

namespace smtpwire::wire {

// RFC 5321 §4.1.1.2:  mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
// RFC 5321 §4.1.2:    Mail-parameters = esmtp-param *(SP esmtp-param)
/// Parses the parameters of a MAIL command (`params` as
/// wire::command::params holds it: no leading SP, possibly empty). Errors:
/// param_syntax, param_too_many, param_unknown (only when
/// !o.allow_unknown), param_not_allowed (NOTIFY, ORCPT, RRVS),
/// param_duplicate, param_conflict (HOLDFOR with HOLDUNTIL),
/// param_value_invalid, param_number_overflow (SIZE > 2^64-1),
/// xtext_invalid (ENVID, AUTH). The result's views point into `params`.
[[nodiscard]] inline result<mail_params> parse_mail_params(std::string_view params,
                                                           const param_options& o = {}) noexcept {
  mail_params m;
  if (const errc e = detail::params_impl::parse(params, o, false, &m, nullptr); e != errc::ok)
    return e;
  m.unknown = unknown_params(params);
  return m;
}

// RFC 5321 §4.1.1.3:  rcpt = "RCPT TO:" ( ... / Forward-path ) [SP Rcpt-parameters] CRLF
// RFC 5321 §4.1.2:    Rcpt-parameters = esmtp-param *(SP esmtp-param)
/// Parses the parameters of a RCPT command (see parse_mail_params). Errors
/// as there, plus notify_invalid, and param_not_allowed for every MAIL
/// parameter; xtext_invalid for ORCPT; param_value_invalid for an RRVS
/// outside date-time [";" ("C" / "R")].
[[nodiscard]] inline result<rcpt_params> parse_rcpt_params(std::string_view params,
                                                           const param_options& o = {}) noexcept {
  rcpt_params r;
  if (const errc e = detail::params_impl::parse(params, o, true, nullptr, &r); e != errc::ok)
    return e;
  r.unknown = unknown_params(params);
  return r;
}

/// Appends the parameters of `m` to `out`, each as SP KEYWORD["=" VALUE]:
/// appended right after a MAIL path it completes the command line, and the
/// text after its first octet is what parse_mail_params reads (an empty set
/// appends nothing). Order: SIZE BODY SMTPUTF8 RET ENVID AUTH REQUIRETLS
/// MT-PRIORITY BY HOLDFOR HOLDUNTIL, then the unknown parameters as
/// written. Returns the error parse_mail_params would give for the result
/// under `o` (e.g. xtext_invalid for a bad ENVID, param_value_invalid for
/// MT-PRIORITY=12, an empty AUTH, BY=0;R, HOLDFOR above 999999999 or a
/// HOLDUNTIL that is no date-time, param_conflict for HOLDFOR with
/// HOLDUNTIL, param_duplicate for unknown keywords given twice), in which
/// case nothing is appended. Known keywords inside m.unknown.raw() are skipped.
[[nodiscard]] inline errc write_mail_params(std::string& out, const mail_params& m,
                                            const param_options& o = {}) {
  namespace impl = detail::params_impl;
  if (m.envid)
    if (const errc e = impl::check_xtext_value(*m.envid, o.max_envid); e != errc::ok) return e;
  if (m.auth)
    if (const errc e = impl::check_xtext_value(*m.auth, m.auth->size()); e != errc::ok) return e;
  if (m.mt_priority && (*m.mt_priority < -9 || *m.mt_priority > 9))
    return errc::param_value_invalid;
  if (m.body && impl::body_name(*m.body).empty()) return errc::param_value_invalid;
  if (m.ret && impl::ret_name(*m.ret).empty()) return errc::param_value_invalid;
  if (m.by && (m.by->time < -impl::by_time_max || m.by->time > impl::by_time_max ||
               (m.by->mode != by_mode::notify && m.by->mode != by_mode::return_message) ||
               (m.by->mode == by_mode::return_message && m.by->time <= 0)))
    return errc::param_value_invalid;
  if (m.holdfor && *m.holdfor > impl::holdfor_max) return errc::param_value_invalid;
  if (m.holduntil && !is_date_time(*m.holduntil)) return errc::param_value_invalid;
  if (m.holdfor && m.holduntil) return errc::param_conflict;
  const std::size_t known = (m.size ? 1 : 0) + (m.body ? 1 : 0) + (m.smtputf8 ? 1 : 0) +
                            (m.ret ? 1 : 0) + (m.envid ? 1 : 0) + (m.auth ? 1 : 0) +
                            (m.requiretls ? 1 : 0) + (m.mt_priority ? 1 : 0) + (m.by ? 1 : 0) +
                            (m.holdfor ? 1 : 0) + (m.holduntil ? 1 : 0);
  if (known > o.max_params) return errc::param_too_many;
  const std::size_t at = out.size();
  if (m.size) {
    out.append(" SIZE=");
    impl::append_unsigned(out, *m.size);
  }
  if (m.body) impl::append_param(out, "BODY", impl::body_name(*m.body));
  if (m.smtputf8) impl::append_param(out, "SMTPUTF8", {});
  if (m.ret) impl::append_param(out, "RET", impl::ret_name(*m.ret));
  if (m.envid) impl::append_param(out, "ENVID", *m.envid);
  if (m.auth) impl::append_param(out, "AUTH", *m.auth);
  if (m.requiretls) impl::append_param(out, "REQUIRETLS", {});
  if (m.mt_priority) {
    out.append(" MT-PRIORITY=");
    impl::append_signed(out, *m.mt_priority);
  }
  if (m.by) {
    out.append(" BY=");
    impl::append_signed(out, m.by->time);
    out.append(m.by->mode == by_mode::return_message ? ";R" : ";N");
    if (m.by->trace) out.push_back('T');
  }
  if (m.holdfor) {
    out.append(" HOLDFOR=");
    impl::append_unsigned(out, *m.holdfor);
  }
  if (m.holduntil) impl::append_param(out, "HOLDUNTIL", *m.holduntil);
  if (const errc e = impl::write_unknown(out, m.unknown, known, o); e != errc::ok) {
    out.resize(at);
    return e;
  }
  return errc::ok;
}

/// Appends the parameters of `r` to `out` (conventions of
/// write_mail_params): NOTIFY (flags written SUCCESS,FAILURE,DELAY), ORCPT,
/// RRVS, then the unknown parameters. Returns notify_invalid for a flag set
/// that is not NEVER alone or a non-empty subset of the others; for ORCPT,
/// param_value_invalid (addr-type not an atom, empty address, too long) or
/// xtext_invalid; for RRVS, param_value_invalid (not a date-time, or an
/// action other than 0, 'C', 'R'); nothing is appended on error.
[[nodiscard]] inline errc write_rcpt_params(std::string& out, const rcpt_params& r,
                                            const param_options& o = {}) {
  namespace impl = detail::params_impl;
  if (r.notify != 0 && !impl::valid_notify(r.notify)) return errc::notify_invalid;
  if (r.orcpt) {
    if (!impl::is_atom(r.orcpt->addr_type)) return errc::param_value_invalid;
    if (const errc e = validate_xtext(r.orcpt->addr); e != errc::ok) return e;
    if (r.orcpt->addr.empty() || r.orcpt->addr_type.size() + 1 + r.orcpt->addr.size() > o.max_orcpt)
      return errc::param_value_invalid;
  }
  if (r.rrvs && (!is_date_time(r.rrvs->date_time) ||
                 (r.rrvs->action != 0 && r.rrvs->action != 'C' && r.rrvs->action != 'R')))
    return errc::param_value_invalid;
  const std::size_t known = (r.notify ? 1 : 0) + (r.orcpt ? 1 : 0) + (r.rrvs ? 1 : 0);
  if (known > o.max_params) return errc::param_too_many;
  const std::size_t at = out.size();
  if (r.notify) {
    out.append(" NOTIFY=");
    if (r.notify == notify_never) {
      out.append("NEVER");
    } else {
      bool first = true;
      const auto add = [&](std::uint8_t bit, std::string_view name) {
        if (!(r.notify & bit)) return;
        if (!first) out.push_back(',');
        out.append(name);
        first = false;
      };
      add(notify_success, "SUCCESS");
      add(notify_failure, "FAILURE");
      add(notify_delay, "DELAY");
    }
  }
  if (r.orcpt) {
    out.append(" ORCPT=").append(r.orcpt->addr_type).append(";").append(r.orcpt->addr);
  }
  if (r.rrvs) {
    out.append(" RRVS=").append(r.rrvs->date_time);
    if (r.rrvs->action != 0) out.push_back(';');
    if (r.rrvs->action != 0) out.push_back(r.rrvs->action);
  }
  if (const errc e = impl::write_unknown(out, r.unknown, known, o); e != errc::ok) {
    out.resize(at);
    return e;
  }
  return errc::ok;
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_PARAMS_HPP
