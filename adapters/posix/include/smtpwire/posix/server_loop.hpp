// smtpwire::posix — a non-blocking server loop: one thread drives many
// sessions (smtpwire::server, or anything with its network-side shape such
// as the OpenSSL glue's tls_session<server>) over epoll (Linux) or poll()
// (elsewhere; or chosen with the Poller template argument, or
// SMTPWIRE_POSIX_USE_POLL for the default).
//
// Per accepted connection the application's factory makes a Session; each
// event the session produces goes to the application's handler together
// with the connection (its id, peer address, Session and a per-connection
// Context the application owns). The handler decides (accept(), reject(),
// temp_fail() on the engine) before it returns: a decision still pending
// afterwards is answered with temp_fail() (4yz) so that no session stalls
// (LMTP: the handler makes one data_end decision per accepted recipient).
//
// Bounds. Each session has one deadline: the engine's (RFC 5321 §4.5.3.2,
// from deadline()/check_time()), or, while its output is not drained,
// options.write_timeout since the last write progress; a min-heap of
// deadlines sets the poll timeout. Back-pressure: a session is not read
// while the bytes it has not taken reach options.read_buffer or its unsent
// output exceeds options.output_high_water (the server engine itself stops
// parsing commands beyond limits.output_backlog), so a client that
// pipelines without reading is held by TCP flow control, not buffered.
//
// Memory. Sockets are read into one buffer per loop (options.read_buffer);
// the Session copies what it takes into its own input buffer. Only the
// octets a Session did not take are kept with its connection, in a
// remainder allocated when there are some and freed once they are taken.
// An idle connection holds its Session, its Context and about 0.3 KiB of
// loop state: about 2.4 KiB in all with an idle smtpwire::server (tools/
// smtpwire-sink: 2.7 KiB of RSS per idle session, 3.6 KiB with STARTTLS
// offered through the OpenSSL glue; docs/benchmarks.md, "idle").
// Accepting pauses at options.max_sessions (and for 100 ms when the process
// runs out of descriptors).
//
// Shutdown. stop() (safe from another thread and from a signal handler: an
// atomic flag and a write to a self-pipe) closes the listening sockets and
// lets open sessions finish until options.grace has passed; then each
// remaining session's engine is told server::shutdown() (421 4.3.2, RFC 5321
// §3.8), what the socket takes of that reply without blocking is sent, and
// the connection is closed.
//
// One loop per core: run one server_loop per thread, each listening with
// listen_options::reuse_port on the same address; the kernel spreads the
// connections.
//
// PROXY protocol (server_loop_options::proxy_protocol, HAProxy's
// proxy-protocol.txt, v1 and v2). When set, every accepted connection first
// goes through a wire::proxy_reader: the factory is not called, no Session
// exists and nothing is written until the header is complete; the octets
// after the header (in the same segment or later) reach the Session
// unchanged. The connection's peer() is then the client the header names
// (transport_peer() stays the load balancer) and proxy() exposes the
// header (TLVs, PP2 SSL facts) for the life of the connection. A connection
// whose TCP peer is not in allowed_peers, whose header is invalid, missing
// while required, or not complete within header_timeout is refused: closed
// before any Session is made (counted in server_counters::refused, told to
// on_proxy_refused), after the errc's reply_for() line (421, wire/proxy.hpp:
// the fault is on the server's side of the path, so the client retries) is
// written without blocking, or silently with reply_on_refusal off (as
// HAProxy does).
//
// Trust: the header rewrites who the client is. Enable the option only on
// listeners that the load balancer alone can reach (a private interface, a
// firewall rule), and list the balancers in allowed_peers as a second
// fence: otherwise any client can claim any address and so pass
// address-based relay control, rate limits and DNSBL checks.
#ifndef SMTPWIRE_POSIX_SERVER_LOOP_HPP
#define SMTPWIRE_POSIX_SERVER_LOOP_HPP

#include <smtpwire/posix/address.hpp>
#include <smtpwire/posix/error.hpp>
#include <smtpwire/posix/socket.hpp>
#include <smtpwire/wire/proxy.hpp>

#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace smtpwire::posix {

/// How a server_loop reads the PROXY protocol header that a load balancer
/// sends before SMTP (see the header comment for the trust policy).
struct proxy_listen_options {
  /// Versions, required or optional, TLV bound (wire::proxy_options; by
  /// default v1 and v2, required, 1024 octets of TLVs). Optional mode takes
  /// a connection without a header at its TCP address and greets it only
  /// after header_timeout (SMTP clients wait for the greeting), so it suits
  /// a migration, not a steady state.
  wire::proxy_options reader;
  /// The whole header must arrive within this time from accept().
  std::chrono::milliseconds header_timeout{
      5000};  ///< default 5 s (Postfix's smtpd_upstream_proxy_timeout); no RFC value
  /// The load balancers: when not empty, a connection whose TCP peer
  /// address (the port is ignored; an IPv4-mapped IPv6 peer compares as
  /// IPv4) is none of these is refused before a header is read
  /// (errc::proxy_peer_untrusted). Empty: every peer may send a header.
  std::vector<socket_address> allowed_peers;
  /// Write reply_for(errc)'s 421 line before closing a refused connection
  /// (default true); false closes silently.
  bool reply_on_refusal = true;
};

