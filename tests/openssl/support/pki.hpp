// A throwaway public key infrastructure for the OpenSSL adapter's tests,
// fuzzers and benchmarks, made with the OpenSSL API at first use (P-256 keys,
// SHA-256 signatures) and written as PEM files into a fresh private
// directory (mkdtemp under $TMPDIR or /tmp) that is removed at process exit.
//
//   const auto& p = smtpwire_test::pki::get();
//   server_tls_options so; so.cert_file = p.valid.cert_file; so.key_file = p.valid.key_file;
//   client_tls_options co; co.ca_file = p.ca_file;   // trusts p.root only
//   peer_identity{smtpwire_test::pki::host}
//
// Every certificate except `wrong_name` names pki::host (DNS) and 127.0.0.1
// (IP) in its subjectAltName. Trust anchors: only `root` (ca_file).
//
//   root          self-signed CA, in ca_file
//   intermediate  CA signed by root
//   valid         leaf signed by root                       -> passes
//   renewed       another leaf (new key) signed by root     -> passes (reload tests)
//   chained       leaf signed by intermediate; cert_file holds leaf + intermediate -> passes
//   expired       leaf signed by root, notAfter yesterday   -> X509_V_ERR_CERT_HAS_EXPIRED
//   wrong_name    leaf signed by root for other.example.test -> X509_V_ERR_HOSTNAME_MISMATCH
//   self_signed   self-signed leaf                          ->
//   X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT untrusted     leaf signed by a root not in ca_file ->
//   X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY mismatched    valid's certificate with renewed's
//   key    -> config_error on load
//
// DANE helpers: tlsa_data(cert_pem, selector, mtype) returns the binary
// association data of a TLSA record for a certificate (RFC 6698 §2.1).
// Failures abort (no exceptions needed).
#ifndef SMTPWIRE_TESTS_OPENSSL_PKI_HPP
#define SMTPWIRE_TESTS_OPENSSL_PKI_HPP

#include <smtpwire/openssl/context.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace smtpwire_test::pki {

/// The host name the certificates are made for.
inline constexpr const char* host = "mx.example.test";
/// The name `wrong_name` is made for.
inline constexpr const char* other_host = "other.example.test";

/// A certificate and its key, as PEM text and as files.
struct credential {
  std::string cert_pem;   ///< the certificate alone
  std::string chain_pem;  ///< the certificate followed by its intermediates (what cert_file holds)
  std::string key_pem;    ///< the private key (PKCS#8)
  std::string cert_file;  ///< path of a file holding chain_pem
  std::string key_file;   ///< path of a file holding key_pem
};

namespace detail {

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "pki: %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) die(what);
}

struct key_deleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct cert_deleter {
  void operator()(X509* c) const { X509_free(c); }
};

inline std::string bio_text(BIO* b) {
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

inline std::string pem_of(X509* c) {
  BIO* b = BIO_new(BIO_s_mem());
  check(b != nullptr && PEM_write_bio_X509(b, c) == 1, "PEM_write_bio_X509");
  return bio_text(b);
}

inline std::string pem_of(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  check(b != nullptr && PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return bio_text(b);
}

inline X509* cert_from_pem(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  check(b != nullptr, "BIO_new_mem_buf");
  X509* c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  check(c != nullptr, "PEM_read_bio_X509");
  return c;
}

inline EVP_PKEY* new_key() {
  EVP_PKEY* k = EVP_EC_gen("P-256");
  check(k != nullptr, "EVP_EC_gen");
  return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

/// Makes a certificate for `cn` with `key`, signed by `issuer_key` (and
/// named after `issuer`, or self-signed when issuer is null). Validity in
/// days relative to now: [from_days, to_days].
inline X509* make_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                       const char* san, long from_days, long to_days, long serial) {
  X509* c = X509_new();
  check(c != nullptr, "X509_new");
  check(X509_set_version(c, 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(c), serial) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(c), from_days * 86400L) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(c), to_days * 86400L) != nullptr, "notAfter");
  X509_NAME* name = X509_get_subject_name(c);
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("smtpwire tests"), -1, -1,
                                   0) == 1,
        "O");
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn), -1, -1, 0) == 1,
        "CN");
  check(X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name) == 1,
        "issuer");
  check(X509_set_pubkey(c, key) == 1, "X509_set_pubkey");
  X509* iss = issuer != nullptr ? issuer : c;
  if (ca) {
    add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c, iss, NID_key_usage, "critical,digitalSignature");
    add_ext(c, iss, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  add_ext(c, iss, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_ext(c, iss, NID_authority_key_identifier, "keyid:always");
  if (san != nullptr) add_ext(c, iss, NID_subject_alt_name, san);
  check(X509_sign(c, issuer_key, EVP_sha256()) > 0, "X509_sign");
  return c;
}

inline void write_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  check(f != nullptr, "fopen");
  check(std::fwrite(text.data(), 1, text.size(), f) == text.size(), "fwrite");
  check(std::fclose(f) == 0, "fclose");
}

}  // namespace detail

