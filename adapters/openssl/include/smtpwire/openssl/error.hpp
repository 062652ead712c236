// smtpwire::openssl — the TLS adapter's error codes, their std::error_category
// ("smtpwire.openssl"), result_or_error_code<T> (a value or a std::error_code,
// never a throw), and the helpers that turn OpenSSL's per-thread error queue
// into a code and a reason text.
//
// The core engines keep reporting smtpwire::errc; everything the adapter
// reports is a std::error_code of this category, with OpenSSL's own reason
// text kept beside it (channel::error_text(), context creation's out-param).
//
// OpenSSL's error queue is per thread and shared by every SSL object of that
// thread. Every adapter call that runs OpenSSL clears the queue first and
// drains it before returning, so one session's error never shows up as
// another's.
#ifndef SMTPWIRE_OPENSSL_ERROR_HPP
#define SMTPWIRE_OPENSSL_ERROR_HPP

#include <openssl/err.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace smtpwire::openssl {

/// Every failure the OpenSSL adapter reports. Value 0 (`ok`) means success,
/// as for std::error_code.
enum class tls_errc : int {
  ok = 0,
  // -- handshake and verification --
  handshake_failed = 1,   ///< the handshake failed (alert, no common version or cipher, …)
  verify_failed,          ///< the peer's chain did not verify (a reason not listed below)
  certificate_expired,    ///< a certificate of the chain is expired (or not yet valid)
  certificate_untrusted,  ///< the chain does not lead to a trust anchor (self-signed, unknown CA)
  hostname_mismatch,      ///< the certificate is not valid for the expected host name
  dane_mismatch,          ///< no TLSA record matched the chain (RFC 7672 §2.2)
  // -- records and the end of the stream --
  truncated = 20,         ///< transport EOF without the peer's close_notify (RFC 8446 §6.1)
  closed,                 ///< the peer sent close_notify: no more plaintext will come
  renegotiation_refused,  ///< the peer tried to renegotiate (TLS 1.2); refused, session ended
  protocol_error,         ///< a record or alert error after the handshake (bad MAC, fatal alert)
  // -- configuration and API use --
  config_error = 40,  ///< cert/key/CA file unreadable or invalid, key does not match, bad option
  api_bad_state,      ///< call not allowed now (write before the handshake, after shutdown, …)
  out_of_memory,      ///< OpenSSL could not allocate an object
};

/// The name of a tls_errc (e.g. "truncated"); "unknown" for other values.
constexpr std::string_view to_string(tls_errc e) noexcept {
  switch (e) {
    case tls_errc::ok:
      return "ok";
    case tls_errc::handshake_failed:
      return "handshake_failed";
    case tls_errc::verify_failed:
      return "verify_failed";
    case tls_errc::certificate_expired:
      return "certificate_expired";
    case tls_errc::certificate_untrusted:
      return "certificate_untrusted";
    case tls_errc::hostname_mismatch:
      return "hostname_mismatch";
    case tls_errc::dane_mismatch:
      return "dane_mismatch";
    case tls_errc::truncated:
      return "truncated";
    case tls_errc::closed:
      return "closed";
    case tls_errc::renegotiation_refused:
      return "renegotiation_refused";
    case tls_errc::protocol_error:
      return "protocol_error";
    case tls_errc::config_error:
      return "config_error";
    case tls_errc::api_bad_state:
      return "api_bad_state";
    case tls_errc::out_of_memory:
      return "out_of_memory";
  }
  return "unknown";
}

namespace detail {

/// A one-sentence description of each tls_errc, for error_code::message().
constexpr std::string_view describe(tls_errc e) noexcept {
  switch (e) {
    case tls_errc::ok:
      return "success";
    case tls_errc::handshake_failed:
      return "TLS handshake failed";
    case tls_errc::verify_failed:
      return "peer certificate verification failed";
    case tls_errc::certificate_expired:
      return "peer certificate expired or not yet valid";
    case tls_errc::certificate_untrusted:
      return "peer certificate chain has no trusted anchor";
    case tls_errc::hostname_mismatch:
      return "peer certificate does not match the host name";
    case tls_errc::dane_mismatch:
      return "no DANE TLSA record matched the peer's chain";
    case tls_errc::truncated:
      return "connection closed without TLS close_notify (truncation)";
    case tls_errc::closed:
      return "peer sent TLS close_notify";
    case tls_errc::renegotiation_refused:
      return "peer attempted TLS renegotiation";
    case tls_errc::protocol_error:
      return "TLS protocol error";
    case tls_errc::config_error:
      return "TLS configuration error";
    case tls_errc::api_bad_state:
      return "TLS channel call not allowed in this state";
    case tls_errc::out_of_memory:
      return "OpenSSL allocation failed";
  }
  return "unknown TLS error";
}

class tls_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "smtpwire.openssl"; }
  std::string message(int ev) const override {
    const auto e = static_cast<tls_errc>(ev);
    std::string m(to_string(e));
    m += ": ";
    m += describe(e);
    return m;
  }
};

}  // namespace detail

