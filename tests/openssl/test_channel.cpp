// smtpwire::openssl::channel: real handshakes in memory between a client
// channel and a server channel joined by a seeded, randomly chunked wire_pipe;
// verification outcomes in required and opportunistic mode; bulk transfer;
// close_notify, truncation, renegotiation; DANE; error isolation; and a
// loop of handshakes for LeakSanitizer.
#include <smtpwire/openssl/channel.hpp>

#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
using smtpwire::openssl::tlsa_record;
using smtpwire::openssl::verify_mode;
namespace pki = smtpwire_test::pki;

namespace {

// ---------------------------------------------------------------------------
// Contexts, channels and the wire_pipe
// ---------------------------------------------------------------------------

server_context make_server(const pki::credential& cred, tls_version max = tls_version::tls1_3) {
  std::string why;
  auto r = server_context::create(pki::server_opts(cred, max), &why);
  INFO(why);
  REQUIRE(r);
  return std::move(*r);
}

client_context make_client(verify_mode mode = verify_mode::required,
                           tls_version max = tls_version::tls1_3, bool trust_test_ca = true) {
  std::string why;
  auto r = client_context::create(pki::client_opts(max, mode, trust_test_ca), &why);
  INFO(why);
  REQUIRE(r);
  return std::move(*r);
}

channel client_for(client_context& ctx, peer_identity peer) {
  auto r = channel::client(ctx, peer);
  REQUIRE(r);
  return std::move(*r);
}

channel client_for(client_context& ctx, const char* host = pki::host) {
  return client_for(ctx, peer_identity{host});
}

channel server_of(server_context& ctx) {
  auto r = channel::server(ctx);
  REQUIRE(r);
  return std::move(*r);
}

// Moves ciphertext between two channels in random chunks, as sockets would.
using smtpwire_test::wire_pipe;
using outcome = smtpwire_test::handshake_outcome;
using smtpwire_test::run_handshake;

// Reads everything `to` can decrypt now into `sink`; returns the last
// read()'s error (empty when it only ran out of data).
std::error_code drain(channel& to, std::string& sink) {
  char buf[8192];
  for (;;) {
    auto r = to.read(buf, sizeof buf);
    if (!r) return r.error();
    if (*r == 0) return {};
    sink.append(buf, *r);
  }
}

// Sends `a_to_b` from a to b and `b_to_a` from b to a at the same time,
// interleaving writes, random chunks and reads; returns what each received.
std::pair<std::string, std::string> exchange(channel& a, channel& b, std::string_view a_to_b,
                                             std::string_view b_to_a, wire_pipe& p) {
  std::string got_b, got_a;
  std::size_t sent_a = 0, sent_b = 0;
  for (int guard = 0; guard < 1000000; ++guard) {
    if (sent_a < a_to_b.size()) {
      const std::size_t n = std::min<std::size_t>(
          a_to_b.size() - sent_a, std::uniform_int_distribution<std::size_t>(1, 70000)(p.rng));
      auto r = a.write(a_to_b.substr(sent_a, n));
      REQUIRE(r);
      sent_a += *r;
    }
    if (sent_b < b_to_a.size()) {
      const std::size_t n = std::min<std::size_t>(
          b_to_a.size() - sent_b, std::uniform_int_distribution<std::size_t>(1, 70000)(p.rng));
      auto r = b.write(b_to_a.substr(sent_b, n));
      REQUIRE(r);
      sent_b += *r;
    }
    bool moved = p.move(a, b);
    moved = p.move(b, a) || moved;
    REQUIRE_FALSE(drain(a, got_a));
    REQUIRE_FALSE(drain(b, got_b));
    if (!moved && sent_a == a_to_b.size() && sent_b == b_to_a.size() &&
        a.ciphertext_out().empty() && b.ciphertext_out().empty())
      break;
  }
  return {got_b, got_a};
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& ch : s)
    ch = static_cast<char>(rng() & 0xff);
  return s;
}

std::string tlsa_bytes(const std::string& pem, int selector, int mtype) {
  return pki::tlsa_data(pem, selector, mtype);
}

}  // namespace

// ---------------------------------------------------------------------------
// Handshakes and verification
// ---------------------------------------------------------------------------

