// tls_session: a client engine and a server engine, each behind a real
// OpenSSL channel, joined by a seeded randomly chunked in-memory pipe; and
// fake peers (raw bytes, or a bare channel) for the attacks on the STARTTLS
// boundary. Certificates come from tests/openssl/support/pki.hpp (a
// throwaway CA made in memory).
#include <smtpwire/client.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/server.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "openssl/support/pki.hpp"

using smtpwire::client;
using smtpwire::client_config;
using smtpwire::client_event;
using smtpwire::client_state;
using smtpwire::errc;
using smtpwire::server;
using smtpwire::server_config;
using smtpwire::server_event;
using smtpwire::tls_policy;
using smtpwire::openssl::channel;
using smtpwire::openssl::tls_errc;
using smtpwire::openssl::tls_session;
namespace ev = smtpwire::client_events;
namespace wire = smtpwire::wire;

namespace {

// ---------------------------------------------------------------------------
// Certificates and channels
// ---------------------------------------------------------------------------

namespace pki = smtpwire_test::pki;
using smtpwire::openssl::client_context;
using smtpwire::openssl::client_tls_options;
using smtpwire::openssl::peer_identity;
using smtpwire::openssl::server_context;
using smtpwire::openssl::server_tls_options;

server_context make_server_context(const pki::credential& cred) {
  server_tls_options so;
  so.cert_file = cred.cert_file;
  so.key_file = cred.key_file;
  std::string why;
  auto r = server_context::create(so, &why);
  INFO(why);
  REQUIRE(r);
  return std::move(*r);
}

// The contexts every test shares: a client trusting the test root, and
// servers with the valid certificate and with the ones that must fail.
struct tls_fixture {
  client_context client;
  server_context valid, wrong_name, untrusted, expired, self_signed;
};

tls_fixture& fixture() {
  static tls_fixture* f = [] {
    const auto& p = pki::get();
    client_tls_options co;
    co.ca_file = p.ca_file;
    auto c = client_context::create(co);
    REQUIRE(c);
    return new tls_fixture{std::move(*c),
                           make_server_context(p.valid),
                           make_server_context(p.wrong_name),
                           make_server_context(p.untrusted),
                           make_server_context(p.expired),
                           make_server_context(p.self_signed)};
  }();
  return *f;
}

channel client_channel(tls_fixture& f, const char* host = pki::host) {
  peer_identity peer;
  peer.host = host;
  auto r = channel::client(f.client, peer);
  REQUIRE(r);
  return std::move(*r);
}

channel server_channel(server_context& ctx) {
  auto r = channel::server(ctx);
  REQUIRE(r);
  return std::move(*r);
}

channel server_channel(tls_fixture& f) {
  return server_channel(f.valid);
}

// ---------------------------------------------------------------------------
// The pipe
// ---------------------------------------------------------------------------

struct chunker {
  std::mt19937 rng;
  std::size_t max_chunk;
  std::size_t pick(std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  }
};

// Moves one random chunk of `from`'s output into `to`, as a socket driver
// would: what receive() does not take stays at the front of the output.
// Appends what crossed to `log`. True when an octet moved.
template <class From, class To>
bool move_chunk(From& from, To& to, chunker& ch, std::string& log) {
  const std::string_view out = from.output();
  if (out.empty()) return false;
  const std::size_t k = std::min(out.size(), ch.pick(1, ch.max_chunk));
  const std::size_t taken = to.receive(out.substr(0, k));
  REQUIRE(taken <= k);
  log.append(out.data(), taken);
  REQUIRE(from.consume_output(taken) == errc::ok);
  return taken != 0;
}

// A peer driven by the test: raw plaintext in and out, and a bare channel
// once start_tls() is called. Same network shape as the sessions.
struct fake_peer {
  std::string in;  // plaintext received (before TLS) or decrypted (after)
  std::string out;
  std::optional<channel> tls;
  bool handshake_done = false;
  bool handshake_failed = false;

  std::size_t receive(std::string_view b) {
    if (!tls) {
      in.append(b);
      return b.size();
    }
    const std::size_t n = tls->receive_ciphertext(b);
    step();
    return n;
  }
  std::string_view output() const { return tls ? tls->ciphertext_out() : std::string_view(out); }
  errc consume_output(std::size_t n) {
    if (tls) {
      tls->consume_ciphertext(n);
    } else {
      out.erase(0, n);
    }
    return errc::ok;
  }
  void start_tls(channel c) {
    REQUIRE(out.empty());
    tls.emplace(std::move(c));
    step();
  }
  void step() {
    if (!handshake_done && !handshake_failed) {
      const auto st = tls->handshake();
      if (st == smtpwire::openssl::handshake_status::done) handshake_done = true;
      if (st == smtpwire::openssl::handshake_status::failed) handshake_failed = true;
    }
    if (!handshake_done) return;
    char buf[4096];
    for (;;) {
      auto r = tls->read(buf, sizeof buf);
      if (!r || *r == 0) return;
      in.append(buf, *r);
    }
  }
  void send(std::string_view s) {
    if (!tls) {
      out.append(s);
      return;
    }
    REQUIRE(handshake_done);
    auto r = tls->write(s);
    REQUIRE(r);
    REQUIRE(*r == s.size());
  }
  // True once `in` holds `text`; drops everything up to its end.
  bool take(std::string_view text) {
    const std::size_t at = in.find(text);
    if (at == std::string::npos) return false;
    in.erase(0, at + text.size());
    return true;
  }
  // True once `in` holds a line starting with `code_sp`; drops everything
  // up to its end.
  bool take_reply(std::string_view code_sp) {
    for (std::size_t at = 0; at < in.size();) {
      const std::size_t eol = in.find("\r\n", at);
      if (eol == std::string::npos) return false;
      if (in.compare(at, code_sp.size(), code_sp) == 0) {
        in.erase(0, eol + 2);
        return true;
      }
      at = eol + 2;
    }
    return false;
  }
};

// ---------------------------------------------------------------------------
// Client and server sessions over the pipe
// ---------------------------------------------------------------------------

std::string normalised(std::string_view m) {
  std::string out;
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r') {
      if (i + 1 < m.size() && m[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (m[i] == '\n') {
      out += "\r\n";
    } else {
      out += m[i];
    }
  }
  if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0))
    out += "\r\n";
  return out;
}

