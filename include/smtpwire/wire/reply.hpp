// smtpwire — SMTP replies: enhanced status codes (RFC 3463, RFC 2034), an
// incremental multi-line reply reader (RFC 5321 §4.2) built on the line
// framing of wire/line.hpp, a reply value type, and writers that fold long
// text into lines of at most 512 octets (RFC 5321 §4.5.3.1.5).
//
// Theory of operation.
//
// Reading. reply_reader takes the server's byte stream in any chunking and
// yields one complete reply per call as a reply_view: the code, the raw
// validated lines and an iterator over them (text and enhanced code of each
// line). A reply whose lines all arrive inside one input is returned without
// copying (the view points into that input); a reply spread over several
// inputs is assembled in the reader's reply buffer, allocated once by the
// constructor (max_reply_bytes octets) and never grown. Every limit is checked
// before anything is stored, so an endless line or an endless reply costs at
// most max_line_length + max_reply_bytes octets.
//
// Errors are fatal and sticky: a client that cannot parse the server's
// reply no longer knows which command the server is answering, so after the
// first error read() consumes nothing and returns that error again until
// reset(). The session should be closed: an SMTP client "MUST determine its
// actions only by the reply code" (RFC 5321 §4.2), and it no longer has one.
//
// Writing. The value type `reply` holds a code, an optional enhanced status
// code and text lines. write_reply writes each text line as one reply line
// when it fits in max_line_length (512 by default: code, marker, enhanced
// code, text and CRLF) and folds longer lines into several, breaking after
// the last space that fits or, when there is none, between octets (never
// inside a UTF-8 sequence when avoidable). The enhanced code is repeated on
// every line (RFC 2034 §4). Round trip: parse_reply(write_reply(x)) ==
// fold_reply(x), and fold_reply(x) == x whenever no line needed folding;
// concatenating the pieces of a folded line gives back the line exactly (the
// space a line was folded at ends the earlier piece).
#ifndef SMTPWIRE_WIRE_REPLY_HPP
#define SMTPWIRE_WIRE_REPLY_HPP

#include <smtpwire/error.hpp>
#include <smtpwire/wire/line.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpwire {
namespace wire {

// ---------------------------------------------------------------------------
// Enhanced status codes
// ---------------------------------------------------------------------------

/// An enhanced mail system status code class.subject.detail (RFC 3463 §2),
/// e.g. 2.1.5. Valid when cls is 2, 4 or 5 and subject and detail are at
/// most 999.
struct enhanced_code {
  std::uint16_t cls = 2;      ///< 2 success, 4 persistent transient, 5 permanent
  std::uint16_t subject = 0;  ///< 0..999
  std::uint16_t detail = 0;   ///< 0..999

  friend constexpr bool operator==(const enhanced_code& a, const enhanced_code& b) noexcept {
    return a.cls == b.cls && a.subject == b.subject && a.detail == b.detail;
  }
  friend constexpr bool operator!=(const enhanced_code& a, const enhanced_code& b) noexcept {
    return !(a == b);
  }
};

/// True when `e` can be written: class 2, 4 or 5, subject and detail <= 999.
constexpr bool is_valid(const enhanced_code& e) noexcept {
  return (e.cls == 2 || e.cls == 4 || e.cls == 5) && e.subject <= 999 && e.detail <= 999;
}

}  // namespace wire

