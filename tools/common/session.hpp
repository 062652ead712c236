// smtpwire tools — either_session<Engine>: an engine alone (no TLS) or an
// engine behind the OpenSSL glue (STARTTLS or implicit TLS), chosen at run
// time, with the network-side shape the POSIX drivers take (receive,
// output, consume_output, transport_eof, engine, next_event).
#ifndef SMTPWIRE_TOOLS_COMMON_SESSION_HPP
#define SMTPWIRE_TOOLS_COMMON_SESSION_HPP

#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/tls_info.hpp>

#include <cstddef>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace smtpwire_tools {

/// An engine with or without TLS. Engine is smtpwire::client, smtpwire::server
/// or a type derived from one with an engine_traits specialisation.
template <class Engine>
class either_session {
 public:
  using tls_type = smtpwire::openssl::tls_session<Engine>;                        ///< the TLS glue
  using config_type = typename smtpwire::openssl::engine_traits<Engine>::config;  ///< config
  using event_type = typename smtpwire::openssl::engine_traits<Engine>::event;    ///< events

  /// A session in clear: the engine's bytes go straight to the socket.
  explicit either_session(const config_type& cfg) : plain_(new Engine(cfg)) {}
  /// A session that can run TLS through `ch` (STARTTLS, or implicit TLS
  /// when the configuration says so).
  either_session(const config_type& cfg, smtpwire::openssl::channel ch)
      : tls_(new tls_type(cfg, std::move(ch))) {}

  /// Network octets in; returns how many were taken.
  std::size_t receive(std::string_view b) noexcept {
    return plain_ ? plain_->receive(b) : tls_->receive(b);
  }
  /// Octets to write to the socket.
  std::string_view output() const noexcept { return plain_ ? plain_->output() : tls_->output(); }
  /// Marks `n` octets of output() as written.
  void consume_output(std::size_t n) noexcept {
    if (plain_)
      (void)plain_->consume_output(n);
    else
      (void)tls_->consume_output(n);
  }
  /// The peer closed the TCP connection.
  void transport_eof() noexcept {
    if (tls_) tls_->transport_eof();
  }
  /// The engine (decisions, send_mail, …).
  Engine& engine() noexcept { return plain_ ? *plain_ : tls_->engine(); }
  /// The engine, read-only.
  const Engine& engine() const noexcept { return plain_ ? *plain_ : tls_->engine(); }
  /// The next event (after the glue acted on it).
  event_type next_event() noexcept { return plain_ ? plain_->next_event() : tls_->next_event(); }

  /// True once a TLS handshake completed.
  bool tls_active() const noexcept { return tls_ && tls_->tls_active(); }
  /// The TLS facts, or nullptr when TLS is not up.
  const smtpwire::tls_info* tls() const noexcept { return tls_active() ? &tls_->tls() : nullptr; }
  /// Why TLS failed or ended abnormally (empty when it did not, or no TLS).
  std::error_code tls_error() const noexcept {
    return tls_ ? tls_->tls_error() : std::error_code();
  }
  /// The glue, or nullptr for a session in clear.
  tls_type* tls_glue() noexcept { return tls_.get(); }

 private:
  std::unique_ptr<Engine> plain_;
  std::unique_ptr<tls_type> tls_;
};

}  // namespace smtpwire_tools

#endif  // SMTPWIRE_TOOLS_COMMON_SESSION_HPP
