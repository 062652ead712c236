// smtpwire::openssl — a TLS channel over two OpenSSL memory BIOs: ciphertext
// in, ciphertext out, plaintext in and out. Sans-I/O: no socket is touched,
// nothing blocks, time is never read.
//
// Theory of operation.
//
//   network --receive_ciphertext()--> [read BIO] --SSL--> read()  --> application
//   network <--ciphertext_out()/consume_ciphertext()-- [write BIO] <--SSL-- write()
//
// A channel is made from a context (context.hpp): channel::client() for the
// side that connects (SNI, host name check, optional DANE TLSA records,
// session resumption through the context's per-host cache) or
// channel::server(). The caller moves ciphertext between the network and the
// channel and calls handshake() after each receive until it says done or
// failed; from then on write() encrypts into ciphertext_out() and read()
// decrypts what was received.
//
// Ending (RFC 8446 §6.1). shutdown() queues our close_notify. The peer's
// close_notify makes read() return tls_errc::closed and peer_closed() true.
// An EOF of the transport without it is a truncation: transport_eof()
// returns tls_errc::truncated (and read() too, once the plaintext that came
// before the EOF has been read), never an orderly end.
//
// Errors. Failures are sticky: once handshake(), read() or write() failed,
// error() holds the code and error_text() OpenSSL's reasons (and, for a
// verification failure, X509's verify result text); later calls return the
// same error. A fatal alert OpenSSL queued for the peer is still in
// ciphertext_out() to send. OpenSSL's per-thread error queue is cleared
// before and drained after every call, so no error leaks between channels.
//
// Renegotiation (TLS 1.2) is refused: OpenSSL answers a HelloRequest or a
// renegotiating ClientHello with a no_renegotiation alert, and the channel
// then fails with tls_errc::renegotiation_refused (a peer that tries is
// either broken or attacking, CVE-2009-3555).
//
// Bounded memory: at most max_buffered_ciphertext octets of received but
// unprocessed ciphertext are held (receive_ciphertext() takes less when it
// would exceed that) and write() stops encrypting while that much ciphertext
// waits to be sent. A server channel makes its SSL object and memory BIOs
// (about 9 KiB with OpenSSL 3) only when it is first used: until then it
// holds about 0.5 KiB and a reference to its SSL_CTX, so a server session
// that offers STARTTLS but stays in clear does not pay for OpenSSL.
//
// Lifetimes. ciphertext_out() is valid until the next non-const call. The
// views in info(), verification() and the names are owned by the channel and
// valid until it is destroyed or assigned to. A moved-from channel may only
// be destroyed or assigned to.
#ifndef SMTPWIRE_OPENSSL_CHANNEL_HPP
#define SMTPWIRE_OPENSSL_CHANNEL_HPP

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <smtpwire/openssl/context.hpp>
#include <smtpwire/openssl/error.hpp>
#include <smtpwire/tls_info.hpp>

