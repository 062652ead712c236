// Tests of the server engine (include/smtpwire/server.hpp). First a driver: runs a whole dialogue
// (client bytes in, scripted decisions) and returns a log of events plus the reply bytes, so that
// vectors and the grind helper can compare runs.

#include <smtpwire/server.hpp>
#include <smtpwire/wire/ehlo.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"
#include "support/vectors.hpp"

namespace smtpwire::test {

/// Builds a server_config from "key=value" lines (see tests/vectors/server.md).
inline server_config make_server_config(const std::vector<std::string>& lines) {
  server_config c;
  c.host_name = "mx.example";
  for (const std::string& l : lines) {
    const auto eq = l.find('=');
    const std::string k = l.substr(0, eq);
    const std::string v = eq == std::string::npos ? "1" : l.substr(eq + 1);
    const bool on = v != "0";
    const auto num = [&] {
      return static_cast<std::size_t>(std::strtoull(v.c_str(), nullptr, 10));
    };
    if (k == "host")
      c.host_name = v;
    else if (k == "tls")
      c.tls_available = on;
    else if (k == "implicit_tls")
      c.implicit_tls = on;
    else if (k == "lmtp")
      c.lmtp = on;
    else if (k == "chunking")
      c.extensions.chunking = on;
    else if (k == "binarymime")
      c.extensions.binarymime = on;
    else if (k == "smtputf8")
      c.extensions.smtputf8 = on;
    else if (k == "dsn")
      c.extensions.dsn = on;
    else if (k == "requiretls")
      c.extensions.requiretls = on;
    else if (k == "size")
      c.extensions.size = on;
    else if (k == "eightbitmime")
      c.extensions.eightbitmime = on;
    else if (k == "pipelining")
      c.extensions.pipelining = on;
    else if (k == "enhanced")
      c.extensions.enhancedstatuscodes = on;
    else if (k == "auth") {
      std::size_t from = 0;
      while (from <= v.size()) {
        const auto comma = v.find(',', from);
        const std::string name =
            v.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
        c.extensions.auth.add(wire::sasl::find_mechanism(name));
        if (comma == std::string::npos) break;
        from = comma + 1;
      }
    } else if (k == "auth_plaintext")
      c.policy.auth_only_over_tls = !on;
    else if (k == "require_tls")
      c.policy.require_tls = on;
    else if (k == "require_auth")
      c.policy.require_auth = on;
    else if (k == "enforce_body")
      c.policy.enforce_body = on;
    else if (k == "undeclared_8bit")
      c.leniency.undeclared_8bit = on;
    else if (k == "bare_lf_in_data")
      c.leniency.bare_lf_in_data = on;
    else if (k == "max_errors")
      c.limits.max_errors = num();
    else if (k == "max_recipients")
      c.limits.max_recipients = num();
    else if (k == "max_message_size")
      c.limits.max_message_size = num();
    else if (k == "max_commands")
      c.limits.max_commands = num();
    else if (k == "max_auth_failures")
      c.limits.max_auth_failures = num();
    else if (k == "input_buffer")
      c.limits.input_buffer = num();
    else if (k == "max_command_line")
      c.limits.max_command_line = num();
    else if (k == "max_auth_line")
      c.limits.max_auth_line = num();
    else if (k == "xclient")
      c.extensions.xclient = on;
    else if (k == "xforward")
      c.extensions.xforward = on;
    else if (k == "trusted")
      c.xclient_trusted = on;
    else if (k == "limits")
      c.extensions.limits = on;
    else if (k == "max_transactions")
      c.limits.max_transactions = num();
    else if (k == "max_recipient_domains")
      c.limits.max_recipient_domains = num();
    else if (k == "deliverby")
      c.extensions.deliverby = static_cast<std::uint32_t>(num());
    else if (k == "mt_priority")
      c.extensions.mt_priority = v == "unnamed"      ? mt_priority_profile::unnamed
                                 : v == "mixer"      ? mt_priority_profile::mixer
                                 : v == "stanag4406" ? mt_priority_profile::stanag4406
                                 : v == "nsep"       ? mt_priority_profile::nsep
                                                     : mt_priority_profile::off;
    else if (k == "rrvs")
      c.extensions.rrvs = on;
    else if (k == "futurerelease") {  // futurerelease=<max interval>,<max date-time, epoch s>
      const auto comma = v.find(',');
      c.extensions.futurerelease_max_interval =
          static_cast<std::uint32_t>(std::strtoul(v.substr(0, comma).c_str(), nullptr, 10));
      if (comma != std::string::npos)
        c.extensions.futurerelease_max_datetime =
            std::strtoll(v.substr(comma + 1).c_str(), nullptr, 10);
    } else if (k == "mech")
      continue;  // a plugged-in test mechanism: see run_server
    else
      FAIL("unknown config key " << k);
  }
  return c;
}

inline std::string_view decision_name(server_decision d) {
  switch (d) {
    case server_decision::connect:
      return "connect";
    case server_decision::hello:
      return "hello";
    case server_decision::mail:
      return "mail";
    case server_decision::rcpt:
      return "rcpt";
    case server_decision::data_start:
      return "data-start";
    case server_decision::data_end:
      return "data-end";
    case server_decision::auth:
      return "auth";
    case server_decision::verify:
      return "verify";
    case server_decision::xclient:
      return "xclient";
    case server_decision::xforward:
      return "xforward";
    case server_decision::none:
      break;
  }
  return "none";
}

/// " NAME=raw ADDR=[UNAVAILABLE] …" in xattr order.
inline std::string xattr_text(const wire::xattributes& a) {
  std::string s;
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const auto x = static_cast<wire::xattr>(i);
    const wire::xvalue_kind k = a.get(x);
    if (k == wire::xvalue_kind::absent) continue;
    s += " " + std::string(wire::to_string(x)) + "=" +
         std::string(k == wire::xvalue_kind::value ? a.value(x) : wire::to_string(k));
  }
  return s;
}

inline std::string path_text(const wire::path& p) {
  if (p.null) return "<>";
  std::string s = "<";
  if (!p.source_route.empty()) s.append(p.source_route).append(":");
  s.append(p.address.local_part);
  if (!p.postmaster) s.append("@").append(p.address.domain);
  return s + ">";
}

/// One scripted decision: "<kind> <n> accept|reject|tempfail [code [enh] text...] [json=...]"
/// applies to the n-th decision of that kind (1-based); others are accepted. Everything after
/// "json=" is the server_reply::oauth_error (RFC 7628 §3.2.2).
struct scripted_decision {
  std::string verdict;
  server_reply reply;
  std::string enh, text, json;
  bool custom = false;
};

inline std::map<std::string, scripted_decision> parse_decisions(
    const std::vector<std::string>& lines) {
  std::map<std::string, scripted_decision> m;
  for (const std::string& l : lines) {
    std::vector<std::string> w;
    std::size_t i = 0;
    while (i < l.size() && w.size() < 4) {
      const auto sp = l.find(' ', i);
      w.push_back(l.substr(i, sp == std::string::npos ? std::string::npos : sp - i));
      if (sp == std::string::npos) {
        i = l.size();
        break;
      }
      i = sp + 1;
    }
    REQUIRE(w.size() >= 3);
    scripted_decision d;
    d.verdict = w[2];
    if (w.size() >= 4) {
      d.custom = true;
      d.reply.code = std::atoi(w[3].c_str());
      std::string rest = i < l.size() ? l.substr(i) : std::string();
      if (!rest.empty() && rest[0] >= '2' && rest[0] <= '5' && rest.size() > 1 && rest[1] == '.') {
        const auto sp = rest.find(' ');
        d.enh = rest.substr(0, sp);
        rest = sp == std::string::npos ? std::string() : rest.substr(sp + 1);
      }
      const auto json = rest.find("json=");
      if (json != std::string::npos) {
        d.json = rest.substr(json + 5);
        rest = rest.substr(0, json == 0 ? 0 : json - 1);
      }
      d.text = rest;
    }
    m[w[0] + " " + w[1]] = d;
  }
  return m;
}