/// True when `a` and `b` are the same IP address (ports ignored; an
/// IPv4-mapped IPv6 address equals its IPv4 address).
inline bool same_host(const socket_address& a, const socket_address& b) noexcept {
  auto octets = [](const socket_address& x, unsigned char* out) -> std::size_t {
    if (x.family() == AF_INET) {
      std::memcpy(out, &reinterpret_cast<const sockaddr_in*>(&x.storage)->sin_addr, 4);
      return 4;
    }
    if (x.family() == AF_INET6) {
      const auto* p = reinterpret_cast<const unsigned char*>(
          &reinterpret_cast<const sockaddr_in6*>(&x.storage)->sin6_addr);
      static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(p, mapped, 12) == 0) {
        std::memcpy(out, p + 12, 4);
        return 4;
      }
      std::memcpy(out, p, 16);
      return 16;
    }
    return 0;
  };
  unsigned char x[16], y[16];
  const std::size_t nx = octets(a, x), ny = octets(b, y);
  return nx != 0 && nx == ny && std::memcmp(x, y, nx) == 0;
}

/// The socket address of a PROXY header's address (empty for unspec).
inline socket_address to_socket_address(const wire::proxy_address& a) noexcept {
  socket_address s;
  if (a.family() == wire::proxy_family::inet) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(a.port());
    std::memcpy(&in.sin_addr, a.data(), 4);
    s = socket_address::from(reinterpret_cast<const sockaddr*>(&in), sizeof in);
  } else if (a.family() == wire::proxy_family::inet6) {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(a.port());
    std::memcpy(&in6.sin6_addr, a.data(), 16);
    s = socket_address::from(reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
  }
  return s;
}

/// Sizes and bounds of a server_loop.
struct server_loop_options {
  /// Open sessions; accepting pauses at this number.
  std::size_t max_sessions = 10000;  ///< default 10000; no RFC value
  /// Octets read from a socket at a time, into one buffer of this size per
  /// loop; also the most octets read but not yet taken by a Session that a
  /// connection keeps (its remainder, allocated only while there are some).
  std::size_t read_buffer = 4096;  ///< default 4 KiB; no RFC value
  /// Unsent output above which a session is not read.
  std::size_t output_high_water = 65536;  ///< default 64 KiB; no RFC value
  /// A session whose pending output makes no progress for this long is
  /// closed (the engine has no deadline while its output is backed up).
  std::chrono::milliseconds write_timeout{300000};  ///< default 5 min (RFC 5321 §4.5.3.2.7's value)
  /// After stop(): how long open sessions may go on.
  std::chrono::milliseconds grace{30000};  ///< default 30 s; no RFC value
  /// Readiness events taken per wait.
  std::size_t events_per_wait = 256;  ///< default 256
  /// Read a PROXY protocol header on every accepted connection before the
  /// Session exists (default unset: no header is read). Only on listeners
  /// that the load balancer alone can reach; see proxy_listen_options.
  std::optional<proxy_listen_options> proxy_protocol;
};

/// Why the loop closed a connection.
enum class close_cause : std::uint8_t {
  engine_closed,  ///< the session was over (QUIT, 421, …) and its output written
  peer_closed,    ///< the peer closed (or reset) before the session was over
  io_error,       ///< a socket error (the error_code says which)
  write_timeout,  ///< the output made no progress for options.write_timeout
  shutdown,       ///< stop() and the grace period passed
};

/// "engine_closed", "peer_closed", "io_error", "write_timeout" or "shutdown".
constexpr std::string_view to_string(close_cause c) noexcept {
  switch (c) {
    case close_cause::engine_closed:
      return "engine_closed";
    case close_cause::peer_closed:
      return "peer_closed";
    case close_cause::io_error:
      return "io_error";
    case close_cause::write_timeout:
      return "write_timeout";
    case close_cause::shutdown:
      return "shutdown";
  }
  return "unknown";
}

/// A snapshot of a loop's counters (safe to take from any thread).
struct server_counters {
  std::uint64_t accepted = 0;  ///< sessions created (factory returned one)
  std::uint64_t open = 0;      ///< sessions open now
  std::uint64_t closed = 0;    ///< sessions closed (accepted == open + closed)
  /// Connections closed before a Session was made: the factory refused
  /// them, or (PROXY protocol) their peer, header or header time was not
  /// acceptable, or stop() came first.
  std::uint64_t refused = 0;
};

/// One readiness report of a poller.
struct ready_event {
  std::uint64_t key = 0;  ///< the key the descriptor was registered with
  bool in = false;        ///< readable (or end of stream)
  bool out = false;       ///< writable
  bool hup = false;       ///< hung up
  bool err = false;       ///< error pending (SO_ERROR)
};

// A Poller: open(); add/modify(fd, key, in, out); remove(fd);
// wait(out, max, timeout_ms) -> false with errno on failure. Level-triggered.

