#include <smtpwire/client.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"
#include "support/vectors.hpp"

using smtpwire::client;
using smtpwire::client_config;
using smtpwire::client_event;
using smtpwire::client_state;
using smtpwire::errc;
using smtpwire::reply_class;
using smtpwire::reply_outcome;
using smtpwire::tls_policy;
namespace ev = smtpwire::client_events;
namespace wire = smtpwire::wire;

namespace {

client_config named(std::string_view local_name) {
  client_config c;
  c.local_name = local_name;
  return c;
}

smtpwire::credentials creds(std::string_view user, std::string_view password) {
  smtpwire::credentials c;
  c.user = user;
  c.password = password;
  return c;
}

std::string escaped(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r')
      out += "\\r";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> v;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      v.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) v.push_back(cur);
  return v;
}

// The scripted application of a dialogue: what it does on each event.
struct script {
  client_config cfg;
  std::string local_name = "client.example.org";
  std::string auth;  // "", "plain", "login", "xoauth2", "oauthbearer", "auto"
  std::string user = "alice", password = "s3cret", token = "ya29.token";
  std::string from = "alice@example.org";
  std::vector<std::string> to{"bob@example.com"};
  std::vector<std::string> rcpt_params;
  std::string mail_params;
  std::string content = "Subject: hi\r\n\r\nHello\r\n";
  std::uint64_t size = 0;
  wire::body_type body = wire::body_type::seven_bit;
  bool requiretls = false;
  int messages = 1;
  std::string command;  // a low-level command run once, before the first message
  // DSN (RFC 3461): ret "", "full" or "hdrs"; notify and orcpt per recipient.
  std::string ret, envid;
  std::vector<std::string> notify, orcpt;
  // Issue #9 parameters: BY "time;mode" (e.g. "120;R", "-5;NT"), MT-PRIORITY,
  // RRVS per recipient ("date-time;C", "-" for none), HOLDFOR, HOLDUNTIL.
  std::string by, holduntil;
  std::optional<int> mt_priority;
  std::optional<std::uint32_t> holdfor;
  std::vector<std::string> rrvs;
  // XCLIENT (config) and XFORWARD (envelope) attributes: "NAME=v|ADDR=v|…",
  // values decoded; "[UNAVAILABLE]" and "[TEMPUNAVAIL]" as the special values.
  std::string xclient, xforward;
};

wire::xattributes xattrs_of(const std::string& spec) {
  wire::xattributes x;
  for (const std::string& item : split_list(spec, '|')) {
    const auto eq = item.find('=');
    REQUIRE(eq != std::string::npos);
    const wire::xattr a = wire::find_xattr(std::string_view(item).substr(0, eq));
    REQUIRE(a != wire::xattr::unknown);
    // Views into `spec`, which the script keeps alive.
    const std::string_view v =
        std::string_view(spec).substr(spec.find(item) + eq + 1, item.size() - eq - 1);
    if (v == "[UNAVAILABLE]")
      x.set(a, wire::xvalue_kind::unavailable);
    else if (v == "[TEMPUNAVAIL]")
      x.set(a, wire::xvalue_kind::tempunavail);
    else
      x.set(a, v);
  }
  return x;
}

wire::deliver_by by_of(const std::string& v) {
  wire::deliver_by b;
  const auto semi = v.find(';');
  b.time = std::stoll(v.substr(0, semi));
  b.mode = v[semi + 1] == 'R' ? wire::by_mode::return_message : wire::by_mode::notify;
  b.trace = v.size() > semi + 2 && v[semi + 2] == 'T';
  return b;
}

std::uint8_t notify_bits(const std::string& v) {
  std::uint8_t n = 0;
  for (const std::string& f : split_list(v, ',')) {
    if (f == "NEVER") n |= wire::notify_never;
    if (f == "SUCCESS") n |= wire::notify_success;
    if (f == "FAILURE") n |= wire::notify_failure;
    if (f == "DELAY") n |= wire::notify_delay;
  }
  return n;
}

script parse_script(const std::vector<std::string>& lines) {
  script s;
  s.cfg.tls = tls_policy::required;
  for (const auto& l : lines) {
    const auto eq = l.find('=');
    if (eq == std::string::npos) FAIL("bad config line " << l);
    const std::string k = l.substr(0, eq), v = l.substr(eq + 1);
    if (k == "tls") {
      s.cfg.tls = v == "none"            ? tls_policy::none
                  : v == "opportunistic" ? tls_policy::opportunistic
                  : v == "implicit"      ? tls_policy::implicit
                                         : tls_policy::required;
    } else if (k == "lmtp") {
      s.cfg.lmtp = v == "on";
    } else if (k == "ret") {
      s.ret = v;
    } else if (k == "envid") {
      s.envid = smtpwire::test::decode_escapes(v);
    } else if (k == "notify") {
      s.notify = split_list(v, '|');
    } else if (k == "orcpt") {
      s.orcpt = split_list(smtpwire::test::decode_escapes(v), '|');
    } else if (k == "drop_dsn") {
      s.cfg.drop_dsn_when_not_offered = v == "on";
    } else if (k == "drop_optional") {
      s.cfg.drop_optional_params_when_not_offered = v == "on";
    } else if (k == "by") {
      s.by = v;
    } else if (k == "mt_priority") {
      s.mt_priority = std::stoi(v);
    } else if (k == "rrvs") {
      s.rrvs = split_list(v, '|');
    } else if (k == "holdfor") {
      s.holdfor = static_cast<std::uint32_t>(std::stoul(v));
    } else if (k == "holduntil") {
      s.holduntil = v;
    } else if (k == "xclient") {
      s.xclient = v;
    } else if (k == "xforward") {
      s.xforward = v;
    } else if (k == "max_recipients") {
      s.cfg.max_recipients = std::stoul(v);
    } else if (k == "recipients") {
      // "N/D": N recipients rI@dJ.example, J = I mod D.
      const auto slash = v.find('/');
      const int n = std::stoi(v.substr(0, slash)), d = std::stoi(v.substr(slash + 1));
      s.to.clear();
      for (int i = 0; i < n; ++i)
        s.to.push_back("r" + std::to_string(i) + "@d" + std::to_string(i % d) + ".example");
    } else if (k == "bdat") {
      s.cfg.prefer_bdat = v == "on";
    } else if (k == "output_buffer") {
      s.cfg.output_buffer = std::stoul(v);
    } else if (k == "pipelining") {
      s.cfg.pipelining = v == "on";
    } else if (k == "auth_in_clear") {
      s.cfg.auth_in_clear = v == "on";
    } else if (k == "auth") {
      s.auth = v;
    } else if (k == "user") {
      s.user = smtpwire::test::decode_escapes(v);
    } else if (k == "password") {
      s.password = smtpwire::test::decode_escapes(v);
    } else if (k == "token") {
      s.token = v;
    } else if (k == "from") {
      s.from = smtpwire::test::decode_escapes(v);
    } else if (k == "to") {
      s.to = split_list(smtpwire::test::decode_escapes(v), ',');
    } else if (k == "rcpt_params") {
      s.rcpt_params = split_list(v, '|');
    } else if (k == "mail_params") {
      s.mail_params = smtpwire::test::decode_escapes(v);
    } else if (k == "content") {
      s.content = smtpwire::test::decode_escapes(v);
    } else if (k == "size") {
      s.size = std::stoull(v);
    } else if (k == "body") {
      s.body = v == "8bit"     ? wire::body_type::eight_bit_mime
               : v == "binary" ? wire::body_type::binary_mime
                               : wire::body_type::seven_bit;
    } else if (k == "requiretls") {
      s.requiretls = v == "on";
    } else if (k == "messages") {
      s.messages = std::stoi(v);
    } else if (k == "command") {
      s.command = v;
    } else if (k == "local_name") {
      s.local_name = smtpwire::test::decode_escapes(v);
    } else if (k == "max_lines") {
      s.cfg.reply.max_lines = std::stoul(v);
    } else if (k == "max_line_length") {
      s.cfg.reply.max_line_length = std::stoul(v);
    } else {
      FAIL("unknown config key " << k);
    }
  }
  s.cfg.local_name = s.local_name;
  return s;
}

std::string describe(const client_event& e) {
  std::ostringstream o;
  if (auto g = std::get_if<ev::greeting>(&e)) {
    o << "greeting " << g->reply.code();
  } else if (auto c = std::get_if<ev::capabilities>(&e)) {
    o << "capabilities " << (c->extended ? "ehlo" : "helo") << " tls=" << c->tls;
    for (std::size_t i = 0; i < wire::capability_count; ++i) {
      const auto cap = static_cast<wire::capability>(i);
      if (c->caps->has(cap)) o << ' ' << wire::to_string(cap);
    }
  } else if (auto t = std::get_if<ev::start_tls>(&e)) {
    o << "start_tls " << t->reply.code();
  } else if (std::get_if<ev::ready>(&e)) {
    o << "ready";
  } else if (auto a = std::get_if<ev::auth_result>(&e)) {
    o << "auth " << (a->success ? "ok " : "failed ") << a->mechanism << ' ' << a->reply.code();
  } else if (auto r = std::get_if<ev::recipient>(&e)) {
    o << "rcpt " << r->index << ' ' << escaped(r->address)
      << (r->accepted ? " accepted " : " rejected ") << r->reply.code();
  } else if (auto sc = std::get_if<ev::send_content>(&e)) {
    o << "send_content";
    if (sc->transaction != 0) o << ' ' << sc->transaction;
  } else if (auto d = std::get_if<ev::delivery>(&e)) {
    o << "delivery " << d->index << ' ' << escaped(d->address)
      << (d->delivered ? " delivered " : " failed ") << d->reply.code();
  } else if (auto m = std::get_if<ev::message_accepted>(&e)) {
    o << "accepted " << m->recipients << ' ' << m->reply.code();
  } else if (auto j = std::get_if<ev::message_rejected>(&e)) {
    o << "rejected " << smtpwire::to_string(j->stage) << ' ' << j->reply.code()
      << (j->reply.is_transient() ? " temporary" : " permanent");
  } else if (auto cr = std::get_if<ev::command_reply>(&e)) {
    o << "command " << wire::to_string(cr->verb) << ' ' << cr->reply.code();
  } else if (auto cl = std::get_if<ev::closed>(&e)) {
    o << "closed " << cl->reply.code();
  } else if (auto er = std::get_if<ev::error>(&e)) {
    o << "error " << smtpwire::to_string(er->code);
    if (er->reply.code() != 0) o << ' ' << er->reply.code();
  } else if (auto na = std::get_if<ev::recipients_not_attempted>(&e)) {
    o << "not_attempted " << smtpwire::to_string(na->reason);
    for (std::size_t i = 0; i < na->count; ++i)
      o << (i == 0 ? ' ' : ',') << na->indices[i];
  } else if (auto xa = std::get_if<ev::xclient_accepted>(&e)) {
    o << "xclient " << xa->reply.code();
  }
  return o.str();
}

// Runs a whole dialogue: server bytes in the given chunks (the first
// `plain_size` bytes in clear, the rest after the TLS handshake, which the
// driver completes only once every plaintext byte has been received), the
// script acting on events. Returns the event log, then "client:" and every
// byte the client wrote.
struct dialogue {
  script s;
  std::size_t plain_size = 0;

