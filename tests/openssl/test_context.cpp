// smtpwire::openssl contexts: configuration errors (config_error with
// OpenSSL's reasons), the error category, server reload (live sessions keep
// the old certificate, new ones see the new one), the client's per-host
// session cache (resumption), and context lifetime.
#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/openssl/context.hpp>
#include <smtpwire/openssl/error.hpp>

#include <catch2/catch.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "openssl/support/pipe.hpp"
#include "openssl/support/pki.hpp"

using smtpwire::openssl::channel;
using smtpwire::openssl::client_context;
using smtpwire::openssl::client_tls_options;
using smtpwire::openssl::handshake_status;
using smtpwire::openssl::peer_identity;
using smtpwire::openssl::server_context;
using smtpwire::openssl::server_tls_options;
using smtpwire::openssl::tls_errc;
using smtpwire::openssl::tls_version;
using smtpwire::openssl::verify_mode;
namespace pki = smtpwire_test::pki;

namespace {

using pki::client_opts;
using pki::server_opts;

// Moves ciphertext between two channels in seeded random chunks.
// The pipe's chunks are 1..3000 octets here.
struct chunk_pipe : smtpwire_test::wire_pipe {
  explicit chunk_pipe(std::uint32_t seed) : wire_pipe(seed, 3000) {}
};

bool run_handshake(channel& c, channel& s, chunk_pipe& p) {
  return smtpwire_test::run_handshake(c, s, p).established();
}

// Sends `text` from `a` to `b` and returns what `b` read.
std::string send(channel& a, channel& b, std::string_view text, chunk_pipe& p) {
  auto w = a.write(text);
  REQUIRE(w);
  REQUIRE(*w == text.size());
  std::string got;
  char buf[4096];
  for (int guard = 0; guard < 100000; ++guard) {
    const bool moved = p.move(a, b);
    for (;;) {
      auto r = b.read(buf, sizeof buf);
      REQUIRE(r);
      if (*r == 0) break;
      got.append(buf, *r);
    }
    if (!moved) break;
  }
  return got;
}

// The DER of the certificate the client saw.
std::string peer_der(channel& c) {
  X509* cert = SSL_get0_peer_certificate(c.native());
  REQUIRE(cert != nullptr);
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert, &der);
  REQUIRE(n > 0);
  std::string s(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return s;
}

std::string der_of(const std::string& pem) {
  // selector 0, matching type 0: the certificate's DER itself.
  return pki::tlsa_data(pem, 0, 0);
}

// A full session to the end: handshake, a line each way (the client thereby
// takes the server's tickets), close_notify both ways. Returns whether the
// client resumed.
bool session(client_context& cc, server_context& sc, const char* host, chunk_pipe& p) {
  auto c = channel::client(cc, peer_identity{host});
  auto s = channel::server(sc);
  REQUIRE(c);
  REQUIRE(s);
  INFO(c->error_text());
  REQUIRE(run_handshake(*c, *s, p));
  CHECK(send(*s, *c, "220 hi\r\n", p) == "220 hi\r\n");
  CHECK(send(*c, *s, "QUIT\r\n", p) == "QUIT\r\n");
  CHECK(c->session_reused() == s->session_reused());
  c->shutdown();
  s->shutdown();
  return c->session_reused();
}

}  // namespace

// ---------------------------------------------------------------------------
// The error category
// ---------------------------------------------------------------------------

TEST_CASE("tls_errc is a std::error_code enum with its own category", "[context]") {
  const std::error_code ec = tls_errc::truncated;
  CHECK(ec);
  CHECK(std::string(ec.category().name()) == "smtpwire.openssl");
  CHECK(ec.message().find("truncated") == 0);
  CHECK_FALSE(std::error_code(tls_errc::ok));
  CHECK(ec != make_error_code(tls_errc::closed));
  CHECK(ec != std::error_code(static_cast<int>(tls_errc::truncated), std::generic_category()));
  int named = 0;
  for (int v = 1; v < 100; ++v) {
    const auto e = static_cast<tls_errc>(v);
    if (smtpwire::openssl::to_string(e) == "unknown") continue;
    ++named;
    const std::string m = make_error_code(e).message();
    CHECK(m.find(std::string(smtpwire::openssl::to_string(e))) == 0);
    CHECK(m.size() > smtpwire::openssl::to_string(e).size() + 4);
  }
  CHECK(named == 13);
}