TEST_CASE("a valid certificate passes, TLS 1.3 and 1.2 forced, any chunking", "[channel]") {
  const auto version = GENERATE(tls_version::tls1_3, tls_version::tls1_2);
  const auto seed = GENERATE(1u, 2u, 3u);
  const std::size_t max_chunk = GENERATE(1u, 7u, 300u, 100000u);
  auto sctx = make_server(pki::get().valid, version);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  CHECK(c.is_client());
  CHECK_FALSE(s.is_client());
  CHECK(c.info().version.empty());
  wire_pipe p(seed, max_chunk);
  const outcome o = run_handshake(c, s, p);
  INFO(c.error_text() << " / " << s.error_text());
  REQUIRE(o.client == handshake_status::done);
  REQUIRE(o.server == handshake_status::done);
  CHECK(c.established());
  CHECK(s.established());
  const char* expected = version == tls_version::tls1_3 ? "TLSv1.3" : "TLSv1.2";
  CHECK(c.info().version == expected);
  CHECK(s.info().version == expected);
  CHECK_FALSE(c.info().cipher.empty());
  CHECK(c.info().cipher == s.info().cipher);
  CHECK(c.info().peer_verified);
  CHECK(c.info().peer_name == pki::host);
  CHECK(c.verified_peer_name() == pki::host);
  CHECK(c.verification().checked);
  CHECK(c.verification().passed);
  CHECK(c.verification().code == X509_V_OK);
  CHECK(s.server_name() == pki::host);
  CHECK_FALSE(s.verification().checked);
  CHECK_FALSE(c.error());
  CHECK(c.error_text().empty());
}

TEST_CASE("a chain through an intermediate CA passes", "[channel]") {
  auto sctx = make_server(pki::get().chained);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(11);
  const outcome o = run_handshake(c, s, p);
  INFO(c.error_text());
  REQUIRE(o.client == handshake_status::done);
  REQUIRE(o.server == handshake_status::done);
  CHECK(c.info().peer_verified);
  // Without the intermediate in the server's chain the client cannot build it.
  server_tls_options leaf_only;
  leaf_only.cert_file = pki::get().write("chained-leaf-only.crt", pki::get().chained.cert_pem);
  leaf_only.key_file = pki::get().chained.key_file;
  auto bare = server_context::create(leaf_only);
  REQUIRE(bare);
  channel c2 = client_for(cctx);
  channel s2 = server_of(*bare);
  const outcome o2 = run_handshake(c2, s2, p);
  CHECK(o2.client == handshake_status::failed);
  CHECK(c2.error() == tls_errc::certificate_untrusted);
}

TEST_CASE("a peer name given as an address literal or an extra name", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client();
  wire_pipe p(5);
  {
    channel c = client_for(cctx, "127.0.0.1");
    channel s = server_of(sctx);
    const outcome o = run_handshake(c, s, p);
    INFO(c.error_text());
    REQUIRE(o.client == handshake_status::done);
    CHECK(c.info().peer_verified);
    CHECK(s.server_name().empty());  // RFC 6066 §3: no literal in SNI
  }
  {
    channel c = client_for(cctx, "127.0.0.2");
    channel s = server_of(sctx);
    CHECK(run_handshake(c, s, p).client == handshake_status::failed);
    CHECK(c.error() == tls_errc::hostname_mismatch);
  }
  {
    peer_identity peer{"next-hop.example.test", {}, {pki::host}};
    channel c = client_for(cctx, peer);
    channel s = server_of(sctx);
    const outcome o = run_handshake(c, s, p);
    INFO(c.error_text());
    REQUIRE(o.client == handshake_status::done);
    CHECK(c.verified_peer_name() == pki::host);
    CHECK(s.server_name() == "next-hop.example.test");
  }
  CHECK(channel::client(cctx, peer_identity{""}).error() == tls_errc::config_error);
}

namespace {
struct bad_case {
  const char* name;
  const pki::credential* cred;
  tls_errc code;
  long x509;
  const char* text;  // part of X509_verify_cert_error_string
};
}  // namespace

