// smtpwire::posix — a blocking client driver: runs one session (a
// smtpwire::client, or anything with its network-side shape such as the
// OpenSSL glue's tls_session<client>) over a connected socket until the
// session is over and its last output is written.
//
// Every wait is a poll() bounded by the engine's deadline() (RFC 5321
// §4.5.3.2 timeouts, reported by the engine as an error event), by
// options.idle_limit when the engine waits for the application, and by
// options.flush_limit once the session is over. The socket is used
// non-blocking (connect_tcp() returns it so); nothing here touches signals:
// send() uses MSG_NOSIGNAL.
//
// The application acts in the handler, `h(session, event)`, called for each
// event the session produces (ready → send_mail / authenticate / quit,
// send_content → send_content / end_content, …). It is also called with a
// std::monostate event each time the driver has written all pending output
// while the session is not over: the moment to pass more message content
// (client::send_content takes what fits in its output buffer). A handler
// returning bool stops the driver when it returns false.
#ifndef SMTPWIRE_POSIX_CLIENT_DRIVER_HPP
#define SMTPWIRE_POSIX_CLIENT_DRIVER_HPP

#include <smtpwire/posix/error.hpp>
#include <smtpwire/posix/socket.hpp>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace smtpwire::posix {

/// Bounds and buffer sizes of run_client().
struct client_options {
  /// Octets read from the socket at a time (one buffer, allocated once).
  std::size_t read_buffer = 16384;  ///< default 16 KiB; no RFC minimum
  /// Longest wait while the engine has no deadline (it waits for the
  /// handler, which did nothing): then posix_errc::idle_timeout.
  std::chrono::milliseconds idle_limit{300000};  ///< default 5 min; RFC 5321 sets none
  /// Time to write the last output (QUIT, close_notify) once the session is
  /// over: then posix_errc::flush_timeout.
  std::chrono::milliseconds flush_limit{10000};  ///< default 10 s; RFC 5321 sets none
};

/// What run_client() reports. The protocol outcome (closed by 221/421, or
/// failed with an errc) is the engine's: engine.state() / engine.error().
struct client_run_result {
  /// Empty when the session ran to its end and the output was written;
  /// else the transport's error (system errno), or a posix_errc:
  /// connection_closed, idle_timeout, flush_timeout, cancelled.
  std::error_code error;
  std::uint64_t bytes_in = 0;   ///< octets read from the socket
  std::uint64_t bytes_out = 0;  ///< octets written to the socket
};

