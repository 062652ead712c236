// smtpwire — what every I/O driver (the POSIX and Asio adapters, or an
// application's own loop) needs to know about a session: an engine, or the
// OpenSSL glue around one (tls_session), which has the engines' network-side
// shape plus engine(), transport_eof() and closed(). Detected, not declared,
// so the core does not depend on any adapter.
#ifndef SMTPWIRE_DETAIL_DRIVER_HPP
#define SMTPWIRE_DETAIL_DRIVER_HPP

#include <smtpwire/client.hpp>
#include <smtpwire/server.hpp>

#include <chrono>
#include <optional>
#include <type_traits>
#include <utility>

namespace smtpwire::detail {

template <class S, class = void>
struct has_engine : std::false_type {};
template <class S>
struct has_engine<S, std::void_t<decltype(std::declval<S&>().engine())>> : std::true_type {};

template <class S, class = void>
struct has_transport_eof : std::false_type {};
template <class S>
struct has_transport_eof<S, std::void_t<decltype(std::declval<S&>().transport_eof())>>
    : std::true_type {};

/// A session (the TLS glue) that says by closed() it is done although its
/// engine is not over (TLS failed, the peer's close_notify was answered).
template <class S, class = void>
struct has_closed : std::false_type {};
template <class S>
struct has_closed<S, std::void_t<decltype(bool(std::declval<const S&>().closed()))>>
    : std::true_type {};

/// A server engine's shutdown() (421 4.3.2).
template <class E, class = void>
struct has_shutdown : std::false_type {};
template <class E>
struct has_shutdown<E, std::void_t<decltype(std::declval<E&>().shutdown())>> : std::true_type {};

/// A server engine's decisions (awaiting_decision(), temp_fail()).
template <class E, class = void>
struct has_decisions : std::false_type {};
template <class E>
struct has_decisions<E, std::void_t<decltype(std::declval<E&>().awaiting_decision()),
                                    decltype(std::declval<E&>().temp_fail())>> : std::true_type {};

/// The engine behind a session: s.engine() for the TLS glue, else s.
template <class S>
decltype(auto) engine_of(S& s) noexcept {
  if constexpr (has_engine<S>::value)
    return s.engine();
  else
    return (s);
}

/// server::deadline() says "none" with time_point::max(), client::deadline()
/// with std::nullopt: one spelling for both.
inline std::optional<std::chrono::steady_clock::time_point> deadline_value(
    std::chrono::steady_clock::time_point t) noexcept {
  if (t == std::chrono::steady_clock::time_point::max()) return std::nullopt;
  return t;
}
inline std::optional<std::chrono::steady_clock::time_point> deadline_value(
    std::optional<std::chrono::steady_clock::time_point> t) noexcept {
  return t;
}

/// True once the engine's session is over: server::closed(), or the client
/// in state closed or failed. Its output may still hold a last reply or QUIT.
inline bool engine_over(const smtpwire::server& e) noexcept {
  return e.closed();
}
/// See engine_over(const server&).
inline bool engine_over(const smtpwire::client& e) noexcept {
  return e.state() == client_state::closed || e.state() == client_state::failed;
}

/// Calls `f(s, ev)`; a handler returning bool stops the driver with false.
template <class F, class S, class Ev>
bool invoke_handler(F& f, S& s, Ev& ev) {
  if constexpr (std::is_same_v<decltype(f(s, ev)), bool>) {
    return f(s, ev);
  } else {
    f(s, ev);
    return true;
  }
}

}  // namespace smtpwire::detail

#endif  // SMTPWIRE_DETAIL_DRIVER_HPP
