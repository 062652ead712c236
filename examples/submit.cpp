// A whole mail submission with smtpwire::client against canned server bytes
// held in memory: greeting, EHLO, STARTTLS, EHLO again, AUTH PLAIN, one
// pipelined MAIL/RCPT/RCPT/DATA flight with one recipient refused, the
// message streamed in small pieces, QUIT. It prints what the client sends
// (C:) and the events it reports, and exits 0 only when the delivery went as
// expected. A real program would run a TLS adapter where this one calls
// tls_established() directly, and would read the server's bytes from a
// socket instead of the two arrays below.
#include <smtpwire/client.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <variant>

using namespace smtpwire;

namespace {

// What the server says in clear, then (as decrypted by the TLS layer) after
// the handshake.
const std::string_view kServerClear =
    "220 mx.example.test ESMTP\r\n"
    "250-mx.example.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    "220 2.0.0 Ready to start TLS\r\n";
const std::string_view kServerTls =
    "250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-AUTH PLAIN LOGIN\r\n"
    "250 ENHANCEDSTATUSCODES\r\n"
    "235 2.7.0 Authentication successful\r\n"
    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@example.com>: unknown user\r\n"
    "354 End data with <CR><LF>.<CR><LF>\r\n"
    "250 2.0.0 Ok: queued as 4XYZ\r\n"
    "221 2.0.0 Bye\r\n";

const std::string_view kMessage =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.com>\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Hi Bob,\r\n"
    ".this line starts with a dot and is stuffed on the wire\r\n"
    "Alice\r\n";

void print_client(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t eol = bytes.find("\r\n");
    const std::string_view line = bytes.substr(0, eol);
    std::printf("C: %.*s\n", static_cast<int>(line.size()), line.data());
    bytes.remove_prefix(eol == std::string_view::npos ? bytes.size() : eol + 2);
  }
}

}  // namespace

int main() {
  client_config cfg;
  cfg.local_name = "client.example.org";  // tls_policy::required is the default
  client c{cfg};
  const std::string_view rcpts[] = {"bob@example.com", "nobody@example.com"};
  sasl_plain auth{"alice", "correct horse"};
  std::string sent;
  bool authed = false, mailed = false, accepted = false, closed = false;
  int refused = 0;

  auto flush = [&] {
    print_client(c.output());
    sent += c.output();
    c.consume_output(c.output().size());
  };
  auto pump = [&] {
    for (;;) {
      const client_event e = c.next_event();
      if (std::holds_alternative<std::monostate>(e)) break;
      if (auto g = std::get_if<client_events::greeting>(&e)) {
        std::printf("event: greeting %d\n", g->reply.code());
      } else if (auto k = std::get_if<client_events::capabilities>(&e)) {
        std::printf("event: capabilities (tls=%d, STARTTLS %s, AUTH PLAIN %s)\n", k->tls,
                    k->caps->has(wire::capability::starttls) ? "yes" : "no",
                    k->caps->offers(wire::sasl::mechanism::plain) ? "yes" : "no");
      } else if (std::holds_alternative<client_events::start_tls>(e)) {
        std::printf("event: start_tls (run the handshake now)\n");
      } else if (std::holds_alternative<client_events::ready>(e)) {
        std::printf("event: ready\n");
        if (!authed) {
          authed = true;
          if (c.authenticate(auth) != errc::ok) return;
        } else if (!mailed) {
          mailed = true;
          envelope env;
          env.from = "alice@example.org";
          env.recipients = rcpts;
          env.recipient_count = 2;
          env.size = kMessage.size();
          if (c.send_mail(env) != errc::ok) return;
        } else if (c.quit() != errc::ok) {
          return;
        }
      } else if (auto a = std::get_if<client_events::auth_result>(&e)) {
        std::printf("event: auth %s %s\n", std::string(a->mechanism).c_str(),
                    a->success ? "ok" : "failed");
      } else if (auto r = std::get_if<client_events::recipient>(&e)) {
        std::printf("event: recipient %s %s (%d)\n", std::string(r->address).c_str(),
                    r->accepted ? "accepted" : "refused", r->reply.code());
        if (!r->accepted) ++refused;
      } else if (std::holds_alternative<client_events::send_content>(e)) {
        std::printf("event: send_content\n");
        for (std::string_view m = kMessage; !m.empty();) {
          // Small pieces, as a program reading a file would pass them.
          const auto taken = c.send_content(m.substr(0, 17));
          if (!taken) return;
          m.remove_prefix(*taken);
        }
        if (c.end_content() != errc::ok) return;
      } else if (auto m = std::get_if<client_events::message_accepted>(&e)) {
        std::printf("event: message accepted for %zu recipient(s): %d\n", m->recipients,
                    m->reply.code());
        accepted = m->recipients == 1;
      } else if (auto j = std::get_if<client_events::message_rejected>(&e)) {
        std::printf("event: message rejected at %s: %d\n", std::string(to_string(j->stage)).c_str(),
                    j->reply.code());
      } else if (auto cl = std::get_if<client_events::closed>(&e)) {
        std::printf("event: closed %d\n", cl->reply.code());
        closed = cl->reply.code() == 221;
      } else if (auto er = std::get_if<client_events::error>(&e)) {
        std::printf("event: error %s\n", std::string(to_string(er->code)).c_str());
      }
      flush();
    }
    flush();
  };

  flush();
  // The server's bytes arrive in pieces of 7 octets, as from a slow socket.
  for (std::string_view in = kServerClear; !in.empty();) {
    in.remove_prefix(c.receive(in.substr(0, 7)));
    pump();
  }
  if (c.state() != client_state::tls_handshake) return 1;
  if (c.tls_established(tls_info{"TLSv1.3", "TLS_AES_256_GCM_SHA384", true, "mx.example.test"}) !=
      errc::ok)
    return 1;
  flush();
  for (std::string_view in = kServerTls; !in.empty();) {
    in.remove_prefix(c.receive(in.substr(0, 7)));
    pump();
  }

  // Nothing but EHLO and STARTTLS went out before TLS; the content was
  // dot-stuffed; the session ended with 221.
  const bool clear_ok = sent.rfind("EHLO client.example.org\r\nSTARTTLS\r\nEHLO ", 0) == 0;
  const bool stuffed = sent.find("\r\n..this line") != std::string::npos;
  const bool ok = clear_ok && stuffed && accepted && refused == 1 && closed;
  std::printf("%s\n", ok ? "delivery as expected" : "UNEXPECTED");
  return ok ? 0 : 1;
}
