// The client engine and the server engine joined in memory: each direction
// of the "connection" delivers the other side's output() in seeded random
// chunks of 1..N octets, taking only what receive() accepts. The server
// application decides at random; the test checks that both ends agree on
// every decision and that the content the server application receives is
// the client's input as the data encoder normalises it.
#include <smtpwire/client.hpp>
#include <smtpwire/server.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

using smtpwire::client;
using smtpwire::client_config;
using smtpwire::client_event;
using smtpwire::client_state;
using smtpwire::errc;
using smtpwire::rejection_stage;
using smtpwire::server;
using smtpwire::server_config;
using smtpwire::server_event;
using smtpwire::tls_policy;
namespace ev = smtpwire::client_events;
namespace wire = smtpwire::wire;

namespace {

// The message as wire::data_encoder (normalize_line_ends) and the server's
// decoder turn it into content: bare CR, bare LF and CRLF each become CRLF,
// and a CRLF is added when the message does not end with one (an empty
// message stays empty: ".\r\n" right after the 354).
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

// One message the client sends, and what both sides saw of it.
struct message {
  std::string from;
  std::vector<std::string> rcpt_storage;
  std::vector<std::string_view> rcpts;
  std::string content;
  bool eight_bit = false;
  bool binary = false;  // BODY=BINARYMIME (sent with BDAT, byte-exact)

  // What the server application decided (codes: 250, 450, 550, …).
  bool server_saw_mail = false;
  int mail_code = 0;
  std::vector<int> rcpt_codes;
  bool server_saw_data = false;
  std::vector<int> end_codes;  // one per accepted recipient in LMTP, else one
  std::string received;

  // What the client reported.
  std::vector<std::size_t> client_rcpt_index;
  std::vector<int> client_rcpt_codes;
  std::vector<int> client_delivery_codes;
  int outcome = 0;  // 1 accepted, 2 rejected
  std::size_t accepted_count = 0;
  rejection_stage stage = rejection_stage::mail;
  int final_code = 0;
};

// A client and a server over a randomly chunked in-memory connection.
struct joined {
  client c;
  server s;
  std::mt19937 rng;
  std::size_t max_chunk;
  std::vector<message> msgs;
  std::size_t next_send = 0;   // the next message send_mail() gets
  std::size_t server_msg = 0;  // the message the server application is on (mail count)
  std::size_t client_msg = 0;  // the message whose events the client reports
  std::string_view to_stream;  // content left to pass to send_content
  bool streaming = false;
  bool ended = false;
  std::size_t lmtp_rcpt_accepted = 0;
  std::size_t lmtp_end_seen = 0;

  // Knobs.
  int mail_refusal_per_mille = 60;
  int rcpt_refusal_per_mille = 300;
  int content_refusal_per_mille = 80;
  bool auth_wanted = false;
  std::string_view auth_user, auth_pass;

  // Observations.
  std::string c2s;  // every byte that crossed client -> server
  std::size_t c2s_at_tls = std::string::npos;
  bool client_start_tls = false, server_starttls = false;
  bool client_error = false, client_closed = false, server_closed = false;
  int auth_outcome = 0;  // 1 success, 2 failure
  bool server_auth_ok = false;
  smtpwire::close_reason close_reason = smtpwire::close_reason::timeout;
  std::size_t idle_rounds = 0;

  joined(const client_config& cc, const server_config& sc, std::uint32_t seed, std::size_t n)
      : c(cc), s(sc), rng(seed), max_chunk(n) {}

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  bool chance(int per_mille) { return pick(0, 999) < per_mille; }

  // Moves one random chunk each way; returns true when a byte moved.
  bool transfer() {
    bool moved = false;
    std::string_view co = c.output();
    if (!co.empty()) {
      const std::size_t k = std::min<std::size_t>(co.size(), pick(1, int(max_chunk)));
      const std::size_t taken = s.receive(co.substr(0, k));
      REQUIRE(taken <= k);
      c2s.append(co.data(), taken);
      c.consume_output(taken);
      moved = moved || taken != 0;
    }
    std::string_view so = s.output();
    if (!so.empty() && c.state() != client_state::tls_handshake) {
      const std::size_t k = std::min<std::size_t>(so.size(), pick(1, int(max_chunk)));
      const std::size_t taken = c.receive(so.substr(0, k));
      REQUIRE(taken <= k);
      REQUIRE(s.consume_output(taken) == errc::ok);
      moved = moved || taken != 0;
    }
    return moved;
  }

  smtpwire::server_reply refusal(int code) {
    smtpwire::server_reply r;
    r.code = code;
    return r;
  }

  // Decides with a random refusal rate; returns the code sent.
  int decide(int per_mille, int code_ok) {
    if (chance(per_mille)) {
      const bool perm = chance(500);
      REQUIRE((perm ? s.reject(refusal(550)) : s.temp_fail(refusal(450))) == errc::ok);
      return perm ? 550 : 450;
    }
    REQUIRE(s.accept() == errc::ok);
    return code_ok;
  }

