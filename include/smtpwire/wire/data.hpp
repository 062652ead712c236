// smtpwire — DATA content codecs: the server's streaming decoder (dot
// unstuffing, end-of-data detection, strict line ends, size limit) and the
// client's streaming encoder (dot stuffing, line-end normalisation, the
// terminating ".CRLF").
//
// Theory of operation. After the 354 reply to DATA, the client sends the
// message as lines and ends it with a line holding a single dot (RFC 5321
// §4.1.1.4):
//
//   "The mail data is terminated by a line containing only a period, that is,
//    the character sequence "<CRLF>.<CRLF>", where the first <CRLF> is
//    actually the terminator of the previous line"
//
// and a line of the message that starts with a dot gets one more dot in front
// (§4.5.2, "transparency"), which the receiver removes. The CRLF of the DATA
// command line counts as the first <CRLF>, so ".\r\n" right after the 354 is
// an empty message.
//
// SMTP smuggling (SEC Consult 2023; CVE-2023-51764 Postfix, CVE-2023-51765
// Sendmail, CVE-2023-51766 Exim) works when two servers on a mail path
// disagree on where a message ends: an outbound server passes `\n.\n` or
// `\r\n.\r` through as content, an inbound server takes it as the end, and the
// bytes after it become commands of a second, forged transaction. The
// decoder therefore ends a message only at `\r\n.\r\n` (with the initial CRLF
// taken from the DATA line), whatever its options. Every other byte sequence
// — `\n.\n`, `\r.\r`, `\n.\r\n`, `\r\n.\n`, `\r\n.\r`, `\r.\r\n`,
// `\r\n\0.\r\n`, … — is content; if it contains a bare CR, a bare LF or a NUL
// the message fails (550 5.6.0 naming the byte, see reply_for) but decoding
// continues to the real end, so the session stays in step with the client
// and nothing inside the message is ever read as a command.
//
// Errors are reported once, at the first offending octet (its offset counts
// the DATA stream's octets from the first octet after the DATA line). From
// that octet on the decoder "drains": it delivers no more content, still
// finds the real end of data, and keeps counting. Content delivered before an
// error is exactly the content of the octets before the offending one,
// whatever the chunking; a server discards it and replies with the error.
//
// Performance: content is delivered as views of the caller's input, never
// copied; a removed dot only splits a view. Ordinary octets are skipped 64 at
// a time with SIMD (detail/simd.hpp: AVX-512BW, AVX2 or SSE2 chosen at run
// time; a byte loop elsewhere); memory use is a few words, whatever the
// message size, and nothing is allocated (bench/bench_data.cpp measures
// both).
#ifndef SMTPWIRE_WIRE_DATA_HPP
#define SMTPWIRE_WIRE_DATA_HPP

#include <smtpwire/detail/simd.hpp>
#include <smtpwire/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smtpwire {
namespace detail {

/// Flags of one octet for the byte-wise content loops.
enum content_byte : unsigned char {
  cb_line = 1,  ///< CR or LF
  cb_nul = 2,   ///< NUL
  cb_high = 4,  ///< >= 0x80
};

struct content_byte_table {
  unsigned char flags[256];
};

constexpr content_byte_table make_content_byte_table() noexcept {
  content_byte_table t{};
  t.flags[static_cast<unsigned char>('\r')] = cb_line;
  t.flags[static_cast<unsigned char>('\n')] = cb_line;
  t.flags[0] = cb_nul;
  for (int i = 0x80; i < 0x100; ++i)
    t.flags[i] = cb_high;
  return t;
}

inline constexpr content_byte_table content_bytes = make_content_byte_table();

/// Length of the run of p[i, end) whose octets have none of the `stop`
/// flags; ORs the run's octets into `acc`.
inline std::size_t ordinary_run(const char* p, std::size_t i, std::size_t end, unsigned char stop,
                                unsigned char& acc) noexcept {
  std::size_t j = i;
  unsigned char a = 0;
  while (j < end) {
    const auto u = static_cast<unsigned char>(p[j]);
    if (content_bytes.flags[u] & stop) break;
    a |= u;
    ++j;
  }
  acc |= a;
  return j - i;
}

}  // namespace detail

