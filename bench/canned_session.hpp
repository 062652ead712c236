// Benchmark support: whole sessions against canned peer bytes, shared by
// bench_server, bench_client and bench_side_by_side so that every program
// measures the same work.
#ifndef SMTPWIRE_BENCH_CANNED_SESSION_HPP
#define SMTPWIRE_BENCH_CANNED_SESSION_HPP

#include <smtpwire/client.hpp>
#include <smtpwire/server.hpp>

#include <cstddef>
#include <cstring>
#include <string_view>
#include <variant>

namespace smtpwire::bench {

/// Feeds the client's `bytes` to `s`, accepts every decision and drops the
/// replies; returns the content octets seen. Stops when the bytes are used
/// up or the session closed.
inline std::size_t pump_server(server& s, std::string_view bytes) {
  std::size_t content = 0;
  for (;;) {
    bytes.remove_prefix(s.receive(bytes));
    for (;;) {
      const server_event ev = s.next_event();
      if (auto* c = std::get_if<content_event>(&ev)) content += c->bytes.size();
      if (s.awaiting_decision()) {
        (void)s.accept();
        continue;
      }
      if (std::holds_alternative<std::monostate>(ev)) {
        if (s.output().empty()) break;
        (void)s.consume_output(s.output().size());
      }
    }
    if (bytes.empty() || s.closed()) return content;
  }
}

/// One delivery by `c` (reset first) of `message` from a@example.org to
/// the `count` recipients against the canned server replies `server`,
/// then QUIT. The client's octets are copied to `sink` (room for all of
/// them); returns their number, 0 when the session went wrong or stalled.
inline std::size_t deliver(client& c, std::string_view server, std::string_view message,
                           const std::string_view* recipients, std::size_t count, char* sink) {
  c.reset();
  std::size_t sent = 0;
  auto drain = [&] {
    const std::string_view o = c.output();
    std::memcpy(sink + sent, o.data(), o.size());
    sent += o.size();
    (void)c.consume_output(o.size());
  };
  bool mailed = false;
  while (!server.empty()) {
    const std::size_t took = c.receive(server);
    server.remove_prefix(took);
    for (;;) {
      const client_event e = c.next_event();
      if (std::holds_alternative<std::monostate>(e)) break;
      if (std::holds_alternative<client_events::ready>(e)) {
        if (!mailed) {
          mailed = true;
          envelope env;
          env.from = "a@example.org";
          env.recipients = recipients;
          env.recipient_count = count;
          env.size = message.size();
          if (c.send_mail(env) != errc::ok) return 0;
        } else if (c.quit() != errc::ok) {
          return 0;
        }
      } else if (std::holds_alternative<client_events::send_content>(e)) {
        std::string_view m = message;
        while (!m.empty()) {
          auto r = c.send_content(m);
          if (!r) return 0;
          m.remove_prefix(*r);
          drain();
        }
        if (c.end_content() != errc::ok) return 0;
      } else if (std::holds_alternative<client_events::error>(e)) {
        return 0;
      }
      drain();
    }
    if (took == 0 && !server.empty() && c.output().empty()) return 0;
  }
  return c.state() == client_state::closed ? sent : 0;
}

}  // namespace smtpwire::bench

#endif  // SMTPWIRE_BENCH_CANNED_SESSION_HPP
