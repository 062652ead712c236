// smtpwire::openssl — the glue that joins an engine (smtpwire::client or
// smtpwire::server) and a TLS channel, switching the byte stream into TLS at
// exactly the right byte.
//
// Theory of operation.
//
// A tls_session<Engine> owns an engine and a channel and has, on its network
// side, exactly the engines' shape: receive(bytes) / output() +
// consume_output(n), plus transport_eof(). A socket driver moves bytes
// between a socket and that side without knowing whether TLS is up. The
// application side is the engine itself (engine(): decisions, send_mail(),
// …) and next_event(), which returns the engine's events after the glue has
// acted on them.
//
// Phases. Before TLS, network bytes go straight to the engine and the
// engine's output straight to the network. When the engine asks for TLS
// (client_events::start_tls, server's starttls_event) the glue makes the
// cut; from then on network bytes are ciphertext for the channel, the
// channel's plaintext goes to the engine, and the engine's output is
// encrypted by the channel. Implicit TLS (RFC 8314 §3.3, port 465: the
// client's tls_policy::implicit, the server's implicit_tls) starts in the
// handshake phase: the client's first flight is in output() at once.
//
// The cut (RFC 3207 §4.2; CVE-2011-0411 for servers, response injection for
// clients, Poddebniak et al., USENIX Security 2021). Every network octet
// that was offered to receive() before the cut — buffered by the engine, or
// left over by a short receive() and still held by the driver — was read
// before the STARTTLS command (server) or the 220 reply (client) could have
// been answered, so it is plaintext and never reaches TLS:
//  - server: the engine drops what it buffered after the STARTTLS line; the
//    glue drops the octets the driver still holds (they are the first ones
//    the driver offers again, as the receive() contract requires) and adds
//    their count to starttls_event::discarded. The 220 leaves in clear
//    before any ciphertext.
//  - client: bytes after the 220 are a response injection and fail the
//    session through the engine's own rules: octets the engine buffered
//    fail it at its next event, which the glue pulls (and holds for the
//    application) before starting the handshake; octets the driver still
//    holds are handed to client::receive, which fails in the tls_handshake
//    state, and the handshake is not started before. Either way no
//    ClientHello leaves.
// Octets offered after the cut are ciphertext. A driver can read the
// socket while the server's 220 is still being written (full-duplex event
// loops do), so the glue cannot tell a fast honest ClientHello from late
// plaintext by timing; such plaintext goes to TLS, which rejects it (the
// handshake fails) and never hands it to the engine.
//
// Completion. When the channel's handshake is done the glue calls
// engine.tls_established(channel.info()); when it fails, the engine's
// tls_failed() (server: closed_event{tls_failed}; client: an error event with
// errc::tls_handshake_failed).
// info() stays valid for the session's life (the channel owns its strings).
//
// Ending. When the engine is over (server closed, client closed or failed)
// its last output is encrypted and a close_notify follows. A close_notify
// from the peer or a transport EOF ends input: nothing in the engine turns
// either into the end of a message — DATA ends only at CRLF.CRLF and a BDAT
// message only with its LAST chunk — so a cut-off message is never
// accepted. Once the engine has parsed everything that came before the end
// (next_event() returned std::monostate), tls_error() says tls_errc::closed
// or tls_errc::truncated when the engine's dialogue was not over (a cut-off
// message, no QUIT); a peer that ends after its QUIT's 221 leaves no error.
// closed() says when the driver can close the socket.
//
// Memory. Nothing of TLS is allocated while a session stays in clear: a
// server channel makes its SSL object and BIOs (about 9 KiB with OpenSSL 3)
// at the cut (implicit TLS: at construction), and one plaintext buffer of
// one TLS record (2^14 octets, RFC 8446 §5.1) is allocated when TLS first
// carries data. An idle server session that offers STARTTLS holds the
// engine (about 2 KiB) plus about 1 KiB of glue and channel state. While
// the engine cannot take more
// plaintext, receive() takes no ciphertext (returns what it took, possibly
// 0): the driver offers the rest after pulling events, as with the engines.
// The engine's output is encrypted while less than one record of ciphertext
// waits to be sent, so an application that outpaces the network meets the
// engine's own back-pressure (client::send_content takes less).
//
// Lifetimes. Views in events are valid until the next call on the session
// (as with the engines). output() is valid until the next call on the
// session. output() is logically const: it encrypts engine output the
// application produced since the last call (a decision, send_mail()) before
// presenting the bytes to send.
#ifndef SMTPWIRE_OPENSSL_SESSION_HPP
#define SMTPWIRE_OPENSSL_SESSION_HPP

