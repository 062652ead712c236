// smtpwire::openssl — the SASL mechanisms that need cryptography, built on
// OpenSSL 3's EVP layer and plugged into the engines' mechanism interfaces
// (smtpwire::sasl_client_mechanism, smtpwire::sasl_server_mechanism):
//
//   SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802; channel
//   binding "tls-exporter" RFC 9266 or "tls-server-end-point" RFC 5929),
//   client and server;
//   CRAM-MD5 (RFC 2195), client and server — LEGACY: it needs the password
//   (or an equivalent) stored on the server, uses HMAC-MD5, authenticates
//   only the client and has no channel binding. Offer it only inside TLS and
//   only for old clients; prefer SCRAM-SHA-256(-PLUS).
//
// Every message is DECODED octets: the engines do the base64 of the SMTP
// AUTH exchange (RFC 4954). Hashes: EVP_Digest (SHA-256), EVP_MAC "HMAC"
// (SHA-256, MD5), PKCS5_PBKDF2_HMAC (SCRAM's Hi()), RAND_bytes (nonces,
// salts, CRAM-MD5 challenges); every secret comparison is CRYPTO_memcmp and
// every intermediate key is wiped with OPENSSL_cleanse. No exception is
// thrown, no RTTI is used, no clock is read and no global state is kept
// beyond OpenSSL's own.
//
// Decisions (strict by default):
// - SASLprep (RFC 4013) is NOT implemented: its NFKC normalisation needs the
//   Unicode tables. SCRAM user names and passwords must therefore be
//   printable ASCII (%x20-7E), for which SASLprep is the identity (no
//   mapping of RFC 4013 table B.1/C.1.2 applies and nothing is prohibited);
//   anything else is refused with errc::sasl_value_invalid (client, and the
//   credential helpers) or errc::sasl_message_invalid (server, for a user
//   name on the wire), never hashed unprepared. A server may instead pass
//   UTF-8 user names to its credential store unprepared
//   (scram_server_options::allow_utf8_usernames; the store then owns the
//   normalisation).
// - Iteration counts: the client refuses a server-first message with fewer
//   than 4096 iterations (RFC 7677 §4's minimum; never configurable lower)
//   or more than scram_client_options::max_iterations (errc::
//   sasl_parameters_refused), and the credential helpers refuse to derive
//   with fewer than 4096.
// - Parsing follows RFC 5802 §7's attribute order exactly; a mandatory
//   extension "m=" is refused (§5.1: the peer does not support it), other
//   extensions are checked against the grammar and ignored, and an extension
//   that reuses a defined attribute letter is refused. The server's nonce
//   must extend the client's by at least one character.
// - Channel binding (RFC 5802 §6): a SCRAM-SHA-256 server whose session also
//   offers -PLUS fails a client that says "y" (a downgrade); a -PLUS server
//   needs "p=" with its own binding type and the exact binding data; a
//   non-PLUS server refuses "p=".
// - A SCRAM server keeps unknown users indistinguishable from wrong
//   passwords: it answers with a salt derived from a mock key and the user
//   name (stable across sessions when the application sets
//   scram_server_options::mock_key) and fails the proof (RFC 5802 §9).
// - The server-final message ("v=…") goes out as a 334 challenge and the
//   exchange ends on the client's empty answer (RFC 4954 §4). On the 235 the
//   client engine asks the mechanism's finish(): a server that skipped "v="
//   was never authenticated, and the session fails with sasl_auth_failed
//   instead of reporting success.
#ifndef SMTPWIRE_OPENSSL_SASL_HPP
#define SMTPWIRE_OPENSSL_SASL_HPP

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpwire/client.hpp"
#include "smtpwire/detail/utf8.hpp"
#include "smtpwire/error.hpp"
#include "smtpwire/server.hpp"
#include "smtpwire/wire/base64.hpp"
#include "smtpwire/wire/sasl.hpp"

namespace smtpwire::openssl {

/// Size of a SHA-256 output: SCRAM-SHA-256's keys, proofs and signatures.
inline constexpr std::size_t scram_key_size = 32;
/// RFC 7677 §4: "the iteration count ... SHOULD be at least 4096"; smtpwire
/// makes it a floor on both sides.
inline constexpr std::uint32_t scram_min_iterations = 4096;

/// A SHA-256 sized secret (StoredKey, ServerKey, …).
using scram_key = std::array<unsigned char, scram_key_size>;

/// Channel binding types SCRAM-SHA-256-PLUS can use.
enum class channel_binding_type : std::uint8_t {
  tls_exporter,          ///< RFC 9266 (TLS 1.3, or TLS 1.2 with extended master secret)
  tls_server_end_point,  ///< RFC 5929 §4: hash of the server's certificate
};

/// The registered name of `t` ("tls-exporter", "tls-server-end-point").
constexpr std::string_view to_string(channel_binding_type t) noexcept {
  return t == channel_binding_type::tls_exporter ? "tls-exporter" : "tls-server-end-point";
}

/// Channel binding data of one TLS connection: its type and its octets
/// (from tls_exporter_binding / tls_server_end_point_binding).
struct channel_binding {
  channel_binding_type type = channel_binding_type::tls_exporter;
  std::string_view data;  ///< the binding octets; must outlive the user of this value
};

/// RFC 5802 §7 gs2-cbind-flag, as the client sends it.
enum class gs2_cbind_flag : std::uint8_t {
  n,  ///< "n": the client does not support channel binding
  y,  ///< "y": the client supports it but the server did not offer -PLUS
  p,  ///< "p=<type>": channel binding in use (the mechanism is SCRAM-SHA-256-PLUS)
};

}  // namespace smtpwire::openssl

// ---------------------------------------------------------------------------
// Crypto primitives and SCRAM grammar helpers
// ---------------------------------------------------------------------------
namespace smtpwire::openssl::sasl_detail {

inline const unsigned char* bytes(std::string_view s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

inline std::string_view view(const unsigned char* p, std::size_t n) noexcept {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

/// HMAC with the digest named `md` ("SHA256", "MD5") through EVP_MAC; `out`
/// receives exactly `out_len` octets. `key` must not be empty.
inline bool hmac(const char* md, std::string_view key, std::string_view data, unsigned char* out,
                 std::size_t out_len) noexcept {
  if (key.empty()) return false;
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  OSSL_PARAM params[2] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(md), 0),
      OSSL_PARAM_construct_end()};
  std::size_t n = 0;
  const bool ok = ctx != nullptr && EVP_MAC_init(ctx, bytes(key), key.size(), params) == 1 &&
                  EVP_MAC_update(ctx, bytes(data), data.size()) == 1 &&
                  EVP_MAC_final(ctx, out, &n, out_len) == 1 && n == out_len;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return ok;
}

inline bool hmac_sha256(const scram_key& key, std::string_view data, scram_key& out) noexcept {
  return hmac("SHA256", view(key.data(), key.size()), data, out.data(), out.size());
}

inline bool sha256(std::string_view data, scram_key& out) noexcept {
  unsigned int n = 0;
  return EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha256(), nullptr) == 1 &&
         n == out.size();
}