struct message {
  std::string from;
  std::string rcpt;
  std::string content;
};

// What the server application saw.
struct server_log {
  std::vector<std::string> mail_from;
  std::vector<std::string> contents;  // accepted messages, as received
  std::string current;
  bool in_content = false;
  std::size_t data_end_ok = 0;
  std::size_t starttls = 0;
  std::size_t discarded = 0;
  bool closed = false;
  smtpwire::close_reason reason = smtpwire::close_reason::quit;
  bool tls_at_mail = true;  // every MAIL came over TLS
};

void pump_server(tls_session<server>& s, server_log& log) {
  for (;;) {
    const server_event e = s.next_event();
    if (std::holds_alternative<std::monostate>(e)) return;
    server& eng = s.engine();
    if (auto* m = std::get_if<smtpwire::mail_event>(&e)) {
      log.mail_from.push_back(std::string(m->reverse_path.address.local_part) + "@" +
                              std::string(m->reverse_path.address.domain));
      log.tls_at_mail = log.tls_at_mail && eng.tls_active();
      REQUIRE(eng.accept() == errc::ok);
    } else if (std::holds_alternative<smtpwire::data_start_event>(e)) {
      log.current.clear();
      log.in_content = true;
      REQUIRE(eng.accept() == errc::ok);
    } else if (auto* c = std::get_if<smtpwire::content_event>(&e)) {
      log.current.append(c->bytes);
    } else if (auto* d = std::get_if<smtpwire::data_end_event>(&e)) {
      log.in_content = false;
      if (d->error == errc::ok) {
        ++log.data_end_ok;
        log.contents.push_back(log.current);
        REQUIRE(eng.accept() == errc::ok);
      }
    } else if (auto* st = std::get_if<smtpwire::starttls_event>(&e)) {
      ++log.starttls;
      log.discarded += st->discarded;
    } else if (auto* cl = std::get_if<smtpwire::closed_event>(&e)) {
      log.closed = true;
      log.reason = cl->reason;
    } else if (eng.awaiting_decision()) {
      REQUIRE(eng.accept() == errc::ok);
    }
  }
}

// What the client application saw and did.
struct client_log {
  std::vector<message> msgs;
  std::size_t next = 0;     // next message to send
  std::size_t results = 0;  // message_accepted / message_rejected seen
  std::size_t accepted = 0;
  std::string_view to_stream;
  bool streaming = false;
  bool start_tls = false;
  bool closed = false;
  bool error = false;
  errc error_code = errc::ok;
  std::string_view rcpt_view;
};

void pump_client(tls_session<client>& s, client_log& log, chunker& ch) {
  client& eng = s.engine();
  for (;;) {
    const client_event e = s.next_event();
    if (std::holds_alternative<std::monostate>(e)) break;
    if (std::holds_alternative<ev::ready>(e)) {
      if (log.next < log.msgs.size()) {
        const message& m = log.msgs[log.next++];
        log.rcpt_view = m.rcpt;
        smtpwire::envelope env;
        env.from = m.from;
        env.recipients = &log.rcpt_view;
        env.recipient_count = 1;
        REQUIRE(eng.send_mail(env) == errc::ok);
      } else {
        REQUIRE(eng.quit() == errc::ok);
      }
    } else if (std::holds_alternative<ev::start_tls>(e)) {
      log.start_tls = true;
    } else if (std::holds_alternative<ev::send_content>(e)) {
      log.to_stream = log.msgs[log.next - 1].content;
      log.streaming = true;
    } else if (std::holds_alternative<ev::message_accepted>(e)) {
      ++log.results;
      ++log.accepted;
      log.streaming = false;
    } else if (std::holds_alternative<ev::message_rejected>(e)) {
      ++log.results;
      log.streaming = false;
    } else if (std::holds_alternative<ev::closed>(e)) {
      log.closed = true;
    } else if (auto* er = std::get_if<ev::error>(&e)) {
      log.error = true;
      log.error_code = er->code;
    }
  }
  if (log.streaming && eng.state() == client_state::content) {
    if (!log.to_stream.empty()) {
      const std::size_t k = std::min(log.to_stream.size(), ch.pick(1, 3000));
      const auto taken = eng.send_content(log.to_stream.substr(0, k));
      REQUIRE(taken.has_value());
      log.to_stream.remove_prefix(*taken);
    } else {
      REQUIRE(eng.end_content() == errc::ok);
      log.streaming = false;
    }
  }
}

struct joined {
  tls_session<client> c;
  tls_session<server> s;
  chunker ch;
  client_log clog;
  server_log slog;
  std::string c2s, s2c;  // every octet that crossed each way

  joined(const client_config& cc, channel cch, const server_config& sc, channel sch,
         std::uint32_t seed, std::size_t max_chunk)
      : c(cc, std::move(cch)), s(sc, std::move(sch)), ch{std::mt19937(seed), max_chunk} {}

