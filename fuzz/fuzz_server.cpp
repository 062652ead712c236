// Fuzz target for the server engine: random client bytes against a server
// with a random configuration (the first bytes pick it) and random
// decisions. Invariants, checked with abort():
//  - the whole input fed at once and fed in random chunks give the same
//    events and the same reply bytes (split invariance);
//  - the reply bytes parse as SMTP replies (wire::reply_reader), ending on a
//    reply boundary;
//  - while a STARTTLS handshake is pending no event is produced and no byte
//    is taken: plaintext after STARTTLS is never parsed as a command;
//  - the output backlog stays bounded and so does memory_reserved() (only the
//    output buffer grows, to its high-water mark).
//  - XCLIENT and XFORWARD produce no event unless the peer is trusted, and
//    mail_event::xforwarded is never set without an accepted XFORWARD.
// With bit 0 of data[4] a plugged-in SASL mechanism (X-FUZZ, below) is
// offered too; rejected OAUTHBEARER/XOAUTH2 tokens sometimes carry an RFC
// 7628 §3.2.2 JSON error (server_reply::oauth_error). Bits 1-7 of data[4]
// turn on the extensions of issue #9: XCLIENT/XFORWARD (trusted or not),
// LIMITS with MAILMAX and RCPTDOMAINMAX, DELIVERBY, MT-PRIORITY, RRVS and
// FUTURERELEASE.
#include <smtpwire/server.hpp>
#include <smtpwire/wire/reply.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

namespace {

using namespace smtpwire;

struct rng {
  std::uint32_t s;
  std::uint32_t next() {
    s = s * 1664525u + 1013904223u;
    return s >> 8;
  }
};

void check(bool ok) {
  if (!ok) std::abort();
}

// A plugged-in mechanism of three client messages: a user, the password
// "pw", then an empty answer to the server-final challenge. "!" anywhere is
// malformed; "bug" as the password sets done with a challenge.
class fuzz_mechanism final : public sasl_server_mechanism {
 public:
  std::string_view name() const noexcept override { return "X-FUZZ"; }
  errc start(std::string_view initial, bool present, std::string& challenge, bool& done) override {
    step_ = 0;
    user_.clear();
    if (!present) {
      challenge = "user";
      return errc::ok;
    }
    return respond(initial, challenge, done);
  }
  errc respond(std::string_view r, std::string& challenge, bool& done) override {
    if (r.find('!') != std::string_view::npos) return errc::sasl_message_invalid;
    switch (step_++) {
      case 0:
        user_.assign(r);
        challenge = "pass";
        return errc::ok;
      case 1:
        if (r == "bug") {
          challenge = "x";
          done = true;
          return errc::ok;
        }
        if (r != "pw") return errc::sasl_auth_failed;
        challenge = "v=final";
        return errc::ok;
      default:
        if (!r.empty()) return errc::sasl_message_invalid;
        done = true;
        return errc::ok;
    }
  }
  std::string_view authcid() const noexcept override { return user_; }
  std::string_view authzid() const noexcept override { return {}; }