TEST_CASE("result_or_error_code holds a value or an error", "[context]") {
  smtpwire::openssl::result_or_error_code<std::string> good = std::string("x");
  REQUIRE(good);
  CHECK(good.has_value());
  CHECK(*good == "x");
  CHECK(good->size() == 1);
  CHECK_FALSE(good.error());
  smtpwire::openssl::result_or_error_code<std::string> bad = tls_errc::closed;
  CHECK_FALSE(bad);
  CHECK(bad.error() == tls_errc::closed);
}

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

TEST_CASE("unreadable, invalid or mismatched credentials are config_error", "[context]") {
  auto& k = pki::get();
  std::string why;
  SECTION("missing certificate file") {
    auto o = server_opts(k.valid);
    o.cert_file = k.dir + "/absent.crt";
    auto r = server_context::create(o, &why);
    CHECK(r.error() == tls_errc::config_error);
    CHECK(why.find("absent.crt") != std::string::npos);
    CHECK(why.find("No such file") != std::string::npos);
  }
  SECTION("missing key file") {
    auto o = server_opts(k.valid);
    o.key_file = k.dir + "/absent.key";
    CHECK(server_context::create(o, &why).error() == tls_errc::config_error);
    CHECK(why.find("absent.key") != std::string::npos);
  }
  SECTION("a key file that is not PEM") {
    auto o = server_opts(k.valid);
    o.key_file = k.write("garbage.key", "-----BEGIN PRIVATE KEY-----\nnot base64\n");
    CHECK(server_context::create(o, &why).error() == tls_errc::config_error);
    CHECK_FALSE(why.empty());
  }
  SECTION("a key that does not match the certificate") {
    auto o = server_opts(k.mismatched);
    CHECK(server_context::create(o, &why).error() == tls_errc::config_error);
    CHECK(why.find("does not match") != std::string::npos);
    CHECK(why.find("values mismatch") != std::string::npos);  // OpenSSL's reason kept
  }
  SECTION("no certificate at all") {
    CHECK(server_context::create(server_tls_options{}, &why).error() == tls_errc::config_error);
  }
  SECTION("min above max, bad lists") {
    auto o = server_opts(k.valid);
    o.min_version = tls_version::tls1_3;
    o.max_version = tls_version::tls1_2;
    CHECK(server_context::create(o).error() == tls_errc::config_error);
    auto g = server_opts(k.valid);
    g.groups = "NoSuchGroup";
    CHECK(server_context::create(g).error() == tls_errc::config_error);
    auto c = client_opts();
    c.ciphers = "NO-SUCH-CIPHER";
    CHECK(client_context::create(c).error() == tls_errc::config_error);
    auto s = client_opts();
    s.ciphersuites = "TLS_NO_SUCH";
    CHECK(client_context::create(s).error() == tls_errc::config_error);
  }
  SECTION("client: missing CA file, half a credential, mismatched credential") {
    auto c = client_opts();
    c.ca_file = k.dir + "/absent-ca.pem";
    CHECK(client_context::create(c, &why).error() == tls_errc::config_error);
    CHECK(why.find("absent-ca.pem") != std::string::npos);
    auto h = client_opts();
    h.cert_file = k.valid.cert_file;
    CHECK(client_context::create(h).error() == tls_errc::config_error);
    auto m = client_opts();
    m.cert_file = k.mismatched.cert_file;
    m.key_file = k.mismatched.key_file;
    CHECK(client_context::create(m).error() == tls_errc::config_error);
  }
  CHECK(ERR_peek_error() == 0);  // nothing left in the thread's queue
}