  // Runs until both sides are closed or nothing moves.
  void run(std::size_t max_rounds = 200000) {
    std::size_t idle = 0;
    for (std::size_t round = 0; round < max_rounds; ++round) {
      pump_server(s, slog);
      pump_client(c, clog, ch);
      bool moved = move_chunk(c, s, ch, c2s);
      moved = move_chunk(s, c, ch, s2c) || moved;
      if (c.closed() && s.closed()) {
        pump_server(s, slog);
        pump_client(c, clog, ch);
        if (c.output().empty() && s.output().empty()) return;
      }
      idle = moved || clog.streaming ? 0 : idle + 1;
      if (idle > 32) return;
    }
  }
};

message random_message(std::mt19937& rng, std::size_t k) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  message m;
  m.from = "sender" + std::to_string(k) + "@client.example.test";
  m.rcpt = "rcpt" + std::to_string(k) + "@mx.example.test";
  static const char alphabet[] = {'.', '\r', '\n', 'a', 'b', ' ', 'Z'};
  const int len = pick(0, 4) == 0 ? pick(0, 10) : pick(0, 40000);
  m.content.reserve(std::size_t(len));
  for (int i = 0; i < len; ++i)
    m.content += alphabet[pick(0, 6)];
  return m;
}

client_config starttls_client() {
  client_config cc;
  cc.local_name = "client.example.test";
  cc.tls = tls_policy::required;
  return cc;
}

server_config starttls_server() {
  server_config sc;
  sc.host_name = "mx.example.test";
  sc.tls_available = true;
  sc.policy.require_tls = true;
  return sc;
}

// True when `bytes` is a whole sequence of TLS records (RFC 8446 §5.1):
// content type 20..23, legacy version 0x03 0x0?, length.
bool only_tls_records(std::string_view bytes) {
  while (!bytes.empty()) {
    if (bytes.size() < 5) return false;
    const auto type = static_cast<unsigned char>(bytes[0]);
    if (type < 20 || type > 23 || bytes[1] != '\x03') return false;
    const std::size_t len = std::size_t(static_cast<unsigned char>(bytes[3])) << 8 |
                            static_cast<unsigned char>(bytes[4]);
    if (bytes.size() < 5 + len) return false;
    bytes.remove_prefix(5 + len);
  }
  return true;
}

// The server engine's reply to STARTTLS.
constexpr std::string_view ready_to_start_tls = "220 2.0.0 Ready to start TLS\r\n";

// Runs a fake peer against a session until nothing moves; `step` is called
// each round so the test can script the peer.
template <class Session, class Pump, class Step>
void run_fake(Session& s, fake_peer& p, chunker& ch, std::string& to_session, std::string& to_peer,
              Pump pump, Step step) {
  std::size_t idle = 0;
  for (int round = 0; round < 100000 && idle < 32; ++round) {
    pump();
    step();
    bool moved = move_chunk(p, s, ch, to_session);
    moved = move_chunk(s, p, ch, to_peer) || moved;
    idle = moved ? 0 : idle + 1;
  }
  pump();
}

}  // namespace

// ---------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------

TEST_CASE("tls_session: messages over STARTTLS, verified, byte-exact") {
  auto& f = fixture();
  std::size_t sessions = 0, delivered = 0, octets = 0;
  for (std::uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    client_config cc = starttls_client();
    cc.pipelining = seed % 2 == 0;
    server_config sc = starttls_server();
    sc.extensions.pipelining = seed % 3 != 0;
    sc.limits.input_buffer = seed % 4 == 0 ? 64 : 1024;
    const std::size_t chunk = seed % 5 == 0 ? 7 : 1 + seed * 97 % 20000;
    joined j(cc, client_channel(f), sc, server_channel(f), seed, chunk);
    const int n = 1 + int(seed % 4);
    for (int k = 0; k < n; ++k)
      j.clog.msgs.push_back(random_message(rng, std::size_t(k)));
    INFO("seed " << seed << " chunk " << chunk);
    j.run();
    REQUIRE(!j.clog.error);
    REQUIRE(j.clog.start_tls);
    REQUIRE(j.clog.closed);
    REQUIRE(j.slog.closed);
    CHECK(j.slog.reason == smtpwire::close_reason::quit);
    CHECK(j.c.closed());
    CHECK(j.s.closed());
    INFO("client tls_error " << j.c.tls_error().message() << " " << j.c.tls_error().value());
    CHECK(!j.c.tls_error());
    CHECK(!j.s.tls_error());
    // Only EHLO and STARTTLS crossed in clear; everything after is TLS.
    const std::string_view clear = "EHLO client.example.test\r\nSTARTTLS\r\n";
    REQUIRE(j.c2s.compare(0, clear.size(), clear) == 0);
    CHECK(only_tls_records(std::string_view(j.c2s).substr(clear.size())));
    CHECK(j.c2s.find("MAIL FROM") == std::string::npos);
    CHECK(j.slog.discarded == 0);
    CHECK(j.slog.tls_at_mail);
    // The facts the engines got.
    CHECK(j.c.tls_active());
    CHECK(j.c.engine().tls().peer_verified);
    CHECK(j.c.engine().tls().version == "TLSv1.3");
    CHECK(!j.c.tls().cipher.empty());
    CHECK(j.s.engine().tls_active());
    // Byte-exact content at the server, in order.
    REQUIRE(j.clog.results == j.clog.msgs.size());
    REQUIRE(j.clog.accepted == j.clog.msgs.size());
    REQUIRE(j.slog.contents.size() == j.clog.msgs.size());
    for (std::size_t k = 0; k < j.clog.msgs.size(); ++k) {
      CHECK(j.slog.mail_from[k] == j.clog.msgs[k].from);
      CHECK(j.slog.contents[k] == normalised(j.clog.msgs[k].content));
      octets += j.slog.contents[k].size();
    }
    delivered += j.clog.accepted;
    ++sessions;
  }
  CHECK(sessions == 40);
  CHECK(delivered >= 80);
  CHECK(octets > 500000);
}