namespace wire {

/// Limits, leniencies and the scanner of a data_decoder. Every leniency is
/// off by default; none of them changes what ends a message.
struct data_options {
  /// Largest accepted message in content octets (after dot removal, CRLFs
  /// included, as SIZE counts them, RFC 1870). A bigger message is drained
  /// to its end and fails with errc::message_too_big (552 5.3.4).
  /// UINT64_MAX disables the limit.
  std::uint64_t max_message_size =
      33554432;  ///< default 32 MiB; RFC 5321 §4.5.3.1.7 minimum 64 KiB
  /// Leniency: a bare LF inside content is delivered as CRLF instead of
  /// failing the message. Risk: content that another MTA would split
  /// differently into lines; the decoder still never takes a bare LF as a
  /// line end for dot handling, so `\n.\r\n` or `\n.\n` stay content (and a
  /// dot after a bare LF is kept).
  bool bare_lf_in_data = false;  ///< default false
  /// Leniency: a bare CR inside content is delivered as CRLF instead of
  /// failing the message. Risk as for bare_lf_in_data; `\r.\r` stays content.
  bool bare_cr_in_data = false;  ///< default false
  /// Leniency: NUL octets are delivered as content instead of failing the
  /// message. Risk: downstream C-string handling may truncate the message.
  bool nul_in_data = false;  ///< default false
  /// Fail the message (errc::data_8bit_not_declared) at the first octet
  /// >= 0x80. Set it when the transaction declared BODY=7BIT or no BODY and
  /// the server enforces RFC 6152 §3; eight_bit() reports 8-bit octets
  /// either way.
  bool reject_8bit = false;  ///< default false
  /// The scanner implementation; `automatic` picks the fastest available.
  detail::scan_kind scan = detail::scan_kind::automatic;  ///< default automatic
};

/// What one data_decoder::decode call produced.
enum class data_status : unsigned char {
  need_more,  ///< every input octet was consumed; nothing to deliver yet
  content,    ///< data_result::content holds the next piece of the message
  error,      ///< the message failed (reported once); decoding goes on
  end,        ///< the end of data `.CRLF` was consumed
};

/// A stable name for `s`.
constexpr const char* to_string(data_status s) noexcept {
  switch (s) {
    case data_status::need_more:
      return "need_more";
    case data_status::content:
      return "content";
    case data_status::error:
      return "error";
    case data_status::end:
      return "end";
  }
  return "unknown";
}

/// The result of data_decoder::decode.
struct data_result {
  /// Octets of the input this call consumed. After `end`, the rest of the
  /// input (from `consumed` on) is the client's next commands.
  std::size_t consumed = 0;
  data_status status = data_status::need_more;
  /// Unstuffed content (status == content, never empty then). It points into
  /// the input given to this call or into static storage (a CR or CRLF the
  /// decoder had to hold back or normalise), never into the decoder: it
  /// stays valid as long as the caller's input buffer does.
  std::string_view content;
  /// status == error: the message's error. status == end: the message's
  /// first error, errc::ok when the message is acceptable.
  errc error = errc::ok;
  /// Offset of the octet that caused `error` in the DATA stream (0 = the
  /// first octet after the DATA command line).
  std::uint64_t error_offset = 0;
};

/// The server side of DATA: a streaming, split-invariant decoder of one
/// message (RFC 5321 §4.1.1.4, §4.5.2). Feed it any chunking of the bytes
/// that follow the DATA command line; it delivers the same content, the same
/// error and the same end whatever the chunking. Allocates nothing. One per
/// message; reset() reuses it.
///
/// Typical loop (the engine's, forwarding content without copying):
///
///     for (;;) {
///       data_result r = dec.decode(in);
///       in.remove_prefix(r.consumed);
///       if (r.status == data_status::content) app.write(r.content);
///       else if (r.status == data_status::error) app.abort_message();
///       else if (r.status == data_status::end) { reply(r.error); break; }
///       else break;  // need_more: wait for bytes
///     }
///     // `in` now starts with the next command.
class data_decoder {
 public:
  /// A decoder at the start of a message.
  explicit data_decoder(data_options opt = {}) noexcept
      : opt_(opt), kind_(detail::resolve_scan_kind(opt.scan)) {}

  /// Consumes octets of `input` until one piece of content, the error or the
  /// end is ready, or the input is exhausted (need_more). Content is
  /// delivered in input order; each octet of input is consumed exactly once.
  /// After `end`, further calls return `end` and consume nothing.
  data_result decode(std::string_view input) noexcept {
    data_result r = step(input);
    wire_ += r.consumed;
    return r;
  }