TEST_CASE("bad certificates fail in required mode and are reported in opportunistic mode",
          "[channel]") {
  const auto& k = pki::get();
  const bad_case cases[] = {
      {"expired", &k.expired, tls_errc::certificate_expired, X509_V_ERR_CERT_HAS_EXPIRED,
       "expired"},
      {"wrong name", &k.wrong_name, tls_errc::hostname_mismatch, X509_V_ERR_HOSTNAME_MISMATCH,
       "mismatch"},
      {"self-signed", &k.self_signed, tls_errc::certificate_untrusted,
       X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "self-signed"},
      {"untrusted issuer", &k.untrusted, tls_errc::certificate_untrusted,
       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "issuer"},
  };
  const auto version = GENERATE(tls_version::tls1_3, tls_version::tls1_2);
  for (const bad_case& bc : cases) {
    INFO(bc.name);
    auto sctx = make_server(*bc.cred, version);
    wire_pipe p(42);
    {
      auto cctx = make_client(verify_mode::required);
      channel c = client_for(cctx);
      channel s = server_of(sctx);
      const outcome o = run_handshake(c, s, p);
      CHECK(o.client == handshake_status::failed);
      CHECK(o.server == handshake_status::failed);
      CHECK(c.error() == bc.code);
      CHECK(std::string(c.error_text()).find(bc.text) != std::string::npos);
      CHECK(std::string(c.error_text()).find("certificate verify failed") != std::string::npos);
      // The server learns it from the client's alert.
      CHECK(s.error() == tls_errc::handshake_failed);
      CHECK_FALSE(s.error_text().empty());
      CHECK_FALSE(c.established());
      CHECK(c.handshake() == handshake_status::failed);  // sticky
      CHECK(c.write("MAIL FROM:<a@b>\r\n").error() == bc.code);
      CHECK(c.info().version.empty());
    }
    {
      auto cctx = make_client(verify_mode::opportunistic);
      channel c = client_for(cctx);
      channel s = server_of(sctx);
      const outcome o = run_handshake(c, s, p);
      INFO(c.error_text());
      REQUIRE(o.client == handshake_status::done);
      REQUIRE(o.server == handshake_status::done);
      CHECK(c.verification().checked);
      CHECK_FALSE(c.verification().passed);
      CHECK(c.verification().code == bc.x509);
      CHECK(std::string(c.verification().reason).find(bc.text) != std::string::npos);
      CHECK_FALSE(c.info().peer_verified);
      CHECK(c.info().peer_name.empty());
      CHECK(c.verified_peer_name().empty());
      const auto got = exchange(c, s, "EHLO x\r\n", "250 ok\r\n", p);
      CHECK(got.first == "EHLO x\r\n");
      CHECK(got.second == "250 ok\r\n");
    }
  }
}

TEST_CASE("opportunistic mode with a good certificate reports it verified", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client(verify_mode::opportunistic);
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(8);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  CHECK(c.verification().passed);
  CHECK(c.info().peer_verified);
  CHECK(c.info().peer_name == pki::host);
}

TEST_CASE("a client using the system store does not trust the test CA", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client(verify_mode::required, tls_version::tls1_3, false);
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(9);
  CHECK(run_handshake(c, s, p).client == handshake_status::failed);
  CHECK(c.error() == tls_errc::certificate_untrusted);
}

TEST_CASE("garbage or early application data fails the handshake, never crashes", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  SECTION("plaintext SMTP to a server channel") {
    channel s = server_of(sctx);
    CHECK(s.receive_ciphertext("EHLO evil.test\r\nMAIL FROM:<a@b>\r\n") > 0);
    CHECK(s.handshake() == handshake_status::failed);
    CHECK(s.error() == tls_errc::handshake_failed);
    CHECK_FALSE(s.error_text().empty());
    // Further input is taken and dropped; the error stays.
    CHECK(s.receive_ciphertext("more") == 4);
    CHECK(s.handshake() == handshake_status::failed);
  }
  SECTION("an application data record before the handshake") {
    // A TLS 1.2-framed application_data record (type 23) as first flight.
    const std::string rec("\x17\x03\x03\x00\x05hello", 10);
    channel s = server_of(sctx);
    s.receive_ciphertext(rec);
    CHECK(s.handshake() == handshake_status::failed);
    auto cctx = make_client();
    channel c = client_for(cctx);
    CHECK(c.handshake() == handshake_status::in_progress);
    c.consume_ciphertext(c.ciphertext_out().size());
    c.receive_ciphertext(rec);
    CHECK(c.handshake() == handshake_status::failed);
    CHECK(c.error() == tls_errc::handshake_failed);
  }
}