/// Runs `s` over the connected socket `fd` (not closed here) until the
/// session is over (engine_over()) and its output is written, calling
/// `on_event(s, event)` for every event of `s.next_event()` and with a
/// std::monostate event when the output has been drained (see the header
/// comment). Reads are offered to `s.receive()`; bytes it does not take
/// are kept and offered again after the events are pulled. At end of stream
/// the driver calls `s.transport_eof()` when Session has it; a peer that
/// closes before the session is over is posix_errc::connection_closed (a
/// reset, e.g. when the peer closed with our bytes unread, is the system's
/// std::errc::connection_reset). `fd` < 0 is EBADF.
/// Engine timeouts come from `engine.deadline()` / `engine.check_time()`
/// (the engine is `s.engine()` when Session has it, else `s`).
template <class Session, class Handler>
client_run_result run_client(int fd, Session& s, Handler&& on_event, const client_options& o = {}) {
  using clock = std::chrono::steady_clock;
  client_run_result r;
  if (fd < 0) {
    r.error = system_error(EBADF);
    return r;
  }
  auto& engine = detail::engine_of(s);
  detail::input_buffer in(o.read_buffer);
  bool eof = false;
  clock::time_point flush_until = clock::time_point::max();
  clock::time_point idle_since = clock::now();

  // Offers buffered input and hands every event to the handler until
  // neither makes progress; false when the handler cancelled.
  auto pump = [&]() -> bool {
    for (;;) {
      bool progress = false;
      if (!in.empty()) {
        const std::size_t n = s.receive(in.view());
        in.consume(std::min(n, in.size()));
        progress = n != 0;
      }
      for (;;) {
        auto ev = s.next_event();
        if (std::holds_alternative<std::monostate>(ev)) break;
        progress = true;
        if (!detail::invoke_handler(on_event, s, ev)) return false;
      }
      if (!progress) return true;
    }
  };

  for (;;) {
    clock::time_point now = clock::now();
    engine.check_time(now);
    if (!pump()) {
      r.error = posix_errc::cancelled;
      return r;
    }
    // Write what the session has; an emptied output invites more content.
    bool wrote_all = false;
    while (!s.output().empty()) {
      const long n = detail::send_some(fd, s.output());
      if (n < 0) {
        r.error = detail::last_error();
        return r;
      }
      if (n == 0) break;
      s.consume_output(static_cast<std::size_t>(n));
      r.bytes_out += static_cast<std::uint64_t>(n);
      idle_since = now;
      wrote_all = s.output().empty();
    }
    if (wrote_all && !engine_over(engine)) {
      std::decay_t<decltype(s.next_event())> idle{};  // holds std::monostate
      if (!detail::invoke_handler(on_event, s, idle)) {
        r.error = posix_errc::cancelled;
        return r;
      }
      continue;  // the handler may have queued output or events
    }
    now = clock::now();
    engine.check_time(now);  // arms the clock of the wait that just began
    const bool over = engine_over(engine);
    if (over && s.output().empty()) return r;
    if (over && flush_until == clock::time_point::max()) flush_until = now + o.flush_limit;
    if (eof && !over) {
      // Whatever the peer sent before closing has been pumped.
      r.error = posix_errc::connection_closed;
      return r;
    }
    if (eof && !s.output().empty()) {
      // Nobody will read the last output (the peer closed); it is not an error.
      return r;
    }

    // Wait: readable when there is room, writable when there is output.
    const auto engine_deadline = detail::deadline_value(engine.deadline());
    clock::time_point until = over              ? flush_until
                              : engine_deadline ? *engine_deadline
                                                : idle_since + o.idle_limit;
    short events = 0;
    if (!eof && !over && in.prepare() != 0) events |= POLLIN;
    if (!s.output().empty()) events |= POLLOUT;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, detail::wait_ms(now, until));
    if (n < 0) {
      if (errno == EINTR) continue;
      r.error = detail::last_error();
      return r;
    }
    now = clock::now();
    if (n == 0) {
      if (now < until) continue;
      if (over) {
        r.error = posix_errc::flush_timeout;
        return r;
      }
      if (engine_deadline && now >= *engine_deadline) continue;  // check_time reports it
      r.error = posix_errc::idle_timeout;
      return r;
    }
    if ((p.revents & POLLNVAL) != 0) {
      r.error = system_error(EBADF);  // closed under the driver's feet
      return r;
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (events & POLLIN) != 0) {
      const detail::recv_result rr = detail::recv_some(fd, in.tail(), in.prepare());
      if (rr.error) {
        r.error = rr.error;
        return r;
      }
      if (rr.n != 0) {
        in.commit(rr.n);
        r.bytes_in += rr.n;
        idle_since = now;
      }
      if (rr.eof) {
        eof = true;
        if constexpr (detail::has_transport_eof<Session>::value) s.transport_eof();
      }
    } else if ((p.revents & POLLHUP) != 0 && (events & POLLOUT) == 0 && !eof) {
      eof = true;  // hung up while the session could not take more input
      if constexpr (detail::has_transport_eof<Session>::value) s.transport_eof();
    } else if ((p.revents & POLLERR) != 0 && (events & POLLOUT) == 0) {
      int err = 0;
      socklen_t len = sizeof err;
      (void)::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      r.error = system_error(err != 0 ? err : EIO);
      return r;
    }
  }
}

}  // namespace smtpwire::posix

#endif  // SMTPWIRE_POSIX_CLIENT_DRIVER_HPP