  bool pump_server() {
    bool any = false;
    for (;;) {
      const server_event e = s.next_event();
      if (std::holds_alternative<std::monostate>(e)) break;
      any = true;
      if (std::holds_alternative<smtpwire::connect_event>(e)) {
        REQUIRE(s.accept() == errc::ok);
      } else if (std::holds_alternative<smtpwire::hello_event>(e)) {
        REQUIRE(s.accept() == errc::ok);
      } else if (auto* m = std::get_if<smtpwire::mail_event>(&e)) {
        REQUIRE(server_msg < msgs.size());
        message& msg = msgs[server_msg++];
        REQUIRE(std::string(m->reverse_path.address.local_part) + "@" +
                    std::string(m->reverse_path.address.domain) ==
                msg.from);
        msg.server_saw_mail = true;
        msg.mail_code = decide(mail_refusal_per_mille, 250);
      } else if (auto* r = std::get_if<smtpwire::rcpt_event>(&e)) {
        message& msg = msgs[server_msg - 1];
        REQUIRE(msg.rcpt_codes.size() < msg.rcpts.size());
        const std::string addr = std::string(r->forward_path.address.local_part) + "@" +
                                 std::string(r->forward_path.address.domain);
        REQUIRE(addr == msg.rcpts[msg.rcpt_codes.size()]);
        msg.rcpt_codes.push_back(decide(rcpt_refusal_per_mille, 250));
      } else if (std::holds_alternative<smtpwire::data_start_event>(e)) {
        msgs[server_msg - 1].server_saw_data = true;
        lmtp_end_seen = 0;
        REQUIRE(s.accept() == errc::ok);
      } else if (auto* ct = std::get_if<smtpwire::content_event>(&e)) {
        msgs[server_msg - 1].received.append(ct->bytes);
      } else if (auto* d = std::get_if<smtpwire::data_end_event>(&e)) {
        message& msg = msgs[server_msg - 1];
        REQUIRE(d->error == errc::ok);
        REQUIRE(d->octets == msg.received.size());
        // LMTP: the decision is due again, without a new event, once per
        // accepted recipient (RFC 2033 §4.2).
        do {
          msg.end_codes.push_back(decide(content_refusal_per_mille, 250));
        } while (s.pending_decision() == smtpwire::server_decision::data_end);
        CHECK(msg.end_codes.size() == (s.config().lmtp ? d->recipients : 1));
      } else if (auto* a = std::get_if<smtpwire::auth_event>(&e)) {
        // The server application's own credential store: one user.
        server_auth_ok = a->authcid == "alice" && a->secret == "correct horse";
        REQUIRE((server_auth_ok ? s.accept() : s.reject()) == errc::ok);
      } else if (std::holds_alternative<smtpwire::starttls_event>(e)) {
        server_starttls = true;
      } else if (auto* rj = std::get_if<smtpwire::rejected_event>(&e)) {
        // The engine refuses on its own only a pipelined RCPT or DATA after
        // MAIL was refused, DATA without recipients, and MAIL under the
        // require_auth policy.
        INFO("verb " << int(rj->verb) << " code " << rj->code);
        REQUIRE((rj->verb == wire::verb::data || rj->verb == wire::verb::rcpt ||
                 rj->verb == wire::verb::mail));
      } else if (auto* cl = std::get_if<smtpwire::closed_event>(&e)) {
        server_closed = true;
        close_reason = cl->reason;
      }
    }
    return any;
  }

  void start_next() {
    if (auth_wanted && auth_outcome == 0 && !c.authenticated()) {
      smtpwire::credentials cr;
      cr.user = auth_user;
      cr.password = auth_pass;
      REQUIRE(c.authenticate(cr) == errc::ok);
      return;
    }
    if (next_send < msgs.size()) {
      message& m = msgs[next_send++];
      smtpwire::envelope env;
      env.from = m.from;
      env.recipients = m.rcpts.data();
      env.recipient_count = m.rcpts.size();
      env.size = m.content.size();
      if (m.eight_bit) env.body = wire::body_type::eight_bit_mime;
      if (m.binary) env.body = wire::body_type::binary_mime;
      REQUIRE(c.send_mail(env) == errc::ok);
    } else {
      REQUIRE(c.quit() == errc::ok);
    }
  }

  bool pump_client() {
    bool any = false;
    for (;;) {
      const client_event e = c.next_event();
      if (std::holds_alternative<std::monostate>(e)) break;
      any = true;
      if (std::holds_alternative<ev::ready>(e)) {
        start_next();
      } else if (std::holds_alternative<ev::start_tls>(e)) {
        client_start_tls = true;
      } else if (auto* a = std::get_if<ev::auth_result>(&e)) {
        auth_outcome = a->success ? 1 : 2;
      } else if (auto* r = std::get_if<ev::recipient>(&e)) {
        message& m = msgs[client_msg];
        REQUIRE(r->address == m.rcpts[r->index]);
        REQUIRE(r->accepted == (r->reply.code() / 100 == 2));
        m.client_rcpt_index.push_back(r->index);
        m.client_rcpt_codes.push_back(r->reply.code());
      } else if (std::holds_alternative<ev::send_content>(e)) {
        to_stream = msgs[client_msg].content;
        streaming = true;
        ended = false;
      } else if (auto* d = std::get_if<ev::delivery>(&e)) {
        message& m = msgs[client_msg];
        REQUIRE(d->address == m.rcpts[d->index]);
        REQUIRE(d->delivered == (d->reply.code() / 100 == 2));
        m.client_delivery_codes.push_back(d->reply.code());
      } else if (auto* ma = std::get_if<ev::message_accepted>(&e)) {
        message& m = msgs[client_msg++];
        m.outcome = 1;
        m.accepted_count = ma->recipients;
        m.final_code = ma->reply.code();
        streaming = false;
      } else if (auto* mr = std::get_if<ev::message_rejected>(&e)) {
        message& m = msgs[client_msg++];
        m.outcome = 2;
        m.stage = mr->stage;
        m.final_code = mr->reply.code();
        streaming = false;
      } else if (std::holds_alternative<ev::closed>(e)) {
        client_closed = true;
      } else if (auto* er = std::get_if<ev::error>(&e)) {
        INFO("client error " << smtpwire::to_string(er->code));
        client_error = true;
      }
    }
    if (streaming && !ended) {
      if (!to_stream.empty()) {
        const std::size_t k = std::min<std::size_t>(to_stream.size(), pick(1, 64));
        const auto taken = c.send_content(to_stream.substr(0, k));
        REQUIRE(taken.has_value());
        to_stream.remove_prefix(*taken);
        any = any || *taken != 0;
      } else if (c.end_content() == errc::ok) {
        ended = true;
        any = true;
      }
    }
    return any;
  }

  // Hook called when the client reports start_tls: both sides are told the
  // handshake is done once the server's 220 has been delivered.
  void maybe_finish_tls() {
    if (!client_start_tls || c.state() != client_state::tls_handshake) return;
    if (!server_starttls || !s.output().empty()) return;
    c2s_at_tls = c2s.size();
    const smtpwire::tls_info info{"TLSv1.3", "TLS_AES_256_GCM_SHA384", true, "mx.example.test"};
    REQUIRE(s.tls_established(info) == errc::ok);
    REQUIRE(c.tls_established(info) == errc::ok);
  }

  void run() {
    for (std::size_t round = 0; round < 200000; ++round) {
      bool progress = pump_server();
      progress = pump_client() || progress;
      maybe_finish_tls();
      progress = transfer() || progress;
      if (client_error) return;
      if (client_closed && server_closed && c.output().empty() && s.output().empty()) return;
      if (!progress && ++idle_rounds > 64) return;
      if (progress) idle_rounds = 0;
    }
  }
};

message random_message(std::mt19937& rng, std::size_t session, std::size_t k, bool allow_8bit) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  message m;
  m.from = "s" + std::to_string(session) + "m" + std::to_string(k) + "@client.test";
  const int n = pick(1, 5);
  for (int j = 0; j < n; ++j)
    m.rcpt_storage.push_back("r" + std::to_string(j) + ".m" + std::to_string(k) + "@mx.test");
  for (const std::string& r : m.rcpt_storage)
    m.rcpts.emplace_back(r);
  m.eight_bit = allow_8bit && pick(0, 3) == 0;
  static const char alphabet[] = {'.', '\r', '\n', 'a', 'b', ' '};
  const int len = pick(0, 3) == 0 ? pick(0, 8) : pick(0, 400);
  for (int i = 0; i < len; ++i) {
    if (m.eight_bit && pick(0, 15) == 0)
      m.content += static_cast<char>(pick(0x80, 0xff));
    else
      m.content += alphabet[pick(0, 5)];
  }
  return m;
}