/// A test-only SASL mechanism of three client messages: the user ("authzid,authcid" or
/// "authcid"; the initial response may carry it), the password "secret", then an empty
/// answer to the server-final challenge "v=ok" (the RFC 4954 §4 shape SCRAM uses). A user
/// holding '!' is malformed (501), a wrong password fails (535), the password "bug" makes
/// the mechanism misbehave (done with a challenge).
class toy_mechanism final : public sasl_server_mechanism {
 public:
  explicit toy_mechanism(std::string name) : name_(std::move(name)) {}
  std::string_view name() const noexcept override { return name_; }
  errc start(std::string_view initial, bool present, std::string& challenge, bool& done) override {
    step_ = 0;
    user_.clear();
    if (!present) {
      challenge = "user?";
      return errc::ok;
    }
    return respond(initial, challenge, done);
  }
  errc respond(std::string_view response, std::string& challenge, bool& done) override {
    switch (step_++) {
      case 0:
        if (response.empty() || response.find('!') != std::string_view::npos)
          return errc::sasl_message_invalid;
        user_.assign(response);
        challenge = "pass?";
        return errc::ok;
      case 1:
        if (response == "bug") {
          challenge = "oops";
          done = true;
          return errc::ok;
        }
        if (response != "secret") return errc::sasl_auth_failed;
        challenge = "v=ok";
        return errc::ok;
      case 2:
        if (!response.empty()) return errc::sasl_message_invalid;
        done = true;
        return errc::ok;
      default:
        return errc::sasl_message_invalid;
    }
  }
  std::string_view authcid() const noexcept override {
    const auto comma = user_.find(',');
    return comma == std::string::npos ? std::string_view(user_)
                                      : std::string_view(user_).substr(comma + 1);
  }
  std::string_view authzid() const noexcept override {
    const auto comma = user_.find(',');
    return comma == std::string::npos ? std::string_view()
                                      : std::string_view(user_).substr(0, comma);
  }

 private:
  std::string name_;
  std::string user_;
  int step_ = 0;
};

/// Runs a dialogue. `chunks` are the client's bytes; the first `plain_size`
/// octets (all of them when npos) are plaintext, the rest is what the client
/// sends inside TLS after a STARTTLS. Decisions are made at once, as
/// scripted. `mechs` names toy_mechanism instances to plug in. Returns the
/// event log and the replies.
struct session_log {
  std::string events;
  std::string output;
};

inline session_log run_server(const server_config& cfg, const std::vector<std::string_view>& chunks,
                              const std::map<std::string, scripted_decision>& script,
                              std::size_t plain_size = std::string_view::npos,
                              const std::vector<std::string>& mechs = {}) {
  server s(cfg);
  std::vector<toy_mechanism> toys;
  toys.reserve(mechs.size());
  for (const std::string& m : mechs) {
    toys.emplace_back(m);
    REQUIRE(s.add_sasl_mechanism(toys.back()) == errc::ok);
  }
  session_log log;
  std::map<std::string, int> counts;
  std::string content;
  bool starttls = false;
  std::size_t after_starttls = 0;
  auto flush_content = [&] {
    if (!content.empty()) log.events += "content \"" + escape(content) + "\"\n";
    content.clear();
  };
  auto decide = [&] {
    const std::string kind(decision_name(s.pending_decision()));
    const std::string key = kind + " " + std::to_string(++counts[kind]);
    auto it = script.find(key);
    errc e = errc::ok;
    if (it == script.end()) {
      e = s.accept();
    } else {
      server_reply r = it->second.reply;
      r.enhanced = it->second.enh;
      r.text = it->second.text;
      r.oauth_error = it->second.json;
      const std::string& v = it->second.verdict;
      if (v == "accept")
        e = it->second.custom ? s.accept(r) : s.accept();
      else if (v == "reject")
        e = it->second.custom ? s.reject(r) : s.reject();
      else if (v == "tempfail")
        e = it->second.custom ? s.temp_fail(r) : s.temp_fail();
      else
        FAIL("bad verdict " << v);
    }
    if (e != errc::ok) log.events += "decision-error " + std::string(to_string(e)) + "\n";
  };
  auto log_event = [&](const server_event& ev) {
    if (!std::holds_alternative<content_event>(ev) && !std::holds_alternative<std::monostate>(ev))
      flush_content();
    if (auto* c = std::get_if<content_event>(&ev)) {
      REQUIRE_FALSE(c->bytes.empty());
      content.append(c->bytes);
    } else if (std::holds_alternative<connect_event>(ev)) {
      log.events += "connect\n";
    } else if (auto* h = std::get_if<hello_event>(&ev)) {
      log.events += std::string(wire::to_string(h->verb)) + " " + std::string(h->domain) + "\n";
    } else if (auto* m = std::get_if<mail_event>(&ev)) {
      log.events += "mail " + path_text(m->reverse_path);
      if (m->params.size) log.events += " size=" + std::to_string(*m->params.size);
      if (m->params.body)
        log.events += " body=" + std::to_string(static_cast<int>(*m->params.body));
      if (m->params.smtputf8) log.events += " smtputf8";
      if (m->params.auth) log.events += " auth=" + std::string(*m->params.auth);
      if (m->params.mt_priority)
        log.events += " mt-priority=" + std::to_string(*m->params.mt_priority);
      if (m->params.by)
        log.events += " by=" + std::to_string(m->params.by->time) +
                      (m->params.by->mode == wire::by_mode::return_message ? ";R" : ";N") +
                      (m->params.by->trace ? "T" : "");
      if (m->params.holdfor) log.events += " holdfor=" + std::to_string(*m->params.holdfor);
      if (m->params.holduntil) log.events += " holduntil=" + std::string(*m->params.holduntil);
      if (m->xforwarded) log.events += " xforwarded";
      log.events += "\n";
    } else if (auto* r = std::get_if<rcpt_event>(&ev)) {
      log.events += "rcpt " + path_text(r->forward_path);
      if (r->params.rrvs)
        log.events +=
            " rrvs=" + std::string(r->params.rrvs->date_time) +
            (r->params.rrvs->action != 0 ? std::string(";") + r->params.rrvs->action : "");
      log.events += "\n";
    } else if (auto* xc = std::get_if<xclient_event>(&ev)) {
      log.events += "xclient" + xattr_text(xc->attributes) + "\n";
    } else if (auto* xf = std::get_if<xforward_event>(&ev)) {
      log.events += std::string("xforward") + (xf->initial ? " initial" : "") +
                    xattr_text(xf->attributes) + "\n";
    } else if (auto* d = std::get_if<data_start_event>(&ev)) {
      log.events += d->bdat ? "data-start bdat\n" : "data-start\n";
    } else if (auto* e = std::get_if<data_end_event>(&ev)) {
      log.events += "data-end octets=" + std::to_string(e->octets) + (e->eight_bit ? " 8bit" : "") +
                    (e->long_lines ? " long-lines" : "") +
                    (e->error != errc::ok ? " error=" + std::string(to_string(e->error)) : "") +
                    "\n";
    } else if (auto* a = std::get_if<auth_event>(&ev)) {
      log.events += "auth " + std::string(a->mechanism_name) + " [" + escape(a->authzid) + "] [" +
                    escape(a->authcid) + "] [" + escape(a->secret) + "]" +
                    (a->verified ? " verified" : "") + "\n";
    } else if (auto* v = std::get_if<verify_event>(&ev)) {
      log.events += std::string(wire::to_string(v->verb)) + " " + std::string(v->argument) + "\n";
    } else if (auto* t = std::get_if<starttls_event>(&ev)) {
      starttls = true;
      after_starttls += t->discarded;
      log.events += "starttls\n";
    } else if (auto* x = std::get_if<rejected_event>(&ev)) {
      log.events += "rejected " +
                    std::string(x->verb == wire::verb::unknown ? "?" : wire::to_string(x->verb)) +
                    " " + std::to_string(x->code) +
                    (x->error != errc::ok ? " " + std::string(to_string(x->error)) : "") + "\n";
    } else if (auto* cl = std::get_if<closed_event>(&ev)) {
      log.events += "closed " + std::string(to_string(cl->reason)) + "\n";
    }
  };
  auto drain = [&] {
    for (int guard = 0; guard < 1000000; ++guard) {
      const server_event ev = s.next_event();
      log_event(ev);
      const bool had_output = !s.output().empty();
      log.output.append(s.output());
      REQUIRE(s.consume_output(s.output().size()) == errc::ok);
      if (s.awaiting_decision()) {
        decide();
        continue;
      }
      // Output was drained above: a paused engine may go on.
      if (std::holds_alternative<std::monostate>(ev) && !had_output) return;
    }
    FAIL("server made no progress");
  };
  auto handshake = [&] {
    if (!starttls || s.state() != server_state::tls_pending) return;
    log.events += "handshake plaintext-after=" + std::to_string(after_starttls) + "\n";
    if (after_starttls != 0) {
      log.events += "tls-failed\n";
      REQUIRE(s.tls_failed() == errc::ok);
    } else {
      tls_info info{"TLSv1.3", "TLS_AES_256_GCM_SHA384", false, {}};
      REQUIRE(s.tls_established(info) == errc::ok);
    }
    starttls = false;
    drain();
  };
  if (cfg.implicit_tls) {
    tls_info info{"TLSv1.3", "TLS_AES_256_GCM_SHA384", false, {}};
    REQUIRE(s.tls_established(info) == errc::ok);
  }
  drain();
  std::size_t offset = 0;
  for (std::string_view chunk : chunks) {
    while (!chunk.empty()) {
      std::string_view part = chunk;
      if (offset < plain_size && plain_size - offset < part.size())
        part = part.substr(0, plain_size - offset);
      if (offset == plain_size) handshake();
      std::size_t n = s.receive(part);
      if (n == 0) {
        if (s.closed() || s.state() == server_state::tls_pending) {
          if (!s.closed() && offset < plain_size) after_starttls += part.size();
          n = part.size();
        } else {
          drain();
          n = s.receive(part);
          if (n == 0) FAIL("receive took nothing in state " << to_string(s.state()));
        }
      }
      offset += n;
      chunk.remove_prefix(n);
      drain();
    }
  }
  if (offset == plain_size || plain_size == std::string_view::npos) handshake();
  drain();
  flush_content();
  log.events += "state " + std::string(to_string(s.state())) + "\n";
  return log;
}

}  // namespace smtpwire::test

