// smtpwire::asio_adapter::async_run over real loopback sockets (127.0.0.1,
// kernel-picked ports): plain deliveries, STARTTLS through the OpenSSL glue
// on both sides (certificates from tests/openssl/support/pki.hpp), a
// server timing out an idle client, a client vanishing mid-DATA, and the
// awaitable form. Every io_context runs bounded (run_for).
#include <smtpwire/asio/driver.hpp>
#include <smtpwire/client.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/server.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>
#if __cplusplus >= 202002L && defined(ASIO_HAS_CO_AWAIT)
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#endif

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "openssl/support/pki.hpp"

namespace {

namespace aa = smtpwire::asio_adapter;
namespace ev = smtpwire::client_events;
namespace pki = smtpwire_test::pki;
using asio::ip::tcp;
using smtpwire::openssl::channel;
using smtpwire::openssl::tls_session;

constexpr auto bound = std::chrono::seconds(20);  // every io_context run is bounded

// ---------------------------------------------------------------------------
// The applications (all protocol logic is the engines')
// ---------------------------------------------------------------------------

// A sink: accepts everything and stores each message's content.
struct sink_app {
  std::vector<std::string> stored;
  std::string current;
  int data_ends = 0;
  std::optional<smtpwire::close_reason> closed;

  template <class Session>
  void operator()(Session& s, smtpwire::server_event& e) {
    auto& eng = aa::detail::engine_of(s);
    if (auto* c = std::get_if<smtpwire::content_event>(&e)) {
      current.append(c->bytes);
    } else if (auto* end = std::get_if<smtpwire::data_end_event>(&e)) {
      ++data_ends;
      if (end->error == smtpwire::errc::ok) {
        stored.push_back(current);
        (void)eng.accept();
      }
      current.clear();
    } else if (auto* cl = std::get_if<smtpwire::closed_event>(&e)) {
      closed = cl->reason;
    } else if (eng.awaiting_decision()) {
      (void)eng.accept();
    }
  }
};

// A sender: delivers `messages` one by one, then QUIT.
struct sender_app {
  std::vector<std::string> messages;
  std::size_t next = 0;  // the message in flight or the next one
  std::size_t pos = 0;   // octets of it passed to send_content
  bool in_flight = false;
  std::size_t accepted = 0;
  std::size_t rejected = 0;
  std::string_view rcpt[1] = {"bob@example.net"};
  bool tls_seen = false;
  bool peer_verified = false;

  template <class Session>
  void operator()(Session& s, smtpwire::client_event& e) {
    smtpwire::client& c = aa::detail::engine_of(s);
    if (std::holds_alternative<ev::ready>(e)) {
      if (in_flight) {
        in_flight = false;
        ++next;
      }
      if (next < messages.size()) {
        smtpwire::envelope env;
        env.from = "alice@example.org";
        env.recipients = rcpt;
        env.recipient_count = 1;
        in_flight = c.send_mail(env) == smtpwire::errc::ok;
        pos = 0;
        if (!in_flight) (void)c.quit();
      } else {
        (void)c.quit();
      }
    } else if (std::holds_alternative<ev::send_content>(e) ||
               (std::holds_alternative<std::monostate>(e) &&
                c.state() == smtpwire::client_state::content)) {
      // A new send_content starts the message again (each transaction of a
      // message that LIMITS split takes the whole content).
      if (std::holds_alternative<ev::send_content>(e)) pos = 0;
      const std::string& m = messages[next];
      while (pos < m.size()) {
        const auto n = c.send_content(std::string_view(m).substr(pos));
        if (!n || *n == 0) break;
        pos += *n;
      }
      if (pos == m.size()) (void)c.end_content();
    } else if (std::holds_alternative<ev::message_accepted>(e)) {
      ++accepted;
    } else if (std::holds_alternative<ev::message_rejected>(e)) {
      ++rejected;
    } else if (auto* cap = std::get_if<ev::capabilities>(&e)) {
      if (cap->tls) tls_seen = true;
    }
    if constexpr (!std::is_same_v<Session, smtpwire::client>) {
      if (s.tls_active()) peer_verified = s.tls().peer_verified;
    }
  }
};

// Messages of assorted shapes, CRLF line ends (what the wire keeps).
std::vector<std::string> make_messages(std::size_t count) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) {
    std::string m = "Subject: message " + std::to_string(i) + "\r\n\r\n";
    m += ".a line starting with a dot\r\n..two dots\r\n.\r\n";
    const std::size_t lines = (i * 7919) % 3000;  // up to ~240 KiB: several reads and writes
    for (std::size_t l = 0; l < lines; ++l)
      m += "line " + std::to_string(l) + " of message " + std::to_string(i) +
           " ------------------------------------------------------------\r\n";
    m += "end\r\n";
    out.push_back(std::move(m));
  }
  return out;
}