#ifdef __linux__
/// Level-triggered epoll (Linux): O(ready) per wait.
class epoll_poller {
 public:
  /// Creates the epoll instance.
  std::error_code open() {
    fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
    return fd_ ? std::error_code() : detail::last_error();
  }
  /// Registers `fd` under `key`, interested in reading and/or writing.
  std::error_code add(int fd, std::uint64_t key, bool in, bool out) {
    return ctl(EPOLL_CTL_ADD, fd, key, in, out);
  }
  /// Changes the interest of a registered `fd`.
  std::error_code modify(int fd, std::uint64_t key, bool in, bool out) {
    return ctl(EPOLL_CTL_MOD, fd, key, in, out);
  }
  /// Forgets `fd`.
  void remove(int fd) { (void)::epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, nullptr); }
  /// Waits at most `timeout_ms`; fills `out` with up to `max` reports;
  /// false with errno set on failure.
  bool wait(std::vector<ready_event>& out, std::size_t max, int timeout_ms) {
    evs_.resize(max);
    out.clear();
    const int n = ::epoll_wait(fd_.get(), evs_.data(), static_cast<int>(max), timeout_ms);
    if (n < 0) return false;
    for (int i = 0; i < n; ++i) {
      const epoll_event& e = evs_[static_cast<std::size_t>(i)];
      out.push_back(ready_event{e.data.u64, (e.events & EPOLLIN) != 0, (e.events & EPOLLOUT) != 0,
                                (e.events & (EPOLLHUP | EPOLLRDHUP)) != 0,
                                (e.events & EPOLLERR) != 0});
    }
    return true;
  }

 private:
  std::error_code ctl(int op, int fd, std::uint64_t key, bool in, bool out) {
    epoll_event e{};
    e.events = (in ? EPOLLIN : 0u) | (out ? EPOLLOUT : 0u);
    e.data.u64 = key;
    return ::epoll_ctl(fd_.get(), op, fd, &e) == 0 ? std::error_code() : detail::last_error();
  }
  unique_fd fd_;
  std::vector<epoll_event> evs_;
};
#endif

/// poll() (portable): one pollfd per descriptor, O(descriptors) per wait.
class poll_poller {
 public:
  /// Nothing to create.
  std::error_code open() { return {}; }
  /// Registers `fd` under `key`, interested in reading and/or writing.
  std::error_code add(int fd, std::uint64_t key, bool in, bool out) {
    index_[fd] = fds_.size();
    fds_.push_back(pollfd{fd, mask(in, out), 0});
    keys_.push_back(key);
    return {};
  }
  /// Changes the interest of a registered `fd`.
  std::error_code modify(int fd, std::uint64_t key, bool in, bool out) {
    const auto it = index_.find(fd);
    if (it == index_.end()) return system_error(ENOENT);  // not registered
    fds_[it->second].events = mask(in, out);
    keys_[it->second] = key;
    return {};
  }
  /// Forgets `fd`.
  void remove(int fd) {
    const auto it = index_.find(fd);
    if (it == index_.end()) return;
    const std::size_t i = it->second, last = fds_.size() - 1;
    index_.erase(it);
    if (i != last) {
      fds_[i] = fds_[last];
      keys_[i] = keys_[last];
      index_[fds_[i].fd] = i;
    }
    fds_.pop_back();
    keys_.pop_back();
  }
  /// Waits at most `timeout_ms`; fills `out` with up to `max` reports.
  bool wait(std::vector<ready_event>& out, std::size_t max, int timeout_ms) {
    out.clear();
    const int n = ::poll(fds_.data(), static_cast<nfds_t>(fds_.size()), timeout_ms);
    if (n < 0) return false;
    // Start where the last wait stopped so that a long list is served fairly.
    const std::size_t count = fds_.size();
    for (std::size_t k = 0; k < count && out.size() < max; ++k) {
      const std::size_t i = (start_ + k) % count;
      const short r = fds_[i].revents;
      if (r == 0) continue;
      out.push_back(ready_event{keys_[i], (r & POLLIN) != 0, (r & POLLOUT) != 0, (r & POLLHUP) != 0,
                                (r & (POLLERR | POLLNVAL)) != 0});
    }
    start_ = count == 0 ? 0 : (start_ + 1) % count;
    return true;
  }

 private:
  static short mask(bool in, bool out) {
    return static_cast<short>((in ? POLLIN : 0) | (out ? POLLOUT : 0));
  }
  std::vector<pollfd> fds_;
  std::vector<std::uint64_t> keys_;
  std::unordered_map<int, std::size_t> index_;
  std::size_t start_ = 0;
};

#if defined(__linux__) && !defined(SMTPWIRE_POSIX_USE_POLL)
using default_poller = epoll_poller;  ///< epoll on Linux
#else
using default_poller = poll_poller;  ///< poll() elsewhere
#endif