namespace detail {

// One sub-code: 1*3digit "without leading zero digits" (RFC 3463 §2), so "0"
// is valid and "00", "01" are not.
constexpr bool match_enhanced_subcode(std::string_view s, std::size_t& pos,
                                      std::uint16_t& out) noexcept {
  const std::size_t start = pos;
  unsigned v = 0;
  while (pos < s.size() && pos - start < 4 && s[pos] >= '0' && s[pos] <= '9') {
    v = v * 10 + static_cast<unsigned>(s[pos] - '0');
    ++pos;
  }
  const std::size_t len = pos - start;
  if (len == 0 || len > 3) return false;
  if (len > 1 && s[start] == '0') return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

// The enhanced code at the start of `s`; returns its length, 0 when `s` does
// not start with one.
constexpr std::size_t match_enhanced_code(std::string_view s, wire::enhanced_code& out) noexcept {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return 0;
  wire::enhanced_code e;
  e.cls = static_cast<std::uint16_t>(s[0] - '0');
  std::size_t pos = 2;
  if (!match_enhanced_subcode(s, pos, e.subject)) return 0;
  if (pos >= s.size() || s[pos] != '.') return 0;
  ++pos;
  if (!match_enhanced_subcode(s, pos, e.detail)) return 0;
  out = e;
  return pos;
}

// The enhanced code of a reply line's text, as a reader recognises it: a code
// of the reply's class followed by SP or the end of the text (RFC 2034 §4).
// Returns the offset of the remaining text (the one SP after the code is
// skipped), 0 when the text does not start with such a code.
constexpr std::size_t reply_line_enhanced(std::string_view text, int reply_class,
                                          wire::enhanced_code& out) noexcept {
  wire::enhanced_code e;
  const std::size_t n = match_enhanced_code(text, e);
  if (n == 0 || static_cast<int>(e.cls) != reply_class) return 0;
  if (n == text.size()) {
    out = e;
    return n;
  }
  if (text[n] != ' ') return 0;
  out = e;
  return n + 1;
}

// Writes `e` (valid) into `buf` (at least 9 octets); returns its length.
inline std::size_t format_enhanced_code(const wire::enhanced_code& e, char* buf) noexcept {
  std::size_t n = 0;
  buf[n++] = static_cast<char>('0' + e.cls);
  for (unsigned v : {static_cast<unsigned>(e.subject), static_cast<unsigned>(e.detail)}) {
    buf[n++] = '.';
    if (v >= 100) buf[n++] = static_cast<char>('0' + v / 100);
    if (v >= 10) buf[n++] = static_cast<char>('0' + v / 10 % 10);
    buf[n++] = static_cast<char>('0' + v % 10);
  }
  return n;
}

// Index of the first octet of p[0..n) outside textstring (RFC 5321 §4.2:
// HT and %d32-126), octets >= 0x80 being accepted when allow_high is set; n
// when there is none. Never reads outside p[0..n).
inline std::size_t find_reply_text_stop(const char* p, std::size_t n, bool allow_high) noexcept {
  std::size_t i = 0;
#ifdef SMTPWIRE_LINE_SSE2
  const __m128i zero = _mm_setzero_si128();
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i tab = _mm_set1_epi8(0x09);
  const __m128i del = _mm_set1_epi8(0x7f);
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i high = _mm_cmplt_epi8(v, zero);  // signed: octets >= 0x80
    __m128i bad = _mm_andnot_si128(high, _mm_cmplt_epi8(v, space));
    bad = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), bad);
    bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, del));
    if (!allow_high) bad = _mm_or_si128(bad, high);
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(bad));
    if (mask != 0) return i + static_cast<std::size_t>(__builtin_ctz(mask));
  }
#endif
  for (; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c >= 0x80 ? !allow_high : ((c < 0x20 && c != 0x09) || c == 0x7f)) return i;
  }
  return n;
}

}  // namespace detail