// A listening socket on 127.0.0.1 and a kernel-picked port.
tcp::acceptor listen_loopback(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a;
}

smtpwire::client_config plain_client_config() {
  smtpwire::client_config cc;
  cc.tls = smtpwire::tls_policy::none;
  return cc;
}

// ---------------------------------------------------------------------------
// TLS contexts
// ---------------------------------------------------------------------------

struct tls_contexts {
  smtpwire::openssl::client_context client;
  smtpwire::openssl::server_context server;
};

tls_contexts& contexts() {
  static tls_contexts* t = [] {
    const auto& p = pki::get();
    smtpwire::openssl::client_tls_options co;
    co.ca_file = p.ca_file;
    auto c = smtpwire::openssl::client_context::create(co);
    REQUIRE(c);
    smtpwire::openssl::server_tls_options so;
    so.cert_file = p.valid.cert_file;
    so.key_file = p.valid.key_file;
    std::string why;
    auto s = smtpwire::openssl::server_context::create(so, &why);
    INFO(why);
    REQUIRE(s);
    return new tls_contexts{std::move(*c), std::move(*s)};
  }();
  return *t;
}

channel client_channel() {
  smtpwire::openssl::peer_identity peer;
  peer.host = pki::host;
  auto r = channel::client(contexts().client, peer);
  REQUIRE(r);
  return std::move(*r);
}

channel server_channel() {
  auto r = channel::server(contexts().server);
  REQUIRE(r);
  return std::move(*r);
}

// ---------------------------------------------------------------------------
// One client session against one server session over loopback
// ---------------------------------------------------------------------------

template <class ClientSession, class ServerSession>
struct pair_run {
  std::optional<aa::run_result> client_result, server_result;
  sink_app sink;
  sender_app sender;
};

template <class ClientSession, class ServerSession>
void run_pair(pair_run<ClientSession, ServerSession>& pr, ClientSession& cs, ServerSession& ss) {
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  tcp::socket server_sock(io), client_sock(io);
  acc.async_accept(server_sock, [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    aa::async_run(server_sock, ss, std::ref(pr.sink), [&](aa::run_result r) {
      pr.server_result = r;
      server_sock.close();
    });
  });
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    aa::async_run(client_sock, cs, std::ref(pr.sender), [&](aa::run_result r) {
      pr.client_result = r;
      client_sock.close();
    });
  });
  io.run_for(bound);
  REQUIRE(pr.client_result);
  REQUIRE(pr.server_result);
}

// Reads everything the server sends until it closes.
void read_all(tcp::socket& s, std::string& into, std::function<void()> done) {
  asio::async_read(s, asio::dynamic_buffer(into),
                   [&s, done = std::move(done)](const std::error_code& ec, std::size_t) {
                     CHECK(ec == asio::error::eof);
                     s.close();
                     done();
                   });
}

}  // namespace

TEST_CASE("asio: many plain messages, byte-exact, in one session") {
  pair_run<smtpwire::client, smtpwire::server> pr;
  pr.sender.messages = make_messages(25);
  smtpwire::client c(plain_client_config());
  smtpwire::server s(smtpwire::server_config{});
  run_pair(pr, c, s);
  INFO(pr.client_result->error.message() << " / " << pr.server_result->error.message());
  CHECK_FALSE(pr.client_result->error);
  CHECK_FALSE(pr.server_result->error);
  CHECK(c.state() == smtpwire::client_state::closed);
  CHECK(s.closed());
  CHECK(pr.sink.closed == smtpwire::close_reason::quit);
  CHECK(pr.sender.accepted == 25);
  REQUIRE(pr.sink.stored.size() == 25);
  for (std::size_t i = 0; i < 25; ++i)
    CHECK(pr.sink.stored[i] == pr.sender.messages[i]);
  CHECK(pr.client_result->bytes_out == pr.server_result->bytes_in);
  CHECK(pr.server_result->bytes_out == pr.client_result->bytes_in);
}