// Checks that the client's view of message `m` equals the server's decisions.
void check_message(const message& m, bool lmtp) {
  INFO("from " << m.from);
  REQUIRE(m.server_saw_mail);
  REQUIRE(m.outcome != 0);
  if (m.mail_code != 250) {
    CHECK(m.outcome == 2);
    CHECK(m.stage == rejection_stage::mail);
    CHECK(m.final_code == m.mail_code);
    CHECK(m.rcpt_codes.empty());
    for (int code : m.client_rcpt_codes)
      CHECK(code / 100 != 2);
    CHECK(!m.server_saw_data);
    return;
  }
  // One recipient event per RCPT, in order, with the server's code.
  REQUIRE(m.client_rcpt_codes.size() == m.rcpts.size());
  REQUIRE(m.rcpt_codes == m.client_rcpt_codes);
  for (std::size_t i = 0; i < m.client_rcpt_index.size(); ++i)
    CHECK(m.client_rcpt_index[i] == i);
  std::size_t accepted = 0;
  for (int code : m.rcpt_codes)
    accepted += code == 250 ? 1 : 0;
  if (accepted == 0) {
    CHECK(m.outcome == 2);
    CHECK(m.stage == rejection_stage::recipients);
    CHECK(!m.server_saw_data);
    return;
  }
  REQUIRE(m.server_saw_data);
  CHECK(m.received == normalised(m.content));
  if (!lmtp) {
    REQUIRE(m.end_codes.size() == 1);
    CHECK(m.final_code == m.end_codes[0]);
    if (m.end_codes[0] == 250) {
      CHECK(m.outcome == 1);
      CHECK(m.accepted_count == accepted);
    } else {
      CHECK(m.outcome == 2);
      CHECK(m.stage == rejection_stage::content);
    }
    return;
  }
  REQUIRE(m.end_codes.size() == accepted);
  CHECK(m.client_delivery_codes == m.end_codes);
  std::size_t delivered = 0;
  for (int code : m.end_codes)
    delivered += code == 250 ? 1 : 0;
  CHECK(m.final_code == m.end_codes.back());
  if (delivered != 0) {
    CHECK(m.outcome == 1);
    CHECK(m.accepted_count == delivered);
  } else {
    CHECK(m.outcome == 2);
    CHECK(m.stage == rejection_stage::content);
  }
}

struct totals {
  std::size_t sessions = 0, messages = 0, accepted = 0, rejected = 0, content_octets = 0;
};

void random_session(std::uint32_t seed, bool lmtp, totals& t) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  client_config cc;
  cc.local_name = "client.test";
  cc.tls = tls_policy::none;
  cc.pipelining = pick(0, 1) == 1;
  cc.lmtp = lmtp;
  server_config sc;
  sc.host_name = "mx.test";
  sc.lmtp = lmtp;
  sc.extensions.pipelining = pick(0, 1) == 1;
  sc.extensions.eightbitmime = pick(0, 3) != 0;
  sc.extensions.enhancedstatuscodes = pick(0, 1) == 1;
  const std::size_t chunk = pick(0, 2) == 0 ? 3 : std::size_t(pick(1, 300));
  joined j(cc, sc, seed ^ 0x9e3779b9u, chunk);
  const int n = pick(0, 3) == 0 ? pick(2, 5) : 1;
  for (int k = 0; k < n; ++k)
    j.msgs.push_back(random_message(rng, seed, std::size_t(k), sc.extensions.eightbitmime));
  INFO("seed " << seed << " lmtp " << lmtp << " pipelining " << cc.pipelining << "/"
               << sc.extensions.pipelining << " chunk " << chunk);
  j.run();
  INFO("client state " << smtpwire::to_string(j.c.state()) << " server state "
                       << smtpwire::to_string(j.s.state()) << " client sent\n"
                       << j.c2s);
  for (const message& m : j.msgs)
    UNSCOPED_INFO("msg mail " << m.mail_code << " rcpts " << m.rcpt_codes.size() << "/"
                              << m.client_rcpt_codes.size() << " outcome " << m.outcome << " final "
                              << m.final_code);
  REQUIRE(!j.client_error);
  REQUIRE(j.client_closed);
  REQUIRE(j.server_closed);
  INFO("server errors " << j.s.errors() << " close " << smtpwire::to_string(j.close_reason));
  // A correct client never commits a protocol error, also not when its
  // pipelined RCPT/DATA follow a refused MAIL (RFC 2920 §3.1).
  CHECK(j.s.errors() == 0);
  REQUIRE(j.client_msg == j.msgs.size());
  REQUIRE(j.server_msg == j.msgs.size());
  for (const message& m : j.msgs) {
    check_message(m, lmtp);
    ++t.messages;
    (m.outcome == 1 ? t.accepted : t.rejected) += 1;
    t.content_octets += m.received.size();
  }
  ++t.sessions;
}

}  // namespace

TEST_CASE("normalised() follows the data encoder") {
  CHECK(normalised("") == "");
  CHECK(normalised("a") == "a\r\n");
  CHECK(normalised("a\r") == "a\r\n");
  CHECK(normalised("\r\r\n\n.") == "\r\n\r\n\r\n.\r\n");
  CHECK(normalised("a\r\n") == "a\r\n");
}

TEST_CASE("client and server agree over a randomly chunked pipe") {
  totals t;
  for (std::uint32_t seed = 1; seed <= 2000; ++seed)
    random_session(seed, false, t);
  INFO("messages " << t.messages);
  CHECK(t.sessions == 2000);
  // The random plan reaches every outcome.
  CHECK(t.accepted > 100);
  CHECK(t.rejected > 100);
  CHECK(t.content_octets > 100000);
}

TEST_CASE("client and server agree in LMTP with per-recipient decisions") {
  totals t;
  for (std::uint32_t seed = 5001; seed <= 5500; ++seed)
    random_session(seed, true, t);
  CHECK(t.sessions == 500);
  CHECK(t.accepted > 50);
  CHECK(t.rejected > 50);
}