namespace smtpwire::openssl {

/// Where a handshake stands after handshake().
enum class handshake_status {
  in_progress,  ///< more ciphertext from the peer is needed (send ciphertext_out() first)
  done,         ///< established: read() and write() may be used
  failed,       ///< failed for good: see error() and error_text()
};

/// One DNS TLSA record (RFC 6698 §2.1, RFC 7672 §3) as the application
/// resolved it (DNSSEC-validated: the adapter trusts what it is given).
struct tlsa_record {
  std::uint8_t usage = 3;     ///< 2 = DANE-TA, 3 = DANE-EE (0 and 1: unusable, RFC 7672 §3.1.3)
  std::uint8_t selector = 1;  ///< 0 = full certificate, 1 = SubjectPublicKeyInfo
  std::uint8_t mtype = 1;     ///< 0 = exact, 1 = SHA2-256, 2 = SHA2-512
  std::string data;           ///< the association data, binary (not hex)
};

/// Who a client expects to reach.
struct peer_identity {
  /// The host name to verify (and send as SNI, RFC 6066 §3), e.g. the MX
  /// host; an IPv4/IPv6 literal is checked against the certificate's IP
  /// addresses and sends no SNI. Required.
  std::string host;
  /// TLSA records for DANE (RFC 7672); empty: PKIX verification only. With
  /// records, `host` is the TLSA base domain, and resumption is not used
  /// (the DANE result is only known from a full handshake).
  std::vector<tlsa_record> tlsa{};
  /// More names the certificate may match instead of `host` (RFC 7672
  /// §3.2.2 reference identifiers, e.g. the next-hop domain). With extra
  /// names, resumption is not used (the cache is keyed by `host` alone).
  std::vector<std::string> extra_names{};
};

/// What verification of the peer's certificate found (client side); filled
/// in required and opportunistic mode alike.
struct verification_result {
  bool checked = false;     ///< a certificate was verified (false on the server, or before done)
  bool passed = false;      ///< chain, validity, name (or DANE) all verified
  long code = 0;            ///< X509_V_OK or the X509_V_ERR_* value
  std::string_view reason;  ///< X509_verify_cert_error_string(code), owned by the channel
};

/// What DANE found (client side, RFC 7672 §2.2).
struct dane_result {
  bool enabled = false;       ///< TLSA records were given
  std::size_t usable = 0;     ///< records OpenSSL accepted as usable
  bool matched = false;       ///< a record matched the chain
  int depth = -1;             ///< chain depth of the match (0 = the server's certificate)
  std::size_t record = 0;     ///< index of the matching record in peer_identity::tlsa
  std::uint8_t usage = 0;     ///< the matching record's fields
  std::uint8_t selector = 0;  ///< see usage
  std::uint8_t mtype = 0;     ///< see usage
};

namespace detail {

/// Maps an X509 verify result to the channel's error code.
inline tls_errc verify_errc(long v) noexcept {
  switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return tls_errc::certificate_expired;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return tls_errc::hostname_mismatch;
    case X509_V_ERR_DANE_NO_MATCH:
      return tls_errc::dane_mismatch;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return tls_errc::certificate_untrusted;
    default:
      return tls_errc::verify_failed;
  }
}

/// Everything a channel owns; on the heap so that OpenSSL's callbacks can
/// keep a stable pointer while the channel object itself moves.
struct channel_state {
  client_link link;  // SSL app data (client side): the session cache hook
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;  // owned by ssl
  BIO* wbio = nullptr;  // owned by ssl
  // Server side, until `ssl` is made from it: the SSL_CTX current at
  // channel::server() (a reference is held, so a reload() cannot change it).
  SSL_CTX* lazy_ctx = nullptr;
  std::shared_ptr<client_shared> client_keep;
  bool client = false;
  verify_mode mode = verify_mode::required;
  std::string host;
  std::vector<tlsa_record> tlsa{};

  enum class phase { handshaking, established, failed } ph = phase::handshaking;
  bool renegotiation_seen = false;
  bool eof = false;
  bool shutdown_sent = false;
  std::error_code err;
  std::string err_text;
  // After transport EOF: plaintext decrypted while looking for close_notify.
  std::string eof_plain;
  std::size_t eof_pos = 0;
  std::error_code eof_end;  // empty: close_notify was seen

  std::string version, cipher, peer_name, verify_reason, server_name;
  long verify_code = X509_V_OK;
  bool verify_checked = false;
  bool verified = false;
  bool reused = false;
  dane_result dane;