  /// True once the end of data was consumed.
  bool done() const noexcept { return st_ == state::done; }
  /// The message's first error, errc::ok while it is acceptable.
  errc error() const noexcept { return error_; }
  /// Offset in the DATA stream of the octet that caused error().
  std::uint64_t error_offset() const noexcept { return error_offset_; }
  /// Content octets so far: unstuffed, CRLFs included, normalised line ends
  /// counting two; after an error the rest is still counted (raw).
  std::uint64_t octets() const noexcept { return ss_.content; }
  /// Content lines (CRLFs) so far.
  std::uint64_t lines() const noexcept { return ss_.lines; }
  /// Octets of the DATA stream consumed so far, the final `.CRLF` included.
  std::uint64_t wire_octets() const noexcept { return wire_; }
  /// True when an octet >= 0x80 was seen (the message needs 8BITMIME).
  bool eight_bit() const noexcept { return ss_.eight_bit; }
  /// True when a line longer than 998 octets was seen (RFC 5322 §2.1.1); a
  /// flag for the application, not an error.
  bool long_lines() const noexcept { return ss_.long_line; }
  /// The options in force.
  const data_options& options() const noexcept { return opt_; }
  /// The scanner in use (never `automatic`).
  detail::scan_kind scan() const noexcept { return kind_; }

  /// Starts a new message with the same options.
  void reset() noexcept {
    ss_ = detail::scan_state{};
    st_ = state::normal;
    cr_withheld_ = false;
    draining_ = false;
    error_unreported_ = false;
    error_ = errc::ok;
    error_offset_ = 0;
    wire_ = 0;
    pending_ = {};
  }

 private:
  enum class state : unsigned char {
    normal,  // ss_.at says where in a line
    dot,     // a line-start dot was removed; it may begin the end of data
    dot_cr,  // line-start dot then CR (held back): end of data if LF follows
    done,
  };

  data_result step(std::string_view input) noexcept;

  void line_end(std::uint64_t cr_offset) noexcept {
    if (cr_offset - ss_.line_begin > detail::long_line_octets) ss_.long_line = true;
  }

  // Records the message's first error at stream offset `off`; delivers the
  // content of input[vb, ve) first when there is any (the error follows on
  // the next call).
  data_result fail(errc e, std::uint64_t off, const char* p, std::size_t vb, std::size_t ve,
                   std::size_t consumed) noexcept {
    error_ = e;
    error_offset_ = off;
    draining_ = true;
    data_result r;
    r.consumed = consumed;
    if (ve > vb) {
      r.status = data_status::content;
      r.content = std::string_view(p + vb, ve - vb);
      error_unreported_ = true;
    } else {
      r.status = data_status::error;
      r.error = e;
      r.error_offset = off;
    }
    return r;
  }

  // Delivers input[vb, ve), then (next call) the static `s`, or `s` now.
  data_result insert(std::string_view s, const char* p, std::size_t vb, std::size_t ve,
                     std::size_t consumed) noexcept {
    data_result r;
    r.consumed = consumed;
    r.status = data_status::content;
    if (ve > vb) {
      r.content = std::string_view(p + vb, ve - vb);
      pending_ = s;
    } else {
      r.content = s;
    }
    return r;
  }