TEST_CASE("asio: several concurrent sessions on one io_context, small buffers") {
  constexpr int sessions = 8;
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  struct server_side {
    explicit server_side(asio::io_context& io) : sock(io) {}
    tcp::socket sock;
    smtpwire::server engine{smtpwire::server_config{}};
    sink_app app;
    std::optional<aa::run_result> result;
  };
  struct client_side {
    explicit client_side(asio::io_context& io) : sock(io) {}
    tcp::socket sock;
    smtpwire::client engine{plain_client_config()};
    sender_app app;
    std::optional<aa::run_result> result;
  };
  std::vector<std::unique_ptr<server_side>> servers;
  std::vector<std::unique_ptr<client_side>> clients;
  aa::run_options small;
  small.read_buffer = 97;  // many short reads; receive() leaves octets to offer again
  std::function<void()> accept_one = [&] {
    servers.push_back(std::make_unique<server_side>(io));
    server_side& sv = *servers.back();
    acc.async_accept(sv.sock, [&, &sv = sv](const std::error_code& ec) {
      REQUIRE_FALSE(ec);
      aa::async_run(
          sv.sock, sv.engine, std::ref(sv.app),
          [&sv](aa::run_result r) {
            sv.result = r;
            sv.sock.close();
          },
          small);
      if (servers.size() < sessions) accept_one();
    });
  };
  accept_one();
  for (int i = 0; i < sessions; ++i) {
    clients.push_back(std::make_unique<client_side>(io));
    client_side& cl = *clients.back();
    cl.app.messages = make_messages(static_cast<std::size_t>(3 + i));
    cl.sock.async_connect(acc.local_endpoint(), [&cl, small](const std::error_code& ec) {
      REQUIRE_FALSE(ec);
      aa::async_run(
          cl.sock, cl.engine, std::ref(cl.app),
          [&cl](aa::run_result r) {
            cl.result = r;
            cl.sock.close();
          },
          small);
    });
  }
  io.run_for(bound);
  std::size_t delivered = 0, expected = 0;
  for (auto& cl : clients) {
    REQUIRE(cl->result);
    CHECK_FALSE(cl->result->error);
    CHECK(cl->app.accepted == cl->app.messages.size());
    expected += cl->app.messages.size();
  }
  REQUIRE(servers.size() == sessions);
  for (auto& sv : servers) {
    REQUIRE(sv->result);
    CHECK_FALSE(sv->result->error);
    // Each server's messages are some client's, in order.
    bool matched = false;
    for (auto& cl : clients)
      matched = matched || sv->app.stored == cl->app.messages;
    CHECK(matched);
    delivered += sv->app.stored.size();
  }
  CHECK(delivered == expected);
}

TEST_CASE("asio: STARTTLS through tls_session on both sides, verified") {
  pair_run<tls_session<smtpwire::client>, tls_session<smtpwire::server>> pr;
  pr.sender.messages = make_messages(4);
  smtpwire::client_config cc;  // tls_policy::required
  smtpwire::server_config sc;
  sc.tls_available = true;
  tls_session<smtpwire::client> c(cc, client_channel());
  tls_session<smtpwire::server> s(sc, server_channel());
  run_pair(pr, c, s);
  INFO(pr.client_result->error.message() << " / " << pr.server_result->error.message());
  INFO(c.tls_error().message() << " / " << s.tls_error().message());
  CHECK_FALSE(pr.client_result->error);
  CHECK_FALSE(pr.server_result->error);
  CHECK(c.engine().state() == smtpwire::client_state::closed);
  CHECK(s.engine().closed());
  CHECK(pr.sender.tls_seen);
  CHECK(pr.sender.peer_verified);
  CHECK(c.tls_active());
  CHECK(s.engine().tls_active());
  CHECK_FALSE(c.tls_error());
  CHECK_FALSE(s.tls_error());
  CHECK(s.discarded() == 0);
  CHECK(pr.sender.accepted == 4);
  CHECK(pr.sink.stored == pr.sender.messages);
}

