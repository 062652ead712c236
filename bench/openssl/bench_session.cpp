// tls_session in memory, each beside bare OpenSSL over memory BIOs in the
// same binary, with the same SSL_CTX objects (same certificate, key, TLS
// 1.3, X25519):
//  - BM_session_starttls: one whole SMTP session per iteration (greeting,
//    EHLO, STARTTLS, handshake, EHLO, MAIL, RCPT, DATA with a 1 KiB
//    message, QUIT, close_notify both ways) — client and server engines,
//    each behind a tls_session, on fresh channels;
//    BM_bare_handshake: one TLS handshake per iteration on fresh SSL
//    objects. x_bare = sessions/s ÷ handshakes/s (goal >= 0.9).
//    BM_channel_handshake: the same handshake through two channels without
//    engines (the channel's own cost).
//  - BM_session_content: 256 KiB of message content per iteration through
//    an established session (client send_content → dot-stuffing →
//    encryption → decryption → the server's DATA decoder → content
//    events); BM_bare_bulk: the same octets with SSL_write / SSL_read.
//    Goal: >= 0.9x the bare throughput. BM_engines_content: the same
//    content through the two engines joined without TLS (what the engines
//    cost on their own, to read the ratio against). BM_session_content
//    also measures both in the same function and reports x_bare and
//    x_bare_plus_engines (see there): both loops write 16 KiB records and
//    move each at once, so the TLS work is the same and the difference is
//    the SMTP work plus the glue.
// Session resumption is off on both sides (a fresh full handshake each
// time) so the two loops do the same cryptography.
#include <smtpwire/client.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/server.hpp>

#include <benchmark/benchmark.h>
#include <openssl/ssl.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "openssl/support/pki.hpp"

namespace {

using namespace smtpwire;
using smtpwire::openssl::channel;
using smtpwire::openssl::tls_session;

// The test PKI's valid certificate; resumption off on the client so every
// handshake is a full one, as in the bare loop, which uses the same SSL_CTX
// objects (native()).
struct tls_fixture {
  openssl::client_context client;
  openssl::server_context server;
};

tls_fixture& fixture() {
  static tls_fixture* f = [] {
    const auto& p = smtpwire_test::pki::get();
    openssl::client_tls_options co;
    co.ca_file = p.ca_file;
    co.session_resumption = false;
    openssl::server_tls_options so;
    so.cert_file = p.valid.cert_file;
    so.key_file = p.valid.key_file;
    auto c = openssl::client_context::create(co);
    auto s = openssl::server_context::create(so);
    if (!c || !s) std::abort();
    return new tls_fixture{std::move(*c), std::move(*s)};
  }();
  return *f;
}

SSL_CTX* native_client_ctx(tls_fixture& f) {
  return f.client.native();
}
SSL_CTX* native_server_ctx(tls_fixture& f) {
  return f.server.native();
}

channel client_channel(tls_fixture& f) {
  openssl::peer_identity peer;
  peer.host = smtpwire_test::pki::host;
  auto r = channel::client(f.client, peer);
  if (!r) std::abort();
  return std::move(*r);
}

channel server_channel(tls_fixture& f) {
  auto r = channel::server(f.server);
  if (!r) std::abort();
  return std::move(*r);
}

// A 1 KiB message, and 256 KiB of content (lines of 78 octets, no dots).
std::string message_1k() {
  std::string m = "From: alice@client.example.test\r\nTo: bob@mx.example.test\r\n\r\n";
  while (m.size() < 1024 - 80)
    m += "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
  return m;
}

std::string bulk_content() {
  std::string m;
  while (m.size() < 256 * 1024)
    m += "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
  return m;
}

// ---------------------------------------------------------------------------
// Bare OpenSSL over memory BIOs
// ---------------------------------------------------------------------------

struct bare_pair {
  SSL* c = nullptr;
  SSL* s = nullptr;
  BIO* c_out = nullptr;  // client's write BIO
  BIO* s_out = nullptr;  // server's write BIO
  BIO* c_in = nullptr;
  BIO* s_in = nullptr;
  char buf[16384];

  bare_pair(SSL_CTX* cctx, SSL_CTX* sctx) {
    c = SSL_new(cctx);
    s = SSL_new(sctx);
    c_in = BIO_new(BIO_s_mem());
    c_out = BIO_new(BIO_s_mem());
    s_in = BIO_new(BIO_s_mem());
    s_out = BIO_new(BIO_s_mem());
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, "mx.example.test");
    SSL_set1_host(c, "mx.example.test");
  }
  ~bare_pair() {
    SSL_free(c);
    SSL_free(s);
  }
  bare_pair(const bare_pair&) = delete;
  bare_pair& operator=(const bare_pair&) = delete;