  channel_state() = default;
  channel_state(const channel_state&) = delete;
  channel_state& operator=(const channel_state&) = delete;
  ~channel_state() {
    if (ssl != nullptr) SSL_free(ssl);
    if (lazy_ctx != nullptr) SSL_CTX_free(lazy_ctx);
  }
};

/// Notes an outgoing no_renegotiation alert (OpenSSL's refusal).
inline void renegotiation_watch(int write_p, int, int content_type, const void* buf,
                                std::size_t len, SSL*, void* arg) noexcept {
  if (write_p == 1 && content_type == SSL3_RT_ALERT && len >= 2 &&
      static_cast<const unsigned char*>(buf)[1] == SSL_AD_NO_RENEGOTIATION)
    static_cast<channel_state*>(arg)->renegotiation_seen = true;
}

/// Empties the thread's OpenSSL error queue, as SSL_get_error requires
/// before an I/O call. Peeking first: on the content path the queue is
/// almost always empty, and ERR_clear_error walks all its slots each time
/// (1.6-1.9% of a profile of bench/openssl/bench_session.cpp's content run).
inline void clear_error_queue() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace detail

/// A TLS session over memory BIOs; see the top of this header.
class channel {
 public:
  /// Most octets of received, unprocessed ciphertext held, and most octets
  /// of unsent ciphertext before write() stops; default 256 KiB (a TLS
  /// record is at most 2^14 + 256 octets, RFC 8446 §5.2).
  static constexpr std::size_t max_buffered_ciphertext = 256 * 1024;

  /// A client side for `peer` (SNI and name check against peer.host, DANE
  /// when peer.tlsa is not empty, resumption from `ctx`'s cache). Errors:
  /// tls_errc::config_error (empty host or extra name), tls_errc::out_of_memory.
  /// A malformed or unsupported TLSA record is not an error but unusable
  /// (RFC 7672 §2.2): dane().usable counts the others, and with none usable
  /// PKIX verification alone decides. The channel keeps `ctx`'s state alive.
  static result_or_error_code<channel> client(client_context& ctx,
                                              const peer_identity& peer) noexcept;
  /// A server side with `ctx`'s current certificate (a later reload() does
  /// not affect it). Its SSL object and BIOs are made at first use (the
  /// first receive_ciphertext(), handshake(), transport_eof() or native());
  /// when that allocation fails the channel fails with
  /// tls_errc::out_of_memory (sticky, as any failure). Error:
  /// tls_errc::out_of_memory (no reference to the SSL_CTX could be taken).
  static result_or_error_code<channel> server(server_context& ctx) noexcept;

  channel(channel&&) noexcept = default;
  channel& operator=(channel&&) noexcept = default;
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  ~channel() = default;

  /// True for a channel made by client().
  bool is_client() const noexcept { return st_->client; }

  /// Ciphertext from the network. Returns how many octets were taken: all of
  /// them, unless max_buffered_ciphertext would be exceeded (offer the rest
  /// after read() / handshake() made room), or 0 after transport_eof(). After
  /// a failure the octets are taken and dropped.
  std::size_t receive_ciphertext(std::string_view bytes) noexcept;
  /// Ciphertext to send to the network (handshake messages, records, alerts,
  /// close_notify); valid until the next non-const call.
  std::string_view ciphertext_out() const noexcept;
  /// Marks the first `n` octets of ciphertext_out() as sent (n is clamped to
  /// its size).
  void consume_ciphertext(std::size_t n) noexcept;

  /// Drives the handshake with the ciphertext received so far; call after
  /// each receive_ciphertext() (and once at the start: a client's first
  /// flight appears in ciphertext_out()). Idempotent once done or failed.
  handshake_status handshake() noexcept;
  /// True once handshake() returned done (and until a failure).
  bool established() const noexcept { return st_->ph == detail::channel_state::phase::established; }

  /// Encrypts `plaintext` into ciphertext_out(). Returns the octets taken:
  /// all, or fewer (0 included) while max_buffered_ciphertext octets wait to
  /// be sent. Errors: tls_errc::api_bad_state (not established, or after
  /// shutdown()), the channel's sticky error.
  result_or_error_code<std::size_t> write(std::string_view plaintext) noexcept;
  /// Decrypts up to `len` octets into `buf`. Returns the count, 0 when more
  /// ciphertext is needed. Errors: tls_errc::closed (the peer's
  /// close_notify; peer_closed() is then true), tls_errc::truncated (after
  /// transport_eof() without close_notify), renegotiation_refused,
  /// protocol_error, api_bad_state (before the handshake is done).
  result_or_error_code<std::size_t> read(char* buf, std::size_t len) noexcept;

