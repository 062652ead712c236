// smtpwire::posix in one program: a server loop on a kernel-picked loopback
// port in one thread, and the blocking client driver delivering one message
// to it. Exit status 0 when the message arrived byte-exact.
#include <smtpwire/posix/address.hpp>
#include <smtpwire/posix/client_driver.hpp>
#include <smtpwire/posix/server_loop.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

int main() {
  namespace posix = smtpwire::posix;
  using loop_type = posix::server_loop<smtpwire::server, std::string>;  // Context: the content

  std::string stored;
  loop_type loop(
      [](const posix::socket_address&) {
        smtpwire::server_config cfg;
        cfg.host_name = "sink.example";
        return std::make_unique<smtpwire::server>(cfg);
      },
      [&](loop_type::connection& c, smtpwire::server_event& e) {
        smtpwire::server& s = c.session();
        if (auto* ct = std::get_if<smtpwire::content_event>(&e)) {
          c.context().append(ct->bytes);
        } else if (auto* end = std::get_if<smtpwire::data_end_event>(&e)) {
          if (end->error == smtpwire::errc::ok) {
            stored = c.context();  // a real sink writes a file here, then accepts
            (void)s.accept();
          }
          c.context().clear();
        } else if (s.awaiting_decision()) {
          (void)s.accept();  // connection, EHLO, MAIL, RCPT, DATA: all welcome
        }
      });
  posix::socket_address bound;
  if (loop.error() || loop.listen("127.0.0.1", "0", {}, &bound)) return 1;
  std::thread server_thread([&] { (void)loop.run(); });

  const std::string_view message = "Subject: hello\r\n\r\n.a line starting with a dot\r\n";
  posix::connect_result conn = posix::connect_to(bound.to_string(), "25");
  int status = 1;
  if (!conn.error) {
    std::printf("connected to %s\n", conn.address.to_string().c_str());
    smtpwire::client_config cc;
    cc.tls = smtpwire::tls_policy::none;  // loopback demo; use the OpenSSL glue for TLS
    smtpwire::client client(cc);
    const std::string_view rcpt[] = {"bob@example.net"};
    bool sent = false;
    std::size_t pos = 0;
    auto on_event = [&](smtpwire::client& c, smtpwire::client_event& e) {
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
        // A new send_content starts the message again (each transaction of a
        // message that LIMITS split takes the whole content).
        if (std::holds_alternative<ev::send_content>(e)) pos = 0;
        // Streams what fits; called again (monostate) once output drained.
        while (pos < message.size()) {
          const auto n = c.send_content(message.substr(pos));
          if (!n || *n == 0) break;
          pos += *n;
        }
        if (pos == message.size()) (void)c.end_content();
      } else if (auto* ok = std::get_if<ev::message_accepted>(&e)) {
        std::printf("accepted: %.*s", static_cast<int>(ok->reply.raw().size()),
                    ok->reply.raw().data());
      }
    };
    const posix::client_run_result r = posix::run_client(conn.fd.get(), client, on_event);
    std::printf("driver: %s, engine state: %s, %llu octets out\n",
                r.error ? r.error.message().c_str() : "ok",
                std::string(smtpwire::to_string(client.state())).c_str(),
                static_cast<unsigned long long>(r.bytes_out));
    status = r.error ? 1 : 0;
  } else {
    std::fprintf(stderr, "connect: %s\n", conn.error.message().c_str());
  }
  loop.stop();
  server_thread.join();  // after this, `stored` is safe to read here
  if (stored != message) status = 1;
  std::printf("stored %zu octets, byte-exact: %s\n", stored.size(), status == 0 ? "yes" : "no");
  return status;
}