TEST_CASE("tls_session: messages over implicit TLS (port 465)") {
  auto& f = fixture();
  for (std::uint32_t seed = 100; seed < 130; ++seed) {
    std::mt19937 rng(seed);
    client_config cc;
    cc.local_name = "client.example.test";
    cc.tls = tls_policy::implicit;
    server_config sc;
    sc.host_name = "mx.example.test";
    sc.tls_available = true;
    sc.implicit_tls = true;
    const std::size_t chunk = seed % 3 == 0 ? 1 + seed % 5 : 1 + seed * 131 % 9000;
    joined j(cc, client_channel(f), sc, server_channel(f), seed, chunk);
    // The client's first flight is ready before anything was received.
    REQUIRE(!j.c.output().empty());
    const int n = 1 + int(seed % 3);
    for (int k = 0; k < n; ++k)
      j.clog.msgs.push_back(random_message(rng, std::size_t(k)));
    INFO("seed " << seed << " chunk " << chunk);
    j.run();
    REQUIRE(!j.clog.error);
    CHECK(!j.clog.start_tls);
    REQUIRE(j.clog.closed);
    REQUIRE(j.slog.closed);
    CHECK(only_tls_records(j.c2s));
    CHECK(only_tls_records(j.s2c));
    CHECK(j.c.engine().tls().peer_verified);
    REQUIRE(j.slog.contents.size() == j.clog.msgs.size());
    for (std::size_t k = 0; k < j.clog.msgs.size(); ++k)
      CHECK(j.slog.contents[k] == normalised(j.clog.msgs[k].content));
  }
}

TEST_CASE("tls_session: verification failure ends the client before any MAIL") {
  auto& f = fixture();
  struct variant {
    const char* name;
    server_context* server;
    tls_errc expected;
  };
  const variant cases[] = {
      {"wrong name", &f.wrong_name, tls_errc::hostname_mismatch},
      {"untrusted root", &f.untrusted, tls_errc::certificate_untrusted},
      {"self-signed", &f.self_signed, tls_errc::certificate_untrusted},
      {"expired", &f.expired, tls_errc::certificate_expired},
  };
  for (const variant& v : cases) {
    for (int implicit = 0; implicit <= 1; ++implicit) {
      INFO(v.name << " implicit " << implicit);
      client_config cc = starttls_client();
      server_config sc = starttls_server();
      if (implicit) {
        cc.tls = tls_policy::implicit;
        sc.implicit_tls = true;
      }
      joined j(cc, client_channel(f), sc, server_channel(*v.server), 7, 50);
      j.clog.msgs.push_back(message{"a@client.example.test", "b@mx.example.test", "secret\r\n"});
      j.run();
      INFO("tls_error " << j.c.tls_error().message() << " / " << j.c.tls_channel().error_text());
      CHECK(j.clog.error);
      CHECK(j.clog.error_code == errc::tls_handshake_failed);
      CHECK(!j.clog.closed);
      CHECK(j.c.closed());
      CHECK(!j.c.tls_active());
      CHECK(j.c.tls_error() == make_error_code(v.expected));
      CHECK(j.slog.mail_from.empty());
      CHECK(j.c2s.find("MAIL") == std::string::npos);
      CHECK(j.c2s.find("secret") == std::string::npos);
      // Nothing but the clear prologue and TLS handshake/alert records.
      const std::string_view clear =
          implicit ? "" : std::string_view("EHLO client.example.test\r\nSTARTTLS\r\n");
      REQUIRE(j.c2s.compare(0, clear.size(), clear) == 0);
      CHECK(only_tls_records(std::string_view(j.c2s).substr(clear.size())));
      // The server saw the handshake fail too.
      CHECK(j.s.closed());
      CHECK(!j.s.tls_active());
    }
  }
}

// ---------------------------------------------------------------------------
// The STARTTLS boundary
// ---------------------------------------------------------------------------

namespace {
// A fake client: EHLO, STARTTLS and `injected` in one write; after the 220,
// a handshake and an honest MAIL. Returns the server's log.
struct injection_result {
  server_log log;
  std::size_t discarded = 0;
  bool handshake_done = false;
};

injection_result inject_into_server(std::string_view injected, std::size_t input_buffer,
                                    std::uint32_t seed, std::size_t max_chunk) {
  auto& f = fixture();
  server_config sc = starttls_server();
  sc.limits.input_buffer = input_buffer;
  tls_session<server> s(sc, server_channel(f));
  fake_peer p;
  chunker ch{std::mt19937(seed), max_chunk};
  std::string c2s, s2c;
  injection_result res;
  int step = 0;
  p.send("EHLO evil.test\r\nSTARTTLS\r\n");
  p.send(injected);
  run_fake(
      s, p, ch, c2s, s2c, [&] { pump_server(s, res.log); },
      [&] {
        if (step == 0 && p.take(ready_to_start_tls)) {
          p.start_tls(client_channel(f));
          step = 1;
        }
        if (step == 1 && p.handshake_done) {
          p.send("EHLO good.test\r\nMAIL FROM:<good@good.test>\r\n");
          step = 2;
        }
      });
  res.discarded = s.discarded();
  res.handshake_done = p.handshake_done;
  return res;
}
}  // namespace