  std::string operator()(const std::vector<std::string_view>& chunks) const {
    client_config cfg = s.cfg;
    if (!s.xclient.empty()) cfg.xclient = xattrs_of(s.xclient);
    client c{cfg};
    const wire::xattributes xforward =
        s.xforward.empty() ? wire::xattributes{} : xattrs_of(s.xforward);
    std::vector<wire::rrvs_param> rrvs;
    for (const std::string& r : s.rrvs) {
      wire::rrvs_param p;
      if (r != "-") {
        const auto semi = r.find(';');
        p.date_time = std::string_view(r).substr(0, semi);
        if (semi != std::string::npos) p.action = r[semi + 1];
      }
      rrvs.push_back(p);
    }
    std::vector<std::string> log;
    std::string sent;
    bool tls_wanted = s.cfg.tls == tls_policy::implicit, tls_done = false;
    int messages = 0;
    bool authed = s.auth.empty(), commanded = s.command.empty();
    std::vector<std::string_view> to(s.to.begin(), s.to.end());
    std::vector<std::string_view> rp(s.rcpt_params.begin(), s.rcpt_params.end());
    std::vector<smtpwire::recipient_dsn> dsn;
    if (!s.notify.empty() || !s.orcpt.empty()) {
      dsn.resize(s.to.size());
      for (std::size_t i = 0; i < dsn.size(); ++i) {
        if (i < s.notify.size()) dsn[i].notify = notify_bits(s.notify[i]);
        if (i < s.orcpt.size() && s.orcpt[i] != "-") dsn[i].orcpt = s.orcpt[i];
      }
    }
    smtpwire::sasl_plain plain{s.user, s.password};
    smtpwire::sasl_login login{s.user, s.password};
    smtpwire::sasl_xoauth2 xo{s.user, s.token};
    smtpwire::sasl_oauthbearer ob{s.token};
    auto drain = [&] {
      sent += c.output();
      c.consume_output(c.output().size());
    };
    auto note = [&](const char* what, errc e) {
      if (e != errc::ok)
        log.push_back(std::string("api ") + what + ' ' + std::string(smtpwire::to_string(e)));
    };
    // The content still to stream; send_content may take less than given
    // (output full, or a BDAT reply awaited without PIPELINING): the rest
    // goes after the next event.
    std::string_view body;
    bool streaming = false;
    auto stream = [&] {
      while (streaming && !body.empty()) {
        auto r = c.send_content(body);
        if (!r) {
          note("send_content", r.error());
          streaming = false;
          return;
        }
        drain();
        if (*r == 0) return;
        body.remove_prefix(*r);
      }
      if (streaming) {
        streaming = false;
        note("end_content", c.end_content());
      }
    };
    auto pump = [&] {
      for (;;) {
        client_event e = c.next_event();
        if (std::holds_alternative<std::monostate>(e)) {
          if (!streaming) break;
          const std::size_t before = body.size();
          stream();
          if (streaming && body.size() == before) break;  // no progress until a reply
          continue;
        }
        log.push_back(describe(e));
        if (std::holds_alternative<ev::start_tls>(e)) tls_wanted = true;
        if (std::holds_alternative<ev::send_content>(e)) {
          body = s.content;
          streaming = true;
          stream();
        }
        if (std::holds_alternative<ev::message_rejected>(e) ||
            std::holds_alternative<ev::error>(e) || std::holds_alternative<ev::closed>(e))
          streaming = false;
        if (std::holds_alternative<ev::ready>(e)) {
          if (!commanded) {
            commanded = true;
            const auto v = s.command == "NOOP"   ? wire::verb::noop
                           : s.command == "RSET" ? wire::verb::rset
                           : s.command == "VRFY" ? wire::verb::vrfy
                                                 : wire::verb::help;
            note("command", c.command(v, v == wire::verb::vrfy ? "bob" : ""));
          } else if (!authed) {
            authed = true;
            errc r = errc::ok;
            if (s.auth == "plain") r = c.authenticate(plain);
            if (s.auth == "login") r = c.authenticate(login);
            if (s.auth == "xoauth2") r = c.authenticate(xo);
            if (s.auth == "oauthbearer") r = c.authenticate(ob);
            if (s.auth == "auto") r = c.authenticate(creds(s.user, s.password));
            note("authenticate", r);
            if (r != errc::ok) note("quit", c.quit());
          } else if (messages < s.messages) {
            ++messages;
            smtpwire::envelope env;
            env.from = s.from;
            env.recipients = to.data();
            env.recipient_count = to.size();
            env.rcpt_params = rp.empty() ? nullptr : rp.data();
            env.mail_params = s.mail_params;
            env.size = s.size;
            env.body = s.body;
            env.requiretls = s.requiretls;
            if (s.ret == "full") env.ret = wire::ret_type::full;
            if (s.ret == "hdrs") env.ret = wire::ret_type::hdrs;
            env.envid = s.envid;
            env.dsn = dsn.empty() ? nullptr : dsn.data();
            if (!s.by.empty()) env.by = by_of(s.by);
            env.mt_priority = s.mt_priority;
            env.rrvs = rrvs.empty() ? nullptr : rrvs.data();
            env.holdfor = s.holdfor;
            env.holduntil = s.holduntil;
            env.xforward = s.xforward.empty() ? nullptr : &xforward;
            const errc r = c.send_mail(env);
            note("send_mail", r);
            if (r != errc::ok) note("quit", c.quit());
          } else {
            note("quit", c.quit());
          }
        }
        drain();
      }
      drain();
    };
    auto handshake = [&] {
      if (tls_wanted && !tls_done) {
        tls_done = true;
        const errc e = c.tls_established(
            smtpwire::tls_info{"TLSv1.3", "TLS_AES_128_GCM_SHA256", true, "mx.example.test"});
        if (e != errc::ok) log.push_back("tls_established " + std::string(smtpwire::to_string(e)));
        drain();
        pump();
      }
    };
    std::size_t fed = 0;
    if (plain_size == 0) handshake();
    for (std::string_view chunk : chunks) {
      while (!chunk.empty()) {
        std::string_view part = chunk;
        if (fed < plain_size && fed + part.size() > plain_size)
          part = part.substr(0, plain_size - fed);
        const std::size_t n = c.receive(part);
        fed += n;
        chunk.remove_prefix(n);
        pump();
        if (fed == plain_size) handshake();
      }
    }
    pump();
    std::string out;
    for (const auto& l : log)
      out += l + "\n";
    out += "state " + std::string(smtpwire::to_string(c.state())) + "\n";
    out += "client: " + escaped(sent) + "\n";
    return out;
  }
};

std::string run_vector(const smtpwire::test::vector_case& v, bool grind_it = true) {
  dialogue d;
  d.s = parse_script(v.has("config") ? v.lines("config") : std::vector<std::string>{});
  const std::string plain = v.bytes("server");
  const std::string tls = v.has("server_tls") ? v.bytes("server_tls") : std::string();
  d.plain_size = d.s.cfg.tls == tls_policy::implicit ? 0 : plain.size();
  const std::string input = d.s.cfg.tls == tls_policy::implicit ? tls : plain + tls;
  if (!grind_it) return d(std::vector<std::string_view>{input});
  smtpwire::test::grind_options o;
  o.max_chunk_size = 16;
  o.random_rounds = 16;
  return smtpwire::test::grind(input, d, o);
}

}  // namespace

TEST_CASE("client vectors", "[engine][client]") {
  for (const auto& file : {"client.md", "client-attacks.md", "client-ext.md"}) {
    for (const auto& v : smtpwire::test::load_vectors(file)) {
      INFO(v.file << ":" << v.line << " " << v.name);
      const std::string got = run_vector(v);
      std::string want = v.text("events") + "\n";
      want += "client: " + v.text("client") + "\n";
      CHECK(got == want);
    }
  }
}

