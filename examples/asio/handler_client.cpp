// smtpwire::asio_adapter with completion handlers (C++17): a client session
// delivering one message to an in-process server session, both driven by
// async_run on one io_context over a kernel-picked loopback port. Exit
// status 0 when the message was accepted and arrived byte-exact.
#include <smtpwire/asio/driver.hpp>
#include <smtpwire/client.hpp>
#include <smtpwire/server.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

namespace aa = smtpwire::asio_adapter;
using asio::ip::tcp;

int main() {
  const std::string_view message =
      "From: alice@example.org\r\nSubject: hello\r\n\r\n.a line starting with a dot\r\nbye\r\n";
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket server_sock(io), client_sock(io);

  // The server side: accepts everything and keeps the message's content.
  smtpwire::server_config sc;
  sc.host_name = "sink.example";
  smtpwire::server server(sc);
  std::string content, stored;
  std::optional<aa::run_result> server_result;
  auto on_server_event = [&](smtpwire::server& s, smtpwire::server_event& e) {
    if (auto* c = std::get_if<smtpwire::content_event>(&e)) {
      content.append(c->bytes);
    } else if (auto* end = std::get_if<smtpwire::data_end_event>(&e)) {
      if (end->error == smtpwire::errc::ok) {
        stored = content;
        (void)s.accept();
      }
      content.clear();
    } else if (s.awaiting_decision()) {
      (void)s.accept();
    }
  };
  acc.async_accept(server_sock, [&](const std::error_code& ec) {
    if (ec) return;
    aa::async_run(server_sock, server, on_server_event, [&](aa::run_result r) {
      server_result = r;
      std::error_code ignored;
      server_sock.close(ignored);
    });
  });

  // The client side: one message, then QUIT.
  smtpwire::client_config cc;
  cc.tls = smtpwire::tls_policy::none;  // loopback demo; use the OpenSSL glue for TLS
  smtpwire::client client(cc);
  const std::string_view rcpt[] = {"bob@example.net"};
  bool sent = false, accepted = false;
  std::size_t pos = 0;
  std::optional<aa::run_result> client_result;
  auto on_client_event = [&](smtpwire::client& c, smtpwire::client_event& e) {
    namespace ev = smtpwire::client_events;
    if (std::holds_alternative<ev::ready>(e)) {
      if (!sent) {
        smtpwire::envelope env;
        env.from = "alice@example.org";
        env.recipients = rcpt;
        env.recipient_count = 1;
        sent = c.send_mail(env) == smtpwire::errc::ok;
        if (!sent) (void)c.quit();
      } else {
        (void)c.quit();
      }
    } else if (std::holds_alternative<ev::send_content>(e) ||
               (std::holds_alternative<std::monostate>(e) &&
                c.state() == smtpwire::client_state::content)) {
      // Streams what fits; called again (monostate) once the output drained.
      // A new send_content starts the message again (each transaction of a
      // message that LIMITS split takes the whole content).
      if (std::holds_alternative<ev::send_content>(e)) pos = 0;
      while (pos < message.size()) {
        const auto n = c.send_content(message.substr(pos));
        if (!n || *n == 0) break;
        pos += *n;
      }
      if (pos == message.size()) (void)c.end_content();
    } else if (auto* ok = std::get_if<ev::message_accepted>(&e)) {
      accepted = true;
      std::printf("accepted: %.*s", static_cast<int>(ok->reply.raw().size()),
                  ok->reply.raw().data());
    }
  };
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    if (ec) {
      std::fprintf(stderr, "connect: %s\n", ec.message().c_str());
      return;
    }
    aa::async_run(client_sock, client, on_client_event, [&](aa::run_result r) {
      client_result = r;
      std::error_code ignored;
      client_sock.close(ignored);
    });
  });

  io.run_for(std::chrono::seconds(30));  // bounded: a stuck run fails instead of hanging
  if (!client_result || !server_result) {
    std::fprintf(stderr, "a session did not finish\n");
    return 1;
  }
  std::printf("client: %s, engine state %s, %llu octets out\n",
              client_result->error ? client_result->error.message().c_str() : "ok",
              std::string(smtpwire::to_string(client.state())).c_str(),
              static_cast<unsigned long long>(client_result->bytes_out));
  std::printf("server: %s\n", server_result->error ? server_result->error.message().c_str() : "ok");
  const bool exact = stored == message;
  std::printf("stored %zu octets, byte-exact: %s\n", stored.size(), exact ? "yes" : "no");
  return !client_result->error && !server_result->error && accepted && exact ? 0 : 1;
}
