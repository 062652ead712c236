// smtpwire::posix address.hpp: host:port syntax, resolution errors, and
// connect_tcp against real loopback sockets (refused, timed out, IPv4/IPv6).
#include <smtpwire/posix/address.hpp>

#include <catch2/catch.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <vector>

namespace posix = smtpwire::posix;

namespace {
posix::host_port parse_ok(std::string_view text, std::string_view def = "25") {
  posix::host_port hp;
  const std::error_code e = posix::parse_host_port(text, def, hp);
  INFO(std::string(text) << " -> " << e.message());
  REQUIRE(!e);
  return hp;
}

bool parse_fails(std::string_view text) {
  posix::host_port hp;
  const std::error_code e = posix::parse_host_port(text, "25", hp);
  return e == posix::posix_errc::address_invalid;
}

// A loopback port that nothing listens on: bound, then closed.
std::string closed_port(const char* host) {
  posix::listen_result l = posix::listen_tcp(host, "0");
  REQUIRE(!l.error);
  const std::string port = std::to_string(l.bound.port());
  l.fd.reset();
  return port;
}
}  // namespace

TEST_CASE("parse_host_port: accepted forms", "[posix][address]") {
  auto hp = parse_ok("mail.example.org:587");
  CHECK(hp.host == "mail.example.org");
  CHECK(hp.port == "587");
  hp = parse_ok("mail.example.org");
  CHECK(hp.port == "25");
  hp = parse_ok("192.0.2.1:2525");
  CHECK(hp.host == "192.0.2.1");
  CHECK(hp.port == "2525");
  hp = parse_ok("[::1]:2525");
  CHECK(hp.host == "::1");
  CHECK(hp.port == "2525");
  hp = parse_ok("[2001:db8::1]", "465");
  CHECK(hp.host == "2001:db8::1");
  CHECK(hp.port == "465");
  hp = parse_ok("::1");  // a bare IPv6 address takes the default port
  CHECK(hp.host == "::1");
  CHECK(hp.port == "25");
  hp = parse_ok("localhost:submission");
  CHECK(hp.port == "submission");
  hp = parse_ok("h:65535");
  CHECK(hp.port == "65535");
}

TEST_CASE("parse_host_port: refused forms", "[posix][address]") {
  CHECK(parse_fails(""));
  CHECK(parse_fails(":25"));
  CHECK(parse_fails("host:"));
  CHECK(parse_fails("host:0"));
  CHECK(parse_fails("host:65536"));
  CHECK(parse_fails("host:123456"));
  CHECK(parse_fails("host:2 5"));
  CHECK(parse_fails("host:25/tcp"));
  CHECK(parse_fails("[::1"));
  CHECK(parse_fails("[::1]25"));
  CHECK(parse_fails("[::1]:"));
  CHECK(parse_fails("[]:25"));
  CHECK(parse_fails("[example.org]:25"));  // brackets are for IPv6 only
  CHECK(parse_fails("a b:25"));
  posix::host_port hp;
  CHECK(posix::parse_host_port("", "25", hp).category() == posix::posix_category());
  CHECK(posix::make_error_code(posix::posix_errc::address_invalid).message() ==
        "invalid host:port address");
}

TEST_CASE("resolve: numeric addresses of both families", "[posix][address]") {
  std::vector<posix::socket_address> v;
  REQUIRE(!posix::resolve("127.0.0.1", "25", v));
  REQUIRE(v.size() == 1);
  CHECK(v[0].family() == AF_INET);
  CHECK(v[0].to_string() == "127.0.0.1:25");
  v.clear();
  REQUIRE(!posix::resolve("::1", "2525", v));
  REQUIRE(v.size() == 1);
  CHECK(v[0].family() == AF_INET6);
  CHECK(v[0].to_string() == "[::1]:2525");
  CHECK(v[0].port() == 2525);
  CHECK(v[0].host() == "::1");
}