/// The server loop. `Session` has the network-side shape described in
/// socket.hpp; `Context` is per-connection application state (default
/// constructed when the connection is accepted); `Poller` is epoll_poller
/// or poll_poller (default_poller). Every member function runs
/// on the loop's thread, except stop() and counters(), which are safe from
/// any thread (stop() also from a signal handler).
template <class Session, class Context = std::monostate, class Poller = default_poller>
class server_loop {
 public:
  using clock = std::chrono::steady_clock;
  /// What Session::next_event() returns (a variant with std::monostate).
  using event_type = std::decay_t<decltype(std::declval<Session&>().next_event())>;

  /// One accepted connection, as the handlers see it.
  class connection {
   public:
    /// A number unique within this loop (never 0).
    std::uint64_t id() const noexcept { return id_; }
    /// The client's address: with the PROXY option, the source a header of
    /// command PROXY and family TCP4/TCP6 names; otherwise (no option, no
    /// header in optional mode, LOCAL, UNKNOWN, AF_UNIX) the TCP peer.
    const socket_address& peer() const noexcept { return peer_; }
    /// The TCP peer of the socket (the load balancer under the PROXY option).
    const socket_address& transport_peer() const noexcept {
      return proxy_ ? proxy_->transport_peer : peer_;
    }
    /// The PROXY header this connection started with, or nullptr (option
    /// off, or no header in optional mode). It and its views (TLVs, the
    /// PP2_TYPE_SSL fields) stay valid until the connection is closed, i.e.
    /// through the close handler; copy what must live longer.
    const wire::proxy_header* proxy() const noexcept {
      return proxy_ && proxy_->seen ? &proxy_->reader.header() : nullptr;
    }
    /// The session; decide on it (smtpwire::server) or on session().engine() (TLS glue).
    Session& session() noexcept { return *session_; }
    /// The application's state for this connection.
    Context& context() noexcept { return context_; }
    /// The socket (for getsockopt and logs; the loop owns it).
    int fd() const noexcept { return fd_.get(); }

   private:
    friend class server_loop;
    connection(std::uint64_t id, unique_fd fd, const socket_address& peer,
               std::unique_ptr<Session> s)
        : id_(id), fd_(std::move(fd)), peer_(peer), session_(std::move(s)) {}

    // What only a connection under the PROXY option needs (most have none).
    struct proxy_part {
      explicit proxy_part(const wire::proxy_options& o, const socket_address& tp)
          : reader(o), transport_peer(tp) {}
      wire::proxy_reader reader;
      socket_address transport_peer;
      std::string replay;  // a partial signature that turned out to be SMTP (optional mode)
      bool seen = false;   // a header was read
    };

    std::uint64_t id_;
    unique_fd fd_;
    socket_address peer_;
    std::unique_ptr<Session> session_;  // null while a PROXY header is awaited
    std::unique_ptr<proxy_part> proxy_;
    Context context_{};
    // Octets read but not yet taken (by the Session, or the PROXY reader
    // before it exists): empty, and holding no memory, while idle.
    std::string pending_;
    bool eof_ = false;
    bool want_in_ = true;
    bool want_out_ = false;
    clock::time_point deadline_ = clock::time_point::max();
    clock::time_point last_write_{};
  };

  /// Makes the Session for a new connection from `peer` (with the PROXY
  /// option: called once the header is read, with the client it names, see
  /// connection::peer()); nullptr refuses it (the socket is closed at once).
  using factory_fn = std::function<std::unique_ptr<Session>(const socket_address& peer)>;
  /// Receives every event of a session; decide here (see the header comment).
  using event_fn = std::function<void(connection&, event_type&)>;
  /// Told when a connection closes, before its Session is destroyed; the
  /// error_code is set for io_error. Only connections that got a Session.
  using close_fn = std::function<void(connection&, close_cause, std::error_code)>;
  /// Told when the PROXY option refuses a connection: its TCP peer and why
  /// (a proxy_* errc: proxy_peer_untrusted, proxy_timeout, a header error).
  using proxy_refused_fn = std::function<void(const socket_address& peer, errc why)>;

  /// A loop with its poller and wake-up pipe; check error() before use.
  server_loop(factory_fn factory, event_fn on_event, const server_loop_options& o = {})
      : factory_(std::move(factory)), on_event_(std::move(on_event)), opt_(o) {
    if (opt_.max_sessions == 0) opt_.max_sessions = 1;
    if (opt_.events_per_wait == 0) opt_.events_per_wait = 1;
    if (opt_.read_buffer == 0) opt_.read_buffer = 1;
    read_buf_.reset(new char[opt_.read_buffer]);
    error_ = poller_.open();
    int p[2];
    if (!error_ && ::pipe(p) != 0) error_ = detail::last_error();
    if (!error_) {
      wake_read_.reset(p[0]);
      wake_write_.reset(p[1]);
      if (!error_) error_ = detail::make_nonblocking(p[0]);
      if (!error_) error_ = detail::make_nonblocking(p[1]);
      if (!error_) error_ = poller_.add(p[0], wake_key, true, false);
    }
  }
  server_loop(const server_loop&) = delete;
  server_loop& operator=(const server_loop&) = delete;