TEST_CASE("STARTTLS transition, then AUTH PLAIN, between the two engines") {
  for (std::uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    client_config cc;
    cc.local_name = "client.test";
    cc.tls = tls_policy::required;
    cc.pipelining = seed % 2 == 0;
    server_config sc;
    sc.host_name = "mx.test";
    sc.tls_available = true;
    sc.policy.require_tls = true;
    sc.policy.require_auth = true;
    sc.extensions.auth.add(wire::sasl::mechanism::plain);
    sc.extensions.auth.add(wire::sasl::mechanism::login);
    const bool good = seed % 5 != 0;
    joined j(cc, sc, seed, std::size_t(1 + seed % 40));
    j.auth_wanted = true;
    j.auth_user = "alice";
    j.auth_pass = good ? "correct horse" : "wrong";
    j.mail_refusal_per_mille = 0;
    j.msgs.push_back(random_message(rng, seed, 0, false));
    INFO("seed " << seed);
    j.run();
    REQUIRE(!j.client_error);
    REQUIRE(j.client_start_tls);
    REQUIRE(j.server_starttls);
    REQUIRE(j.c2s_at_tls != std::string::npos);
    // Before the handshake only EHLO and STARTTLS crossed the pipe.
    const std::string clear = j.c2s.substr(0, j.c2s_at_tls);
    CHECK(clear == "EHLO client.test\r\nSTARTTLS\r\n");
    CHECK(j.c.tls_active());
    CHECK(j.s.tls_active());
    const std::string after = j.c2s.substr(j.c2s_at_tls);
    CHECK(after.rfind("EHLO client.test\r\nAUTH PLAIN ", 0) == 0);
    if (good) {
      CHECK(j.server_auth_ok);
      CHECK(j.auth_outcome == 1);
      CHECK(j.c.authenticated());
      CHECK(j.s.authenticated());
      REQUIRE(j.client_closed);
      REQUIRE(j.server_closed);
      REQUIRE(j.client_msg == 1);
      check_message(j.msgs[0], false);
    } else {
      CHECK(!j.server_auth_ok);
      CHECK(j.auth_outcome == 2);
      CHECK(!j.s.authenticated());
      // The session stays usable: the MAIL the client then sends is refused
      // by the server's require_auth policy with 530.
      REQUIRE(j.client_closed);
      REQUIRE(j.msgs[0].outcome == 2);
      CHECK(j.msgs[0].stage == rejection_stage::mail);
      CHECK(j.msgs[0].final_code == 530);
    }
  }
}

// Regression: a decision with the application's code and an empty text
// ("the default text") went out with the decision's default code instead
// (temp_fail(450) on MAIL sent 451; reject(550) at the end of data sent 554).
TEST_CASE("server decisions keep the application's code with the default text") {
  server_config sc;
  sc.host_name = "mx.test";
  server s(sc);
  std::string out;
  auto drain = [&] {
    out.assign(s.output());
    REQUIRE(s.consume_output(out.size()) == errc::ok);
  };
  auto next_decision = [&] {
    for (int i = 0; i < 16 && !s.awaiting_decision(); ++i)
      (void)s.next_event();
    REQUIRE(s.awaiting_decision());
  };
  smtpwire::server_reply r;
  next_decision();
  REQUIRE(s.accept() == errc::ok);
  drain();
  const std::string_view in =
      "EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nMAIL FROM:<a@c.test>\r\n"
      "RCPT TO:<b@mx.test>\r\nDATA\r\nx\r\n.\r\n";
  REQUIRE(s.receive(in) == in.size());
  next_decision();
  REQUIRE(s.accept() == errc::ok);
  drain();
  next_decision();
  r.code = 452;
  REQUIRE(s.temp_fail(r) == errc::ok);
  drain();
  CHECK(out.rfind("452 4.3.0 ", 0) == 0);
  next_decision();
  r.code = 250;
  REQUIRE(s.accept(r) == errc::ok);
  drain();
  next_decision();
  r.code = 251;
  REQUIRE(s.accept(r) == errc::ok);
  drain();
  CHECK(out.rfind("251 2.1.5 ", 0) == 0);
  next_decision();
  REQUIRE(s.accept() == errc::ok);
  drain();
  next_decision();
  r.code = 550;
  r.enhanced = "5.7.1";
  REQUIRE(s.reject(r) == errc::ok);
  drain();
  CHECK(out.rfind("550 5.7.1 ", 0) == 0);
}

namespace {

// As random_session, with CHUNKING offered and BDAT preferred: some messages
// are larger than the client's output buffer (several chunks, pipelined or
// one at a time), and, when the server offers BINARYMIME, some are arbitrary
// octets sent byte-exact.
void random_chunking_session(std::uint32_t seed, bool lmtp, totals& t, std::size_t& binaries,
                             std::size_t& multi_chunk) {
  std::mt19937 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  client_config cc;
  cc.local_name = "client.test";
  cc.tls = tls_policy::none;
  cc.pipelining = pick(0, 1) == 1;
  cc.lmtp = lmtp;
  cc.prefer_bdat = true;
  cc.output_buffer = 16384;
  server_config sc;
  sc.host_name = "mx.test";
  sc.lmtp = lmtp;
  sc.extensions.pipelining = pick(0, 1) == 1;
  sc.extensions.eightbitmime = pick(0, 3) != 0;
  sc.extensions.chunking = true;
  sc.extensions.binarymime = pick(0, 1) == 1;
  const std::size_t chunk = pick(0, 2) == 0 ? 7 : std::size_t(pick(64, 2000));
  joined j(cc, sc, seed ^ 0x5bd1e995u, chunk);
  const int n = pick(0, 3) == 0 ? pick(2, 4) : 1;
  for (int k = 0; k < n; ++k) {
    message m = random_message(rng, seed, std::size_t(k), sc.extensions.eightbitmime);
    if (sc.extensions.binarymime && pick(0, 2) == 0) {
      m.binary = true;
      m.eight_bit = false;
      m.content.clear();
      const int len = pick(0, 600);
      for (int i = 0; i < len; ++i)
        m.content += static_cast<char>(pick(0, 255));
    }
    if (pick(0, 5) == 0) {
      // Larger than the output buffer: several chunks.
      const std::size_t target = std::size_t(pick(20000, 40000));
      while (m.content.size() < target)
        m.content += m.binary ? std::string_view("\r.\n\0bin", 8) : "more text .\r\n.\r\n";
      multi_chunk += 1;
    }
    binaries += m.binary ? 1 : 0;
    j.msgs.push_back(std::move(m));
  }
  INFO("seed " << seed << " lmtp " << lmtp << " pipelining " << cc.pipelining << "/"
               << sc.extensions.pipelining << " chunk " << chunk);
  j.run();
  INFO("client state " << smtpwire::to_string(j.c.state()) << " server state "
                       << smtpwire::to_string(j.s.state()));
  REQUIRE(!j.client_error);
  REQUIRE(j.client_closed);
  REQUIRE(j.server_closed);
  CHECK(j.s.errors() == 0);
  // Content went by BDAT only: the client never sent DATA.
  CHECK(j.c2s.find("\r\nDATA\r\n") == std::string::npos);
  REQUIRE(j.client_msg == j.msgs.size());
  REQUIRE(j.server_msg == j.msgs.size());
  for (message m : j.msgs) {
    if (m.binary && m.server_saw_data) {
      // Byte-exact: no dot stuffing, no line-end rewriting, nothing added.
      CHECK(m.received == m.content);
      m.received = normalised(m.content);  // so that check_message checks the rest
    }
    check_message(m, lmtp);
    ++t.messages;
    (m.outcome == 1 ? t.accepted : t.rejected) += 1;
    t.content_octets += m.content.size();
  }
  ++t.sessions;
}

}  // namespace