/// The whole throwaway PKI; see the top of this header.
class store {
 public:
  std::string dir;      ///< the private directory holding every file
  std::string ca_file;  ///< PEM file with `root` only: the trust anchor
  credential root, intermediate, valid, renewed, chained, expired, wrong_name, self_signed,
      untrusted, mismatched;

  store() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/smtpwire-pki-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    detail::check(mkdtemp(buf.data()) != nullptr, "mkdtemp");
    dir = buf.data();

    const std::string san = std::string("DNS:") + host + ",IP:127.0.0.1";
    const std::string other_san = std::string("DNS:") + other_host;
    long serial = 1;

    EVP_PKEY* root_key = detail::new_key();
    X509* root_cert = detail::make_cert("smtpwire test root", root_key, nullptr, root_key, true,
                                        nullptr, -1, 3650, serial++);
    EVP_PKEY* inter_key = detail::new_key();
    X509* inter_cert = detail::make_cert("smtpwire test intermediate", inter_key, root_cert,
                                         root_key, true, nullptr, -1, 3650, serial++);
    EVP_PKEY* other_root_key = detail::new_key();
    X509* other_root = detail::make_cert("smtpwire untrusted root", other_root_key, nullptr,
                                         other_root_key, true, nullptr, -1, 3650, serial++);

    set(root, "root", root_cert, root_key, "");
    set(intermediate, "intermediate", inter_cert, inter_key, "");
    leaf(valid, "valid", host, san.c_str(), root_cert, root_key, -1, 3650, serial++, "");
    leaf(renewed, "renewed", host, san.c_str(), root_cert, root_key, -1, 3650, serial++, "");
    leaf(chained, "chained", host, san.c_str(), inter_cert, inter_key, -1, 3650, serial++,
         intermediate.cert_pem);
    leaf(expired, "expired", host, san.c_str(), root_cert, root_key, -30, -1, serial++, "");
    leaf(wrong_name, "wrong_name", other_host, other_san.c_str(), root_cert, root_key, -1, 3650,
         serial++, "");
    {
      EVP_PKEY* k = detail::new_key();
      X509* c = detail::make_cert(host, k, nullptr, k, false, san.c_str(), -1, 3650, serial++);
      set(self_signed, "self_signed", c, k, "");
      X509_free(c);
      EVP_PKEY_free(k);
    }
    leaf(untrusted, "untrusted", host, san.c_str(), other_root, other_root_key, -1, 3650, serial++,
         "");
    mismatched.cert_pem = valid.cert_pem;
    mismatched.chain_pem = valid.chain_pem;
    mismatched.key_pem = renewed.key_pem;
    mismatched.cert_file = valid.cert_file;
    mismatched.key_file = renewed.key_file;