  /// Why the constructor failed (empty when the loop is usable).
  std::error_code error() const noexcept { return error_; }

  /// Sets the close notification (optional).
  void on_close(close_fn f) { on_close_ = std::move(f); }
  /// Sets the PROXY refusal notification (optional; for logs).
  void on_proxy_refused(proxy_refused_fn f) { on_proxy_refused_ = std::move(f); }

  /// Listens on `host`:`port` (see listen_tcp; port "0" lets the kernel
  /// pick) and stores the bound address in `*bound` when given. Call before
  /// run() or from the loop's handlers.
  std::error_code listen(const std::string& host, const std::string& port,
                         const listen_options& lo = {}, socket_address* bound = nullptr) {
    listen_result r = listen_tcp(host, port, lo);
    if (r.error) return r.error;
    if (bound != nullptr) *bound = r.bound;
    return adopt_listener(std::move(r.fd));
  }

  /// Serves an already listening socket (made non-blocking here).
  std::error_code adopt_listener(unique_fd fd) {
    if (error_) return error_;
    if (auto e = detail::make_nonblocking(fd.get())) return e;
    const std::uint64_t key = listeners_.size() + 1;
    if (auto e = poller_.add(fd.get(), key, !accept_paused_, false)) return e;
    listeners_.push_back(std::move(fd));
    return {};
  }

  /// Runs until stop() and then until every session is closed (or the
  /// grace period ends). Returns the error that stopped it (empty after a
  /// stop()).
  std::error_code run() {
    if (error_) return error_;
    std::vector<ready_event> ready;
    ready.reserve(opt_.events_per_wait);
    for (;;) {
      clock::time_point now = clock::now();
      if (stop_requested_.load(std::memory_order_acquire) && !stopping_) begin_stop(now);
      if (stopping_) {
        if (conns_.empty()) return {};
        if (now >= grace_until_) {
          close_all(close_cause::shutdown);
          return {};
        }
      }
      if (accept_paused_ && !stopping_ && conns_.size() < opt_.max_sessions &&
          now >= accept_resume_at_)
        set_accepting(true);
      expire(now);
      clock::time_point until = clock::time_point::max();
      if (!timers_.empty()) until = timers_.front().at;
      if (stopping_) until = std::min(until, grace_until_);
      if (accept_paused_ && accept_resume_at_ > now) until = std::min(until, accept_resume_at_);
      if (!poller_.wait(ready, opt_.events_per_wait, detail::wait_ms(now, until))) {
        if (errno == EINTR) continue;
        return detail::last_error();
      }
      now = clock::now();
      for (const ready_event& ev : ready) {
        if (ev.key == wake_key) {
          char buf[64];
          while (::read(wake_read_.get(), buf, sizeof buf) > 0) {
          }
        } else if (ev.key < first_session_id) {
          if (!stopping_) accept_from(static_cast<std::size_t>(ev.key - 1), now);
        } else {
          const auto it = conns_.find(ev.key);
          if (it != conns_.end()) on_io(*it->second, ev, now);
        }
      }
    }
  }

  /// Asks run() to stop: no more accepting, sessions get options.grace to
  /// finish. Thread-safe and async-signal-safe.
  void stop() noexcept {
    stop_requested_.store(true, std::memory_order_release);
    const int saved = errno;
    const char b = 1;
    const auto w = ::write(wake_write_.get(), &b, 1);  // a full pipe is already a wake-up
    (void)w;
    errno = saved;
  }

  /// The counters now (thread-safe).
  server_counters counters() const noexcept {
    server_counters c;
    c.accepted = accepted_.load(std::memory_order_relaxed);
    c.open = open_.load(std::memory_order_relaxed);
    c.closed = closed_.load(std::memory_order_relaxed);
    c.refused = refused_.load(std::memory_order_relaxed);
    return c;
  }

  /// The options in force.
  const server_loop_options& options() const noexcept { return opt_; }

 private:
  static constexpr std::uint64_t wake_key = 0;
  static constexpr std::uint64_t first_session_id = std::uint64_t(1) << 32;  // below: listeners

  struct timer {
    clock::time_point at;
    std::uint64_t id;
  };
  static bool later(const timer& a, const timer& b) noexcept { return a.at > b.at; }

  void set_accepting(bool on) {
    accept_paused_ = !on;
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      if (listeners_[i]) (void)poller_.modify(listeners_[i].get(), i + 1, on, false);
  }

  void begin_stop(clock::time_point now) {
    stopping_ = true;
    grace_until_ = now + opt_.grace;
    for (unique_fd& l : listeners_) {
      if (!l) continue;
      poller_.remove(l.get());
      l.reset();
    }
  }