TEST_CASE("tls_session: plaintext injected after STARTTLS never reaches the TLS session") {
  const std::string injected = "MAIL FROM:<evil@evil.test>\r\nRCPT TO:<victim@mx.test>\r\n";
  SECTION("in the same read as STARTTLS: dropped by the engine, counted") {
    const auto r = inject_into_server(injected, 1024, 1, 1 << 20);
    CHECK(r.handshake_done);
    CHECK(r.log.starttls == 1);
    CHECK(r.discarded == injected.size());
    CHECK(r.log.discarded == injected.size());
    REQUIRE(r.log.mail_from.size() == 1);
    CHECK(r.log.mail_from[0] == "good@good.test");
  }
  SECTION("held by the driver (engine buffer full): dropped by the glue, counted") {
    // The engine buffers at most one command line (512 octets) here: most
    // injected octets are still with the driver when STARTTLS is parsed.
    const std::string tail(1500, 'x');
    const auto r = inject_into_server(injected + tail, 40, 2, 1 << 20);
    CHECK(r.handshake_done);
    CHECK(r.discarded == injected.size() + tail.size());
    CHECK(r.log.discarded == injected.size() + tail.size());
    REQUIRE(r.log.mail_from.size() == 1);
    CHECK(r.log.mail_from[0] == "good@good.test");
  }
  SECTION("any chunking: evil never appears; either dropped or the handshake fails") {
    std::size_t dropped_runs = 0, failed_runs = 0;
    for (std::uint32_t seed = 1; seed <= 60; ++seed) {
      const std::size_t chunk = seed % 3 == 0 ? std::size_t(1) << 20 : 1 + seed % 23;
      const auto r = inject_into_server(injected, seed % 2 ? 1024 : 48, seed, chunk);
      INFO("seed " << seed);
      for (const std::string& m : r.log.mail_from)
        CHECK(m == "good@good.test");
      if (r.handshake_done) {
        CHECK(r.discarded == injected.size());
        CHECK(r.log.mail_from.size() == 1);
        ++dropped_runs;
      } else {
        // Late plaintext went to TLS, which refused it.
        CHECK(r.log.closed);
        CHECK(r.log.reason == smtpwire::close_reason::tls_failed);
        CHECK(r.log.mail_from.empty());
        ++failed_runs;
      }
    }
    CHECK(dropped_runs > 0);
    CHECK(failed_runs > 0);
  }
}

namespace {
// A fake server: greeting, EHLO reply with STARTTLS, then `after_starttls`
// (which should be "220 …" alone) in one write. Returns the client's log and
// what the client sent.
struct response_result {
  client_log log;
  std::string c2s;
  bool closed = false;
  std::error_code tls_error;
};

response_result fake_server(std::string_view ehlo_reply, std::string_view after_starttls,
                            std::size_t max_chunk, std::size_t input_buffer = 16384) {
  auto& f = fixture();
  client_config cc = starttls_client();
  cc.input_buffer = input_buffer;
  tls_session<client> c(cc, client_channel(f));
  fake_peer p;
  chunker ch{std::mt19937(99), max_chunk};
  response_result res;
  res.log.msgs.push_back(message{"a@client.example.test", "b@mx.example.test", "hello\r\n"});
  std::string s2c;
  int step = 0;
  p.send("220 mx.example.test ESMTP\r\n");
  run_fake(
      c, p, ch, s2c, res.c2s, [&] { pump_client(c, res.log, ch); },
      [&] {
        if (step == 0 && p.take_reply("EHLO ")) {
          p.send(ehlo_reply);
          step = 1;
        }
        if (step == 1 && p.take_reply("STARTTLS")) {
          p.send(after_starttls);
          step = 2;
        }
      });
  res.closed = c.closed();
  res.tls_error = c.tls_error();
  return res;
}
}  // namespace

TEST_CASE("tls_session: response injection after the 220 aborts the client") {
  const std::string ehlo = "250-mx.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
  SECTION("in the same read as the 220") {
    const auto r = fake_server(ehlo, "220 go ahead\r\n250 2.0.0 injected\r\n", 1 << 20);
    CHECK(r.log.error);
    CHECK(r.log.error_code == errc::tls_response_injection);
    // No ClientHello left: only the clear prologue crossed.
    CHECK(r.c2s == "EHLO client.example.test\r\nSTARTTLS\r\n");
    CHECK(r.closed);
  }
  SECTION("held by the driver (client input buffer full)") {
    // A 512-octet engine buffer and a 220 line of exactly 512 octets: the
    // injected reply is still with the driver when the 220 is parsed.
    const std::string line = "220 " + std::string(506, 'g') + "\r\n";
    REQUIRE(line.size() == 512);
    const auto r = fake_server(ehlo, line + "250 2.0.0 injected\r\n", 1 << 20, 512);
    CHECK(r.log.error);
    CHECK(r.log.error_code == errc::tls_response_injection);
    CHECK(r.c2s == "EHLO client.example.test\r\nSTARTTLS\r\n");
  }
  SECTION("after the cut: TLS refuses the plaintext, nothing leaves in clear") {
    // One octet per read: the 220 is parsed before the rest arrives, so the
    // injected reply reaches the channel as "ciphertext".
    const auto r = fake_server(ehlo, "220 go ahead\r\n250 2.0.0 injected\r\n", 1);
    CHECK(r.log.error);
    CHECK(r.log.error_code == errc::tls_handshake_failed);
    CHECK(r.tls_error);
    CHECK(r.c2s.find("MAIL") == std::string::npos);
    const std::string_view clear = "EHLO client.example.test\r\nSTARTTLS\r\n";
    REQUIRE(r.c2s.compare(0, clear.size(), clear) == 0);
    CHECK(only_tls_records(std::string_view(r.c2s).substr(clear.size())));
  }
}