using namespace smtpwire;
using smtpwire::test::run_server;

namespace {

void run_vector_file(const std::string& file) {
  for (const auto& v : test::load_vectors(file)) {
    INFO(v.file << ":" << v.line << " " << v.name);
    const server_config cfg =
        test::make_server_config(v.has("config") ? v.lines("config") : std::vector<std::string>{});
    const auto script =
        test::parse_decisions(v.has("decide") ? v.lines("decide") : std::vector<std::string>{});
    const std::string plain = v.bytes("input");
    const std::string tls = v.has("tls") ? v.bytes("tls") : std::string();
    const std::string all = plain + tls;
    const std::size_t plain_size = v.has("tls") ? plain.size() : std::string_view::npos;
    std::vector<std::string> mechs;
    if (v.has("config"))
      for (const std::string& l : v.lines("config"))
        if (l.rfind("mech=", 0) == 0) mechs.push_back(l.substr(5));
    test::grind_options go;
    go.max_chunk_size = 24;
    go.random_rounds = 24;
    const std::string got = test::grind(
        all,
        [&](const std::vector<std::string_view>& chunks) {
          const auto l = run_server(cfg, chunks, script, plain_size, mechs);
          return l.events + "--\n" + l.output;
        },
        go);
    const auto sep = got.find("--\n");
    const std::string events = got.substr(0, sep);
    const std::string output = got.substr(sep + 3);
    if (std::getenv("SMTPWIRE_PRINT_VECTORS") != nullptr) {
      std::printf("## %s\n```events\n%s```\n```output\n", v.name.c_str(), events.c_str());
      std::size_t from = 0;
      while (from < output.size()) {
        auto nl = output.find("\r\n", from);
        nl = nl == std::string::npos ? output.size() : nl + 2;
        std::printf("%s\n", test::escape(output.substr(from, nl - from)).c_str());
        from = nl;
      }
      std::printf("```\n\n");
    }
    CHECK(events == v.text("events") + "\n");
    CHECK(test::escape(output) == test::escape(v.bytes("output")));
  }
}

}  // namespace

TEST_CASE("server dialogues from RFC examples and attack classes", "[server][vectors]") {
  run_vector_file("server.md");
}

TEST_CASE(
    "server dialogues: XCLIENT, XFORWARD, LIMITS, DELIVERBY, MT-PRIORITY, RRVS, FUTURERELEASE",
    "[server][vectors][ext]") {
  run_vector_file("server-ext.md");
}

namespace {

// The basic code of the first reply the server sends after `setup`, when
// the client then sends `command` (a full line, CRLF included).
int reply_code_after(const server_config& cfg, const std::string& setup, const std::string& command,
                     const std::map<std::string, test::scripted_decision>& script) {
  const auto before = run_server(cfg, {setup}, script);
  const std::string all = setup + command;
  const auto after = run_server(cfg, {all}, script);
  REQUIRE(after.output.size() > before.output.size());
  REQUIRE(after.output.compare(0, before.output.size(), before.output) == 0);
  return std::atoi(after.output.substr(before.output.size(), 3).c_str());
}

}  // namespace

TEST_CASE("transition table: every (state, command) pair gets the reply class of its rule",
          "[server][table]") {
  using wire::verb;
  const char* const verbs[] = {"HELO c.example\r\n",
                               "EHLO c.example\r\n",
                               "LHLO c.example\r\n",
                               "MAIL FROM:<x@y.example>\r\n",
                               "RCPT TO:<z@y.example>\r\n",
                               "DATA\r\n",
                               "BDAT 1 LAST\r\nq",
                               "RSET\r\n",
                               "VRFY x\r\n",
                               "EXPN x\r\n",
                               "HELP\r\n",
                               "NOOP\r\n",
                               "QUIT\r\n",
                               "STARTTLS\r\n",
                               "AUTH PLAIN AHUAcA==\r\n",
                               "XCLIENT NAME=spike.porcupine.org\r\n",
                               "XFORWARD NAME=spike.porcupine.org\r\n",
                               "FOO\r\n"};
  static_assert(sizeof(verbs) / sizeof(verbs[0]) == detail::server_verb_count, "one line per verb");
  for (int lmtp = 0; lmtp < 2; ++lmtp) {
    server_config cfg =
        test::make_server_config({"tls=1", "chunking=1", "auth=PLAIN", "auth_plaintext=1",
                                  "max_errors=100", "xclient=1", "xforward=1", "trusted=1"});
    cfg.lmtp = lmtp == 1;
    const std::string hello = lmtp ? "LHLO c.example\r\n" : "EHLO c.example\r\n";
    struct setup_case {
      server_state state;
      std::string bytes;
      bool refuse_connect;
    };
    const setup_case setups[] = {
        {server_state::awaiting_hello, "", false},
        {server_state::awaiting_mail, hello, false},
        {server_state::awaiting_rcpt, hello + "MAIL FROM:<a@b.example>\r\n", false},
        {server_state::awaiting_data,
         hello + "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n", false},
        {server_state::awaiting_bdat,
         hello + "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 1\r\nx", false},
        {server_state::greeting_refused, "", true},
    };
    for (const auto& st : setups) {
      std::map<std::string, test::scripted_decision> script;
      if (st.refuse_connect) script = test::parse_decisions({"connect 1 reject"});
      // The setup really reaches the state.
      REQUIRE(run_server(cfg, {st.bytes}, script)
                  .events.find("state " + std::string(to_string(st.state))) != std::string::npos);
      for (std::size_t i = 0; i < detail::server_verb_count; ++i) {
        const auto v = static_cast<verb>(i);
        const bool hello_verb = v == verb::helo || v == verb::ehlo || v == verb::lhlo;
        if (hello_verb && (v == verb::lhlo) != cfg.lmtp &&
            st.state != server_state::greeting_refused)
          continue;  // the other protocol's hello is an unknown command (500)
        INFO("lmtp " << lmtp << " state " << to_string(st.state) << " command " << verbs[i]);
        const int code = reply_code_after(cfg, st.bytes, verbs[i], script);
        switch (sequence_rule(st.state, v)) {
          case server_rule::out_of_sequence:
            CHECK(code == 503);
            break;
          case server_rule::no_recipients:
            CHECK(code == 554);
            break;
          case server_rule::allowed:
            CHECK(code != 503);
            CHECK(code != 554);
            CHECK(code >= 200);
            break;
        }
      }
    }
  }
  // States that do not read commands answer out_of_sequence for every verb.
  for (auto s : {server_state::connecting, server_state::in_data, server_state::in_bdat,
                 server_state::in_auth, server_state::tls_pending, server_state::closed})
    for (std::size_t i = 0; i < detail::server_verb_count; ++i)
      CHECK(sequence_rule(s, static_cast<wire::verb>(i)) == server_rule::out_of_sequence);
  for (std::size_t i = 0; i < server_state_count; ++i)
    CHECK(to_string(static_cast<server_state>(i)) != "unknown");
}