  /// Queues our close_notify (once). Nothing is sent when the channel is not
  /// established (before or after a failed handshake: a fatal alert already
  /// ended it). write() is refused afterwards; read() still works.
  void shutdown() noexcept;
  /// True once shutdown() queued our close_notify.
  bool shutdown_sent() const noexcept { return st_->shutdown_sent; }
  /// True once the peer's close_notify was processed.
  bool peer_closed() const noexcept {
    return st_->ssl != nullptr && (SSL_get_shutdown(st_->ssl) & SSL_RECEIVED_SHUTDOWN) != 0;
  }
  /// The transport reached EOF (no more ciphertext will come). Returns an
  /// empty code when the received ciphertext ends with the peer's
  /// close_notify, else tls_errc::truncated. A handshake in progress is
  /// driven once more with what was received (it may complete) and fails as
  /// truncated otherwise. Plaintext that came before the EOF stays readable
  /// with read(). Calling it again returns the same answer.
  std::error_code transport_eof() noexcept;

  /// Facts for the engines (version, cipher, peer verified, peer name);
  /// empty views before the handshake is done. The views are owned by the
  /// channel. On the server side peer_verified is false and peer_name empty
  /// (client certificates are not requested).
  smtpwire::tls_info info() const noexcept;
  /// What verification of the peer's certificate found, in required and
  /// opportunistic mode alike (client side, once done).
  verification_result verification() const noexcept;
  /// What DANE found (client side, once done).
  dane_result dane() const noexcept { return st_->dane; }
  /// The name the certificate was verified for (SSL_get0_peername: `host`
  /// or one of extra_names; a resumed session reports `host`); empty when
  /// not verified or when DANE-EE matched (no name check, RFC 7672 §3.1.1).
  /// For MTA-STS (RFC 8461 §4.2) policy checks.
  std::string_view verified_peer_name() const noexcept { return st_->peer_name; }
  /// Server side: the SNI host name the client sent; empty when none.
  std::string_view server_name() const noexcept { return st_->server_name; }
  /// True when the handshake resumed a cached session.
  bool session_reused() const noexcept { return st_->reused; }
  /// The SSL object (escape hatch, e.g. SSL_export_keying_material for
  /// channel binding). Do not change its BIOs or app data. A server
  /// channel not used yet makes it now; nullptr when that fails.
  SSL* native() noexcept {
    (void)make_ssl();
    return st_->ssl;
  }

  /// The sticky failure; empty while none.
  std::error_code error() const noexcept { return st_->err; }
  /// OpenSSL's reasons for error() (and X509's verify text); owned by the
  /// channel.
  std::string_view error_text() const noexcept { return st_->err_text; }

 private:
  using state = detail::channel_state;
  explicit channel(std::unique_ptr<state> s) noexcept : st_(std::move(s)) {}

  static std::error_code attach_bios(state& s) noexcept;
  bool make_ssl() noexcept;
  void fail(tls_errc code, std::string_view prefix = {}) noexcept;
  void fail_handshake() noexcept;
  void finish_handshake() noexcept;
  std::error_code record_error(int ret) noexcept;

