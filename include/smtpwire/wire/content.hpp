// smtpwire — message content policy: what a message needs from the server
// (8BITMIME, BINARYMIME with CHUNKING, SMTPUTF8), so that a client can pick
// DATA or BDAT and the BODY parameter, and refuse to send content the server
// did not agree to carry.
//
// Theory of operation. content_scanner reads a message once (streaming, any
// chunking) and records a content_profile: 8-bit octets (RFC 6152), NUL,
// bare CR / bare LF, the longest line (RFC 5322 §2.1.1 and RFC 5321
// §4.5.3.1.6 cap text lines at 998 octets plus CRLF) and 8-bit octets in the
// header section (RFC 6532 headers, which need SMTPUTF8, RFC 6531 §3.1).
// required_body() turns a profile into the BODY value the content needs
// (RFC 1652/6152 8BITMIME, RFC 3030 BINARYMIME); plan_transfer() matches that
// against what the server's EHLO offered.
#ifndef SMTPWIRE_WIRE_CONTENT_HPP
#define SMTPWIRE_WIRE_CONTENT_HPP

#include <smtpwire/error.hpp>
#include <smtpwire/wire/params.hpp>  // body_type

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace smtpwire::wire {

/// Longest text line in octets, CRLF excluded (RFC 5322 §2.1.1; RFC 5321
/// §4.5.3.1.6 gives 1000 with CRLF). Longer lines need BINARYMIME.
inline constexpr std::uint64_t max_text_line = 998;  ///< fixed by RFC 5322 §2.1.1

/// What a message contains, as far as transport is concerned. Line ends are
/// counted as a normalising encoder writes them: CRLF, a bare LF and a bare
/// CR each end one line.
struct content_profile {
  std::uint64_t octets = 0;           ///< octets of the message
  std::uint64_t lines = 0;            ///< line ends
  std::uint64_t longest_line = 0;     ///< octets of the longest line, line end excluded
  bool eight_bit = false;             ///< an octet >= 0x80
  bool nul = false;                   ///< a NUL octet
  bool bare_cr = false;               ///< a CR not followed by LF
  bool bare_lf = false;               ///< an LF not preceded by CR
  bool eight_bit_in_headers = false;  ///< an octet >= 0x80 before the first empty line
  bool ends_with_line_end = false;    ///< the last octets are a line end (or the message is empty)

  friend bool operator==(const content_profile& a, const content_profile& b) noexcept {
    return a.octets == b.octets && a.lines == b.lines && a.longest_line == b.longest_line &&
           a.eight_bit == b.eight_bit && a.nul == b.nul && a.bare_cr == b.bare_cr &&
           a.bare_lf == b.bare_lf && a.eight_bit_in_headers == b.eight_bit_in_headers &&
           a.ends_with_line_end == b.ends_with_line_end;
  }
  friend bool operator!=(const content_profile& a, const content_profile& b) noexcept {
    return !(a == b);
  }
};

/// Builds a content_profile from a message fed in any chunking (the result
/// does not depend on the chunking). Allocates nothing.
class content_scanner {
 public:
  /// Scans the next octets of the message.
  void feed(std::string_view s) noexcept {
    const char* p = s.data();
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
      const auto c = static_cast<unsigned char>(p[i]);
      if (pending_cr_) {
        pending_cr_ = false;
        if (c == '\n') {
          ++i;
          ++p_.octets;
          line_end();
          continue;
        }
        p_.bare_cr = true;
        line_end();
      }
      if (c == '\r') {
        pending_cr_ = true;
        ++p_.octets;
        ++i;
        continue;
      }
      if (c == '\n') {
        p_.bare_lf = true;
        ++p_.octets;
        ++i;
        line_end();
        continue;
      }
      // A run of line content.
      std::size_t j = i;
      unsigned char acc = 0;
      bool nul = false;
      while (j < n && p[j] != '\r' && p[j] != '\n') {
        const auto u = static_cast<unsigned char>(p[j]);
        acc |= u;
        nul |= u == 0;
        ++j;
      }
      const std::size_t run = j - i;
      p_.octets += run;
      line_ += run;
      if (nul) p_.nul = true;
      if (acc & 0x80) {
        p_.eight_bit = true;
        if (in_headers_) p_.eight_bit_in_headers = true;
      }
      i = j;
    }
  }

  /// The profile of everything fed so far, as if the message ended here (a
  /// trailing CR counts as bare; the scanner can go on being fed).
  content_profile profile() const noexcept {
    content_profile r = p_;
    if (pending_cr_) {
      r.bare_cr = true;
      ++r.lines;
    }
    if (line_ > r.longest_line) r.longest_line = line_;
    r.ends_with_line_end = r.octets == 0 || pending_cr_ || line_ == 0;
    return r;
  }

 private:
  void line_end() noexcept {
    ++p_.lines;
    if (line_ > p_.longest_line) p_.longest_line = line_;
    if (line_ == 0) in_headers_ = false;  // RFC 5322 §2.1: an empty line ends the header
    line_ = 0;
  }

  content_profile p_{};
  std::uint64_t line_ = 0;  // octets of the current line so far
  bool pending_cr_ = false;
  bool in_headers_ = true;
};

