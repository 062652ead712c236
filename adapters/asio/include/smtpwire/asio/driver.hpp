// smtpwire::asio_adapter — an asynchronous session driver for standalone
// Asio (1.22, <asio.hpp>): runs one session over a connected
// asio::ip::tcp::socket until the session is over and its last output is
// written. Session is smtpwire::client, smtpwire::server, or anything with
// their network-side shape (receive / output / consume_output /
// next_event, optionally transport_eof and engine()), such as the OpenSSL
// glue's tls_session<client> and tls_session<server>: TLS runs inside the
// glue, so the STARTTLS cut stays exact and this driver only moves octets.
//
// Theory of operation. The driver is full duplex: a read, a write and a
// timer wait may be outstanding at once. Every completion runs one "drive"
// step:
//  - octets read and not yet taken are offered to receive() (what it does
//    not take is offered again, first, after the events are pulled);
//  - every event of next_event() goes to the handler, `h(session, event)`;
//  - a server decision still pending after the handler returned is
//    answered with temp_fail() (4yz), so that no session stalls: decide in
//    the handler;
//  - the engine's clock is armed (check_time(now)) and an asio::steady_timer
//    waits for its deadline() (RFC 5321 §4.5.3.2), then check_time(now)
//    lets the engine time out (server: 421 4.4.2 and closed; client: an
//    error event with errc::timeout);
//  - the session's output is copied into the driver's write buffer,
//    consumed, and written; only one write is outstanding, so an engine
//    whose output is not drained meets its own back-pressure;
//  - a read is outstanding only while the read buffer has room (a session
//    that takes no more input is held by TCP flow control);
//  - at end of stream transport_eof() is called when Session has it.
// The handler is also called with a std::monostate event each time all
// output has been written while the session is not over: the moment to
// pass more message content (client::send_content takes what fits). A
// handler returning bool stops the driver (run_errc::cancelled) by
// returning false.
//
// Completion. The operation completes with a run_result once the engine is
// over (server closed; client closed or failed) and its output written, or
// on the first transport error, end of stream before the engine is over
// (run_errc::connection_closed; pending events were still pulled first, so
// a buffered QUIT is answered), an idle or flush timeout, or cancellation.
// The protocol outcome is the engine's (state(), error(), tls_error()).
// The socket is not closed here.
//
// Threads and lifetimes. The socket, the session and the handler's
// captures must outlive the operation. Intermediate handlers run on the
// socket's executor: with several threads running the io_context, make the
// socket on a strand (asio::make_strand). The completion handler is
// dispatched to its associated executor (the socket's by default), so
// async_run works with callbacks, asio::use_awaitable, asio::use_future …
// No exception is thrown by the driver: errors are in run_result.
//
// PROXY protocol. Behind a load balancer that sends a PROXY v1/v2 header
// (HAProxy's send-proxy / send-proxy-v2), call async_read_proxy() on the
// accepted socket first: it reads exactly the header through a
// wire::proxy_reader, bounded by a timeout, and completes with the octets
// read after it (`rest`); make the Session then (the header names the
// client, wire::proxy_reader::header()) and pass `rest` to async_run() as
// run_options::initial_input, so the engine sees the stream from its first
// SMTP octet. Trust is the application's, as with the POSIX server loop:
// use it only on listeners the balancer alone can reach, and compare
// socket.remote_endpoint() with the balancers' addresses before reading.
#ifndef SMTPWIRE_ASIO_DRIVER_HPP
#define SMTPWIRE_ASIO_DRIVER_HPP

#include <smtpwire/client.hpp>
#include <smtpwire/detail/driver.hpp>
#include <smtpwire/server.hpp>
#include <smtpwire/wire/proxy.hpp>