/// The "smtpwire.openssl" error category (a function-local static: no
/// global state of ours is initialised before first use).
inline const std::error_category& tls_category() noexcept {
  static const detail::tls_category_impl category;
  return category;
}

/// Wraps a tls_errc into a std::error_code of tls_category().
inline std::error_code make_error_code(tls_errc e) noexcept {
  return {static_cast<int>(e), tls_category()};
}

/// A value of T or a (non-zero) std::error_code; never throws. Accessing the
/// value of an error result is a bug and aborts (exceptions may be off).
template <class T>
class [[nodiscard]] result_or_error_code {
 public:
  /// A result holding `v`.
  result_or_error_code(T v) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT
      : value_(std::move(v)) {}
  /// A result holding the error `e` (must not be zero: a zero code aborts).
  result_or_error_code(std::error_code e) noexcept : error_(e) {  // NOLINT
    if (!e) std::abort();
  }
  /// A result holding the error `e` (must not be tls_errc::ok).
  result_or_error_code(tls_errc e) noexcept : result_or_error_code(make_error_code(e)) {}  // NOLINT

  /// True when a value is held.
  bool has_value() const noexcept { return value_.has_value(); }
  /// True when a value is held.
  explicit operator bool() const noexcept { return value_.has_value(); }
  /// The value; aborts when an error is held.
  T& value() & noexcept { return check(), *value_; }
  /// The value; aborts when an error is held.
  const T& value() const& noexcept { return check(), *value_; }
  /// The value, moved out; aborts when an error is held.
  T&& value() && noexcept { return check(), std::move(*value_); }
  /// The value; aborts when an error is held.
  T& operator*() & noexcept { return value(); }
  /// The value; aborts when an error is held.
  const T& operator*() const& noexcept { return value(); }
  /// The value, moved out; aborts when an error is held.
  T&& operator*() && noexcept { return std::move(*this).value(); }
  /// Member access to the value; aborts when an error is held.
  T* operator->() noexcept { return &value(); }
  /// Member access to the value; aborts when an error is held.
  const T* operator->() const noexcept { return &value(); }
  /// The error; a zero code when a value is held.
  std::error_code error() const noexcept { return error_; }

 private:
  void check() const noexcept {
    if (!value_) std::abort();
  }
  std::optional<T> value_;
  std::error_code error_;
};

namespace detail {

/// Drains the calling thread's OpenSSL error queue. Appends to `text` (when
/// not null) one "library: reason" entry per queued error, separated by
/// "; ", and returns the first (oldest) packed error, 0 when none.
inline unsigned long drain_error_queue(std::string* text) noexcept {
  unsigned long first = 0;
  const char* data = nullptr;
  int flags = 0;
  for (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags); e != 0;
       e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    if (first == 0) first = e;
    if (text == nullptr) continue;
    if (!text->empty()) *text += "; ";
    const char* lib = ERR_lib_error_string(e);
    const char* reason = ERR_reason_error_string(e);
    if (lib != nullptr) {
      *text += lib;
      *text += ": ";
    }
    if (ERR_SYSTEM_ERROR(e)) {
      *text += std::generic_category().message(ERR_GET_REASON(e));
    } else if (reason != nullptr) {
      *text += reason;
    } else {
      *text += "error ";
      *text += std::to_string(ERR_GET_REASON(e));
    }
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      *text += " (";
      *text += data;
      *text += ')';
    }
  }
  return first;
}

}  // namespace detail

}  // namespace smtpwire::openssl

namespace std {
template <>
struct is_error_code_enum<smtpwire::openssl::tls_errc> : true_type {};
}  // namespace std

#endif  // SMTPWIRE_OPENSSL_ERROR_HPP