// RFC 5802 §2.2: Hi(str, salt, i) is PBKDF2 with HMAC as the PRF and one
// output block.
inline bool hi(std::string_view password, std::string_view salt, std::uint32_t i,
               scram_key& out) noexcept {
  if (password.size() > INT_MAX || salt.size() > INT_MAX || i == 0 || i > INT_MAX) return false;
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes(salt),
                           static_cast<int>(salt.size()), static_cast<int>(i), EVP_sha256(),
                           static_cast<int>(out.size()), out.data()) == 1;
}

inline bool random_bytes(unsigned char* p, std::size_t n) noexcept {
  return n <= INT_MAX && RAND_bytes(p, static_cast<int>(n)) == 1;
}

/// Constant-time equality of two octet strings (the lengths are public).
inline bool equal(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

template <class... Keys>
inline void wipe(Keys&... keys) noexcept {
  (OPENSSL_cleanse(keys.data(), keys.size()), ...);
}

inline void wipe_string(std::string& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(&s[0], s.size());
  s.clear();
}

/// True when SASLprep (RFC 4013) maps `s` to itself with nothing
/// prohibited and `s` is not empty: printable ASCII, space included.
constexpr bool is_prepared_ascii(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

/// UTF-8 without control octets (%x00-1F, %x7F), not empty.
constexpr bool is_utf8_text(std::string_view s) noexcept {
  if (s.empty() || !smtpwire::detail::is_valid_utf8(s)) return false;
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) return false;
  }
  return true;
}

// RFC 5802 §7:  printable = %x21-2B / %x2D-7E  ;; Printable ASCII except ","
//               c-nonce = printable   (1*printable in practice)
constexpr bool is_printable_nonce(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  return true;
}

// RFC 5802 §7:  value-char = %x01-2B / %x2D-3C / %x3E-7F / UTF8-2 / UTF8-3 / UTF8-4
//               value = 1*value-char
constexpr bool is_value(std::string_view s) noexcept {
  if (s.empty() || !smtpwire::detail::is_valid_utf8(s)) return false;
  for (char c : s)
    if (c == '\0' || c == ',' || c == '=') return false;
  return true;
}

// RFC 5802 §7:  cb-name = 1*(ALPHA / DIGIT / "." / "-")
constexpr bool is_cb_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-'))
      return false;
  return true;
}

/// The comma-separated attributes of one SCRAM message.
struct fields {
  static constexpr std::size_t max = 16;  // default 16 attributes; RFC 5802 sets no limit
  std::string_view v[max];
  std::size_t n = 0;
};

/// Splits `s` at every ','; false when there are more than fields::max parts.
constexpr bool split(std::string_view s, fields& f) noexcept {
  f.n = 0;
  for (;;) {
    if (f.n == fields::max) return false;
    const std::size_t comma = s.find(',');
    f.v[f.n++] = s.substr(0, comma);
    if (comma == std::string_view::npos) return true;
    s.remove_prefix(comma + 1);
  }
}

/// When `field` is `key` "=" value, sets `value` (maybe empty) and returns true.
constexpr bool attr(std::string_view field, char key, std::string_view& value) noexcept {
  if (field.size() < 2 || field[0] != key || field[1] != '=') return false;
  value = field.substr(2);
  return true;
}

