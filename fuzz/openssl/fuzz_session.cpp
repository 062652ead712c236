// Fuzz target for tls_session<server>: random interleavings of plaintext
// and ciphertext around the STARTTLS boundary. The input is a program: its
// first byte picks the server configuration, then each byte is an operation
// on one network stream to the server, into which the fuzzer mixes raw
// plaintext (an attacker on the path: "evil" commands, raw octets) and the
// ciphertext of an honest TLS client (a bare channel that only ever sends
// "good" commands), delivered in chunks of fuzzer-chosen sizes; plus
// transport EOF and the client's close_notify. Invariants, checked with
// abort():
//  - once the cut is made (starttls_event, or implicit TLS), the server
//    application never sees an "evil" command: plaintext is never accepted
//    as TLS, and the engine never parses it after the cut;
//  - a server under TLS sees MAIL only while the honest client's handshake
//    completed and only addresses the honest client wrote;
//  - receive() never takes more than offered; output stays bounded;
//    closed() sessions take no more events;
//  - no crash, leak or undefined behaviour (ASan, UBSan, LSan).
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/server.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "../../tests/openssl/support/pki.hpp"

namespace {

using namespace smtpwire;
using smtpwire::openssl::channel;
using smtpwire::openssl::tls_session;

void check(bool ok) {
  if (!ok) std::abort();
}

// The server's context (the test PKI's valid certificate) and the honest
// client's (trusting the test root), made once.
channel server_channel() {
  static openssl::server_context* ctx = [] {
    const auto& p = smtpwire_test::pki::get();
    openssl::server_tls_options o;
    o.cert_file = p.valid.cert_file;
    o.key_file = p.valid.key_file;
    auto r = openssl::server_context::create(o);
    check(r.has_value());
    return new openssl::server_context(std::move(*r));
  }();
  auto ch = channel::server(*ctx);
  check(ch.has_value());
  return std::move(*ch);
}

channel client_channel() {
  static openssl::client_context* ctx = [] {
    openssl::client_tls_options o;
    o.ca_file = smtpwire_test::pki::get().ca_file;
    o.session_resumption = false;  // every input gets the same full handshake
    auto r = openssl::client_context::create(o);
    check(r.has_value());
    return new openssl::client_context(std::move(*r));
  }();
  openssl::peer_identity peer;
  peer.host = smtpwire_test::pki::host;
  auto ch = channel::client(*ctx, peer);
  check(ch.has_value());
  return std::move(*ch);
}

// Plaintext an attacker injects (raw on the stream) and commands the honest
// client sends (through TLS). Every address of the first list says "evil".
constexpr std::string_view evil[] = {
    "EHLO evil.test\r\n",         "STARTTLS\r\n", "MAIL FROM:<evil@evil.test>\r\n",
    "RCPT TO:<evil@mx.test>\r\n", "DATA\r\n",     "BDAT 5 LAST\r\nevil!",
    "evil body\r\n.\r\n",         "QUIT\r\n",
};
constexpr std::string_view good[] = {
    "EHLO good.test\r\n",
    "MAIL FROM:<good@good.test>\r\n",
    "RCPT TO:<good@mx.test>\r\n",
    "DATA\r\n",
    "good body\r\n.\r\n",
    "BDAT 4 LAST\r\ngood",
    "NOOP\r\n",
    "QUIT\r\n",
};

struct input {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t byte() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::string_view bytes(std::size_t k) {
    if (k > n) k = n;
    std::string_view s(reinterpret_cast<const char*>(p), k);
    p += k;
    n -= k;
    return s;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  input in{data, size};
  const std::uint8_t cfg_bits = in.byte();
  server_config cfg;
  cfg.host_name = "mx.example.test";
  cfg.tls_available = true;
  cfg.implicit_tls = cfg_bits & 1;
  cfg.extensions.chunking = cfg_bits & 2;
  cfg.policy.require_tls = cfg_bits & 4;
  cfg.limits.input_buffer = (cfg_bits & 8) ? 24 : 1024;
  cfg.limits.max_commands = 400;