TEST_CASE("good options build contexts; the system store loads", "[context]") {
  CHECK(server_context::create(server_opts(pki::get().chained)));
  CHECK(client_context::create(client_opts()));
  client_tls_options sys;  // empty ca_file: the system store
  auto c = client_context::create(sys);
  REQUIRE(c);
  CHECK(c->options().verify == verify_mode::required);
  CHECK(c->options().min_version == tls_version::tls1_2);
  CHECK(SSL_CTX_get_min_proto_version(c->native()) == TLS1_2_VERSION);
  CHECK((SSL_CTX_get_options(c->native()) & SSL_OP_NO_RENEGOTIATION) != 0);
  CHECK(SSL_CTX_get_verify_mode(c->native()) == SSL_VERIFY_PEER);
  client_tls_options opp;
  opp.verify = verify_mode::opportunistic;
  auto o = client_context::create(opp);
  REQUIRE(o);
  CHECK(SSL_CTX_get_verify_mode(o->native()) == SSL_VERIFY_NONE);
}

TEST_CASE("TLS 1.2 is the minimum: a TLS 1.1-only peer is refused", "[context]") {
  // A raw OpenSSL client limited to TLS 1.1 against our server.
  auto sc = server_context::create(server_opts(pki::get().valid));
  REQUIRE(sc);
  auto s = channel::server(*sc);
  REQUIRE(s);
  SSL_CTX* old = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(old, 0);
  SSL_CTX_set_min_proto_version(old, TLS1_1_VERSION);
  SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
  SSL* c = SSL_new(old);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(c, in, out);
  SSL_set_connect_state(c);
  (void)SSL_do_handshake(c);
  char* p = nullptr;
  const long n = BIO_get_mem_data(out, &p);
  REQUIRE(n > 0);
  s->receive_ciphertext(std::string_view(p, static_cast<std::size_t>(n)));
  CHECK(s->handshake() == handshake_status::failed);
  CHECK(s->error() == tls_errc::handshake_failed);
  CHECK(std::string(s->error_text()).find("protocol") != std::string::npos);
  SSL_free(c);
  SSL_CTX_free(old);
  ERR_clear_error();
}

// ---------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------

TEST_CASE("reload: live sessions keep the old certificate, new ones see the new one", "[context]") {
  auto& k = pki::get();
  auto sc = server_context::create(server_opts(k.valid));
  REQUIRE(sc);
  auto cc = client_context::create(client_opts());
  REQUIRE(cc);
  chunk_pipe p(7);

  auto c1 = channel::client(*cc, peer_identity{pki::host});
  auto s1 = channel::server(*sc);
  REQUIRE(run_handshake(*c1, *s1, p));
  CHECK(peer_der(*c1) == der_of(k.valid.cert_pem));
  // Created before the reload, handshake after it: still the old certificate.
  auto c2 = channel::client(*cc, peer_identity{pki::host});
  auto s2 = channel::server(*sc);
  REQUIRE(s2);

  CHECK(sc->generation() == 0);
  std::string why;
  CHECK_FALSE(sc->reload(server_opts(k.renewed), &why));
  CHECK(sc->generation() == 1);
  CHECK(sc->options().cert_file == k.renewed.cert_file);

  // The live session still works both ways.
  CHECK(send(*c1, *s1, "MAIL FROM:<a@b>\r\n", p) == "MAIL FROM:<a@b>\r\n");
  CHECK(send(*s1, *c1, "250 ok\r\n", p) == "250 ok\r\n");
  REQUIRE(run_handshake(*c2, *s2, p));
  CHECK(peer_der(*c2) == der_of(k.valid.cert_pem));

  auto c3 = channel::client(*cc, peer_identity{pki::host});
  auto s3 = channel::server(*sc);
  cc->clear_sessions();  // full handshakes: see the certificate
  auto c4 = channel::client(*cc, peer_identity{pki::host});
  auto s4 = channel::server(*sc);
  REQUIRE(run_handshake(*c4, *s4, p));
  CHECK(peer_der(*c4) == der_of(k.renewed.cert_pem));

  // A failed reload changes nothing.
  CHECK(sc->reload(server_opts(k.mismatched), &why) == tls_errc::config_error);
  CHECK(why.find("does not match") != std::string::npos);
  CHECK(sc->generation() == 1);
  auto c5 = channel::client(*cc, peer_identity{pki::host});
  auto s5 = channel::server(*sc);
  REQUIRE(run_handshake(*c5, *s5, p));
  CHECK(peer_der(*c5) == der_of(k.renewed.cert_pem));
  // reload() without options re-reads the same files.
  CHECK_FALSE(sc->reload());
  CHECK(sc->generation() == 2);
}