TEST_CASE("API misuse is api_bad_state, not a peer error", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  char buf[16];
  CHECK(c.write("x").error() == tls_errc::api_bad_state);
  CHECK(c.read(buf, sizeof buf).error() == tls_errc::api_bad_state);
  CHECK_FALSE(c.error());  // not sticky
  wire_pipe p(3);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  c.shutdown();
  CHECK(c.shutdown_sent());
  CHECK(c.write("x").error() == tls_errc::api_bad_state);
  auto zero = c.write("");
  REQUIRE_FALSE(zero);  // after shutdown even an empty write is refused
  // consume_ciphertext clamps.
  c.consume_ciphertext(1u << 30);
  CHECK(c.ciphertext_out().empty());
}

// ---------------------------------------------------------------------------
// Data, close_notify, truncation
// ---------------------------------------------------------------------------

TEST_CASE("1 MiB each way at once arrives byte-exact", "[channel]") {
  const auto version = GENERATE(tls_version::tls1_3, tls_version::tls1_2);
  const auto seed = GENERATE(21u, 22u);
  auto sctx = make_server(pki::get().valid, version);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(seed, 40000);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  const std::string up = random_bytes(1 << 20, seed);
  const std::string down = random_bytes(1 << 20, seed + 100);
  const auto got = exchange(c, s, up, down, p);
  CHECK(got.first.size() == up.size());
  CHECK(got.first == up);
  CHECK(got.second.size() == down.size());
  CHECK(got.second == down);
}

TEST_CASE("write stops while too much ciphertext waits; receive takes what fits", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(4);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  const std::string big(channel::max_buffered_ciphertext * 2, 'a');
  auto r1 = c.write(big);
  REQUIRE(r1);
  CHECK(*r1 == channel::max_buffered_ciphertext);
  auto r2 = c.write(big);
  REQUIRE(r2);
  CHECK(*r2 == 0);  // the ciphertext of the first write was not sent yet
  const std::string_view out = c.ciphertext_out();
  CHECK(out.size() > channel::max_buffered_ciphertext);
  const std::size_t taken = s.receive_ciphertext(out);
  CHECK(taken == channel::max_buffered_ciphertext);
  c.consume_ciphertext(taken);
  std::string got;
  REQUIRE_FALSE(drain(s, got));
  CHECK(s.receive_ciphertext(c.ciphertext_out()) == c.ciphertext_out().size());
  c.consume_ciphertext(c.ciphertext_out().size());
  REQUIRE_FALSE(drain(s, got));
  CHECK(got == std::string(channel::max_buffered_ciphertext, 'a'));
}

TEST_CASE("close_notify both ways is an orderly end", "[channel]") {
  const auto version = GENERATE(tls_version::tls1_3, tls_version::tls1_2);
  auto sctx = make_server(pki::get().valid, version);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(31, 50);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  REQUIRE(c.write("QUIT\r\n"));
  c.shutdown();
  while (p.move(c, s)) {
  }
  std::string got;
  CHECK(drain(s, got) == tls_errc::closed);
  CHECK(got == "QUIT\r\n");
  CHECK(s.peer_closed());
  CHECK_FALSE(s.error());
  // The server may still answer after the client's close_notify.
  REQUIRE(s.write("221 bye\r\n"));
  s.shutdown();
  while (p.move(s, c)) {
  }
  std::string back;
  CHECK(drain(c, back) == tls_errc::closed);
  CHECK(back == "221 bye\r\n");
  CHECK(c.peer_closed());
  CHECK_FALSE(c.transport_eof());
  CHECK_FALSE(s.transport_eof());
  char buf[4];
  CHECK(c.read(buf, sizeof buf).error() == tls_errc::closed);
}

