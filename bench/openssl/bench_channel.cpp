// smtpwire::openssl::channel against bare OpenSSL over memory BIOs, in the
// same binary and on the very same SSL_CTX objects (the contexts' native()),
// so the only difference measured is the channel itself.
//
//   BM_bare_handshake     SSL_new x2, two memory BIOs each, SNI + host check,
//                         SSL_do_handshake until both are done, SSL_free.
//   BM_channel_handshake  channel::client + channel::server, handshake() and
//                         ciphertext_out()/receive_ciphertext() until done.
//     (TLS 1.3 only, X25519 only, ECDSA P-256 certificate, full handshakes:
//     client session resumption off; items_per_second = handshakes/s.)
//   BM_bare_bulk          64 KiB SSL_write, ciphertext moved with BIO_read +
//                         BIO_write, SSL_read until all 64 KiB are back.
//   BM_channel_bulk       the same through an established pair of channels.
//
// Each pair's results are checked (handshake done, bytes equal) before it is
// timed. Read the ratios BM_channel_* / BM_bare_* of items_per_second and
// bytes_per_second from one run (goal: >= 0.9).
#include <smtpwire/openssl/channel.hpp>

#include <benchmark/benchmark.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "../../tests/openssl/support/pki.hpp"

namespace {

using namespace smtpwire::openssl;
namespace pki = smtpwire_test::pki;

constexpr std::size_t kBulk = 64 * 1024;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bench_channel: %s\n", what);
    std::abort();
  }
}

struct contexts {
  server_context server;
  client_context client;
};

// One pair of contexts for the whole run: TLS 1.3, X25519, no resumption.
contexts& ctxs() {
  static contexts* c = [] {
    const auto& k = pki::get();
    server_tls_options so;
    so.cert_file = k.valid.cert_file;
    so.key_file = k.valid.key_file;
    so.min_version = tls_version::tls1_3;
    so.groups = "X25519";
    client_tls_options co;
    co.ca_file = k.ca_file;
    co.min_version = tls_version::tls1_3;
    co.groups = "X25519";
    co.session_resumption = false;
    auto s = server_context::create(so);
    auto cl = client_context::create(co);
    check(s && cl, "contexts");
    return new contexts{std::move(*s), std::move(*cl)};
  }();
  return *c;
}

// ---------------------------------------------------------------------------
// Bare OpenSSL
// ---------------------------------------------------------------------------