TEST_CASE("reload re-reads files that changed in place", "[context]") {
  auto& k = pki::get();
  server_tls_options o;
  o.cert_file = k.write("inplace.crt", k.valid.chain_pem);
  o.key_file = k.write("inplace.key", k.valid.key_pem);
  auto sc = server_context::create(o);
  REQUIRE(sc);
  auto cc = client_context::create(client_opts());
  REQUIRE(cc);
  cc->clear_sessions();
  chunk_pipe p(17);
  k.write("inplace.crt", k.renewed.chain_pem);
  k.write("inplace.key", k.renewed.key_pem);
  auto c1 = channel::client(*cc, peer_identity{pki::host});
  auto s1 = channel::server(*sc);
  REQUIRE(run_handshake(*c1, *s1, p));
  CHECK(peer_der(*c1) == der_of(k.valid.cert_pem));  // not reloaded yet
  REQUIRE_FALSE(sc->reload());
  auto c2 = channel::client(*cc, peer_identity{pki::host});
  auto s2 = channel::server(*sc);
  REQUIRE(run_handshake(*c2, *s2, p));
  CHECK(peer_der(*c2) == der_of(k.renewed.cert_pem));
}

// ---------------------------------------------------------------------------
// Session resumption
// ---------------------------------------------------------------------------

TEST_CASE("the second handshake to a host resumes", "[context]") {
  const auto version = GENERATE(tls_version::tls1_3, tls_version::tls1_2);
  auto sc = server_context::create(server_opts(pki::get().valid, version));
  REQUIRE(sc);
  auto cc = client_context::create(client_opts());
  REQUIRE(cc);
  chunk_pipe p(27);
  CHECK_FALSE(session(*cc, *sc, pki::host, p));
  CHECK(cc->cached_sessions() == 1);
  CHECK(session(*cc, *sc, pki::host, p));
  CHECK(session(*cc, *sc, pki::host, p));  // the resumed session brought a new ticket
  // Another name for the same server is another cache key.
  CHECK_FALSE(session(*cc, *sc, "127.0.0.1", p));
  CHECK(cc->cached_sessions() == 2);
  // A resumed session still reports verification and the verified name.
  {
    auto c = channel::client(*cc, peer_identity{pki::host});
    auto s = channel::server(*sc);
    REQUIRE(run_handshake(*c, *s, p));
    CHECK(c->session_reused());
    CHECK(c->info().peer_verified);
    CHECK(c->verified_peer_name() == pki::host);
    // Ended without close_notify: OpenSSL will not resume this one.
  }
  CHECK_FALSE(session(*cc, *sc, pki::host, p));
  // Sessions verified through extra names are not cached (keyed by host).
  {
    const std::size_t before = cc->cached_sessions();
    auto c = channel::client(*cc, peer_identity{"alias.example.test", {}, {pki::host}});
    auto s = channel::server(*sc);
    REQUIRE(run_handshake(*c, *s, p));
    CHECK(send(*s, *c, "220 hi\r\n", p) == "220 hi\r\n");
    CHECK(cc->cached_sessions() == before);
  }
  cc->clear_sessions();
  CHECK(cc->cached_sessions() == 0);
  CHECK_FALSE(session(*cc, *sc, pki::host, p));
}