  void accept_from(std::size_t li, clock::time_point now) {
    if (li >= listeners_.size() || !listeners_[li]) return;
    // A bounded batch per wake-up keeps established sessions served.
    for (int batch = 0; batch < 64; ++batch) {
      if (conns_.size() >= opt_.max_sessions) {
        set_accepting(false);
        accept_resume_at_ = now;
        return;
      }
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
#ifdef __linux__
      const int fd = ::accept4(listeners_[li].get(), reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
      const int fd = ::accept(listeners_[li].get(), reinterpret_cast<sockaddr*>(&ss), &len);
#endif
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the listener stays readable, so stop polling it a while.
          set_accepting(false);
          accept_resume_at_ = now + std::chrono::milliseconds(100);
        }
        return;
      }
      unique_fd cfd(fd);
#ifndef __linux__
      if (detail::make_nonblocking(fd)) continue;
#endif
      detail::no_sigpipe(fd);
      detail::no_delay(fd);
      const socket_address peer = socket_address::from(reinterpret_cast<sockaddr*>(&ss), len);
      if (opt_.proxy_protocol) {
        accept_proxied(std::move(cfd), peer, now);
        continue;
      }
      std::unique_ptr<Session> s = factory_ ? factory_(peer) : nullptr;
      if (!s) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const std::uint64_t id = next_id_++;
      if (poller_.add(fd, id, true, false)) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      std::unique_ptr<connection> c(new connection(id, std::move(cfd), peer, std::move(s)));
      c->last_write_ = now;
      connection& ref = *c;
      conns_.emplace(id, std::move(c));
      accepted_.fetch_add(1, std::memory_order_relaxed);
      open_.fetch_add(1, std::memory_order_relaxed);
      service(ref, now);
    }
  }

  // PROXY option: check the TCP peer, then register the connection without a
  // Session; proxy_progress() makes one once the header is complete.
  void accept_proxied(unique_fd fd, const socket_address& peer, clock::time_point now) {
    const proxy_listen_options& po = *opt_.proxy_protocol;
    if (!po.allowed_peers.empty() &&
        std::none_of(po.allowed_peers.begin(), po.allowed_peers.end(),
                     [&](const socket_address& a) { return same_host(a, peer); })) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      refuse(fd.get(), peer, errc::proxy_peer_untrusted);
      return;
    }
    const std::uint64_t id = next_id_++;
    if (poller_.add(fd.get(), id, true, false)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::unique_ptr<connection> c(new connection(id, std::move(fd), peer, nullptr));
    c->proxy_.reset(new typename connection::proxy_part(po.reader, peer));
    c->deadline_ = now + po.header_timeout;
    push_timer(c->deadline_, id);
    connection& ref = *c;
    conns_.emplace(id, std::move(c));
    proxy_progress(ref, now, false);
  }

  // Feeds what was read to the header reader; at the header's end (or, in
  // optional mode, on finding none) makes the Session and hands it the rest.
  void proxy_progress(connection& c, clock::time_point now, bool timed_out) {
    wire::proxy_reader& r = c.proxy_->reader;
    wire::proxy_result res = r.read(c.pending_);
    c.pending_.erase(0, std::min(res.consumed, c.pending_.size()));
    if (res.status == wire::proxy_status::need_more && (c.eof_ || timed_out)) {
      res = r.finish();
      // A stalled header (or a silent client while one is required) is the
      // deadline's fault, not the stream's: say so.
      if (timed_out && res.status == wire::proxy_status::error) res.error = errc::proxy_timeout;
    }
    switch (res.status) {
      case wire::proxy_status::need_more:
        return;
      case wire::proxy_status::error:
        refuse_pending(c, res.error);
        return;
      case wire::proxy_status::header:
        c.proxy_->seen = true;
        if (r.header().has_addresses()) c.peer_ = to_socket_address(r.header().source);
        break;
      case wire::proxy_status::absent:
        c.proxy_->replay.assign(res.replay.data(), res.replay.size());
        break;
    }
    std::unique_ptr<Session> s = factory_ ? factory_(c.peer_) : nullptr;
    if (!s) {
      drop_pending(c);
      return;
    }
    c.session_ = std::move(s);
    c.deadline_ = clock::time_point::max();
    c.last_write_ = now;
    accepted_.fetch_add(1, std::memory_order_relaxed);
    open_.fetch_add(1, std::memory_order_relaxed);
    if (c.eof_) {
      if constexpr (detail::has_transport_eof<Session>::value) c.session_->transport_eof();
    }
    service(c, now);
  }

  // The refusal reply as far as the socket takes it now, then the close
  // (by the caller). Never blocks: a refused peer gets no more of our time.
  void refuse(int fd, const socket_address& peer, errc why) {
    if (on_proxy_refused_) on_proxy_refused_(peer, why);
    if (!opt_.proxy_protocol->reply_on_refusal) return;
    const reply_template t = reply_for(why);
    std::string line = std::to_string(t.code);
    line.append(" ").append(t.enhanced).append(" ").append(t.text).append("\r\n");
    (void)detail::send_some(fd, line);
    (void)::shutdown(fd, SHUT_WR);
    // close() with unread input sends a reset that can overtake the reply:
    // discard what has arrived already (bounded, never waiting).
    char sink[4096];
    for (int i = 0; i < 16; ++i) {
      const detail::recv_result r = detail::recv_some(fd, sink, sizeof sink);
      if (r.n == 0) break;
    }
  }

  void refuse_pending(connection& c, errc why) {
    refuse(c.fd_.get(), c.transport_peer(), why);
    drop_pending(c);
  }

  // Closes a connection that never got a Session (no close handler: the
  // application never saw it).
  void drop_pending(connection& c) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    poller_.remove(c.fd_.get());
    const std::uint64_t id = c.id_;
    conns_.erase(id);
  }

  void on_io(connection& c, const ready_event& ev, clock::time_point now) {
    if (ev.err) {
      int err = 0;
      socklen_t len = sizeof err;
      (void)::getsockopt(c.fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      close_conn(c, err == 0 ? close_cause::peer_closed : close_cause::io_error,
                 err == 0 ? std::error_code() : system_error(err));
      return;
    }
    std::string_view fresh;
    if ((ev.in || ev.hup) && c.want_in_) {
      // The octets kept and the ones read now stay within read_buffer.
      const std::size_t kept = c.pending_.size();
      const std::size_t room = kept < opt_.read_buffer ? opt_.read_buffer - kept : 0;
      const detail::recv_result rr = detail::recv_some(c.fd_.get(), read_buf_.get(), room);
      if (rr.error) {
        const bool reset = rr.error == std::errc::connection_reset;
        close_conn(c, reset ? close_cause::peer_closed : close_cause::io_error, rr.error);
        return;
      }
      fresh = std::string_view(read_buf_.get(), rr.n);
      if (rr.eof) {
        c.eof_ = true;
        if constexpr (detail::has_transport_eof<Session>::value)
          if (c.session_) c.session_->transport_eof();
      }
      if (!c.session_) {
        c.pending_.append(fresh.data(), fresh.size());
        proxy_progress(c, now, false);
        return;
      }
    } else if (ev.hup && !ev.out) {
      // Hung up while not being read (back-pressure or after EOF): nobody
      // will read our output either.
      close_conn(c, close_cause::peer_closed, {});
      return;
    }
    service(c, now, fresh);
  }

  template <class E>
  static void settle(E& e) {
    if constexpr (detail::has_decisions<E>::value) {
      while (e.awaiting_decision())
        if (e.temp_fail() != smtpwire::errc::ok) break;
    }
  }

  // Takes the first `n` octets of a connection's remainder; frees it once
  // empty, so that an idle connection holds no buffer.
  static void take_pending(connection& c, std::size_t n) {
    if (n >= c.pending_.size())
      std::string().swap(c.pending_);
    else
      c.pending_.erase(0, n);
  }

  /// Moves bytes and events until nothing progresses, then re-arms the
  /// poller interest and the deadline. `fresh`: octets just read into the
  /// loop's buffer (they come after the connection's remainder); what the
  /// Session does not take of them is kept in the remainder. False when
  /// the connection closed.
  bool service(connection& c, clock::time_point now, std::string_view fresh = {}) {
    Session& s = *c.session_;
    auto& e = detail::engine_of(s);
    e.check_time(now);
    const bool had_output = !s.output().empty();
    if (!fresh.empty() && !c.pending_.empty()) {
      c.pending_.append(fresh.data(), fresh.size());
      fresh = {};
    }
    std::string* const replay = c.proxy_ ? &c.proxy_->replay : nullptr;
    for (;;) {
      bool progress = false;
      // Order: the replayed signature, the remainder, then the fresh octets.
      if (replay != nullptr && !replay->empty()) {
        const std::size_t n = s.receive(*replay);
        if (n >= replay->size())
          std::string().swap(*replay);
        else
          replay->erase(0, n);
        progress = n != 0;
      } else if (!c.pending_.empty()) {
        const std::size_t n = s.receive(c.pending_);
        take_pending(c, n);
        progress = n != 0;
      } else if (!fresh.empty()) {
        const std::size_t n = s.receive(fresh);
        fresh.remove_prefix(std::min(n, fresh.size()));
        progress = n != 0;
      }
      for (;;) {
        auto ev = s.next_event();
        if (std::holds_alternative<std::monostate>(ev)) break;
        progress = true;
        if (on_event_) on_event_(c, ev);
        settle(e);
      }
      if (!s.output().empty()) {
        const long n = detail::send_some(c.fd_.get(), s.output());
        if (n < 0) {
          const std::error_code err = detail::last_error();
          const bool gone = err == std::errc::broken_pipe || err == std::errc::connection_reset;
          close_conn(c, gone ? close_cause::peer_closed : close_cause::io_error, err);
          return false;
        }
        if (n > 0) {
          s.consume_output(static_cast<std::size_t>(n));
          c.last_write_ = now;
          progress = true;
        }
      }
      if (!progress) break;
    }
    // The loop's buffer is read into again at the next event: keep the rest.
    if (!fresh.empty()) c.pending_.assign(fresh.data(), fresh.size());
    e.check_time(now);  // arms the clock of the wait that began
    const bool over = engine_over(e);
    const bool out_empty = s.output().empty();
    if (!had_output && !out_empty) c.last_write_ = now;
    if (over && out_empty) {
      close_conn(c, close_cause::engine_closed, {});
      return false;
    }
    if (!out_empty && now - c.last_write_ >= opt_.write_timeout) {
      close_conn(c, close_cause::write_timeout, {});
      return false;
    }
    if (c.eof_ && !over && out_empty) {
      close_conn(c, close_cause::peer_closed, {});
      return false;
    }
    const bool want_in = !c.eof_ && !over && c.pending_.size() < opt_.read_buffer &&
                         s.output().size() <= opt_.output_high_water;
    const bool want_out = !out_empty;
    if (want_in != c.want_in_ || want_out != c.want_out_) {
      if (auto err = poller_.modify(c.fd_.get(), c.id_, want_in, want_out)) {
        close_conn(c, close_cause::io_error, err);
        return false;
      }
      c.want_in_ = want_in;
      c.want_out_ = want_out;
    }
    clock::time_point d = clock::time_point::max();
    if (!over)
      if (const auto ed = detail::deadline_value(e.deadline())) d = *ed;
    if (!out_empty) d = std::min(d, c.last_write_ + opt_.write_timeout);
    if (d != c.deadline_) {
      c.deadline_ = d;
      if (d != clock::time_point::max()) push_timer(d, c.id_);
    }
    return true;
  }

  void push_timer(clock::time_point at, std::uint64_t id) {
    timers_.push_back(timer{at, id});
    std::push_heap(timers_.begin(), timers_.end(), later);
    if (timers_.size() > 2 * conns_.size() + 64) {
      // Drop superseded entries so the heap stays O(sessions).
      timers_.erase(std::remove_if(timers_.begin(), timers_.end(),
                                   [&](const timer& t) {
                                     const auto it = conns_.find(t.id);
                                     return it == conns_.end() || it->second->deadline_ != t.at;
                                   }),
                    timers_.end());
      std::make_heap(timers_.begin(), timers_.end(), later);
    }
  }

  void expire(clock::time_point now) {
    // At most the entries present now: a session re-armed at `now` waits a turn.
    for (std::size_t budget = timers_.size(); budget != 0 && !timers_.empty(); --budget) {
      const timer t = timers_.front();
      if (t.at > now) return;
      std::pop_heap(timers_.begin(), timers_.end(), later);
      timers_.pop_back();
      const auto it = conns_.find(t.id);
      if (it == conns_.end() || it->second->deadline_ != t.at) continue;
      it->second->deadline_ = clock::time_point::max();
      if (it->second->session_)
        service(*it->second, now);
      else
        proxy_progress(*it->second, now, true);
    }
  }

  void close_conn(connection& c, close_cause why, std::error_code err) {
    if (!c.session_) {
      drop_pending(c);
      return;
    }
    if (on_close_) on_close_(c, why, err);
    poller_.remove(c.fd_.get());
    const std::uint64_t id = c.id_;
    conns_.erase(id);  // destroys the Session and closes the socket
    open_.fetch_sub(1, std::memory_order_relaxed);
    closed_.fetch_add(1, std::memory_order_relaxed);
  }

  void close_all(close_cause why) {
    std::vector<std::uint64_t> ids;
    ids.reserve(conns_.size());
    for (const auto& kv : conns_)
      ids.push_back(kv.first);
    for (std::uint64_t id : ids) {
      const auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      connection& c = *it->second;
      if (why == close_cause::shutdown && c.session_) say_goodbye(c);
      close_conn(c, why, {});
    }
  }

  // The 421 of a server engine's shutdown(), as far as the socket takes it
  // now: the loop is ending and waits for nobody.
  void say_goodbye(connection& c) {
    Session& s = *c.session_;
    auto& e = detail::engine_of(s);
    if constexpr (detail::has_shutdown<std::remove_reference_t<decltype(e)>>::value) {
      if (e.shutdown() != errc::ok) return;
      while (!std::holds_alternative<std::monostate>(s.next_event())) {
      }
      std::string_view out = s.output();
      while (!out.empty()) {
        const long n = detail::send_some(c.fd_.get(), out);
        if (n <= 0) break;
        s.consume_output(static_cast<std::size_t>(n));
        out = s.output();
      }
    }
  }

  factory_fn factory_;
  event_fn on_event_;
  close_fn on_close_;
  proxy_refused_fn on_proxy_refused_;
  server_loop_options opt_;
  std::error_code error_;
  Poller poller_;
  unique_fd wake_read_, wake_write_;
  std::vector<unique_fd> listeners_;
  std::unique_ptr<char[]> read_buf_;  // every socket is read into it (see on_io)
  std::unordered_map<std::uint64_t, std::unique_ptr<connection>> conns_;
  std::vector<timer> timers_;
  std::uint64_t next_id_ = first_session_id;
  bool stopping_ = false;
  bool accept_paused_ = false;
  clock::time_point accept_resume_at_{};
  clock::time_point grace_until_{};
  std::atomic<bool> stop_requested_{false};
  std::atomic<std::uint64_t> accepted_{0}, open_{0}, closed_{0}, refused_{0};
};

}  // namespace smtpwire::posix

#endif  // SMTPWIRE_POSIX_SERVER_LOOP_HPP