TEST_CASE("EOF without close_notify is truncation, never an end", "[channel]") {
  const auto version = GENERATE(tls_version::tls1_3, tls_version::tls1_2);
  auto sctx = make_server(pki::get().valid, version);
  auto cctx = make_client();
  wire_pipe p(61);
  SECTION("after whole records: the plaintext is kept, then truncated") {
    channel c = client_for(cctx);
    channel s = server_of(sctx);
    REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
    REQUIRE(s.write("250 first\r\n"));
    REQUIRE(s.write("250 second\r\n"));
    while (p.move(s, c)) {
    }
    CHECK(c.transport_eof() == tls_errc::truncated);
    CHECK(c.transport_eof() == tls_errc::truncated);  // same answer again
    std::string got;
    CHECK(drain(c, got) == tls_errc::truncated);
    CHECK(got == "250 first\r\n250 second\r\n");
    CHECK(c.error() == tls_errc::truncated);
    CHECK_FALSE(c.peer_closed());
    CHECK(c.receive_ciphertext("late") == 4);  // failed: dropped
  }
  SECTION("in the middle of a record") {
    channel c = client_for(cctx);
    channel s = server_of(sctx);
    REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
    REQUIRE(s.write(std::string(5000, 'x')));
    const std::string_view out = s.ciphertext_out();
    c.receive_ciphertext(out.substr(0, out.size() / 2));
    std::string got;
    CHECK_FALSE(drain(c, got));
    CHECK(got.empty());
    CHECK(c.transport_eof() == tls_errc::truncated);
    CHECK(drain(c, got) == tls_errc::truncated);
    CHECK(got.empty());
    CHECK(std::string(c.error_text()).find("close_notify") != std::string::npos);
  }
  SECTION("close_notify already received before EOF is not truncation") {
    channel c = client_for(cctx);
    channel s = server_of(sctx);
    REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
    REQUIRE(s.write("221 bye\r\n"));
    s.shutdown();
    while (p.move(s, c)) {
    }
    // Not read yet: transport_eof() finds the close_notify itself and keeps
    // the plaintext before it.
    CHECK_FALSE(c.transport_eof());
    std::string got;
    CHECK(drain(c, got) == tls_errc::closed);
    CHECK(got == "221 bye\r\n");
  }
  SECTION("during the handshake") {
    channel c = client_for(cctx);
    channel s = server_of(sctx);
    CHECK(c.handshake() == handshake_status::in_progress);
    while (p.move(c, s)) {
    }
    CHECK(s.handshake() == handshake_status::in_progress);
    CHECK(s.transport_eof() == tls_errc::truncated);
    CHECK(s.handshake() == handshake_status::failed);
    CHECK(s.error() == tls_errc::truncated);
  }
  SECTION("the last flight arrives with the EOF: the handshake completes first") {
    // TLS 1.3: the client's Finished is the last flight (in TLS 1.2 the
    // server's is).
    auto cctx13 = make_client();
    auto sctx13 = make_server(pki::get().valid, tls_version::tls1_3);
    channel c = client_for(cctx13);
    channel s = server_of(sctx13);
    c.handshake();
    for (int i = 0; i < 10; ++i) {
      while (p.move(c, s)) {
      }
      if (c.established()) break;
      s.handshake();
      while (p.move(s, c)) {
      }
      c.handshake();
    }
    REQUIRE(c.established());
    REQUIRE(c.write("QUIT\r\n"));
    c.shutdown();
    while (p.move(c, s)) {
    }
    // The server never called handshake() on the client's Finished.
    CHECK_FALSE(s.established());
    CHECK_FALSE(s.transport_eof());
    CHECK(s.established());
    std::string got;
    CHECK(drain(s, got) == tls_errc::closed);
    CHECK(got == "QUIT\r\n");
  }
}

// ---------------------------------------------------------------------------
// Renegotiation
// ---------------------------------------------------------------------------

