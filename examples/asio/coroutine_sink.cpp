// smtpwire::asio_adapter with C++20 coroutines: an accept loop (co_spawn)
// serving a smtpwire::server session per connection on a kernel-picked
// loopback port, and a client session delivering one message to it over
// that port. Exit status 0 when the message arrived byte-exact.
//
// Needs C++20 coroutines; built as C++17 it says so and exits with 77 (the
// conventional "skipped" status).
#include <smtpwire/asio/driver.hpp>
#include <smtpwire/client.hpp>
#include <smtpwire/server.hpp>

#include <cstdio>

#if __cplusplus >= 202002L && defined(ASIO_HAS_CO_AWAIT)
// GCC 12 at -O1 and above inlines Asio's awaitable frame operator new
// (aligned_alloc through its recycling allocator) and its operator delete
// into each coroutine and reports a mismatch that is not one (both go
// through asio::detail::thread_info_base); silenced here only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

namespace aa = smtpwire::asio_adapter;
using asio::ip::tcp;

namespace {

const std::string_view message = "Subject: hello\r\n\r\n.a line starting with a dot\r\n";

// The store of this sink: the content of each accepted message.
struct sink {
  std::string stored;
  int sessions = 0;
};

// One connection: its own engine and socket live in this coroutine's frame.
asio::awaitable<void> serve(tcp::socket sock, sink& store) {
  smtpwire::server_config cfg;
  cfg.host_name = "sink.example";
  smtpwire::server engine(cfg);
  std::string content;
  auto on_event = [&](smtpwire::server& s, smtpwire::server_event& e) {
    if (auto* c = std::get_if<smtpwire::content_event>(&e)) {
      content.append(c->bytes);
    } else if (auto* end = std::get_if<smtpwire::data_end_event>(&e)) {
      if (end->error == smtpwire::errc::ok) {
        store.stored = content;  // a real sink writes a file here, then accepts
        (void)s.accept();
      }
      content.clear();
    } else if (s.awaiting_decision()) {
      (void)s.accept();  // connection, EHLO, MAIL, RCPT, DATA: all welcome
    }
  };
  const aa::run_result r = co_await aa::run(sock, engine, on_event);
  ++store.sessions;
  std::printf("server session: %s, %llu octets in\n", r.error ? r.error.message().c_str() : "ok",
              static_cast<unsigned long long>(r.bytes_in));
}

// Accepts until the acceptor is closed.
asio::awaitable<void> accept_loop(tcp::acceptor& acc, sink& store) {
  for (;;) {
    std::error_code ec;
    tcp::socket sock = co_await acc.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // closed: the program is ending
    asio::co_spawn(acc.get_executor(), serve(std::move(sock), store), asio::detached);
  }
}

// Delivers `message` to `to`; true when the server accepted it.
asio::awaitable<bool> deliver(tcp::endpoint to) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  std::error_code ec;
  co_await sock.async_connect(to, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return false;
  smtpwire::client_config cc;
  cc.tls = smtpwire::tls_policy::none;  // loopback demo; use the OpenSSL glue for TLS
  smtpwire::client client(cc);
  const std::string_view rcpt[] = {"bob@example.net"};
  bool sent = false, accepted = false;
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
  const aa::run_result r = co_await aa::run(sock, client, on_event);
  std::printf("client session: %s, engine state %s\n", r.error ? r.error.message().c_str() : "ok",
              std::string(smtpwire::to_string(client.state())).c_str());
  co_return !r.error && accepted;
}

}  // namespace

int main() {
  asio::io_context io;
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(acc.local_endpoint().port()));
  sink store;
  bool ok = false;
  asio::co_spawn(io, accept_loop(acc, store), asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        ok = co_await deliver(acc.local_endpoint());
        std::error_code ignored;
        acc.close(ignored);  // ends the accept loop; the server session finishes on its own
      },
      asio::detached);
  io.run_for(std::chrono::seconds(30));  // bounded: a stuck run fails instead of hanging
  const bool exact = store.stored == message;
  std::printf("stored %zu octets, byte-exact: %s\n", store.stored.size(), exact ? "yes" : "no");
  return ok && exact && store.sessions == 1 ? 0 : 1;
}

#else

int main() {
  std::puts("coroutine_sink needs C++20 coroutines (ASIO_HAS_CO_AWAIT); skipped");
  return 77;
}

#endif
