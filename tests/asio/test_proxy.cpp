// smtpwire::asio_adapter::async_read_proxy over real loopback sockets: a
// PROXY v1/v2 header read before async_run(), the octets after it handed to
// the engine through run_options::initial_input (SMTP in the header's own
// segment), a missing header, the header deadline, optional mode. Every
// io_context runs bounded (run_for); every client thread is joined.
#include <smtpwire/asio/driver.hpp>
#include <smtpwire/server.hpp>
#include <smtpwire/wire/proxy.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <variant>

namespace {

namespace aa = smtpwire::asio_adapter;
namespace w = smtpwire::wire;
using asio::ip::tcp;
using namespace std::chrono_literals;

// One accepted connection: read the header, then (on success) run a server
// session that accepts everything, recording what the handlers saw.
struct proxied_server {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  tcp::socket sock{io};
  w::proxy_reader reader;
  aa::proxy_read_result got;
  bool header_done = false;
  std::optional<aa::run_result> run;
  std::string helo, client;
  std::unique_ptr<smtpwire::server> session;

  explicit proxied_server(w::proxy_options po = {}, std::chrono::milliseconds limit = 5000ms)
      : reader(po) {
    acceptor.async_accept(sock, [this, limit](const std::error_code& ec) {
      REQUIRE(!ec);
      aa::async_read_proxy(sock, reader, limit, [this](aa::proxy_read_result r) {
        got = std::move(r);
        header_done = true;
        if (got.error) return;  // refused: the socket closes with this object
        if (reader.header().has_addresses()) client = std::string(reader.header().source.literal());
        smtpwire::server_config cfg;
        cfg.host_name = "sink.test";
        session.reset(new smtpwire::server(cfg));
        aa::run_options ro;
        ro.initial_input = got.rest;
        aa::async_run(
            sock, *session,
            [this](smtpwire::server& s, smtpwire::server_event& e) {
              if (auto* h = std::get_if<smtpwire::hello_event>(&e)) helo = std::string(h->domain);
              if (s.awaiting_decision()) (void)s.accept();
            },
            [this](aa::run_result r) { run = r; }, ro);
      });
    });
  }
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

// A blocking client: sends `bytes`, then reads until `until` or the end.
std::string talk(std::uint16_t port, std::string bytes, std::string until) {
  asio::io_context io;
  tcp::socket s(io);
  std::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  REQUIRE(!ec);
  if (!bytes.empty()) asio::write(s, asio::buffer(bytes), ec);
  std::string in;
  char buf[1024];
  while (in.find(until) == std::string::npos) {
    const std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    in.append(buf, n);
  }
  return in;
}

std::string v2_header() {
  w::proxy_header h;
  h.family = w::proxy_family::inet;
  h.transport = w::proxy_transport::stream;
  const std::uint8_t src[4] = {192, 0, 2, 33}, dst[4] = {198, 51, 100, 1};
  h.source = w::proxy_address::ipv4(src, 40001);
  h.destination = w::proxy_address::ipv4(dst, 25);
  h.ssl.present = true;
  h.ssl.client = w::proxy_ssl_client::ssl;
  h.ssl.version = "TLSv1.3";
  std::string out;
  REQUIRE(w::write_proxy_v2(out, h, true) == smtpwire::errc::ok);
  return out;
}

}  // namespace

TEST_CASE("asio PROXY: v2 header, SMTP in the same segment reaches the engine", "[asio][proxy]") {
  proxied_server srv;
  std::string reply;
  std::thread t([&] { reply = talk(srv.port(), v2_header() + "EHLO c.test\r\nQUIT\r\n", "221 "); });
  srv.io.run_for(10s);
  t.join();
  REQUIRE(srv.header_done);
  CHECK(!srv.got.error);
  CHECK(srv.got.status == w::proxy_status::header);
  CHECK(srv.got.rest == "EHLO c.test\r\nQUIT\r\n");
  CHECK(srv.client == "192.0.2.33");
  CHECK(srv.reader.header().ssl.version == "TLSv1.3");
  CHECK(srv.reader.header().crc32c);
  CHECK(srv.helo == "c.test");
  REQUIRE(srv.run);
  CHECK(!srv.run->error);
  CHECK(reply.rfind("220 ", 0) == 0);
  CHECK(reply.find("250-") != std::string::npos);
  CHECK(reply.find("221 ") != std::string::npos);
}

TEST_CASE("asio PROXY: a v1 header alone, SMTP later", "[asio][proxy]") {
  proxied_server srv;
  std::string reply;
  std::thread t(
      [&] { reply = talk(srv.port(), "PROXY TCP4 203.0.113.7 198.51.100.1 5000 25\r\n", "220 "); });
  srv.io.run_for(3s);
  t.join();
  REQUIRE(srv.header_done);
  CHECK(!srv.got.error);
  CHECK(srv.got.rest.empty());
  CHECK(srv.client == "203.0.113.7");
  CHECK(reply.rfind("220 ", 0) == 0);
}

TEST_CASE("asio PROXY: refusals", "[asio][proxy]") {
  SECTION("no header while one is required") {
    proxied_server srv;
    std::thread t([&] { talk(srv.port(), "EHLO direct\r\n", "\x01never"); });
    while (!srv.header_done && srv.io.run_one_for(5s) != 0) {
    }
    srv.sock.close();  // refuse: the client sees the end of the stream
    t.join();
    REQUIRE(srv.header_done);
    CHECK(srv.got.error == smtpwire::make_error_code(smtpwire::errc::proxy_missing));
    CHECK(!srv.session);
  }
  SECTION("a silent peer at the deadline") {
    proxied_server srv({}, 150ms);
    asio::io_context cio;
    tcp::socket c(cio);
    c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), srv.port()));
    const auto t0 = std::chrono::steady_clock::now();
    while (!srv.header_done && srv.io.run_one_for(5s) != 0) {
    }
    CHECK(std::chrono::steady_clock::now() - t0 >= 140ms);
    CHECK(srv.got.error == smtpwire::make_error_code(smtpwire::errc::proxy_timeout));
  }
  SECTION("an invalid v2 header") {
    proxied_server srv;
    std::string bad = v2_header();
    bad[12] = '\x31';  // version 3
    std::thread t([&] { talk(srv.port(), bad, "\x01never"); });
    while (!srv.header_done && srv.io.run_one_for(5s) != 0) {
    }
    srv.sock.close();
    t.join();
    CHECK(srv.got.error == smtpwire::make_error_code(smtpwire::errc::proxy_v2_header_invalid));
  }
}

TEST_CASE("asio PROXY: optional mode takes a direct client, replaying a partial signature",
          "[asio][proxy]") {
  w::proxy_options po;
  po.required = false;
  proxied_server srv(po);
  std::string reply;
  std::thread t([&] { reply = talk(srv.port(), "\r\nNOOP\r\nQUIT\r\n", "221 "); });
  srv.io.run_for(10s);
  t.join();
  REQUIRE(srv.header_done);
  CHECK(!srv.got.error);
  CHECK(srv.got.status == w::proxy_status::absent);
  CHECK(srv.got.rest == "\r\nNOOP\r\nQUIT\r\n");
  CHECK(srv.client.empty());
  CHECK(reply.find("250 ") != std::string::npos);
  CHECK(reply.find("221 ") != std::string::npos);
}