TEST_CASE("client and server agree over BDAT (CHUNKING, BINARYMIME)") {
  totals t;
  std::size_t binaries = 0, multi = 0;
  for (std::uint32_t seed = 9001; seed <= 9600; ++seed)
    random_chunking_session(seed, false, t, binaries, multi);
  CHECK(t.sessions == 600);
  CHECK(t.accepted > 50);
  CHECK(t.rejected > 50);
  CHECK(binaries > 50);
  CHECK(multi > 50);
}

TEST_CASE("client and server agree in LMTP over BDAT") {
  totals t;
  std::size_t binaries = 0, multi = 0;
  for (std::uint32_t seed = 12001; seed <= 12300; ++seed)
    random_chunking_session(seed, true, t, binaries, multi);
  CHECK(t.sessions == 300);
  CHECK(t.accepted > 30);
  CHECK(t.rejected > 30);
}

// RFC 4954 §4: an initial response that would make the AUTH line longer than
// 12288 octets goes after the 334 instead; the server takes both forms.
TEST_CASE("long XOAUTH2 initial responses cross between the engines (RFC 4954 4)") {
  // "user=" U "\x01auth=Bearer " T "\x01\x01": 20 + U + T octets; base64
  // 12272 fits on "AUTH XOAUTH2 ..." (12286 octets), 12280 does not.
  for (const std::size_t raw : {std::size_t{9204}, std::size_t{9210}}) {
    const std::string token(8192, 'T');
    const std::string user(raw - 20 - token.size(), 'u');
    client_config cc;
    cc.local_name = "client.test";
    cc.tls = tls_policy::none;
    cc.auth_in_clear = true;
    server_config sc;
    sc.host_name = "mx.test";
    sc.policy.auth_only_over_tls = false;
    sc.extensions.auth.add(wire::sasl::mechanism::xoauth2);
    joined j(cc, sc, 7, 1000);
    smtpwire::sasl_xoauth2 mech{user, token};
    bool asked = false, server_got = false;
    int outcome = 0;
    for (int round = 0; round < 100000 && outcome == 0; ++round) {
      for (;;) {
        const server_event e = j.s.next_event();
        if (std::holds_alternative<std::monostate>(e)) break;
        if (auto* a = std::get_if<smtpwire::auth_event>(&e)) {
          server_got = a->authcid == user && a->secret == token;
          REQUIRE((server_got ? j.s.accept() : j.s.reject()) == errc::ok);
        } else if (j.s.awaiting_decision()) {
          REQUIRE(j.s.accept() == errc::ok);
        }
      }
      for (;;) {
        const client_event e = j.c.next_event();
        if (std::holds_alternative<std::monostate>(e)) break;
        REQUIRE(!std::holds_alternative<ev::error>(e));
        if (std::holds_alternative<ev::ready>(e) && !asked) {
          asked = true;
          REQUIRE(j.c.authenticate(mech) == errc::ok);
        } else if (auto* a = std::get_if<ev::auth_result>(&e)) {
          outcome = a->success ? 1 : 2;
        }
      }
      j.transfer();
    }
    INFO("raw " << raw);
    CHECK(server_got);
    CHECK(outcome == 1);
    CHECK(j.s.errors() == 0);
    const bool deferred = raw == 9210;
    CHECK((j.c2s.find("AUTH XOAUTH2\r\n") != std::string::npos) == deferred);
    std::size_t longest = 0;
    for (std::size_t at = 0, eol; (eol = j.c2s.find("\r\n", at)) != std::string::npos; at = eol + 2)
      longest = std::max(longest, eol + 2 - at);
    CHECK(longest <= smtpwire::auth_line_max);
    CHECK(longest >= 12270);
  }
}

