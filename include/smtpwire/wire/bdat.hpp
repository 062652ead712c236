// smtpwire — BDAT framing (RFC 3030 CHUNKING): the server's chunk reader and
// the client's chunk writer.
//
// Theory of operation. With CHUNKING the client sends a message as chunks,
// each announced by a command line that gives its exact size:
//
//   RFC 3030 §2:  bdat-cmd   ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
//                 chunk-size ::= 1*DIGIT
//                 end-marker ::= "LAST"
//
// and followed by exactly chunk-size octets of message data, which are opaque:
// no dot stuffing, no end-of-data sequence, any octet (under BODY=BINARYMIME,
// RFC 3030 §3). The next octet after the chunk is the next command. Because
// the size alone frames the chunk, a server that fails a chunk must still
// consume all of its octets or it would read message data as commands; a
// server that buffered a chunk before deciding could be made to allocate
// whatever the client announces. bdat_reader therefore never buffers: it
// hands out views of the caller's input and, once the message is over the
// size limit (or a chunk size is absurd), it consumes and drops the octets
// of every further chunk of the message, counting them down to the end of
// the chunk, and reports errc::message_too_big (552 5.3.4) at each chunk end.
//
// The command line itself is parsed by wire/command.hpp (command::size,
// command::last); this header starts where that parse ends.
#ifndef SMTPWIRE_WIRE_BDAT_HPP
#define SMTPWIRE_WIRE_BDAT_HPP

#include <smtpwire/error.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smtpwire::wire {

/// Limits of a bdat_reader.
struct bdat_options {
  /// Largest accepted message: the sum of its chunk sizes in octets. A chunk
  /// that would pass it is consumed and discarded, and the message fails
  /// with errc::message_too_big. UINT64_MAX disables the limit.
  std::uint64_t max_message_size =
      33554432;  ///< default 32 MiB; RFC 5321 §4.5.3.1.7 minimum 64 KiB
};

/// What one bdat_reader::read call produced.
enum class bdat_status : unsigned char {
  need_more,  ///< the input was exhausted inside the chunk (or no chunk is open)
  content,    ///< bdat_result::content holds chunk octets
  chunk_end,  ///< the chunk is complete; the next input octet is a command
};

/// The result of bdat_reader::read.
struct bdat_result {
  /// Octets of the input this call consumed (chunk octets only; never a
  /// byte of the next command).
  std::size_t consumed = 0;
  bdat_status status = bdat_status::need_more;
  /// Chunk octets (status == content, never empty then): a view of the input
  /// given to this call, valid as long as the caller's input buffer is.
  std::string_view content;
  /// status == chunk_end: the chunk carried LAST (the message is complete).
  bool last = false;
  /// status == chunk_end: the message's error (errc::message_too_big when
  /// this or an earlier chunk went over the limit), errc::ok otherwise.
  errc error = errc::ok;
};

/// The server side of BDAT: frames the chunks of one message. Split-invariant,
/// allocation-free; one per transaction, reset() for the next.
///
///     // after parse_command gave a BDAT command `c`:
///     errc e = reader.begin_chunk(c.size, c.last);  // message_too_big: chunk will be dropped
///     for (;;) {
///       bdat_result r = reader.read(in);
///       in.remove_prefix(r.consumed);
///       if (r.status == bdat_status::content) app.write(r.content);
///       else if (r.status == bdat_status::chunk_end) { reply(r.error, r.last); break; }
///       else break;  // need_more
///     }
class bdat_reader {
 public:
  /// A reader at the start of a message.
  explicit bdat_reader(bdat_options opt = {}) noexcept : opt_(opt) {}

  /// Opens a chunk of `size` octets (RFC 3030 §2), the last one when `last`.
  /// Returns errc::ok when its octets will be delivered;
  /// errc::message_too_big when the message (this chunk included) exceeds
  /// max_message_size — the octets are then consumed and discarded, and
  /// every later chunk of the message is too; errc::api_bad_state when a
  /// chunk is still open or the message already ended with LAST (nothing
  /// changes then). Sizes up to 2^64-1 are safe.
  errc begin_chunk(std::uint64_t size, bool last) noexcept {
    if (open_ || complete_) return errc::api_bad_state;
    open_ = true;
    last_ = last;
    remaining_ = size;
    wire_ = size > ~std::uint64_t{0} - wire_ ? ~std::uint64_t{0} : wire_ + size;
    ++chunks_;
    if (error_ == errc::ok && size > opt_.max_message_size - accepted_)
      error_ = errc::message_too_big;
    if (error_ == errc::ok) accepted_ += size;
    return error_;
  }

  /// Consumes octets of the open chunk from `input`: returns them as content
  /// (unless the message failed), then chunk_end once all of them are
  /// consumed (a chunk of size 0 ends at once, even with empty input). With
  /// no chunk open it consumes nothing and returns need_more.
  bdat_result read(std::string_view input) noexcept {
    bdat_result r;
    if (!open_) return r;
    if (remaining_ == 0) {
      open_ = false;
      if (last_) complete_ = true;
      r.status = bdat_status::chunk_end;
      r.last = last_;
      r.error = error_;
      return r;
    }
    const std::size_t take =
        remaining_ < input.size() ? static_cast<std::size_t>(remaining_) : input.size();
    remaining_ -= take;
    r.consumed = take;
    if (take != 0 && error_ == errc::ok) {
      r.status = bdat_status::content;
      r.content = input.substr(0, take);
      return r;
    }
    if (remaining_ == 0) {
      r = read(std::string_view());  // the dropped chunk ends here
      r.consumed = take;
    }
    return r;
  }