namespace wire {

/// Parses a whole string as an enhanced status code (RFC 3463 §2):
///
///     status-code = class "." subject "." detail
///     class       = "2" / "4" / "5"
///     subject     = 1*3digit
///     detail      = 1*3digit
///
/// No white space, and "each numeric sub-code ... MUST be expressed without
/// leading zero digits" ("0" is fine, "00" and "01" are not). Returns
/// errc::enhanced_code_invalid otherwise.
inline result<enhanced_code> parse_enhanced_code(std::string_view s) noexcept {
  enhanced_code e;
  if (detail::match_enhanced_code(s, e) != s.size() || s.empty())
    return errc::enhanced_code_invalid;
  return e;
}

/// Appends `e` as class.subject.detail; errc::enhanced_code_invalid (nothing
/// appended) when !is_valid(e).
[[nodiscard]] inline errc write_enhanced_code(std::string& out, const enhanced_code& e) {
  if (!is_valid(e)) return errc::enhanced_code_invalid;
  char buf[9];
  out.append(buf, detail::format_enhanced_code(e, buf));
  return errc::ok;
}

// ---------------------------------------------------------------------------
// Reply codes
// ---------------------------------------------------------------------------

/// True for a reply code the grammar allows (RFC 5321 §4.2):
///
///     Reply-code = %x32-35 %x30-35 %x30-39
///
/// i.e. first digit 2-5, second 0-5, third 0-9.
constexpr bool is_valid_reply_code(int code) noexcept {
  return code >= 200 && code <= 559 && (code / 10) % 10 <= 5;
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// One line of a reply as the reader sees it. Views are valid as long as the
/// reply_view they come from.
struct reply_line {
  /// The text after the code, the marker ("-" or SP) and, when present, the
  /// enhanced code and the one SP after it. Empty for "250" CRLF.
  std::string_view text;
  /// Everything after the code and the marker, enhanced code included.
  std::string_view full_text;
  /// The line's enhanced status code: recognised when the text starts with
  /// class.subject.detail of the reply's own class, followed by SP or the
  /// end of the line (RFC 2034 §4: "All status codes returned by the server
  /// must agree with the primary response code"). A code of another class,
  /// or with leading zeros, is left in `text`.
  std::optional<enhanced_code> enhanced;
};

/// A complete, validated reply (RFC 5321 §4.2). A view: valid until the next
/// call on the reply_reader that returned it, and no longer than the input
/// given to that call (it may point into it).
class reply_view {
 public:
  /// Iterates the lines of a reply, first to last (a forward iterator).
  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = reply_line;
    using difference_type = std::ptrdiff_t;
    using pointer = const reply_line*;
    using reference = const reply_line&;

    const_iterator() = default;
    reference operator*() const noexcept { return cur_; }
    pointer operator->() const noexcept { return &cur_; }
    const_iterator& operator++() noexcept {
      pos_ = next_;
      load();
      return *this;
    }
    const_iterator operator++(int) noexcept {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) noexcept {
      return a.pos_ == b.pos_;
    }
    friend bool operator!=(const const_iterator& a, const const_iterator& b) noexcept {
      return a.pos_ != b.pos_;
    }

   private:
    friend class reply_view;
    const_iterator(const char* pos, const char* end, int reply_class) noexcept
        : pos_(pos), end_(end), class_(reply_class) {
      load();
    }
    void load() noexcept {
      if (pos_ == end_) return;
      // Validated lines contain no CR, LF or NUL but their CRLF terminator.
      const std::size_t left = static_cast<std::size_t>(end_ - pos_);
      const char* cr = pos_ + detail::scan_line(pos_, left, left, false).stop;
      const std::string_view line(pos_, static_cast<std::size_t>(cr - pos_));
      next_ = cr + 2;
      cur_.full_text = line.size() > 3 ? line.substr(4) : std::string_view();
      enhanced_code e;
      const std::size_t skip = detail::reply_line_enhanced(cur_.full_text, class_, e);
      cur_.text = cur_.full_text.substr(skip);
      if (skip != 0)
        cur_.enhanced = e;
      else
        cur_.enhanced.reset();
    }
    const char* pos_ = nullptr;
    const char* end_ = nullptr;
    const char* next_ = nullptr;
    int class_ = 0;
    reply_line cur_;
  };

  reply_view() = default;

  /// The reply code, 200..559 (see is_valid_reply_code); 0 for an empty view.
  int code() const noexcept { return code_; }
  /// Number of lines, at least 1 for a reply the reader returned.
  std::size_t size() const noexcept { return lines_; }
  /// The reply as received: every line with its code, marker and CRLF.
  std::string_view raw() const noexcept { return raw_; }
  const_iterator begin() const noexcept {
    return const_iterator(raw_.data(), raw_.data() + raw_.size(), code_ / 100);
  }
  const_iterator end() const noexcept {
    return const_iterator(raw_.data() + raw_.size(), raw_.data() + raw_.size(), code_ / 100);
  }
  /// The first line (the whole reply when it has one line).
  reply_line front() const noexcept { return *begin(); }
  /// The enhanced status code of the first line, when it carries one.
  std::optional<enhanced_code> enhanced() const noexcept { return front().enhanced; }

  /// 2yz or 3yz (RFC 5321 §4.2.1: positive completion or intermediate).
  bool is_positive() const noexcept { return code_ >= 200 && code_ < 400; }
  /// 2yz: the requested action has been successfully completed.
  bool is_positive_completion() const noexcept { return code_ / 100 == 2; }
  /// 3yz: accepted, the server waits for more (e.g. 354 after DATA).
  bool is_positive_intermediate() const noexcept { return code_ / 100 == 3; }
  /// 4yz: transient negative completion; the client may try again later.
  bool is_transient() const noexcept { return code_ / 100 == 4; }
  /// 5yz: permanent negative completion; do not repeat the same request.
  bool is_permanent() const noexcept { return code_ / 100 == 5; }

 private:
  friend class reply_reader;
  reply_view(std::string_view raw, int code, std::size_t lines) noexcept
      : raw_(raw), code_(code), lines_(lines) {}
  std::string_view raw_;
  int code_ = 0;
  std::size_t lines_ = 0;
};

/// Limits and switches of a reply_reader.
struct reply_options {
  /// Longest reply line in octets, code and CRLF included; values below 5
  /// ("250" CRLF) are treated as 5. RFC 5321 §4.5.3.1.5 caps reply lines at
  /// 512 octets, so 512 is the least a client must accept; servers in the
  /// wild send longer lines (long 5xx explanations, vendor banners), and a
  /// client cannot recover from a reply it refuses, so the default is
  /// Postfix's line_length_limit, 2048: four times the RFC cap, still small.
  std::size_t max_line_length = 2048;  ///< default 2048; RFC 5321 minimum 512
  /// Most lines in one reply. RFC 5321 sets no limit; real EHLO replies have
  /// 10-30 lines and HELP replies a few dozen.
  std::size_t max_lines = 256;  ///< default 256; no RFC minimum
  /// Most octets in one reply, CRLFs included; the size of the reply buffer.
  /// RFC 5321 sets no limit.
  std::size_t max_reply_bytes = 16384;  ///< default 16 KiB; no RFC minimum
  /// Whether octets >= 0x80 may appear in reply text. RFC 5321's textstring
  /// is US-ASCII, but SMTPUTF8 servers (RFC 6531) and localised servers send
  /// UTF-8 text; it is never interpreted here. Off: errc::eight_bit_byte.
  bool allow_8bit_text = true;  ///< default true
};

/// What one call of reply_reader::read produced.
enum class reply_status : unsigned char {
  need_more,  ///< every input octet was consumed and no reply is complete yet
  reply,      ///< reply_result::reply holds a complete reply
  error,      ///< reply_result::error; the reader stays in this error
};

/// The result of reply_reader::read.
struct reply_result {
  /// Octets of the input consumed; the caller passes the rest next time.
  std::size_t consumed = 0;
  reply_status status = reply_status::need_more;
  /// The reply (status == reply); see reply_view for its lifetime.
  reply_view reply;
  /// The error (status == error), errc::ok otherwise.
  errc error = errc::ok;
};

/// An incremental reader of SMTP replies (RFC 5321 §4.2), strict and
/// bounded, split-invariant. Not thread-safe; one per client connection.
///
/// Grammar (RFC 5321 §4.2):
///
///     Reply-line = *( Reply-code "-" [ textstring ] CRLF )
///                  Reply-code [ SP textstring ] CRLF
///     Reply-code = %x32-35 %x30-35 %x30-39
///     textstring = 1*(%d09 / %d32-126) ; HT, SP, Printable US-ASCII
///
/// Every line must carry the first line's code (errc::reply_code_mismatch).
/// A last line "250" CRLF or "250 " CRLF (as Postfix's smtp-sink sends) has
/// empty text: clients "SHOULD be prepared to process the code alone (with or
/// without a trailing space character)" (RFC 5321 §4.2). Errors, in the order they are
/// checked on each line: the framing errors of line_reader (bare_cr, bare_lf,
/// nul_byte, line_too_long), reply_code_invalid (fewer than three octets, or
/// not a Reply-code: 199, 600, 2x0), reply_code_mismatch, reply_syntax (the
/// code followed by neither SP, "-" nor CRLF, or a control octet in the
/// text), eight_bit_byte (when allow_8bit_text is off), then
/// reply_too_many_lines and reply_too_long for the reply so far.
///
/// Typical loop (client side):
///
///     while (!in.empty()) {
///       reply_result r = reader.read(in);
///       in.remove_prefix(r.consumed);
///       if (r.status == reply_status::need_more) break;
///       if (r.status == reply_status::error) return close_session(r.error);
///       handle(r.reply);  // valid until the next read()
///     }
class reply_reader {
 public:
  /// A reader with the given limits; allocates its line buffer
  /// (max_line_length octets) and its reply buffer (max_reply_bytes octets)
  /// once, here.
  explicit reply_reader(reply_options opt = {})
      : opt_(normalized(opt)),
        lines_(line_options{opt_.max_line_length, true}),
        buf_(new char[opt_.max_reply_bytes]) {}