  data_options opt_;
  detail::scan_kind kind_;
  detail::scan_state ss_{};
  state st_ = state::normal;
  bool cr_withheld_ = false;       // the input ended with a content CR not yet delivered
  bool draining_ = false;          // an error happened: deliver nothing, find the end
  bool error_unreported_ = false;  // error_ is due as the next result
  errc error_ = errc::ok;
  std::uint64_t error_offset_ = 0;
  std::uint64_t wire_ = 0;    // stream octets consumed by earlier calls
  std::string_view pending_;  // static content due as the next result
};

inline data_result data_decoder::step(std::string_view input) noexcept {
  using detail::at_after_cr;
  using detail::at_line_start;
  using detail::at_mid_line;
  static constexpr std::string_view crlf("\r\n", 2);
  data_result r;
  if (st_ == state::done) {
    r.status = data_status::end;
    r.error = error_;
    r.error_offset = error_offset_;
    return r;
  }
  if (!pending_.empty()) {
    r.status = data_status::content;
    r.content = pending_;
    pending_ = {};
    return r;
  }
  if (error_unreported_) {
    error_unreported_ = false;
    r.status = data_status::error;
    r.error = error_;
    r.error_offset = error_offset_;
    return r;
  }
  const char* const p = input.data();
  const std::size_t n = input.size();
  if (cr_withheld_) {
    if (n == 0) return r;
    cr_withheld_ = false;
    // A CR that ended the previous input is content only once its LF is seen
    // (a bare CR fails the message before it is delivered).
    if (p[0] == '\n' && !draining_) {
      r.status = data_status::content;
      r.content = std::string_view("\r", 1);
      return r;
    }
  }
  const std::uint64_t limit = opt_.max_message_size;
  std::size_t i = 0;
  std::size_t vb = 0;  // the content view under way is input[vb, i)
  for (;;) {
    if (st_ == state::normal && kind_ != detail::scan_kind::scalar && n - i > 64) {
      detail::scan_stops stops;
      stops.nul = !opt_.nul_in_data && !draining_;
      stops.eight_bit = opt_.reject_8bit && !draining_;
      const std::uint64_t budget = draining_ ? ~std::uint64_t{0} : limit - ss_.content;
      i = detail::skip_clean<true>(kind_, p, i, n, budget, stops, ss_);
    }
    if (i == n) break;
    const char c = p[i];
    if (st_ == state::normal) {
      if (ss_.at == at_after_cr) {
        if (c == '\n') {
          if (!draining_ && ss_.content >= limit)
            return fail(errc::message_too_big, wire_ + i, p, vb, i, i);
          line_end(ss_.content - 1);
          ++ss_.content;
          ++ss_.lines;
          ss_.line_begin = ss_.content;
          ss_.at = at_line_start;
          ++i;
          continue;
        }
        // The CR before `c` (at i - 1, or held back from the previous input
        // when i == 0) is bare; `c` itself is looked at again below.
        const std::size_t cr_end = i == 0 ? 0 : i - 1;
        ss_.at = at_mid_line;
        if (opt_.bare_cr_in_data) {
          if (!draining_ && ss_.content + 1 > limit)
            return fail(errc::message_too_big, wire_ + i - 1, p, vb, cr_end, i);
          line_end(ss_.content - 1);
          ++ss_.content;
          ++ss_.lines;
          ss_.line_begin = ss_.content;
          if (!draining_) return insert(crlf, p, vb, cr_end, i);
          continue;
        }
        if (!draining_) return fail(errc::data_bare_cr, wire_ + i - 1, p, vb, cr_end, i);
        continue;
      }
      if (ss_.at == at_line_start && c == '.') {
        st_ = state::dot;
        if (!draining_ && i > vb) {
          data_result v;
          v.consumed = i + 1;
          v.status = data_status::content;
          v.content = std::string_view(p + vb, i - vb);
          return v;
        }
        vb = ++i;
        continue;
      }
      // Mid-line (or a line start without a dot): the octet is content, so
      // the size limit is checked before what the octet itself may be wrong.
      if (!draining_ && ss_.content >= limit)
        return fail(errc::message_too_big, wire_ + i, p, vb, i, i);
      unsigned char stop = detail::cb_line;
      if (!opt_.nul_in_data && !draining_) stop |= detail::cb_nul;
      if (opt_.reject_8bit && !draining_) stop |= detail::cb_high;
      const unsigned char f = detail::content_bytes.flags[static_cast<unsigned char>(c)];
      if ((f & stop) == 0) {
        std::size_t end = n;
        if (!draining_ && limit - ss_.content < n - i)
          end = i + static_cast<std::size_t>(limit - ss_.content);
        unsigned char acc = 0;
        const std::size_t run = detail::ordinary_run(p, i, end, stop, acc);
        ss_.content += run;
        if (acc & 0x80) ss_.eight_bit = true;
        ss_.at = at_mid_line;
        i += run;
        continue;
      }
      if (c == '\r') {
        ++ss_.content;
        ss_.at = at_after_cr;
        ++i;
        continue;
      }
      if (c == '\n') {  // bare LF
        if (opt_.bare_lf_in_data) {
          if (!draining_ && ss_.content + 2 > limit)
            return fail(errc::message_too_big, wire_ + i, p, vb, i, i);
          line_end(ss_.content);
          ss_.content += 2;
          ++ss_.lines;
          ss_.line_begin = ss_.content;
          ss_.at = at_mid_line;
          ++i;
          if (!draining_) return insert(crlf, p, vb, i - 1, i);
          vb = i;
          continue;
        }
        if (!draining_) return fail(errc::data_bare_lf, wire_ + i, p, vb, i, i);
        ++ss_.content;
        ss_.at = at_mid_line;
        ++i;
        continue;
      }
      if (c == '\0') return fail(errc::data_nul, wire_ + i, p, vb, i, i);
      return fail(errc::data_8bit_not_declared, wire_ + i, p, vb, i, i);
    }
    if (st_ == state::dot) {
      if (c == '\r') {
        st_ = state::dot_cr;
        vb = ++i;
        continue;
      }
      // The dot was a transparency dot: removed; `c` is ordinary line content.
      st_ = state::normal;
      ss_.at = at_mid_line;
      continue;
    }
    // state::dot_cr
    if (c == '\n') {
      st_ = state::done;
      r.consumed = i + 1;
      r.status = data_status::end;
      r.error = error_;
      r.error_offset = error_offset_;
      return r;
    }
    // ".\r" then not LF: the dot was a transparency dot and the CR is bare.
    st_ = state::normal;
    ss_.at = at_mid_line;
    if (opt_.bare_cr_in_data) {
      if (!draining_ && ss_.content + 2 > limit)
        return fail(errc::message_too_big, wire_ + i - 1, p, vb, vb, i);
      line_end(ss_.content);
      ss_.content += 2;
      ++ss_.lines;
      ss_.line_begin = ss_.content;
      if (!draining_) return insert(crlf, p, vb, vb, i);
      continue;
    }
    if (!draining_ && ss_.content >= limit)
      return fail(errc::message_too_big, wire_ + i - 1, p, vb, vb, i);
    ++ss_.content;
    if (!draining_) return fail(errc::data_bare_cr, wire_ + i - 1, p, vb, vb, i);
  }
  std::size_t ve = n;
  if (st_ == state::normal && ss_.at == at_after_cr && n != 0) {
    // The input ends with a CR: deliver it only when its LF arrives.
    ve = n - 1;
    cr_withheld_ = true;
  }
  r.consumed = n;
  if (!draining_ && ve > vb) {
    r.status = data_status::content;
    r.content = std::string_view(p + vb, ve - vb);
  }
  return r;
}

/// Switches of a data_encoder.
struct data_encoder_options {
  /// Deliver a bare LF or a bare CR in the message as CRLF (RFC 5321 §2.3.8
  /// allows only CRLF as a line end on the wire). When false, the encoder
  /// refuses them with errc::data_bare_lf / errc::data_bare_cr instead.
  bool normalize_line_ends = true;  ///< default true
  /// Pass NUL octets through. When false, a NUL is refused with
  /// errc::data_nul (a strict receiver, data_decoder among them, fails
  /// such a message).
  bool allow_nul = false;  ///< default false
  /// The scanner implementation; `automatic` picks the fastest available.
  detail::scan_kind scan = detail::scan_kind::automatic;  ///< default automatic
};

/// What one data_encoder call produced.
enum class encode_status : unsigned char {
  need_more,  ///< every input octet was consumed; nothing to send yet
  output,     ///< encode_result::output holds wire octets to send
  error,      ///< the message holds an octet the options refuse (sticky)
  done,       ///< finish(): the terminator has been returned
};

/// The result of data_encoder::encode and data_encoder::finish.
struct encode_result {
  /// Octets of the message consumed by this call.
  std::size_t consumed = 0;
  encode_status status = encode_status::need_more;
  /// Wire octets (status == output, never empty then): a view of the input
  /// given to this call or of static storage (an added dot, a CRLF, the
  /// terminator), valid as long as the caller's input buffer is.
  std::string_view output;
  /// status == error: what was refused, and its offset in the message.
  errc error = errc::ok;
  std::uint64_t error_offset = 0;
};

/// The client side of DATA: a streaming, split-invariant encoder (RFC 5321
/// §4.5.2). Feed it the message in any chunks; it returns wire octets as
/// views: a dot added before every line that starts with a dot, bare LF /
/// bare CR written as CRLF (or refused), then finish() adds a CRLF when the
/// message does not end with one, and `.CRLF`. For every input and every
/// chunking, data_decoder turns the output back into the normalised input.
/// Allocates nothing.
///
///     while (!msg.empty()) {
///       encode_result r = enc.encode(msg);
///       msg.remove_prefix(r.consumed);
///       if (r.status == encode_status::output) send(r.output);
///       else if (r.status == encode_status::error) abort();
///     }
///     for (encode_result r; (r = enc.finish()).status == encode_status::output;) send(r.output);
class data_encoder {
 public:
  /// An encoder at the start of a message.
  explicit data_encoder(data_encoder_options opt = {}) noexcept
      : opt_(opt), kind_(detail::resolve_scan_kind(opt.scan)) {}

