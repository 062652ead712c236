// smtpwire::posix — the small socket toolkit the drivers share: an owning
// file descriptor, a socket address with its text form, non-blocking send
// and receive that never raise SIGPIPE, and the traits that let one driver
// run a plain engine (smtpwire::client / smtpwire::server) or anything with
// the engines' network-side shape (the OpenSSL glue's tls_session).
//
// The network-side shape a driver needs from a Session:
//   std::size_t receive(std::string_view bytes);  // bytes taken (may be fewer)
//   Event next_event();       // a std::variant whose std::monostate means "nothing now"
//   std::string_view output() const;              // bytes to write
//   consume_output(std::size_t n);                // n of them were written
//   void transport_eof();     // optional: the peer closed the TCP connection
//   Engine& engine();         // optional: the engine behind it; without it the
//                             // Session is the engine
// and from the engine (Session itself or Session::engine()): check_time(now),
// deadline(), and state()/closed() (see engine_over).
#ifndef SMTPWIRE_POSIX_SOCKET_HPP
#define SMTPWIRE_POSIX_SOCKET_HPP

#include <smtpwire/client.hpp>
#include <smtpwire/detail/driver.hpp>
#include <smtpwire/posix/error.hpp>
#include <smtpwire/server.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace smtpwire::posix {

/// An owned file descriptor, closed by the destructor. Move-only.
class unique_fd {
 public:
  unique_fd() noexcept = default;
  /// Takes ownership of `fd` (-1 for none).
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(o.release()) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  /// The descriptor, or -1.
  int get() const noexcept { return fd_; }
  /// True when a descriptor is held.
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives up ownership and returns the descriptor.
  int release() noexcept {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  /// Closes the held descriptor (if any) and takes `fd`.
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

/// An IPv4 or IPv6 socket address.
struct socket_address {
  sockaddr_storage storage{};  ///< the address (sockaddr_in or sockaddr_in6)
  socklen_t length = 0;        ///< its size; 0 for "no address"

  /// AF_INET, AF_INET6, or AF_UNSPEC when empty.
  int family() const noexcept { return length == 0 ? AF_UNSPEC : storage.ss_family; }
  /// The port in host order (0 for an empty or non-IP address).
  std::uint16_t port() const noexcept {
    if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
    if (family() == AF_INET6)
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
    return 0;
  }
  /// The numeric host: "127.0.0.1" or "::1" (empty for an empty address).
  std::string host() const {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* a = nullptr;
    if (family() == AF_INET)
      a = &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr;
    else if (family() == AF_INET6)
      a = &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr;
    if (a == nullptr || ::inet_ntop(family(), a, buf, sizeof buf) == nullptr) return {};
    return buf;
  }
  /// "127.0.0.1:25" or "[::1]:25" (the syntax parse_host_port reads).
  std::string to_string() const {
    std::string h = host();
    if (family() == AF_INET6) h = "[" + h + "]";
    return h + ":" + std::to_string(port());
  }
  /// The address as the sockaddr the socket calls take.
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }

  /// Copies `len` octets of `sa` (at most sizeof(sockaddr_storage)).
  static socket_address from(const sockaddr* sa, socklen_t len) noexcept {
    socket_address a;
    if (sa == nullptr || len == 0 || len > static_cast<socklen_t>(sizeof a.storage)) return a;
    std::memcpy(&a.storage, sa, len);
    a.length = len;
    return a;
  }
  /// The local address of socket `fd` (empty on error).
  static socket_address local_of(int fd) noexcept {
    socket_address a;
    socklen_t len = sizeof a.storage;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &len) == 0) a.length = len;
    return a;
  }
};

namespace detail {

inline std::error_code last_error() noexcept {
  return system_error(errno);
}

/// Sets O_NONBLOCK and FD_CLOEXEC on `fd`.
inline std::error_code make_nonblocking(int fd) noexcept {
  const int fl = ::fcntl(fd, F_GETFL, 0);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return last_error();
  const int fd_flags = ::fcntl(fd, F_GETFD, 0);
  if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) < 0) return last_error();
  return {};
}

/// Per-socket SIGPIPE suppression where send() has no MSG_NOSIGNAL (macOS).
inline void no_sigpipe(int fd) noexcept {
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
  const int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
  (void)fd;
#endif
}

/// Disables Nagle: SMTP writes whole replies/commands at once, and a held
/// last segment (".") meets the peer's delayed ACK otherwise.
inline void no_delay(int fd) noexcept {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// Octets written, 0 when the socket would block, -1 with errno set on a
/// real error. Never raises SIGPIPE.
inline long send_some(int fd, std::string_view bytes) noexcept {
#ifdef MSG_NOSIGNAL
  constexpr int flags = MSG_NOSIGNAL;
#else
  constexpr int flags = 0;
#endif
  for (;;) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), flags);
    if (n >= 0) return static_cast<long>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

/// The result of one recv: octets read (>0), end of stream, would block,
/// or an error (errno in `error`).
struct recv_result {
  std::size_t n = 0;
  bool eof = false;
  bool would_block = false;
  std::error_code error;
};

inline recv_result recv_some(int fd, char* buf, std::size_t cap) noexcept {
  recv_result r;
  for (;;) {
    const auto n = ::recv(fd, buf, cap, 0);
    if (n > 0) {
      r.n = static_cast<std::size_t>(n);
      return r;
    }
    if (n == 0) {
      r.eof = true;
      return r;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      r.would_block = true;
    else
      r.error = last_error();
    return r;
  }
}

/// A fixed-capacity byte queue: bytes read from the socket that the
/// session has not taken yet (receive() may take fewer than offered).
class input_buffer {
 public:
  explicit input_buffer(std::size_t cap)
      : buf_(new char[cap == 0 ? 1 : cap]), cap_(cap ? cap : 1) {}
  std::string_view view() const noexcept { return {buf_.get() + begin_, end_ - begin_}; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t size() const noexcept { return end_ - begin_; }
  std::size_t capacity() const noexcept { return cap_; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Room at the end after moving the unread bytes to the front.
  std::size_t prepare() noexcept {
    if (begin_ != 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return cap_ - end_;
  }
  char* tail() noexcept { return buf_.get() + end_; }
  void commit(std::size_t n) noexcept { end_ += n; }

 private:
  std::unique_ptr<char[]> buf_;
  std::size_t cap_;
  std::size_t begin_ = 0, end_ = 0;
};

// The session traits every driver shares (smtpwire/detail/driver.hpp).
using smtpwire::detail::deadline_value;
using smtpwire::detail::engine_of;
using smtpwire::detail::has_decisions;
using smtpwire::detail::has_shutdown;
using smtpwire::detail::has_transport_eof;
using smtpwire::detail::invoke_handler;

/// Milliseconds from `now` to `until`, rounded up, clamped to [0, 1 h]:
/// the poll()/epoll_wait() timeout (never -1: every wait is bounded).
inline int wait_ms(std::chrono::steady_clock::time_point now,
                   std::chrono::steady_clock::time_point until) noexcept {
  if (until <= now) return 0;
  const auto d = until - now;
  if (d >= std::chrono::hours(1)) return 3600 * 1000;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d);
  return static_cast<int>(ms.count() + (ms < d ? 1 : 0));
}

}  // namespace detail

/// True once the engine's session is over: server::closed(), or the client
/// in state closed or failed. Its output may still hold a last reply or QUIT.
using smtpwire::detail::engine_over;

}  // namespace smtpwire::posix

#endif  // SMTPWIRE_POSIX_SOCKET_HPP