  /// Consumes octets of `input` until one reply or one error is complete, or
  /// the input is exhausted (need_more). Returns at most one reply; the
  /// caller calls again with the rest of its input. After an error, returns
  /// that error again, consuming nothing, until reset(). A call invalidates
  /// the reply returned by the previous call.
  reply_result read(std::string_view input) noexcept;

  /// True when no partial reply is held (between replies). A client checks
  /// it, and that the input is used up, after the 220 reply to STARTTLS: any
  /// further byte was sent before TLS and is a response injection attempt
  /// (CVE-2011-0411 and kin; Poddebniak et al., USENIX Security 2021).
  bool idle() const noexcept {
    return error_ == errc::ok && lines_.idle() && (count_ == 0 || returned_);
  }

  /// The sticky error, errc::ok when none has happened.
  errc error() const noexcept { return error_; }

  /// Back to the initial state (a new connection, or after TLS starts):
  /// forgets any partial reply and the sticky error. Keeps the buffers.
  void reset() noexcept {
    lines_.reset();
    error_ = errc::ok;
    count_ = 0;
    bytes_ = 0;
    used_ = 0;
    code_ = 0;
    returned_ = false;
  }

  /// The limits in force (after normalisation).
  const reply_options& options() const noexcept { return opt_; }

  /// Octets the reader has allocated (line buffer + reply buffer); never
  /// more than max_line_length + max_reply_bytes, whatever the input.
  std::size_t buffer_capacity() const noexcept {
    return lines_.buffer_capacity() + opt_.max_reply_bytes;
  }