/// The profile of a whole message in memory.
inline content_profile scan_content(std::string_view message) noexcept {
  content_scanner s;
  s.feed(message);
  return s.profile();
}

/// The BODY the content needs. With `normalize_line_ends` (the DATA encoder's
/// default) bare CR and LF will be sent as CRLF and do not force BINARYMIME;
/// NUL and lines over 998 octets always do.
constexpr body_type required_body(const content_profile& p,
                                  bool normalize_line_ends = true) noexcept {
  if (p.nul || p.longest_line > max_text_line || (!normalize_line_ends && (p.bare_cr || p.bare_lf)))
    return body_type::binary_mime;
  return p.eight_bit ? body_type::eight_bit_mime : body_type::seven_bit;
}

/// What the server's EHLO reply offered (RFC 6152, RFC 3030, RFC 6531).
struct server_offer {
  bool eight_bit_mime = false;  ///< 8BITMIME
  bool binary_mime = false;     ///< BINARYMIME
  bool chunking = false;        ///< CHUNKING (BDAT)
  bool smtputf8 = false;        ///< SMTPUTF8
};

/// The client's wishes.
struct transfer_preferences {
  bool prefer_bdat = false;         ///< use BDAT whenever CHUNKING is offered; default false
  bool normalize_line_ends = true;  ///< send bare CR/LF as CRLF (DATA encoder); default true
};

/// How to send a message: the command, BODY and SMTPUTF8, or why not.
struct transfer_plan {
  errc error = errc::ok;                  ///< data_*_not_offered when the server cannot carry it
  bool use_bdat = false;                  ///< BDAT (RFC 3030) instead of DATA
  body_type body = body_type::seven_bit;  ///< the BODY= to declare on MAIL
  bool smtputf8 = false;                  ///< declare SMTPUTF8 on MAIL (RFC 6531 §3.4)
};

/// Chooses DATA or BDAT and the BODY for content `p` sent to a server that
/// offered `offer`:
///  - content needing BINARYMIME goes by BDAT with BODY=BINARYMIME, and
///    fails with errc::data_binary_not_offered unless BINARYMIME and
///    CHUNKING were both offered;
///  - 8-bit content needs 8BITMIME (or, failing that, BINARYMIME+CHUNKING),
///    else errc::data_8bit_not_offered (RFC 6152 §3: a client must not send
///    8-bit data to a server that did not offer it);
///  - 8-bit headers need SMTPUTF8, else errc::data_smtputf8_not_offered;
///  - otherwise BDAT when preferred and offered — except when line ends need
///    normalising, which only the DATA encoder does.
constexpr transfer_plan plan_transfer(const content_profile& p, const server_offer& offer,
                                      transfer_preferences prefs = {}) noexcept {
  transfer_plan t;
  t.body = required_body(p, prefs.normalize_line_ends);
  const bool binary_ok = offer.binary_mime && offer.chunking;
  if (t.body == body_type::binary_mime) {
    if (!binary_ok) {
      t.error = errc::data_binary_not_offered;
      return t;
    }
    t.use_bdat = true;
  } else if (t.body == body_type::eight_bit_mime && !offer.eight_bit_mime) {
    if (!binary_ok) {
      t.error = errc::data_8bit_not_offered;
      return t;
    }
    t.body = body_type::binary_mime;
    t.use_bdat = true;
  }
  if (p.eight_bit_in_headers) {
    if (!offer.smtputf8) {
      t.error = errc::data_smtputf8_not_offered;
      return t;
    }
    t.smtputf8 = true;
  }
  if (t.body != body_type::binary_mime && prefs.prefer_bdat && offer.chunking &&
      !(p.bare_cr || p.bare_lf))
    t.use_bdat = true;
  return t;
}

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_CONTENT_HPP