  /// Consumes octets of `message` until some wire octets are ready, an
  /// octet is refused, or the input is exhausted (need_more). After finish()
  /// it returns errc::api_bad_state.
  encode_result encode(std::string_view message) noexcept {
    encode_result r = step(message);
    in_ += r.consumed;
    return r;
  }

  /// Ends the message: returns the held-back octets and the terminator
  /// (`.CRLF`, preceded by CRLF when the message does not end with one) as
  /// `output`, then `done` on the next call.
  encode_result finish() noexcept;

  /// The first refusal, errc::ok when none.
  errc error() const noexcept { return error_; }
  /// Message octets consumed so far.
  std::uint64_t consumed() const noexcept { return in_; }
  /// The scanner in use (never `automatic`).
  detail::scan_kind scan() const noexcept { return kind_; }

  /// Starts a new message with the same options.
  void reset() noexcept {
    ss_ = detail::scan_state{};
    cr_withheld_ = false;
    finishing_ = false;
    finished_ = false;
    error_unreported_ = false;
    error_ = errc::ok;
    error_offset_ = 0;
    in_ = 0;
    pending_ = {};
  }

 private:
  encode_result step(std::string_view message) noexcept;

  encode_result error_result() const noexcept {
    encode_result r;
    r.status = encode_status::error;
    r.error = error_;
    r.error_offset = error_offset_;
    return r;
  }