namespace {
server_config plain_config() {
  server_config c;
  c.host_name = "mx.example";
  return c;
}
std::string drain_output(server& s) {
  std::string o(s.output());
  REQUIRE(s.consume_output(o.size()) == errc::ok);
  return o;
}
}  // namespace

TEST_CASE("decisions made later hold back later replies, never reorder them",
          "[server][pipelining]") {
  server s(plain_config());
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  CHECK(drain_output(s) == "220 mx.example ESMTP\r\n");
  const std::string_view burst =
      "EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<x@mx.example>\r\nNOOP\r\n";
  REQUIRE(s.receive(burst) == burst.size());
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  // Undecided: nothing more is parsed and nothing is written.
  CHECK(std::holds_alternative<std::monostate>(s.next_event()));
  CHECK(s.output().empty());
  CHECK(s.pending_decision() == server_decision::hello);
  REQUIRE(s.accept() == errc::ok);
  CHECK(drain_output(s).rfind("250-mx.example\r\n", 0) == 0);
  auto ev = s.next_event();
  REQUIRE(std::holds_alternative<mail_event>(ev));
  // More bytes arrive (the input buffer is compacted) while MAIL is undecided.
  REQUIRE(s.receive("RCPT TO:<y@mx.example>\r\nQUIT\r\n") > 0);
  CHECK(std::holds_alternative<std::monostate>(s.next_event()));
  CHECK(s.output().empty());
  REQUIRE(s.accept() == errc::ok);
  REQUIRE(std::holds_alternative<rcpt_event>(s.next_event()));
  REQUIRE(s.temp_fail(server_reply{451, "4.7.1", "Greylisted, try later"}) == errc::ok);
  auto r2 = s.next_event();  // the NOOP is answered on the way
  REQUIRE(std::holds_alternative<rcpt_event>(r2));
  CHECK(test::path_text(std::get<rcpt_event>(r2).forward_path) == "<y@mx.example>");
  REQUIRE(s.accept() == errc::ok);
  auto last = s.next_event();
  REQUIRE(std::holds_alternative<closed_event>(last));
  CHECK(drain_output(s) ==
        "250 2.1.0 Ok\r\n451 4.7.1 Greylisted, try later\r\n250 2.0.0 Ok\r\n250 2.1.5 Ok\r\n"
        "221 2.0.0 mx.example Service closing transmission channel\r\n");
  CHECK(s.closed());
  CHECK(s.receive("NOOP\r\n") == 0);
}

TEST_CASE("application replies: no injection, long text folds, classes are checked",
          "[server][reply]") {
  server s(plain_config());
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  drain_output(s);
  REQUIRE(s.receive("HELO c.example\r\nMAIL FROM:<a@c.example>\r\n") > 0);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  drain_output(s);
  REQUIRE(std::holds_alternative<mail_event>(s.next_event()));
  CHECK(s.reject(server_reply{550, "5.7.1", "bad\r\n250 2.1.0 Ok"}) == errc::api_value_invalid);
  CHECK(s.reject(server_reply{550, "5.7.1", std::string_view("nul\0x", 5)}) ==
        errc::api_value_invalid);
  CHECK(s.reject(server_reply{450, "4.7.1", "wrong class"}) == errc::api_value_invalid);
  CHECK(s.reject(server_reply{550, "4.7.1", "enhanced class differs"}) == errc::api_value_invalid);
  CHECK(s.accept(server_reply{550, "", "not positive"}) == errc::api_value_invalid);
  CHECK(s.temp_fail(server_reply{250, "", "not transient"}) == errc::api_value_invalid);
  CHECK(s.output().empty());
  CHECK(s.awaiting_decision());
  const std::string long_text(2000, 'x');
  REQUIRE(s.reject(server_reply{550, "5.7.1", long_text}) == errc::ok);
  const std::string out = drain_output(s);
  auto parsed = wire::parse_reply(out);
  REQUIRE(parsed);
  CHECK(parsed->code == 550);
  CHECK(parsed->lines.size() > 3);
  std::string joined;
  for (const auto& l : parsed->lines)
    joined += l;
  CHECK(joined == long_text);
  std::size_t from = 0;
  while (from < out.size()) {
    const auto nl = out.find("\r\n", from);
    CHECK(nl + 2 - from <= 512);
    from = nl + 2;
  }
  CHECK(s.accept() == errc::api_bad_state);
}

TEST_CASE("STARTTLS: buffered plaintext is dropped and counted, then refused",
          "[server][starttls]") {
  server_config cfg = plain_config();
  cfg.tls_available = true;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  CHECK(s.tls_established(tls_info{}) == errc::api_bad_state);
  const std::string_view injected = "RSET\r\nMAIL FROM:<evil@x.example>\r\nRCP";
  const std::string burst = "EHLO c.example\r\nSTARTTLS\r\n" + std::string(injected);
  REQUIRE(s.receive(burst) == burst.size());
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  auto ev = s.next_event();
  REQUIRE(std::holds_alternative<starttls_event>(ev));
  CHECK(std::get<starttls_event>(ev).discarded == injected.size());
  CHECK(s.state() == server_state::tls_pending);
  CHECK(s.receive("NOOP\r\n") == 0);
  CHECK(std::holds_alternative<std::monostate>(s.next_event()));
  CHECK(drain_output(s).find("220 2.0.0 Ready to start TLS\r\n") != std::string::npos);
  REQUIRE(s.tls_established(tls_info{"TLSv1.3", "TLS_AES_128_GCM_SHA256", false, {}}) == errc::ok);
  CHECK(s.tls_active());
  CHECK(s.state() == server_state::awaiting_hello);
  REQUIRE(s.receive("MAIL FROM:<a@c.example>\r\nEHLO c.example\r\n") > 0);
  auto r = s.next_event();
  REQUIRE(std::holds_alternative<rejected_event>(r));
  CHECK(std::get<rejected_event>(r).code == 503);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  const std::string ehlo = drain_output(s);
  CHECK(ehlo.find("STARTTLS") == std::string::npos);
}

TEST_CASE("timeouts: deadlines per state, 421 4.4.2 on expiry", "[server][timeout]") {
  using namespace std::chrono;
  const steady_clock::time_point t0{hours(1)};
  server s(plain_config());
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  s.check_time(t0);
  CHECK(s.deadline() == steady_clock::time_point::max());  // a decision is pending
  REQUIRE(s.accept() == errc::ok);
  CHECK(s.deadline() == steady_clock::time_point::max());  // clock not armed yet
  s.check_time(t0);
  CHECK(s.deadline() == t0 + minutes(5));
  s.check_time(t0 + minutes(4));
  CHECK_FALSE(s.closed());
  // Bytes arriving restart the wait.
  REQUIRE(s.receive("NO") == 2);
  s.check_time(t0 + minutes(4));
  CHECK(s.deadline() == t0 + minutes(9));
  s.check_time(t0 + minutes(9));
  CHECK(s.closed());
  REQUIRE(std::holds_alternative<closed_event>(s.next_event()));
  CHECK(drain_output(s) ==
        "220 mx.example ESMTP\r\n421 4.4.2 mx.example Timeout, closing connection\r\n");

  server_config cfg = plain_config();
  cfg.timeouts.data = seconds(30);
  server d(cfg);
  REQUIRE(std::holds_alternative<connect_event>(d.next_event()));
  REQUIRE(d.accept() == errc::ok);
  const std::string_view head =
      "HELO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\nabc";
  REQUIRE(d.receive(head) == head.size());
  for (int i = 0; i < 4; ++i) {
    REQUIRE(d.awaiting_decision() == false);
    (void)d.next_event();
    REQUIRE(d.accept() == errc::ok);
  }
  REQUIRE(std::holds_alternative<content_event>(d.next_event()));
  CHECK(d.state() == server_state::in_data);
  d.check_time(t0);
  CHECK(d.deadline() == t0 + seconds(30));
}