TEST_CASE("TLS 1.2 renegotiation is refused, from either side", "[channel]") {
  auto sctx = make_server(pki::get().valid, tls_version::tls1_2);
  auto cctx = make_client(verify_mode::required, tls_version::tls1_2);
  wire_pipe p(71);
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  REQUIRE(c.info().version == "TLSv1.2");
  // `attacker` renegotiates through the escape hatch; `victim` must refuse.
  const bool client_starts = GENERATE(true, false);
  channel& attacker = client_starts ? c : s;
  channel& victim = client_starts ? s : c;
  SSL* a = attacker.native();
  SSL_clear_options(a, SSL_OP_NO_RENEGOTIATION);
  if (!client_starts) SSL_set_options(a, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
  REQUIRE(SSL_renegotiate(a) == 1);
  (void)SSL_do_handshake(a);  // queues the ClientHello / HelloRequest
  ERR_clear_error();
  REQUIRE_FALSE(attacker.ciphertext_out().empty());
  while (p.move(attacker, victim)) {
  }
  std::string got;
  CHECK(drain(victim, got) == tls_errc::renegotiation_refused);
  CHECK(victim.error() == tls_errc::renegotiation_refused);
  CHECK(victim.write("x").error() == tls_errc::renegotiation_refused);
}

// ---------------------------------------------------------------------------
// Error isolation
// ---------------------------------------------------------------------------

TEST_CASE("one channel's OpenSSL errors never leak into another's", "[channel]") {
  auto good_ctx = make_server(pki::get().valid);
  auto bad_ctx = make_server(pki::get().expired);
  auto cctx = make_client();
  wire_pipe p(81);
  channel c1 = client_for(cctx);
  channel s1 = server_of(bad_ctx);
  channel c2 = client_for(cctx);
  channel s2 = server_of(good_ctx);
  // Interleave the two sessions step by step on one thread.
  c1.handshake();
  c2.handshake();
  for (int i = 0; i < 50; ++i) {
    p.move(c1, s1);
    s1.handshake();
    p.move(c2, s2);
    s2.handshake();
    p.move(s1, c1);
    c1.handshake();
    p.move(s2, c2);
    c2.handshake();
  }
  CHECK(c1.error() == tls_errc::certificate_expired);
  CHECK(c2.established());
  CHECK_FALSE(c2.error());
  CHECK(ERR_peek_error() == 0);
  // Junk left in the thread's queue by someone else does not fail a call.
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET);
  REQUIRE(c2.write("hello"));
  CHECK(ERR_peek_error() == 0);
  p.move(c2, s2);
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_PACKET);
  std::string got;
  CHECK_FALSE(drain(s2, got));
  CHECK(got == "hello");
  CHECK(ERR_peek_error() == 0);
}

TEST_CASE("a corrupted record is a protocol_error with OpenSSL's reason", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client();
  channel c = client_for(cctx);
  channel s = server_of(sctx);
  wire_pipe p(91);
  REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
  std::string got;
  REQUIRE_FALSE(drain(c, got));  // take the tickets
  REQUIRE(c.write("DATA\r\n"));
  std::string rec(c.ciphertext_out());
  c.consume_ciphertext(rec.size());
  rec[rec.size() - 3] = static_cast<char>(rec[rec.size() - 3] ^ 0x40);
  s.receive_ciphertext(rec);
  CHECK(drain(s, got) == tls_errc::protocol_error);
  CHECK(std::string(s.error_text()).find("bad record mac") != std::string::npos);
  CHECK_FALSE(s.ciphertext_out().empty());  // the fatal alert to send
}

// ---------------------------------------------------------------------------
// DANE (RFC 7672)
// ---------------------------------------------------------------------------

TEST_CASE("DANE-EE 3 1 1 matches the server's key, without PKIX or name checks",
          "[channel][dane]") {
  const auto& k = pki::get();
  // Trust nothing of ours: DANE alone authenticates.
  auto cctx = make_client(verify_mode::required, tls_version::tls1_3, false);
  const pki::credential* cred =
      GENERATE(&pki::get().valid, &pki::get().self_signed, &pki::get().wrong_name);
  auto sctx = make_server(*cred);
  peer_identity peer{pki::host, {}, {}};
  peer.tlsa.push_back(tlsa_record{3, 1, 1, tlsa_bytes(k.renewed.cert_pem, 1, 1)});  // no match
  peer.tlsa.push_back(tlsa_record{3, 1, 1, tlsa_bytes(cred->cert_pem, 1, 1)});
  channel c = client_for(cctx, peer);
  channel s = server_of(sctx);
  wire_pipe p(101);
  const outcome o = run_handshake(c, s, p);
  INFO(c.error_text());
  REQUIRE(o.client == handshake_status::done);
  CHECK(c.info().peer_verified);
  const auto d = c.dane();
  CHECK(d.enabled);
  CHECK(d.usable == 2);
  CHECK(d.matched);
  CHECK(d.depth == 0);
  CHECK(d.record == 1);
  CHECK(d.usage == 3);
  CHECK(d.selector == 1);
  CHECK(d.mtype == 1);
  CHECK(c.verified_peer_name().empty());  // RFC 7672 §3.1.1: no name check
  CHECK(s.server_name() == pki::host);    // SNI still sent
  // DANE sessions are not cached: each handshake gets a DANE result.
  CHECK(cctx.cached_sessions() == 0);
}