 private:
  static reply_options normalized(reply_options o) noexcept {
    if (o.max_line_length < 5) o.max_line_length = 5;
    if (o.max_lines < 1) o.max_lines = 1;
    if (o.max_reply_bytes < 5) o.max_reply_bytes = 5;
    return o;
  }

  reply_result fail(std::size_t consumed, errc e) noexcept {
    error_ = e;
    reply_result r;
    r.consumed = consumed;
    r.status = reply_status::error;
    r.error = e;
    return r;
  }

  void store(const char* p, std::size_t n) noexcept {
    std::memcpy(buf_.get() + used_, p, n);
    used_ += n;
  }

  // Checks one line against the reply grammar; sets code_ for a first line.
  errc check_line(const line_result& lr, bool& last) noexcept;

  reply_options opt_;
  line_reader lines_;
  std::unique_ptr<char[]> buf_;
  errc error_ = errc::ok;
  std::size_t count_ = 0;  // lines of the current reply so far
  std::size_t bytes_ = 0;  // octets of the current reply so far, CRLFs included
  std::size_t used_ = 0;   // octets of the current reply held in buf_
  int code_ = 0;           // the current reply's code
  bool returned_ = false;  // the last call returned a reply; start afresh
};

inline errc reply_reader::check_line(const line_result& lr, bool& last) noexcept {
  const std::string_view line = lr.line;
  if (line.size() < 3) return errc::reply_code_invalid;
  const char d0 = line[0], d1 = line[1], d2 = line[2];
  if (d0 < '2' || d0 > '5' || d1 < '0' || d1 > '5' || d2 < '0' || d2 > '9')
    return errc::reply_code_invalid;
  const int code = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
  if (count_ != 0 && code != code_) return errc::reply_code_mismatch;
  code_ = code;
  if (line.size() == 3) {
    last = true;
    return errc::ok;
  }
  if (line[3] == ' ')
    last = true;
  else if (line[3] == '-')
    last = false;
  else
    return errc::reply_syntax;
  // The line reader's scan already says whether the text needs a closer look.
  if (!lr.has_control && (opt_.allow_8bit_text || !lr.has_8bit)) return errc::ok;
  const std::size_t bad =
      detail::find_reply_text_stop(line.data() + 4, line.size() - 4, opt_.allow_8bit_text);
  if (bad != line.size() - 4)
    return static_cast<unsigned char>(line[4 + bad]) >= 0x80 ? errc::eight_bit_byte
                                                             : errc::reply_syntax;
  return errc::ok;
}

inline reply_result reply_reader::read(std::string_view input) noexcept {
  if (error_ != errc::ok) return fail(0, error_);
  if (returned_) {
    count_ = 0;
    bytes_ = 0;
    used_ = 0;
    returned_ = false;
  }
  // Lines of this reply that lie, contiguous, in this input and are not yet
  // copied to buf_: [held_begin, held_end).
  const char* held_begin = nullptr;
  const char* held_end = nullptr;
  std::size_t pos = 0;
  for (;;) {
    const line_result lr = lines_.read(input.substr(pos));
    pos += lr.consumed;
    if (lr.status == line_status::need_more) {
      // The input goes away after this call: keep what the reply has so far.
      if (held_begin != nullptr) store(held_begin, static_cast<std::size_t>(held_end - held_begin));
      reply_result r;
      r.consumed = pos;
      return r;
    }
    if (lr.status == line_status::error) return fail(pos, lr.error);
    bool last = false;
    const errc e = check_line(lr, last);
    if (e != errc::ok) return fail(pos, e);
    ++count_;
    bytes_ += lr.line.size() + 2;
    if (count_ > opt_.max_lines) return fail(pos, errc::reply_too_many_lines);
    if (bytes_ > opt_.max_reply_bytes) return fail(pos, errc::reply_too_long);
    if (lr.in_input && used_ == 0) {
      if (held_begin == nullptr) held_begin = lr.line.data();
      held_end = lr.line.data() + lr.line.size() + 2;  // the CRLF is in the input too
    } else {
      store(lr.line.data(), lr.line.size());
      store("\r\n", 2);
    }
    if (last) {
      reply_result r;
      r.consumed = pos;
      r.status = reply_status::reply;
      const std::string_view raw =
          held_begin != nullptr
              ? std::string_view(held_begin, static_cast<std::size_t>(held_end - held_begin))
              : std::string_view(buf_.get(), used_);
      r.reply = reply_view(raw, code_, count_);
      returned_ = true;
      return r;
    }
  }
}

// ---------------------------------------------------------------------------
// Values and writing
// ---------------------------------------------------------------------------

/// A reply as a value: what a server sends, what a client keeps.
struct reply {
  int code = 250;                         ///< see is_valid_reply_code
  std::optional<enhanced_code> enhanced;  ///< repeated on every line when set
  std::vector<std::string> lines;         ///< at least one; text only (no code)

