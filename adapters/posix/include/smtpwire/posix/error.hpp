// smtpwire::posix — error codes of the socket drivers.
//
// Three sources, all std::error_code, none thrown:
// - system calls: errno in std::system_category() (compare with std::errc:
//   `ec == std::errc::connection_refused`);
// - getaddrinfo: its EAI_* code in resolve_category() ("smtpwire.resolve",
//   message from gai_strerror; EAI_SYSTEM is reported as the errno instead);
// - the drivers themselves: posix_errc in posix_category() ("smtpwire.posix").
#ifndef SMTPWIRE_POSIX_ERROR_HPP
#define SMTPWIRE_POSIX_ERROR_HPP

#include <netdb.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace smtpwire::posix {

/// Failures the drivers detect themselves.
enum class posix_errc {
  ok = 0,
  /// "host:port" text that cannot be split: empty host, bad brackets, no or
  /// an empty port, a port out of range.
  address_invalid = 1,
  /// Name resolution succeeded but returned no address of a usable family.
  no_address = 2,
  /// Every connect attempt ran out of time (per-address timeout).
  connect_timeout = 3,
  /// The peer closed the connection before the engine's session was over.
  connection_closed = 4,
  /// The client driver waited options.idle_limit with no engine deadline
  /// and nothing to do (the handler left the engine idle).
  idle_timeout = 5,
  /// The event handler asked the driver to stop (returned false).
  cancelled = 6,
  /// The output could not be flushed within options.flush_limit once the
  /// engine was over (the peer stopped reading).
  flush_timeout = 7,
};

namespace detail {
class posix_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "smtpwire.posix"; }
  std::string message(int v) const override {
    switch (static_cast<posix_errc>(v)) {
      case posix_errc::ok:
        return "ok";
      case posix_errc::address_invalid:
        return "invalid host:port address";
      case posix_errc::no_address:
        return "name resolution returned no usable address";
      case posix_errc::connect_timeout:
        return "connection attempt timed out";
      case posix_errc::connection_closed:
        return "connection closed by the peer before the session ended";
      case posix_errc::idle_timeout:
        return "session idle: no deadline and nothing to do";
      case posix_errc::cancelled:
        return "cancelled by the event handler";
      case posix_errc::flush_timeout:
        return "could not flush the last output in time";
    }
    return "unknown smtpwire.posix error";
  }
};

class resolve_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "smtpwire.resolve"; }
  std::string message(int v) const override { return ::gai_strerror(v); }
};
}  // namespace detail

/// The "smtpwire.posix" category (a function-local static, like the
/// standard categories).
inline const std::error_category& posix_category() noexcept {
  static const detail::posix_category_impl category;
  return category;
}

/// The "smtpwire.resolve" category: values are getaddrinfo's EAI_* codes.
inline const std::error_category& resolve_category() noexcept {
  static const detail::resolve_category_impl category;
  return category;
}

/// std::error_code for a posix_errc.
inline std::error_code make_error_code(posix_errc e) noexcept {
  return {static_cast<int>(e), posix_category()};
}

/// std::error_code for a getaddrinfo result `eai` (0 gives no error).
/// EAI_SYSTEM becomes `saved_errno` in the system category.
inline std::error_code make_resolve_error(int eai, int saved_errno) noexcept {
  if (eai == 0) return {};
#ifdef EAI_SYSTEM
  if (eai == EAI_SYSTEM) return {saved_errno, std::system_category()};
#else
  (void)saved_errno;
#endif
  return {eai, resolve_category()};
}

/// std::error_code for `errno` value `e` (std::system_category()).
inline std::error_code system_error(int e) noexcept {
  return {e, std::system_category()};
}

}  // namespace smtpwire::posix

namespace std {
template <>
struct is_error_code_enum<smtpwire::posix::posix_errc> : true_type {};
}  // namespace std

#endif  // SMTPWIRE_POSIX_ERROR_HPP