  std::unique_ptr<state> st_;
};

// ---------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------

// A server channel's SSL object, made at first use; false (the channel
// failed with tls_errc::out_of_memory) when it cannot be made.
inline bool channel::make_ssl() noexcept {
  state& s = *st_;
  if (s.ssl != nullptr) return true;
  if (s.lazy_ctx == nullptr) return false;  // failed before
  ERR_clear_error();
  s.ssl = SSL_new(s.lazy_ctx);
  SSL_CTX_free(s.lazy_ctx);  // the SSL holds its own reference
  s.lazy_ctx = nullptr;
  if (s.ssl != nullptr && attach_bios(s)) {
    SSL_free(s.ssl);
    s.ssl = nullptr;
  }
  if (s.ssl == nullptr) {
    fail(tls_errc::out_of_memory);
    return false;
  }
  SSL_set_accept_state(s.ssl);
  return true;
}

inline std::error_code channel::attach_bios(state& s) noexcept {
  s.rbio = BIO_new(BIO_s_mem());
  s.wbio = BIO_new(BIO_s_mem());
  if (s.rbio == nullptr || s.wbio == nullptr) {
    BIO_free(s.rbio);
    BIO_free(s.wbio);
    s.rbio = s.wbio = nullptr;
    return make_error_code(tls_errc::out_of_memory);
  }
  // -1: an empty read BIO means "more may come" until transport_eof().
  BIO_set_mem_eof_return(s.rbio, -1);
  SSL_set_bio(s.ssl, s.rbio, s.wbio);
  return {};
}

inline result_or_error_code<channel> channel::client(client_context& ctx,
                                                     const peer_identity& peer) noexcept {
  ERR_clear_error();
  if (peer.host.empty()) return tls_errc::config_error;
  auto s = std::make_unique<state>();
  s->client = true;
  s->mode = ctx.s_->opts.verify;
  s->host = peer.host;
  s->tlsa = peer.tlsa;
  s->ssl = SSL_new(ctx.s_->ctx.get());
  if (s->ssl == nullptr) {
    ERR_clear_error();
    return tls_errc::out_of_memory;
  }
  if (std::error_code ec = attach_bios(*s)) {
    ERR_clear_error();
    return ec;
  }
  SSL_set_connect_state(s->ssl);
  s->link.shared = ctx.s_.get();
  s->link.cache_key = peer.host;
  // Cached sessions are keyed by host alone, so only plain host sessions are
  // cached: a session verified through an extra name or DANE must not be
  // resumed (unverified) by a channel that asks for less.
  s->link.cache = ctx.s_->opts.session_resumption && peer.tlsa.empty() && peer.extra_names.empty();
  SSL_set_app_data(s->ssl, &s->link);
  s->client_keep = ctx.s_;

  X509_VERIFY_PARAM* param = SSL_get0_param(s->ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  bool ok = true;
  if (X509_VERIFY_PARAM_set1_ip_asc(param, peer.host.c_str()) == 1) {
    // An address literal: checked against iPAddress entries, no SNI.
  } else if (!peer.tlsa.empty()) {
    ERR_clear_error();
    // Sets SNI and adds the base domain as a reference identifier.
    ok = SSL_dane_enable(s->ssl, peer.host.c_str()) > 0;
    s->dane.enabled = ok;
    for (std::size_t i = 0; ok && i < peer.tlsa.size(); ++i) {
      const tlsa_record& r = peer.tlsa[i];
      // RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP.
      if (r.usage < 2) continue;
      const int added =
          SSL_dane_tlsa_add(s->ssl, r.usage, r.selector, r.mtype,
                            reinterpret_cast<const unsigned char*>(r.data.data()), r.data.size());
      // 0: malformed or unsupported, hence unusable and ignored (RFC 7672
      // §2.2: the application sees it in dane().usable); < 0: no memory.
      if (added < 0) {
        ERR_clear_error();
        return tls_errc::out_of_memory;
      }
      if (added > 0) ++s->dane.usable;
    }
  } else {
    ERR_clear_error();
    ok = SSL_set_tlsext_host_name(s->ssl, peer.host.c_str()) == 1 &&
         SSL_set1_host(s->ssl, peer.host.c_str()) == 1;
  }
  for (const std::string& name : peer.extra_names)
    ok = ok && !name.empty() && SSL_add1_host(s->ssl, name.c_str()) == 1;
  if (!ok) {
    ERR_clear_error();
    return tls_errc::config_error;
  }
  if (s->link.cache) {
    if (SSL_SESSION* cached = ctx.s_->take(peer.host)) {
      (void)SSL_set_session(s->ssl, cached);  // takes its own reference
      SSL_SESSION_free(cached);
    }
  }
  ERR_clear_error();
  return channel(std::move(s));
}

inline result_or_error_code<channel> channel::server(server_context& ctx) noexcept {
  ERR_clear_error();
  auto s = std::make_unique<state>();
  {
    // Under the lock: reload() cannot free the SSL_CTX before the reference
    // is taken. The SSL object itself waits for first use (make_ssl()): an
    // idle session that never starts TLS does not pay for it.
    std::lock_guard<std::mutex> lock(ctx.s_->mu);
    SSL_CTX* c = ctx.s_->ctx.get();
    if (c == nullptr || SSL_CTX_up_ref(c) != 1) {
      ERR_clear_error();
      return tls_errc::out_of_memory;
    }
    s->lazy_ctx = c;
  }
  return channel(std::move(s));
}

inline std::size_t channel::receive_ciphertext(std::string_view bytes) noexcept {
  if (st_->ph == state::phase::failed) return bytes.size();
  if (st_->eof || bytes.empty()) return 0;
  if (!make_ssl()) return bytes.size();
  const std::size_t pending = BIO_ctrl_pending(st_->rbio);
  if (pending >= max_buffered_ciphertext) return 0;
  const std::size_t room = max_buffered_ciphertext - pending;
  const std::size_t n = bytes.size() < room ? bytes.size() : room;
  // A memory BIO fails only when it cannot grow; it then queues an error
  // that must not reach the next SSL call's SSL_get_error.
  const int w = BIO_write(st_->rbio, bytes.data(), static_cast<int>(n));
  if (w > 0) return static_cast<std::size_t>(w);
  ERR_clear_error();
  return 0;
}

inline std::string_view channel::ciphertext_out() const noexcept {
  if (st_->wbio == nullptr) return {};  // not used yet
  char* p = nullptr;
  const long n = BIO_get_mem_data(st_->wbio, &p);
  if (n <= 0 || p == nullptr) return {};
  return {p, static_cast<std::size_t>(n)};
}

inline void channel::consume_ciphertext(std::size_t n) noexcept {
  // A memory BIO only advances by copying out; the copy is one pass over
  // bytes the caller has just written to its socket (hot in cache).
  if (st_->wbio == nullptr) return;  // not used yet: nothing to send
  char sink[16384];
  while (n != 0) {
    const int step = static_cast<int>(n < sizeof sink ? n : sizeof sink);
    const int got = BIO_read(st_->wbio, sink, step);
    if (got <= 0) break;
    n -= static_cast<std::size_t>(got);
  }
}

inline void channel::fail(tls_errc code, std::string_view prefix) noexcept {
  if (st_->ph == state::phase::failed) {
    detail::drain_error_queue(nullptr);
    return;
  }
  st_->ph = state::phase::failed;
  st_->err = make_error_code(code);
  st_->err_text.assign(prefix);
  std::string reasons;
  detail::drain_error_queue(&reasons);
  if (!reasons.empty()) {
    if (!st_->err_text.empty()) st_->err_text += "; ";
    st_->err_text += reasons;
  }
  if (st_->err_text.empty()) st_->err_text = std::string(detail::describe(code));
}

inline void channel::fail_handshake() noexcept {
  const long v = SSL_get_verify_result(st_->ssl);
  if (st_->client && st_->mode == verify_mode::required && v != X509_V_OK) {
    std::string why = "certificate verify failed: ";
    why += X509_verify_cert_error_string(v);
    fail(detail::verify_errc(v), why);
    return;
  }
  const unsigned long e = ERR_peek_error();
  if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    fail(tls_errc::truncated);
    return;
  }
  fail(tls_errc::handshake_failed);
}

inline void channel::finish_handshake() noexcept {
  state& s = *st_;
  s.ph = state::phase::established;
  s.version = SSL_get_version(s.ssl);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(s.ssl)) s.cipher = SSL_CIPHER_get_name(c);
  s.reused = SSL_session_reused(s.ssl) == 1;
  // Below TLS 1.3 a resumed session brings no new session unless the server
  // renews its ticket (the callback then replaces this): put it back.
  if (s.client && s.reused && s.link.cache && SSL_version(s.ssl) < TLS1_3_VERSION) {
    if (SSL_SESSION* again = SSL_get1_session(s.ssl)) s.link.shared->store(s.host, again);
  }
  if (s.client) {
    s.verify_checked = true;
    s.verify_code = SSL_get_verify_result(s.ssl);
    s.verified = s.verify_code == X509_V_OK;
    s.verify_reason = X509_verify_cert_error_string(s.verify_code);
    if (s.verified) {
      if (const char* name = SSL_get0_peername(s.ssl)) {
        s.peer_name = name;
      } else if (s.reused) {
        s.peer_name = s.host;  // the cache is keyed by host; it was verified for it
      }
    }
    if (s.dane.enabled) {
      std::uint8_t u = 0, sel = 0, mt = 0;
      const unsigned char* data = nullptr;
      std::size_t dlen = 0;
      const int depth = SSL_get0_dane_tlsa(s.ssl, &u, &sel, &mt, &data, &dlen);
      if (depth >= 0) {
        s.dane.matched = true;
        s.dane.depth = depth;
        s.dane.usage = u;
        s.dane.selector = sel;
        s.dane.mtype = mt;
        const std::string_view d(reinterpret_cast<const char*>(data), dlen);
        for (std::size_t i = 0; i < s.tlsa.size(); ++i) {
          const tlsa_record& r = s.tlsa[i];
          if (r.usage == u && r.selector == sel && r.mtype == mt && r.data == d) {
            s.dane.record = i;
            break;
          }
        }
      }
    }
  } else if (const char* sni = SSL_get_servername(s.ssl, TLSEXT_NAMETYPE_host_name)) {
    s.server_name = sni;
  }
  // TLS 1.3 has no renegotiation (RFC 8446 §4.6); watch only below it.
  if (SSL_version(s.ssl) < TLS1_3_VERSION) {
    SSL_set_msg_callback(s.ssl, &detail::renegotiation_watch);
    SSL_set_msg_callback_arg(s.ssl, &s);
  }
}