// RFC 3461: the typed DSN parameters the client writes are what the server
// parses, and xtext round-trips the ENVID and ORCPT octets.
TEST_CASE("DSN parameters cross between the engines") {
  for (std::uint32_t seed = 1; seed <= 100; ++seed) {
    std::mt19937 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    client_config cc;
    cc.local_name = "client.test";
    cc.tls = tls_policy::none;
    cc.pipelining = pick(0, 1) == 1;
    server_config sc;
    sc.host_name = "mx.test";
    sc.extensions.dsn = true;
    sc.extensions.pipelining = pick(0, 1) == 1;
    joined j(cc, sc, seed, std::size_t(pick(1, 200)));
    // Printable ENVID and arbitrary ORCPT octets (xtext encodes them all).
    std::string envid;
    for (int i = pick(1, 30); i > 0; --i)
      envid += static_cast<char>(pick(0x20, 0x7e));
    const std::string rcpts[] = {"a@mx.test", "b@mx.test", "c@mx.test"};
    std::string orcpt[3];
    smtpwire::recipient_dsn dsn[3];
    const std::uint8_t sets[] = {0, wire::notify_never, wire::notify_success,
                                 wire::notify_failure | wire::notify_delay,
                                 wire::notify_success | wire::notify_failure | wire::notify_delay};
    for (int i = 0; i < 3; ++i) {
      for (int k = pick(0, 40); k > 0; --k)
        orcpt[i] += static_cast<char>(pick(0, 255));
      dsn[i].orcpt = orcpt[i];
      dsn[i].notify = sets[pick(0, 4)];
    }
    const std::string_view views[] = {rcpts[0], rcpts[1], rcpts[2]};
    smtpwire::envelope env;
    env.from = "s@client.test";
    env.recipients = views;
    env.recipient_count = 3;
    env.ret = pick(0, 1) ? wire::ret_type::full : wire::ret_type::hdrs;
    env.envid = envid;
    env.dsn = dsn;
    bool sent = false, done = false;
    int mails = 0, rcpts_seen = 0;
    for (int round = 0; round < 100000 && !done; ++round) {
      for (;;) {
        const server_event e = j.s.next_event();
        if (std::holds_alternative<std::monostate>(e)) break;
        if (auto* m = std::get_if<smtpwire::mail_event>(&e)) {
          ++mails;
          CHECK(m->params.ret == env.ret);
          REQUIRE(m->params.envid);
          std::string decoded;
          REQUIRE(wire::xtext_decode(decoded, *m->params.envid) == errc::ok);
          CHECK(decoded == envid);
        } else if (auto* r = std::get_if<smtpwire::rcpt_event>(&e)) {
          const int i = rcpts_seen++;
          REQUIRE(i < 3);
          CHECK(r->params.notify == dsn[i].notify);
          CHECK(r->params.orcpt.has_value() == !orcpt[i].empty());
          if (r->params.orcpt) {
            CHECK(r->params.orcpt->addr_type == "rfc822");
            std::string decoded;
            REQUIRE(wire::xtext_decode(decoded, r->params.orcpt->addr) == errc::ok);
            CHECK(decoded == orcpt[i]);
          }
        } else if (auto* ct = std::get_if<smtpwire::content_event>(&e)) {
          (void)ct;
          continue;
        } else if (std::holds_alternative<smtpwire::closed_event>(e)) {
          done = true;
        }
        if (j.s.awaiting_decision()) REQUIRE(j.s.accept() == errc::ok);
      }
      for (;;) {
        const client_event e = j.c.next_event();
        if (std::holds_alternative<std::monostate>(e)) break;
        REQUIRE(!std::holds_alternative<ev::error>(e));
        if (std::holds_alternative<ev::ready>(e)) {
          if (!sent) {
            sent = true;
            REQUIRE(j.c.send_mail(env) == errc::ok);
          } else {
            REQUIRE(j.c.quit() == errc::ok);
          }
        } else if (std::holds_alternative<ev::send_content>(e)) {
          REQUIRE(j.c.send_content("x\r\n"));
          REQUIRE(j.c.end_content() == errc::ok);
        } else if (auto* a = std::get_if<ev::message_accepted>(&e)) {
          CHECK(a->recipients == 3);
        }
      }
      j.transfer();
    }
    INFO("seed " << seed);
    CHECK(done);
    CHECK(mails == 1);
    CHECK(rcpts_seen == 3);
    CHECK(j.s.errors() == 0);
  }
}

// ---------------------------------------------------------------------------
// Issue #9: XCLIENT / XFORWARD, LIMITS and the MAIL/RCPT parameters between
// the two engines.
// ---------------------------------------------------------------------------

namespace {

// Both engines over a randomly chunked pipe; the applications are callbacks.
// The server callback decides every pending decision itself.
struct ext_pipe {
  client c;
  server s;
  std::mt19937 rng;
  std::function<void(const server_event&)> on_server;
  std::function<void(const client_event&)> on_client;
  std::string_view to_stream;
  bool streaming = false, ended = false, client_done = false, server_done = false;
  std::vector<std::string> client_errors;

  ext_pipe(const client_config& cc, const server_config& sc, std::uint32_t seed)
      : c(cc), s(sc), rng(seed) {}

  std::size_t chunk() { return 1 + rng() % 97; }

  void run() {
    for (int round = 0, idle = 0; round < 400000 && idle < 64; ++round) {
      bool moved = false;
      for (server_event e = s.next_event(); !std::holds_alternative<std::monostate>(e);
           e = s.next_event()) {
        moved = true;
        if (std::holds_alternative<smtpwire::closed_event>(e)) server_done = true;
        on_server(e);
      }
      for (client_event e = c.next_event(); !std::holds_alternative<std::monostate>(e);
           e = c.next_event()) {
        moved = true;
        if (auto* er = std::get_if<ev::error>(&e))
          client_errors.emplace_back(smtpwire::to_string(er->code));
        if (std::holds_alternative<ev::closed>(e) || std::holds_alternative<ev::error>(e))
          client_done = true;
        if (std::holds_alternative<ev::send_content>(e)) {
          streaming = true;
          ended = false;
        }
        on_client(e);
      }
      if (streaming && !ended) {
        if (!to_stream.empty()) {
          const auto taken = c.send_content(to_stream.substr(0, chunk()));
          REQUIRE(taken.has_value());
          to_stream.remove_prefix(*taken);
          moved = moved || *taken != 0;
        } else if (c.end_content() == errc::ok) {
          ended = true;
          streaming = false;
          moved = true;
        }
      }
      const std::string_view co = c.output();
      if (!co.empty()) {
        const std::size_t taken = s.receive(co.substr(0, std::min(co.size(), chunk())));
        c.consume_output(taken);
        moved = moved || taken != 0;
      }
      const std::string_view so = s.output();
      if (!so.empty()) {
        const std::size_t taken = c.receive(so.substr(0, std::min(so.size(), chunk())));
        REQUIRE(s.consume_output(taken) == errc::ok);
        moved = moved || taken != 0;
      }
      if (client_done && server_done && c.output().empty() && s.output().empty()) return;
      idle = moved ? 0 : idle + 1;
    }
  }
};

std::string address_of(const wire::path& p) {
  return std::string(p.address.local_part) + "@" + std::string(p.address.domain);
}

}  // namespace