// RFC 5802 §7:  attr-val = ALPHA "=" value
//               extensions = attr-val *("," attr-val)
// The letters SCRAM itself defines cannot be extensions, and "m" is the
// mandatory extension this implementation does not support (§5.1).
constexpr bool is_extension(std::string_view field) noexcept {
  if (field.size() < 3 || field[1] != '=') return false;
  const char k = field[0];
  if (!((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z'))) return false;
  for (char d : std::string_view("acemnprsvi"))
    if (k == d) return false;
  return is_value(field.substr(2));
}

/// Decodes non-empty strict base64 into `out` (replacing its content).
inline bool decode_b64(std::string_view in, std::string& out) {
  out.clear();
  return !in.empty() && wire::base64_decode(out, in) == errc::ok;
}

// RFC 5802 §7:  posit-number = %x31-39 *DIGIT
constexpr bool parse_posit_number(std::string_view s, std::uint32_t& v) noexcept {
  if (s.empty() || s.size() > 10 || s[0] < '1' || s[0] > '9') return false;
  std::uint64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (x > UINT32_MAX) return false;
  v = static_cast<std::uint32_t>(x);
  return true;
}

/// A fresh nonce: `octets` random octets in base64 (printable, no ',').
inline bool make_nonce(std::size_t octets, std::string& out) {
  unsigned char raw[64];
  if (octets == 0 || octets > sizeof raw || !random_bytes(raw, octets)) return false;
  out.clear();
  wire::base64_encode(out, view(raw, octets));
  return true;
}

/// The gs2 flag field for `flag` (and the binding type for "p").
inline void append_cbind_flag(std::string& out, gs2_cbind_flag flag, channel_binding_type t) {
  if (flag == gs2_cbind_flag::p)
    out.append("p=").append(to_string(t));
  else
    out.push_back(flag == gs2_cbind_flag::y ? 'y' : 'n');
}

}  // namespace smtpwire::openssl::sasl_detail

namespace smtpwire::openssl {

// ---------------------------------------------------------------------------
// Channel binding data from a TLS connection
// ---------------------------------------------------------------------------

/// RFC 9266 §2 "tls-exporter": the 32-octet exporter value with label
/// "EXPORTER-Channel-Binding" and an empty context, appended to `out`.
/// Errors (nothing appended): api_bad_state before the handshake finished;
/// api_value_invalid for a TLS 1.2 connection without the extended master
/// secret (RFC 9266 §3: its exporter is not unique to the connection) or
/// below TLS 1.2; sasl_crypto_failed when OpenSSL refuses. Renegotiation
/// must be off on the connection (RFC 9266 §2; the channel refuses it).
[[nodiscard]] inline errc tls_exporter_binding(SSL* ssl, std::string& out) {
  if (ssl == nullptr || SSL_is_init_finished(ssl) != 1) return errc::api_bad_state;
  const int version = SSL_version(ssl);
  if (version < TLS1_2_VERSION) return errc::api_value_invalid;
  if (version == TLS1_2_VERSION && SSL_get_extms_support(ssl) != 1) return errc::api_value_invalid;
  static constexpr char label[] = "EXPORTER-Channel-Binding";
  unsigned char ekm[32];
  static const unsigned char no_context[1] = {0};
  if (SSL_export_keying_material(ssl, ekm, sizeof ekm, label, sizeof label - 1, no_context, 0, 1) !=
      1)
    return errc::sasl_crypto_failed;
  out.append(sasl_detail::view(ekm, sizeof ekm));
  OPENSSL_cleanse(ekm, sizeof ekm);
  return errc::ok;
}

/// RFC 5929 §4.1 "tls-server-end-point": the hash of the DER encoding of
/// `server_cert`, with the hash of its signature algorithm (MD5 and SHA-1
/// replaced by SHA-256), appended to `out`. Errors (nothing appended):
/// api_value_invalid for a null certificate or a signature algorithm
/// without a separate hash (Ed25519, Ed448: RFC 5929 defines nothing);
/// sasl_crypto_failed when OpenSSL refuses.
[[nodiscard]] inline errc tls_server_end_point_binding(const X509* server_cert, std::string& out) {
  if (server_cert == nullptr) return errc::api_value_invalid;
  int md_nid = NID_undef;
  // X509_get_signature_info also resolves RSA-PSS parameters; it only
  // caches decoded extensions in the object, hence the cast.
  if (X509_get_signature_info(const_cast<X509*>(server_cert), &md_nid, nullptr, nullptr, nullptr) !=
          1 ||
      md_nid == NID_undef)
    return errc::api_value_invalid;
  if (md_nid == NID_md5 || md_nid == NID_sha1) md_nid = NID_sha256;
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  if (md == nullptr) return errc::api_value_invalid;
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(server_cert, md, h, &n) != 1) return errc::sasl_crypto_failed;
  out.append(sasl_detail::view(h, n));
  return errc::ok;
}

/// tls-server-end-point of a connection: the server's own certificate on a
/// server-side `ssl`, the peer's on a client-side one. Errors as above, and
/// api_bad_state before the handshake finished or with no certificate.
[[nodiscard]] inline errc tls_server_end_point_binding(SSL* ssl, std::string& out) {
  if (ssl == nullptr || SSL_is_init_finished(ssl) != 1) return errc::api_bad_state;
  const X509* cert = SSL_is_server(ssl) ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return errc::api_bad_state;
  return tls_server_end_point_binding(cert, out);
}

// ---------------------------------------------------------------------------
// SCRAM-SHA-256 credentials (RFC 5802 §3)
// ---------------------------------------------------------------------------

/// What a SCRAM-SHA-256 server stores for a user instead of the password.
struct scram_credentials {
  std::string salt;             ///< the raw salt octets (sent base64 in "s=")
  std::uint32_t iterations{0};  ///< Hi()'s iteration count (>= scram_min_iterations)
  scram_key stored_key{};       ///< H(HMAC(SaltedPassword, "Client Key"))
  scram_key server_key{};       ///< HMAC(SaltedPassword, "Server Key")
};

/// The application's SCRAM-SHA-256 credential store.
class scram_credential_store {
 public:
  /// Fills `out` for `username` (already unescaped and prepared, see the
  /// file comment) and returns true, or returns false for an unknown user.
  /// Credentials with an empty salt or an iteration count of 0 or above
  /// INT_MAX count as an unknown user; counts below scram_min_iterations are
  /// sent as they are (and refused by smtpwire's client). Called once per
  /// exchange, from the engine's receive().
  virtual bool lookup(std::string_view username, scram_credentials& out) = 0;

 protected:
  ~scram_credential_store() = default;
};

/// Derives the stored credentials for `password` with `salt` and
/// `iterations` into `out` (RFC 5802 §3). Errors: sasl_value_invalid for a
/// password that is not printable ASCII (SASLprep not implemented) or an
/// empty salt; api_value_invalid for iterations < scram_min_iterations or >
/// INT_MAX; sasl_crypto_failed when OpenSSL fails. On error `out` is
/// unchanged.
[[nodiscard]] inline errc scram_sha256_derive(std::string_view password, std::string_view salt,
                                              std::uint32_t iterations, scram_credentials& out) {
  namespace d = sasl_detail;
  if (!d::is_prepared_ascii(password) || salt.empty()) return errc::sasl_value_invalid;
  if (iterations < scram_min_iterations || iterations > INT_MAX) return errc::api_value_invalid;
  scram_key salted{}, client_key{}, stored{}, server{};
  const bool ok = d::hi(password, salt, iterations, salted) &&
                  d::hmac_sha256(salted, "Client Key", client_key) &&
                  d::sha256(d::view(client_key.data(), client_key.size()), stored) &&
                  d::hmac_sha256(salted, "Server Key", server);
  if (ok) {
    out.salt.assign(salt.data(), salt.size());
    out.iterations = iterations;
    out.stored_key = stored;
    out.server_key = server;
  }
  d::wipe(salted, client_key, stored, server);
  return ok ? errc::ok : errc::sasl_crypto_failed;
}

/// As scram_sha256_derive with a fresh random salt of `salt_octets` octets
/// (1..64). Errors as scram_sha256_derive; api_value_invalid for a salt size
/// outside 1..64.
[[nodiscard]] inline errc scram_sha256_make_credentials(std::string_view password,
                                                        std::uint32_t iterations,
                                                        scram_credentials& out,
                                                        std::size_t salt_octets = 16) {
  unsigned char salt[64];
  if (salt_octets == 0 || salt_octets > sizeof salt) return errc::api_value_invalid;
  if (!sasl_detail::random_bytes(salt, salt_octets)) return errc::sasl_crypto_failed;
  return scram_sha256_derive(password, sasl_detail::view(salt, salt_octets), iterations, out);
}

// ---------------------------------------------------------------------------
// SCRAM-SHA-256 client
// ---------------------------------------------------------------------------

/// Options of scram_sha256_client.
struct scram_client_options {
  /// Authorization identity ("act as"), sent as "a=" (escaped); empty: none.
  std::string_view authzid{};
  /// n (no channel binding support), y (supported, but the server did not
  /// offer -PLUS) or p (bind to `binding`: the mechanism is -PLUS).
  gs2_cbind_flag cbind = gs2_cbind_flag::n;
  /// The binding type and data when cbind is p; the data must outlive the
  /// exchange.
  channel_binding binding{};
  /// Highest iteration count accepted from the server: bounds the client's
  /// PBKDF2 work a hostile server can ask for.
  std::uint32_t max_iterations = 1000000;  // default 1,000,000; RFC 7677 sets no maximum
  /// Largest decoded server message accepted.
  std::size_t max_message = 4096;  // default 4096 octets; RFC 5802 sets no limit
  /// Random octets of the client nonce (base64-encoded into r=).
  std::size_t nonce_octets = 18;  // default 18 (24 characters); RFC 5802 sets no minimum
};

/// SCRAM-SHA-256 / SCRAM-SHA-256-PLUS client (RFC 7677, RFC 5802 §5):
/// client-first as the initial response, client-final in answer to
/// server-first, the server signature checked against server-final (and an
/// empty answer). `user` and `password` must outlive the exchange.
class scram_sha256_client final : public sasl_client_mechanism {
 public:
  /// `test_nonce`: FOR TESTS ONLY — a fixed client nonce (printable ASCII
  /// without ',') instead of a random one, to replay RFC 7677's example;
  /// never set it in production (a repeated nonce enables replays).
  scram_sha256_client(std::string_view user, std::string_view password,
                      const scram_client_options& o = {}, std::string_view test_nonce = {})
      : user_(user), password_(password), o_(o), test_nonce_(test_nonce) {}
  scram_sha256_client(const scram_sha256_client&) = delete;
  scram_sha256_client& operator=(const scram_sha256_client&) = delete;
  ~scram_sha256_client() { sasl_detail::wipe(server_signature_); }

  /// "SCRAM-SHA-256", or "SCRAM-SHA-256-PLUS" with cbind p.
  std::string_view name() const noexcept override {
    return o_.cbind == gs2_cbind_flag::p ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
  }

  // RFC 5802 §7:
  //   client-first-message = gs2-header client-first-message-bare
  //   gs2-header = gs2-cbind-flag "," [ authzid ] ","
  //   gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
  //   client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  /// Appends client-first and sets `present`. Errors (nothing appended):
  /// sasl_value_invalid for a user name or password that is not printable
  /// ASCII, an authzid that is not UTF-8 text without control octets, cbind
  /// p without binding data;
  /// api_value_invalid for a bad test nonce or nonce_octets outside 1..64;
  /// sasl_crypto_failed when RAND_bytes fails.
  errc initial_response(std::string& out, bool& present) override {
    namespace d = sasl_detail;
    reset();
    present = false;
    if (!d::is_prepared_ascii(user_) || !d::is_prepared_ascii(password_))
      return fail(errc::sasl_value_invalid);
    if (o_.cbind == gs2_cbind_flag::p && o_.binding.data.empty())
      return fail(errc::sasl_value_invalid);
    if (!test_nonce_.empty()) {
      if (!d::is_printable_nonce(test_nonce_)) return fail(errc::api_value_invalid);
      nonce_.assign(test_nonce_.data(), test_nonce_.size());
    } else if (o_.nonce_octets == 0 || o_.nonce_octets > 64) {
      return fail(errc::api_value_invalid);
    } else if (!d::make_nonce(o_.nonce_octets, nonce_)) {
      return fail(errc::sasl_crypto_failed);
    }
    d::append_cbind_flag(gs2_header_, o_.cbind, o_.binding.type);
    gs2_header_.push_back(',');
    if (!o_.authzid.empty()) {
      if (!d::is_utf8_text(o_.authzid)) return fail(errc::sasl_value_invalid);
      gs2_header_.append("a=");
      if (wire::sasl::append_saslname_escaped(gs2_header_, o_.authzid) != errc::ok)
        return fail(errc::sasl_value_invalid);
    }
    gs2_header_.push_back(',');
    bare_.assign("n=");
    if (wire::sasl::append_saslname_escaped(bare_, user_) != errc::ok)
      return fail(errc::sasl_value_invalid);
    bare_.append(",r=").append(nonce_);
    out.append(gs2_header_).append(bare_);
    present = true;
    step_ = step::server_first;
    return errc::ok;
  }

  /// Answers server-first with client-final, then server-final with an empty
  /// response once its signature matched. Errors (the engine then cancels
  /// with "*"; error() keeps them): sasl_message_invalid for a malformed or
  /// unexpected message, a nonce that does not extend ours, or an "m="
  /// extension; sasl_parameters_refused for an iteration count outside
  /// [4096, max_iterations]; sasl_auth_failed for a wrong server signature
  /// or a server-error ("e="); sasl_crypto_failed when OpenSSL fails.
  errc respond(std::string_view challenge, std::string& out) override {
    if (challenge.size() > o_.max_message) return fail(errc::sasl_message_invalid);
    switch (step_) {
      case step::server_first:
        return client_final(challenge, out);
      case step::server_final:
        return verify_server_final(challenge);
      default:
        return fail(errc::sasl_message_invalid);
    }
  }

  /// True once the server proved knowledge of the credentials (its "v="
  /// matched).
  bool server_verified() const noexcept { return step_ == step::done; }
  /// On the server's 235: sasl_auth_failed unless the server proved itself
  /// (a 235 straight after client-final is not mutual authentication).
  errc finish() noexcept override { return server_verified() ? errc::ok : errc::sasl_auth_failed; }
  /// The error that ended the exchange on this side, errc::ok if none.
  errc error() const noexcept { return error_; }

 private:
  enum class step : std::uint8_t { idle, server_first, server_final, done, failed };

  void reset() {
    step_ = step::idle;
    error_ = errc::ok;
    gs2_header_.clear();
    bare_.clear();
    nonce_.clear();
    sasl_detail::wipe(server_signature_);
  }

  errc fail(errc e) {
    step_ = step::failed;
    error_ = e;
    sasl_detail::wipe(server_signature_);
    return e;
  }

  // RFC 5802 §7:
  //   server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
  //                          ["," extensions]
  //   nonce = "r=" c-nonce [s-nonce]    salt = "s=" base64
  //   iteration-count = "i=" posit-number
  //   client-final-message-without-proof = channel-binding "," nonce ["," extensions]
  //   client-final-message = client-final-message-without-proof "," proof
  //   channel-binding = "c=" base64     proof = "p=" base64
  errc client_final(std::string_view server_first, std::string& out) {
    namespace d = sasl_detail;
    d::fields f;
    std::string_view nonce, salt_b64, iter;
    if (!d::split(server_first, f) || f.n < 3) return fail(errc::sasl_message_invalid);
    if (!d::attr(f.v[0], 'r', nonce) || !d::attr(f.v[1], 's', salt_b64) ||
        !d::attr(f.v[2], 'i', iter))
      return fail(errc::sasl_message_invalid);
    for (std::size_t k = 3; k < f.n; ++k)
      if (!d::is_extension(f.v[k])) return fail(errc::sasl_message_invalid);
    // s-nonce must add at least one character (RFC 5802 §5.1).
    if (!d::is_printable_nonce(nonce) || nonce.size() <= nonce_.size() ||
        nonce.compare(0, nonce_.size(), nonce_) != 0)
      return fail(errc::sasl_message_invalid);
    std::string salt;
    std::uint32_t iterations = 0;
    if (!d::decode_b64(salt_b64, salt) || salt.empty() || !d::parse_posit_number(iter, iterations))
      return fail(errc::sasl_message_invalid);
    if (iterations < scram_min_iterations || iterations > o_.max_iterations)
      return fail(errc::sasl_parameters_refused);

    // Everything the response needs is built before `out` grows: the
    // engine's challenge may live in the same buffer.
    std::string cbind_input = gs2_header_;
    if (o_.cbind == gs2_cbind_flag::p)
      cbind_input.append(o_.binding.data.data(), o_.binding.data.size());
    std::string without_proof("c=");
    wire::base64_encode(without_proof, cbind_input);
    without_proof.append(",r=").append(nonce);
    std::string auth_message = bare_;
    auth_message.append(",").append(server_first).append(",").append(without_proof);

    scram_key salted{}, client_key{}, stored{}, server_key{}, client_sig{}, proof{};
    bool ok = d::hi(password_, salt, iterations, salted) &&
              d::hmac_sha256(salted, "Client Key", client_key) &&
              d::sha256(d::view(client_key.data(), client_key.size()), stored) &&
              d::hmac_sha256(salted, "Server Key", server_key) &&
              d::hmac_sha256(stored, auth_message, client_sig) &&
              d::hmac_sha256(server_key, auth_message, server_signature_);
    for (std::size_t k = 0; k < proof.size(); ++k)
      proof[k] = static_cast<unsigned char>(client_key[k] ^ client_sig[k]);
    if (ok) {
      out.append(without_proof).append(",p=");
      wire::base64_encode(out, d::view(proof.data(), proof.size()));
    }
    d::wipe(salted, client_key, stored, server_key, client_sig, proof);
    if (!ok) return fail(errc::sasl_crypto_failed);
    step_ = step::server_final;
    return errc::ok;
  }

  // RFC 5802 §7:
  //   server-final-message = (server-error / verifier) ["," extensions]
  //   server-error = "e=" server-error-value
  //   verifier = "v=" base64   ;; base-64 encoded ServerSignature.
  errc verify_server_final(std::string_view server_final) {
    namespace d = sasl_detail;
    d::fields f;
    std::string_view v;
    if (!d::split(server_final, f)) return fail(errc::sasl_message_invalid);
    for (std::size_t k = 1; k < f.n; ++k)
      if (!d::is_extension(f.v[k])) return fail(errc::sasl_message_invalid);
    if (d::attr(f.v[0], 'e', v))
      return fail(d::is_value(v) ? errc::sasl_auth_failed : errc::sasl_message_invalid);
    std::string sig;
    if (!d::attr(f.v[0], 'v', v) || !d::decode_b64(v, sig) || sig.size() != scram_key_size)
      return fail(errc::sasl_message_invalid);
    if (!d::equal(sig, d::view(server_signature_.data(), server_signature_.size())))
      return fail(errc::sasl_auth_failed);
    d::wipe(server_signature_);
    step_ = step::done;
    return errc::ok;  // RFC 4954 §4: an empty response acknowledges server-final
  }

  std::string_view user_, password_;
  scram_client_options o_;
  std::string_view test_nonce_;
  step step_ = step::idle;
  errc error_ = errc::ok;
  std::string gs2_header_, bare_, nonce_;
  scram_key server_signature_{};
};

// ---------------------------------------------------------------------------
// SCRAM-SHA-256 server
// ---------------------------------------------------------------------------

/// Options of scram_sha256_server.
struct scram_server_options {
  /// This instance is SCRAM-SHA-256-PLUS: clients must bind to the
  /// set_channel_binding() data. Add a -PLUS mechanism only to a server that
  /// offers AUTH only over TLS (server_policy::auth_only_over_tls).
  bool plus = false;
  /// For a non-PLUS instance: the session also offers SCRAM-SHA-256-PLUS, so
  /// a client flag "y" is a downgrade and fails (RFC 5802 §6).
  bool plus_offered = false;
  /// Pass valid UTF-8 user names (no control octets) to the store
  /// unprepared instead of refusing non-ASCII ones; the store then owns the
  /// SASLprep question.
  bool allow_utf8_usernames = false;
  /// Random octets of the server's nonce part (base64-encoded).
  std::size_t nonce_octets = 18;  // default 18 (24 characters); RFC 5802 sets no minimum
  /// Largest decoded client message accepted.
  std::size_t max_message = 4096;  // default 4096 octets; RFC 5802 sets no limit
  /// Secret for the salts of unknown users; set it (and keep it) so an
  /// unknown user gets the same salt in every session. Empty: a random key
  /// per mechanism object.
  std::string_view mock_key{};
  /// Iteration count announced for unknown users (match your real users').
  std::uint32_t mock_iterations = 4096;  // default 4096; RFC 7677 §4 minimum 4096
};

/// SCRAM-SHA-256 / SCRAM-SHA-256-PLUS server (RFC 7677, RFC 5802 §5). One
/// object per session, added with server::add_sasl_mechanism; `store` must
/// outlive it.
class scram_sha256_server final : public sasl_server_mechanism {
 public:
  /// `test_nonce`: FOR TESTS ONLY — a fixed server nonce part (printable
  /// ASCII without ',') instead of a random one, to replay RFC 7677's
  /// example; never set it in production.
  explicit scram_sha256_server(scram_credential_store& store, const scram_server_options& o = {},
                               std::string_view test_nonce = {})
      : store_(&store), o_(o), test_nonce_(test_nonce) {
    if (!o_.mock_key.empty()) {
      mock_ok_ = sasl_detail::sha256(o_.mock_key, mock_key_);
    } else {
      mock_ok_ = sasl_detail::random_bytes(mock_key_.data(), mock_key_.size());
    }
  }
  scram_sha256_server(const scram_sha256_server&) = delete;
  scram_sha256_server& operator=(const scram_sha256_server&) = delete;
  ~scram_sha256_server() {
    reset();
    sasl_detail::wipe(mock_key_);
    sasl_detail::wipe_string(binding_data_);
  }

  /// Sets (copies) the channel binding of the session's TLS connection; a
  /// -PLUS exchange started without one fails with api_bad_state (451).
  void set_channel_binding(const channel_binding& b) {
    binding_type_ = b.type;
    binding_data_.assign(b.data.data(), b.data.size());
  }

  std::string_view name() const noexcept override {
    return o_.plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
  }

  /// Takes client-first (or, without an initial response, sends an empty
  /// challenge) and answers server-first. Errors: sasl_message_invalid for
  /// a malformed message, an "m=" extension, a flag that does not fit the
  /// mechanism, or an unprepared user name; sasl_auth_failed for a
  /// downgrade ("y" while -PLUS is offered) or an unsupported binding type;
  /// api_bad_state for -PLUS without channel binding data;
  /// sasl_crypto_failed when OpenSSL fails.
  errc start(std::string_view initial, bool present, std::string& challenge, bool& done) override {
    reset();
    done = false;
    step_ = step::client_first;
    if (!present) return errc::ok;  // RFC 4954 §4: an empty 334 asks for client-first
    return client_first(initial, challenge);
  }

  /// Takes client-first (after an empty challenge), client-final (answers
  /// server-final, "v=") or the empty acknowledgement (sets `done`). Errors
  /// as start(), and: sasl_auth_failed for a wrong proof, a wrong nonce, an
  /// unknown user or channel binding data that does not match;
  /// sasl_message_invalid for a non-empty acknowledgement; api_bad_state
  /// outside an exchange.
  errc respond(std::string_view response, std::string& challenge, bool& done) override {
    done = false;
    switch (step_) {
      case step::client_first:
        return client_first(response, challenge);
      case step::client_final:
        return client_final(response, challenge);
      case step::acknowledge:
        if (!response.empty()) return fail(errc::sasl_message_invalid);
        step_ = step::done;
        done = true;
        return errc::ok;
      default:
        return errc::api_bad_state;
    }
  }

  /// The authenticated user name (unescaped), valid once `done` was set.
  std::string_view authcid() const noexcept override { return authcid_; }
  /// The authorization identity (unescaped), empty when the client sent none.
  std::string_view authzid() const noexcept override { return authzid_; }

 private:
  enum class step : std::uint8_t { idle, client_first, client_final, acknowledge, done, failed };

  void reset() {
    step_ = step::idle;
    gs2_header_.clear();
    bare_.clear();
    server_first_.clear();
    nonce_.clear();
    authcid_.clear();
    authzid_.clear();
    sasl_detail::wipe_string(creds_.salt);
    sasl_detail::wipe(creds_.stored_key, creds_.server_key);
    creds_.iterations = 0;
    flag_ = gs2_cbind_flag::n;
  }

  errc fail(errc e) {
    reset();
    step_ = step::failed;
    return e;
  }

  // RFC 5802 §7:
  //   client-first-message = gs2-header client-first-message-bare
  //   gs2-header = gs2-cbind-flag "," [ authzid ] ","
  //   gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
  //   authzid = "a=" saslname
  //   client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
  //   username = "n=" saslname     nonce = "r=" c-nonce [s-nonce]
  errc client_first(std::string_view msg, std::string& challenge) {
    namespace d = sasl_detail;
    if (msg.size() > o_.max_message) return fail(errc::sasl_message_invalid);
    d::fields f;
    std::string_view cb_name, az, user, cnonce;
    if (!d::split(msg, f) || f.n < 4) return fail(errc::sasl_message_invalid);
    if (f.v[0] == "n") {
      flag_ = gs2_cbind_flag::n;
    } else if (f.v[0] == "y") {
      flag_ = gs2_cbind_flag::y;
    } else if (d::attr(f.v[0], 'p', cb_name) && d::is_cb_name(cb_name)) {
      flag_ = gs2_cbind_flag::p;
    } else {
      return fail(errc::sasl_message_invalid);
    }
    if (!f.v[1].empty() && (!d::attr(f.v[1], 'a', az) ||
                            wire::sasl::append_saslname_unescaped(authzid_, az) != errc::ok ||
                            !d::is_utf8_text(authzid_)))
      return fail(errc::sasl_message_invalid);
    // "m=" (reserved-mext) is not recognised by the attr() below: refused.
    if (!d::attr(f.v[2], 'n', user) || !d::attr(f.v[3], 'r', cnonce) ||
        wire::sasl::append_saslname_unescaped(authcid_, user) != errc::ok ||
        !d::is_printable_nonce(cnonce))
      return fail(errc::sasl_message_invalid);
    if (!(d::is_prepared_ascii(authcid_) || (o_.allow_utf8_usernames && d::is_utf8_text(authcid_))))
      return fail(errc::sasl_message_invalid);
    for (std::size_t k = 4; k < f.n; ++k)
      if (!d::is_extension(f.v[k])) return fail(errc::sasl_message_invalid);

    // RFC 5802 §6: the flag must fit the mechanism the client chose.
    if (o_.plus) {
      if (flag_ != gs2_cbind_flag::p) return fail(errc::sasl_message_invalid);
      if (binding_data_.empty()) return fail(errc::api_bad_state);
      if (cb_name != to_string(binding_type_)) return fail(errc::sasl_auth_failed);
    } else {
      if (flag_ == gs2_cbind_flag::p) return fail(errc::sasl_message_invalid);
      if (flag_ == gs2_cbind_flag::y && o_.plus_offered) return fail(errc::sasl_auth_failed);
    }

    const std::size_t header_len = f.v[0].size() + f.v[1].size() + 2;
    gs2_header_.assign(msg.data(), header_len);
    bare_.assign(msg.data() + header_len, msg.size() - header_len);

    known_ = store_->lookup(authcid_, creds_) && !creds_.salt.empty() && creds_.iterations != 0 &&
             creds_.iterations <= INT_MAX;
    if (!known_ && !mock_credentials()) return fail(errc::sasl_crypto_failed);

    std::string snonce;
    if (!test_nonce_.empty()) {
      if (!d::is_printable_nonce(test_nonce_)) return fail(errc::api_value_invalid);
      snonce.assign(test_nonce_.data(), test_nonce_.size());
    } else if (o_.nonce_octets == 0 || o_.nonce_octets > 64) {
      return fail(errc::api_value_invalid);
    } else if (!d::make_nonce(o_.nonce_octets, snonce)) {
      return fail(errc::sasl_crypto_failed);
    }
    nonce_.assign(cnonce.data(), cnonce.size()).append(snonce);
    server_first_.assign("r=").append(nonce_).append(",s=");
    wire::base64_encode(server_first_, creds_.salt);
    server_first_.append(",i=").append(std::to_string(creds_.iterations));
    challenge.append(server_first_);
    step_ = step::client_final;
    return errc::ok;
  }

  // An unknown user gets a salt that depends only on the mock key and the
  // name, and keys no proof can match: the exchange looks like a wrong
  // password (RFC 5802 §9).
  bool mock_credentials() {
    namespace d = sasl_detail;
    scram_key salt{};
    if (!mock_ok_ || !d::hmac_sha256(mock_key_, authcid_, salt) ||
        !d::random_bytes(creds_.stored_key.data(), creds_.stored_key.size()) ||
        !d::random_bytes(creds_.server_key.data(), creds_.server_key.size()))
      return false;
    creds_.salt.assign(d::view(salt.data(), 16));
    creds_.iterations =
        o_.mock_iterations < scram_min_iterations ? scram_min_iterations : o_.mock_iterations;
    return true;
  }

  // RFC 5802 §7:
  //   client-final-message-without-proof = channel-binding "," nonce ["," extensions]
  //   client-final-message = client-final-message-without-proof "," proof
  //   cbind-input = gs2-header [ cbind-data ]   ;; cbind-data only with "p="
  errc client_final(std::string_view msg, std::string& challenge) {
    namespace d = sasl_detail;
    d::fields f;
    std::string_view c, r, p;
    if (msg.size() > o_.max_message || !d::split(msg, f) || f.n < 3)
      return fail(errc::sasl_message_invalid);
    if (!d::attr(f.v[0], 'c', c) || !d::attr(f.v[1], 'r', r) || !d::attr(f.v[f.n - 1], 'p', p))
      return fail(errc::sasl_message_invalid);
    for (std::size_t k = 2; k + 1 < f.n; ++k)
      if (!d::is_extension(f.v[k])) return fail(errc::sasl_message_invalid);
    std::string cbind, proof;
    if (!d::decode_b64(c, cbind) || !d::decode_b64(p, proof) || proof.size() != scram_key_size ||
        !d::is_printable_nonce(r))
      return fail(errc::sasl_message_invalid);

    std::string expected_cbind = gs2_header_;
    if (flag_ == gs2_cbind_flag::p) expected_cbind.append(binding_data_);
    const bool cbind_ok = d::equal(cbind, expected_cbind);
    const bool nonce_ok = d::equal(r, nonce_);

    const std::string_view without_proof = msg.substr(0, msg.size() - f.v[f.n - 1].size() - 1);
    std::string auth_message = bare_;
    auth_message.append(",").append(server_first_).append(",").append(without_proof);
    scram_key client_sig{}, client_key{}, stored{}, server_sig{};
    const bool ok = d::hmac_sha256(creds_.stored_key, auth_message, client_sig) &&
                    d::hmac_sha256(creds_.server_key, auth_message, server_sig);
    for (std::size_t k = 0; k < client_key.size(); ++k)
      client_key[k] =
          static_cast<unsigned char>(static_cast<unsigned char>(proof[k]) ^ client_sig[k]);
    const bool hashed = ok && d::sha256(d::view(client_key.data(), client_key.size()), stored);
    // Evaluated without short-circuit so that timing does not tell which
    // check failed.
    const bool proof_ok =
        hashed && (CRYPTO_memcmp(stored.data(), creds_.stored_key.data(), stored.size()) == 0);
    const bool accepted = proof_ok & cbind_ok & nonce_ok & known_;
    if (accepted) {
      challenge.append("v=");
      wire::base64_encode(challenge, d::view(server_sig.data(), server_sig.size()));
    }
    d::wipe(client_sig, client_key, stored, server_sig);
    d::wipe_string(proof);
    if (!hashed) return fail(errc::sasl_crypto_failed);
    if (!accepted) return fail(errc::sasl_auth_failed);
    const std::string user = authcid_, az = authzid_;
    reset();
    authcid_ = user;
    authzid_ = az;
    step_ = step::acknowledge;
    return errc::ok;
  }

  scram_credential_store* store_;
  scram_server_options o_;
  std::string_view test_nonce_;
  scram_key mock_key_{};
  bool mock_ok_ = false;
  channel_binding_type binding_type_ = channel_binding_type::tls_exporter;
  std::string binding_data_;
  step step_ = step::idle;
  gs2_cbind_flag flag_ = gs2_cbind_flag::n;
  bool known_ = false;
  std::string gs2_header_, bare_, server_first_, nonce_, authcid_, authzid_;
  scram_credentials creds_;
};

// ---------------------------------------------------------------------------
// CRAM-MD5 (RFC 2195) — legacy, see the file comment
// ---------------------------------------------------------------------------

namespace sasl_detail {
inline constexpr std::size_t cram_md5_size = 16;             // HMAC-MD5 output octets
inline constexpr std::size_t cram_md5_max_user = 255;        // default 255; RFC 2195 sets none
inline constexpr std::size_t cram_md5_max_challenge = 1024;  // default 1024; RFC 2195 sets none

/// The lower-case hex of HMAC-MD5(password, challenge), appended to `out`.
inline bool cram_md5_digest(std::string_view password, std::string_view challenge,
                            std::string& out) {
  unsigned char mac[cram_md5_size];
  if (!hmac("MD5", password, challenge, mac, sizeof mac)) return false;
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char b : mac) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 0x0f]);
  }
  OPENSSL_cleanse(mac, sizeof mac);
  return true;
}
}  // namespace sasl_detail