// Standalone Asio does not notice -fno-exceptions / -fno-rtti by itself.
// Without exceptions the application defines
//   namespace asio::detail { template <class E> void throw_exception(const E&); }
// (Asio calls it only from its throwing overloads, which this driver does
// not use).
#if !defined(__cpp_exceptions) && !defined(__EXCEPTIONS) && !defined(ASIO_NO_EXCEPTIONS)
#define ASIO_NO_EXCEPTIONS 1
#endif
#if !defined(__cpp_rtti) && !defined(__GXX_RTTI) && !defined(ASIO_NO_TYPEID)
#define ASIO_NO_TYPEID 1
#endif

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#if __cplusplus >= 202002L && defined(ASIO_HAS_CO_AWAIT)
#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>
#endif

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace smtpwire::asio_adapter {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why the driver ended a run other than by a transport error.
enum class run_errc : int {
  connection_closed = 1,  ///< end of stream (or TLS end) before the engine was over
  idle_timeout,           ///< the engine had no deadline and nothing happened for idle_limit
  flush_timeout,          ///< the last output was not written within flush_limit
  cancelled,              ///< the handler returned false
};

/// The category of run_errc ("smtpwire.asio").
inline const std::error_category& run_category() noexcept {
  struct category final : std::error_category {
    const char* name() const noexcept override { return "smtpwire.asio"; }
    std::string message(int v) const override {
      switch (static_cast<run_errc>(v)) {
        case run_errc::connection_closed:
          return "connection closed before the session was over";
        case run_errc::idle_timeout:
          return "idle timeout";
        case run_errc::flush_timeout:
          return "timed out writing the last output";
        case run_errc::cancelled:
          return "cancelled by the handler";
      }
      return "unknown";
    }
  };
  static const category c;
  return c;
}

/// Makes a std::error_code of run_category().
inline std::error_code make_error_code(run_errc e) noexcept {
  return std::error_code(static_cast<int>(e), run_category());
}

}  // namespace smtpwire::asio_adapter

template <>
struct std::is_error_code_enum<smtpwire::asio_adapter::run_errc> : std::true_type {};

namespace smtpwire::asio_adapter {

// ---------------------------------------------------------------------------
// Options and result
// ---------------------------------------------------------------------------

/// Bounds and buffer sizes of async_run().
struct run_options {
  /// Octets read from the socket at a time (one buffer, allocated once).
  std::size_t read_buffer = 16384;  ///< default 16 KiB; no RFC minimum
  /// Longest wait while the engine has no deadline (a client waiting for
  /// its application, a server waiting for its output to drain): then
  /// run_errc::idle_timeout.
  std::chrono::milliseconds idle_limit{300000};  ///< default 5 min; RFC 5321 sets none
  /// Time to write the last output (221, 421, QUIT, close_notify) once the
  /// engine is over: then run_errc::flush_timeout.
  std::chrono::milliseconds flush_limit{10000};  ///< default 10 s; RFC 5321 sets none
  /// Octets already read from the socket that the session takes first
  /// (proxy_read_result::rest after async_read_proxy); copied when the run
  /// starts, so the view need only live until async_run() returns.
  std::string_view initial_input;
};

/// What async_run() completes with.
struct run_result {
  /// Empty when the engine ran to its end and the output was written; else
  /// the transport's error (asio::error::…, system errno) or a run_errc.
  std::error_code error;
  std::uint64_t bytes_in = 0;   ///< octets read from the socket
  std::uint64_t bytes_out = 0;  ///< octets written to the socket
};

/// What async_read_proxy() completes with.
struct proxy_read_result {
  /// Empty when a header was read (status header) or, in optional mode,
  /// none was sent (status absent); otherwise a proxy_* smtpwire errc (the
  /// header's fault; errc::proxy_timeout at the deadline), or the transport's
  /// error. On an error, refuse: close, or first write reply_for(errc)'s
  /// 421 line (wire/proxy.hpp).
  std::error_code error;
  smtpwire::wire::proxy_status status = smtpwire::wire::proxy_status::error;
  /// The octets read after the header (after a partial signature replayed
  /// in optional mode): the start of the SMTP stream, for
  /// run_options::initial_input.
  std::string rest;
};

namespace detail {

// The session traits every driver shares (smtpwire/detail/driver.hpp).
using smtpwire::detail::deadline_value;
using smtpwire::detail::engine_of;
using smtpwire::detail::engine_over;
using smtpwire::detail::has_closed;
using smtpwire::detail::has_decisions;
using smtpwire::detail::has_engine;
using smtpwire::detail::has_transport_eof;
using smtpwire::detail::invoke_handler;

/// Received octets not yet taken by the session: [begin, end) of one
/// fixed buffer, compacted when the free tail runs out.
class input_buffer {
 public:
  explicit input_buffer(std::size_t cap)
      : buf_(new char[cap == 0 ? 1 : cap]), cap_(cap ? cap : 1) {}
  std::string_view view() const noexcept { return {buf_.get() + beg_, end_ - beg_}; }
  bool empty() const noexcept { return beg_ == end_; }
  void consume(std::size_t n) noexcept {
    beg_ += n < end_ - beg_ ? n : end_ - beg_;
    if (beg_ == end_) beg_ = end_ = 0;
  }
  /// Free room at the tail after compaction.
  std::size_t prepare() noexcept {
    if (end_ == cap_ && beg_ != 0) {
      std::memmove(buf_.get(), buf_.get() + beg_, end_ - beg_);
      end_ -= beg_;
      beg_ = 0;
    }
    return cap_ - end_;
  }
  char* tail() noexcept { return buf_.get() + end_; }
  void commit(std::size_t n) noexcept { end_ += n; }