 private:
  std::string user_;
  int step_ = 0;
};

server_config make_config(const std::uint8_t* d) {
  server_config c;
  c.host_name = "mx.example";
  const std::uint8_t a = d[0], b = d[1];
  c.tls_available = a & 1;
  c.extensions.chunking = a & 2;
  if (a & 4) {
    c.extensions.auth.add(wire::sasl::mechanism::plain);
    c.extensions.auth.add(wire::sasl::mechanism::login);
    c.extensions.auth.add(wire::sasl::mechanism::xoauth2);
    c.extensions.auth.add(wire::sasl::mechanism::oauthbearer);
    c.limits.max_auth_line = 2048;
  }
  c.policy.auth_only_over_tls = !(a & 8);
  c.lmtp = a & 16;
  c.extensions.smtputf8 = a & 32;
  c.extensions.binarymime = a & 64;
  c.extensions.dsn = a & 128;
  c.policy.require_tls = b & 1;
  c.policy.require_auth = b & 2;
  c.implicit_tls = (b & 4) && c.tls_available;
  c.leniency.bare_lf_in_data = b & 8;
  c.leniency.undeclared_8bit = b & 16;
  c.limits.input_buffer = (b & 32) ? 1 + d[2] % 64 : 1024;
  c.limits.max_errors = 1 + (b >> 6) * 8;
  c.limits.max_recipients = 1 + d[3] % 8;
  c.limits.max_message_size = 16 + d[3] * 4u;
  c.limits.max_commands = 200;
  c.limits.max_auth_failures = 1 + d[3] % 3;
  const std::uint8_t e = d[4];
  c.extensions.xclient = c.extensions.xforward = e & 6;
  c.xclient_trusted = e & 2;
  if (e & 8) {
    c.extensions.limits = true;
    c.limits.max_transactions = 1 + d[3] % 4;
    c.limits.max_recipient_domains = 1 + (d[3] >> 3) % 3;
  }
  if (e & 16) c.extensions.deliverby = (d[3] & 32) ? 60 : 0;
  if (e & 32) c.extensions.mt_priority = mt_priority_profile::mixer;
  c.extensions.rrvs = e & 64;
  if (e & 128) {
    c.extensions.futurerelease_max_interval = 3600;
    c.extensions.futurerelease_max_datetime = 1796533200;  // 2026-12-06T05:00:00Z
  }
  return c;
}

// Feeds `plain` then (after a successful STARTTLS handshake) `tls`, in chunks
// from `chunk_seed` (0: all at once), deciding by `decision_seed`.
std::string run(const server_config& cfg, bool plug, std::string_view plain, std::string_view tls,
                std::uint32_t chunk_seed, std::uint32_t decision_seed) {
  server s(cfg);
  fuzz_mechanism mech;
  if (plug) check(s.add_sasl_mechanism(mech) == errc::ok);
  const std::size_t reserved = s.memory_reserved();
  bool oauth = false;  // the pending auth decision is for an OAuth mechanism
  rng chunks{chunk_seed};
  rng decisions{decision_seed};
  std::string log, out;
  std::size_t after_starttls = 0;
  bool starttls = false;
  bool in_content = false;
  bool xforward_accepted = false;  // some XFORWARD was accepted in this session
  auto drain = [&] {
    for (int guard = 0; guard < 100000; ++guard) {
      const server_event ev = s.next_event();
      if (s.state() == server_state::tls_pending)
        check(std::holds_alternative<std::monostate>(ev) ||
              std::holds_alternative<starttls_event>(ev));
      if (!std::holds_alternative<std::monostate>(ev) &&
          !std::holds_alternative<content_event>(ev) && in_content) {
        log += "|";  // content pieces depend on the chunking; their concatenation does not
        in_content = false;
      }
      if (auto* c = std::get_if<content_event>(&ev)) {
        check(!c->bytes.empty());
        if (!in_content) log += "c:";
        in_content = true;
        log.append(c->bytes);
      } else if (auto* t = std::get_if<starttls_event>(&ev)) {
        starttls = true;
        after_starttls += t->discarded;
        log += "starttls|";
      } else if (auto* e = std::get_if<data_end_event>(&ev)) {
        log += "end:" + std::to_string(e->octets) + ":" +
               std::to_string(static_cast<int>(e->error)) + "|";
      } else if (auto* a = std::get_if<auth_event>(&ev)) {
        oauth = a->mechanism == wire::sasl::mechanism::oauthbearer ||
                a->mechanism == wire::sasl::mechanism::xoauth2;
        check(a->verified == (a->mechanism_name == "X-FUZZ"));
        log += "auth:" + std::string(a->mechanism_name) + ":" + std::string(a->authcid) + "|";
      } else if (std::holds_alternative<xclient_event>(ev) ||
                 std::holds_alternative<xforward_event>(ev)) {
        check(cfg.xclient_trusted);
        log += std::holds_alternative<xclient_event>(ev) ? "xclient|" : "xforward|";
      } else if (auto* m = std::get_if<mail_event>(&ev)) {
        check(!m->xforwarded || xforward_accepted);
        log += m->xforwarded ? "mail:x|" : "mail|";
      } else if (!std::holds_alternative<std::monostate>(ev)) {
        log += "e" + std::to_string(ev.index()) + "|";
      }
      check(s.output().size() <= cfg.limits.output_backlog + 4096);
      const bool had_output = !s.output().empty();
      out.append(s.output());
      check(s.consume_output(s.output().size()) == errc::ok);
      if (s.awaiting_decision()) {
        const std::uint32_t r = decisions.next() % 8;
        errc e;
        if (r == 6 && oauth && s.pending_decision() == server_decision::auth) {
          server_reply rep{535, "5.7.8", "Bad token"};
          rep.oauth_error = R"({"status":"invalid_token","scope":"mail"})";
          e = s.reject(rep);
        } else {
          const bool xforward = s.pending_decision() == server_decision::xforward;
          e = r < 5 ? s.accept() : r < 7 ? s.reject() : s.temp_fail();
          if (xforward && r < 5) xforward_accepted = true;
        }
        check(e == errc::ok);
        continue;
      }
      if (std::holds_alternative<std::monostate>(ev) && !had_output) return;
    }
    std::abort();  // no progress
  };
  auto feed = [&](std::string_view bytes, bool plaintext) {
    while (!bytes.empty()) {
      std::size_t n = bytes.size();
      if (chunk_seed != 0) n = 1 + chunks.next() % (n < 64 ? n : 64);
      std::string_view part = bytes.substr(0, n);
      const std::size_t took = s.receive(part);
      if (took == 0) {
        if (s.closed()) return;
        if (s.state() == server_state::tls_pending) {
          check(plaintext);
          after_starttls += part.size();
          bytes.remove_prefix(part.size());
          continue;
        }
        drain();
        if (s.receive(std::string_view()) != 0) std::abort();
        const std::size_t again = s.receive(part);
        if (again == 0 && !s.closed() && s.state() != server_state::tls_pending) std::abort();
        bytes.remove_prefix(again);
        drain();
        continue;
      }
      bytes.remove_prefix(took);
      drain();
    }
  };
  if (cfg.implicit_tls) check(s.tls_established(tls_info{"TLSv1.3", "X", false, {}}) == errc::ok);
  drain();
  feed(plain, true);
  if (starttls && s.state() == server_state::tls_pending) {
    log += "handshake:" + std::to_string(after_starttls) + "|";
    if (after_starttls == 0)
      check(s.tls_established(tls_info{"TLSv1.3", "X", false, {}}) == errc::ok);
    else
      check(s.tls_failed() == errc::ok);
    drain();
    feed(tls, false);
  } else {
    feed(tls, true);  // no handshake happened: the rest is plaintext too
    if (starttls && s.state() == server_state::tls_pending)
      log += "handshake:" + std::to_string(after_starttls) + "|";
  }
  drain();
  check(s.memory_reserved() <= reserved + 2 * (cfg.limits.output_backlog + 4096) + 512);
  // Replies are well-formed and end on a reply boundary.
  wire::reply_reader reader;
  std::string_view rest = out;
  while (!rest.empty()) {
    const wire::reply_result r = reader.read(rest);
    check(r.status != wire::reply_status::error);
    rest.remove_prefix(r.consumed);
    if (r.status == wire::reply_status::need_more) break;
  }
  check(rest.empty() && reader.idle());
  return log + "#" + out + "#" + std::string(to_string(s.state()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 6) return 0;
  const server_config cfg = make_config(data);
  const std::uint32_t seed = static_cast<std::uint32_t>(data[4]) << 8 | data[2];
  const std::size_t split = data[5];
  const std::string_view input(reinterpret_cast<const char*>(data + 6), size - 6);
  const std::string_view plain = input.substr(0, split < input.size() ? input.size() - split : 0);
  const std::string_view tls = input.substr(plain.size());
  const bool plug = data[4] & 1;
  const std::string whole = run(cfg, plug, plain, tls, 0, seed);
  const std::string chunked = run(cfg, plug, plain, tls, seed | 1, seed);
  check(whole == chunked);
  return 0;
}
