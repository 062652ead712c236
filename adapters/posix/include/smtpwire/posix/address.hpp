// smtpwire::posix — "host:port" syntax, name resolution (getaddrinfo),
// a connect bounded by a timeout per address, and listening sockets.
//
// Limits of name resolution: getaddrinfo() blocks and takes no timeout; its
// wait is bounded by the resolver's own configuration (resolv.conf
// "options timeout:N attempts:M", glibc default 5 s x 2 per server), not by
// connect_options. Numeric hosts ("127.0.0.1", "[::1]") never query DNS.
#ifndef SMTPWIRE_POSIX_ADDRESS_HPP
#define SMTPWIRE_POSIX_ADDRESS_HPP

#include <smtpwire/posix/error.hpp>
#include <smtpwire/posix/socket.hpp>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace smtpwire::posix {

/// A host and a port (or service name) split out of "host:port" text.
struct host_port {
  std::string host;  ///< a name, an IPv4 address, or an IPv6 address without brackets
  std::string port;  ///< decimal 1..65535 or a service name ("smtp", "submission")
};

/// Splits `text` into host and port. Accepted forms: "host", "host:port",
/// "192.0.2.1:25", "[2001:db8::1]:25", "[::1]", and a bare IPv6 address
/// ("::1", more than one colon, no brackets) which takes `default_port`.
/// A missing port takes `default_port`. Errors: posix_errc::address_invalid
/// (empty host, unbalanced brackets, junk after "]", empty port, a numeric
/// port of 0 or above 65535, a service name with characters other than
/// letters, digits and '-').
inline std::error_code parse_host_port(std::string_view text, std::string_view default_port,
                                       host_port& out) {
  std::string_view host, port = default_port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return posix_errc::address_invalid;
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return posix_errc::address_invalid;
      port = rest.substr(1);
    }
    if (host.find(':') == std::string_view::npos) return posix_errc::address_invalid;
  } else {
    const auto first = text.find(':');
    const auto last = text.rfind(':');
    if (first != std::string_view::npos && first == last) {
      host = text.substr(0, first);
      port = text.substr(first + 1);
    } else {
      host = text;  // no colon, or a bare IPv6 address
    }
  }
  if (host.empty() || port.empty() || host.find_first_of("[] \t\r\n") != std::string_view::npos)
    return posix_errc::address_invalid;
  bool digits = true;
  for (char c : port) {
    const bool d = c >= '0' && c <= '9';
    const bool a = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
    if (!d && !a) return posix_errc::address_invalid;
    digits = digits && d;
  }
  if (digits) {
    if (port.size() > 5) return posix_errc::address_invalid;
    unsigned long v = 0;
    for (char c : port)
      v = v * 10 + static_cast<unsigned long>(c - '0');
    if (v == 0 || v > 65535) return posix_errc::address_invalid;
  }
  out.host.assign(host);
  out.port.assign(port);
  return {};
}

/// Resolves `host` and `port` for a TCP stream socket into `out` (appended,
/// in getaddrinfo's order, which follows RFC 6724 on glibc). `family`:
/// AF_UNSPEC (both), AF_INET or AF_INET6. `passive` asks for addresses to
/// bind (AI_PASSIVE). Errors: resolve_category() EAI codes
/// (EAI_NONAME for an unknown name), posix_errc::no_address.
inline std::error_code resolve(const std::string& host, const std::string& port,
                               std::vector<socket_address>& out, int family = AF_UNSPEC,
                               bool passive = false) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
  bool numeric_port = !port.empty();
  for (char c : port)
    numeric_port = numeric_port && c >= '0' && c <= '9';
  if (numeric_port) hints.ai_flags |= AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc == EAI_BADFLAGS || (rc == EAI_NONAME && !passive)) {
    // AI_ADDRCONFIG hides loopback-only families on hosts without a
    // configured address of that family (a container with only "lo").
    hints.ai_flags &= ~AI_ADDRCONFIG;
    rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  }
  if (rc != 0) return make_resolve_error(rc, errno);
  const std::size_t before = out.size();
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next)
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
      out.push_back(socket_address::from(ai->ai_addr, ai->ai_addrlen));
  ::freeaddrinfo(res);
  if (out.size() == before) return posix_errc::no_address;
  return {};
}

/// How connect_tcp() tries addresses.
struct connect_options {
  /// Time for one address's TCP handshake.
  std::chrono::milliseconds timeout_per_address{30000};  ///< default 30 s; RFC 5321 sets none
  int family = AF_UNSPEC;  ///< AF_UNSPEC (default), AF_INET or AF_INET6
  bool no_delay = true;    ///< TCP_NODELAY on the connected socket; default on
};

/// One failed attempt of connect_tcp().
struct connect_attempt {
  socket_address address;  ///< the address tried
  std::error_code error;   ///< why it failed (system errno, or posix_errc::connect_timeout)
};