/// CRAM-MD5 client (RFC 2195): no initial response; the one challenge gets
/// `user` SP hex(HMAC-MD5(password, challenge)). LEGACY (see the file
/// comment). `user` and `password` must outlive the exchange.
class cram_md5_client final : public sasl_client_mechanism {
 public:
  cram_md5_client(std::string_view user, std::string_view password)
      : user_(user), password_(password) {}
  std::string_view name() const noexcept override { return "CRAM-MD5"; }
  /// Sends no initial response (CRAM-MD5 starts with the server's challenge).
  errc initial_response(std::string&, bool& present) override {
    present = false;
    answered_ = false;
    return errc::ok;
  }
  // RFC 2195 §2: the response is the user name, a space, and the digest
  // "represented as a sequence of 32 hexadecimal digits" (lower case).
  /// Answers the challenge. Errors: sasl_value_invalid for a user name that
  /// is not 1..255 octets of UTF-8 without control octets or an empty
  /// password; sasl_message_invalid for an empty or over-long (> 1024)
  /// challenge or a second one; sasl_crypto_failed when OpenSSL fails.
  errc respond(std::string_view challenge, std::string& out) override {
    if (answered_ || challenge.empty() || challenge.size() > sasl_detail::cram_md5_max_challenge)
      return errc::sasl_message_invalid;
    answered_ = true;
    if (!sasl_detail::is_utf8_text(user_) || user_.size() > sasl_detail::cram_md5_max_user ||
        password_.empty())
      return errc::sasl_value_invalid;
    std::string digest;
    if (!sasl_detail::cram_md5_digest(password_, challenge, digest))
      return errc::sasl_crypto_failed;
    out.append(user_).append(" ").append(digest);
    return errc::ok;
  }