  /// 2yz or 3yz (RFC 5321 §4.2.1).
  bool is_positive() const noexcept { return code >= 200 && code < 400; }
  /// 4yz.
  bool is_transient() const noexcept { return code / 100 == 4; }
  /// 5yz.
  bool is_permanent() const noexcept { return code / 100 == 5; }

  friend bool operator==(const reply& a, const reply& b) {
    return a.code == b.code && a.enhanced == b.enhanced && a.lines == b.lines;
  }
  friend bool operator!=(const reply& a, const reply& b) { return !(a == b); }
};

/// The value of a parsed reply. When every line carries the same enhanced
/// code it becomes `enhanced` and the lines hold the text after it;
/// otherwise `enhanced` is empty and the lines hold their full text (codes
/// included). Allocates.
inline reply to_reply(const reply_view& v) {
  reply r;
  r.code = v.code();
  bool uniform = true;
  for (const reply_line& l : v) {
    if (!l.enhanced || (r.enhanced && *r.enhanced != *l.enhanced)) {
      uniform = false;
      break;
    }
    r.enhanced = l.enhanced;
  }
  if (!uniform) r.enhanced.reset();
  r.lines.reserve(v.size());
  for (const reply_line& l : v)
    r.lines.emplace_back(uniform ? l.text : l.full_text);
  return r;
}

/// Parses exactly one complete reply that fills `wire` (see reply_reader for
/// the grammar and errors); errc::reply_syntax when `wire` ends inside the
/// reply or continues after it. Allocates the reader's buffers and the value.
inline result<reply> parse_reply(std::string_view wire, const reply_options& opt = {}) {
  reply_reader reader(opt);
  const reply_result r = reader.read(wire);
  if (r.status == reply_status::error) return r.error;
  if (r.status == reply_status::need_more || r.consumed != wire.size()) return errc::reply_syntax;
  return to_reply(r.reply);
}

/// Options of the reply writers.
struct reply_write_options {
  /// Longest line written, code, marker, enhanced code and CRLF included;
  /// longer text is folded. RFC 5321 §4.5.3.1.5 allows at most 512.
  std::size_t max_line_length = 512;  ///< default 512; RFC 5321 maximum 512
};

}  // namespace wire