TEST_CASE("asio: a server times out an idle client with 421") {
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  tcp::socket server_sock(io), client_sock(io);
  smtpwire::server_config sc;
  sc.timeouts.command = std::chrono::milliseconds(150);
  smtpwire::server s(sc);
  sink_app app;
  std::optional<aa::run_result> result;
  std::string seen;
  bool client_done = false;
  const auto t0 = std::chrono::steady_clock::now();
  acc.async_accept(server_sock, [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    aa::async_run(server_sock, s, std::ref(app), [&](aa::run_result r) {
      result = r;
      server_sock.close();
    });
  });
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    // Says nothing; reads until the server closes.
    read_all(client_sock, seen, [&] { client_done = true; });
  });
  io.run_for(bound);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(result);
  CHECK_FALSE(result->error);  // the engine ran to its end: 421 written, closed
  CHECK(app.closed == smtpwire::close_reason::timeout);
  CHECK(client_done);
  CHECK(seen.rfind("220 ", 0) == 0);
  CHECK(seen.find("\r\n421 4.4.2 ") != std::string::npos);
  CHECK(took >= std::chrono::milliseconds(150));
  CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("asio: a client that disconnects mid-DATA gets no message accepted") {
  const bool half_close = GENERATE(false, true);
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  tcp::socket server_sock(io), client_sock(io);
  smtpwire::server s(smtpwire::server_config{});
  sink_app app;
  std::optional<aa::run_result> result;
  std::string in;
  const std::string commands =
      "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n";
  const std::string partial = "Subject: cut\r\n\r\nthe end never comes\r\n.";
  acc.async_accept(server_sock, [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    aa::async_run(server_sock, s, std::ref(app), [&](aa::run_result r) {
      result = r;
      server_sock.close();
    });
  });
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    asio::async_write(
        client_sock, asio::buffer(commands), [&](const std::error_code& wec, std::size_t) {
          REQUIRE_FALSE(wec);
          asio::async_read_until(client_sock, asio::dynamic_buffer(in), "354 ",
                                 [&](const std::error_code& rec, std::size_t) {
                                   REQUIRE_FALSE(rec);
                                   asio::async_write(client_sock, asio::buffer(partial),
                                                     [&](const std::error_code& pec, std::size_t) {
                                                       REQUIRE_FALSE(pec);
                                                       std::error_code ignored;
                                                       if (half_close)
                                                         client_sock.shutdown(
                                                             tcp::socket::shutdown_send, ignored);
                                                       else
                                                         client_sock.close(ignored);
                                                     });
                                 });
        });
  });
  io.run_for(bound);
  REQUIRE(result);
  CHECK(result->error == aa::run_errc::connection_closed);
  CHECK(app.stored.empty());
  CHECK(app.data_ends == 0);
  CHECK_FALSE(s.closed());
  CHECK(result->bytes_in == commands.size() + partial.size());
}

TEST_CASE("asio: a handler returning false cancels the run") {
  pair_run<smtpwire::client, smtpwire::server> pr;
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  tcp::socket server_sock(io), client_sock(io);
  smtpwire::client c(plain_client_config());
  smtpwire::server s(smtpwire::server_config{});
  acc.async_accept(server_sock, [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    aa::async_run(server_sock, s, std::ref(pr.sink), [&](aa::run_result r) {
      pr.server_result = r;
      server_sock.close();
    });
  });
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    auto stop_at_greeting = [](smtpwire::client&, smtpwire::client_event& e) {
      return !std::holds_alternative<ev::greeting>(e);
    };
    aa::async_run(client_sock, c, stop_at_greeting, [&](aa::run_result r) {
      pr.client_result = r;
      client_sock.close();
    });
  });
  io.run_for(bound);
  REQUIRE(pr.client_result);
  CHECK(pr.client_result->error == aa::run_errc::cancelled);
  REQUIRE(pr.server_result);  // the server saw the connection close
  CHECK(pr.server_result->error == aa::run_errc::connection_closed);
}

