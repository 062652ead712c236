// smtpwire::openssl — TLS contexts with safe defaults: client_context (peer
// verification against the system store or a CA file, host name check and
// SNI, a session cache keyed by host, opportunistic mode as an explicit
// choice) and server_context (certificate chain and key from PEM files,
// checked to match, reloadable without dropping live sessions, session
// tickets). TLS 1.2 is the minimum everywhere (RFC 8996 deprecates 1.0/1.1;
// RFC 7672 §8 and RFC 8314 §4.1 ask for current TLS). Renegotiation is
// refused (TLS 1.2's SSL_OP_NO_RENEGOTIATION; TLS 1.3 has none).
//
// A context is a cheap handle on shared state: copies share it, and every
// channel made from a context keeps that state alive, so a context may be
// destroyed while its channels live. A context and its copies may be used
// from several threads (the session cache and reload() take a mutex); one
// channel is used by one thread at a time.
//
// No global state: each context owns its SSL_CTX; OpenSSL's own library
// state is the only process-wide state involved.
#ifndef SMTPWIRE_OPENSSL_CONTEXT_HPP
#define SMTPWIRE_OPENSSL_CONTEXT_HPP

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <smtpwire/openssl/error.hpp>

namespace smtpwire::openssl {

/// A TLS protocol version the contexts accept as a bound.
enum class tls_version { tls1_2, tls1_3 };

/// How a client treats a peer whose certificate does not verify.
enum class verify_mode {
  /// The handshake fails with the verification error (tls_errc::verify_failed,
  /// certificate_expired, certificate_untrusted, hostname_mismatch,
  /// dane_mismatch). The default.
  required,
  /// Encrypt without authenticating (RFC 7435 opportunistic security, as
  /// MTA-to-MTA delivery without DANE or MTA-STS does): the handshake
  /// succeeds whatever the certificate, and the channel still reports whether
  /// verification would have passed and why not (channel::verification()).
  opportunistic,
};

/// Client settings. Every default is the safe one.
struct client_tls_options {
  verify_mode verify = verify_mode::required;  ///< default: required
  /// PEM file of trust anchors; empty: the system store
  /// (SSL_CTX_set_default_verify_paths).
  std::string ca_file;
  tls_version min_version = tls_version::tls1_2;  ///< default 1.2; lower is not offered
  tls_version max_version = tls_version::tls1_3;  ///< default 1.3
  /// Optional client certificate chain and key (PEM files); both or neither.
  std::string cert_file;
  std::string key_file;  ///< see cert_file
  /// Key exchange groups (SSL_CTX_set1_groups_list, e.g. "X25519:P-256");
  /// empty: OpenSSL's default list (X25519 first).
  std::string groups;
  /// TLS 1.2 cipher list (SSL_CTX_set_cipher_list); empty: OpenSSL's default.
  std::string ciphers;
  /// TLS 1.3 cipher suites (SSL_CTX_set_ciphersuites); empty: OpenSSL's default.
  std::string ciphersuites;
  /// Keep one session per host and offer it on the next handshake to that
  /// host (RFC 8446 §2.2, RFC 5077). Default: true. OpenSSL only lets a
  /// session be resumed when its channel was ended with channel::shutdown()
  /// (our close_notify sent).
  bool session_resumption = true;
  std::size_t session_cache_limit = 256;  ///< hosts remembered; default 256 (no RFC minimum)
};

/// Server settings. Every default is the safe one.
struct server_tls_options {
  /// PEM file: the server certificate followed by its intermediates
  /// (SSL_CTX_use_certificate_chain_file). Required.
  std::string cert_file;
  /// PEM file: the private key of the certificate. Required.
  std::string key_file;
  tls_version min_version = tls_version::tls1_2;  ///< default 1.2; lower is not accepted
  tls_version max_version = tls_version::tls1_3;  ///< default 1.3
  std::string groups;                             ///< as client_tls_options::groups
  std::string ciphers;                            ///< as client_tls_options::ciphers
  std::string ciphersuites;                       ///< as client_tls_options::ciphersuites
  /// Issue session tickets (RFC 8446 §4.6.1, RFC 5077) so clients can
  /// resume; the ticket keys survive reload(). Default: true.
  bool session_tickets = true;
};

namespace detail {

inline int version_number(tls_version v) noexcept {
  return v == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/// Owns an SSL_CTX reference.
struct ctx_deleter {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
using ctx_ptr = std::unique_ptr<SSL_CTX, ctx_deleter>;

/// Records a configuration failure: the code, and `what` followed by
/// OpenSSL's queued reasons in `text` (when not null).
inline std::error_code config_failure(std::string* text, std::string_view what) noexcept {
  std::string reasons;
  detail::drain_error_queue(&reasons);
  if (text != nullptr) {
    text->assign(what);
    if (!reasons.empty()) {
      *text += ": ";
      *text += reasons;
    }
  }
  return make_error_code(tls_errc::config_error);
}

/// Settings both sides share: versions, renegotiation, groups and ciphers.
inline std::error_code apply_common(SSL_CTX* c, tls_version min, tls_version max,
                                    const std::string& groups, const std::string& ciphers,
                                    const std::string& suites, std::string* text) noexcept {
  if (version_number(min) > version_number(max))
    return config_failure(text, "min_version is above max_version");
  if (SSL_CTX_set_min_proto_version(c, version_number(min)) != 1 ||
      SSL_CTX_set_max_proto_version(c, version_number(max)) != 1)
    return config_failure(text, "cannot set the protocol versions");
  // Renegotiation on a mail session is only ever an attack surface
  // (CVE-2009-3555 class); TLS 1.3 has none.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (!groups.empty() && SSL_CTX_set1_groups_list(c, groups.c_str()) != 1)
    return config_failure(text, "invalid groups list");
  if (!ciphers.empty() && SSL_CTX_set_cipher_list(c, ciphers.c_str()) != 1)
    return config_failure(text, "invalid cipher list");
  if (!suites.empty() && SSL_CTX_set_ciphersuites(c, suites.c_str()) != 1)
    return config_failure(text, "invalid TLS 1.3 cipher suites");
  return {};
}

/// Loads a chain and its key into `c` and checks that they match.
inline std::error_code load_credentials(SSL_CTX* c, const std::string& cert, const std::string& key,
                                        std::string* text) noexcept {
  if (SSL_CTX_use_certificate_chain_file(c, cert.c_str()) != 1)
    return config_failure(text, "cannot load certificate chain from " + cert);
  if (SSL_CTX_use_PrivateKey_file(c, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    const unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
      return config_failure(text, "private key " + key + " does not match certificate " + cert);
    return config_failure(text, "cannot load private key from " + key);
  }
  if (SSL_CTX_check_private_key(c) != 1)
    return config_failure(text, "private key " + key + " does not match certificate " + cert);
  return {};
}

struct client_shared;
struct server_shared;

}  // namespace detail

class channel;

/// The client side's configuration and session cache.
class client_context {
 public:
  /// Builds a context from `opts`. On failure returns tls_errc::config_error
  /// (a CA or credential file unreadable or invalid, a key that does not match
  /// its certificate, an invalid group or cipher list, min above max) and,
  /// when `error_text` is not null, stores OpenSSL's reasons in it.
  static result_or_error_code<client_context> create(const client_tls_options& opts,
                                                     std::string* error_text = nullptr) noexcept;

  /// The options this context was built from.
  const client_tls_options& options() const noexcept;
  /// The SSL_CTX (escape hatch; changing it affects every later channel).
  SSL_CTX* native() const noexcept;
  /// How many hosts currently have a cached session.
  std::size_t cached_sessions() const noexcept;
  /// Forgets every cached session.
  void clear_sessions() noexcept;

 private:
  friend class channel;
  explicit client_context(std::shared_ptr<detail::client_shared> s) noexcept : s_(std::move(s)) {}
  std::shared_ptr<detail::client_shared> s_;
};

/// The server side's configuration: the current SSL_CTX, replaced by reload().
class server_context {
 public:
  /// Builds a context from `opts`: loads the chain and key and checks they
  /// match. On failure returns tls_errc::config_error and, when `error_text`
  /// is not null, stores OpenSSL's reasons in it.
  static result_or_error_code<server_context> create(const server_tls_options& opts,
                                                     std::string* error_text = nullptr) noexcept;

  /// Re-reads the current options' files into a new SSL_CTX that channels
  /// created from now on use; live channels keep the SSL_CTX they started
  /// with (each SSL holds a reference). Session ticket keys carry over, so
  /// tickets issued before still resume. On failure nothing changes and
  /// tls_errc::config_error is returned (reasons in `error_text`).
  std::error_code reload(std::string* error_text = nullptr) noexcept;
  /// As reload(), with new options (kept for the next reload() on success).
  std::error_code reload(const server_tls_options& opts,
                         std::string* error_text = nullptr) noexcept;

  /// The options currently in force.
  server_tls_options options() const noexcept;
  /// The current SSL_CTX (escape hatch); a reference is NOT taken.
  SSL_CTX* native() const noexcept;
  /// How many successful reloads happened (0 after create()).
  std::size_t generation() const noexcept;

 private:
  friend class channel;
  explicit server_context(std::shared_ptr<detail::server_shared> s) noexcept : s_(std::move(s)) {}
  std::shared_ptr<detail::server_shared> s_;
};

namespace detail {

/// A client context's state: its SSL_CTX and the per-host session cache.
/// Channels hold a reference so the cache outlives them all.
struct client_shared {
  client_tls_options opts;
  ctx_ptr ctx;
  mutable std::mutex mu;
  // Small and bounded (session_cache_limit): a vector in insertion order;
  // the oldest host is evicted first.
  std::vector<std::pair<std::string, SSL_SESSION*>> sessions;

  client_shared() = default;
  client_shared(const client_shared&) = delete;
  client_shared& operator=(const client_shared&) = delete;
  ~client_shared() { clear(); }

  void clear() noexcept {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& s : sessions)
      SSL_SESSION_free(s.second);
    sessions.clear();
  }

  /// Stores `s` (ownership taken) for `host`, replacing an older one.
  void store(std::string_view host, SSL_SESSION* s) noexcept {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& e : sessions) {
      if (e.first == host) {
        SSL_SESSION_free(e.second);
        e.second = s;
        return;
      }
    }
    if (opts.session_cache_limit == 0) {
      SSL_SESSION_free(s);
      return;
    }
    if (sessions.size() >= opts.session_cache_limit) {
      SSL_SESSION_free(sessions.front().second);
      sessions.erase(sessions.begin());
    }
    sessions.emplace_back(std::string(host), s);
  }

  /// Removes and returns the session for `host` (caller owns it), or null.
  /// Taken, not copied: a TLS 1.3 ticket is meant for one use (RFC 8446
  /// §C.4); the resumed handshake brings a fresh one.
  SSL_SESSION* take(std::string_view host) noexcept {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = sessions.begin(); it != sessions.end(); ++it) {
      if (it->first == host) {
        SSL_SESSION* s = it->second;
        sessions.erase(it);
        // OpenSSL marks the session of a connection that ended without our
        // close_notify as not resumable; offering it would only cost bytes.
        if (SSL_SESSION_is_resumable(s) == 1) return s;
        SSL_SESSION_free(s);
        return nullptr;
      }
    }
    return nullptr;
  }
};

/// A server context's state: the options and the SSL_CTX new channels use.
struct server_shared {
  mutable std::mutex mu;
  server_tls_options opts;
  ctx_ptr ctx;
  std::size_t generation = 0;
};

/// Builds a server SSL_CTX from `o`; copies the ticket keys of `previous`
/// (when not null) so tickets survive a reload.
inline ctx_ptr make_server_ctx(const server_tls_options& o, SSL_CTX* previous, std::string* text,
                               std::error_code& ec) noexcept {
  ERR_clear_error();
  ctx_ptr c(SSL_CTX_new(TLS_server_method()));
  if (!c) {
    ec = config_failure(text, "SSL_CTX_new failed");
    return nullptr;
  }
  ec = apply_common(c.get(), o.min_version, o.max_version, o.groups, o.ciphers, o.ciphersuites,
                    text);
  if (ec) return nullptr;
  if (o.cert_file.empty() || o.key_file.empty()) {
    ec = config_failure(text, "cert_file and key_file are required");
    return nullptr;
  }
  ec = load_credentials(c.get(), o.cert_file, o.key_file, text);
  if (ec) return nullptr;
  SSL_CTX_set_options(c.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  static constexpr unsigned char sid_ctx[] = "smtpwire";
  SSL_CTX_set_session_id_context(c.get(), sid_ctx, sizeof sid_ctx - 1);
  if (!o.session_tickets) {
    SSL_CTX_set_options(c.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c.get(), 0);
  } else if (previous != nullptr) {
    unsigned char keys[80];
    if (SSL_CTX_get_tlsext_ticket_keys(previous, keys, sizeof keys) == 1)
      (void)SSL_CTX_set_tlsext_ticket_keys(c.get(), keys, sizeof keys);
    OPENSSL_cleanse(keys, sizeof keys);
  }
  ERR_clear_error();
  return c;
}

/// What a client channel tells the session callback (SSL app data): the
/// cache and the key its session is stored under.
struct client_link {
  client_shared* shared = nullptr;
  std::string cache_key;  // the peer's host name
  bool cache = false;     // false: do not store (resumption off, or DANE in use)
};

/// OpenSSL's new-session callback: keeps the session for the channel's host.
/// Returns 1 when it took ownership of `sess`.
inline int client_new_session(SSL* ssl, SSL_SESSION* sess) noexcept {
  auto* link = static_cast<client_link*>(SSL_get_app_data(ssl));
  if (link == nullptr || !link->cache || link->shared == nullptr ||
      SSL_SESSION_is_resumable(sess) != 1)
    return 0;
  link->shared->store(link->cache_key, sess);
  return 1;
}

}  // namespace detail

inline result_or_error_code<client_context> client_context::create(const client_tls_options& opts,
                                                                   std::string* text) noexcept {
  ERR_clear_error();
  auto s = std::make_shared<detail::client_shared>();
  s->opts = opts;
  s->ctx.reset(SSL_CTX_new(TLS_client_method()));
  if (!s->ctx) return detail::config_failure(text, "SSL_CTX_new failed");
  SSL_CTX* c = s->ctx.get();
  std::error_code ec = detail::apply_common(c, opts.min_version, opts.max_version, opts.groups,
                                            opts.ciphers, opts.ciphersuites, text);
  if (ec) return ec;
  if (!opts.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, opts.ca_file.c_str(), nullptr) != 1)
      return detail::config_failure(text, "cannot load CA file " + opts.ca_file);
  } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
    return detail::config_failure(text, "cannot load the system trust store");
  }
  if (opts.cert_file.empty() != opts.key_file.empty())
    return detail::config_failure(text, "cert_file and key_file go together");
  if (!opts.cert_file.empty()) {
    ec = detail::load_credentials(c, opts.cert_file, opts.key_file, text);
    if (ec) return ec;
  }
  // Opportunistic mode still runs the whole verification; OpenSSL records
  // its result instead of failing the handshake.
  SSL_CTX_set_verify(c, opts.verify == verify_mode::required ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     nullptr);
  if (SSL_CTX_dane_enable(c) <= 0) return detail::config_failure(text, "DANE unavailable");
  // RFC 7672 §3.1.1: with a matching DANE-EE(3) record, names are not checked.
  SSL_CTX_dane_set_flags(c, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
  if (opts.session_resumption) {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, &detail::client_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
  }
  ERR_clear_error();
  return client_context(std::move(s));
}