  // Moves every pending octet from `from` to `to`; true when one moved.
  bool move(BIO* from, BIO* to) {
    bool moved = false;
    for (;;) {
      const int n = BIO_read(from, buf, sizeof buf);
      if (n <= 0) return moved;
      BIO_write(to, buf, n);
      moved = true;
    }
  }
  bool handshake() {
    bool c_done = false, s_done = false;
    for (int round = 0; round < 64; ++round) {
      if (!c_done) c_done = SSL_do_handshake(c) == 1;
      move(c_out, s_in);
      if (!s_done) s_done = SSL_do_handshake(s) == 1;
      move(s_out, c_in);
      if (c_done && s_done) {
        // The server's session tickets: read so the client processes them,
        // as the session's client does.
        std::size_t n = 0;
        (void)SSL_read_ex(c, buf, sizeof buf, &n);
        return true;
      }
    }
    return false;
  }
};

void BM_bare_handshake(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    bare_pair p(native_client_ctx(f), native_server_ctx(f));
    if (!p.handshake()) {
      state.SkipWithError("bare handshake failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// 256 KiB client -> server in 16 KiB SSL_write calls (one full record each,
// as the session writes them), each record moved at once and read with
// SSL_read; returns the octets read. Out of line, as the other loops'
// once(), so that callgrind can count one call each
// (--toggle-collect='*bare_bulk_once*', '*content_session::once*',
// '*engines_pair::once*'): instruction counts are repeatable where
// timings on a shared machine are not.
__attribute__((noinline)) std::size_t bare_bulk_once(bare_pair& p, std::string_view content,
                                                     std::string& sink) {
  std::size_t got = 0;
  for (std::size_t at = 0; at < content.size();) {
    std::size_t w = 0;
    const std::size_t k = std::min<std::size_t>(16384, content.size() - at);
    if (SSL_write_ex(p.c, content.data() + at, k, &w) != 1) return 0;
    at += w;
    p.move(p.c_out, p.s_in);
    std::size_t n = 0;
    while (SSL_read_ex(p.s, &sink[0], sink.size(), &n) == 1)
      got += n;
  }
  return got;
}

void BM_bare_bulk(benchmark::State& state) {
  auto& f = fixture();
  bare_pair p(native_client_ctx(f), native_server_ctx(f));
  if (!p.handshake()) state.SkipWithError("bare handshake failed");
  const std::string content = bulk_content();
  std::string sink(16384, '\0');
  for (auto _ : state) {
    const std::size_t got = bare_bulk_once(p, content, sink);
    benchmark::DoNotOptimize(got);
    if (got != content.size()) state.SkipWithError("bare bulk lost octets");
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(content.size()));
}

// The channels alone (no engine, no glue): one handshake per iteration, to
// tell the channel's own cost from the engines' and the glue's.
void BM_channel_handshake(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    channel c = client_channel(f);
    channel s = server_channel(f);
    bool c_done = false, s_done = false;
    for (int round = 0; round < 64 && !(c_done && s_done); ++round) {
      c_done = c.handshake() == openssl::handshake_status::done;
      s.receive_ciphertext(c.ciphertext_out());
      c.consume_ciphertext(c.ciphertext_out().size());
      s_done = s.handshake() == openssl::handshake_status::done;
      c.receive_ciphertext(s.ciphertext_out());
      s.consume_ciphertext(s.ciphertext_out().size());
    }
    char buf[512];
    auto r = c.read(buf, sizeof buf);  // the session tickets
    benchmark::DoNotOptimize(r.has_value());
    if (!c_done || !s_done) {
      state.SkipWithError("channel handshake failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------------------
// The sessions
// ---------------------------------------------------------------------------

// Moves everything each way until nothing moves; the server accepts every
// decision, the client sends one message then QUIT.
struct session_pair {
  tls_session<client> c;
  tls_session<server> s;
  std::string_view rcpt = "bob@mx.example.test";
  std::string_view msg;
  bool sent = false;
  std::size_t content = 0;
  bool accepted = false;
  bool streaming = false;
  std::string_view to_stream;

  session_pair(const client_config& cc, channel cch, const server_config& sc, channel sch)
      : c(cc, std::move(cch)), s(sc, std::move(sch)) {}

  template <class From, class To>
  static bool move(From& from, To& to) {
    const std::string_view out = from.output();
    if (out.empty()) return false;
    const std::size_t n = to.receive(out);
    (void)from.consume_output(n);
    return n != 0;
  }
  bool pump_server() {
    bool any = false;
    for (;;) {
      const server_event e = s.next_event();
      if (std::holds_alternative<std::monostate>(e)) return any;
      any = true;
      if (auto* ct = std::get_if<content_event>(&e)) content += ct->bytes.size();
      if (s.engine().awaiting_decision()) (void)s.engine().accept();
    }
  }
  bool pump_client() {
    bool any = false;
    for (;;) {
      const client_event e = c.next_event();
      if (std::holds_alternative<std::monostate>(e)) break;
      any = true;
      if (std::holds_alternative<client_events::ready>(e)) {
        if (!sent) {
          envelope env;
          env.from = "alice@client.example.test";
          env.recipients = &rcpt;
          env.recipient_count = 1;
          (void)c.engine().send_mail(env);
          sent = true;
        } else {
          (void)c.engine().quit();
        }
      } else if (std::holds_alternative<client_events::send_content>(e)) {
        streaming = true;
        to_stream = msg;
      } else if (std::holds_alternative<client_events::message_accepted>(e)) {
        accepted = true;
      }
    }
    if (streaming) {
      if (!to_stream.empty()) {
        const auto n = c.engine().send_content(to_stream);
        if (n) to_stream.remove_prefix(*n);
      } else if (c.engine().end_content() == errc::ok) {
        streaming = false;
      }
      any = true;
    }
    return any;
  }
  // Runs until both sides are closed; false when it stalls.
  bool run() {
    for (int round = 0; round < 100000; ++round) {
      bool any = pump_server();
      any = pump_client() || any;
      any = move(c, s) || any;
      any = move(s, c) || any;
      if (c.closed() && s.closed()) return true;
      if (!any) return false;
    }
    return false;
  }
};

client_config bench_client_config() {
  client_config cc;
  cc.local_name = "client.example.test";
  cc.tls = tls_policy::required;
  return cc;
}

server_config bench_server_config() {
  server_config sc;
  sc.host_name = "mx.example.test";
  sc.tls_available = true;
  sc.policy.require_tls = true;
  sc.limits.max_message_size = ~std::uint64_t{0} >> 1;
  sc.limits.input_buffer = 16384;
  return sc;
}

void BM_session_starttls(benchmark::State& state) {
  auto& f = fixture();
  const std::string msg = message_1k();
  const client_config cc = bench_client_config();
  const server_config sc = bench_server_config();
  {  // checked before timing
    session_pair p(cc, client_channel(f), sc, server_channel(f));
    p.msg = msg;
    if (!p.run() || !p.accepted || p.content != msg.size() || p.c.tls().version != "TLSv1.3")
      state.SkipWithError("session did not complete over TLS 1.3");
  }
  for (auto _ : state) {
    session_pair p(cc, client_channel(f), sc, server_channel(f));
    p.msg = msg;
    benchmark::DoNotOptimize(p.run());
  }
  state.SetItemsProcessed(state.iterations());
}

// Thread CPU time: on this shared machine wall time also counts the time
// other processes hold the CPU; the session and its in-function baselines
// use this clock.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Best CPU seconds per call of `once` over 3 rounds of >= 20 ms each.
template <class F>
double best_seconds(F&& once) {
  double best = 1e300;
  for (int round = 0; round < 3; ++round) {
    std::size_t calls = 0;
    const double t0 = thread_seconds();
    double t1 = t0;
    do {
      once();
      ++calls;
      t1 = thread_seconds();
    } while (t1 - t0 < 0.02);
    best = std::min(best, (t1 - t0) / static_cast<double>(calls));
  }
  return best;
}

// An established TLS session in DATA: content() streams octets through the
// client's send_content, dot-stuffing, encryption, decryption and the
// server's DATA decoder to its content events.
struct content_session {
  session_pair p;
  bool ok = false;
  explicit content_session(tls_fixture& f)
      : p(bench_client_config(), client_channel(f), bench_server_config(), server_channel(f)) {
    p.msg = std::string_view();
    // Up to the send_content event: the client then streams for ever.
    for (int round = 0; round < 10000 && !p.streaming; ++round) {
      p.pump_server();
      const client_event e = p.c.next_event();
      if (std::holds_alternative<client_events::ready>(e)) {
        envelope env;
        env.from = "alice@client.example.test";
        env.recipients = &p.rcpt;
        env.recipient_count = 1;
        (void)p.c.engine().send_mail(env);
      } else if (std::holds_alternative<client_events::send_content>(e)) {
        p.streaming = true;
      }
      session_pair::move(p.c, p.s);
      session_pair::move(p.s, p.c);
    }
    ok = p.streaming && p.c.tls_active();
  }
  // True when every octet of `content` reached the server's content events.
  __attribute__((noinline)) bool once(std::string_view content) {
    const std::size_t before = p.content;
    std::string_view left = content;
    while (!left.empty()) {
      const auto n = p.c.engine().send_content(left);
      if (!n) return false;
      left.remove_prefix(*n);
      while (session_pair::move(p.c, p.s))
        p.pump_server();
      p.pump_server();
    }
    return p.content - before == content.size();
  }
};

// The same content through the two engines joined without TLS: what the
// engines themselves cost (dot-stuffing, the DATA decoder, the copies), to
// read the TLS session against.
struct engines_pair {
  client c;
  server s;
  std::string_view rcpt = "bob@mx.example.test";
  std::size_t got = 0;
  bool ok = false;

  static client_config plain_client() {
    client_config cc = bench_client_config();
    cc.tls = tls_policy::none;
    return cc;
  }
  static server_config plain_server() {
    server_config sc = bench_server_config();
    sc.tls_available = false;
    sc.policy.require_tls = false;
    return sc;
  }
  engines_pair() : c(plain_client()), s(plain_server()) {
    bool streaming = false;
    for (int round = 0; round < 1000 && !streaming; ++round) {
      pump_server();
      for (client_event e = c.next_event(); !std::holds_alternative<std::monostate>(e);
           e = c.next_event()) {
        if (std::holds_alternative<client_events::ready>(e)) {
          envelope env;
          env.from = "alice@client.example.test";
          env.recipients = &rcpt;
          env.recipient_count = 1;
          (void)c.send_mail(env);
        } else if (std::holds_alternative<client_events::send_content>(e)) {
          streaming = true;
        }
      }
      move();
    }
    ok = streaming;
  }
  void pump_server() {
    for (;;) {
      const server_event e = s.next_event();
      if (auto* ct = std::get_if<content_event>(&e)) got += ct->bytes.size();
      if (s.awaiting_decision()) {
        (void)s.accept();
        continue;
      }
      if (std::holds_alternative<std::monostate>(e)) return;
    }
  }
  bool move() {
    bool any = false;
    for (std::string_view o = c.output(); !o.empty(); o = c.output()) {
      const std::size_t n = s.receive(o);
      c.consume_output(n);
      pump_server();
      any = any || n != 0;
      if (n == 0) break;
    }
    for (std::string_view o = s.output(); !o.empty(); o = s.output()) {
      const std::size_t n = c.receive(o);
      (void)s.consume_output(n);
      any = true;
    }
    return any;
  }
  __attribute__((noinline)) bool once(std::string_view content) {
    const std::size_t before = got;
    std::string_view left = content;
    while (!left.empty()) {
      const auto n = c.send_content(left);
      if (!n) return false;
      left.remove_prefix(*n);
      move();
    }
    return got - before == content.size();
  }
};

// Counters: x_bare = bare SSL_write/SSL_read time over the session's time
// for the same octets (both measured in this function, thread CPU time);
// x_bare_plus_engines = (bare TLS + the two engines without TLS) over the
// session: what the glue (session.hpp, channel.hpp) costs on top of the
// work that must be done anyway — 1.0 means the glue is free.
void BM_session_content(benchmark::State& state) {
  auto& f = fixture();
  const std::string content = bulk_content();
  content_session cs(f);
  if (!cs.ok || !cs.once(content)) {
    state.SkipWithError("no DATA over TLS");
    return;
  }
  bare_pair bare(native_client_ctx(f), native_server_ctx(f));
  engines_pair eng;
  std::string sink(16384, '\0');
  if (!bare.handshake() || bare_bulk_once(bare, content, sink) != content.size() || !eng.ok ||
      !eng.once(content)) {
    state.SkipWithError("baselines failed");
    return;
  }
  const double t_bare = best_seconds([&] { bare_bulk_once(bare, content, sink); });
  const double t_eng = best_seconds([&] { eng.once(content); });
  const double t0 = thread_seconds();
  for (auto _ : state) {
    if (!cs.once(content)) {
      state.SkipWithError("content lost");
      return;
    }
  }
  const double t_session = (thread_seconds() - t0) / static_cast<double>(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(content.size()));
  state.counters["x_bare"] = t_bare / t_session;
  state.counters["x_bare_plus_engines"] = (t_bare + t_eng) / t_session;
}

void BM_engines_content(benchmark::State& state) {
  const std::string content = bulk_content();
  engines_pair eng;
  if (!eng.ok) state.SkipWithError("no DATA");
  for (auto _ : state) {
    if (!eng.once(content)) {
      state.SkipWithError("content lost");
      return;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(content.size()));
}

BENCHMARK(BM_bare_handshake)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_channel_handshake)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_session_starttls)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_bare_bulk)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_session_content)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_engines_content)->Unit(benchmark::kMicrosecond);

}  // namespace