TEST_CASE("XCLIENT and XFORWARD cross between the engines") {
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    INFO("seed " << seed);
    const bool trusted = seed % 4 != 0;
    client_config cc;
    cc.local_name = "filter.test";
    cc.tls = tls_policy::none;
    cc.pipelining = seed % 2 == 0;
    cc.xclient.set(wire::xattr::name, "spike.porcupine.org");
    cc.xclient.set(wire::xattr::addr, "168.100.189.2");
    cc.xclient.set(wire::xattr::port, "4242");
    cc.xclient.set(wire::xattr::login, "w+i e=t");  // xtext-encoded on the wire
    cc.xclient.set(wire::xattr::helo, wire::xvalue_kind::unavailable);
    cc.xforward.set(wire::xattr::addr, "IPV6:2001:db8::1");
    cc.xforward.set(wire::xattr::proto, "ESMTP");
    cc.xforward.set(wire::xattr::ident, "queue-id-1");
    server_config sc;
    sc.host_name = "mx.test";
    sc.xclient_trusted = trusted;
    sc.extensions.xclient = true;
    sc.extensions.xforward = true;
    ext_pipe p(cc, sc, seed);
    int xclients = 0, xforwards = 0, mails = 0, xforwarded_mails = 0, delivered = 0;
    const std::string content = "Subject: x\r\n\r\nforwarded\r\n";
    const std::string_view to[] = {"bob@mx.test", "carol@mx.test"};
    int sent = 0;
    p.on_server = [&](const server_event& e) {
      if (auto* x = std::get_if<smtpwire::xclient_event>(&e)) {
        ++xclients;
        CHECK(x->attributes.value(wire::xattr::name) == "spike.porcupine.org");
        CHECK(x->attributes.value(wire::xattr::addr) == "168.100.189.2");
        CHECK(x->attributes.value(wire::xattr::port) == "4242");
        CHECK(x->attributes.value(wire::xattr::login) == "w+2Bi+20e+3Dt");
        CHECK(x->attributes.get(wire::xattr::helo) == wire::xvalue_kind::unavailable);
        REQUIRE(p.s.accept() == errc::ok);
      } else if (auto* f = std::get_if<smtpwire::xforward_event>(&e)) {
        ++xforwards;
        CHECK(f->initial);
        CHECK(f->attributes.value(wire::xattr::addr) == "IPV6:2001:db8::1");
        CHECK(f->attributes.value(wire::xattr::proto) == "ESMTP");
        CHECK(f->attributes.value(wire::xattr::ident) == "queue-id-1");
        REQUIRE(p.s.accept() == errc::ok);
      } else if (auto* m = std::get_if<smtpwire::mail_event>(&e)) {
        ++mails;
        xforwarded_mails += m->xforwarded ? 1 : 0;
        REQUIRE(p.s.accept() == errc::ok);
      } else if (p.s.pending_decision() != smtpwire::server_decision::none) {
        REQUIRE(p.s.accept() == errc::ok);
      }
    };
    p.on_client = [&](const client_event& e) {
      if (std::holds_alternative<ev::ready>(e)) {
        if (sent < 2) {
          ++sent;
          smtpwire::envelope env;
          env.from = "alice@client.test";
          env.recipients = to;
          env.recipient_count = 2;
          REQUIRE(p.c.send_mail(env) == errc::ok);
        } else {
          REQUIRE(p.c.quit() == errc::ok);
        }
      } else if (std::holds_alternative<ev::send_content>(e)) {
        p.to_stream = content;
      } else if (std::holds_alternative<ev::message_accepted>(e)) {
        ++delivered;
      }
    };
    p.run();
    CHECK(p.client_errors.empty());
    CHECK(p.client_done);
    CHECK(p.server_done);
    CHECK(p.s.errors() == 0);
    CHECK(delivered == 2);
    CHECK(mails == 2);
    // Offered only to a trusted peer; XCLIENT once, XFORWARD per transaction.
    CHECK(xclients == (trusted ? 1 : 0));
    CHECK(xforwards == (trusted ? 2 : 0));
    CHECK(xforwarded_mails == (trusted ? 2 : 0));
  }
}

TEST_CASE("LIMITS: many recipients split to the server's limits, none lost, none twice") {
  std::size_t resumed = 0, split = 0;  // seeds that needed a second session / transaction
  for (std::uint32_t seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    const std::size_t n = 20 + rng() % 120;
    const std::size_t rcptmax = 1 + rng() % 15, domainmax = rng() % 3 == 0 ? 0 : 1 + rng() % 3;
    const std::size_t mailmax = rng() % 2 == 0 ? 0 : 2 + rng() % 6;
    INFO("seed " << seed << " n " << n << " RCPTMAX " << rcptmax << " RCPTDOMAINMAX " << domainmax
                 << " MAILMAX " << mailmax);
    std::vector<std::string> all;
    for (std::size_t i = 0; i < n; ++i)
      all.push_back("u" + std::to_string(i) + "@Dom" + std::to_string(rng() % 5) + ".test");
    std::vector<std::string> left = all, server_delivered, client_delivered;
    int sessions = 0;
    // Each session sends what the previous ones did not attempt.
    while (!left.empty()) {
      REQUIRE(++sessions < 200);
      client_config cc;
      cc.local_name = "client.test";
      cc.tls = tls_policy::none;
      cc.pipelining = rng() % 2 == 0;
      cc.prefer_bdat = rng() % 3 == 0;
      cc.max_recipients = 200;
      server_config sc;
      sc.host_name = "mx.test";
      sc.extensions.limits = true;
      sc.extensions.chunking = true;
      sc.limits.max_recipients = rcptmax;
      sc.limits.max_recipient_domains = domainmax;
      sc.limits.max_transactions = mailmax;
      ext_pipe p(cc, sc, seed * 1000 + std::uint32_t(sessions));
      std::vector<std::string_view> to(left.begin(), left.end());
      std::vector<int> seen(to.size(), 0);
      std::vector<std::string> txn_server, txn_client, next_left;
      std::vector<std::size_t> txn_sizes;
      bool sent = false;
      const std::string content = "Subject: many\r\n\r\nthe same body\r\n";
      std::string received;
      p.on_server = [&](const server_event& e) {
        if (std::holds_alternative<smtpwire::mail_event>(e)) {
          txn_server.clear();
          received.clear();
          REQUIRE(p.s.accept() == errc::ok);
        } else if (auto* r = std::get_if<smtpwire::rcpt_event>(&e)) {
          // The server application refuses some recipients itself.
          const bool ok = rng() % 5 != 0;
          if (ok) txn_server.push_back(address_of(r->forward_path));
          REQUIRE((ok ? p.s.accept() : p.s.reject()) == errc::ok);
        } else if (auto* c = std::get_if<smtpwire::content_event>(&e)) {
          received.append(c->bytes);
        } else if (auto* d = std::get_if<smtpwire::data_end_event>(&e)) {
          REQUIRE(d->error == errc::ok);
          CHECK(received == content);
          txn_sizes.push_back(txn_server.size());
          server_delivered.insert(server_delivered.end(), txn_server.begin(), txn_server.end());
          REQUIRE(p.s.accept() == errc::ok);
        } else if (auto* rj = std::get_if<smtpwire::rejected_event>(&e)) {
          // Only the DATA of a transaction without recipients.
          CHECK(rj->verb == wire::verb::data);
        } else if (p.s.pending_decision() != smtpwire::server_decision::none) {
          REQUIRE(p.s.accept() == errc::ok);
        }
      };
      p.on_client = [&](const client_event& e) {
        if (auto* r = std::get_if<ev::recipient>(&e)) {
          ++seen[r->index];
          if (r->accepted) txn_client.push_back(std::string(r->address));
        } else if (auto* na = std::get_if<ev::recipients_not_attempted>(&e)) {
          CHECK(na->reason == smtpwire::not_attempted_reason::transaction_limit);
          for (std::size_t i = 0; i < na->count; ++i) {
            ++seen[na->indices[i]];
            next_left.emplace_back(to[na->indices[i]]);
          }
        } else if (std::holds_alternative<ev::message_accepted>(e)) {
          client_delivered.insert(client_delivered.end(), txn_client.begin(), txn_client.end());
          txn_client.clear();
        } else if (std::holds_alternative<ev::message_rejected>(e)) {
          txn_client.clear();
        } else if (std::holds_alternative<ev::send_content>(e)) {
          p.to_stream = content;
        } else if (std::holds_alternative<ev::ready>(e)) {
          if (!sent) {
            sent = true;
            smtpwire::envelope env;
            env.from = "list@client.test";
            env.recipients = to.data();
            env.recipient_count = to.size();
            REQUIRE(p.c.send_mail(env) == errc::ok);
          } else {
            REQUIRE(p.c.quit() == errc::ok);
          }
        }
      };
      p.run();
      CHECK(p.client_errors.empty());
      CHECK(p.client_done);
      CHECK(p.server_done);
      // The client kept every limit: the server refused nothing on its own.
      CHECK(p.s.errors() == 0);
      if (mailmax != 0) CHECK(p.c.transactions() <= mailmax);
      for (std::size_t k : txn_sizes)
        CHECK(k <= rcptmax);
      for (std::size_t i = 0; i < seen.size(); ++i) {
        INFO("recipient " << to[i]);
        CHECK(seen[i] == 1);
      }
      REQUIRE(next_left.size() < left.size());  // progress in every session
      left = next_left;
      if (p.c.transactions() > 1 && sessions == 1) ++split;
    }
    if (sessions > 1) ++resumed;
    // Every recipient the server application accepted in a delivered
    // transaction is one the client reports delivered, and no other.
    CHECK(client_delivered == server_delivered);
    std::sort(server_delivered.begin(), server_delivered.end());
    CHECK(std::adjacent_find(server_delivered.begin(), server_delivered.end()) ==
          server_delivered.end());
  }
  CHECK(resumed >= 5);
  CHECK(split >= 25);
}