TEST_CASE("tls_session: STARTTLS stripping is refused by a client that requires TLS") {
  SECTION("the server offers no STARTTLS (a real server session)") {
    auto& f = fixture();
    server_config sc = starttls_server();
    sc.tls_available = false;
    sc.policy.require_tls = false;
    joined j(starttls_client(), client_channel(f), sc, server_channel(f), 3, 17);
    j.clog.msgs.push_back(message{"a@client.example.test", "b@mx.example.test", "secret\r\n"});
    j.run();
    CHECK(j.clog.error);
    CHECK(j.clog.error_code == errc::tls_not_offered);
    CHECK(j.c2s == "EHLO client.example.test\r\nQUIT\r\n");
    CHECK(j.slog.mail_from.empty());
    CHECK(!j.c.tls_active());
  }
  SECTION("STARTTLS answered 454") {
    const auto r = fake_server("250-mx.example.test\r\n250 STARTTLS\r\n",
                               "454 4.7.0 TLS not available\r\n", 5);
    CHECK(r.log.error);
    CHECK(r.log.error_code == errc::tls_refused);
    CHECK(r.c2s == "EHLO client.example.test\r\nSTARTTLS\r\nQUIT\r\n");
  }
}

// ---------------------------------------------------------------------------
// Ending: close_notify and truncation mid-message
// ---------------------------------------------------------------------------

namespace {
enum class cut_kind { close_notify, truncation };

// A fake client over STARTTLS sends EHLO, MAIL, RCPT and `body_start` (DATA
// or BDAT with part of its content), then closes by `how`. When `complete`
// is set, it sends `rest` instead of closing (the control run).
struct ending_result {
  server_log log;
  std::error_code tls_error;
  bool closed = false;
};

ending_result end_mid_message(std::string_view body_start, std::string_view rest, cut_kind how,
                              bool complete, std::uint32_t seed) {
  auto& f = fixture();
  server_config sc = starttls_server();
  sc.extensions.chunking = true;
  tls_session<server> s(sc, server_channel(f));
  fake_peer p;
  chunker ch{std::mt19937(seed), 1 + seed % 300};
  std::string c2s, s2c;
  ending_result res;
  int step = 0;
  p.send("EHLO c.test\r\nSTARTTLS\r\n");
  run_fake(
      s, p, ch, c2s, s2c, [&] { pump_server(s, res.log); },
      [&] {
        if (step == 0 && p.take(ready_to_start_tls)) {
          p.start_tls(client_channel(f));
          step = 1;
        }
        if (step == 1 && p.handshake_done) {
          p.send("EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@mx.example.test>\r\n");
          p.send(body_start);
          step = 2;
        }
        if (step == 2 && p.output().empty() && res.log.in_content) {
          if (complete) {
            p.send(rest);
          } else if (how == cut_kind::close_notify) {
            p.tls->shutdown();
          } else {
            s.transport_eof();
          }
          step = 3;
        }
      });
  res.tls_error = s.tls_error();
  res.closed = s.closed();
  return res;
}
}  // namespace

TEST_CASE("tls_session: close_notify or truncation mid-DATA / mid-BDAT accepts nothing") {
  const std::string data_start = "DATA\r\n";
  const std::string data_part = "Subject: x\r\n\r\nfirst half\r\n";
  const std::string data_rest = "second half\r\n.\r\n";
  const std::string bdat_part = "BDAT 40 LAST\r\n0123456789";
  const std::string bdat_rest = "012345678901234567890123456789";
  for (std::uint32_t seed = 1; seed <= 6; ++seed) {
    INFO("seed " << seed);
    for (cut_kind how : {cut_kind::close_notify, cut_kind::truncation}) {
      const auto d = end_mid_message(data_start + data_part, data_rest, how, false, seed);
      CHECK(d.log.mail_from.size() == 1);
      CHECK(d.log.data_end_ok == 0);
      CHECK(d.closed);
      CHECK(d.tls_error == (how == cut_kind::close_notify ? make_error_code(tls_errc::closed)
                                                          : make_error_code(tls_errc::truncated)));
      const auto b = end_mid_message(bdat_part, bdat_rest, how, false, seed);
      CHECK(b.log.mail_from.size() == 1);
      CHECK(b.log.data_end_ok == 0);
      CHECK(b.closed);
      CHECK(b.tls_error == (how == cut_kind::close_notify ? make_error_code(tls_errc::closed)
                                                          : make_error_code(tls_errc::truncated)));
    }
    // The control: the same messages completed are accepted, byte-exact.
    const auto d =
        end_mid_message(data_start + data_part, data_rest, cut_kind::truncation, true, seed);
    REQUIRE(d.log.contents.size() == 1);
    CHECK(d.log.contents[0] == data_part + "second half\r\n");
    const auto b = end_mid_message(bdat_part, bdat_rest, cut_kind::truncation, true, seed);
    REQUIRE(b.log.contents.size() == 1);
    CHECK(b.log.contents[0] == "0123456789" + bdat_rest);
  }
}

TEST_CASE("tls_session: the real client cut off mid-DATA: nothing accepted") {
  auto& f = fixture();
  for (cut_kind how : {cut_kind::close_notify, cut_kind::truncation}) {
    for (std::uint32_t seed = 1; seed <= 5; ++seed) {
      INFO("seed " << seed << " close_notify " << (how == cut_kind::close_notify));
      joined j(starttls_client(), client_channel(f), starttls_server(), server_channel(f), seed,
               1 + seed * 331);
      std::mt19937 rng(seed);
      message m = random_message(rng, 0);
      m.content.assign(200000, 'q');
      j.clog.msgs.push_back(m);
      // Until the server has content, then the client's end goes away.
      for (int round = 0; round < 100000 && j.slog.current.empty(); ++round) {
        pump_server(j.s, j.slog);
        pump_client(j.c, j.clog, j.ch);
        move_chunk(j.c, j.s, j.ch, j.c2s);
        move_chunk(j.s, j.c, j.ch, j.s2c);
      }
      REQUIRE(j.slog.in_content);
      if (how == cut_kind::close_notify) {
        // The client's channel sends close_notify in the middle of the
        // content; what it had sent before still arrives.
        j.c.tls_channel().shutdown();
        for (int round = 0; round < 10000 && !j.c.output().empty(); ++round) {
          move_chunk(j.c, j.s, j.ch, j.c2s);
          pump_server(j.s, j.slog);
        }
      } else {
        j.s.transport_eof();
      }
      pump_server(j.s, j.slog);
      // What the server still sends goes nowhere.
      for (int round = 0; round < 100 && !j.s.output().empty(); ++round)
        REQUIRE(j.s.consume_output(j.s.output().size()) == errc::ok);
      CHECK(j.slog.data_end_ok == 0);
      CHECK(j.slog.contents.empty());
      CHECK(j.slog.current.size() < m.content.size());
      CHECK(
          j.s.tls_error() ==
          make_error_code(how == cut_kind::close_notify ? tls_errc::closed : tls_errc::truncated));
      CHECK(j.s.closed());
    }
  }
}