 private:
  std::string_view user_, password_;
  bool answered_ = false;
};

/// The application's CRAM-MD5 password store. CRAM-MD5 needs the clear
/// password (or an HMAC-MD5 state equivalent to it) on the server.
class cram_md5_password_store {
 public:
  /// Sets `password` for `user` and returns true, or returns false for an
  /// unknown user. The mechanism wipes `password` after use.
  virtual bool lookup(std::string_view user, std::string& password) = 0;

 protected:
  ~cram_md5_password_store() = default;
};

/// CRAM-MD5 server (RFC 2195): the challenge "<random.timestamp@host>",
/// then the client's "user digest" checked with HMAC-MD5 of the stored
/// password (constant-time compare; unknown users fail like wrong
/// passwords). One object per session; `store` must outlive it. LEGACY
/// (see the file comment).
class cram_md5_server final : public sasl_server_mechanism {
 public:
  /// `host`: the server's name in the challenge (no '>', '<', '@', space
  /// or control octets; otherwise start() fails with api_value_invalid).
  /// `test_challenge`: FOR TESTS ONLY — a fixed challenge (RFC 2195's
  /// example) instead of a random one; never set it in production.
  cram_md5_server(cram_md5_password_store& store, std::string_view host,
                  std::string_view test_challenge = {})
      : store_(&store), host_(host), test_challenge_(test_challenge) {}
  cram_md5_server(const cram_md5_server&) = delete;
  cram_md5_server& operator=(const cram_md5_server&) = delete;
  ~cram_md5_server() { sasl_detail::wipe_string(password_); }