TEST_CASE("resolve: failure is a resolve_category error code", "[posix][address]") {
  // RFC 2606 reserves .invalid: it never resolves.
  const posix::connect_result r = posix::connect_to("no-such-host.invalid:25", "25");
  REQUIRE(r.error);
  CHECK(!r.fd);
  CHECK(r.failures.empty());
  INFO(r.error.category().name() << ": " << r.error.message());
  CHECK(r.error.category() == posix::resolve_category());
  const int v = r.error.value();
  bool known = v == EAI_NONAME || v == EAI_AGAIN || v == EAI_FAIL;
#ifdef EAI_NODATA
  known = known || v == EAI_NODATA;
#endif
  CHECK(known);
  CHECK(!r.error.message().empty());
  CHECK(std::string(posix::resolve_category().name()) == "smtpwire.resolve");
  CHECK(posix::connect_to("[::1", "25").error == posix::posix_errc::address_invalid);
  // EAI_SYSTEM is reported as the errno it carries.
  CHECK(posix::make_resolve_error(EAI_SYSTEM, ENOMEM) == std::errc::not_enough_memory);
  CHECK(!posix::make_resolve_error(0, 0));
}

TEST_CASE("connect_tcp: a closed port is connection_refused, per family", "[posix][address]") {
  for (const char* host : {"127.0.0.1", "::1"}) {
    const std::string port = closed_port(host);
    const posix::connect_result r = posix::connect_tcp(std::string(host), port);
    INFO(host << " " << r.error.message());
    CHECK(r.error == std::errc::connection_refused);
    CHECK(!r.fd);
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].address.host() == host);
    CHECK(r.failures[0].error == std::errc::connection_refused);
  }
}

TEST_CASE("connect_tcp: reports the address used, IPv4 and IPv6", "[posix][address]") {
  for (const char* host : {"127.0.0.1", "::1"}) {
    posix::listen_result l = posix::listen_tcp(host, "0");
    REQUIRE(!l.error);
    CHECK(l.bound.host() == host);
    REQUIRE(l.bound.port() != 0);
    const std::string text = l.bound.to_string();  // "127.0.0.1:N" / "[::1]:N"
    const posix::connect_result r = posix::connect_to(text, "25");
    REQUIRE(!r.error);
    REQUIRE(r.fd);
    CHECK(r.address.to_string() == text);
    CHECK(r.failures.empty());
  }
}

TEST_CASE("connect_tcp: a connect that gets no answer times out", "[posix][address]") {
  // A listener that never accepts: once its accept queue is full the
  // kernel drops further SYNs, so a new connect waits for ever.
  posix::listen_options lo;
  lo.backlog = 0;
  posix::listen_result l = posix::listen_tcp("127.0.0.1", "0", lo);
  REQUIRE(!l.error);
  const std::string port = std::to_string(l.bound.port());
  posix::connect_options o;
  o.timeout_per_address = std::chrono::milliseconds(200);
  std::vector<posix::unique_fd> held;
  bool timed_out = false;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 16 && !timed_out; ++i) {
    posix::connect_result r = posix::connect_tcp(std::string("127.0.0.1"), port, o);
    if (r.error) {
      CHECK(r.error == posix::posix_errc::connect_timeout);
      timed_out = true;
    } else {
      held.push_back(std::move(r.fd));
    }
  }
  CHECK(timed_out);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("listen_tcp: SO_REUSEPORT lets two sockets share a port", "[posix][address]") {
  posix::listen_options lo;
  lo.reuse_port = true;
  posix::listen_result a = posix::listen_tcp("127.0.0.1", "0", lo);
  REQUIRE(!a.error);
  const std::string port = std::to_string(a.bound.port());
  posix::listen_result b = posix::listen_tcp("127.0.0.1", port, lo);
  CHECK(!b.error);
  lo.reuse_port = false;
  posix::listen_result c = posix::listen_tcp("127.0.0.1", port, lo);
  CHECK(c.error == std::errc::address_in_use);
}