TEST_CASE("memory stays bounded under a pipelined flood with unread replies", "[server][limits]") {
  server_config cfg = plain_config();
  cfg.limits.max_recipients = 1000000;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  REQUIRE(s.receive("HELO c.example\r\nMAIL FROM:<a@c.example>\r\n") > 0);
  for (int i = 0; i < 2; ++i) {
    (void)s.next_event();
    REQUIRE(s.accept() == errc::ok);
  }
  const std::string line = "RCPT TO:<someone@mx.example>\r\n";
  std::string flood;
  for (int i = 0; i < 2000; ++i)
    flood += line;
  std::string_view rest = flood;
  std::size_t idle_rounds = 0;
  while (!rest.empty() && idle_rounds < 3) {
    const std::size_t n = s.receive(rest);
    rest.remove_prefix(n);
    idle_rounds = n == 0 ? idle_rounds + 1 : 0;
    for (;;) {
      auto ev = s.next_event();
      if (s.awaiting_decision()) {
        REQUIRE(s.accept() == errc::ok);
        continue;
      }
      if (std::holds_alternative<std::monostate>(ev)) break;
    }
    CHECK(s.output().size() <= cfg.limits.output_backlog + 512);
  }
  CHECK_FALSE(rest.empty());  // the engine stopped taking bytes: nobody reads its replies
  const std::size_t reserved = s.memory_reserved();
  drain_output(s);
  for (;;) {  // and goes on once they are read
    (void)s.next_event();
    if (!s.awaiting_decision()) break;
    REQUIRE(s.accept() == errc::ok);
  }
  CHECK(s.receive(rest) > 0);
  CHECK(s.memory_reserved() == reserved);
}

TEST_CASE("API misuse is reported as api_* errors, not peer errors", "[server][api]") {
  server s(plain_config());
  CHECK(s.accept() == errc::api_bad_state);
  CHECK(s.tls_failed() == errc::api_bad_state);
  CHECK(s.consume_output(1) == errc::api_value_invalid);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  CHECK(s.accept(server_reply{250, "", "not 220"}) == errc::api_value_invalid);
  CHECK(s.accept(server_reply{220, "", "mx.example custom banner"}) == errc::ok);
  CHECK(drain_output(s) == "220 mx.example custom banner\r\n");
}

TEST_CASE("Received header field and RFC 3848 protocol names", "[server][received]") {
  CHECK(received_protocol(wire::verb::helo, false, false, false) == "SMTP");
  CHECK(received_protocol(wire::verb::ehlo, false, false, false) == "ESMTP");
  CHECK(received_protocol(wire::verb::ehlo, true, false, false) == "ESMTPS");
  CHECK(received_protocol(wire::verb::ehlo, false, true, false) == "ESMTPA");
  CHECK(received_protocol(wire::verb::ehlo, true, true, false) == "ESMTPSA");
  CHECK(received_protocol(wire::verb::helo, true, false, false) == "ESMTPS");
  CHECK(received_protocol(wire::verb::lhlo, true, true, false) == "LMTPSA");
  CHECK(received_protocol(wire::verb::ehlo, true, false, true) == "UTF8SMTPS");
  CHECK(received_protocol(wire::verb::lhlo, false, false, true) == "UTF8LMTP");

  const tls_info tls{"TLSv1.3", "TLS_AES_256_GCM_SHA384", false, {}};
  received_fields f;
  f.helo = "client.example";
  f.client_host = "mail.client.example";
  f.client_address = "192.0.2.1";
  f.by = "mx.example";
  f.protocol = "ESMTPS";
  f.id = "4QxYz1";
  f.for_path = "<bob@mx.example>";
  f.tls = &tls;
  f.date_time = "Sun, 29 Nov 2026 05:00:00 +0000";
  std::string out;
  REQUIRE(append_received(out, f) == errc::ok);
  CHECK(out ==
        "Received: from client.example (mail.client.example [192.0.2.1])\r\n"
        "\tby mx.example with ESMTPS\r\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
        "\tid 4QxYz1\r\n"
        "\tfor <bob@mx.example>;\r\n"
        "\tSun, 29 Nov 2026 05:00:00 +0000\r\n");
  received_fields bad = f;
  bad.helo = "x\r\nX-Injected: 1";
  std::string o2;
  CHECK(append_received(o2, bad) == errc::api_value_invalid);
  bad = f;
  bad.client_host = "evil) (comment";
  CHECK(append_received(o2, bad) == errc::api_value_invalid);
  bad = f;
  bad.date_time = {};
  CHECK(append_received(o2, bad) == errc::api_value_invalid);
  CHECK(o2.empty());

  // The session knows its own protocol.
  server_config cfg;
  cfg.tls_available = true;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  REQUIRE(s.receive("EHLO c.example\r\nSTARTTLS\r\n") > 0);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  CHECK(s.protocol() == "ESMTP");
  REQUIRE(std::holds_alternative<starttls_event>(s.next_event()));
  REQUIRE(s.tls_established(tls) == errc::ok);
  REQUIRE(s.receive("EHLO c.example\r\n") > 0);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  CHECK(s.protocol() == "ESMTPS");
}

namespace {

struct transcript {
  std::vector<std::string> client_chunks;  // as the real client's reads arrived
  std::string server_bytes;
};

transcript load_transcript(const std::string& path) {
  std::ifstream in(path);
  if (!in) FAIL("cannot open " << path);
  transcript t;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("C: ", 0) == 0) t.client_chunks.push_back(test::decode_escapes(line.substr(3)));
    if (line.rfind("S: ", 0) == 0) t.server_bytes += test::decode_escapes(line.substr(3));
  }
  return t;
}

std::vector<int> reply_codes(std::string_view bytes) {
  std::vector<int> codes;
  wire::reply_reader reader;
  while (!bytes.empty()) {
    const wire::reply_result r = reader.read(bytes);
    REQUIRE(r.status != wire::reply_status::error);
    bytes.remove_prefix(r.consumed);
    if (r.status == wire::reply_status::need_more) break;
    codes.push_back(r.reply.code());
  }
  REQUIRE(bytes.empty());
  return codes;
}

}  // namespace

TEST_CASE("real clients' recorded bytes get the same reply codes as from the real server",
          "[server][transcripts]") {
  const std::string dir = SMTPWIRE_VECTOR_DIR;
  const char* const files[] = {"/transcripts/smtplib-to-smtp-sink.txt",
                               "/transcripts/curl-to-smtp-sink.txt",
                               "/transcripts/swaks-pipelining-to-smtp-sink.txt",
                               "/transcripts/postfix-smtp-to-smtp-sink.txt",
                               "/../../examples/data/swaks-to-aiosmtpd.txt",
                               "/../../examples/data/swaks-to-postfix-smtp-sink.txt"};
  for (const char* f : files) {
    INFO(f);
    const transcript t = load_transcript(dir + f);
    REQUIRE_FALSE(t.client_chunks.empty());
    server_config cfg;
    cfg.host_name = "mx.example";
    cfg.extensions.smtputf8 = true;
    cfg.extensions.dsn = true;  // smtp-sink offers DSN: Postfix's smtp client sends ORCPT=
    const std::vector<std::string_view> recorded(t.client_chunks.begin(), t.client_chunks.end());
    const auto log = run_server(cfg, recorded, {});
    CHECK(reply_codes(log.output) == reply_codes(t.server_bytes));
    CHECK(log.events.find("data-end octets=") != std::string::npos);
    CHECK(log.events.find("error=") == std::string::npos);
    CHECK(log.events.find("rejected") == std::string::npos);
    CHECK(log.events.find("closed quit") != std::string::npos);
    // And in every other chunking.
    std::string all;
    for (const auto& c : t.client_chunks)
      all += c;
    test::grind_options go;
    go.max_chunk_size = 8;
    go.random_rounds = 8;
    const std::string ground = test::grind(
        all,
        [&](const std::vector<std::string_view>& chunks) {
          const auto l = run_server(cfg, chunks, {});
          return l.events + "--\n" + l.output;
        },
        go);
    CHECK(ground == log.events + "--\n" + log.output);
  }
}