  /// The timestamp of the next challenges (seconds since the epoch): the
  /// engine reads no clock. Uniqueness rests on the 64 random bits of each
  /// challenge; the timestamp is informational (default 0).
  void set_time(std::uint64_t unix_seconds) noexcept { time_ = unix_seconds; }

  std::string_view name() const noexcept override { return "CRAM-MD5"; }

  /// Sends the challenge. Errors: sasl_message_invalid when the client sent
  /// an initial response (CRAM-MD5 is server-first); api_value_invalid for
  /// a bad host name; sasl_crypto_failed when RAND_bytes fails.
  errc start(std::string_view, bool present, std::string& challenge, bool& done) override {
    done = false;
    authcid_.clear();
    challenge_.clear();
    waiting_ = false;
    if (present) return errc::sasl_message_invalid;
    if (!test_challenge_.empty()) {
      challenge_.assign(test_challenge_.data(), test_challenge_.size());
    } else {
      if (!valid_host()) return errc::api_value_invalid;
      unsigned char r[8];
      if (!sasl_detail::random_bytes(r, sizeof r)) return errc::sasl_crypto_failed;
      std::uint64_t v = 0;
      for (unsigned char b : r)
        v = v << 8 | b;
      // RFC 2195 §2: "the presumptively arbitrary string of random digits,
      // a timestamp, and the fully-qualified primary host name" in msg-id form.
      challenge_.assign("<").append(std::to_string(v)).append(".");
      challenge_.append(std::to_string(time_)).append("@").append(host_).append(">");
    }
    challenge.append(challenge_);
    waiting_ = true;
    return errc::ok;
  }