TEST_CASE("DANE-TA matches the test CA, with the name checked", "[channel][dane]") {
  const auto& k = pki::get();
  auto cctx = make_client(verify_mode::required, tls_version::tls1_3, false);
  struct ta_case {
    int selector, mtype;
  };
  const auto tc = GENERATE(ta_case{0, 1}, ta_case{1, 1}, ta_case{0, 2});
  INFO("2 " << tc.selector << " " << tc.mtype);
  auto sctx = make_server(k.chained);  // chain: leaf + intermediate
  peer_identity peer{pki::host, {}, {}};
  peer.tlsa.push_back(tlsa_record{2, static_cast<std::uint8_t>(tc.selector),
                                  static_cast<std::uint8_t>(tc.mtype),
                                  tlsa_bytes(k.intermediate.cert_pem, tc.selector, tc.mtype)});
  wire_pipe p(111);
  {
    channel c = client_for(cctx, peer);
    channel s = server_of(sctx);
    const outcome o = run_handshake(c, s, p);
    INFO(c.error_text());
    REQUIRE(o.client == handshake_status::done);
    CHECK(c.dane().matched);
    CHECK(c.dane().depth == 1);
    CHECK(c.dane().record == 0);
    CHECK(c.dane().usage == 2);
    CHECK(c.verified_peer_name() == pki::host);
  }
  {
    // The TA matches but the name does not.
    peer_identity other = peer;
    other.host = "elsewhere.example.test";
    channel c = client_for(cctx, other);
    channel s = server_of(sctx);
    CHECK(run_handshake(c, s, p).client == handshake_status::failed);
    CHECK(c.error() == tls_errc::hostname_mismatch);
  }
}

TEST_CASE("DANE-TA 2 0 0 supplies a root the server does not send", "[channel][dane]") {
  const auto& k = pki::get();
  auto cctx = make_client(verify_mode::required, tls_version::tls1_3, false);
  auto sctx = make_server(k.valid);  // sends the leaf only
  peer_identity peer{pki::host, {}, {}};
  peer.tlsa.push_back(tlsa_record{2, 0, 0, tlsa_bytes(k.root.cert_pem, 0, 0)});
  channel c = client_for(cctx, peer);
  channel s = server_of(sctx);
  wire_pipe p(121);
  const outcome o = run_handshake(c, s, p);
  INFO(c.error_text());
  REQUIRE(o.client == handshake_status::done);
  CHECK(c.dane().matched);
  CHECK(c.dane().depth == 1);
}

TEST_CASE("non-matching TLSA records fail with dane_mismatch", "[channel][dane]") {
  const auto& k = pki::get();
  auto sctx = make_server(k.valid);
  wire_pipe p(131);
  peer_identity peer{pki::host, {}, {}};
  peer.tlsa.push_back(tlsa_record{3, 1, 1, tlsa_bytes(k.renewed.cert_pem, 1, 1)});
  peer.tlsa.push_back(tlsa_record{2, 1, 1, tlsa_bytes(k.intermediate.cert_pem, 1, 1)});
  SECTION("required: the handshake fails, even though PKIX would pass") {
    auto cctx = make_client(verify_mode::required);
    channel c = client_for(cctx, peer);
    channel s = server_of(sctx);
    CHECK(run_handshake(c, s, p).client == handshake_status::failed);
    CHECK(c.error() == tls_errc::dane_mismatch);
    CHECK_FALSE(c.dane().matched);
  }
  SECTION("opportunistic: done, reported") {
    auto cctx = make_client(verify_mode::opportunistic);
    channel c = client_for(cctx, peer);
    channel s = server_of(sctx);
    REQUIRE(run_handshake(c, s, p).client == handshake_status::done);
    CHECK(c.verification().code == X509_V_ERR_DANE_NO_MATCH);
    CHECK_FALSE(c.info().peer_verified);
    CHECK_FALSE(c.dane().matched);
  }
  SECTION("unusable records only: DANE does not apply, PKIX decides (RFC 7672 §2.2)") {
    auto cctx = make_client();
    peer_identity odd{pki::host, {}, {}};
    odd.tlsa.push_back(tlsa_record{3, 1, 1, "short"});  // SHA2-256 data is 32 octets
    odd.tlsa.push_back(tlsa_record{3, 0, 0, "not a DER certificate"});
    odd.tlsa.push_back(tlsa_record{3, 1, 9, "unknown matching type"});
    odd.tlsa.push_back(tlsa_record{1, 1, 1, tlsa_bytes(k.valid.cert_pem, 1, 1)});  // PKIX-EE
    channel c = client_for(cctx, odd);
    CHECK(c.dane().enabled);
    CHECK(c.dane().usable == 0);  // and PKIX-EE(1) is not usable for SMTP (RFC 7672 §3.1.3)
    channel s = server_of(sctx);
    const outcome o = run_handshake(c, s, p);
    INFO(c.error_text());
    REQUIRE(o.client == handshake_status::done);
    CHECK(c.info().peer_verified);
    CHECK_FALSE(c.dane().matched);
  }
}

