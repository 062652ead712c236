// A consumer of the installed (or subproject) adapters: smtpwire::openssl
// and smtpwire::posix. Built by tests/install/run through find_package
// components, pkg-config (smtpwire-openssl) and a meson subproject.
#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/openssl/context.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/posix/address.hpp>

#include <cstdio>
#include <string>

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAILED: %s\n", what);
      ++failures;
    }
  };

  // A verifying client context over the system store, and one channel.
  namespace so = smtpwire::openssl;
  so::client_tls_options opts;
  auto ctx = so::client_context::create(opts);
  check(ctx.has_value(), "client_context::create with safe defaults");
  if (ctx) {
    auto ch = so::channel::client(*ctx, so::peer_identity{"mx.example.org"});
    check(ch.has_value(), "channel::client");
    if (ch) check(ch->handshake() == so::handshake_status::in_progress, "ClientHello pending");
    if (ch) check(!ch->ciphertext_out().empty(), "the ClientHello is ciphertext to send");
  }

  namespace sp = smtpwire::posix;
  sp::host_port hp;
  check(!sp::parse_host_port("[::1]:2525", "25", hp), "parse_host_port");
  check(hp.host == "::1" && hp.port == "2525", "host and port of [::1]:2525");

  std::printf("smtpwire adapters consumer: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