  tls_session<server> s(cfg, server_channel());
  std::string net;           // the stream to the server, not yet delivered
  std::optional<channel> c;  // the honest client
  bool client_done = false, client_failed = false;
  bool cut = cfg.implicit_tls;
  bool saw_closed_event = false;

  auto pump = [&] {
    for (int guard = 0; guard < 10000; ++guard) {
      const server_event ev = s.next_event();
      if (std::holds_alternative<std::monostate>(ev)) return;
      check(!saw_closed_event);
      if (std::holds_alternative<starttls_event>(ev)) cut = true;
      if (std::holds_alternative<closed_event>(ev)) saw_closed_event = true;
      if (auto* m = std::get_if<mail_event>(&ev)) {
        if (cut) {
          check(m->reverse_path.address.local_part == "good");
          check(client_done && s.engine().tls_active());
        }
      }
      if (auto* r = std::get_if<rcpt_event>(&ev))
        if (cut) check(r->forward_path.address.local_part == "good");
      if (auto* h = std::get_if<hello_event>(&ev))
        if (cut && s.engine().tls_active()) check(h->domain == "good.test");
      if (auto* ct = std::get_if<content_event>(&ev))
        if (cut && s.engine().tls_active()) check(ct->bytes.find("evil") == std::string_view::npos);
      if (s.engine().awaiting_decision()) check(s.engine().accept() == errc::ok);
    }
    std::abort();  // no progress
  };
  auto client_step = [&] {
    if (!c || client_done || client_failed) return;
    const auto st = c->handshake();
    client_done = st == openssl::handshake_status::done;
    client_failed = st == openssl::handshake_status::failed;
  };
  auto client_drain = [&] {
    if (!c) return;
    char buf[512];
    for (int i = 0; i < 64; ++i) {
      auto r = c->read(buf, sizeof buf);
      if (!r || *r == 0) return;
    }
  };

  while (!in.empty()) {
    const std::uint8_t op = in.byte();
    switch (op % 8) {
      case 0: {  // raw octets from the input onto the stream
        net.append(in.bytes(in.byte() % 48));
        break;
      }
      case 1:  // an attacker's plaintext command
        net.append(evil[in.byte() % 8]);
        break;
      case 2:  // the honest client starts TLS
        if (!c) {
          c.emplace(client_channel());
          client_step();
        }
        break;
      case 3: {  // the honest client's ciphertext onto the stream
        if (!c) break;
        const std::string_view out = c->ciphertext_out();
        const std::size_t k = out.size() < 1u + in.byte() * 8u ? out.size() : 1u + in.byte() * 8u;
        net.append(out.substr(0, k));
        c->consume_ciphertext(k);
        break;
      }
      case 4: {  // the honest client sends a command through TLS
        const std::string_view cmd = good[in.byte() % 8];
        if (c && client_done) {
          auto r = c->write(cmd);
          (void)r;
        }
        break;
      }
      case 5: {  // deliver part of the stream to the server
        std::size_t k = 1 + in.byte() * 4u;
        if (k > net.size()) k = net.size();
        const std::size_t took = s.receive(std::string_view(net).substr(0, k));
        check(took <= k);
        net.erase(0, took);
        pump();
        break;
      }
      case 6: {  // the server's output to the honest client (or lost)
        const std::string_view out = s.output();
        std::size_t k = 1 + in.byte() * 8u;
        if (k > out.size()) k = out.size();
        check(out.size() < (1u << 20));
        if (c && cut) {
          (void)c->receive_ciphertext(out.substr(0, k));
          client_step();
          client_drain();
        }
        check(s.consume_output(k) == errc::ok);
        break;
      }
      case 7:
        if (in.byte() & 1) {
          s.transport_eof();
        } else if (c && client_done) {
          c->shutdown();
        }
        pump();
        break;
    }
  }
  // Deliver what is left, then end the transport.
  for (int i = 0; i < 64 && !net.empty(); ++i) {
    const std::size_t took = s.receive(net);
    net.erase(0, took);
    pump();
    if (took == 0) break;
  }
  s.transport_eof();
  pump();
  (void)s.output();
  (void)s.closed();
  return 0;
}
