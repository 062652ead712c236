// smtpwire — line framing: an incremental, strict CRLF line reader with a
// length limit and bounded memory.
//
// Theory of operation. SMTP commands and replies are lines ended by CRLF
// (RFC 5321 §2.3.8): "Lines consist of zero or more data characters
// terminated by the sequence ASCII character "CR" (hex value 0D) followed
// immediately by ASCII character "LF" (hex value 0A). [...] Conforming
// implementations MUST NOT recognize or generate any other character or
// character sequence as a line terminator." A receiver that
// also accepted a bare CR or a bare LF as a line end would disagree with its
// peer on where lines end, which is how command and reply injection and SMTP
// smuggling work, so line_reader accepts only CRLF and reports:
//
//   - errc::bare_cr        a CR not followed by LF,
//   - errc::bare_lf        an LF not preceded by CR,
//   - errc::nul_byte       a NUL anywhere in a line,
//   - errc::eight_bit_byte a byte >= 0x80 when line_options::allow_8bit is off,
//   - errc::line_too_long  a line longer than line_options::max_line_length.
//
// Each of these is reported once, at the first offending byte (the errors of
// one line are found in byte order, so the first bad byte wins whatever the
// chunking). The line that contains it is then discarded through its
// terminating CRLF, silently, however long it is: it is never returned as a
// line, neither whole nor in part, and a bare LF or bare CR never ends it.
// The next call returns the line after that CRLF, so a server can reply 500
// and stay in sync with the client. Errors of line_reader are therefore not
// sticky; the reply reader (wire/reply.hpp), for which any error is fatal,
// makes them so.
//
// Memory: the reader owns one buffer of max_line_length octets, allocated
// once by the constructor. It holds the part of a line that arrived in an
// earlier call; it never grows. Discarded bytes are never stored.
#ifndef SMTPWIRE_WIRE_LINE_HPP
#define SMTPWIRE_WIRE_LINE_HPP

#include <smtpwire/error.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

// SSE2 scanning (every x86-64 CPU); define SMTPWIRE_NO_SIMD for the portable
// loops (e.g. to compare both, or for valgrind).
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SMTPWIRE_NO_SIMD)
#include <emmintrin.h>
#define SMTPWIRE_LINE_SSE2 1
#endif

// The per-line hot path is forced inline: measured 15-25% faster replies
// (bench/bench_reply.cpp) than leaving it to the compiler.
#ifndef SMTPWIRE_ALWAYS_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define SMTPWIRE_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define SMTPWIRE_ALWAYS_INLINE inline
#endif
#endif

namespace smtpwire {
namespace detail {

/// Classes of the octets the line scanner cares about.
enum line_byte : unsigned char {
  lb_break = 1,    ///< CR, LF or NUL: ends the scan
  lb_high = 2,     ///< >= 0x80
  lb_control = 4,  ///< other C0 controls but HT, and DEL
};

struct line_byte_table {
  unsigned char flags[256];
};

constexpr line_byte_table make_line_byte_table() noexcept {
  line_byte_table t{};
  for (int i = 1; i < 0x20; ++i)
    if (i != '\t') t.flags[i] = lb_control;
  t.flags[0x7f] = lb_control;
  t.flags[0] = lb_break;
  t.flags[static_cast<unsigned char>('\r')] = lb_break;
  t.flags[static_cast<unsigned char>('\n')] = lb_break;
  for (int i = 0x80; i < 0x100; ++i)
    t.flags[i] = lb_high;
  return t;
}

inline constexpr line_byte_table line_bytes = make_line_byte_table();

/// Where a line scan stopped, and which octet classes it saw before.
struct line_scan {
  std::size_t stop;  ///< index of the first stop octet, or n
  unsigned seen;     ///< lb_high | lb_control of the octets before `stop`
};

/// Finds the first octet of `p[0..n)` that is CR, LF or NUL, or >= 0x80 when
/// `stop_high` is set, and notes whether any octet before it is >= 0x80 or a
/// control other than HT. `readable` (>= n) octets from `p` may be loaded,
/// so short lines are scanned 16 octets at a time when more input follows;
/// nothing at or past `p + readable` is read.
SMTPWIRE_ALWAYS_INLINE line_scan scan_line(const char* p, std::size_t n, std::size_t readable,
                                           bool stop_high) noexcept {
  std::size_t i = 0;
  unsigned seen = 0;
#ifdef SMTPWIRE_LINE_SSE2
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i zero = _mm_setzero_si128();
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i tab = _mm_set1_epi8(0x09);
  const __m128i del = _mm_set1_epi8(0x7f);
  for (; i < n && i + 16 <= readable; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i brk = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                     _mm_cmpeq_epi8(v, zero));
    const __m128i high = _mm_cmplt_epi8(v, zero);  // signed compare: octets >= 0x80
    const __m128i ctl = _mm_or_si128(
        _mm_andnot_si128(_mm_or_si128(high, _mm_cmpeq_epi8(v, tab)), _mm_cmplt_epi8(v, space)),
        _mm_cmpeq_epi8(v, del));
    const unsigned high_mask = static_cast<unsigned>(_mm_movemask_epi8(high));
    unsigned stop_mask = static_cast<unsigned>(_mm_movemask_epi8(brk));
    if (stop_high) stop_mask |= high_mask;
    // Octets of this block that belong to the window (all 16, or fewer at its end).
    unsigned in_window = n - i >= 16 ? 0xffffu : (1u << (n - i)) - 1;
    stop_mask &= in_window;
    if (stop_mask != 0) in_window = (1u << __builtin_ctz(stop_mask)) - 1;
    if (high_mask & in_window) seen |= lb_high;
    if (static_cast<unsigned>(_mm_movemask_epi8(ctl)) & in_window) seen |= lb_control;
    if (stop_mask != 0) return {i + static_cast<std::size_t>(__builtin_ctz(stop_mask)), seen};
  }
  if (i >= n) return {n, seen};
#else
  (void)readable;
#endif
  const unsigned char stop = stop_high ? (lb_break | lb_high) : lb_break;
  for (; i < n; ++i) {
    const unsigned char f = line_bytes.flags[static_cast<unsigned char>(p[i])];
    if (f & stop) return {i, seen};
    seen |= f;
  }
  return {n, seen};
}

}  // namespace detail