// The two transcripts recorded with swaks against Postfix's smtp-sink and
// aiosmtpd (examples/data): the engine must write exactly what swaks wrote.
TEST_CASE("client matches recorded transcripts", "[engine][client]") {
  for (const char* name : {"swaks-to-postfix-smtp-sink.txt", "swaks-to-aiosmtpd.txt"}) {
    INFO(name);
    std::ifstream in(std::string(SMTPWIRE_VECTOR_DIR) + "/../../examples/data/" + name);
    REQUIRE(in);
    std::string server, client_bytes, line;
    while (std::getline(in, line)) {
      if (line.rfind("S: ", 0) == 0) server += smtpwire::test::decode_escapes(line.substr(3));
      if (line.rfind("C: ", 0) == 0) client_bytes += smtpwire::test::decode_escapes(line.substr(3));
    }
    dialogue d;
    d.s.cfg.tls = tls_policy::none;
    d.s.cfg.local_name = d.s.local_name;
    d.s.to = {"bob@example.com", "carol@example.com"};
    if (std::string(name).find("postfix") != std::string::npos)
      d.s.to.push_back("dave@example.net");
    d.s.content =
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.com>\r\nSubject: smtpwire "
        "demo\r\nDate: Sun, 29 Nov 2026 03:40:00 +0000\r\nMessage-ID: "
        "<demo-1@example.org>\r\n\r\nHello Bob,\r\n.a line that starts with a dot\r\nBye.\r\n\r\n";
    d.plain_size = server.size();
    const std::string log = smtpwire::test::grind(server, d, {16, 8, 1});
    CHECK(log.find("client: " + escaped(client_bytes) + "\n") != std::string::npos);
    CHECK(log.find("closed 221") != std::string::npos);
    CHECK(log.find("accepted") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------
// The transition table, walked pair by pair.
// ---------------------------------------------------------------------------

namespace {

std::string drain_all(client& c) {
  std::string s(c.output());
  c.consume_output(s.size());
  return s;
}

std::vector<std::string> events_of(client& c) {
  std::vector<std::string> v;
  for (;;) {
    auto e = c.next_event();
    if (std::holds_alternative<std::monostate>(e)) return v;
    v.push_back(describe(e));
  }
}

void feed(client& c, std::string_view bytes) {
  REQUIRE(c.receive(bytes) == bytes.size());
}

const std::string_view one_rcpt[] = {"bob@example.com"};

// A client (tls none unless starttls is the target, no pipelining) brought
// to state `s` by a canned dialogue.
std::unique_ptr<client> reach(client_state s) {
  client_config cfg;
  cfg.local_name = "client.example.org";
  cfg.tls = s == client_state::starttls || s == client_state::tls_handshake
                ? tls_policy::opportunistic
                : tls_policy::none;
  cfg.pipelining = false;
  cfg.auth_in_clear = true;
  cfg.prefer_bdat = s == client_state::bdat;
  cfg.output_buffer = 16384;
  if (s == client_state::xclient) cfg.xclient.set(wire::xattr::addr, "192.0.2.7");
  if (s == client_state::xforward) cfg.xforward.set(wire::xattr::addr, "192.0.2.8");
  auto c = std::make_unique<client>(cfg);
  if (s == client_state::greeting) return c;
  feed(*c, "220 mx ESMTP\r\n");
  events_of(*c);
  if (s == client_state::ehlo) return c;
  if (s == client_state::helo) {
    feed(*c, "502 no\r\n");
    events_of(*c);
    return c;
  }
  if (s == client_state::starttls || s == client_state::tls_handshake) {
    feed(*c, "250-mx\r\n250 STARTTLS\r\n");
    events_of(*c);
    if (s == client_state::tls_handshake) {
      feed(*c, "220 go\r\n");
      events_of(*c);
    }
    return c;
  }
  feed(
      *c,
      "250-mx\r\n250-CHUNKING\r\n250-XCLIENT ADDR NAME\r\n250-XFORWARD ADDR\r\n250 AUTH PLAIN\r\n");
  events_of(*c);
  if (s == client_state::xclient) return c;
  static smtpwire::sasl_plain plain{"u", "p"};
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  switch (s) {
    case client_state::ready:
      return c;
    case client_state::auth:
      REQUIRE(c->authenticate(plain) == errc::ok);
      return c;
    case client_state::command:
      REQUIRE(c->command(wire::verb::noop) == errc::ok);
      return c;
    case client_state::quit:
      REQUIRE(c->quit() == errc::ok);
      return c;
    case client_state::closed:
      REQUIRE(c->quit() == errc::ok);
      feed(*c, "221 bye\r\n");
      events_of(*c);
      return c;
    case client_state::failed:
      feed(*c, "250 unsolicited\r\n");
      events_of(*c);
      return c;
    default:
      break;
  }
  REQUIRE(c->send_mail(env) == errc::ok);
  if (s == client_state::xforward) return c;
  if (s == client_state::mail) return c;
  feed(*c, "250 ok\r\n");
  events_of(*c);
  if (s == client_state::rcpt) return c;
  if (s == client_state::rset) {
    feed(*c, "550 no\r\n");
    events_of(*c);
    return c;
  }
  feed(*c, "250 ok\r\n");
  events_of(*c);
  if (s == client_state::bdat) {
    // A chunk that fills the output buffer goes out at once; its reply is due.
    REQUIRE(c->state() == client_state::bdat);
    const std::string big(20000, 'x');
    const auto taken = c->send_content(big);
    REQUIRE(taken);
    REQUIRE(*taken > 8000);
    REQUIRE(*taken < 16384);
    const std::string head = "RCPT TO:<bob@example.com>\r\nBDAT " + std::to_string(*taken) + "\r\n";
    REQUIRE(c->output().find(head) != std::string_view::npos);
    REQUIRE(c->output().substr(c->output().find(head) + head.size()) == big.substr(0, *taken));
    return c;
  }
  if (s == client_state::data) return c;
  feed(*c, "354 go\r\n");
  events_of(*c);
  if (s == client_state::content) return c;
  REQUIRE(c->end_content() == errc::ok);
  return c;  // data_end
}

std::string reply_of(client_state s, reply_class k) {
  switch (k) {
    case reply_class::positive_completion:
      return s == client_state::greeting || s == client_state::starttls ||
                     s == client_state::xclient
                 ? "220 ok\r\n"
             : s == client_state::auth ? "235 ok\r\n"
                                       : "250 ok\r\n";
    case reply_class::positive_intermediate:
      return s == client_state::auth ? "334 \r\n" : "354 go\r\n";
    case reply_class::transient:
      return "450 later\r\n";
    case reply_class::permanent:
      return "550 no\r\n";
    case reply_class::service_closing:
      return "421 closing\r\n";
  }
  return "";
}

}  // namespace

TEST_CASE("client transition table: every (state, reply class) pair", "[engine][client]") {
  // The state after an accepted / refused reply, by hand from RFC 5321 §4.3.2
  // and the engine's documented behaviour (one recipient, no pipelining).
  struct row {
    client_state s, after_accept, after_refuse;
  };
  using cs = client_state;
  // clang-format off
  const row rows[] = {
      {cs::greeting, cs::ehlo, cs::failed},
      {cs::ehlo, cs::ready, cs::helo},
      {cs::helo, cs::ready, cs::failed},
      {cs::starttls, cs::tls_handshake, cs::ready},
      {cs::xclient, cs::ehlo, cs::failed},
      {cs::xforward, cs::mail, cs::ready},
      {cs::auth, cs::ready, cs::ready},
      {cs::mail, cs::rcpt, cs::ready},
      {cs::rcpt, cs::data, cs::rset},
      {cs::data, cs::content, cs::rset},
      {cs::data_end, cs::ready, cs::ready},
      {cs::rset, cs::ready, cs::failed},
      {cs::command, cs::ready, cs::ready},
      {cs::quit, cs::closed, cs::closed},
      {cs::ready, cs::failed, cs::failed},
      {cs::content, cs::failed, cs::failed},
      {cs::bdat, cs::bdat, cs::rset},
      {cs::tls_handshake, cs::failed, cs::failed},
      {cs::closed, cs::closed, cs::closed},
      {cs::failed, cs::failed, cs::failed},
  };
  // clang-format on
  REQUIRE(std::size(rows) == smtpwire::client_state_count);
  for (const row& r : rows) {
    for (std::size_t k = 0; k < smtpwire::reply_class_count; ++k) {
      const auto cls = static_cast<reply_class>(k);
      INFO("state " << smtpwire::to_string(r.s) << " reply " << smtpwire::to_string(cls));
      auto c = reach(r.s);
      REQUIRE(c->state() == r.s);
      drain_all(*c);
      const reply_outcome o = smtpwire::client_transition(r.s, cls);
      feed(*c, reply_of(r.s, cls));
      auto evs = events_of(*c);
      // A message cut short first lists its recipients without a reply.
      if (!evs.empty() && evs.front().rfind("not_attempted ", 0) == 0) {
        CHECK((r.s == client_state::mail || r.s == client_state::rcpt ||
               r.s == client_state::xforward));
        evs.erase(evs.begin());
      }
      const std::string first = evs.empty() ? "" : evs.front();
      switch (o) {
        case reply_outcome::accepted:
          CHECK(c->state() == r.after_accept);
          break;
        case reply_outcome::refused:
          CHECK(c->state() == r.after_refuse);
          CHECK(first.rfind("closed", 0) != 0);
          break;
        case reply_outcome::intermediate:
          // 334 with an empty challenge to PLAIN: the exchange is cancelled.
          CHECK(c->state() == client_state::auth);
          CHECK(drain_all(*c) == "*\r\n");
          break;
        case reply_outcome::unexpected:
          CHECK(first == "error reply_unexpected " + reply_of(r.s, cls).substr(0, 3));
          CHECK(drain_all(*c).empty());
          break;
        case reply_outcome::unsolicited:
          CHECK(first == "error reply_unsolicited " + reply_of(r.s, cls).substr(0, 3));
          break;
        case reply_outcome::injection:
          CHECK(first == "error tls_response_injection");
          break;
        case reply_outcome::closing:
          CHECK(c->state() == client_state::closed);
          CHECK(first.rfind("closed ", 0) == 0);
          break;
        case reply_outcome::ignored:
          CHECK(evs.empty());
          break;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// TLS policy guarantees
// ---------------------------------------------------------------------------

TEST_CASE("client under tls required never sends MAIL or AUTH in clear", "[engine][client]") {
  // Every STARTTLS reply but 220, and a server offering no STARTTLS.
  const char* starttls_replies[] = {"454 4.7.0 TLS not available\r\n",
                                    "501 syntax\r\n",
                                    "502 not implemented\r\n",
                                    "500 what\r\n",
                                    "250 sure\r\n",
                                    "221 bye\r\n",
                                    "554 no\r\n"};
  for (const char* rep : starttls_replies) {
    INFO(rep);
    client_config cfg;
    cfg.local_name = "c.example";
    client c{cfg};
    feed(c, "220 mx\r\n250-mx\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n");
    events_of(c);
    CHECK(drain_all(c) == "EHLO c.example\r\nSTARTTLS\r\n");
    feed(c, rep);
    const auto evs = events_of(c);
    REQUIRE(!evs.empty());
    CHECK(evs.back() == std::string("error tls_refused ") + std::string(rep).substr(0, 3));
    CHECK(drain_all(c) == "QUIT\r\n");
    smtpwire::sasl_plain p{"u", "p"};
    CHECK(c.authenticate(p) == errc::api_bad_state);
  }
  {
    client c{named("c.example")};
    feed(c, "220 mx\r\n250-mx\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n");
    const auto evs = events_of(c);
    CHECK(evs.back() == "error tls_not_offered");
    CHECK(drain_all(c) == "EHLO c.example\r\nQUIT\r\n");
  }
  {
    // EHLO refused: HELO would mean no STARTTLS.
    client c{named("c.example")};
    feed(c, "220 mx\r\n500 what is EHLO\r\n");
    const auto evs = events_of(c);
    CHECK(evs.back() == "error tls_helo_only 500");
    CHECK(drain_all(c) == "EHLO c.example\r\nQUIT\r\n");
  }
}

TEST_CASE("client response injection after STARTTLS", "[engine][client]") {
  // Same read, later read, and bytes given before tls_established().
  for (int how = 0; how < 3; ++how) {
    INFO(how);
    client c{named("c.example")};
    feed(c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    events_of(c);
    drain_all(c);
    if (how == 0) feed(c, "220 go\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    if (how != 0) feed(c, "220 go\r\n");
    auto evs = events_of(c);
    if (how == 1) {
      CHECK(evs == std::vector<std::string>{"start_tls 220"});
      c.receive("250 OK\r\n");
      evs = events_of(c);
      CHECK(evs == std::vector<std::string>{"error tls_response_injection"});
    } else if (how == 2) {
      CHECK(evs == std::vector<std::string>{"start_tls 220"});
      c.receive("2");
      CHECK(c.tls_established({}) == errc::api_bad_state);
      CHECK(events_of(c) == std::vector<std::string>{"error tls_response_injection"});
    } else {
      CHECK(evs == std::vector<std::string>{"start_tls 220", "error tls_response_injection"});
      CHECK(c.tls_established({}) == errc::api_bad_state);
    }
    CHECK(c.state() == client_state::failed);
    CHECK(c.error() == errc::tls_response_injection);
    CHECK(drain_all(c).empty());
    CHECK_FALSE(c.tls_active());
  }
  {
    // Injected bytes already buffered when the caller reports the handshake.
    client c{named("c.example")};
    feed(c, "220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n250 injected\r\n");
    auto e = c.next_event();
    while (!std::holds_alternative<ev::start_tls>(e))
      e = c.next_event();
    drain_all(c);
    CHECK(c.tls_established({}) == errc::tls_response_injection);
    CHECK(drain_all(c).empty());
  }
}

TEST_CASE("client forgets pre-TLS capabilities", "[engine][client]") {
  client c{named("c.example")};
  feed(c, "220 mx\r\n250-mx\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 100\r\n220 go\r\n");
  events_of(c);
  CHECK(c.state() == client_state::tls_handshake);
  CHECK(c.tls_established({"TLSv1.3", "x", true, "mx"}) == errc::ok);
  CHECK_FALSE(c.capabilities().has(wire::capability::auth));
  CHECK(drain_all(c) == "EHLO c.example\r\nSTARTTLS\r\nEHLO c.example\r\n");
  // After TLS the server offers no AUTH (it offered it only in clear).
  feed(c, "250-mx\r\n250 PIPELINING\r\n");
  CHECK(events_of(c) == std::vector<std::string>{"capabilities ehlo tls=1 PIPELINING", "ready"});
  CHECK(c.authenticate(creds("u", "p")) == errc::auth_not_offered);
  CHECK(c.capabilities().size == 0);
  CHECK(drain_all(c).empty());
}

TEST_CASE("client refuses credentials in clear", "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::opportunistic;
  client c{cfg};
  feed(c, "220 mx\r\n250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
  CHECK(events_of(c).back() == "ready");
  smtpwire::sasl_plain p{"u", "p"};
  CHECK(c.authenticate(p) == errc::auth_requires_tls);
  CHECK(c.authenticate(creds("u", "p")) == errc::auth_requires_tls);
  CHECK(drain_all(c) == "EHLO c.example\r\n");
}

// ---------------------------------------------------------------------------
// Writer safety and API checks
// ---------------------------------------------------------------------------

namespace {
std::unique_ptr<client> ready_client(std::string_view ehlo, bool pipelining = true) {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.pipelining = pipelining;
  auto c = std::make_unique<client>(cfg);
  feed(*c, "220 mx\r\n");
  feed(*c, ehlo);
  auto evs = events_of(*c);
  REQUIRE(evs.back() == "ready");
  drain_all(*c);
  return c;
}
}  // namespace

TEST_CASE("client refuses values that would break the line", "[engine][client]") {
  CHECK(client{named("bad\r\nname")}.config_error() == errc::api_value_invalid);
  CHECK(client{named("bad name")}.config_error() == errc::api_value_invalid);
  CHECK(client{named("[192.0.2.1]")}.config_error() == errc::ok);
  auto c = ready_client("250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n");
  using namespace std::string_view_literals;
  const std::string_view bad_rcpts[][1] = {
      {"bob@example.com\r\nRSET"sv}, {"bob@exa\0mple.com"sv}, {"<bob@example.com>"sv}, {"bob@"sv}};
  for (const auto& r : bad_rcpts) {
    smtpwire::envelope env;
    env.from = "a@example.org";
    env.recipients = r;
    env.recipient_count = 1;
    CHECK(c->send_mail(env) != errc::ok);
    CHECK(c->output().empty());
    CHECK(c->state() == client_state::ready);
  }
  smtpwire::envelope env;
  env.from = "a@example.org\r\nDATA";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  CHECK(c->send_mail(env) != errc::ok);
  env.from = "a@example.org";
  env.mail_params = "X=1\r\nRSET";
  CHECK(c->send_mail(env) == errc::command_value_invalid);
  env.mail_params = "";
  const std::string_view bad_params[] = {"NOTIFY=NEVER\nX"};
  env.rcpt_params = bad_params;
  CHECK(c->send_mail(env) == errc::command_value_invalid);
  env.rcpt_params = nullptr;
  env.recipient_count = 0;
  CHECK(c->send_mail(env) == errc::api_value_invalid);
  CHECK(c->command(wire::verb::vrfy, "bob\r\nQUIT") == errc::command_value_invalid);
  CHECK(c->command(wire::verb::mail) == errc::api_value_invalid);
  CHECK(c->output().empty());
  // Credentials (clear text allowed here to reach the writer).
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.auth_in_clear = true;
  client a{cfg};
  feed(a, "220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n");
  events_of(a);
  drain_all(a);
  smtpwire::sasl_plain nul{std::string_view("u\0v", 3), "p"};
  CHECK(a.authenticate(nul) == errc::sasl_value_invalid);
  CHECK(a.output().empty());
  CHECK(a.state() == client_state::ready);
}

TEST_CASE("client checks SIZE, 8BITMIME, SMTPUTF8 and REQUIRETLS before sending",
          "[engine][client]") {
  auto c = ready_client("250-mx\r\n250 SIZE 1000\r\n");
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  env.size = 1001;
  CHECK(c->send_mail(env) == errc::message_too_big);
  env.size = 0;
  env.body = wire::body_type::eight_bit_mime;
  CHECK(c->send_mail(env) == errc::data_8bit_not_offered);
  env.body = wire::body_type::binary_mime;
  CHECK(c->send_mail(env) == errc::data_binary_not_offered);
  env.body = wire::body_type::seven_bit;
  const std::string_view utf8_rcpt[] = {"j\xc3\xb6rg@example.com"};
  env.recipients = utf8_rcpt;
  CHECK(c->send_mail(env) == errc::utf8_not_allowed);
  env.recipients = one_rcpt;
  env.requiretls = true;
  CHECK(c->send_mail(env) == errc::requiretls_not_offered);
  CHECK(c->output().empty());
  env.requiretls = false;
  env.size = 1000;
  CHECK(c->send_mail(env) == errc::ok);
  CHECK(drain_all(*c) == "MAIL FROM:<a@example.org> SIZE=1000\r\n");
}

TEST_CASE("client fails on undeclared 8-bit content and NUL", "[engine][client]") {
  using namespace std::string_view_literals;
  for (std::string_view bad : {"caf\xc3\xa9\r\n"sv, "a\0b"sv}) {
    auto c = ready_client("250 mx\r\n", false);
    smtpwire::envelope env;
    env.from = "a@example.org";
    env.recipients = one_rcpt;
    env.recipient_count = 1;
    REQUIRE(c->send_mail(env) == errc::ok);
    feed(*c, "250 ok\r\n250 ok\r\n354 go\r\n");
    CHECK(events_of(*c).back() == "send_content");
    drain_all(*c);
    auto r = c->send_content(bad);
    CHECK_FALSE(r);
    CHECK(c->state() == client_state::failed);
    CHECK(c->end_content() == errc::api_bad_state);
  }
}

TEST_CASE("client streams big content with bounded output", "[engine][client]") {
  auto c = ready_client("250-mx\r\n250 PIPELINING\r\n");
  const std::size_t cap = c->buffer_capacity();
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  REQUIRE(c->send_mail(env) == errc::ok);
  feed(*c, "250 ok\r\n250 ok\r\n354 go\r\n");
  events_of(*c);
  drain_all(*c);
  std::string line(78, 'x');
  line = "." + line + "\r\n";  // every line needs a dot added
  std::string msg;
  while (msg.size() < 1 << 20)
    msg += line;
  std::string sent;
  std::string_view rest = msg;
  std::size_t max_pending = 0;
  while (!rest.empty()) {
    auto r = c->send_content(rest);
    REQUIRE(r);
    rest.remove_prefix(*r);
    max_pending = std::max(max_pending, c->output().size());
    sent += c->output();
    c->consume_output(c->output().size() / 2 + 1);  // a slow socket
    sent.resize(sent.size() - c->output().size());
  }
  REQUIRE(c->end_content() == errc::ok);
  sent += drain_all(*c);
  CHECK(max_pending <= 65536);
  CHECK(c->buffer_capacity() == cap);
  std::string want;
  for (std::size_t i = 0; i < msg.size() / line.size(); ++i)
    want += "." + line;
  want += ".\r\n";
  CHECK(sent == want);
}

TEST_CASE("client reply errors are fatal and distinct", "[engine][client]") {
  using namespace std::string_literals;
  struct cse {
    std::string bytes;
    errc e;
  };
  std::string flood = "220-a\r\n";
  for (int i = 0; i < 300; ++i)
    flood += "220-a\r\n";
  const cse cases[] = {
      {"220-mx\r\n250 mixed\r\n", errc::reply_code_mismatch},
      {"999 bad\r\n", errc::reply_code_invalid},
      {"22\r\n", errc::reply_code_invalid},
      {"220 mx\n", errc::bare_lf},
      {"220 m\0x\r\n"s, errc::nul_byte},
      {"220xmx\r\n", errc::reply_syntax},
      {flood, errc::reply_too_many_lines},
  };
  for (const auto& k : cases) {
    INFO(escaped(k.bytes));
    client c{named("c.example")};
    std::string_view rest = k.bytes;
    std::vector<std::string> evs;
    while (!rest.empty()) {
      rest.remove_prefix(c.receive(rest));
      for (auto& e : events_of(c))
        evs.push_back(e);
    }
    REQUIRE(!evs.empty());
    CHECK(evs.back() == "error " + std::string(smtpwire::to_string(k.e)));
    CHECK(c.error() == k.e);
    CHECK(drain_all(c).empty());
  }
  {
    // An endless line: bounded memory, line_too_long.
    client c{named("c.example")};
    const std::size_t cap = c.buffer_capacity();
    std::string big(100000, 'a');
    big = "220 " + big;
    std::string_view rest = big;
    std::vector<std::string> evs;
    while (!rest.empty() && c.state() != client_state::failed) {
      rest.remove_prefix(c.receive(rest));
      for (auto& e : events_of(c))
        evs.push_back(e);
    }
    CHECK(evs.back() == "error line_too_long");
    CHECK(c.buffer_capacity() == cap);
  }
}

TEST_CASE("client timeouts follow RFC 5321 4.5.3.2", "[engine][client]") {
  using namespace std::chrono;
  const client::time_point t0{};
  client c{named("c.example")};
  CHECK_FALSE(c.deadline());
  c.check_time(t0);
  REQUIRE(c.deadline());
  CHECK(*c.deadline() == t0 + minutes(5));
  c.check_time(t0 + minutes(4));
  CHECK(c.state() == client_state::greeting);
  c.check_time(t0 + minutes(5));
  CHECK(c.state() == client_state::failed);
  CHECK(events_of(c) == std::vector<std::string>{"error timeout"});

  auto r = ready_client("250 mx\r\n", false);
  CHECK_FALSE(r->deadline());
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  REQUIRE(r->send_mail(env) == errc::ok);
  feed(*r, "250 ok\r\n250 ok\r\n");
  events_of(*r);
  CHECK(r->state() == client_state::data);
  r->check_time(t0);
  CHECK(*r->deadline() == t0 + minutes(2));
  feed(*r, "354 go\r\n");
  events_of(*r);
  CHECK_FALSE(r->deadline());
  REQUIRE(r->end_content() == errc::ok);
  r->check_time(t0 + minutes(1));
  CHECK(*r->deadline() == t0 + minutes(11));
}

TEST_CASE("client state and outcome names", "[engine][client]") {
  for (std::size_t i = 0; i < smtpwire::client_state_count; ++i)
    CHECK(smtpwire::to_string(static_cast<client_state>(i)) != "unknown");
  CHECK(smtpwire::to_string(tls_policy::implicit) == "implicit");
  CHECK(smtpwire::class_of(421) == reply_class::service_closing);
  CHECK(smtpwire::class_of(420) == reply_class::transient);
  CHECK(smtpwire::class_of(354) == reply_class::positive_intermediate);
}

TEST_CASE("client reset serves the next connection without allocating", "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  client c{cfg};
  const std::size_t cap = c.buffer_capacity();
  std::string first;
  for (int round = 0; round < 2; ++round) {
    c.reset();
    CHECK(c.state() == client_state::greeting);
    CHECK(c.error() == errc::ok);
    feed(c, "220 mx\r\n250-mx\r\n250 PIPELINING\r\n");
    CHECK(events_of(c).back() == "ready");
    smtpwire::envelope env;
    env.from = "a@example.org";
    env.recipients = one_rcpt;
    env.recipient_count = 1;
    REQUIRE(c.send_mail(env) == errc::ok);
    feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
    CHECK(events_of(c).back() == "send_content");
    REQUIRE(c.send_content("hi\r\n"));
    REQUIRE(c.end_content() == errc::ok);
    feed(c, "250 ok\r\n");
    CHECK(events_of(c) == std::vector<std::string>{"accepted 1 250", "ready"});
    REQUIRE(c.quit() == errc::ok);
    feed(c, "221 bye\r\n");
    CHECK(events_of(c) == std::vector<std::string>{"closed 221"});
    const std::string sent = drain_all(c);
    if (round == 0) first = sent;
    CHECK(sent == first);
    CHECK(c.buffer_capacity() == cap);
  }
  CHECK(first ==
        "EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT "
        "TO:<bob@example.com>\r\nDATA\r\nhi\r\n.\r\n"
        "QUIT\r\n");
}

TEST_CASE("client sends only a mechanism the server listed", "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.auth_in_clear = true;
  client c{cfg};
  feed(c, "220 mx\r\n250-mx\r\n250 AUTH LOGIN X-VENDOR\r\n");
  CHECK(events_of(c).back() == "ready");
  drain_all(c);
  smtpwire::sasl_plain plain{"u", "p"};
  smtpwire::sasl_xoauth2 xo{"u", "tok"};
  CHECK(c.authenticate(plain) == errc::auth_not_offered);
  CHECK(c.authenticate(xo) == errc::auth_not_offered);
  CHECK(c.output().empty());
  // A mechanism outside the core (e.g. from a TLS/crypto adapter) plugs in
  // through sasl_client_mechanism.
  struct vendor final : smtpwire::sasl_client_mechanism {
    std::string_view name() const noexcept override { return "X-VENDOR"; }
    errc initial_response(std::string& out, bool& present) override {
      present = true;
      out += "hello";
      return errc::ok;
    }
    errc respond(std::string_view challenge, std::string& out) override {
      out += challenge;
      out += "!";
      return errc::ok;
    }
  } v;
  REQUIRE(c.authenticate(v) == errc::ok);
  CHECK(drain_all(c) == "AUTH X-VENDOR aGVsbG8=\r\n");
  feed(c, "334 YWJj\r\n");  // "abc"
  CHECK(events_of(c).empty());
  CHECK(drain_all(c) == "YWJjIQ==\r\n");  // "abc!"
  feed(c, "235 2.7.0 ok\r\n");
  CHECK(events_of(c) == std::vector<std::string>{"auth ok X-VENDOR 235", "ready"});
  CHECK(c.authenticated());
}

TEST_CASE("client cancels an AUTH exchange it cannot answer", "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.auth_in_clear = true;
  client c{cfg};
  feed(c, "220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n");
  events_of(c);
  drain_all(c);
  smtpwire::sasl_plain plain{"u", "p"};
  REQUIRE(c.authenticate(plain) == errc::ok);
  CHECK(drain_all(c) == "AUTH PLAIN AHUAcA==\r\n");
  feed(c, "334 not base64!\r\n");
  CHECK(events_of(c).empty());
  CHECK(drain_all(c) == "*\r\n");  // RFC 4954 §4
  feed(c, "501 5.0.0 cancelled\r\n");
  CHECK(events_of(c) == std::vector<std::string>{"auth failed PLAIN 501", "ready"});
  CHECK_FALSE(c.authenticated());
}

// ---------------------------------------------------------------------------
// BDAT / CHUNKING (RFC 3030)
// ---------------------------------------------------------------------------

namespace {

std::unique_ptr<client> bdat_client(std::string_view ehlo, bool pipelining, bool lmtp = false) {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.pipelining = pipelining;
  cfg.prefer_bdat = true;
  cfg.lmtp = lmtp;
  cfg.output_buffer = 16384;
  auto c = std::make_unique<client>(cfg);
  feed(*c, "220 mx\r\n");
  feed(*c, ehlo);
  REQUIRE(events_of(*c).back() == "ready");
  drain_all(*c);
  return c;
}

// A message of `n` octets of CRLF text lines, some of them lone dots.
std::string text_message(std::size_t n) {
  std::string m;
  for (std::size_t i = 0; m.size() < n; ++i)
    m += i % 7 == 0 ? ".\r\n" : "line " + std::to_string(i) + " .. text\r\n";
  m.resize(n - 2);
  m += "\r\n";
  return m;
}

struct bdat_chunk {
  std::size_t size;
  bool last;
};

// Splits client bytes made of BDAT commands and their octets; every byte
// must belong to one of them.
std::vector<bdat_chunk> parse_chunks(std::string_view wire_bytes, std::string& payload) {
  std::vector<bdat_chunk> v;
  while (!wire_bytes.empty()) {
    const std::size_t eol = wire_bytes.find("\r\n");
    REQUIRE(eol != std::string_view::npos);
    const auto cmd = wire::parse_command(wire_bytes.substr(0, eol));
    REQUIRE(cmd);
    REQUIRE(cmd->kind == wire::verb::bdat);
    wire_bytes.remove_prefix(eol + 2);
    REQUIRE(cmd->size <= wire_bytes.size());
    payload.append(wire_bytes.substr(0, cmd->size));
    wire_bytes.remove_prefix(cmd->size);
    v.push_back({static_cast<std::size_t>(cmd->size), cmd->last});
  }
  return v;
}

}  // namespace

TEST_CASE("client BDAT pipelines chunks bounded by the output buffer", "[engine][client]") {
  auto c = bdat_client("250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n", true);
  const std::size_t cap = c->buffer_capacity();
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  REQUIRE(c->send_mail(env) == errc::ok);
  CHECK(drain_all(*c) == "MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\n");
  feed(*c, "250 ok\r\n250 ok\r\n");
  CHECK(events_of(*c) ==
        std::vector<std::string>{"rcpt 0 bob@example.com accepted 250", "send_content"});
  CHECK(c->state() == client_state::bdat);
  const std::string msg = text_message(100000);
  std::string_view rest = msg;
  std::string sent;
  while (!rest.empty()) {
    const auto r = c->send_content(rest);
    REQUIRE(r);
    CHECK(c->output().size() <= 16384);
    rest.remove_prefix(*r);
    sent += drain_all(*c);
  }
  REQUIRE(c->end_content() == errc::ok);
  sent += drain_all(*c);
  std::string payload;
  const auto chunks = parse_chunks(sent, payload);
  CHECK(payload == msg);  // never dot-stuffed
  REQUIRE(chunks.size() > 5);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    CHECK(chunks[i].last == (i + 1 == chunks.size()));
    CHECK(chunks[i].size <= 16384);
  }
  CHECK(c->state() == client_state::data_end);
  // Every non-last chunk gets its own reply and no event; the last decides.
  for (std::size_t i = 0; i + 1 < chunks.size(); ++i) {
    feed(*c, "250 2.0.0 chunk ok\r\n");
    CHECK(events_of(*c).empty());
  }
  feed(*c, "250 2.0.0 queued\r\n");
  CHECK(events_of(*c) == std::vector<std::string>{"accepted 1 250", "ready"});
  CHECK(c->buffer_capacity() == cap);
}

TEST_CASE("client BDAT without PIPELINING waits for each chunk's reply", "[engine][client]") {
  auto c = bdat_client("250-mx\r\n250 CHUNKING\r\n", false);
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  REQUIRE(c->send_mail(env) == errc::ok);
  feed(*c, "250 ok\r\n");
  feed(*c, "250 ok\r\n");
  CHECK(events_of(*c).back() == "send_content");
  CHECK(drain_all(*c) == "MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@example.com>\r\n");
  const std::string msg = text_message(50000);
  std::string_view rest = msg;
  std::string sent;
  std::size_t replies = 0;
  bool ended = false;
  for (int guard = 0; guard < 1000 && c->state() != client_state::ready; ++guard) {
    if (!rest.empty()) {
      const auto r = c->send_content(rest);
      REQUIRE(r);
      rest.remove_prefix(*r);
    } else if (!ended) {
      REQUIRE(c->end_content() == errc::ok);
      ended = true;
    }
    sent += drain_all(*c);
    // Never more than one chunk in flight.
    const std::size_t commands = [&] {
      std::size_t n = 0;
      for (std::size_t at = 0; (at = sent.find("BDAT ", at)) != std::string::npos; ++at)
        ++n;
      return n;
    }();
    REQUIRE(commands <= replies + 1);
    if (commands == replies + 1) {
      feed(*c, "250 ok\r\n");
      ++replies;
      for (const auto& e : events_of(*c))
        CHECK((e == "accepted 1 250" || e == "ready"));
    }
  }
  CHECK(c->state() == client_state::ready);
  std::string payload;
  const auto chunks = parse_chunks(sent, payload);
  CHECK(payload == msg);
  CHECK(chunks.size() == replies);
  CHECK(chunks.size() > 3);
  CHECK(chunks.back().last);
}

TEST_CASE("client BDAT: a refused chunk ends the transaction with RSET", "[engine][client]") {
  auto c = bdat_client("250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n", true);
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  REQUIRE(c->send_mail(env) == errc::ok);
  feed(*c, "250 ok\r\n250 ok\r\n");
  events_of(*c);
  drain_all(*c);
  const std::string msg = text_message(40000);
  std::string_view rest = msg;
  for (int k = 0; k < 2; ++k) {
    const auto r = c->send_content(rest);
    REQUIRE(r);
    REQUIRE(*r < rest.size());
    rest.remove_prefix(*r);
    CHECK(drain_all(*c).rfind("BDAT ", 0) == 0);
  }
  // The rest fits: it stays in the open chunk, not yet on the wire.
  const auto tail = c->send_content("tail\r\n");
  REQUIRE(tail);
  REQUIRE(*tail == 6);
  CHECK(c->output().empty());
  feed(*c, "552 5.3.4 message too big\r\n");
  CHECK(events_of(*c) == std::vector<std::string>{"rejected content 552 permanent"});
  // RFC 3030 §2: no further BDAT; the open chunk is dropped.
  CHECK(drain_all(*c) == "RSET\r\n");
  CHECK(!c->send_content("more"));
  CHECK(c->end_content() == errc::api_bad_state);
  feed(*c, "250 2.0.0 second chunk\r\n");
  CHECK(events_of(*c).empty());
  CHECK(c->state() == client_state::rset);
  feed(*c, "250 2.0.0 reset\r\n");
  CHECK(events_of(*c) == std::vector<std::string>{"ready"});
}

TEST_CASE("client BDAT keeps the BODY rules", "[engine][client]") {
  using namespace std::string_view_literals;
  struct row {
    wire::body_type body;
    std::string_view content;
    errc want;
  };
  const row rows[] = {
      {wire::body_type::seven_bit, "caf\xc3\xa9\r\n"sv, errc::data_8bit_not_declared},
      {wire::body_type::eight_bit_mime, "a\0b"sv, errc::data_nul},
  };
  for (const row& r : rows) {
    auto c = bdat_client("250-mx\r\n250-8BITMIME\r\n250 CHUNKING\r\n", false);
    smtpwire::envelope env;
    env.from = "a@example.org";
    env.recipients = one_rcpt;
    env.recipient_count = 1;
    env.body = r.body;
    REQUIRE(c->send_mail(env) == errc::ok);
    feed(*c, "250 ok\r\n250 ok\r\n");
    events_of(*c);
    drain_all(*c);
    const auto res = c->send_content(r.content);
    REQUIRE(!res);
    CHECK(res.error() == r.want);
    CHECK(c->state() == client_state::failed);
    CHECK(drain_all(*c).empty());  // nothing of the message left the engine
  }
}

// ---------------------------------------------------------------------------
// tls_failed
// ---------------------------------------------------------------------------

TEST_CASE("a TLS handshake that never finishes times out, nothing in clear", "[engine][client]") {
  using namespace std::chrono;
  const client::time_point t0{hours(1)};
  auto c = reach(client_state::tls_handshake);
  drain_all(*c);
  CHECK_FALSE(c->deadline());  // the clock starts with the first check_time()
  c->check_time(t0);
  REQUIRE(c->deadline());
  CHECK(*c->deadline() == t0 + minutes(1));
  c->check_time(t0 + seconds(59));
  CHECK(c->state() == client_state::tls_handshake);
  c->check_time(t0 + minutes(1));
  CHECK(c->state() == client_state::failed);
  CHECK(c->error() == errc::timeout);
  CHECK(events_of(*c) == std::vector<std::string>{"error timeout"});
  CHECK(c->output().empty());

  client_config cfg = named("c.example");
  cfg.tls = tls_policy::implicit;
  cfg.timeouts.tls_handshake = seconds(5);
  client imp{cfg};
  imp.check_time(t0);
  REQUIRE(imp.deadline());
  CHECK(*imp.deadline() == t0 + seconds(5));
  imp.check_time(t0 + seconds(5));
  CHECK(imp.error() == errc::timeout);
  CHECK(imp.output().empty());
}

TEST_CASE("client tls_failed ends the session without a byte in clear", "[engine][client]") {
  auto c = reach(client_state::tls_handshake);
  drain_all(*c);
  REQUIRE(c->tls_failed() == errc::ok);
  CHECK(c->state() == client_state::failed);
  CHECK(c->error() == errc::tls_handshake_failed);
  CHECK(events_of(*c) == std::vector<std::string>{"error tls_handshake_failed"});
  CHECK(c->output().empty());
  CHECK(c->tls_failed() == errc::api_bad_state);
  CHECK(c->tls_established({}) == errc::api_bad_state);

  client_config cfg = named("c.example");
  cfg.tls = tls_policy::implicit;
  client imp{cfg};
  REQUIRE(imp.tls_failed() == errc::ok);
  CHECK(events_of(imp) == std::vector<std::string>{"error tls_handshake_failed"});
  CHECK(imp.output().empty());

  for (client_state s : {client_state::greeting, client_state::ready, client_state::starttls}) {
    auto o = reach(s);
    const std::string before(o->output());
    CHECK(o->tls_failed() == errc::api_bad_state);
    CHECK(o->state() == s);
    CHECK(o->output() == before);
    CHECK(events_of(*o).empty());
  }
}

// ---------------------------------------------------------------------------
// RFC 4954 §4: the AUTH line limit
// ---------------------------------------------------------------------------

namespace {
// A mechanism with an initial response of `n` octets and no further step.
class sized_mechanism final : public smtpwire::sasl_client_mechanism {
 public:
  explicit sized_mechanism(std::size_t n) : n_(n) {}
  std::string_view name() const noexcept override { return "X-BIG"; }
  errc initial_response(std::string& out, bool& present) override {
    present = true;
    out.append(n_, 'q');
    return errc::ok;
  }
  errc respond(std::string_view, std::string&) override { return errc::sasl_message_invalid; }

 private:
  std::size_t n_;
};
}  // namespace

TEST_CASE("client keeps AUTH lines within 12288 octets (RFC 4954 4)", "[engine][client]") {
  const std::string ehlo = "250-mx\r\n250 AUTH PLAIN X-BIG\r\n";
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.auth_in_clear = true;
  auto start = [&] {
    auto c = std::make_unique<client>(cfg);
    feed(*c, "220 mx\r\n");
    feed(*c, ehlo);
    events_of(*c);
    drain_all(*c);
    return c;
  };
  auto b64 = [](std::size_t n) {
    std::string s;
    wire::base64_encode(s, std::string(n, 'q'));
    return s;
  };
  {
    // 9204 octets: 12272 in base64, "AUTH X-BIG " + 12272 + CRLF = 12285.
    auto c = start();
    sized_mechanism m(9204);
    REQUIRE(c->authenticate(m) == errc::ok);
    const std::string line = drain_all(*c);
    CHECK(line == "AUTH X-BIG " + b64(9204) + "\r\n");
    CHECK(line.size() <= smtpwire::auth_line_max);
  }
  for (std::size_t n : {std::size_t{9207}, std::size_t{9213}}) {
    // Too long for the AUTH line: sent alone, the response after the 334.
    auto c = start();
    sized_mechanism m(n);
    REQUIRE(c->authenticate(m) == errc::ok);
    CHECK(drain_all(*c) == "AUTH X-BIG\r\n");
    feed(*c, "334 \r\n");
    CHECK(events_of(*c).empty());
    const std::string resp = drain_all(*c);
    CHECK(resp == b64(n) + "\r\n");
    CHECK(resp.size() <= smtpwire::auth_line_max);
    feed(*c, "235 2.7.0 ok\r\n");
    CHECK(events_of(*c) == std::vector<std::string>{"auth ok X-BIG 235", "ready"});
  }
  {
    // Refused before the 334: the held-back response never leaves.
    auto c = start();
    sized_mechanism m(9210);
    REQUIRE(c->authenticate(m) == errc::ok);
    CHECK(drain_all(*c) == "AUTH X-BIG\r\n");
    feed(*c, "504 5.5.4 no\r\n");
    CHECK(events_of(*c) == std::vector<std::string>{"auth failed X-BIG 504", "ready"});
    CHECK(drain_all(*c).empty());
  }
  {
    // 9216 octets: 12288 in base64, longer than any line may be.
    auto c = start();
    sized_mechanism m(9216);
    CHECK(c->authenticate(m) == errc::line_too_long);
    CHECK(c->output().empty());
    CHECK(c->state() == client_state::ready);
  }
}

// ---------------------------------------------------------------------------
// DSN (RFC 3461)
// ---------------------------------------------------------------------------

TEST_CASE("client checks DSN values before sending", "[engine][client]") {
  auto c = ready_client("250-mx\r\n250-PIPELINING\r\n250 DSN\r\n");
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  env.envid = "tab\there";  // RFC 3461 §4.4: printable US-ASCII only
  CHECK(c->send_mail(env) == errc::api_value_invalid);
  const std::string long_id(40, '+');  // 120 octets once encoded (> 100)
  env.envid = long_id;
  CHECK(c->send_mail(env) == errc::param_value_invalid);
  env.envid = std::string_view(long_id).substr(0, 33);  // 99 octets: fits
  smtpwire::recipient_dsn d;
  const std::string long_orcpt(170, '=');  // "rfc822;" + 510 octets
  d.orcpt = long_orcpt;
  env.dsn = &d;
  CHECK(c->send_mail(env) == errc::param_value_invalid);
  d.orcpt = "bob@example.com";
  d.orcpt_type = "rfc 822";  // not an atom
  CHECK(c->send_mail(env) == errc::param_value_invalid);
  d.orcpt_type = "rfc822";
  d.notify = wire::notify_never | wire::notify_delay;
  CHECK(c->send_mail(env) == errc::notify_invalid);
  CHECK(c->output().empty());
  CHECK(c->state() == client_state::ready);
  d.notify = wire::notify_delay;
  REQUIRE(c->send_mail(env) == errc::ok);
  std::string encoded;
  for (int i = 0; i < 33; ++i)
    encoded += "+2B";
  CHECK(drain_all(*c) ==
        "MAIL FROM:<a@example.org> ENVID=" + encoded +
            "\r\n"
            "RCPT TO:<bob@example.com> NOTIFY=DELAY ORCPT=rfc822;bob@example.com\r\n"
            "DATA\r\n");
}

TEST_CASE("client BDAT waits with the data_term timeout only while a reply is due",
          "[engine][client]") {
  using namespace std::chrono;
  auto c = bdat_client("250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n", true);
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  REQUIRE(c->send_mail(env) == errc::ok);
  feed(*c, "250 ok\r\n250 ok\r\n");
  events_of(*c);
  drain_all(*c);
  const steady_clock::time_point t0{};
  // Streaming, no chunk sent: nothing is awaited.
  REQUIRE(c->send_content("small\r\n"));
  c->check_time(t0);
  CHECK(!c->deadline());
  c->check_time(t0 + hours(1));
  CHECK(c->state() == client_state::bdat);
  // A sealed chunk in flight: its reply is due within data_term (10 min).
  const std::string big = text_message(30000);
  REQUIRE(c->send_content(big));
  REQUIRE(!c->output().empty());
  c->check_time(t0);
  REQUIRE(c->deadline());
  CHECK(*c->deadline() == t0 + minutes(10));
  c->check_time(t0 + minutes(10));
  CHECK(c->state() == client_state::failed);
  CHECK(events_of(*c) == std::vector<std::string>{"error timeout"});
}

// smtpwire-send (tools/smtpwire-send.cpp: --tls none, --helo client.localhost,
// pipelining on; once with --chunking) recorded against a private Postfix
// smtpd through scripts/record-transcript. Fed Postfix's recorded reads, a
// client configured as the tool was must write exactly what the tool wrote,
// in the recorded chunking and in every other one.
TEST_CASE("client replays smtpwire-send's transcripts against Postfix's smtpd",
          "[engine][client][transcripts]") {
  // The message file the tool sent, byte for byte (CRLF line ends).
  const std::string message =
      "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: transcript "
      "through Postfix\r\nDate: Sun, 29 Nov 2026 09:30:00 +0000\r\nMessage-ID: "
      "<postfix-transcript-1@example.org>\r\n\r\nfirst line\r\n.a line starting with a "
      "dot\r\nlast line\r\n";
  struct recording {
    const char* file;
    bool chunking;
    std::vector<std::string> to;
  };
  const recording recordings[] = {
      {"smtpwire-send-to-postfix-smtpd.txt", false, {"bob@example.org", "carol@example.org"}},
      {"smtpwire-send-to-postfix-smtpd-bdat.txt", true, {"bob@example.org"}},
  };
  for (const recording& r : recordings) {
    INFO(r.file);
    std::ifstream in(std::string(SMTPWIRE_VECTOR_DIR) + "/transcripts/" + r.file);
    REQUIRE(in);
    std::vector<std::string> server_chunks;
    std::string server, client_bytes, line;
    while (std::getline(in, line)) {
      if (line.rfind("S: ", 0) == 0) {
        server_chunks.push_back(smtpwire::test::decode_escapes(line.substr(3)));
        server += server_chunks.back();
      }
      if (line.rfind("C: ", 0) == 0) client_bytes += smtpwire::test::decode_escapes(line.substr(3));
    }
    REQUIRE(server_chunks.size() >= 5);
    dialogue d;
    d.s.cfg.tls = tls_policy::none;
    d.s.local_name = "client.localhost";
    d.s.cfg.local_name = d.s.local_name;
    d.s.cfg.pipelining = true;
    d.s.cfg.prefer_bdat = r.chunking;
    d.s.to = r.to;
    d.s.content = message;
    d.s.size = message.size();  // the tool's SIZE= value: octets with CRLF line ends
    d.plain_size = server.size();
    const std::string recorded =
        d(std::vector<std::string_view>(server_chunks.begin(), server_chunks.end()));
    CHECK(recorded.find("client: " + escaped(client_bytes) + "\n") != std::string::npos);
    CHECK(recorded.find("greeting 220\n") == 0);
    CHECK(recorded.find("CHUNKING") != std::string::npos);
    for (std::size_t i = 0; i < r.to.size(); ++i)
      CHECK(recorded.find("rcpt " + std::to_string(i) + ' ' + r.to[i] + " accepted 250\n") !=
            std::string::npos);
    CHECK(recorded.find("accepted " + std::to_string(r.to.size()) + " 250\n") != std::string::npos);
    CHECK(recorded.find("closed 221\nstate closed\n") != std::string::npos);
    CHECK(recorded.find("error") == std::string::npos);
    CHECK(recorded.find("rejected") == std::string::npos);
    CHECK(recorded.find("api ") == std::string::npos);
    CHECK(recorded.find("send_content\n") != std::string::npos);
    // The recording is the kind it claims: BDAT with --chunking, else DATA.
    CHECK((client_bytes.find("\r\nBDAT 238 LAST\r\n") != std::string::npos) == r.chunking);
    CHECK((client_bytes.find("\r\nDATA\r\n") != std::string::npos) == !r.chunking);
    const std::string ground = smtpwire::test::grind(server, d, {16, 8, 1});
    CHECK(ground == recorded);
  }
}

// ---------------------------------------------------------------------------
// Issue #9: LIMITS (RFC 9422), XCLIENT / XFORWARD, BY, MT-PRIORITY, RRVS,
// FUTURERELEASE
// ---------------------------------------------------------------------------

namespace {

// A scripted SMTP server that answers whatever the client writes: EHLO with
// the given capability lines, MAIL / RCPT / end of data with seeded random
// codes, DATA with 354 only when a recipient was accepted, BDAT chunks by
// size. It records what it saw so that the client's account can be checked
// against it.
struct fake_server {
  std::string ehlo;  // the whole EHLO reply
  std::mt19937 rng;
  std::string in;   // client bytes not yet processed
  std::string out;  // replies not yet delivered
  bool in_data = false, mail_ok = false;
  std::size_t bdat_left = 0;
  bool bdat_last = false;
  std::vector<std::string> txn_rcpts;                  // RCPTs of the open transaction, as written
  std::vector<std::string> txn_accepted;               // those answered 250
  std::vector<std::vector<std::string>> transactions;  // RCPT addresses per MAIL
  std::vector<std::string> delivered;  // accepted in a transaction whose end got 250
  std::size_t mails = 0;

  int pick(int good, int bad, int percent_good) {
    return static_cast<int>(rng() % 100) < percent_good ? good : bad;
  }
  void end_of_message() {
    const int code = pick(250, 451, 80);
    if (code == 250) delivered.insert(delivered.end(), txn_accepted.begin(), txn_accepted.end());
    out += std::to_string(code) + " end\r\n";
    mail_ok = false;
  }
  void feed(std::string_view bytes) {
    in.append(bytes.data(), bytes.size());
    for (;;) {
      if (bdat_left != 0) {
        const std::size_t n = std::min(bdat_left, in.size());
        in.erase(0, n);
        bdat_left -= n;
        if (bdat_left != 0) return;
        if (bdat_last)
          end_of_message();
        else
          out += "250 chunk\r\n";
        continue;
      }
      const std::size_t eol = in.find("\r\n");
      if (eol == std::string::npos) return;
      const std::string line = in.substr(0, eol);
      in.erase(0, eol + 2);
      if (in_data) {
        if (line == ".") {
          in_data = false;
          end_of_message();
        }
        continue;
      }
      if (line.rfind("EHLO ", 0) == 0) {
        out += ehlo;
      } else if (line.rfind("MAIL FROM:", 0) == 0) {
        ++mails;
        transactions.emplace_back();
        txn_rcpts.clear();
        txn_accepted.clear();
        mail_ok = pick(250, 452, 92) == 250;
        out += mail_ok ? "250 ok\r\n" : "452 4.5.3 not now\r\n";
      } else if (line.rfind("RCPT TO:<", 0) == 0) {
        const std::string addr = line.substr(9, line.find('>') - 9);
        if (!mail_ok) {
          out += "503 need MAIL\r\n";
          continue;
        }
        transactions.back().push_back(addr);
        if (pick(250, 550, 75) == 250) {
          txn_accepted.push_back(addr);
          out += "250 ok\r\n";
        } else {
          out += "550 no\r\n";
        }
      } else if (line == "DATA") {
        if (mail_ok && !txn_accepted.empty()) {
          in_data = true;
          out += "354 go\r\n";
        } else {
          out += "554 no valid recipients\r\n";
        }
      } else if (line.rfind("BDAT ", 0) == 0) {
        bdat_last = line.find(" LAST") != std::string::npos;
        bdat_left = std::stoul(line.substr(5));
        if (bdat_left == 0 && bdat_last) end_of_message();
      } else if (line == "RSET") {
        mail_ok = false;
        out += "250 reset\r\n";
      } else if (line == "QUIT") {
        out += "221 bye\r\n";
      } else {
        out += "500 what\r\n";
      }
    }
  }
};

std::string domain_part(std::string_view a) {
  std::string d(a.substr(a.rfind('@') + 1));
  for (char& ch : d)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return d;
}

}  // namespace

TEST_CASE("client LIMITS: every recipient is accounted for exactly once", "[engine][client]") {
  for (unsigned seed = 1; seed <= 400; ++seed) {
    std::mt19937 rng(seed);
    const std::size_t n = 1 + rng() % 60, domains = 1 + rng() % 7;
    const std::uint32_t rcptmax = rng() % 3 == 0 ? 0 : 1 + rng() % 12;
    const std::uint32_t domainmax = rng() % 2 == 0 ? 0 : 1 + rng() % 4;
    const std::uint32_t mailmax = rng() % 3 == 0 ? 0 : 1 + rng() % 10;
    const bool pipelining = rng() % 2 == 0, bdat = rng() % 3 == 0;
    INFO("seed " << seed << " n " << n << " domains " << domains << " RCPTMAX " << rcptmax
                 << " RCPTDOMAINMAX " << domainmax << " MAILMAX " << mailmax << " pipelining "
                 << pipelining << " bdat " << bdat);
    std::vector<std::string> to_storage;
    for (std::size_t i = 0; i < n; ++i)
      to_storage.push_back("u" + std::to_string(i) + "@D" + std::to_string(rng() % domains) +
                           ".example");
    std::vector<std::string_view> to(to_storage.begin(), to_storage.end());
    fake_server srv;
    srv.rng.seed(seed * 7919u);
    std::string limits;
    if (rcptmax != 0) limits += " RCPTMAX=" + std::to_string(rcptmax);
    if (domainmax != 0) limits += " RCPTDOMAINMAX=" + std::to_string(domainmax);
    if (mailmax != 0) limits += " MAILMAX=" + std::to_string(mailmax);
    srv.ehlo = "250-mx\r\n250-CHUNKING\r\n" +
               std::string(limits.empty() ? "" : "250-LIMITS" + limits + "\r\n") +
               "250 PIPELINING\r\n";
    client_config cfg = named("c.example");
    cfg.tls = tls_policy::none;
    cfg.pipelining = pipelining;
    cfg.prefer_bdat = bdat;
    client c{cfg};
    const std::size_t cap = c.buffer_capacity();
    srv.out = "220 mx\r\n";
    smtpwire::envelope env;
    env.from = "a@example.org";
    env.recipients = to.data();
    env.recipient_count = to.size();
    // The client's account, per message.
    std::vector<int> seen(n * 2, 0);  // recipient events + not_attempted listings
    std::vector<std::string> delivered, pending_accepted;
    int messages = 0;
    std::string sent;
    bool done = false;
    for (int round = 0; round < 100000 && !done; ++round) {
      if (!srv.out.empty()) {
        const std::size_t k = std::min<std::size_t>(srv.out.size(), 1 + rng() % 64);
        REQUIRE(c.receive(std::string_view(srv.out).substr(0, k)) == k);
        srv.out.erase(0, k);
      }
      for (;;) {
        const client_event e = c.next_event();
        if (std::holds_alternative<std::monostate>(e)) break;
        const std::size_t base = messages >= 2 ? n : 0;
        if (auto r = std::get_if<ev::recipient>(&e)) {
          ++seen[base + r->index];
          if (r->accepted) pending_accepted.push_back(std::string(r->address));
        } else if (auto na = std::get_if<ev::recipients_not_attempted>(&e)) {
          REQUIRE(na->count >= 1);
          for (std::size_t i = 0; i < na->count; ++i) {
            if (i != 0) CHECK(na->indices[i - 1] < na->indices[i]);
            ++seen[base + na->indices[i]];
          }
        } else if (std::holds_alternative<ev::message_accepted>(e)) {
          delivered.insert(delivered.end(), pending_accepted.begin(), pending_accepted.end());
          pending_accepted.clear();
        } else if (std::holds_alternative<ev::message_rejected>(e)) {
          pending_accepted.clear();
        } else if (std::holds_alternative<ev::send_content>(e)) {
          REQUIRE(c.send_content("Subject: s\r\n\r\nbody\r\n"));
          REQUIRE(c.end_content() == errc::ok);
        } else if (std::holds_alternative<ev::ready>(e)) {
          if (messages < 2) {
            const errc r = c.send_mail(env);
            if (r == errc::mailmax_reached) {
              CHECK(mailmax != 0);
              CHECK(c.transactions() == mailmax);
              for (std::size_t i = 0; i < n; ++i)
                ++seen[n + i];  // nothing of the second message left the engine
              messages = 2;
              REQUIRE(c.quit() == errc::ok);
            } else {
              REQUIRE(r == errc::ok);
              if (++messages == 2) {
                // The first message is complete: every recipient once.
                for (std::size_t i = 0; i < n; ++i)
                  CHECK(seen[i] == 1);
              }
            }
          } else {
            REQUIRE(c.quit() == errc::ok);
          }
        } else if (std::holds_alternative<ev::closed>(e) || std::holds_alternative<ev::error>(e)) {
          if (auto er = std::get_if<ev::error>(&e)) FAIL("error " << smtpwire::to_string(er->code));
          done = true;
        }
      }
      const std::string_view o = c.output();
      sent += o;
      srv.feed(o);
      c.consume_output(o.size());
    }
    REQUIRE(done);
    CHECK(c.buffer_capacity() == cap);
    for (std::size_t i = 0; i < 2 * n; ++i) {
      INFO("recipient " << i % n << " of message " << i / n);
      CHECK(seen[i] == 1);
    }
    // The caps the server announced were kept, per transaction and session.
    if (mailmax != 0) CHECK(srv.mails <= mailmax);
    CHECK(srv.mails == c.transactions());
    for (const auto& t : srv.transactions) {
      if (rcptmax != 0) CHECK(t.size() <= rcptmax);
      std::vector<std::string> ds;
      for (const auto& a : t)
        if (std::find(ds.begin(), ds.end(), domain_part(a)) == ds.end())
          ds.push_back(domain_part(a));
      if (domainmax != 0) CHECK(ds.size() <= domainmax);
    }
    // What the client reports delivered is what the server delivered.
    CHECK(delivered == srv.delivered);
  }
}

TEST_CASE("client LIMITS: a big message splits with the same content, no allocation",
          "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.max_recipients = 1000;
  client c{cfg};
  const std::size_t cap = c.buffer_capacity();
  std::vector<std::string> storage;
  for (int i = 0; i < 1000; ++i)
    storage.push_back("user" + std::to_string(i) + "@example.com");
  std::vector<std::string_view> to(storage.begin(), storage.end());
  fake_server srv;
  srv.ehlo = "250-mx\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=100 MAILMAX=1000\r\n";
  feed(c, "220 mx\r\n" + srv.ehlo);
  REQUIRE(events_of(c).back() == "ready");
  drain_all(c);
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = to.data();
  env.recipient_count = to.size();
  REQUIRE(c.send_mail(env) == errc::ok);
  int contents = 0, accepted_events = 0;
  std::size_t rcpt_events = 0;
  const std::string content = "Subject: big\r\n\r\nthe same body\r\n";
  std::string received_contents;
  for (int round = 0; round < 100000; ++round) {
    const std::string o(c.output());
    c.consume_output(o.size());
    // Every line of DATA content between 354 and ".": the same each time.
    srv.rng.seed(static_cast<unsigned>(round));
    srv.feed(o);
    if (srv.out.empty()) break;
    feed(c, srv.out);
    srv.out.clear();
    for (const std::string& e : events_of(c)) {
      if (e.rfind("send_content", 0) == 0) {
        CHECK(e == (contents == 0 ? "send_content" : "send_content " + std::to_string(contents)));
        ++contents;
        REQUIRE(c.send_content(content));
        REQUIRE(c.end_content() == errc::ok);
      }
      if (e.rfind("rcpt ", 0) == 0) ++rcpt_events;
      if (e.rfind("accepted ", 0) == 0) ++accepted_events;
      if (e == "ready") REQUIRE(c.quit() == errc::ok);
    }
  }
  CHECK(srv.transactions.size() == 10);
  for (const auto& t : srv.transactions)
    CHECK(t.size() == 100);
  CHECK(contents == 10);
  CHECK(rcpt_events == 1000);
  CHECK(c.state() == client_state::closed);
  CHECK(c.buffer_capacity() == cap);
}

TEST_CASE("client XCLIENT splits long attribute sets over lines, one 220 each",
          "[engine][client]") {
  // XCLIENT_README note 1: a command stays within 512 octets; send NAME and
  // ADDR first, then HELO, each line answered by 220.
  const std::string name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                           std::string(63, 'c') + "." + std::string(50, 'd') + ".example";
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.xclient.set(wire::xattr::name, name);
  cfg.xclient.set(wire::xattr::addr, "IPV6:2001:db8::1");
  cfg.xclient.set(wire::xattr::helo, name);
  cfg.xclient.set(wire::xattr::proto, "ESMTP");
  client c{cfg};
  REQUIRE(c.config_error() == errc::ok);
  feed(c, "220 mx\r\n");
  CHECK(events_of(c) == std::vector<std::string>{"greeting 220"});
  CHECK(drain_all(c) == "EHLO c.example\r\n");
  feed(c, "250-mx\r\n250 XCLIENT NAME ADDR PROTO HELO LOGIN\r\n");
  CHECK(events_of(c) == std::vector<std::string>{"capabilities ehlo tls=0 XCLIENT"});
  std::vector<std::string> lines;
  for (int i = 0; i < 5 && c.state() == client_state::xclient; ++i) {
    const std::string out = drain_all(c);
    REQUIRE(out.rfind("XCLIENT ", 0) == 0);
    REQUIRE(out.size() <= 512);
    REQUIRE(out.find("\r\n") == out.size() - 2);  // one line at a time, never pipelined
    lines.push_back(out);
    feed(c, "220 mx new session\r\n");
    events_of(c);
  }
  REQUIRE(lines.size() >= 2);
  std::string all;
  for (const auto& l : lines)
    all += l;
  CHECK(all.find("NAME=" + name) != std::string::npos);
  CHECK(all.find("HELO=" + name) != std::string::npos);
  CHECK(all.find("ADDR=IPV6:2001:db8::1") != std::string::npos);
  CHECK(all.find("PROTO=ESMTP") != std::string::npos);
  CHECK(c.state() == client_state::ehlo);
  CHECK(drain_all(c) == "EHLO c.example\r\n");
  // The second EHLO lists XCLIENT again: it is not sent twice.
  feed(c, "250-mx\r\n250 XCLIENT NAME ADDR PROTO HELO LOGIN\r\n");
  CHECK(events_of(c).back() == "ready");
  CHECK(drain_all(c).empty());
}

TEST_CASE("client refuses bad XCLIENT / XFORWARD values before anything is sent",
          "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.xclient.set(wire::xattr::addr, "not an address");
  CHECK(client{cfg}.config_error() == errc::api_value_invalid);
  cfg = named("c.example");
  cfg.xforward.set(wire::xattr::login, "alice");  // XFORWARD has no LOGIN
  CHECK(client{cfg}.config_error() == errc::api_value_invalid);
  cfg = named("c.example");
  cfg.tls = tls_policy::none;
  client c{cfg};
  feed(c, "220 mx\r\n250-mx\r\n250 XFORWARD NAME ADDR PORT\r\n");
  events_of(c);
  drain_all(c);
  wire::xattributes bad;
  bad.set(wire::xattr::port, "70000");
  smtpwire::envelope env;
  env.from = "a@example.org";
  env.recipients = one_rcpt;
  env.recipient_count = 1;
  env.xforward = &bad;
  CHECK(c.send_mail(env) == errc::xattr_value_invalid);
  CHECK(c.output().empty());
  CHECK(c.state() == client_state::ready);
  // The same attributes, valid: only those the server lists are sent.
  wire::xattributes good;
  good.set(wire::xattr::port, "4242");
  good.set(wire::xattr::proto, "ESMTP");
  env.xforward = &good;
  REQUIRE(c.send_mail(env) == errc::ok);
  CHECK(drain_all(c) == "XFORWARD PORT=4242\r\n");
  CHECK(c.state() == client_state::xforward);
}

TEST_CASE("client checks BY, MT-PRIORITY, RRVS, HOLDFOR and HOLDUNTIL before sending",
          "[engine][client]") {
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  auto fresh = [&](std::string_view ehlo) {
    auto c = std::make_unique<client>(cfg);
    feed(*c, "220 mx\r\n");
    feed(*c, ehlo);
    events_of(*c);
    drain_all(*c);
    REQUIRE(c->state() == client_state::ready);
    return c;
  };
  const std::string all =
      "250-mx\r\n250-PIPELINING\r\n250-DELIVERBY 120\r\n250-MT-PRIORITY\r\n250-RRVS\r\n"
      "250 FUTURERELEASE 3600 2027-01-01T00:00:00Z\r\n";
  const std::string none = "250-mx\r\n250 PIPELINING\r\n";
  const std::string_view two[] = {"a@example.com", "b@example.com"};
  auto base = [&] {
    smtpwire::envelope env;
    env.from = "a@example.org";
    env.recipients = two;
    env.recipient_count = 2;
    return env;
  };
  struct row {
    const char* what;
    std::function<void(smtpwire::envelope&)> set;
    errc offered, not_offered, dropped;
  };
  static const wire::rrvs_param rr_c[] = {{"2014-04-03T23:01:00Z", 'C'}, {"", 0}};
  static const wire::rrvs_param rr_r[] = {{"2014-04-03T23:01:00Z", 'R'}, {"", 0}};
  static const wire::rrvs_param rr_bad_date[] = {{"2014-04-03 23:01:00Z", 'C'}, {"", 0}};
  static const wire::rrvs_param rr_bad_action[] = {{"2014-04-03T23:01:00Z", 'X'}, {"", 0}};
  const row rows[] = {
      {"BY N",
       [](auto& e) {
         e.by = wire::deliver_by{-5, wire::by_mode::notify, false};
       },
       errc::ok, errc::deliverby_not_offered, errc::ok},
      {"BY R",
       [](auto& e) {
         e.by = wire::deliver_by{600, wire::by_mode::return_message, true};
       },
       errc::ok, errc::deliverby_not_offered, errc::deliverby_not_offered},
      {"BY R zero",
       [](auto& e) {
         e.by = wire::deliver_by{0, wire::by_mode::return_message, false};
       },
       errc::param_value_invalid, errc::param_value_invalid, errc::param_value_invalid},
      {"BY R below min-by-time",
       [](auto& e) {
         e.by = wire::deliver_by{60, wire::by_mode::return_message, false};
       },
       errc::param_value_invalid, errc::deliverby_not_offered, errc::deliverby_not_offered},
      {"BY 10 digits",
       [](auto& e) {
         e.by = wire::deliver_by{1000000000, wire::by_mode::notify, false};
       },
       errc::param_value_invalid, errc::param_value_invalid, errc::param_value_invalid},
      {"MT-PRIORITY 9", [](auto& e) { e.mt_priority = 9; }, errc::ok, errc::mt_priority_not_offered,
       errc::ok},
      {"MT-PRIORITY 10", [](auto& e) { e.mt_priority = 10; }, errc::param_value_invalid,
       errc::param_value_invalid, errc::param_value_invalid},
      {"RRVS C", [](auto& e) { e.rrvs = rr_c; }, errc::ok, errc::rrvs_not_offered, errc::ok},
      {"RRVS R", [](auto& e) { e.rrvs = rr_r; }, errc::ok, errc::rrvs_not_offered,
       errc::rrvs_not_offered},
      {"RRVS bad date", [](auto& e) { e.rrvs = rr_bad_date; }, errc::param_value_invalid,
       errc::param_value_invalid, errc::param_value_invalid},
      {"RRVS bad action", [](auto& e) { e.rrvs = rr_bad_action; }, errc::param_value_invalid,
       errc::param_value_invalid, errc::param_value_invalid},
      {"HOLDFOR", [](auto& e) { e.holdfor = 3600u; }, errc::ok, errc::futurerelease_not_offered,
       errc::futurerelease_not_offered},
      {"HOLDFOR above max-interval", [](auto& e) { e.holdfor = 3601u; }, errc::param_value_invalid,
       errc::futurerelease_not_offered, errc::futurerelease_not_offered},
      {"HOLDUNTIL", [](auto& e) { e.holduntil = "2026-12-24T18:00:00.5-05:00"; }, errc::ok,
       errc::futurerelease_not_offered, errc::futurerelease_not_offered},
      {"HOLDUNTIL bad", [](auto& e) { e.holduntil = "2026-13-24T18:00:00Z"; },
       errc::param_value_invalid, errc::param_value_invalid, errc::param_value_invalid},
      {"HOLDFOR and HOLDUNTIL",
       [](auto& e) {
         e.holdfor = 10u;
         e.holduntil = "2026-12-24T18:00:00Z";
       },
       errc::param_conflict, errc::param_conflict, errc::param_conflict},
  };
  for (const row& r : rows) {
    INFO(r.what);
    for (int variant = 0; variant < 3; ++variant) {
      cfg.drop_optional_params_when_not_offered = variant == 2;
      auto c = fresh(variant == 0 ? all : none);
      smtpwire::envelope env = base();
      r.set(env);
      const errc want = variant == 0 ? r.offered : variant == 1 ? r.not_offered : r.dropped;
      const errc got = c->send_mail(env);
      CHECK(got == want);
      const std::string out = drain_all(*c);
      if (want != errc::ok) {
        CHECK(out.empty());
        CHECK(c->state() == client_state::ready);
        continue;
      }
      // Sent exactly when offered; dropped otherwise.
      const bool sent = variant == 0;
      CHECK((out.find(" BY=") != std::string::npos) == (sent && env.by.has_value()));
      CHECK((out.find(" MT-PRIORITY=") != std::string::npos) ==
            (sent && env.mt_priority.has_value()));
      CHECK((out.find(" RRVS=") != std::string::npos) == (sent && env.rrvs != nullptr));
      CHECK((out.find(" HOLDFOR=") != std::string::npos) == env.holdfor.has_value());
      CHECK((out.find(" HOLDUNTIL=") != std::string::npos) == !env.holduntil.empty());
    }
  }
  cfg.drop_optional_params_when_not_offered = false;
}

TEST_CASE("client LIMITS: an undrained output ends the message, the rest listed",
          "[engine][client]") {
  // A server that answers the end of data before the client's application
  // drained output(): the next transaction does not fit, so its recipients
  // are reported (output_full) instead of growing the buffer.
  client_config cfg = named("c.example");
  cfg.tls = tls_policy::none;
  cfg.output_buffer = 16384;
  client c{cfg};
  const std::size_t cap = c.buffer_capacity();
  feed(c, "220 mx\r\n250-mx\r\n250-PIPELINING\r\n250 LIMITS RCPTMAX=1\r\n");
  events_of(c);
  drain_all(c);
  const std::string_view two[] = {"a@example.com", "b@example.com"};
  smtpwire::envelope env;
  env.from = "s@example.org";
  env.recipients = two;
  env.recipient_count = 2;
  REQUIRE(c.send_mail(env) == errc::ok);
  feed(c, "250 ok\r\n250 ok\r\n354 go\r\n");
  CHECK(events_of(c).back() == "send_content");
  const std::string body(20000, 'x');
  for (int i = 0; i < 40; ++i) {
    const auto taken = c.send_content(body);
    REQUIRE(taken);
    if (*taken == 0) break;
  }
  REQUIRE(c.end_content() == errc::ok);
  CHECK(c.output().size() > 16000);
  feed(c, "250 queued\r\n");
  CHECK(events_of(c) ==
        std::vector<std::string>{"accepted 1 250", "not_attempted output_full 1", "ready"});
  CHECK(c.transactions() == 1);
  CHECK(c.buffer_capacity() == cap);
}