TEST_CASE("tickets survive a reload", "[context]") {
  auto& k = pki::get();
  auto sc = server_context::create(server_opts(k.valid));
  REQUIRE(sc);
  auto cc = client_context::create(client_opts());
  REQUIRE(cc);
  chunk_pipe p(37);
  CHECK_FALSE(session(*cc, *sc, pki::host, p));
  REQUIRE_FALSE(sc->reload(server_opts(k.renewed)));
  CHECK(session(*cc, *sc, pki::host, p));
}

TEST_CASE("resumption off, tickets off, and a bounded cache", "[context]") {
  auto& k = pki::get();
  chunk_pipe p(47);
  SECTION("client without resumption") {
    auto sc = server_context::create(server_opts(k.valid));
    auto o = client_opts();
    o.session_resumption = false;
    auto cc = client_context::create(o);
    REQUIRE(sc);
    REQUIRE(cc);
    CHECK_FALSE(session(*cc, *sc, pki::host, p));
    CHECK_FALSE(session(*cc, *sc, pki::host, p));
    CHECK(cc->cached_sessions() == 0);
  }
  SECTION("server without tickets (TLS 1.3)") {
    auto so = server_opts(k.valid);
    so.session_tickets = false;
    auto sc = server_context::create(so);
    auto cc = client_context::create(client_opts());
    REQUIRE(sc);
    REQUIRE(cc);
    CHECK_FALSE(session(*cc, *sc, pki::host, p));
    CHECK_FALSE(session(*cc, *sc, pki::host, p));
  }
  SECTION("the cache keeps at most session_cache_limit hosts") {
    auto sc = server_context::create(server_opts(k.valid));
    auto o = client_opts();
    o.verify = verify_mode::opportunistic;  // any host name will do
    o.session_cache_limit = 2;
    auto cc = client_context::create(o);
    REQUIRE(sc);
    REQUIRE(cc);
    CHECK_FALSE(session(*cc, *sc, "a.example.test", p));
    CHECK_FALSE(session(*cc, *sc, "b.example.test", p));
    CHECK_FALSE(session(*cc, *sc, "c.example.test", p));
    CHECK(cc->cached_sessions() == 2);
    CHECK_FALSE(session(*cc, *sc, "a.example.test", p));  // evicted first
    CHECK(session(*cc, *sc, "c.example.test", p));
  }
}

// ---------------------------------------------------------------------------
// Lifetime
// ---------------------------------------------------------------------------

TEST_CASE("channels outlive their contexts", "[context]") {
  std::optional<channel> c, s;
  {
    auto sc = server_context::create(server_opts(pki::get().valid));
    auto cc = client_context::create(client_opts());
    REQUIRE(sc);
    REQUIRE(cc);
    auto cr = channel::client(*cc, peer_identity{pki::host});
    auto sr = channel::server(*sc);
    REQUIRE(cr);
    REQUIRE(sr);
    c.emplace(std::move(*cr));
    s.emplace(std::move(*sr));
  }
  chunk_pipe p(57);
  REQUIRE(run_handshake(*c, *s, p));
  CHECK(send(*s, *c, "220 still here\r\n", p) == "220 still here\r\n");  // tickets: cache hook
  CHECK(send(*c, *s, "QUIT\r\n", p) == "QUIT\r\n");
  // Moving keeps the state (OpenSSL's callbacks point at it, not at the object).
  channel moved = std::move(*c);
  c.reset();
  CHECK(send(moved, *s, "NOOP\r\n", p) == "NOOP\r\n");
}