// ---------------------------------------------------------------------------
// Many sessions (LeakSanitizer)
// ---------------------------------------------------------------------------

TEST_CASE("a server channel makes its SSL object at first use", "[channel]") {
  auto sctx = make_server(pki::get().valid);
  auto cctx = make_client();
  SECTION("unused, it holds no OpenSSL state and answers without making any") {
    std::vector<channel> idle;
#ifdef __GLIBC__
    const std::size_t before = mallinfo2().uordblks;
#endif
    for (int i = 0; i < 256; ++i)
      idle.push_back(server_of(sctx));
#ifdef __GLIBC__
    // An SSL object with its BIOs is several KiB (about 9 with OpenSSL 3).
    const std::size_t per = (mallinfo2().uordblks - before) / idle.size();
    INFO(per << " octets per unused server channel");
    CHECK(per < 1024);
#endif
    for (channel& s : idle) {
      CHECK(s.ciphertext_out().empty());
      s.consume_ciphertext(10);
      CHECK_FALSE(s.peer_closed());
      CHECK_FALSE(s.established());
      CHECK_FALSE(s.error());
      CHECK(s.write("x").error() == tls_errc::api_bad_state);
    }
    // Destroyed unused (the SSL_CTX reference is released: LSan checks).
  }
  SECTION("native() makes it") {
    channel s = server_of(sctx);
    SSL* ssl = s.native();
    REQUIRE(ssl != nullptr);
    CHECK(SSL_is_server(ssl) == 1);
    CHECK(s.native() == ssl);
    channel c = client_for(cctx);
    wire_pipe p(91);
    CHECK(run_handshake(c, s, p).server == handshake_status::done);
  }
  SECTION("a transport EOF before any ciphertext is a truncated handshake") {
    channel s = server_of(sctx);
    CHECK(s.transport_eof() == tls_errc::truncated);
    CHECK(s.error() == tls_errc::truncated);
    CHECK(s.handshake() == handshake_status::failed);
    CHECK(s.transport_eof() == tls_errc::truncated);  // the same answer again
  }
  SECTION("made late, after the channel moved, it serves a whole session") {
    channel first = server_of(sctx);
    channel s = std::move(first);
    channel c = client_for(cctx);
    wire_pipe p(92);
    REQUIRE(run_handshake(c, s, p).server == handshake_status::done);
    const auto got = exchange(c, s, "EHLO a\r\n", "250 b\r\n", p);
    CHECK(got.first == "EHLO a\r\n");
    CHECK(got.second == "250 b\r\n");
  }
}

TEST_CASE("thousands of sessions, good and bad, leave nothing behind", "[channel][slow]") {
  const auto& k = pki::get();
  auto good = make_server(k.valid);
  auto bad = make_server(k.expired);
  auto cctx = make_client();
  std::mt19937 rng(2024);
  int done = 0, failed = 0, truncated = 0;
  for (int i = 0; i < 2000; ++i) {
    const unsigned kind = rng() % 4;
    wire_pipe p(static_cast<std::uint32_t>(i), 20000);
    channel c = client_for(cctx);
    channel s = server_of(kind == 1 ? bad : good);
    const outcome o = run_handshake(c, s, p);
    if (kind == 1) {
      failed += o.client == handshake_status::failed;
      continue;
    }
    REQUIRE(o.client == handshake_status::done);
    const auto got = exchange(c, s, "EHLO a\r\n", "250 b\r\n", p);
    REQUIRE(got.first == "EHLO a\r\n");
    if (kind == 2) {
      truncated += c.transport_eof() == tls_errc::truncated;
      continue;
    }
    c.shutdown();
    s.shutdown();
    ++done;
  }
  CHECK(done + failed + truncated == 2000);
  CHECK(failed > 400);
  CHECK(truncated > 400);
}