inline handshake_status channel::handshake() noexcept {
  if (st_->ph == state::phase::established) return handshake_status::done;
  if (st_->ph == state::phase::failed) return handshake_status::failed;
  if (!make_ssl()) return handshake_status::failed;
  ERR_clear_error();
  const int r = SSL_do_handshake(st_->ssl);
  if (r == 1) {
    finish_handshake();
    detail::drain_error_queue(nullptr);
    return handshake_status::done;
  }
  const int e = SSL_get_error(st_->ssl, r);
  if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !st_->eof) {
    detail::drain_error_queue(nullptr);
    return handshake_status::in_progress;
  }
  if (st_->eof && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)) {
    fail(tls_errc::truncated, "transport EOF during the handshake");
  } else {
    fail_handshake();
  }
  return handshake_status::failed;
}

inline std::error_code channel::record_error(int ret) noexcept {
  const int e = SSL_get_error(st_->ssl, ret);
  if (st_->renegotiation_seen) {
    fail(tls_errc::renegotiation_refused, "the peer tried to renegotiate");
    return st_->err;
  }
  switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      detail::drain_error_queue(nullptr);
      return {};
    case SSL_ERROR_ZERO_RETURN:
      detail::drain_error_queue(nullptr);
      return make_error_code(tls_errc::closed);
    default:
      break;
  }
  const unsigned long first = ERR_peek_error();
  if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
      ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    fail(tls_errc::truncated, "transport EOF without close_notify");
  } else {
    fail(tls_errc::protocol_error);
  }
  return st_->err;
}