    ca_file = dir + "/ca.pem";
    detail::write_file(ca_file, root.cert_pem);
    files_.push_back(ca_file);

    X509_free(other_root);
    EVP_PKEY_free(other_root_key);
    X509_free(inter_cert);
    EVP_PKEY_free(inter_key);
    X509_free(root_cert);
    EVP_PKEY_free(root_key);
  }

  store(const store&) = delete;
  store& operator=(const store&) = delete;

  ~store() {
    for (const std::string& f : files_)
      (void)std::remove(f.c_str());
    (void)rmdir(dir.c_str());
  }

  /// Writes `text` to a new file named `name` in dir (removed at exit).
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    detail::write_file(path, text);
    files_.push_back(path);
    return path;
  }

 private:
  // Fills `out` from cert + key (not taken) and writes its files.
  void set(credential& out, const char* name, X509* cert, EVP_PKEY* key,
           const std::string& extra_chain) {
    out.cert_pem = detail::pem_of(cert);
    out.chain_pem = out.cert_pem + extra_chain;
    out.key_pem = detail::pem_of(key);
    out.cert_file = write(std::string(name) + ".crt", out.chain_pem);
    out.key_file = write(std::string(name) + ".key", out.key_pem);
  }

  void leaf(credential& out, const char* name, const char* cn, const char* san, X509* issuer,
            EVP_PKEY* issuer_key, long from, long to, long serial, const std::string& extra) {
    EVP_PKEY* k = detail::new_key();
    X509* c = detail::make_cert(cn, k, issuer, issuer_key, false, san, from, to, serial);
    set(out, name, c, k, extra);
    X509_free(c);
    EVP_PKEY_free(k);
  }

  std::vector<std::string> files_;
};

/// The process-wide PKI, made at first use (a few milliseconds).
inline store& get() {
  static store s;
  return s;
}

/// The association data of a TLSA record for the certificate in `cert_pem`
/// (RFC 6698 §2.1.2-2.1.3): selector 0 = the whole certificate (DER), 1 =
/// its SubjectPublicKeyInfo (DER); mtype 0 = exact, 1 = SHA2-256,
/// 2 = SHA2-512. Binary.
inline std::string tlsa_data(const std::string& cert_pem, int selector, int mtype) {
  X509* c = detail::cert_from_pem(cert_pem);
  unsigned char* der = nullptr;
  const int len =
      selector == 0 ? i2d_X509(c, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &der);
  X509_free(c);
  detail::check(len > 0, "i2d");
  std::string data(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  if (mtype == 0) return data;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  detail::check(EVP_Digest(data.data(), data.size(), md, &md_len,
                           mtype == 1 ? EVP_sha256() : EVP_sha512(), nullptr) == 1,
                "EVP_Digest");
  return std::string(reinterpret_cast<const char*>(md), md_len);
}

/// Server options serving `cred`, TLS up to `max`.
inline smtpwire::openssl::server_tls_options server_opts(
    const credential& cred,
    smtpwire::openssl::tls_version max = smtpwire::openssl::tls_version::tls1_3) {
  smtpwire::openssl::server_tls_options o;
  o.cert_file = cred.cert_file;
  o.key_file = cred.key_file;
  o.max_version = max;
  return o;
}

/// Client options verifying as `mode` against the throwaway CA (the
/// system's store when `trust_test_ca` is false), TLS up to `max`.
inline smtpwire::openssl::client_tls_options client_opts(
    smtpwire::openssl::tls_version max = smtpwire::openssl::tls_version::tls1_3,
    smtpwire::openssl::verify_mode mode = smtpwire::openssl::verify_mode::required,
    bool trust_test_ca = true) {
  smtpwire::openssl::client_tls_options o;
  o.verify = mode;
  if (trust_test_ca) o.ca_file = get().ca_file;
  o.max_version = max;
  return o;
}

}  // namespace smtpwire_test::pki

#endif  // SMTPWIRE_TESTS_OPENSSL_PKI_HPP