#include <smtpwire/client.hpp>
#include <smtpwire/error.hpp>
#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/server.hpp>
#include <smtpwire/tls_info.hpp>

#include <cstddef>
#include <memory>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace smtpwire::openssl {

/// What tls_session needs to know about an engine; specialised for
/// smtpwire::client and smtpwire::server.
template <class Engine>
struct engine_traits;

/// The client engine.
template <>
struct engine_traits<smtpwire::client> {
  using config = client_config;  ///< the engine's configuration
  using event = client_event;    ///< the engine's event variant
  /// The engine waits for a handshake (implicit TLS at construction).
  static bool handshake_due(const client& e) noexcept {
    return e.state() == client_state::tls_handshake;
  }
  /// Nothing more will be read or written by the engine.
  static bool over(const client& e) noexcept {
    return e.state() == client_state::closed || e.state() == client_state::failed;
  }
  /// A decision of the application is pending (the client has none).
  static bool deciding(const client&) noexcept { return false; }
  /// The event that makes the cut.
  static bool is_cut(const event& ev) noexcept {
    return std::holds_alternative<client_events::start_tls>(ev);
  }
  /// Plaintext octets after the 220 that the driver still held at the cut:
  /// the engine's own rule (receive() in tls_handshake) fails the session
  /// with errc::tls_response_injection.
  static void pre_cut_octets(client& e, std::string_view octets) noexcept {
    (void)e.receive(octets);
  }
  /// Adds the glue's share to the event's discard count (none for a client).
  static void add_discarded(event&, std::size_t) noexcept {}
  /// The handshake succeeded.
  static errc established(client& e, const tls_info& info) noexcept {
    return e.tls_established(info);
  }
  /// The handshake failed: the engine fails with an error event carrying
  /// errc::tls_handshake_failed and sends nothing more.
  static void failed(client& e) noexcept { (void)e.tls_failed(); }
};

/// The server engine.
template <>
struct engine_traits<smtpwire::server> {
  using config = server_config;  ///< the engine's configuration
  using event = server_event;    ///< the engine's event variant
  /// The engine waits for a handshake (implicit TLS at construction).
  static bool handshake_due(const server& e) noexcept {
    return e.state() == server_state::tls_pending;
  }
  /// Nothing more will be read or written by the engine.
  static bool over(const server& e) noexcept { return e.closed(); }
  /// A decision of the application is pending.
  static bool deciding(const server& e) noexcept { return e.awaiting_decision(); }
  /// The event that makes the cut.
  static bool is_cut(const event& ev) noexcept {
    return std::holds_alternative<starttls_event>(ev);
  }
  /// Plaintext octets after the STARTTLS line that the driver still held at
  /// the cut: dropped (counted at the cut, see add_discarded).
  static void pre_cut_octets(server&, std::string_view) noexcept {}
  /// Adds the glue's share to starttls_event::discarded.
  static void add_discarded(event& ev, std::size_t n) noexcept {
    if (auto* s = std::get_if<starttls_event>(&ev)) s->discarded += n;
  }
  /// The handshake succeeded.
  static errc established(server& e, const tls_info& info) noexcept {
    return e.tls_established(info);
  }
  /// The handshake failed: the engine closes (closed_event{tls_failed})
  /// without a reply.
  static void failed(server& e) noexcept { (void)e.tls_failed(); }
};

/// An engine joined to a TLS channel. Engine is smtpwire::client or
/// smtpwire::server, or a type derived from one that has an engine_traits
/// specialisation (e.g. deriving from engine_traits<smtpwire::client>).
/// Not thread-safe; one per connection; not copyable or
/// movable (the engines are not).
template <class Engine>
class tls_session {
 public:
  using traits = engine_traits<Engine>;         ///< the engine's traits
  using config_type = typename traits::config;  ///< client_config or server_config
  using event_type = typename traits::event;    ///< client_event or server_event

  /// Plaintext octets buffered between the channel and the engine: one TLS
  /// record (RFC 8446 §5.1: 2^14); fixed, no RFC minimum for SMTP.
  static constexpr std::size_t plaintext_buffer = 16384;