TEST_CASE("BY, MT-PRIORITY, RRVS, HOLDFOR and HOLDUNTIL cross between the engines") {
  client_config cc;
  cc.local_name = "client.test";
  cc.tls = tls_policy::none;
  server_config sc;
  sc.host_name = "mx.test";
  sc.extensions.deliverby = 60;
  sc.extensions.mt_priority = smtpwire::mt_priority_profile::mixer;
  sc.extensions.rrvs = true;
  sc.extensions.futurerelease_max_interval = 86400;
  sc.extensions.futurerelease_max_datetime = 4102444800;  // 2100-01-01T00:00:00Z
  ext_pipe p(cc, sc, 7);
  const std::string_view to[] = {"bob@mx.test", "carol@mx.test"};
  const wire::rrvs_param rrvs[] = {{"2014-04-03T23:01:00Z", 'C'}, {"2019-10-01T08:00:00-07:00", 0}};
  std::vector<wire::mail_params> mails;
  std::vector<std::optional<wire::rrvs_param>> rcpts;
  std::vector<std::string> storage;  // copies of the viewed date-times
  int sent = 0, delivered = 0;
  std::vector<errc> refusals;
  p.on_server = [&](const server_event& e) {
    if (auto* m = std::get_if<smtpwire::mail_event>(&e)) {
      mails.push_back(m->params);
      if (m->params.holduntil) storage.emplace_back(*m->params.holduntil);
      REQUIRE(p.s.accept() == errc::ok);
    } else if (auto* r = std::get_if<smtpwire::rcpt_event>(&e)) {
      rcpts.push_back(r->params.rrvs);
      if (r->params.rrvs) storage.emplace_back(r->params.rrvs->date_time);
      REQUIRE(p.s.accept() == errc::ok);
    } else if (p.s.pending_decision() != smtpwire::server_decision::none) {
      REQUIRE(p.s.accept() == errc::ok);
    }
  };
  p.on_client = [&](const client_event& e) {
    if (std::holds_alternative<ev::send_content>(e)) {
      p.to_stream = "Subject: p\r\n\r\nbody\r\n";
    } else if (std::holds_alternative<ev::message_accepted>(e)) {
      ++delivered;
    } else if (std::holds_alternative<ev::ready>(e)) {
      smtpwire::envelope env;
      env.from = "alice@client.test";
      env.recipients = to;
      env.recipient_count = 2;
      if (sent == 0) {
        // Refused by the client before anything is sent: R mode below the
        // server's min-by-time, and HOLDFOR above its interval.
        env.by = wire::deliver_by{30, wire::by_mode::return_message, false};
        refusals.push_back(p.c.send_mail(env));
        env.by.reset();
        env.holdfor = 86401u;
        refusals.push_back(p.c.send_mail(env));
        env.holdfor = 600u;
        env.by = wire::deliver_by{120, wire::by_mode::return_message, true};
        env.mt_priority = -4;
        env.rrvs = rrvs;
      } else if (sent == 1) {
        env.by = wire::deliver_by{-10, wire::by_mode::notify, false};
        env.holduntil = "2099-12-31T23:59:59Z";
      } else {
        REQUIRE(p.c.quit() == errc::ok);
        return;
      }
      ++sent;
      REQUIRE(p.c.send_mail(env) == errc::ok);
    }
  };
  p.run();
  CHECK(p.client_errors.empty());
  CHECK(p.s.errors() == 0);
  CHECK(delivered == 2);
  CHECK(refusals == std::vector<errc>{errc::param_value_invalid, errc::param_value_invalid});
  REQUIRE(mails.size() == 2);
  REQUIRE(mails[0].by.has_value());
  CHECK(*mails[0].by == wire::deliver_by{120, wire::by_mode::return_message, true});
  CHECK(mails[0].mt_priority == std::optional<int>(-4));
  CHECK(mails[0].holdfor == std::optional<std::uint32_t>(600));
  CHECK(!mails[0].holduntil.has_value());
  REQUIRE(mails[1].by.has_value());
  CHECK(*mails[1].by == wire::deliver_by{-10, wire::by_mode::notify, false});
  CHECK(!mails[1].mt_priority.has_value());
  CHECK(!mails[1].holdfor.has_value());
  REQUIRE(rcpts.size() == 4);
  REQUIRE(rcpts[0].has_value());
  REQUIRE(rcpts[1].has_value());
  CHECK(!rcpts[2].has_value());
  CHECK(!rcpts[3].has_value());
  REQUIRE(storage.size() == 3);
  CHECK(storage[0] == "2014-04-03T23:01:00Z");
  CHECK(rcpts[0]->action == 'C');
  CHECK(storage[1] == "2019-10-01T08:00:00-07:00");
  CHECK(rcpts[1]->action == 0);
  CHECK(storage[2] == "2099-12-31T23:59:59Z");
}
