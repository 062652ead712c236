// An accept-everything SMTP sink in ~20 lines of application code: the
// server engine over an in-memory client dialogue, printing the replies.
// Exits 0 only when the dialogue went as expected.
#include <smtpwire/server.hpp>

#include <cstdio>
#include <string>
#include <variant>

int main() {
  const std::string client =
      "EHLO client.example\r\nMAIL FROM:<alice@client.example>\r\nRCPT TO:<bob@sink.example>\r\n"
      "DATA\r\nSubject: hi\r\n\r\nHello, sink.\r\n.\r\nQUIT\r\n";
  smtpwire::server_config cfg;
  cfg.host_name = "sink.example";
  smtpwire::server s(cfg);
  std::string replies, message;
  std::string_view in = client;
  while (!s.closed()) {
    in.remove_prefix(s.receive(in));
    const smtpwire::server_event ev = s.next_event();
    if (auto* c = std::get_if<smtpwire::content_event>(&ev)) message.append(c->bytes);
    if (s.awaiting_decision()) (void)s.accept();  // accept everything
    replies.append(s.output());
    (void)s.consume_output(s.output().size());
    if (std::holds_alternative<std::monostate>(ev) && in.empty() && !s.awaiting_decision()) break;
  }
  std::fputs(replies.c_str(), stdout);
  const bool ok = s.closed() && message == "Subject: hi\r\n\r\nHello, sink.\r\n" &&
                  replies.find("250 2.0.0 Ok: message accepted\r\n") != std::string::npos &&
                  replies.rfind("221 2.0.0 sink.example", std::string::npos) != std::string::npos;
  std::printf("%s\n", ok ? "ok: the message was accepted" : "FAIL");
  return ok ? 0 : 1;
}
