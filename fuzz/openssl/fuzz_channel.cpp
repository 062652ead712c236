// Fuzz target for smtpwire::openssl::channel: a server-side channel (and its
// honest client) fed an interleaving of real ciphertext, raw attacker bytes
// and bit-flipped records, mid-handshake and after it. The input is a
// program: byte 0 picks the TLS version bound, then each byte is an
// operation (low 3 bits) whose argument is the next byte:
//   0 honest client -> server, a chunk of (arg + 1) octets
//   1 attacker -> server, (arg % 64) octets taken from the input itself
//   2 honest client -> server, a chunk with one bit flipped
//   3 server -> client, a chunk of (arg + 1) octets
//   4 drive: handshake() both; once established the client writes a line
//     and both sides read
//   5 transport EOF at the server
//   6 shutdown() at the client (arg even) or the server (arg odd)
//   7 attacker -> client, (arg % 64) octets from the input
// Invariants (abort on violation):
//  - receive_ciphertext() never takes more than offered;
//  - every plaintext octet the server reads is the next octet the honest
//    client wrote (no attacker byte or flipped record is ever accepted);
//  - failures are sticky (handshake() stays failed, error() set, reason
//    text kept) and OpenSSL's error queue is empty after every call;
//  - buffered ciphertext stays bounded;
//  - no crash, leak or undefined behaviour (ASan, UBSan, LSan).
// OpenSSL's handshakes use fresh randomness, so a run is not bit-for-bit
// repeatable; the invariants do not depend on it.
#include <smtpwire/openssl/channel.hpp>

#include <openssl/err.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include "../../tests/openssl/support/pki.hpp"

namespace {

using namespace smtpwire::openssl;

void check(bool ok) {
  if (!ok) std::abort();
}

struct contexts {
  server_context server;
  client_context client12;
  client_context client13;
};

contexts& ctxs() {
  static contexts* c = [] {
    const auto& k = smtpwire_test::pki::get();
    server_tls_options so;
    so.cert_file = k.valid.cert_file;
    so.key_file = k.valid.key_file;
    client_tls_options co;
    co.ca_file = k.ca_file;
    co.session_resumption = false;
    client_tls_options co12 = co;
    co12.max_version = tls_version::tls1_2;
    auto s = server_context::create(so);
    auto c12 = client_context::create(co12);
    auto c13 = client_context::create(co);
    check(s && c12 && c13);
    return new contexts{std::move(*s), std::move(*c12), std::move(*c13)};
  }();
  return *c;
}

struct run {
  channel c;
  channel s;
  std::string written;   // what the honest client wrote
  std::string received;  // what the server read
  int lines = 0;

  void after_call() const { check(ERR_peek_error() == 0); }

  void feed(channel& to, std::string_view bytes) {
    const std::size_t n = to.receive_ciphertext(bytes);
    check(n <= bytes.size());
    after_call();
  }

  void forward(channel& from, channel& to, std::size_t want, int flip) {
    const std::string_view out = from.ciphertext_out();
    const std::size_t k = want < out.size() ? want : out.size();
    if (k == 0) return;
    std::string chunk(out.substr(0, k));
    if (flip >= 0) chunk[static_cast<std::size_t>(flip) % k] ^= 0x10;
    const std::size_t n = to.receive_ciphertext(chunk);
    check(n <= k);
    from.consume_ciphertext(n);
    after_call();
  }

  void read_all(channel& ch, std::string* sink) {
    char buf[4096];
    for (int guard = 0; guard < 1000; ++guard) {
      auto r = ch.read(buf, sizeof buf);
      after_call();
      if (!r || *r == 0) return;
      if (sink != nullptr) sink->append(buf, *r);
    }
  }

  void drive() {
    const handshake_status hs = s.handshake();
    after_call();
    const handshake_status hc = c.handshake();
    after_call();
    if (hs == handshake_status::failed) {
      check(s.error().value() != 0);
      check(!s.error_text().empty());
      check(s.handshake() == handshake_status::failed);
    }
    if (hc == handshake_status::done && !c.shutdown_sent() && lines < 50) {
      const std::string line = "MAIL FROM:<good" + std::to_string(lines++) + "@example.test>\r\n";
      auto w = c.write(line);
      after_call();
      if (w) written.append(line.data(), *w);
    }
    if (hs == handshake_status::done) read_all(s, &received);
    if (hc == handshake_status::done) read_all(c, nullptr);
    // The server only ever reads what the honest client wrote, in order.
    check(received.size() <= written.size());
    check(written.compare(0, received.size(), received) == 0);
    check(s.ciphertext_out().size() <= 2 * channel::max_buffered_ciphertext);
    check(c.ciphertext_out().size() <= 2 * channel::max_buffered_ciphertext);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  contexts& k = ctxs();
  ERR_clear_error();
  const bool tls12 = (data[0] & 1) != 0;
  auto c = channel::client(tls12 ? k.client12 : k.client13,
                           peer_identity{smtpwire_test::pki::host, {}, {}});
  auto s = channel::server(k.server);
  check(c && s);
  run r{std::move(*c), std::move(*s), {}, {}, 0};
  r.drive();
  std::size_t i = 1;
  auto arg = [&]() -> std::uint8_t { return i < size ? data[i++] : 0; };
  auto raw = [&](std::size_t n) {
    const std::size_t k2 = n < size - i ? n : size - i;
    std::string_view b(reinterpret_cast<const char*>(data + i), k2);
    i += k2;
    return b;
  };
  while (i < size) {
    const std::uint8_t op = data[i++] & 7;
    switch (op) {
      case 0:
        r.forward(r.c, r.s, static_cast<std::size_t>(arg()) + 1, -1);
        break;
      case 1:
        r.feed(r.s, raw(arg() % 64));
        break;
      case 2:
        r.forward(r.c, r.s, static_cast<std::size_t>(arg()) + 1, arg());
        break;
      case 3:
        r.forward(r.s, r.c, static_cast<std::size_t>(arg()) + 1, -1);
        break;
      case 4:
        r.drive();
        break;
      case 5: {
        const std::error_code e = r.s.transport_eof();
        r.after_call();
        check(!e || e == tls_errc::truncated || r.s.error() == e);
        check(r.s.transport_eof() == e);
        break;
      }
      case 6:
        if ((arg() & 1) == 0) {
          r.c.shutdown();
        } else {
          r.s.shutdown();
        }
        r.after_call();
        break;
      case 7:
        r.feed(r.c, raw(arg() % 64));
        break;
    }
  }
  r.drive();
  return 0;
}