 private:
  std::unique_ptr<char[]> buf_;
  std::size_t cap_;
  std::size_t beg_ = 0;
  std::size_t end_ = 0;
};

/// The state of one async_run(): shared by its outstanding read, write and
/// timer wait; completes when the run is decided and none is outstanding.
template <class Session, class Handler, class Completion>
class run_op : public std::enable_shared_from_this<run_op<Session, Handler, Completion>> {
 public:
  using clock = std::chrono::steady_clock;
  using socket_type = asio::ip::tcp::socket;

  run_op(socket_type& sock, Session& s, Handler h, Completion c, const run_options& o)
      : sock_(sock),
        s_(s),
        h_(std::move(h)),
        done_handler_(std::move(c)),
        opts_(o),
        in_(o.read_buffer > o.initial_input.size() ? o.read_buffer : o.initial_input.size()),
        timer_(sock.get_executor()),
        idle_since_(clock::now()) {
    if (!o.initial_input.empty()) {
      std::memcpy(in_.tail(), o.initial_input.data(), o.initial_input.size());
      in_.commit(o.initial_input.size());
    }
    opts_.initial_input = {};  // copied: the caller's storage may go away
  }

  // The first step runs on the socket's executor too: on a strand, no
  // completion may run beside it.
  void start() {
    auto self = this->shared_from_this();
    asio::dispatch(sock_.get_executor(), [self] { self->drive(); });
  }

 private:
  using self_ptr = std::shared_ptr<run_op>;

  auto& engine() noexcept { return engine_of(s_); }

  // Offers buffered input and hands every event to the handler until
  // neither makes progress; false when the handler cancelled.
  bool pump() {
    auto& e = engine();
    for (;;) {
      bool progress = false;
      if (!in_.empty()) {
        const std::size_t n = s_.receive(in_.view());
        in_.consume(n);
        progress = n != 0;
      }
      for (;;) {
        auto ev = s_.next_event();
        if (std::holds_alternative<std::monostate>(ev)) break;
        progress = true;
        if (!invoke_handler(h_, s_, ev)) return false;
        if constexpr (has_decisions<std::decay_t<decltype(e)>>::value) {
          while (e.awaiting_decision())
            if (e.temp_fail() != smtpwire::errc::ok) break;
        }
      }
      if (!progress) return true;
    }
  }

  // The engine is over, or the glue says the session is done.
  bool session_done() noexcept {
    if (engine_over(engine())) return true;
    if constexpr (has_engine<Session>::value && has_closed<Session>::value)
      return s_.closed();
    else
      return false;
  }