inline const client_tls_options& client_context::options() const noexcept {
  return s_->opts;
}
inline SSL_CTX* client_context::native() const noexcept {
  return s_->ctx.get();
}
inline std::size_t client_context::cached_sessions() const noexcept {
  std::lock_guard<std::mutex> lock(s_->mu);
  return s_->sessions.size();
}
inline void client_context::clear_sessions() noexcept {
  s_->clear();
}

inline result_or_error_code<server_context> server_context::create(const server_tls_options& opts,
                                                                   std::string* text) noexcept {
  auto s = std::make_shared<detail::server_shared>();
  std::error_code ec;
  s->ctx = detail::make_server_ctx(opts, nullptr, text, ec);
  if (ec) return ec;
  s->opts = opts;
  return server_context(std::move(s));
}

inline std::error_code server_context::reload(std::string* text) noexcept {
  return reload(options(), text);
}

inline std::error_code server_context::reload(const server_tls_options& opts,
                                              std::string* text) noexcept {
  std::lock_guard<std::mutex> lock(s_->mu);
  std::error_code ec;
  detail::ctx_ptr fresh = detail::make_server_ctx(opts, s_->ctx.get(), text, ec);
  if (ec) return ec;
  // Live channels each hold their own SSL_CTX reference; dropping ours only
  // frees the old context once the last of them ends.
  s_->ctx = std::move(fresh);
  s_->opts = opts;
  ++s_->generation;
  return {};
}

inline server_tls_options server_context::options() const noexcept {
  std::lock_guard<std::mutex> lock(s_->mu);
  return s_->opts;
}
inline SSL_CTX* server_context::native() const noexcept {
  std::lock_guard<std::mutex> lock(s_->mu);
  return s_->ctx.get();
}
inline std::size_t server_context::generation() const noexcept {
  std::lock_guard<std::mutex> lock(s_->mu);
  return s_->generation;
}

}  // namespace smtpwire::openssl

#endif  // SMTPWIRE_OPENSSL_CONTEXT_HPP