namespace detail {

// Octets of `text` that go on the next line when at most `budget` (>= 1)
// fit: all of it when it fits, else through the last space that fits, else
// `budget` octets moved back to a UTF-8 sequence start when that is near.
inline std::size_t reply_fold_piece(std::string_view text, std::size_t budget) noexcept {
  if (text.size() <= budget) return text.size();
  for (std::size_t k = budget; k-- > 0;)
    if (text[k] == ' ') return k + 1;
  std::size_t cut = budget;
  for (int back = 0; back < 3 && cut > 1 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80;
       ++back)
    --cut;
  return cut;
}

// Checks a reply before it is written or folded; sets the text budget per
// line. Refuses: an invalid code (reply_code_invalid), an invalid enhanced
// code or one whose class differs from the code's (enhanced_code_invalid), no
// line or a line length too small for any text (api_value_invalid), text
// outside textstring + 8-bit, such as CR, LF or NUL (reply_text_invalid), and
// text that would read back as an enhanced code on every line when none is
// given (reply_text_invalid: pass it in `enhanced` instead).
template <class It>
errc check_reply_lines(int code, const std::optional<wire::enhanced_code>& enh, It first, It last,
                       const wire::reply_write_options& opt, std::size_t& budget) {
  if (!wire::is_valid_reply_code(code)) return errc::reply_code_invalid;
  std::size_t overhead = 3 + 1 + 2;
  if (enh) {
    if (!wire::is_valid(*enh) || static_cast<int>(enh->cls) != code / 100)
      return errc::enhanced_code_invalid;
    char buf[9];
    overhead += format_enhanced_code(*enh, buf) + 1;
  }
  if (first == last || opt.max_line_length <= overhead) return errc::api_value_invalid;
  budget = opt.max_line_length - overhead;
  for (It it = first; it != last; ++it) {
    const std::string_view t(*it);
    if (find_reply_text_stop(t.data(), t.size(), true) != t.size()) return errc::reply_text_invalid;
  }
  if (enh) return errc::ok;
  std::optional<wire::enhanced_code> common;
  for (It it = first; it != last; ++it) {
    std::string_view rest(*it);
    do {
      const std::string_view piece = rest.substr(0, reply_fold_piece(rest, budget));
      rest.remove_prefix(piece.size());
      wire::enhanced_code e;
      if (reply_line_enhanced(piece, code / 100, e) == 0 || (common && *common != e))
        return errc::ok;
      common = e;
    } while (!rest.empty());
  }
  return errc::reply_text_invalid;
}

}  // namespace detail