namespace wire {

/// Limits and switches of a line_reader.
struct line_options {
  /// Longest accepted line in octets, CRLF included. A value below 3 is
  /// treated as 3 (one data octet). RFC 5321 §4.5.3.1.4 makes 512 the
  /// minimum a receiver must accept for command lines; text lines
  /// (§4.5.3.1.6, 1000) and reply lines (§4.5.3.1.5, 512) have their own.
  std::size_t max_line_length = 512;  ///< default 512; RFC 5321 minimum 512 (command line)
  /// Whether octets >= 0x80 may appear in a line. The framing layer allows
  /// them (SMTPUTF8, RFC 6531, and 8BITMIME need them); grammars above
  /// decide where they are acceptable.
  bool allow_8bit = true;  ///< default true
};

/// What one call of line_reader::read produced.
enum class line_status : unsigned char {
  need_more,  ///< every input octet was consumed and no line is complete yet
  line,       ///< line_result::line holds a complete line
  error,      ///< line_result::error says what is wrong with the current line
};

/// The result of line_reader::read.
struct line_result {
  /// Octets of the input this call consumed; the caller passes the rest (and
  /// then new bytes) to the next call.
  std::size_t consumed = 0;
  line_status status = line_status::need_more;
  /// The complete line without its CRLF (status == line). It points into the
  /// input given to this call when the whole line lies inside it (in_input),
  /// otherwise into the reader's buffer; either way it is valid until the
  /// next call on the reader, and no longer than the input it points into.
  std::string_view line;
  /// True when `line` points into the input given to this call.
  bool in_input = false;
  /// True when `line` holds an octet >= 0x80 (only possible with allow_8bit).
  bool has_8bit = false;
  /// True when `line` holds a control octet other than HT (%x01-08, %x0B,
  /// %x0C, %x0E-1F) or DEL: most grammars above refuse them, and need not
  /// look for them when this is false.
  bool has_control = false;
  /// The error (status == error), errc::ok otherwise.
  errc error = errc::ok;
};

/// An incremental, strict CRLF line reader (RFC 5321 §2.3.8): feed it any
/// chunking of the byte stream, get the same lines and errors back (split
/// invariance). Not thread-safe; one per connection direction.
///
/// Typical loop:
///
///     while (!in.empty()) {
///       line_result r = reader.read(in);
///       in.remove_prefix(r.consumed);
///       if (r.status == line_status::need_more) break;  // wait for bytes
///       if (r.status == line_status::line) handle(r.line);
///       else reply_500_for(r.error);                    // reader resyncs
///     }
class line_reader {
 public:
  /// A reader with the given limits; allocates its line buffer
  /// (max_line_length octets) once, here.
  explicit line_reader(line_options opt = {})
      : opt_(normalized(opt)), buf_(new char[opt_.max_line_length]) {}

  /// Consumes octets of `input` until one line or one error is complete, or
  /// the input is exhausted (need_more). At most max_line_length octets of a
  /// line are ever stored; after an error the rest of the offending line,
  /// through its CRLF, is consumed silently by this and later calls. A call
  /// invalidates the line returned by the previous call.
  line_result read(std::string_view input) noexcept;

  /// True when the reader holds no partial line: it is between lines, as at
  /// the start. A STARTTLS server checks it (RFC 3207 §4.2: after the
  /// handshake the session starts afresh); see also reset().
  bool idle() const noexcept {
    return !discarding_ && !pending_cr_ && (len_ == 0 || release_on_next_read_);
  }

  /// Forgets any partial line and any pending discard (e.g. the plaintext
  /// after a STARTTLS command, RFC 3207 §4). Keeps the buffer.
  void reset() noexcept {
    len_ = 0;
    seen_ = 0;
    pending_cr_ = false;
    discarding_ = false;
    discard_prev_cr_ = false;
    release_on_next_read_ = false;
  }