inline result_or_error_code<std::size_t> channel::write(std::string_view plaintext) noexcept {
  if (st_->ph == state::phase::failed) return st_->err;
  if (st_->ph != state::phase::established || st_->shutdown_sent) return tls_errc::api_bad_state;
  if (plaintext.empty()) return std::size_t{0};
  const std::size_t waiting = BIO_ctrl_pending(st_->wbio);
  if (waiting >= max_buffered_ciphertext) return std::size_t{0};
  const std::size_t n =
      plaintext.size() < max_buffered_ciphertext ? plaintext.size() : max_buffered_ciphertext;
  detail::clear_error_queue();
  std::size_t written = 0;
  const int r = SSL_write_ex(st_->ssl, plaintext.data(), n, &written);
  if (r == 1 && !st_->renegotiation_seen) return written;
  const std::error_code ec = record_error(r == 1 ? -1 : r);
  if (ec) return ec;
  return written;
}

inline result_or_error_code<std::size_t> channel::read(char* buf, std::size_t len) noexcept {
  state& s = *st_;
  if (s.eof_pos < s.eof_plain.size()) {
    std::size_t n = s.eof_plain.size() - s.eof_pos;
    if (n > len) n = len;
    s.eof_plain.copy(buf, n, s.eof_pos);
    s.eof_pos += n;
    return n;
  }
  if (s.ph == state::phase::failed) return s.err;
  if (s.ph != state::phase::established) return tls_errc::api_bad_state;
  if (s.eof) return s.eof_end ? s.eof_end : make_error_code(tls_errc::closed);
  if (peer_closed()) return tls_errc::closed;
  if (len == 0) return std::size_t{0};
  detail::clear_error_queue();
  std::size_t n = 0;
  const int r = SSL_read_ex(s.ssl, buf, len, &n);
  if (r == 1 && !s.renegotiation_seen) return n;
  const std::error_code ec = record_error(r == 1 ? -1 : r);
  if (ec) return ec;
  return std::size_t{0};
}