  // One step after any completion (see the header comment).
  void drive() {
    if (decided_) return maybe_complete();
    for (int round = 0;; ++round) {
      engine().check_time(clock::now());
      if (!pump()) return finish(run_errc::cancelled);
      engine().check_time(clock::now());  // arms the clock of the wait that begins
      if (!pump()) return finish(run_errc::cancelled);
      // An emptied output invites more content (client::send_content).
      if (invite_ && !writing_ && s_.output().empty() && !engine_over(engine())) {
        invite_ = false;
        std::decay_t<decltype(s_.next_event())> idle{};  // holds std::monostate
        if (!invoke_handler(h_, s_, idle)) return finish(run_errc::cancelled);
        continue;  // the handler may have queued output or events
      }
      break;
    }
    const bool over = engine_over(engine());
    if (!writing_ && !s_.output().empty()) start_write();
    if (!writing_ && s_.output().empty() && session_done()) {
      if (over) return finish(std::error_code());
      return finish(run_errc::connection_closed);
    }
    if (eof_ && !over) return finish(run_errc::connection_closed);
    if (!reading_ && !eof_ && !over && in_.prepare() != 0) start_read();
    arm_timer(over);
  }

  void start_write() {
    const std::string_view out = s_.output();
    wbuf_.assign(out.data(), out.size());
    (void)s_.consume_output(out.size());
    writing_ = true;
    auto self = this->shared_from_this();
    asio::async_write(
        sock_, asio::buffer(wbuf_),
        asio::bind_executor(sock_.get_executor(), [self](const std::error_code& ec, std::size_t n) {
          self->on_write(ec, n);
        }));
  }

  void on_write(const std::error_code& ec, std::size_t n) {
    writing_ = false;
    r_.bytes_out += n;
    if (decided_) return maybe_complete();
    if (ec) {
      // After the peer closed, nobody reads the engine's last words.
      if (eof_ && engine_over(engine())) return finish(std::error_code());
      return finish(ec);
    }
    idle_since_ = clock::now();
    invite_ = true;
    drive();
  }

  void start_read() {
    reading_ = true;
    auto self = this->shared_from_this();
    sock_.async_read_some(
        asio::buffer(in_.tail(), in_.prepare()),
        asio::bind_executor(sock_.get_executor(), [self](const std::error_code& ec, std::size_t n) {
          self->on_read(ec, n);
        }));
  }

  void on_read(const std::error_code& ec, std::size_t n) {
    reading_ = false;
    if (decided_) return maybe_complete();
    if (n != 0) {
      in_.commit(n);
      r_.bytes_in += n;
      idle_since_ = clock::now();
    }
    if (ec == asio::error::eof) {
      eof_ = true;
      // Octets read before the EOF go first; then the end of input.
      if (!pump()) return finish(run_errc::cancelled);
      if constexpr (has_transport_eof<Session>::value) s_.transport_eof();
    } else if (ec) {
      return finish(ec);
    }
    drive();
  }

  // Keeps one timer wait outstanding at the earliest bound: the engine's
  // deadline, the idle limit, or (once over) the flush limit.
  void arm_timer(bool over) {
    const clock::time_point now = clock::now();
    if (over && flush_until_ == clock::time_point::max()) flush_until_ = now + opts_.flush_limit;
    const auto ed = deadline_value(engine().deadline());
    const clock::time_point until = over ? flush_until_ : ed ? *ed : idle_since_ + opts_.idle_limit;
    if (waiting_ && until == armed_) return;
    armed_ = until;
    timer_.expires_at(until);  // cancels a wait for an older bound
    ++generation_;
    waiting_ = true;
    ++timer_waits_;
    auto self = this->shared_from_this();
    const std::uint64_t gen = generation_;
    timer_.async_wait(asio::bind_executor(
        sock_.get_executor(), [self, gen](const std::error_code& ec) { self->on_timer(ec, gen); }));
  }

  void on_timer(const std::error_code& ec, std::uint64_t gen) {
    --timer_waits_;
    if (decided_) return maybe_complete();
    if (gen != generation_) return;  // superseded by a newer wait
    waiting_ = false;
    if (ec && ec != asio::error::operation_aborted) return finish(ec);
    const clock::time_point now = clock::now();
    if (now < armed_) return drive();
    if (engine_over(engine())) return finish(run_errc::flush_timeout);
    const auto ed = deadline_value(engine().deadline());
    if (ed && now >= *ed) return drive();  // check_time lets the engine time out
    if (ed) return drive();                // the engine's deadline moved
    if (now >= idle_since_ + opts_.idle_limit) return finish(run_errc::idle_timeout);
    drive();
  }