/// The outcome of connect_tcp().
struct connect_result {
  unique_fd fd;            ///< the connected socket (non-blocking, close-on-exec); empty on error
  socket_address address;  ///< the address connected to (which one of the resolved ones)
  std::error_code error;   ///< empty on success; else the resolution error or the last attempt's
  std::vector<connect_attempt> failures;  ///< every address that failed before, in order
};

namespace detail {
/// One non-blocking connect to `a`, waiting at most `timeout`.
inline std::error_code connect_one(const socket_address& a, std::chrono::milliseconds timeout,
                                   unique_fd& out) {
  unique_fd fd(::socket(a.family(), SOCK_STREAM, IPPROTO_TCP));
  if (!fd) return last_error();
  if (auto e = make_nonblocking(fd.get())) return e;
  no_sigpipe(fd.get());
  if (::connect(fd.get(), a.get(), a.length) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) return last_error();
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      pollfd p{fd.get(), POLLOUT, 0};
      const int n = ::poll(&p, 1, wait_ms(std::chrono::steady_clock::now(), until));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return last_error();
      if (n == 0) return posix_errc::connect_timeout;
      break;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return last_error();
    if (err != 0) return system_error(err);
  }
  out = std::move(fd);
  return {};
}
}  // namespace detail

/// Resolves `host`/`port` and connects to the first address that answers,
/// trying each in order with a non-blocking connect bounded by
/// options.timeout_per_address. The result names the address used and
/// every failed attempt. Connection refused is
/// `result.error == std::errc::connection_refused`.
inline connect_result connect_tcp(const std::string& host, const std::string& port,
                                  const connect_options& o = {}) {
  connect_result r;
  std::vector<socket_address> addrs;
  r.error = resolve(host, port, addrs, o.family);
  if (r.error) return r;
  for (const socket_address& a : addrs) {
    unique_fd fd;
    const std::error_code e = detail::connect_one(a, o.timeout_per_address, fd);
    if (!e) {
      if (o.no_delay) detail::no_delay(fd.get());
      r.fd = std::move(fd);
      r.address = a;
      r.error = {};
      return r;
    }
    r.failures.push_back(connect_attempt{a, e});
    r.error = e;
  }
  return r;
}

/// parse_host_port(`text`, `default_port`) then connect_tcp(): the
/// "[::1]:2525" / "mail.example.org" form. An unparsable text is
/// posix_errc::address_invalid.
inline connect_result connect_to(std::string_view text, std::string_view default_port,
                                 const connect_options& o = {}) {
  host_port hp;
  connect_result r;
  r.error = parse_host_port(text, default_port, hp);
  if (r.error) return r;
  return connect_tcp(hp.host, hp.port, o);
}

/// How listen_tcp() sets up its socket.
struct listen_options {
  int backlog = 511;          ///< listen() backlog; default 511 (the kernel caps it at somaxconn)
  bool reuse_address = true;  ///< SO_REUSEADDR (restart while old sessions linger); default on
  bool reuse_port = false;    ///< SO_REUSEPORT: several sockets (one loop per core) share a port
  bool v6_only = true;        ///< IPV6_V6ONLY on IPv6 sockets (listen to "::" and "0.0.0.0"
                              ///< separately); default on
};

/// The outcome of listen_tcp().
struct listen_result {
  unique_fd fd;          ///< the listening socket (non-blocking, close-on-exec)
  socket_address bound;  ///< its local address (the port the kernel picked for port "0")
  std::error_code error;
};

/// Binds and listens on the first address `host`/`port` resolves to
/// ("127.0.0.1", "::1", "0.0.0.0", "::"; port "0" lets the kernel pick).
inline listen_result listen_tcp(const std::string& host, const std::string& port,
                                const listen_options& o = {}) {
  listen_result r;
  std::vector<socket_address> addrs;
  r.error = resolve(host, port, addrs, AF_UNSPEC, true);
  if (r.error) return r;
  const socket_address& a = addrs.front();
  unique_fd fd(::socket(a.family(), SOCK_STREAM, IPPROTO_TCP));
  if (!fd) {
    r.error = detail::last_error();
    return r;
  }
  const int one = 1;
  if (o.reuse_address && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    r.error = detail::last_error();
    return r;
  }
  if (o.reuse_port) {
#ifdef SO_REUSEPORT
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      r.error = detail::last_error();
      return r;
    }
#else
    r.error = std::make_error_code(std::errc::not_supported);
    return r;
#endif
  }
  if (a.family() == AF_INET6) {
    const int v6 = o.v6_only ? 1 : 0;
    (void)::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6);
  }
  if (::bind(fd.get(), a.get(), a.length) != 0 || ::listen(fd.get(), o.backlog) != 0) {
    r.error = detail::last_error();
    return r;
  }
  if (auto e = detail::make_nonblocking(fd.get())) {
    r.error = e;
    return r;
  }
  r.bound = socket_address::local_of(fd.get());
  r.fd = std::move(fd);
  return r;
}

}  // namespace smtpwire::posix

#endif  // SMTPWIRE_POSIX_ADDRESS_HPP