#if __cplusplus >= 202002L && defined(ASIO_HAS_CO_AWAIT)
TEST_CASE("asio: the awaitable form (co_await run)") {
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  sink_app sink;
  sender_app sender;
  sender.messages = make_messages(3);
  std::optional<aa::run_result> cr, sr;
  smtpwire::server s(smtpwire::server_config{});
  smtpwire::client c(plain_client_config());
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        tcp::socket sock = co_await acc.async_accept(asio::use_awaitable);
        sr = co_await aa::run(sock, s, std::ref(sink));
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        tcp::socket sock(io);
        co_await sock.async_connect(acc.local_endpoint(), asio::use_awaitable);
        cr = co_await aa::run(sock, c, std::ref(sender));
      },
      asio::detached);
  io.run_for(bound);
  REQUIRE(cr);
  REQUIRE(sr);
  CHECK_FALSE(cr->error);
  CHECK_FALSE(sr->error);
  CHECK(sink.stored == sender.messages);
}
#endif

TEST_CASE("asio: a client times out a silent server (engine deadline, errc::timeout)") {
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  tcp::socket server_sock(io), client_sock(io);
  smtpwire::client_config cc = plain_client_config();
  cc.timeouts.greeting = std::chrono::seconds(1);
  smtpwire::client c(cc);
  std::optional<aa::run_result> result;
  bool error_event = false;
  acc.async_accept(server_sock, [&](const std::error_code& ec) { REQUIRE_FALSE(ec); });
  const auto t0 = std::chrono::steady_clock::now();
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    REQUIRE_FALSE(ec);
    auto on_event = [&](smtpwire::client&, smtpwire::client_event& e) {
      if (auto* err = std::get_if<ev::error>(&e))
        error_event = err->code == smtpwire::errc::timeout;
    };
    aa::async_run(client_sock, c, on_event, [&](aa::run_result r) {
      result = r;
      client_sock.close();
    });
  });
  io.run_for(std::chrono::seconds(10));
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(result);
  CHECK_FALSE(result->error);  // the engine ran to its end: failed with its own error
  CHECK(c.state() == smtpwire::client_state::failed);
  CHECK(c.error() == smtpwire::errc::timeout);
  CHECK(error_event);
  CHECK(took >= std::chrono::seconds(1));
  CHECK(took < std::chrono::seconds(5));
}

TEST_CASE("asio: sessions on strands, io_context run by two threads") {
  asio::io_context io;
  tcp::acceptor acc = listen_loopback(io);
  tcp::socket server_sock(asio::make_strand(io)), client_sock(asio::make_strand(io));
  sink_app sink;
  sender_app sender;
  sender.messages = make_messages(10);
  smtpwire::client c(plain_client_config());
  smtpwire::server s(smtpwire::server_config{});
  std::optional<aa::run_result> cr, sr;
  // Catch2 assertions are not thread-safe: the handlers only record.
  std::error_code accept_error, connect_error;
  acc.async_accept(server_sock, [&](const std::error_code& ec) {
    accept_error = ec;
    if (ec) return;
    aa::async_run(server_sock, s, std::ref(sink), [&](aa::run_result r) {
      sr = r;
      server_sock.close();
    });
  });
  client_sock.async_connect(acc.local_endpoint(), [&](const std::error_code& ec) {
    connect_error = ec;
    if (ec) return;
    aa::async_run(client_sock, c, std::ref(sender), [&](aa::run_result r) {
      cr = r;
      client_sock.close();
    });
  });
  std::thread other([&] { io.run_for(bound); });
  io.run_for(bound);
  other.join();
  CHECK_FALSE(accept_error);
  CHECK_FALSE(connect_error);
  REQUIRE(cr);
  REQUIRE(sr);
  CHECK_FALSE(cr->error);
  CHECK_FALSE(sr->error);
  CHECK(sink.stored == sender.messages);
}