  encode_result fail(errc e, std::uint64_t off, const char* p, std::size_t vb, std::size_t ve,
                     std::size_t consumed) noexcept {
    error_ = e;
    error_offset_ = off;
    if (ve > vb) {
      error_unreported_ = true;
      encode_result r;
      r.consumed = consumed;
      r.status = encode_status::output;
      r.output = std::string_view(p + vb, ve - vb);
      return r;
    }
    encode_result r = error_result();
    r.consumed = consumed;
    return r;
  }

  encode_result insert(std::string_view s, const char* p, std::size_t vb, std::size_t ve,
                       std::size_t consumed) noexcept {
    encode_result r;
    r.consumed = consumed;
    r.status = encode_status::output;
    if (ve > vb) {
      r.output = std::string_view(p + vb, ve - vb);
      pending_ = s;
    } else {
      r.output = s;
    }
    return r;
  }

  data_encoder_options opt_;
  detail::scan_kind kind_;
  detail::scan_state ss_{};   // only `at` is used
  bool cr_withheld_ = false;  // the input ended with a CR whose next octet is unknown
  bool finishing_ = false;    // finish() has started
  bool finished_ = false;     // the terminator has been returned
  bool error_unreported_ = false;
  errc error_ = errc::ok;
  std::uint64_t error_offset_ = 0;
  std::uint64_t in_ = 0;
  std::string_view pending_;
};

inline encode_result data_encoder::step(std::string_view message) noexcept {
  using detail::at_after_cr;
  using detail::at_line_start;
  using detail::at_mid_line;
  static constexpr std::string_view crlf("\r\n", 2);
  static constexpr std::string_view dots("..", 2);
  encode_result r;
  if (error_unreported_) {
    error_unreported_ = false;
    return error_result();
  }
  if (error_ != errc::ok) return error_result();
  if (finishing_) {
    r.status = encode_status::error;
    r.error = errc::api_bad_state;
    return r;
  }
  if (!pending_.empty()) {
    r.status = encode_status::output;
    r.output = pending_;
    pending_ = {};
    return r;
  }
  const char* const p = message.data();
  const std::size_t n = message.size();
  if (cr_withheld_) {
    if (n == 0) return r;
    cr_withheld_ = false;
    ss_.at = at_line_start;
    if (p[0] == '\n') return insert(crlf, p, 0, 0, 1);
    if (!opt_.normalize_line_ends) return fail(errc::data_bare_cr, in_ - 1, p, 0, 0, 0);
    return insert(crlf, p, 0, 0, 0);
  }
  detail::scan_stops stops;
  stops.nul = !opt_.allow_nul;
  const unsigned char stop = opt_.allow_nul ? detail::cb_line : (detail::cb_line | detail::cb_nul);
  std::size_t i = 0;
  std::size_t vb = 0;  // the output view under way is message[vb, i)
  for (;;) {
    if (kind_ != detail::scan_kind::scalar && n - i > 64)
      i = detail::skip_clean<false>(kind_, p, i, n, ~std::uint64_t{0}, stops, ss_);
    if (i == n) break;
    const char c = p[i];
    if (ss_.at == at_after_cr) {
      if (c == '\n') {
        ss_.at = at_line_start;
        ++i;
        continue;
      }
      // Bare CR at i - 1 (i >= 1: a CR that ended an input was held back).
      if (!opt_.normalize_line_ends)
        return fail(errc::data_bare_cr, in_ + i - 1, p, vb, i - 1, i - 1);
      ss_.at = at_line_start;
      return insert(crlf, p, vb, i - 1, i);
    }
    if (ss_.at == at_line_start && c == '.') {
      ss_.at = at_mid_line;
      return insert(dots, p, vb, i, i + 1);
    }
    const unsigned char f = detail::content_bytes.flags[static_cast<unsigned char>(c)];
    if ((f & stop) == 0) {
      unsigned char acc = 0;
      i += detail::ordinary_run(p, i, n, stop, acc);
      ss_.at = at_mid_line;
      continue;
    }
    if (c == '\r') {
      ss_.at = at_after_cr;
      ++i;
      continue;
    }
    if (c == '\n') {
      if (!opt_.normalize_line_ends) return fail(errc::data_bare_lf, in_ + i, p, vb, i, i);
      ss_.at = at_line_start;
      return insert(crlf, p, vb, i, i + 1);
    }
    return fail(errc::data_nul, in_ + i, p, vb, i, i);
  }
  std::size_t ve = n;
  if (ss_.at == at_after_cr && n != 0) {
    ve = n - 1;
    cr_withheld_ = true;
  }
  r.consumed = n;
  if (ve > vb) {
    r.status = encode_status::output;
    r.output = std::string_view(p + vb, ve - vb);
  }
  return r;
}

inline encode_result data_encoder::finish() noexcept {
  if (error_unreported_) {
    error_unreported_ = false;
    return error_result();
  }
  if (error_ != errc::ok) return error_result();
  encode_result r;
  if (!pending_.empty()) {
    r.status = encode_status::output;
    r.output = pending_;
    pending_ = {};
    return r;
  }
  if (finished_) {
    r.status = encode_status::done;
    return r;
  }
  if (cr_withheld_ && !opt_.normalize_line_ends) {
    error_ = errc::data_bare_cr;
    error_offset_ = in_ - 1;
    return error_result();
  }
  finishing_ = true;
  finished_ = true;
  r.status = encode_status::output;
  // RFC 5321 §4.1.1.4: the terminator's first CRLF ends the last line, so a
  // message that does not end with CRLF gets one.
  const bool at_line_start = !cr_withheld_ && ss_.at == detail::at_line_start;
  r.output = at_line_start ? std::string_view(".\r\n", 3) : std::string_view("\r\n.\r\n", 5);
  return r;
}

/// Encodes a whole message for DATA and appends the wire octets (terminator
/// included) to `out`. Returns the encoder's refusal, if any, in which case
/// nothing is appended.
[[nodiscard]] inline errc encode_data(std::string& out, std::string_view message,
                                      data_encoder_options opt = {}) {
  const std::size_t before = out.size();
  data_encoder enc(opt);
  while (!message.empty()) {
    const encode_result r = enc.encode(message);
    message.remove_prefix(r.consumed);
    if (r.status == encode_status::error) {
      out.resize(before);
      return r.error;
    }
    if (r.status == encode_status::output) out.append(r.output.data(), r.output.size());
  }
  for (;;) {
    const encode_result r = enc.finish();
    if (r.status == encode_status::error) {
      out.resize(before);
      return r.error;
    }
    if (r.status != encode_status::output) break;
    out.append(r.output.data(), r.output.size());
  }
  return errc::ok;
}

}  // namespace wire
}  // namespace smtpwire

#endif  // SMTPWIRE_WIRE_DATA_HPP