TEST_CASE("tls_session: QUIT and close_notify in one flight still get the 221") {
  auto& f = fixture();
  tls_session<server> s(starttls_server(), server_channel(f));
  fake_peer p;
  chunker ch{std::mt19937(4), 1 << 20};
  std::string c2s, s2c;
  server_log log;
  int step = 0;
  p.send("EHLO c.test\r\nSTARTTLS\r\n");
  run_fake(
      s, p, ch, c2s, s2c, [&] { pump_server(s, log); },
      [&] {
        if (step == 0 && p.take(ready_to_start_tls)) {
          p.start_tls(client_channel(f));
          step = 1;
        }
        if (step == 1 && p.handshake_done) {
          p.send("QUIT\r\n");
          p.tls->shutdown();
          step = 2;
        }
      });
  REQUIRE(step == 2);
  CHECK(log.closed);
  CHECK(log.reason == smtpwire::close_reason::quit);
  CHECK(p.in.find("221 ") != std::string::npos);  // decrypted by the peer
  CHECK(p.tls->peer_closed());                    // our close_notify followed it
  CHECK(!s.tls_error());
  CHECK(s.closed());
}

TEST_CASE("tls_session: the server's 220 leaves in clear before any ciphertext") {
  // A driver that reads again before it wrote the 220 (a full-duplex event
  // loop) may hand the ClientHello over first: the 220 still goes first.
  auto& f = fixture();
  tls_session<server> s(starttls_server(), server_channel(f));
  server_log log;
  pump_server(s, log);  // greeting
  std::string greeting(s.output());
  REQUIRE(s.consume_output(greeting.size()) == errc::ok);
  const std::string_view hello = "EHLO c.test\r\nSTARTTLS\r\n";
  REQUIRE(s.receive(hello) == hello.size());
  pump_server(s, log);
  REQUIRE(log.starttls == 1);
  channel c = client_channel(f);
  REQUIRE(c.handshake() == smtpwire::openssl::handshake_status::in_progress);
  const std::string client_hello(c.ciphertext_out());
  c.consume_ciphertext(client_hello.size());
  REQUIRE(s.receive(client_hello) == client_hello.size());
  pump_server(s, log);
  // output() is the EHLO reply and the 220 in clear, and stops there while
  // they are unsent: a driver that writes output() whole never mixes the
  // two. Then only TLS records (the server's first flight) follow.
  const std::string clear(s.output());
  CHECK(clear.compare(0, 4, "250-") == 0);
  REQUIRE(clear.size() >= ready_to_start_tls.size());
  CHECK(clear.compare(clear.size() - ready_to_start_tls.size(), std::string::npos,
                      ready_to_start_tls) == 0);
  REQUIRE(s.consume_output(clear.size()) == errc::ok);
  const std::string flight(s.output());
  CHECK(!flight.empty());
  CHECK(only_tls_records(flight));
  // The rest completes the handshake.
  for (int round = 0; round < 32 && c.handshake() != smtpwire::openssl::handshake_status::done;
       ++round) {
    c.receive_ciphertext(s.output());
    REQUIRE(s.consume_output(s.output().size()) == errc::ok);
    REQUIRE(s.receive(c.ciphertext_out()) == c.ciphertext_out().size());
    c.consume_ciphertext(c.ciphertext_out().size());
    pump_server(s, log);
  }
  CHECK(c.established());
  REQUIRE(c.write("EHLO c.test\r\n").has_value());
  REQUIRE(s.receive(c.ciphertext_out()) == c.ciphertext_out().size());
  pump_server(s, log);
  CHECK(s.tls_active());
  CHECK(s.engine().tls_active());
  CHECK(s.discarded() == 0);
}

TEST_CASE("tls_session: a clean close_notify after QUIT is not an error") {
  auto& f = fixture();
  joined j(starttls_client(), client_channel(f), starttls_server(), server_channel(f), 5, 100);
  j.run();
  REQUIRE(j.clog.closed);
  REQUIRE(j.slog.closed);
  CHECK(!j.c.tls_error());
  CHECK(!j.s.tls_error());
  CHECK(j.s.closed());
  CHECK(j.c.closed());
  // Each side sent its close_notify and noted the peer's.
  CHECK(j.s.tls_channel().peer_closed());
  CHECK(j.c.tls_channel().peer_closed());
}