  void finish(std::error_code ec) {
    if (decided_) return;
    decided_ = true;
    r_.error = ec;
    std::error_code ignored;
    if (reading_ || writing_) sock_.cancel(ignored);
    timer_.cancel();
    maybe_complete();
  }

  void maybe_complete() {
    if (completed_ || reading_ || writing_ || timer_waits_ != 0) return;
    completed_ = true;
    auto ex = asio::get_associated_executor(done_handler_, sock_.get_executor());
    asio::dispatch(asio::bind_executor(
        ex, [h = std::move(done_handler_), r = r_]() mutable { std::move(h)(r); }));
  }

  socket_type& sock_;
  Session& s_;
  Handler h_;
  Completion done_handler_;
  run_options opts_;
  input_buffer in_;
  std::string wbuf_;
  asio::steady_timer timer_;
  run_result r_;
  clock::time_point idle_since_;
  clock::time_point flush_until_ = clock::time_point::max();
  clock::time_point armed_ = clock::time_point::max();
  std::uint64_t generation_ = 0;
  int timer_waits_ = 0;
  bool waiting_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool eof_ = false;
  bool invite_ = false;  // output was written since the last monostate call
  bool decided_ = false;
  bool completed_ = false;
};

/// One async_read_proxy(): a read loop and a timer; completes once both
/// are idle.
template <class Completion>
class proxy_op : public std::enable_shared_from_this<proxy_op<Completion>> {
 public:
  using socket_type = asio::ip::tcp::socket;

  proxy_op(socket_type& sock, smtpwire::wire::proxy_reader& r, std::chrono::milliseconds limit,
           Completion c)
      : sock_(sock), reader_(r), limit_(limit), done_(std::move(c)), timer_(sock.get_executor()) {}

  void start() {
    auto self = this->shared_from_this();
    asio::dispatch(sock_.get_executor(), [self] {
      self->timer_.expires_after(self->limit_);
      self->timing_ = true;
      self->timer_.async_wait(asio::bind_executor(
          self->sock_.get_executor(), [self](const std::error_code& ec) { self->on_timer(ec); }));
      self->read();
    });
  }

 private:
  void read() {
    reading_ = true;
    auto self = this->shared_from_this();
    sock_.async_read_some(
        asio::buffer(buf_, sizeof buf_),
        asio::bind_executor(sock_.get_executor(), [self](const std::error_code& ec, std::size_t n) {
          self->on_read(ec, n);
        }));
  }

  void on_read(const std::error_code& ec, std::size_t n) {
    reading_ = false;
    if (decided_) return maybe_complete();
    const std::string_view got(buf_, n);
    smtpwire::wire::proxy_result pr = reader_.read(got);
    if (pr.status == smtpwire::wire::proxy_status::need_more) {
      if (ec == asio::error::eof) {
        pr = reader_.finish();
      } else if (ec) {
        return finish(ec, smtpwire::wire::proxy_status::error);
      } else {
        return read();
      }
    }
    settle(pr, got);
  }

  void on_timer(const std::error_code& ec) {
    timing_ = false;
    if (decided_ || ec == asio::error::operation_aborted) return maybe_complete();
    // The deadline: optional mode takes a silent peer as SMTP (absent);
    // otherwise the header did not come in time.
    smtpwire::wire::proxy_result pr = reader_.finish();
    if (pr.status == smtpwire::wire::proxy_status::error) pr.error = smtpwire::errc::proxy_timeout;
    settle(pr, {});
  }

  void settle(const smtpwire::wire::proxy_result& pr, std::string_view got) {
    if (pr.status == smtpwire::wire::proxy_status::error)
      return finish(smtpwire::make_error_code(pr.error), pr.status);
    r_.rest.assign(pr.replay.data(), pr.replay.size());
    r_.rest.append(got.substr(pr.consumed < got.size() ? pr.consumed : got.size()));
    finish({}, pr.status);
  }