TEST_CASE("content sent before the 354 is detected; the policy may refuse it",
          "[server][pipelining]") {
  const std::string_view early =
      "HELO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\nSubject: "
      "x\r\n";
  for (int reject = 0; reject < 2; ++reject) {
    server_config cfg = plain_config();
    cfg.policy.reject_early_content = reject == 1;
    server s(cfg);
    REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
    REQUIRE(s.accept() == errc::ok);
    REQUIRE(s.receive(early) == early.size());
    for (int i = 0; i < 3; ++i) {
      (void)s.next_event();
      REQUIRE(s.accept() == errc::ok);
    }
    REQUIRE(std::holds_alternative<data_start_event>(s.next_event()));
    CHECK_FALSE(s.early_content_seen());
    REQUIRE(s.accept() == errc::ok);
    CHECK(s.early_content_seen());
    const std::string out = drain_output(s);
    if (reject) {
      CHECK(out.find("554 5.5.0 Improper use of pipelining") != std::string::npos);
      CHECK(out.find("354 End") == std::string::npos);
      auto ev = s.next_event();
      REQUIRE(std::holds_alternative<closed_event>(ev));
      CHECK(std::get<closed_event>(ev).reason == close_reason::early_content);
    } else {
      CHECK(out.find("354 ") != std::string::npos);
      auto ev = s.next_event();
      REQUIRE(std::holds_alternative<content_event>(ev));
      CHECK(std::get<content_event>(ev).bytes == "Subject: x\r\n");
    }
  }
  // A client that waits for the 354 is not flagged.
  server_config cfg = plain_config();
  cfg.policy.reject_early_content = true;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  const std::string_view head =
      "HELO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n";
  REQUIRE(s.receive(head) == head.size());
  for (int i = 0; i < 4; ++i) {
    (void)s.next_event();
    REQUIRE(s.accept() == errc::ok);
  }
  CHECK_FALSE(s.early_content_seen());
  CHECK(drain_output(s).find("354 ") != std::string::npos);
  REQUIRE(s.receive("Subject: x\r\n\r\nhi\r\n.\r\n") > 0);
  REQUIRE(std::holds_alternative<content_event>(s.next_event()));
}

TEST_CASE("a TLS handshake that never finishes times out without a plaintext reply",
          "[server][timeout][starttls]") {
  using namespace std::chrono;
  const steady_clock::time_point t0{hours(2)};
  server_config cfg = plain_config();
  cfg.tls_available = true;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  REQUIRE(s.receive("EHLO c.example\r\nSTARTTLS\r\n") > 0);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  REQUIRE(std::holds_alternative<starttls_event>(s.next_event()));
  drain_output(s);
  s.check_time(t0);
  CHECK(s.deadline() == t0 + minutes(1));
  s.check_time(t0 + minutes(1));
  CHECK(s.closed());
  CHECK(s.output().empty());
  auto ev = s.next_event();
  REQUIRE(std::holds_alternative<closed_event>(ev));
  CHECK(std::get<closed_event>(ev).reason == close_reason::timeout);
}

TEST_CASE("shutdown(): 421 4.3.2 mid-DATA, silent close in a handshake, once only",
          "[server][shutdown]") {
  {
    server s(plain_config());
    REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
    REQUIRE(s.accept() == errc::ok);
    REQUIRE(s.receive("EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\n"
                      "DATA\r\nSubject: half\r\n") > 0);
    bool content_started = false;
    for (;;) {
      const server_event ev = s.next_event();
      if (std::holds_alternative<std::monostate>(ev)) break;
      if (std::holds_alternative<content_event>(ev)) content_started = true;
      if (s.pending_decision() != server_decision::none) REQUIRE(s.accept() == errc::ok);
    }
    REQUIRE(content_started);
    const std::string before(s.output());
    REQUIRE(s.shutdown() == errc::ok);
    const std::string after(s.output());
    CHECK(after.substr(before.size()) == "421 4.3.2 mx.example Service shutting down\r\n");
    CHECK(s.closed());
    const server_event ev = s.next_event();
    REQUIRE(std::holds_alternative<closed_event>(ev));
    CHECK(std::get<closed_event>(ev).reason == close_reason::shutdown);
    CHECK(s.shutdown() == errc::api_bad_state);
  }
  {
    server_config cfg = plain_config();
    cfg.tls_available = true;
    server s(cfg);
    REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
    REQUIRE(s.accept() == errc::ok);
    REQUIRE(s.receive("EHLO c.example\r\nSTARTTLS\r\n") > 0);
    REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
    REQUIRE(s.accept() == errc::ok);
    REQUIRE(std::holds_alternative<starttls_event>(s.next_event()));
    drain_output(s);
    // Nothing in clear once the handshake has begun.
    REQUIRE(s.shutdown() == errc::ok);
    CHECK(s.output().empty());
    CHECK(s.closed());
  }
}

TEST_CASE("add_sasl_mechanism: names, duplicates, capacity, timing", "[server][auth]") {
  server_config cfg = plain_config();
  cfg.extensions.auth.add(wire::sasl::mechanism::plain);
  cfg.policy.auth_only_over_tls = false;
  server s(cfg);
  test::toy_mechanism bad_chars("X TOY"), too_long("X-TOY-ABCDEFGHIJKLMNOP"), empty("");
  CHECK(s.add_sasl_mechanism(bad_chars) == errc::api_value_invalid);
  CHECK(s.add_sasl_mechanism(too_long) == errc::api_value_invalid);
  CHECK(s.add_sasl_mechanism(empty) == errc::api_value_invalid);
  test::toy_mechanism plain("plain");  // a built-in already offered
  CHECK(s.add_sasl_mechanism(plain) == errc::api_value_invalid);
  std::vector<test::toy_mechanism> many;
  many.reserve(max_sasl_mechanisms + 1);
  for (std::size_t i = 0; i <= max_sasl_mechanisms; ++i)
    many.emplace_back("X-M" + std::to_string(i));
  for (std::size_t i = 0; i < max_sasl_mechanisms; ++i)
    CHECK(s.add_sasl_mechanism(many[i]) == errc::ok);
  CHECK(s.add_sasl_mechanism(many.back()) == errc::api_value_invalid);
  test::toy_mechanism again("x-m0");
  server t(cfg);
  REQUIRE(t.add_sasl_mechanism(many[0]) == errc::ok);
  CHECK(t.add_sasl_mechanism(again) == errc::api_value_invalid);  // names compare without case
  // Still allowed while the connect decision is pending, not after it.
  REQUIRE(std::holds_alternative<connect_event>(t.next_event()));
  CHECK(t.add_sasl_mechanism(many[1]) == errc::ok);
  REQUIRE(t.accept() == errc::ok);
  CHECK(t.add_sasl_mechanism(many[2]) == errc::api_bad_state);

  // Names the engine does not decode are dropped from the built-in set: no AUTH is offered.
  server_config cram = plain_config();
  cram.extensions.auth.add(wire::sasl::mechanism::cram_md5);
  cram.policy.auth_only_over_tls = false;
  CHECK(server(cram).config().extensions.auth.empty());
  CHECK(test::run_server(cram, {"EHLO c.example\r\n"}, {}).output.find("AUTH") ==
        std::string::npos);

  // Without built-in AUTH the SASL buffers are sized when the first mechanism is added.
  server u(plain_config());
  const std::size_t before = u.memory_reserved();
  test::toy_mechanism toy("X-TOY");
  REQUIRE(u.add_sasl_mechanism(toy) == errc::ok);
  CHECK(u.memory_reserved() > before + plain_config().limits.max_auth_line);
}

TEST_CASE("an idle default session holds under 2 KiB; transactions do not grow it",
          "[server][limits]") {
  server s(plain_config());
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  REQUIRE(s.receive("EHLO c.example\r\n") > 0);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  drain_output(s);
  const std::size_t idle = sizeof(server) + s.memory_reserved();
  CHECK(idle < 2048);
  // Lines are framed inside the input buffer: no separate line buffer.
  CHECK(s.memory_reserved() < plain_config().limits.input_buffer + 512);
  const std::string tx =
      "MAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n";
  for (int round = 0; round < 3; ++round) {
    REQUIRE(s.receive(tx) == tx.size());
    for (;;) {
      const auto ev = s.next_event();
      if (s.awaiting_decision()) {
        REQUIRE(s.accept() == errc::ok);
        continue;
      }
      if (std::holds_alternative<std::monostate>(ev)) break;
    }
    drain_output(s);
  }
  CHECK(sizeof(server) + s.memory_reserved() == idle);
}