struct bare_pair {
  SSL* c = nullptr;
  SSL* s = nullptr;
  bare_pair() {
    c = SSL_new(ctxs().client.native());
    s = SSL_new(ctxs().server.native());
    SSL_set_bio(c, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(s, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, pki::host);
    SSL_set1_host(c, pki::host);
  }
  ~bare_pair() {
    SSL_free(c);
    SSL_free(s);
  }
  bare_pair(const bare_pair&) = delete;
  bare_pair& operator=(const bare_pair&) = delete;
};

// Moves all pending ciphertext from `from`'s write BIO to `to`'s read BIO.
bool bare_move(SSL* from, SSL* to, char* buf, std::size_t cap) {
  bool moved = false;
  for (;;) {
    const int n = BIO_read(SSL_get_wbio(from), buf, static_cast<int>(cap));
    if (n <= 0) return moved;
    BIO_write(SSL_get_rbio(to), buf, n);
    moved = true;
  }
}

bool bare_handshake(bare_pair& p, char* buf, std::size_t cap) {
  bool cd = false, sd = false;
  for (int i = 0; i < 100 && !(cd && sd); ++i) {
    if (!cd) cd = SSL_do_handshake(p.c) == 1;
    bare_move(p.c, p.s, buf, cap);
    if (!sd) sd = SSL_do_handshake(p.s) == 1;
    bare_move(p.s, p.c, buf, cap);
  }
  return cd && sd && SSL_get_verify_result(p.c) == X509_V_OK;
}

void BM_bare_handshake(benchmark::State& state) {
  std::unique_ptr<char[]> buf(new char[kBulk]);
  {
    bare_pair p;
    check(bare_handshake(p, buf.get(), kBulk), "bare handshake");
    check(std::strcmp(SSL_get_version(p.c), "TLSv1.3") == 0, "bare version");
  }
  for (auto _ : state) {
    bare_pair p;
    benchmark::DoNotOptimize(bare_handshake(p, buf.get(), kBulk));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_bare_handshake)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------

void channel_move(channel& from, channel& to) {
  const std::string_view out = from.ciphertext_out();
  if (out.empty()) return;
  const std::size_t n = to.receive_ciphertext(out);
  from.consume_ciphertext(n);
}

bool channel_handshake(channel& c, channel& s) {
  handshake_status cs = handshake_status::in_progress, ss = handshake_status::in_progress;
  for (int i = 0; i < 100; ++i) {
    cs = c.handshake();
    channel_move(c, s);
    ss = s.handshake();
    channel_move(s, c);
    if (cs != handshake_status::in_progress && ss != handshake_status::in_progress) break;
  }
  return cs == handshake_status::done && ss == handshake_status::done;
}

const peer_identity& peer() {
  static const peer_identity p{pki::host, {}, {}};
  return p;
}

void BM_channel_handshake(benchmark::State& state) {
  auto& k = ctxs();
  {
    auto c = channel::client(k.client, peer());
    auto s = channel::server(k.server);
    check(c && s && channel_handshake(*c, *s), "channel handshake");
    check(c->info().version == "TLSv1.3" && c->info().peer_verified, "channel facts");
  }
  for (auto _ : state) {
    auto c = channel::client(k.client, peer());
    auto s = channel::server(k.server);
    benchmark::DoNotOptimize(channel_handshake(*c, *s));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_channel_handshake)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------

std::string payload() {
  std::string p(kBulk, '\0');
  for (std::size_t i = 0; i < p.size(); ++i)
    p[i] = static_cast<char>('A' + i % 53);
  return p;
}

// One 64 KiB transfer client -> server; returns the octets read.
std::size_t bare_transfer(bare_pair& p, const std::string& data, char* wire, char* plain) {
  std::size_t written = 0;
  check(SSL_write_ex(p.c, data.data(), data.size(), &written) == 1, "SSL_write");
  bare_move(p.c, p.s, wire, 2 * kBulk);
  std::size_t got = 0, n = 0;
  while (got < data.size() && SSL_read_ex(p.s, plain + got, data.size() - got, &n) == 1)
    got += n;
  return got;
}

void BM_bare_bulk(benchmark::State& state) {
  const std::string data = payload();
  std::unique_ptr<char[]> wire(new char[2 * kBulk]);
  std::unique_ptr<char[]> plain(new char[kBulk]);
  bare_pair p;
  check(bare_handshake(p, wire.get(), 2 * kBulk), "bare handshake");
  check(bare_transfer(p, data, wire.get(), plain.get()) == kBulk, "bare transfer");
  check(std::memcmp(plain.get(), data.data(), kBulk) == 0, "bare bytes");
  for (auto _ : state)
    benchmark::DoNotOptimize(bare_transfer(p, data, wire.get(), plain.get()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBulk));
}
BENCHMARK(BM_bare_bulk);

std::size_t channel_transfer(channel& c, channel& s, const std::string& data, char* plain) {
  auto w = c.write(data);
  check(w && *w == data.size(), "channel write");
  channel_move(c, s);
  std::size_t got = 0;
  while (got < data.size()) {
    auto r = s.read(plain + got, data.size() - got);
    if (!r || *r == 0) break;
    got += *r;
  }
  return got;
}

void BM_channel_bulk(benchmark::State& state) {
  const std::string data = payload();
  std::unique_ptr<char[]> plain(new char[kBulk]);
  auto c = channel::client(ctxs().client, peer());
  auto s = channel::server(ctxs().server);
  check(c && s && channel_handshake(*c, *s), "channel handshake");
  check(channel_transfer(*c, *s, data, plain.get()) == kBulk, "channel transfer");
  check(std::memcmp(plain.get(), data.data(), kBulk) == 0, "channel bytes");
  for (auto _ : state)
    benchmark::DoNotOptimize(channel_transfer(*c, *s, data, plain.get()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBulk));
}
BENCHMARK(BM_channel_bulk);

}  // namespace