  /// True while a chunk is open (its octets are not all consumed).
  bool in_chunk() const noexcept { return open_; }
  /// Octets of the open chunk still to come.
  std::uint64_t remaining() const noexcept { return remaining_; }
  /// True once a LAST chunk has been fully read.
  bool complete() const noexcept { return complete_; }
  /// The message's error: errc::message_too_big once over the limit.
  errc error() const noexcept { return error_; }
  /// Octets of the message accepted so far (the sum of accepted chunk sizes).
  std::uint64_t octets() const noexcept { return accepted_; }
  /// Octets announced by all chunks so far (saturates at 2^64-1).
  std::uint64_t announced_octets() const noexcept { return wire_; }
  /// Chunks opened so far.
  std::uint64_t chunks() const noexcept { return chunks_; }
  /// The limits in force.
  const bdat_options& options() const noexcept { return opt_; }

  /// Starts a new message (e.g. after RSET or a completed LAST chunk). An
  /// open chunk is forgotten: call it only between chunks, or the chunk's
  /// remaining octets would be read as commands.
  void reset() noexcept {
    open_ = false;
    last_ = false;
    complete_ = false;
    remaining_ = 0;
    accepted_ = 0;
    wire_ = 0;
    chunks_ = 0;
    error_ = errc::ok;
  }

 private:
  bdat_options opt_;
  bool open_ = false;
  bool last_ = false;
  bool complete_ = false;
  std::uint64_t remaining_ = 0;
  std::uint64_t accepted_ = 0;  // <= max_message_size
  std::uint64_t wire_ = 0;
  std::uint64_t chunks_ = 0;
  errc error_ = errc::ok;
};

/// A BDAT command line, formatted without allocation: "BDAT <size>[ LAST]\r\n"
/// (at most 31 octets).
struct bdat_command {
  char text[32];
  std::uint8_t size;
  /// The line, CRLF included; points into this object.
  std::string_view view() const noexcept { return {text, size}; }
};

/// Formats the command line of a chunk of `size` octets (RFC 3030 §2,
/// grammar above), with " LAST" when `last`.
constexpr bdat_command make_bdat_command(std::uint64_t size, bool last) noexcept {
  bdat_command c{{}, 0};
  const char head[] = "BDAT ";
  for (int k = 0; k < 5; ++k)
    c.text[c.size++] = head[k];
  char digits[20] = {};
  int nd = 0;
  do {
    digits[nd++] = static_cast<char>('0' + size % 10);
    size /= 10;
  } while (size != 0);
  while (nd != 0)
    c.text[c.size++] = digits[--nd];
  if (last) {
    const char tail[] = " LAST";
    for (int k = 0; k < 5; ++k)
      c.text[c.size++] = tail[k];
  }
  c.text[c.size++] = '\r';
  c.text[c.size++] = '\n';
  return c;
}

/// Appends the command line of a chunk (see make_bdat_command) to `out`.
inline void write_bdat_command(std::string& out, std::uint64_t size, bool last) {
  const bdat_command c = make_bdat_command(size, last);
  out.append(c.text, c.size);
}

/// One chunk of a message split by bdat_splitter.
struct bdat_piece {
  bdat_command command;      ///< "BDAT n[ LAST]\r\n"
  std::string_view payload;  ///< the chunk's octets: a view of the message
  bool last = false;         ///< the final chunk (its command carries LAST)
};

/// The client side of BDAT: splits a message (already in memory) into chunks
/// of at most `chunk_size` octets, the last one marked LAST. An empty
/// message gives one piece "BDAT 0 LAST". No allocation; payloads are views
/// of the message, valid as long as it is.
class bdat_splitter {
 public:
  /// A splitter over `message`; a chunk_size of 0 sends the whole message as
  /// one chunk.
  bdat_splitter(std::string_view message, std::size_t chunk_size) noexcept
      : rest_(message), chunk_(chunk_size == 0 ? message.size() : chunk_size) {}

  /// Fills `piece` with the next chunk and returns true, or returns false
  /// once the LAST chunk has been returned.
  bool next(bdat_piece& piece) noexcept {
    if (done_) return false;
    const std::size_t take = rest_.size() < chunk_ ? rest_.size() : chunk_;
    piece.payload = rest_.substr(0, take);
    rest_.remove_prefix(take);
    piece.last = rest_.empty();
    piece.command = make_bdat_command(take, piece.last);
    done_ = piece.last;
    return true;
  }

 private:
  std::string_view rest_;
  std::size_t chunk_;
  bool done_ = false;
};

}  // namespace smtpwire::wire

#endif  // SMTPWIRE_WIRE_BDAT_HPP