  /// A session for a new connection: the engine is built from `cfg`, `ch`
  /// must be a channel of the matching side (channel::client for a client
  /// engine, channel::server for a server engine) that has not started.
  /// Under implicit TLS the handshake starts now (a client's first flight
  /// is in output()). A channel of the wrong side leaves the session over
  /// from the start: closed(), tls_error() == tls_errc::api_bad_state.
  tls_session(const config_type& cfg, channel ch) : engine_(cfg), ch_(std::move(ch)) {
    if (ch_.is_client() != std::is_base_of_v<smtpwire::client, Engine>) {
      tls_error_ = make_error_code(tls_errc::api_bad_state);
      phase_ = phase::broken;
      return;
    }
    if (traits::handshake_due(engine_)) {
      phase_ = phase::handshake;
      step_handshake();
    }
  }

  tls_session(const tls_session&) = delete;
  tls_session& operator=(const tls_session&) = delete;

  // -- network side (the engines' shape) ----------------------------------

  /// Octets from the network: plaintext before the cut, ciphertext after.
  /// Returns how many were taken: fewer than offered when the engine (or,
  /// under TLS, the plaintext buffer) is full — pull events, then offer the
  /// rest, starting with the first octet not taken. After the session is
  /// over (the engine is done or TLS failed) octets are taken and dropped.
  std::size_t receive(std::string_view bytes) noexcept {
    // Once over, octets are dropped; under TLS they still go through the
    // channel (the peer's close_notify is noted) and their plaintext is dropped.
    if (phase_ == phase::broken || (traits::over(engine_) && phase_ != phase::tls))
      return bytes.size();
    if (phase_ == phase::plain) {
      const std::size_t n = engine_.receive(bytes);
      if (consumed_ + bytes.size() > offered_end_) offered_end_ = consumed_ + bytes.size();
      consumed_ += n;
      return n;
    }
    std::size_t used = 0;
    if (owed_ != 0) {
      const std::size_t k = owed_ < bytes.size() ? owed_ : bytes.size();
      traits::pre_cut_octets(engine_, bytes.substr(0, k));
      owed_ -= k;
      used = k;
      bytes.remove_prefix(k);
      if (traits::over(engine_)) return used + bytes.size();
    }
    feed_engine();
    if (bytes.empty() || phase_ == phase::broken || stage_pos_ != stage_end_) return used;
    const std::size_t n = ch_.receive_ciphertext(bytes);
    if (n != 0) fresh_ = true;
    used += n;
    feed_engine();
    return used;
  }

  /// Octets to send to the network: the engine's plaintext before the cut
  /// (a server's 220 to STARTTLS included), ciphertext after it. Valid until
  /// the next call on the session.
  std::string_view output() const noexcept {
    if (plain_left_ != 0) return engine_.output().substr(0, plain_left_);
    if (phase_ == phase::plain) return engine_.output();
    pump_output();
    return ch_.ciphertext_out();
  }

  /// Marks the first `n` octets of output() as sent; errc::api_value_invalid
  /// (nothing changes) when n > output().size().
  errc consume_output(std::size_t n) noexcept {
    if (n > output().size()) return errc::api_value_invalid;
    if (plain_left_ != 0) {
      (void)engine_.consume_output(n);
      plain_left_ -= n;
    } else if (phase_ == phase::plain) {
      (void)engine_.consume_output(n);
    } else {
      ch_.consume_ciphertext(n);
    }
    return errc::ok;
  }

  /// The peer closed the transport (a read returned EOF). Before TLS the
  /// engine keeps what it has (pull its events: a buffered QUIT is still
  /// answered); during the handshake it is a handshake failure; under TLS
  /// without a close_notify it is a truncation (tls_errc::truncated, unless
  /// the engine was already over). Octets read before the EOF may still be
  /// offered to receive().
  void transport_eof() noexcept {
    if (eof_) return;
    eof_ = true;
    if (phase_ == phase::handshake) {
      if (!traits::over(engine_)) fail_handshake(make_error_code(tls_errc::truncated));
      phase_ = phase::broken;
      return;
    }
    if (phase_ != phase::tls || peer_closed_) return;
    const std::error_code e = ch_.transport_eof();
    if (e) end_ = e;
    fresh_ = true;
  }

  /// True when the driver can close the connection: nothing is left to
  /// send, and the engine is over, TLS failed, the transport reached EOF,
  /// or the peer's close_notify was answered. Pull events until
  /// std::monostate before relying on it (the last events may still be
  /// queued, and before TLS a buffered command may still get its reply).
  bool closed() const noexcept {
    if (!output().empty()) return false;
    return traits::over(engine_) || phase_ == phase::broken || eof_ || shutdown_sent_ ||
           hard_error();
  }

  // -- application side ---------------------------------------------------

  /// The engine: decisions (server), send_mail(), quit(), check_time(), …
  /// Do not call its receive(), output(), consume_output() or
  /// tls_established(): the session does.
  Engine& engine() noexcept { return engine_; }
  /// The engine, read-only.
  const Engine& engine() const noexcept { return engine_; }