namespace wire {

/// Appends a reply with one or more text lines (e.g. an EHLO reply: the
/// domain, then one keyword per line). `[first, last)` is a forward range of
/// values convertible to std::string_view. Each line longer than fits in
/// opt.max_line_length is folded (see the top of this header); the enhanced
/// code, when given, starts every line. Nothing is appended on error; errors
/// as listed for fold_reply. RFC 5321 §4.2:
///
///     Reply-line = *( Reply-code "-" [ textstring ] CRLF )
///                  Reply-code [ SP textstring ] CRLF
///
/// An empty last line is written "250" CRLF, an empty other line "250-" CRLF.
template <class It>
[[nodiscard]] errc write_reply_lines(std::string& out, int code,
                                     const std::optional<enhanced_code>& enh, It first, It last,
                                     const reply_write_options& opt = {}) {
  std::size_t budget = 0;
  const errc e = detail::check_reply_lines(code, enh, first, last, opt, budget);
  if (e != errc::ok) return e;
  char prefix[3 + 1 + 9];
  prefix[0] = static_cast<char>('0' + code / 100);
  prefix[1] = static_cast<char>('0' + code / 10 % 10);
  prefix[2] = static_cast<char>('0' + code % 10);
  const std::size_t enh_len = enh ? detail::format_enhanced_code(*enh, prefix + 4) : 0;
  for (It it = first; it != last; ++it) {
    std::string_view rest(*it);
    const bool last_line = std::next(it) == last;
    do {
      const std::string_view piece = rest.substr(0, detail::reply_fold_piece(rest, budget));
      rest.remove_prefix(piece.size());
      const bool final_piece = last_line && rest.empty();
      prefix[3] = final_piece ? ' ' : '-';
      if (enh) {
        out.append(prefix, 4 + enh_len);
        if (!piece.empty()) out += ' ';
      } else if (!piece.empty() || !final_piece) {
        out.append(prefix, 4);
      } else {
        out.append(prefix, 3);
      }
      out.append(piece.data(), piece.size());
      out.append("\r\n", 2);
    } while (!rest.empty());
  }
  return errc::ok;
}

/// write_reply_lines for a braced list of lines:
/// `write_reply_lines(out, 250, std::nullopt, {"mx.example", "PIPELINING"})`.
[[nodiscard]] inline errc write_reply_lines(std::string& out, int code,
                                            const std::optional<enhanced_code>& enh,
                                            std::initializer_list<std::string_view> lines,
                                            const reply_write_options& opt = {}) {
  return write_reply_lines(out, code, enh, lines.begin(), lines.end(), opt);
}

/// Appends `r` (see write_reply_lines).
[[nodiscard]] inline errc write_reply(std::string& out, const reply& r,
                                      const reply_write_options& opt = {}) {
  return write_reply_lines(out, r.code, r.enhanced, r.lines.begin(), r.lines.end(), opt);
}

/// Appends a reply of one text, folded when long: "221 Bye" CRLF.
[[nodiscard]] inline errc write_reply(std::string& out, int code, std::string_view text,
                                      const reply_write_options& opt = {}) {
  return write_reply_lines(out, code, std::nullopt, &text, &text + 1, opt);
}

/// Appends a reply of one text with an enhanced code on every line:
/// "250 2.1.0 Ok" CRLF.
[[nodiscard]] inline errc write_reply(std::string& out, int code, const enhanced_code& enh,
                                      std::string_view text, const reply_write_options& opt = {}) {
  return write_reply_lines(out, code, std::optional<enhanced_code>(enh), &text, &text + 1, opt);
}

/// The value that parse_reply(write_reply(r, opt)) yields: `r` with every
/// line too long for opt.max_line_length split into the pieces the writer
/// puts on separate lines (their concatenation is the original line). Equal
/// to `r` when nothing needs folding. Errors: those of write_reply_lines:
/// reply_code_invalid, enhanced_code_invalid, reply_text_invalid,
/// api_value_invalid. Allocates.
inline result<reply> fold_reply(const reply& r, const reply_write_options& opt = {}) {
  std::size_t budget = 0;
  const errc e =
      detail::check_reply_lines(r.code, r.enhanced, r.lines.begin(), r.lines.end(), opt, budget);
  if (e != errc::ok) return e;
  reply out;
  out.code = r.code;
  out.enhanced = r.enhanced;
  for (const std::string& line : r.lines) {
    std::string_view rest(line);
    do {
      const std::size_t n = detail::reply_fold_piece(rest, budget);
      out.lines.emplace_back(rest.substr(0, n));
      rest.remove_prefix(n);
    } while (!rest.empty());
  }
  return out;
}

}  // namespace wire
}  // namespace smtpwire

#endif  // SMTPWIRE_WIRE_REPLY_HPP