TEST_CASE("in-place line framing matches wire::line_reader on random bytes", "[server][framing]") {
  std::uint32_t seed = 12345;
  auto next = [&] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  const char* const pieces[] = {
      "NOOP",       "noop x",  "X", "\r", "\n", "\r\n", std::string_view("\0", 1).data(),
      "0123456789", "\xc3\xa9"};
  const std::size_t piece_len[] = {4, 6, 1, 1, 1, 2, 1, 10, 2};
  for (int round = 0; round < 300; ++round) {
    std::string input;
    const std::size_t n = 1 + next() % 40;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t k = next() % 9;
      input.append(pieces[k], piece_len[k]);
      if (next() % 3 == 0) input.append("\r\n");
    }
    input.append("\r\nQUIT\r\n");
    server_config cfg = plain_config();
    cfg.limits.max_command_line = 8 + next() % 16;
    cfg.limits.input_buffer = 1;  // as small as a line allows: compaction on every receive
    cfg.limits.max_errors = 100000;
    cfg.extensions.enhancedstatuscodes = false;
    // Expected: one reply per line; for framing errors the error's reply, for
    // lines (whatever the command's fate) "line", as the wire layer's reader
    // frames the whole input.
    std::string expected;
    wire::line_reader lr(wire::line_options{cfg.limits.max_command_line, true});
    std::string_view rest = input;
    for (;;) {
      const wire::line_result r = lr.read(rest);
      rest.remove_prefix(r.consumed);
      if (r.status == wire::line_status::need_more) break;
      if (r.status == wire::line_status::error)
        expected += std::string(reply_for(r.error).text) + "\n";
      else
        expected += "line\n";
      if (r.status == wire::line_status::line && r.line == "QUIT") break;
    }
    std::vector<std::string_view> chunks;
    std::string_view all = input;
    while (!all.empty()) {
      const std::size_t c = 1 + next() % 12;
      chunks.push_back(all.substr(0, c));
      all.remove_prefix(chunks.back().size());
    }
    INFO("input " << test::escape(input) << " max line " << cfg.limits.max_command_line);
    const std::string out = run_server(cfg, chunks, {}).output;
    std::string got;
    std::size_t from = out.find("\r\n") + 2;  // after the greeting
    while (from < out.size()) {
      const std::size_t nl = out.find("\r\n", from);
      const std::string reply = out.substr(from, nl - from);
      bool framing = false;
      for (errc e : {errc::bare_cr, errc::bare_lf, errc::nul_byte, errc::line_too_long})
        if (reply == "500 " + std::string(reply_for(e).text)) framing = true;
      got += framing ? reply.substr(4) + "\n" : "line\n";
      from = nl + 2;
    }
    CHECK(got == expected);
  }
}

TEST_CASE("RFC 7628 error exchange: API checks, held reply, failure limit", "[server][auth]") {
  server_config cfg = plain_config();
  cfg.extensions.auth.add(wire::sasl::mechanism::oauthbearer);
  cfg.policy.auth_only_over_tls = false;
  cfg.limits.max_auth_failures = 1;
  cfg.limits.max_auth_line = 600;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  const std::string_view auth =
      "EHLO c.example\r\nAUTH OAUTHBEARER "
      "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZG"
      "OWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2c9PQEB\r\n";
  REQUIRE(s.receive(auth) == auth.size());
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  drain_output(s);
  REQUIRE(std::holds_alternative<auth_event>(s.next_event()));
  server_reply r{535, "5.7.8", "Bad token"};
  r.oauth_error = R"({"status":"invalid_token"})";
  server_reply bad = r;
  bad.oauth_error = R"({"scope":"x"})";  // no status
  CHECK(s.reject(bad) == errc::api_value_invalid);
  bad.oauth_error = "not json";
  CHECK(s.reject(bad) == errc::api_value_invalid);
  server_reply ok{235, "2.7.0", "fine"};
  ok.oauth_error = r.oauth_error;
  CHECK(s.accept(ok) == errc::api_value_invalid);
  CHECK(s.output().empty());
  REQUIRE(s.awaiting_decision());
  REQUIRE(s.reject(r) == errc::ok);
  CHECK(drain_output(s) == "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n");
  CHECK(s.state() == server_state::in_auth);
  // An over-long dummy response ends the exchange as a failed attempt: the limit closes.
  const std::string longline(700, 'A');
  REQUIRE(s.receive(longline + "\r\n") > 0);
  REQUIRE(std::holds_alternative<rejected_event>(s.next_event()));
  REQUIRE(std::holds_alternative<closed_event>(s.next_event()));
  CHECK(drain_output(s) ==
        "500 5.5.6 Line too long\r\n421 4.7.0 mx.example Too many authentication failures\r\n");

  // The dummy response releases the held reply, then the limit closes.
  server t(cfg);
  REQUIRE(std::holds_alternative<connect_event>(t.next_event()));
  REQUIRE(t.accept() == errc::ok);
  REQUIRE(t.receive(auth) == auth.size());
  REQUIRE(std::holds_alternative<hello_event>(t.next_event()));
  REQUIRE(t.accept() == errc::ok);
  REQUIRE(std::holds_alternative<auth_event>(t.next_event()));
  REQUIRE(t.reject(r) == errc::ok);
  drain_output(t);
  REQUIRE(t.receive("AQ==\r\n") == 6);
  REQUIRE(std::holds_alternative<closed_event>(t.next_event()));
  CHECK(drain_output(t) ==
        "535 5.7.8 Bad token\r\n421 4.7.0 mx.example Too many authentication failures\r\n");
}

namespace {
// The EHLO reply of a server with `cfg`, as the client side reads it.
std::string ehlo_reply(const server_config& cfg) {
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  drain_output(s);
  REQUIRE(s.receive("EHLO c.example\r\n") > 0);
  REQUIRE(std::holds_alternative<hello_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  return drain_output(s);
}
}  // namespace

TEST_CASE("the EHLO lines of issue #9 read back through wire::parse_ehlo", "[server][ext]") {
  server_config cfg = plain_config();
  auto& x = cfg.extensions;
  x.xclient = x.xforward = x.limits = x.rrvs = true;
  x.deliverby = 300;
  x.mt_priority = mt_priority_profile::nsep;
  x.futurerelease_max_interval = 604800;
  x.futurerelease_max_datetime = 1796533200;  // 2026-12-06T05:00:00Z
  cfg.limits.max_transactions = 20;
  cfg.limits.max_recipients = 50;
  cfg.limits.max_recipient_domains = 7;
  SECTION("trusted peer: everything offered") {
    cfg.xclient_trusted = true;
    const std::string out = ehlo_reply(cfg);
    const auto reply = wire::parse_reply(out);
    REQUIRE(reply);
    const auto caps = wire::parse_ehlo(reply->lines);
    REQUIRE(caps);
    using wire::capability;
    for (auto c : {capability::limits, capability::xclient, capability::xforward, capability::rrvs,
                   capability::futurerelease, capability::deliverby, capability::mt_priority})
      CHECK(caps->has(c));
    CHECK(caps->limits == wire::limits_offer{50, 20, 7});
    CHECK(caps->xclient == wire::all_xattrs(wire::xcommand::xclient));
    CHECK(caps->xforward == wire::all_xattrs(wire::xcommand::xforward));
    CHECK(caps->deliverby == 300);
    CHECK(caps->mt_priority == "NSEP");
    CHECK(caps->futurerelease_max_interval == 604800);
    CHECK(caps->futurerelease_max_datetime == "2026-12-06T05:00:00Z");
  }
  SECTION("untrusted peer: no XCLIENT, no XFORWARD, the rest unchanged") {
    const std::string out = ehlo_reply(cfg);
    CHECK(out.find("XCLIENT") == std::string::npos);
    CHECK(out.find("XFORWARD") == std::string::npos);
    CHECK(out.find("LIMITS MAILMAX=20 RCPTMAX=50 RCPTDOMAINMAX=7\r\n") != std::string::npos);
  }
  SECTION("FUTURERELEASE with a date-time outside 1970..9999 or too long an interval is dropped") {
    for (const auto& bad : {std::pair<std::uint32_t, std::int64_t>{604800, 0},
                            {604800, -5},
                            {604800, detail::date_time_seconds_max + 1},
                            {1000000000u, 1796533200}}) {
      x.futurerelease_max_interval = bad.first;
      x.futurerelease_max_datetime = bad.second;
      CHECK(ehlo_reply(cfg).find("FUTURERELEASE") == std::string::npos);
      server s(cfg);
      CHECK(s.config().extensions.futurerelease_max_interval == 0);
    }
    x.futurerelease_max_interval = 1;
    x.futurerelease_max_datetime = detail::date_time_seconds_max;
    CHECK(ehlo_reply(cfg).find("FUTURERELEASE 1 9999-12-31T23:59:59Z\r\n") != std::string::npos);
  }
  SECTION("a min-by-time beyond 9 digits turns DELIVERBY off; 999999999 is kept") {
    x.deliverby = 1000000000u;
    CHECK(ehlo_reply(cfg).find("DELIVERBY") == std::string::npos);
    x.deliverby = 999999999u;
    CHECK(ehlo_reply(cfg).find("DELIVERBY 999999999\r\n") != std::string::npos);
  }
}

TEST_CASE("RFC 3339 date-times: the engine's writer and reader agree with wire::is_date_time",
          "[server][ext]") {
  struct known {
    std::int64_t t;
    const char* text;
  };
  for (const known& k :
       {known{1, "1970-01-01T00:00:01Z"}, known{951782400, "2000-02-29T00:00:00Z"},
        known{1709164800, "2024-02-29T00:00:00Z"}, known{1796533200, "2026-12-06T05:00:00Z"},
        known{4107542399, "2100-02-28T23:59:59Z"},
        known{detail::date_time_seconds_max, "9999-12-31T23:59:59Z"}}) {
    std::string s;
    detail::append_date_time(s, k.t);
    CHECK(s == k.text);
    CHECK(detail::date_time_seconds(k.text, false) == k.t);
  }
  // Offsets, fractions and case.
  CHECK(detail::date_time_seconds("2026-12-06T06:30:00+01:30", false) == 1796533200);
  CHECK(detail::date_time_seconds("2026-12-06t03:00:00-02:00", false) == 1796533200);
  CHECK(detail::date_time_seconds("2026-12-06T05:00:00.000z", true) == 1796533200);
  CHECK(detail::date_time_seconds("2026-12-06T05:00:00.25Z", false) == 1796533200);
  CHECK(detail::date_time_seconds("2026-12-06T05:00:00.25Z", true) == 1796533201);
  CHECK(detail::date_time_seconds("0000-01-01T00:00:00Z", false) < 0);
  std::uint64_t seed = 12345;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const std::int64_t t =
        1 + static_cast<std::int64_t>((seed >> 11) %
                                      static_cast<std::uint64_t>(detail::date_time_seconds_max));
    std::string s;
    detail::append_date_time(s, t);
    INFO(s);
    REQUIRE(wire::is_date_time(s));
    REQUIRE(detail::date_time_seconds(s, true) == t);
  }
}