  /// The engine's next event, after the glue acted on it: on start_tls /
  /// starttls_event the cut is made and the handshake started (the
  /// application has nothing to do for them). A server's
  /// starttls_event::discarded counts every plaintext octet dropped at the
  /// cut (the engine's and the driver's). A failed handshake ends the
  /// engine through its tls_failed(): the server's closed_event{tls_failed},
  /// the client's error event with errc::tls_handshake_failed (tls_error()
  /// says why).
  event_type next_event() noexcept {
    if (held_) {
      held_ = false;
      event_type ev = std::move(held_event_);
      held_event_ = event_type{};
      return ev;
    }
    feed_engine();
    for (;;) {
      event_type ev = engine_.next_event();
      if (traits::is_cut(ev)) {
        cut(ev);
        return ev;
      }
      if (!std::holds_alternative<std::monostate>(ev)) return ev;
      if (!feed_engine()) {
        settle_end();
        pump_output();
        return ev;
      }
    }
  }

  // -- TLS ------------------------------------------------------------------

  /// True once the handshake completed (and TLS did not fail since).
  bool tls_active() const noexcept { return phase_ == phase::tls; }
  /// The facts handed to the engine (valid for the session's life); empty
  /// before the handshake completed.
  const tls_info& tls() const noexcept { return info_; }
  /// Why TLS ended abnormally: the handshake's failure (the channel's
  /// error, e.g. tls_errc::verify_failed), a record error, tls_errc::closed
  /// (the peer's close_notify before the engine was over) or
  /// tls_errc::truncated; empty otherwise.
  std::error_code tls_error() const noexcept { return tls_error_; }
  /// Plaintext octets dropped at the cut (server; the engine's and the
  /// driver's share).
  std::size_t discarded() const noexcept { return discarded_; }
  /// The channel (verification details, DANE results, native()).
  channel& tls_channel() noexcept { return ch_; }
  /// The channel, read-only.
  const channel& tls_channel() const noexcept { return ch_; }

 private:
  enum class phase : unsigned char {
    plain,      // no TLS yet: octets go straight to the engine
    handshake,  // after the cut (or implicit TLS): ciphertext goes to the channel
    tls,        // established
    broken,     // the handshake failed or the transport closed during it
  };

  // The cut: everything offered before it is plaintext.
  void cut(event_type& ev) noexcept {
    owed_ = offered_end_ - consumed_;
    plain_left_ = engine_.output().size();
    phase_ = phase::handshake;
    if constexpr (std::is_base_of_v<smtpwire::server, Engine>) {
      traits::add_discarded(ev, owed_);
      if (auto* s = std::get_if<starttls_event>(&ev)) discarded_ += s->discarded;
    } else {
      (void)ev;
      // Octets already buffered after the 220 fail the client at its next
      // event; take that event now so that no ClientHello leaves first.
      event_type next = engine_.next_event();
      if (!std::holds_alternative<std::monostate>(next)) {
        held_ = true;
        held_event_ = std::move(next);
      }
    }
    step_handshake();
  }

  // A TLS failure after which nothing can be read or written (not the
  // peer's close_notify, not a truncation).
  bool hard_error() const noexcept {
    return tls_error_ && tls_error_ != make_error_code(tls_errc::closed) &&
           tls_error_ != make_error_code(tls_errc::truncated);
  }

  void fail_handshake(std::error_code e) noexcept {
    if (!tls_error_) tls_error_ = e ? e : make_error_code(tls_errc::handshake_failed);
    phase_ = phase::broken;
    traits::failed(engine_);
    // A failing engine may drop output it held for TLS.
    if (plain_left_ > engine_.output().size()) plain_left_ = engine_.output().size();
  }

  void step_handshake() noexcept {
    if (phase_ != phase::handshake || owed_ != 0 || held_) return;
    if (traits::over(engine_)) {
      phase_ = phase::broken;
      return;
    }
    // Only new ciphertext (or the first call: a client's first flight) can
    // move the handshake.
    if (!fresh_ && started_) return;
    started_ = true;
    switch (ch_.handshake()) {
      case handshake_status::in_progress:
        fresh_ = false;
        return;
      case handshake_status::done:
        info_ = ch_.info();
        phase_ = phase::tls;
        (void)traits::established(engine_, info_);  // a client may refuse: injection
        return;
      case handshake_status::failed:
        fail_handshake(ch_.error());
        return;
    }
  }