inline void channel::shutdown() noexcept {
  if (st_->shutdown_sent || st_->ph != state::phase::established) return;
  st_->shutdown_sent = true;
  ERR_clear_error();
  (void)SSL_shutdown(st_->ssl);
  detail::drain_error_queue(nullptr);
}

inline std::error_code channel::transport_eof() noexcept {
  state& s = *st_;
  if (s.eof) return s.eof_end;
  if (!make_ssl()) {
    s.eof = true;
    s.eof_end = s.err;
    return s.err;
  }
  s.eof = true;
  BIO_set_mem_eof_return(s.rbio, 0);
  // The last flight may already be buffered: finish with it if it completes
  // the handshake, fail as truncated otherwise.
  if (s.ph == state::phase::handshaking) (void)handshake();
  if (s.ph == state::phase::failed) {
    s.eof_end = s.err;
    return s.err;
  }
  // Decrypt what is left to find out whether it ends with close_notify; the
  // plaintext is kept for read(). Bounded by max_buffered_ciphertext.
  char chunk[16384];
  while (!peer_closed()) {
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(s.ssl, chunk, sizeof chunk, &n);
    if (r == 1 && !s.renegotiation_seen) {
      s.eof_plain.append(chunk, n);
      continue;
    }
    const std::error_code ec = record_error(r == 1 ? -1 : r);
    if (ec == make_error_code(tls_errc::closed)) break;
    if (!ec) fail(tls_errc::truncated, "transport EOF without close_notify");
    s.eof_end = s.err;
    return s.eof_end;
  }
  s.eof_end = {};
  return {};
}

inline smtpwire::tls_info channel::info() const noexcept {
  smtpwire::tls_info i;
  i.version = st_->version;
  i.cipher = st_->cipher;
  i.peer_verified = st_->verified;
  i.peer_name = st_->peer_name;
  return i;
}

inline verification_result channel::verification() const noexcept {
  verification_result v;
  v.checked = st_->verify_checked;
  v.passed = st_->verified;
  v.code = st_->verify_code;
  v.reason = st_->verify_reason;
  return v;
}

}  // namespace smtpwire::openssl

#endif  // SMTPWIRE_OPENSSL_CHANNEL_HPP
