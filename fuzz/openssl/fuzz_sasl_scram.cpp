// Fuzz target: SCRAM-SHA-256 and CRAM-MD5 over OpenSSL (openssl/sasl.hpp).
// The first byte picks the side (low 2 bits) and options (higher bits); the
// rest is up to three decoded SASL messages separated by NUL (no SCRAM or
// CRAM-MD5 message may contain NUL).
//   0: SCRAM client (RFC 7677 §3's user, password and client nonce) fed
//      server-first, then server-final;
//   1: SCRAM server (RFC 7677 §3's credentials and server nonce) fed
//      client-first, client-final, then the acknowledgement;
//   2: CRAM-MD5 server (RFC 2195's challenge and password) fed a response;
//   3: CRAM-MD5 client fed a challenge.
// Invariants (abort on violation): a failing call appends nothing; a
// client reports server_verified() only after a server-final it accepted;
// a server sets `done` only on an empty acknowledgement of a "v="
// challenge, with a non-empty authcid; CRAM-MD5 accepts exactly RFC 2195's
// response and answers "user SP 32 lower-case hex".
#include <smtpwire/openssl/sasl.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace so = smtpwire::openssl;
using smtpwire::errc;

void check(bool ok) {
  if (!ok) std::abort();
}

struct rfc_store final : so::scram_credential_store {
  so::scram_credentials creds;
  rfc_store() {
    std::string salt;
    check(smtpwire::wire::base64_decode(salt, "W22ZaJ0SNY7soEsUEjb6gQ==") == errc::ok);
    check(so::scram_sha256_derive("pencil", salt, 4096, creds) == errc::ok);
  }
  bool lookup(std::string_view user, so::scram_credentials& out) override {
    if (user != "user") return false;
    out = creds;
    return true;
  }
};

struct cram_store final : so::cram_md5_password_store {
  bool lookup(std::string_view user, std::string& password) override {
    if (user != "tim") return false;
    password = "tanstaaftanstaaf";
    return true;
  }
};

// Splits `in` at the first NUL.
std::string_view next_message(std::string_view& in) {
  const std::size_t z = in.find('\0');
  const std::string_view m = in.substr(0, z);
  in = z == std::string_view::npos ? std::string_view() : in.substr(z + 1);
  return m;
}

const std::string binding(32, '\x42');

void scram_client(std::uint8_t flags, std::string_view in) {
  so::scram_client_options o;
  o.cbind = (flags & 3) == 0   ? so::gs2_cbind_flag::n
            : (flags & 3) == 1 ? so::gs2_cbind_flag::y
                               : so::gs2_cbind_flag::p;
  o.binding = {(flags & 4) ? so::channel_binding_type::tls_server_end_point
                           : so::channel_binding_type::tls_exporter,
               binding};
  if (flags & 8) o.authzid = "admin";
  // The fuzzer should not spend its time in PBKDF2: only 4096 is allowed.
  o.max_iterations = 4096;
  so::scram_sha256_client c("user", "pencil", o, "rOprNGfwEbeRWgbNEkqO");
  std::string out;
  bool present = false;
  check(c.initial_response(out, present) == errc::ok && present);
  out.assign("prefix");
  const std::string_view first = next_message(in);
  if (c.respond(first, out) != errc::ok) {
    check(out == "prefix" && !c.server_verified() && c.error() != errc::ok);
    return;
  }
  check(out.rfind("prefixc=", 0) == 0 && out.find(",r=rOprNGfwEbeRWgbNEkqO") != std::string::npos);
  check(!c.server_verified());
  out.assign("prefix");
  const errc e = c.respond(next_message(in), out);
  check(out == "prefix");
  check(c.server_verified() == (e == errc::ok));
  check(c.respond(next_message(in), out) == errc::sasl_message_invalid && !c.server_verified());
}

void scram_server(std::uint8_t flags, std::string_view in) {
  static rfc_store store;
  so::scram_server_options o;
  o.plus = (flags & 1) != 0;
  o.plus_offered = (flags & 2) != 0;
  o.allow_utf8_usernames = (flags & 4) != 0;
  o.mock_key = "fuzz";
  so::scram_sha256_server s(store, o, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
  if (flags & 8) s.set_channel_binding({so::channel_binding_type::tls_exporter, binding});
  std::string ch("prefix");
  bool done = false;
  const bool present = (flags & 16) == 0;
  errc e = s.start(present ? next_message(in) : std::string_view(), present, ch, done);
  bool last_was_v = false;
  for (int step = 0; step < 4; ++step) {
    if (e != errc::ok) {
      check(ch == "prefix" && !done);
      return;
    }
    if (done) {
      check(ch == "prefix" && last_was_v && !s.authcid().empty());
      return;
    }
    last_was_v = ch.rfind("prefixv=", 0) == 0;
    ch.assign("prefix");
    e = s.respond(next_message(in), ch, done);
  }
}

void cram_server(std::string_view in) {
  static cram_store store;
  static constexpr std::string_view challenge = "<1896.697170952@postoffice.reston.mci.net>";
  so::cram_md5_server s(store, "postoffice.reston.mci.net", challenge);
  std::string ch;
  bool done = false;
  check(s.start({}, false, ch, done) == errc::ok && ch == challenge && !done);
  ch.assign("prefix");
  const errc e = s.respond(in, ch, done);
  check(ch == "prefix");
  check(done == (e == errc::ok));
  if (done) check(in == "tim b913a602c7eda7a495b4e6e7334d3890" && s.authcid() == "tim");
}

void cram_client(std::string_view in) {
  so::cram_md5_client c("tim", "tanstaaftanstaaf");
  std::string out("prefix");
  bool present = true;
  check(c.initial_response(out, present) == errc::ok && !present && out == "prefix");
  if (c.respond(in, out) != errc::ok) {
    check(out == "prefix");
    return;
  }
  check(out.size() == 6 + 4 + 32 && out.compare(0, 10, "prefixtim ") == 0);
  for (std::size_t i = 10; i < out.size(); ++i)
    check((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = static_cast<std::uint8_t>(data[0] >> 2);
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] & 3) {
    case 0:
      scram_client(flags, in);
      break;
    case 1:
      scram_server(flags, in);
      break;
    case 2:
      cram_server(in);
      break;
    default:
      cram_client(in);
      break;
  }
  return 0;
}