  void finish(std::error_code ec, smtpwire::wire::proxy_status st) {
    if (decided_) return;
    decided_ = true;
    r_.error = ec;
    r_.status = st;
    std::error_code ignored;
    if (reading_) sock_.cancel(ignored);
    if (timing_) timer_.cancel();
    maybe_complete();
  }

  void maybe_complete() {
    if (completed_ || reading_ || timing_) return;
    completed_ = true;
    auto ex = asio::get_associated_executor(done_, sock_.get_executor());
    asio::dispatch(asio::bind_executor(
        ex, [h = std::move(done_), r = std::move(r_)]() mutable { std::move(h)(std::move(r)); }));
  }

  socket_type& sock_;
  smtpwire::wire::proxy_reader& reader_;
  std::chrono::milliseconds limit_;
  Completion done_;
  asio::steady_timer timer_;
  proxy_read_result r_;
  // One v1 line (107) or a v2 header with a modest TLV area fits; a bigger
  // header takes more reads, never more memory than the reader's own.
  char buf_[1024];
  bool reading_ = false;
  bool timing_ = false;
  bool decided_ = false;
  bool completed_ = false;
};

}  // namespace detail

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

/// Runs `s` over the connected socket `sock` until the session is over and
/// its output written (see the header comment), calling `on_event(s, ev)`
/// for every event of `s.next_event()` and with a std::monostate event when
/// all output has been written while the engine is not over. Server
/// decisions are made in the handler; one still pending after it returns
/// is answered with temp_fail(). Engine timeouts come from
/// engine.deadline() / engine.check_time(), the engine being `s.engine()`
/// when Session has it, else `s`.
/// Completion signature: void(run_result). `sock`, `s` and what `on_event`
/// refers to must outlive the operation; the socket is not closed.
template <class Session, class Handler, class CompletionToken>
auto async_run(asio::ip::tcp::socket& sock, Session& s, Handler on_event, CompletionToken&& token,
               const run_options& options = {}) {
  return asio::async_initiate<CompletionToken, void(run_result)>(
      [&sock, &s, options](auto completion, Handler h) {
        using op_type = detail::run_op<Session, Handler, decltype(completion)>;
        std::make_shared<op_type>(sock, s, std::move(h), std::move(completion), options)->start();
      },
      token, std::move(on_event));
}

/// Reads one PROXY protocol header from the connected socket `sock` through
/// `reader` (its proxy_options: versions, required or optional, TLV bound),
/// waiting at most `limit` for all of it (Postfix's
/// smtpd_upstream_proxy_timeout defaults to 5 s). Completion signature:
/// void(proxy_read_result). Reads in chunks of at most 1 KiB and never
/// writes. On success the header is reader.header(), valid until the
/// reader is reset or destroyed: keep the reader alive as long as the
/// connection uses the header's TLV views. `sock` and `reader` must
/// outlive the operation; the socket is not closed.
template <class CompletionToken>
auto async_read_proxy(asio::ip::tcp::socket& sock, smtpwire::wire::proxy_reader& reader,
                      std::chrono::milliseconds limit, CompletionToken&& token) {
  return asio::async_initiate<CompletionToken, void(proxy_read_result)>(
      [&sock, &reader, limit](auto completion) {
        using op_type = detail::proxy_op<decltype(completion)>;
        std::make_shared<op_type>(sock, reader, limit, std::move(completion))->start();
      },
      token);
}

#if __cplusplus >= 202002L && defined(ASIO_HAS_CO_AWAIT)
/// The C++20 awaitable form: `run_result r = co_await run(sock, s, h);`.
/// Same behaviour as async_run(); never throws (errors are in the result).
template <class Session, class Handler>
asio::awaitable<run_result> run(asio::ip::tcp::socket& sock, Session& s, Handler on_event,
                                run_options options = {}) {
  co_return co_await async_run(sock, s, std::move(on_event), asio::use_awaitable, options);
}
#endif

}  // namespace smtpwire::asio_adapter

#endif  // SMTPWIRE_ASIO_DRIVER_HPP