  // Moves plaintext from the channel into the engine; true when an octet
  // moved. Never called from output(): it would invalidate event views.
  bool feed_engine() noexcept {
    step_handshake();
    if (phase_ != phase::tls) return false;
    bool moved = false;
    for (;;) {
      if (stage_pos_ == stage_end_) {
        if (peer_closed_ || hard_error() || !fresh_) break;
        // Allocated when TLS first carries data: a session that never
        // starts TLS (most of a server's idle ones) does not pay for it.
        if (!stage_) stage_.reset(new char[plaintext_buffer]);
        auto r = ch_.read(stage_.get(), plaintext_buffer);
        if (!r) {
          if (r.error() == make_error_code(tls_errc::closed) || ch_.peer_closed()) {
            note_peer_closed();
          } else if (r.error() == make_error_code(tls_errc::truncated)) {
            if (!end_) end_ = r.error();  // everything before the EOF was read
          } else if (!hard_error()) {
            tls_error_ = r.error();
          }
          break;
        }
        if (*r == 0) {
          fresh_ = false;  // the channel needs more ciphertext
          if (ch_.peer_closed()) note_peer_closed();
          break;
        }
        stage_pos_ = 0;
        stage_end_ = *r;
      }
      const std::size_t k = traits::over(engine_)
                                ? stage_end_ - stage_pos_
                                : engine_.receive(std::string_view(stage_.get() + stage_pos_,
                                                                   stage_end_ - stage_pos_));
      if (k == 0) break;
      stage_pos_ += k;
      moved = true;
    }
    return moved;
  }

  void note_peer_closed() noexcept {
    if (peer_closed_) return;
    peer_closed_ = true;
    if (!end_) end_ = make_error_code(tls_errc::closed);
  }

  // After the peer's close_notify or a transport EOF, once the engine has
  // taken and parsed every octet that came before it: the end is an error
  // only when the engine's dialogue is not over (a cut-off message, no QUIT).
  void settle_end() noexcept {
    if (!end_ || settled_ || stage_pos_ != stage_end_ || traits::deciding(engine_)) return;
    settled_ = true;
    if (!traits::over(engine_) && !tls_error_) tls_error_ = end_;
    if (peer_closed_) drained_ = true;
  }

  // Encrypts the engine's pending output; queues close_notify once the
  // engine (or, after the peer's close_notify, its last reply) is done.
  void pump_output() const noexcept {
    if (phase_ != phase::tls || shutdown_sent_) return;
    if (!hard_error()) {
      // At most one record's worth of ciphertext waits for the driver:
      // beyond it the engine's own output buffer fills and pushes back.
      for (std::string_view out = engine_.output();
           !out.empty() && ch_.ciphertext_out().size() < plaintext_buffer; out = engine_.output()) {
        auto r = ch_.write(out.substr(0, plaintext_buffer));
        if (!r) {
          tls_error_ = r.error();
          return;
        }
        if (*r == 0) return;
        (void)engine_.consume_output(*r);
      }
    }
    if (engine_.output().empty() && (traits::over(engine_) || drained_) && !eof_) {
      ch_.shutdown();
      shutdown_sent_ = true;
    }
  }

  mutable Engine engine_;
  mutable channel ch_;
  std::unique_ptr<char[]> stage_;  // plaintext from the channel, not yet taken by the engine
  std::size_t stage_pos_ = 0;
  std::size_t stage_end_ = 0;
  phase phase_ = phase::plain;
  std::size_t consumed_ = 0;     // plain phase: octets the engine took
  std::size_t offered_end_ = 0;  // plain phase: the furthest octet offered
  std::size_t owed_ = 0;         // pre-cut octets the driver still holds
  std::size_t plain_left_ = 0;   // engine output that leaves in clear (the 220)
  std::size_t discarded_ = 0;
  tls_info info_{};
  mutable std::error_code tls_error_;
  std::error_code end_;  // the peer's close_notify or a truncation, before settle_end()
  bool settled_ = false;
  bool eof_ = false;
  bool peer_closed_ = false;
  bool drained_ = false;  // after the peer's close_notify the engine has nothing left
  mutable bool shutdown_sent_ = false;
  bool held_ = false;  // held_event_ comes before the engine's next one
  // Ciphertext arrived since the channel last asked for more: only then can
  // handshake() or read() make progress (each is a round of OpenSSL calls).
  bool fresh_ = false;
  bool started_ = false;  // handshake() was called once
  event_type held_event_{};
};

}  // namespace smtpwire::openssl

#endif  // SMTPWIRE_OPENSSL_SESSION_HPP
