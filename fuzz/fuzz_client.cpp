// Fuzz target for client.hpp: random server bytes against the high-level
// delivery. Input: byte 0 picks the TLS policy (bits 0-1), pipelining (bit
// 2), the AUTH mechanism (bits 3-5), 8BITMIME content (bit 6) and LMTP
// (bit 7); byte 1
// says where the TLS handshake happens (the first byte1 * len / 256 bytes are
// plaintext, the rest arrives after tls_established); byte 2 seeds the
// chunking, and its bits 7, 6, 5 and 4 ask for BDAT (prefer_bdat),
// BINARYMIME content, a 40 KB message (several chunks) and DSN parameters
// (bit 3: dropped when not offered, and so are MT-PRIORITY, BY in N mode and
// RRVS with C); the rest is the server's byte stream. The application is
// scripted: TLS when asked (the handshake completes exactly at the plaintext
// boundary, so a start_tls reported later leaves the engine waiting), AUTH,
// two messages of five recipients in three domains (split when the server
// announces LIMITS), QUIT. XCLIENT and XFORWARD attributes are always
// configured (sent only when the server lists them); the first message
// carries BY, MT-PRIORITY and RRVS, the second HOLDFOR when bit 3 is set and
// the server offers FUTURERELEASE.
// Invariants (abort on violation): the log of events and the client's bytes
// are the same whole, one octet at a time and in seeded random chunks; under
// tls_policy::required nothing but EHLO (LHLO), STARTTLS and QUIT leaves the engine
// before the handshake; the engine's buffers never grow; no DATA command is
// sent for a transaction that goes by BDAT; every recipient of a message gets
// exactly one recipient event or one not-attempted listing before the
// message ends; no transaction carries more RCPTs than LIMITS RCPTMAX or more
// domains than RCPTDOMAINMAX, and the session no more MAILs than MAILMAX.
#include <smtpwire/client.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using namespace smtpwire;

void check(bool ok) {
  if (!ok) std::abort();
}

struct outcome {
  std::string log;
  std::string sent;
};

// Every line the client wrote before TLS must be one of these.
void check_cleartext(std::string_view sent) {
  while (!sent.empty()) {
    const std::size_t eol = sent.find("\r\n");
    check(eol != std::string_view::npos);
    const std::string_view line = sent.substr(0, eol);
    check(line.rfind("EHLO ", 0) == 0 || line.rfind("LHLO ", 0) == 0 || line == "STARTTLS" ||
          line == "QUIT");
    sent.remove_prefix(eol + 2);
  }
}

const std::string& big_message() {
  static const std::string m = [] {
    std::string s;
    while (s.size() < 40000)
      s += "line .. of a big message\r\n.\r\n";
    return s;
  }();
  return m;
}