TEST_CASE("tls_session: bounded buffers when the network does not drain") {
  auto& f = fixture();
  joined j(starttls_client(), client_channel(f), starttls_server(), server_channel(f), 11, 4096);
  j.clog.msgs.push_back(message{"a@client.example.test", "b@mx.example.test", "x"});
  // Up to the 354: then the client application streams, the pipe stops.
  for (int round = 0; round < 10000 && !j.clog.streaming; ++round) {
    pump_server(j.s, j.slog);
    pump_client(j.c, j.clog, j.ch);
    move_chunk(j.c, j.s, j.ch, j.c2s);
    move_chunk(j.s, j.c, j.ch, j.s2c);
  }
  REQUIRE(j.clog.streaming);
  REQUIRE(j.c.tls_active());
  const std::string block(8192, 'a');
  std::size_t taken = 0;
  for (int i = 0; i < 200; ++i) {
    const auto n = j.c.engine().send_content(block);
    REQUIRE(n.has_value());
    taken += *n;
    (void)j.c.output();
  }
  // The engine stopped taking content; what waits is bounded by the
  // engine's output buffer and one record of ciphertext.
  CHECK(taken < 200 * block.size());
  CHECK(j.c.engine().send_content(block).value() == 0);
  CHECK(j.c.output().size() < 2 * tls_session<client>::plaintext_buffer);
  // Draining resumes the flow: the server receives everything taken (after
  // the message's "x", which pump_client sent with the send_content event).
  for (int round = 0; round < 100000 && j.slog.current.size() < 1 + taken; ++round) {
    move_chunk(j.c, j.s, j.ch, j.c2s);
    pump_server(j.s, j.slog);
  }
  CHECK(j.slog.current == "x" + std::string(taken, 'a'));
}

// ---------------------------------------------------------------------------
// A peer that sends application data before the handshake completes
// ---------------------------------------------------------------------------

TEST_CASE("tls_session: application data before the handshake fails it") {
  auto& f = fixture();
  // An application_data record (type 23) where a ClientHello must come.
  const std::string early_record = std::string("\x17\x03\x03\x00\x0e", 5) + "MAIL FROM:<x>\r\n";
  SECTION("server, after STARTTLS") {
    tls_session<server> s(starttls_server(), server_channel(f));
    fake_peer p;
    chunker ch{std::mt19937(1), 9};
    std::string c2s, s2c;
    server_log log;
    int step = 0;
    p.send("EHLO c.test\r\nSTARTTLS\r\n");
    run_fake(
        s, p, ch, c2s, s2c, [&] { pump_server(s, log); },
        [&] {
          if (step == 0 && p.take(ready_to_start_tls)) {
            p.send(early_record);
            step = 1;
          }
        });
    CHECK(log.starttls == 1);
    CHECK(log.closed);
    CHECK(log.reason == smtpwire::close_reason::tls_failed);
    CHECK(log.mail_from.empty());
    CHECK(s.tls_error());
    CHECK(s.closed());
  }
  SECTION("server, implicit TLS") {
    server_config sc = starttls_server();
    sc.implicit_tls = true;
    tls_session<server> s(sc, server_channel(f));
    fake_peer p;
    chunker ch{std::mt19937(2), 3};
    std::string c2s, s2c;
    server_log log;
    p.send(early_record);
    run_fake(
        s, p, ch, c2s, s2c, [&] { pump_server(s, log); }, [] {});
    CHECK(log.closed);
    CHECK(log.reason == smtpwire::close_reason::tls_failed);
    CHECK(log.mail_from.empty());
    CHECK(s2c.find("220 ") == std::string::npos);  // no greeting ever left
  }
  SECTION("client, answered with application data instead of a ServerHello") {
    client_config cc;
    cc.local_name = "client.example.test";
    cc.tls = tls_policy::implicit;
    tls_session<client> c(cc, client_channel(f));
    fake_peer p;
    chunker ch{std::mt19937(3), 11};
    std::string c2s, s2c;
    client_log log;
    bool answered = false;
    run_fake(
        c, p, ch, s2c, c2s, [&] { pump_client(c, log, ch); },
        [&] {
          if (!answered && !c2s.empty()) {
            p.send(std::string("\x17\x03\x03\x00\x1b", 5) + "220 mx.example.test ESMTP\r\n");
            answered = true;
          }
        });
    CHECK(log.error);
    CHECK(log.error_code == errc::tls_handshake_failed);
    CHECK(!log.closed);
    CHECK(c.tls_error());
    CHECK(!c.tls_active());
    CHECK(only_tls_records(c2s));
  }
}

// ---------------------------------------------------------------------------
// Many sessions
// ---------------------------------------------------------------------------

TEST_CASE("tls_session: a channel of the wrong side is refused") {
  auto& f = fixture();
  tls_session<client> c(starttls_client(), server_channel(f));
  CHECK(c.closed());
  CHECK(c.tls_error() == make_error_code(tls_errc::api_bad_state));
  CHECK(c.output().empty());
  CHECK(c.receive("220 mx.example.test ESMTP\r\n") == 27);  // taken and dropped
  CHECK(std::holds_alternative<std::monostate>(c.next_event()));
  tls_session<server> s(starttls_server(), client_channel(f));
  CHECK(s.closed());
  CHECK(s.tls_error() == make_error_code(tls_errc::api_bad_state));
}

TEST_CASE("tls_session: thousands of sessions, each one message") {
  auto& f = fixture();
  std::size_t ok = 0;
  for (std::uint32_t seed = 1; seed <= 2000; ++seed) {
    client_config cc = starttls_client();
    server_config sc = starttls_server();
    const bool implicit = seed % 2 == 0;
    if (implicit) {
      cc.tls = tls_policy::implicit;
      sc.implicit_tls = true;
    }
    joined j(cc, client_channel(f), sc, server_channel(f), seed, 1 << 16);
    j.clog.msgs.push_back(message{"a@client.example.test", "b@mx.example.test", "hello\r\n"});
    j.run();
    if (j.clog.accepted == 1 && j.slog.contents.size() == 1 && j.slog.contents[0] == "hello\r\n" &&
        j.clog.closed && j.slog.closed)
      ++ok;
  }
  CHECK(ok == 2000);
}