  // RFC 2195 §2: user name, a space, and the digest as 32 lower-case hex
  // digits; the user name may itself contain spaces, so the last one splits.
  /// Checks the client's answer and sets `done`. Errors:
  /// sasl_message_invalid for anything but "user SP 32 lower-case hex"
  /// (user 1..255 octets of UTF-8 without control octets);
  /// sasl_auth_failed for a wrong digest or an unknown user;
  /// sasl_crypto_failed when OpenSSL fails; api_bad_state outside an
  /// exchange.
  errc respond(std::string_view response, std::string&, bool& done) override {
    done = false;
    if (!waiting_) return errc::api_bad_state;
    waiting_ = false;
    const std::size_t sp = response.rfind(' ');
    if (sp == std::string_view::npos) return errc::sasl_message_invalid;
    const std::string_view user = response.substr(0, sp);
    const std::string_view digest = response.substr(sp + 1);
    if (user.size() > sasl_detail::cram_md5_max_user || !sasl_detail::is_utf8_text(user) ||
        digest.size() != 2 * sasl_detail::cram_md5_size)
      return errc::sasl_message_invalid;
    for (char c : digest)
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return errc::sasl_message_invalid;
    password_.clear();
    bool known = store_->lookup(user, password_) && !password_.empty();
    // An unknown user still costs one HMAC, against a throwaway key.
    if (!known) password_.assign("\x01unknown user");
    std::string expected;
    const bool ok = sasl_detail::cram_md5_digest(password_, challenge_, expected);
    sasl_detail::wipe_string(password_);
    if (!ok) return errc::sasl_crypto_failed;
    const bool match = sasl_detail::equal(expected, digest);
    sasl_detail::wipe_string(expected);
    if (!(match & known)) return errc::sasl_auth_failed;
    authcid_.assign(user.data(), user.size());
    done = true;
    return errc::ok;
  }

  /// The authenticated user name, valid once `done` was set.
  std::string_view authcid() const noexcept override { return authcid_; }
  /// Always empty: CRAM-MD5 has no authorization identity.
  std::string_view authzid() const noexcept override { return {}; }

 private:
  bool valid_host() const noexcept {
    if (host_.empty() || host_.size() > 255) return false;
    for (char c : host_)
      if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '@') return false;
    return true;
  }

  cram_md5_password_store* store_;
  std::string_view host_;
  std::string_view test_challenge_;
  std::uint64_t time_ = 0;
  std::string challenge_, authcid_, password_;
  bool waiting_ = false;
};

}  // namespace smtpwire::openssl

#endif  // SMTPWIRE_OPENSSL_SASL_HPP