outcome run(std::uint8_t mode, std::uint8_t extra, std::string_view in, std::size_t plain,
            const std::vector<std::size_t>& sizes) {
  const bool bdat = (extra & 0x80) != 0, binary = (extra & 0x40) != 0;
  client_config cfg;
  cfg.prefer_bdat = bdat;
  cfg.drop_dsn_when_not_offered = (extra & 0x08) != 0;
  cfg.local_name = "client.example.org";
  cfg.tls = static_cast<tls_policy>(mode & 3);
  cfg.pipelining = (mode & 4) != 0;
  cfg.lmtp = (mode & 128) != 0;
  cfg.reply.max_lines = 64;
  cfg.reply.max_reply_bytes = 4096;
  cfg.drop_optional_params_when_not_offered = (extra & 0x08) != 0;
  cfg.xclient.set(wire::xattr::addr, "192.0.2.7");
  cfg.xclient.set(wire::xattr::name, wire::xvalue_kind::tempunavail);
  cfg.xclient.set(wire::xattr::helo, "relay.example.org");
  cfg.xforward.set(wire::xattr::addr, "IPV6:2001:db8::7");
  cfg.xforward.set(wire::xattr::proto, "ESMTP");
  client c{cfg};
  const std::size_t cap = c.buffer_capacity();
  outcome o;
  constexpr std::size_t n_to = 5;
  const std::string_view to[n_to] = {"a@example.com", "b@example.com", "c@example.net",
                                     "d@example.COM", "e@example.org"};
  auto domain_of = [&](std::size_t i) {
    std::string d(to[i].substr(to[i].find('@') + 1));
    for (char& ch : d)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
    return d;
  };
  // Like `to`, they must outlive the transaction.
  const recipient_dsn dsn[n_to] = {{wire::notify_failure, "rfc822", "a+b@example.com"},
                                   {wire::notify_never, "rfc822", ""},
                                   {0, "rfc822", "c=d"},
                                   {0, "rfc822", ""},
                                   {wire::notify_delay, "rfc822", "e"}};
  const wire::rrvs_param rrvs[n_to] = {
      {"2014-04-03T23:01:00Z", 'C'}, {}, {"2020-02-29T12:00:00.25+01:00", 'C'}, {}, {}};
  // The account of the message in progress (recipient events + listings).
  int seen[n_to] = {};
  bool in_message = false;
  wire::limits_offer limits{};
  auto message_ends = [&] {
    if (!in_message) return;
    in_message = false;
    for (int& k : seen) {
      check(k == 1);
      k = 0;
    }
  };
  sasl_plain plain_mech{"alice", "s3cret"};
  sasl_login login_mech{"alice", "s3cret"};
  sasl_xoauth2 xo{"alice@example.org", "ya29.token"};
  sasl_oauthbearer ob{"ya29.token"};
  const int auth = (mode >> 3) & 7;
  bool authed = auth == 0;
  int messages = 0;
  bool tls_wanted = cfg.tls == tls_policy::implicit, tls_done = false;
  const std::string_view content = (extra & 0x20) ? std::string_view(big_message())
                                   : binary       ? std::string_view("\0\r.\n\xff\r\n.\r\n", 10)
                                   : (mode & 64)
                                       ? std::string_view("Subject: \xc3\xa9\r\n\r\n.\r\nx\n.\n")
                                       : std::string_view("Subject: a\r\n\r\n.\r\nx\n.\n");
  // The content still to stream: send_content may take less (output full,
  // or a BDAT reply awaited without PIPELINING); the rest goes later.
  std::string_view body;
  bool streaming = false;
  // False while every transaction started went by BDAT: BINARYMIME, or BDAT
  // preferred and CHUNKING offered.
  bool data_allowed = false;
  auto drain = [&] {
    o.sent += c.output();
    c.consume_output(c.output().size());
  };
  auto stream = [&] {
    while (streaming && !body.empty()) {
      auto r = c.send_content(body);
      if (!r) {
        streaming = false;
        o.log += to_string(r.error());
        return;
      }
      o.sent += c.output();
      c.consume_output(c.output().size());
      if (*r == 0) return;
      body.remove_prefix(*r);
    }
    if (streaming) {
      streaming = false;
      o.log += to_string(c.end_content());
    }
  };
  auto pump = [&] {
    for (int guard = 0; guard < 10000; ++guard) {
      client_event e = c.next_event();
      if (std::holds_alternative<std::monostate>(e)) {
        if (!streaming) break;
        const std::size_t before = body.size();
        stream();
        if (streaming && body.size() == before) break;
        continue;
      }
      o.log += std::to_string(e.index());
      if (auto er = std::get_if<client_events::error>(&e)) o.log += to_string(er->code);
      if (auto rc = std::get_if<client_events::recipient>(&e)) {
        check(in_message && rc->index < n_to && to[rc->index] == rc->address);
        ++seen[rc->index];
      }
      if (auto na = std::get_if<client_events::recipients_not_attempted>(&e)) {
        check(in_message && na->count >= 1 && na->count <= n_to);
        for (std::size_t i = 0; i < na->count; ++i) {
          check(na->indices[i] < n_to);
          ++seen[na->indices[i]];
        }
        o.log += to_string(na->reason);
      }
      if (std::holds_alternative<client_events::ready>(e) ||
          std::holds_alternative<client_events::closed>(e) ||
          std::holds_alternative<client_events::error>(e))
        message_ends();
      o.log += ' ';
      if (std::holds_alternative<client_events::start_tls>(e)) tls_wanted = true;
      if (std::holds_alternative<client_events::send_content>(e)) {
        body = content;
        streaming = true;
        stream();
      }
      if (std::holds_alternative<client_events::message_rejected>(e) ||
          std::holds_alternative<client_events::closed>(e) ||
          std::holds_alternative<client_events::error>(e))
        streaming = false;
      if (std::holds_alternative<client_events::ready>(e)) {
        if (!authed) {
          authed = true;
          errc r = errc::ok;
          if (auth == 1) r = c.authenticate(plain_mech);
          if (auth == 2) r = c.authenticate(login_mech);
          if (auth == 3) r = c.authenticate(xo);
          if (auth == 4) r = c.authenticate(ob);
          if (auth >= 5) r = c.authenticate(credentials{"alice", "s3cret", {}, {}});
          o.log += to_string(r);
          if (r != errc::ok) (void)c.quit();
        } else if (messages < 2) {
          ++messages;
          envelope env;
          env.from = "alice@example.org";
          env.recipients = to;
          env.recipient_count = n_to;
          if (messages == 1) {
            env.by = wire::deliver_by{60, wire::by_mode::notify, true};
            env.mt_priority = -2;
            env.rrvs = rrvs;
          } else if ((extra & 0x08) && c.capabilities().has(wire::capability::futurerelease)) {
            env.holdfor = 120;
          }
          env.size = content.size();
          if (extra & 0x10) {
            env.ret = wire::ret_type::hdrs;
            env.envid = "id 1";
            env.dsn = dsn;
          }
          env.body = binary        ? wire::body_type::binary_mime
                     : (mode & 64) ? wire::body_type::eight_bit_mime
                                   : wire::body_type::seven_bit;
          if (!binary && !(bdat && c.capabilities().has(wire::capability::chunking)))
            data_allowed = true;
          const errc r = c.send_mail(env);
          o.log += to_string(r);
          if (r == errc::ok) {
            in_message = true;
            if (c.capabilities().has(wire::capability::limits)) limits = c.capabilities().limits;
          }
          if (r != errc::ok) (void)c.quit();
        } else {
          (void)c.quit();
        }
      }
      drain();
    }
    drain();
    check(c.buffer_capacity() == cap);
  };
  auto handshake = [&] {
    if (!tls_wanted || tls_done) return;
    tls_done = true;
    if (cfg.tls == tls_policy::required) check_cleartext(o.sent);
    o.log += "tls:";
    o.log += to_string(c.tls_established(tls_info{"TLSv1.3", "x", true, "mx"}));
    drain();
    pump();
  };
  std::size_t fed = 0, k = 0;
  if (plain == 0) handshake();
  while (fed < in.size()) {
    std::size_t n = sizes.empty() ? in.size() : sizes[k++ % sizes.size()];
    if (fed < plain && fed + n > plain) n = plain - fed;
    std::string_view chunk = in.substr(fed, n);
    while (!chunk.empty()) {
      const std::size_t took = c.receive(chunk);
      chunk.remove_prefix(took);
      fed += took;
      pump();
      if (fed == plain) handshake();
    }
  }
  pump();
  if (cfg.tls == tls_policy::required && !c.tls_active()) check_cleartext(o.sent);
  if (!data_allowed) check(o.sent.find("\r\nDATA\r\n") == std::string::npos);
  // LIMITS (RFC 9422), from the client's own lines (no content line of this
  // script starts with MAIL or RCPT).
  std::size_t mails = 0, rcpts = 0;
  std::vector<std::string> domains;
  auto close_txn = [&] {
    if (limits.rcptmax != 0) check(rcpts <= limits.rcptmax);
    if (limits.rcptdomainmax != 0) check(domains.size() <= limits.rcptdomainmax);
  };
  for (std::size_t at = 0; at < o.sent.size();) {
    std::size_t eol = o.sent.find("\r\n", at);
    if (eol == std::string::npos) eol = o.sent.size();
    const std::string_view line = std::string_view(o.sent).substr(at, eol - at);
    at = eol + 2;
    if (line.rfind("MAIL FROM:", 0) == 0) {
      if (mails++ != 0) close_txn();
      rcpts = 0;
      domains.clear();
    } else if (line.rfind("RCPT TO:<", 0) == 0) {
      ++rcpts;
      for (std::size_t i = 0; i < n_to; ++i) {
        if (line.substr(9, to[i].size()) != to[i]) continue;
        const std::string d = domain_of(i);
        bool known = false;
        for (const auto& x : domains)
          known = known || x == d;
        if (!known) domains.push_back(d);
      }
    }
  }
  if (mails != 0) close_txn();
  if (limits.mailmax != 0) check(mails <= limits.mailmax);
  check(mails == c.transactions());
  o.log += to_string(c.state());
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3 || size > 8192) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data) + 3, size - 3);
  const std::size_t plain = (mode & 3) == 3 ? 0 : in.size() * data[1] / 255;
  const outcome whole = run(mode, data[2], in, plain, {});
  const outcome bytewise = run(mode, data[2], in, plain, {1});
  check(whole.log == bytewise.log && whole.sent == bytewise.sent);
  std::vector<std::size_t> sizes;
  std::uint32_t seed = data[2] * 2654435761u + 1;
  for (int i = 0; i < 16; ++i) {
    seed = seed * 1103515245u + 12345u;
    sizes.push_back(1 + (seed >> 16) % 97);
  }
  const outcome random = run(mode, data[2], in, plain, sizes);
  check(whole.log == random.log && whole.sent == random.sent);
  return 0;
}