  /// The limits in force (max_line_length after normalisation).
  const line_options& options() const noexcept { return opt_; }

  /// Octets the reader has allocated for partial lines; never more than
  /// options().max_line_length, whatever the input.
  std::size_t buffer_capacity() const noexcept { return opt_.max_line_length; }

 private:
  static line_options normalized(line_options o) noexcept {
    if (o.max_line_length < 3) o.max_line_length = 3;
    return o;
  }

  line_result fail(std::size_t consumed, errc e) noexcept {
    len_ = 0;
    seen_ = 0;
    pending_cr_ = false;
    discarding_ = true;
    discard_prev_cr_ = false;
    line_result r;
    r.consumed = consumed;
    r.status = line_status::error;
    r.error = e;
    return r;
  }

  void append(const char* p, std::size_t n) noexcept {
    if (n != 0) std::memcpy(buf_.get() + len_, p, n);
    len_ += n;
  }

  line_result buffered_line(std::size_t consumed) noexcept {
    line_result r;
    r.consumed = consumed;
    r.status = line_status::line;
    r.line = std::string_view(buf_.get(), len_);
    set_seen(r);
    release_on_next_read_ = true;
    return r;
  }

  void set_seen(line_result& r) noexcept {
    r.has_8bit = (seen_ & detail::lb_high) != 0;
    r.has_control = (seen_ & detail::lb_control) != 0;
    seen_ = 0;
  }

  line_options opt_;
  std::unique_ptr<char[]> buf_;
  std::size_t len_ = 0;                // octets of the current partial line in buf_
  unsigned seen_ = 0;                  // detail::line_byte classes in the current line so far
  bool pending_cr_ = false;            // the previous input ended with the line's CR
  bool discarding_ = false;            // skipping an offending line through its CRLF
  bool discard_prev_cr_ = false;       // while discarding: the last octet seen was CR
  bool release_on_next_read_ = false;  // buf_ holds the line returned last time
};

SMTPWIRE_ALWAYS_INLINE line_result line_reader::read(std::string_view input) noexcept {
  if (release_on_next_read_) {
    len_ = 0;
    release_on_next_read_ = false;
  }
  const char* const p = input.data();
  const std::size_t n = input.size();
  std::size_t pos = 0;
  line_result r;

  if (discarding_) {
    // Only CRLF ends the offending line, so a bare LF in its tail cannot
    // start a new line (that would hand the peer a smuggled command).
    for (;;) {
      const void* hit = n > pos ? std::memchr(p + pos, '\n', n - pos) : nullptr;
      if (hit == nullptr) {
        if (n != 0) discard_prev_cr_ = p[n - 1] == '\r';
        r.consumed = n;
        return r;
      }
      const std::size_t lf = static_cast<std::size_t>(static_cast<const char*>(hit) - p);
      const bool after_cr = lf == 0 ? discard_prev_cr_ : p[lf - 1] == '\r';
      pos = lf + 1;
      if (after_cr) break;
    }
    discarding_ = false;
    discard_prev_cr_ = false;
  }

  if (pending_cr_) {
    if (pos == n) {
      r.consumed = n;
      return r;
    }
    pending_cr_ = false;
    if (p[pos] != '\n') return fail(pos, errc::bare_cr);
    return buffered_line(pos + 1);
  }

  const std::size_t room = opt_.max_line_length - 2 - len_;  // data octets still allowed
  const std::size_t avail = n - pos;
  // One octet past `room` is scanned too: there only CR may follow a full line.
  const std::size_t window = avail <= room ? avail : room + 1;
  const detail::line_scan scan = detail::scan_line(p + pos, window, avail, !opt_.allow_8bit);
  const std::size_t i = scan.stop;
  seen_ |= scan.seen;
  if (i == window) {
    if (avail <= room) {
      append(p + pos, avail);
      r.consumed = n;
      return r;
    }
    return fail(pos + room + 1, errc::line_too_long);
  }
  const std::size_t at = pos + i;
  switch (p[at]) {
    case '\r':
      if (at + 1 == n) {
        append(p + pos, i);
        pending_cr_ = true;
        r.consumed = n;
        return r;
      }
      if (p[at + 1] != '\n') return fail(at + 1, errc::bare_cr);
      if (len_ == 0) {
        r.consumed = at + 2;
        r.status = line_status::line;
        r.line = std::string_view(p + pos, i);
        r.in_input = true;
        set_seen(r);
        return r;
      }
      append(p + pos, i);
      return buffered_line(at + 2);
    case '\n':
      return fail(at + 1, errc::bare_lf);
    case '\0':
      return fail(at + 1, errc::nul_byte);
    default:
      return fail(at + 1, errc::eight_bit_byte);
  }
}

}  // namespace wire
}  // namespace smtpwire

#endif  // SMTPWIRE_WIRE_LINE_HPP