TEST_CASE("RCPTDOMAINMAX sizes its table once; transactions do not grow memory", "[server][ext]") {
  server_config cfg = plain_config();
  const std::size_t base = server(cfg).memory_reserved();
  cfg.limits.max_recipient_domains = 10;
  CHECK(server(cfg).memory_reserved() == base + 10 * sizeof(std::uint64_t));
  cfg.limits.max_recipients = 4;  // never more domains than recipients
  CHECK(server(cfg).memory_reserved() == base + 4 * sizeof(std::uint64_t));
  cfg.extensions.limits = true;
  cfg.extensions.xclient = cfg.extensions.xforward = true;
  cfg.xclient_trusted = true;
  cfg.limits.max_recipients = 100;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  std::size_t reserved = 0;
  for (int round = 0; round < 4; ++round) {
    std::string tx = "EHLO c.example\r\nXFORWARD NAME=up.example\r\nMAIL FROM:<a@c.example>\r\n";
    for (int d = 0; d < 12; ++d)
      tx += "RCPT TO:<u@d" + std::to_string(d) + ".example>\r\n";
    tx += "DATA\r\nhi\r\n.\r\nXCLIENT NAME=spike.porcupine.org\r\n";
    std::string_view rest = tx;
    std::size_t refused = 0, xforwarded = 0;
    while (!rest.empty()) {
      rest.remove_prefix(s.receive(rest));
      for (;;) {
        const auto ev = s.next_event();
        if (auto* r = std::get_if<rejected_event>(&ev)) refused += r->code == 452 ? 1 : 0;
        if (auto* m = std::get_if<mail_event>(&ev)) xforwarded += m->xforwarded ? 1 : 0;
        if (s.awaiting_decision()) {
          REQUIRE(s.accept() == errc::ok);
          continue;
        }
        drain_output(s);
        if (std::holds_alternative<std::monostate>(ev)) break;
      }
    }
    CHECK(refused == 2);  // d10 and d11
    CHECK(xforwarded == 1);
    CHECK(s.state() == server_state::awaiting_hello);  // after XCLIENT
    if (round == 0) reserved = s.memory_reserved();
    CHECK(s.memory_reserved() == reserved);
  }
}

TEST_CASE("XCLIENT/XFORWARD decisions: reply checks, views, state after each verdict",
          "[server][ext]") {
  server_config cfg = plain_config();
  cfg.extensions.xclient = cfg.extensions.xforward = true;
  cfg.xclient_trusted = true;
  server s(cfg);
  REQUIRE(std::holds_alternative<connect_event>(s.next_event()));
  REQUIRE(s.accept() == errc::ok);
  drain_output(s);
  REQUIRE(s.receive("XCLIENT NAME=a+2Eexample ADDR=[UNAVAILABLE]\r\nXFORWARD PORT=25\r\n") > 0);
  auto ev = s.next_event();
  REQUIRE(std::holds_alternative<xclient_event>(ev));
  const auto& a = std::get<xclient_event>(ev).attributes;
  CHECK(a.value(wire::xattr::name) == "a+2Eexample");  // raw xtext
  CHECK(a.get(wire::xattr::addr) == wire::xvalue_kind::unavailable);
  CHECK(a.get(wire::xattr::port) == wire::xvalue_kind::absent);
  CHECK(s.pending_decision() == server_decision::xclient);
  CHECK(s.accept(server_reply{250, "", "Ok"}) == errc::api_value_invalid);
  CHECK(s.accept(server_reply{221, "", "bye"}) == errc::api_value_invalid);
  CHECK(s.output().empty());
  REQUIRE(s.accept(server_reply{220, "", "mx.example ESMTP as spike.porcupine.org"}) == errc::ok);
  CHECK(drain_output(s) == "220 mx.example ESMTP as spike.porcupine.org\r\n");
  CHECK(s.state() == server_state::awaiting_hello);
  ev = s.next_event();
  REQUIRE(std::holds_alternative<xforward_event>(ev));
  CHECK(std::get<xforward_event>(ev).initial);
  CHECK(std::get<xforward_event>(ev).attributes.value(wire::xattr::port) == "25");
  REQUIRE(s.reject(server_reply{554, "5.7.1", "Not from you"}) == errc::ok);
  CHECK(drain_output(s) == "554 5.7.1 Not from you\r\n");
  CHECK_FALSE(s.closed());
  REQUIRE(s.receive("XFORWARD PORT=26\r\n") > 0);
  REQUIRE(std::holds_alternative<xforward_event>(s.next_event()));
  REQUIRE(s.temp_fail() == errc::ok);
  CHECK(drain_output(s) == "421 4.3.0 mx.example Unable to proceed, closing connection\r\n");
  CHECK(s.closed());
  const auto closed = s.next_event();
  REQUIRE(std::holds_alternative<closed_event>(closed));
  CHECK(std::get<closed_event>(closed).reason == close_reason::xcommand_refused);
}

TEST_CASE("errc values of the server's parameter checks: names and replies", "[server][ext]") {
  for (auto e : {errc::by_time_below_minimum, errc::holdfor_too_long, errc::holduntil_too_late}) {
    CHECK(to_string(e) != "unknown");
    CHECK(reply_for(e).code == 501);
    CHECK(reply_for(e).enhanced == "5.5.4");
  }
  for (auto r : {close_reason::too_many_transactions, close_reason::xcommand_refused})
    CHECK(to_string(r) != "unknown");
  for (auto p : {mt_priority_profile::unnamed, mt_priority_profile::mixer,
                 mt_priority_profile::stanag4406, mt_priority_profile::nsep})
    CHECK(ehlo_line(p).rfind("MT-PRIORITY", 0) == 0);
  CHECK(ehlo_line(mt_priority_profile::off).empty());
}
