// smtpwire::posix end to end on real loopback sockets: the server loop (in
// its own thread) with smtpwire::server sessions accepting everything, and
// run_client() with smtpwire::client sessions (tls_policy::none) in other
// threads, plus raw sockets for misbehaving clients and swaks as a foreign
// client. Every wait is bounded and every thread joined.
#include <smtpwire/posix/address.hpp>
#include <smtpwire/posix/client_driver.hpp>
#include <smtpwire/posix/server_loop.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace posix = smtpwire::posix;
using smtpwire::client;
using smtpwire::client_config;
using smtpwire::client_event;
using smtpwire::errc;
using smtpwire::server;
using smtpwire::server_config;
using smtpwire::server_event;
namespace ev = smtpwire::client_events;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------
// The server side: a loop accepting everything, recording what arrived.
// ---------------------------------------------------------------------------

struct sink_context {
  std::string content;
};

struct sink_results {
  std::mutex m;
  std::vector<std::string> messages;   // accepted content, byte-exact
  std::vector<smtpwire::errc> failed;  // data_end_event errors
  std::map<posix::close_cause, int> closes;
  std::vector<smtpwire::close_reason> engine_closes;
  std::size_t max_output = 0;  // the largest unsent engine output seen in the handler
  std::size_t content_bytes_without_end = 0;
  std::size_t verifies = 0;  // VRFY/EXPN decisions made

  std::size_t message_count() {
    std::lock_guard<std::mutex> g(m);
    return messages.size();
  }
  int closes_of(posix::close_cause c) {
    std::lock_guard<std::mutex> g(m);
    return closes[c];
  }
};

template <class Poller = posix::default_poller>
struct test_server {
  using loop_type = posix::server_loop<server, sink_context, Poller>;
  sink_results results;
  server_config cfg;
  std::unique_ptr<loop_type> loop;
  posix::socket_address address;
  std::thread thread;
  std::error_code run_error;
  std::atomic<bool> running{false};

  explicit test_server(const char* host, server_config c = {}, posix::server_loop_options o = {},
                       posix::listen_options lo = {})
      : cfg(std::move(c)) {
    cfg.host_name = "sink.test";
    loop.reset(new loop_type(
        [this](const posix::socket_address&) { return std::make_unique<server>(cfg); },
        [this](typename loop_type::connection& conn, server_event& e) { on_event(conn, e); }, o));
    REQUIRE(!loop->error());
    loop->on_close(
        [this](typename loop_type::connection& conn, posix::close_cause why, std::error_code) {
          std::lock_guard<std::mutex> g(results.m);
          ++results.closes[why];
          results.content_bytes_without_end += conn.context().content.size();
        });
    REQUIRE(!loop->listen(host, "0", lo, &address));
  }
  void start() {
    running = true;
    thread = std::thread([this] {
      run_error = loop->run();
      running = false;
    });
  }
  void stop_and_join() {
    if (!thread.joinable()) return;
    loop->stop();
    thread.join();
  }
  ~test_server() { stop_and_join(); }

  void on_event(typename loop_type::connection& conn, server_event& e) {
    server& s = conn.session();
    if (auto* ct = std::get_if<smtpwire::content_event>(&e)) {
      conn.context().content.append(ct->bytes);
    } else if (auto* end = std::get_if<smtpwire::data_end_event>(&e)) {
      std::lock_guard<std::mutex> g(results.m);
      if (end->error == errc::ok) {
        REQUIRE(s.accept() == errc::ok);
        results.messages.push_back(std::move(conn.context().content));
      } else {
        results.failed.push_back(end->error);
      }
      conn.context().content.clear();
    } else if (auto* cl = std::get_if<smtpwire::closed_event>(&e)) {
      std::lock_guard<std::mutex> g(results.m);
      results.engine_closes.push_back(cl->reason);
    } else if (s.awaiting_decision()) {
      REQUIRE(s.accept() == errc::ok);
    }
    std::lock_guard<std::mutex> g(results.m);
    if (std::holds_alternative<smtpwire::verify_event>(e)) ++results.verifies;
    results.max_output = std::max(results.max_output, s.output().size());
  }
};

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (p()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return p();
}

// ---------------------------------------------------------------------------
// The client side: run_client() with a client engine delivering messages.
// ---------------------------------------------------------------------------

struct outgoing {
  std::string from;
  std::vector<std::string> to;
  std::string content;  // CRLF lines, ends in CRLF: arrives unchanged
};

// Lines of random printable text, some starting with dots (stuffed on the
// wire), CRLF-terminated; `big` adds enough to need many output drains.
std::string make_content(std::mt19937& rng, bool big) {
  std::string s = "Subject: test\r\n\r\n";
  const int lines = big ? 4000 : std::uniform_int_distribution<int>(1, 40)(rng);
  for (int i = 0; i < lines; ++i) {
    const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
    if (kind == 0) s += ".";
    if (kind == 1) s += "..";
    const int len = std::uniform_int_distribution<int>(0, big ? 120 : 78)(rng);
    for (int k = 0; k < len; ++k)
      s += static_cast<char>(std::uniform_int_distribution<int>(0x20, 0x7e)(rng));
    s += "\r\n";
  }
  return s;
}

std::vector<outgoing> make_messages(std::uint32_t seed, int count, bool one_big) {
  std::mt19937 rng(seed);
  std::vector<outgoing> v;
  for (int i = 0; i < count; ++i) {
    outgoing m;
    m.from = "sender" + std::to_string(seed) + "@example.org";
    m.to = {"a" + std::to_string(i) + "@example.net", "b@example.net"};
    m.content = make_content(rng, one_big && i == 0);
    v.push_back(std::move(m));
  }
  return v;
}

struct delivery_report {
  posix::client_run_result run;
  smtpwire::client_state final_state = smtpwire::client_state::greeting;
  errc engine_error = errc::ok;
  int accepted = 0;
  int rejected = 0;
  int idle_calls = 0;
};

// One session: every message, then QUIT.
delivery_report deliver(int fd, const std::vector<outgoing>& msgs) {
  client_config cc;
  cc.tls = smtpwire::tls_policy::none;
  cc.local_name = "client.test";
  client c(cc);
  delivery_report rep;
  std::size_t next = 0;
  std::vector<std::string_view> rcpts;
  std::string_view body;
  std::size_t pos = 0;
  bool streaming = false;
  auto stream = [&](client& cl) {
    while (pos < body.size()) {
      const auto r = cl.send_content(body.substr(pos));
      REQUIRE(r.has_value());
      if (*r == 0) return;
      pos += *r;
    }
    if (cl.end_content() == errc::ok) streaming = false;
  };
  auto handler = [&](client& cl, client_event& e) {
    if (std::holds_alternative<std::monostate>(e)) {
      ++rep.idle_calls;
      if (streaming) stream(cl);
    } else if (std::holds_alternative<ev::ready>(e)) {
      if (next < msgs.size()) {
        const outgoing& m = msgs[next++];
        rcpts.assign(m.to.begin(), m.to.end());
        smtpwire::envelope env;
        env.from = m.from;
        env.recipients = rcpts.data();
        env.recipient_count = rcpts.size();
        REQUIRE(cl.send_mail(env) == errc::ok);
        body = m.content;
        pos = 0;
      } else {
        REQUIRE(cl.quit() == errc::ok);
      }
    } else if (std::holds_alternative<ev::send_content>(e)) {
      streaming = true;
      stream(cl);
    } else if (std::holds_alternative<ev::message_accepted>(e)) {
      ++rep.accepted;
    } else if (std::holds_alternative<ev::message_rejected>(e)) {
      ++rep.rejected;
    }
  };
  rep.run = posix::run_client(fd, c, handler);
  rep.final_state = c.state();
  rep.engine_error = c.error();
  return rep;
}

delivery_report connect_and_deliver(const posix::socket_address& a,
                                    const std::vector<outgoing>& msgs) {
  posix::connect_result cr = posix::connect_to(a.to_string(), "25");
  REQUIRE(!cr.error);
  CHECK(cr.address.to_string() == a.to_string());
  return deliver(cr.fd.get(), msgs);
}

// ---------------------------------------------------------------------------
// Raw sockets for clients that misbehave.
// ---------------------------------------------------------------------------

struct raw_client {
  posix::unique_fd fd;
  std::string received;
  bool eof = false;

  explicit raw_client(const posix::socket_address& a) {
    posix::connect_result cr = posix::connect_tcp(a.host(), std::to_string(a.port()));
    REQUIRE(!cr.error);
    fd = std::move(cr.fd);
  }
  // Writes everything, waiting at most `limit` in total.
  bool send_all(std::string_view s, std::chrono::milliseconds limit = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!s.empty()) {
      const long n = posix::detail::send_some(fd.get(), s);
      if (n < 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
      if (s.empty()) break;
      pollfd p{fd.get(), POLLOUT, 0};
      const int w = posix::detail::wait_ms(std::chrono::steady_clock::now(), until);
      if (w == 0 || ::poll(&p, 1, w) <= 0) return false;
    }
    return true;
  }
  // Reads until `needle` is in the received text, EOF, or `limit`.
  bool read_until(std::string_view needle, std::chrono::milliseconds limit = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (received.find(needle) == std::string::npos && !eof) {
      pollfd p{fd.get(), POLLIN, 0};
      const int w = posix::detail::wait_ms(std::chrono::steady_clock::now(), until);
      if (w == 0 || ::poll(&p, 1, w) <= 0) return false;
      char buf[4096];
      const posix::detail::recv_result r = posix::detail::recv_some(fd.get(), buf, sizeof buf);
      if (r.error) {
        eof = true;
        break;
      }
      received.append(buf, r.n);
      if (r.eof) eof = true;
    }
    return received.find(needle) != std::string::npos;
  }
  bool wait_eof(std::chrono::milliseconds limit = 5000ms) {
    read_until(std::string_view("\x01never\x02"), limit);
    return eof;
  }
};

}  // namespace

// ---------------------------------------------------------------------------

template <class Poller>
void many_sessions(const char* host) {
  test_server<Poller> srv(host);
  srv.start();
  constexpr int threads = 4, sessions = 5, per_session = 3;
  std::vector<std::vector<std::vector<outgoing>>> plan(threads);
  std::vector<std::string> expected;
  for (int t = 0; t < threads; ++t)
    for (int s = 0; s < sessions; ++s) {
      plan[t].push_back(
          make_messages(static_cast<std::uint32_t>(t * 100 + s), per_session, t == 0 && s == 0));
      for (const outgoing& m : plan[t].back())
        expected.push_back(m.content);
    }
  std::vector<std::vector<delivery_report>> reports(threads);
  std::vector<std::thread> ths;
  for (int t = 0; t < threads; ++t)
    ths.emplace_back([&, t] {
      for (const auto& msgs : plan[t])
        reports[t].push_back(connect_and_deliver(srv.address, msgs));
    });
  for (auto& th : ths)
    th.join();
  int accepted = 0;
  bool big_streamed = false;
  for (const auto& rs : reports)
    for (const delivery_report& r : rs) {
      INFO(r.run.error.message() << " engine " << smtpwire::to_string(r.engine_error));
      CHECK(!r.run.error);
      CHECK(r.final_state == smtpwire::client_state::closed);
      CHECK(r.rejected == 0);
      accepted += r.accepted;
      big_streamed = big_streamed || r.idle_calls > 3;
    }
  CHECK(accepted == threads * sessions * per_session);
  CHECK(big_streamed);  // the big message needed several drains of the output
  REQUIRE(eventually([&] { return srv.loop->counters().open == 0; }));
  srv.stop_and_join();
  CHECK(!srv.run_error);
  std::vector<std::string> got = srv.results.messages;
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  REQUIRE(got.size() == expected.size());
  CHECK(got == expected);  // byte-exact
  const posix::server_counters c = srv.loop->counters();
  CHECK(c.accepted == threads * sessions);
  CHECK(c.closed == threads * sessions);
  CHECK(c.open == 0);
  CHECK(srv.results.closes[posix::close_cause::engine_closed] == threads * sessions);
}

TEST_CASE("server loop + client driver: many sessions, byte-exact content", "[posix][loop]") {
  SECTION("IPv4, epoll/default poller") {
    many_sessions<posix::default_poller>("127.0.0.1");
  }
  SECTION("IPv6, epoll/default poller") {
    many_sessions<posix::default_poller>("::1");
  }
  SECTION("IPv4, poll() poller") {
    many_sessions<posix::poll_poller>("127.0.0.1");
  }
}

TEST_CASE("server loop: a client that disconnects mid-DATA delivers nothing", "[posix][loop]") {
  test_server<> srv("127.0.0.1");
  srv.start();
  {
    raw_client rc(srv.address);
    REQUIRE(rc.read_until("220 "));
    REQUIRE(rc.send_all("EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"));
    REQUIRE(rc.read_until("2.1.5"));
    REQUIRE(rc.send_all("DATA\r\n"));
    REQUIRE(rc.read_until("354 "));
    REQUIRE(rc.send_all("Subject: half\r\n\r\nthe first half of a message\r\n"));
    REQUIRE(eventually([&] {
      std::lock_guard<std::mutex> g(srv.results.m);
      return srv.loop->counters().open == 1;
    }));
  }  // closed here, mid-DATA
  REQUIRE(eventually([&] { return srv.loop->counters().closed == 1; }));
  CHECK(srv.results.message_count() == 0);
  CHECK(srv.results.closes_of(posix::close_cause::peer_closed) == 1);
  std::lock_guard<std::mutex> g(srv.results.m);
  CHECK(srv.results.failed.empty());
  // The partial content reached the application and was dropped at close.
  CHECK(srv.results.content_bytes_without_end > 0);
}

TEST_CASE("server loop: an idle client gets 421 at the engine's timeout", "[posix][loop]") {
  server_config cfg;
  cfg.timeouts.command = 200ms;
  test_server<> srv("::1", cfg);
  srv.start();
  raw_client rc(srv.address);
  REQUIRE(rc.read_until("220 "));
  REQUIRE(rc.send_all("EHLO c.test\r\n"));
  REQUIRE(rc.read_until("250 "));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(rc.read_until("421 ", 5000ms));
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 150ms);
  CHECK(rc.received.find("4.4.2") != std::string::npos);
  CHECK(rc.wait_eof());
  REQUIRE(eventually([&] { return srv.loop->counters().closed == 1; }));
  CHECK(srv.results.closes_of(posix::close_cause::engine_closed) == 1);
  std::lock_guard<std::mutex> g(srv.results.m);
  REQUIRE(srv.results.engine_closes.size() == 1);
  CHECK(srv.results.engine_closes[0] == smtpwire::close_reason::timeout);
}

TEST_CASE("server loop: a client that pipelines but never reads is held back", "[posix][loop]") {
  server_config cfg;
  cfg.limits.max_commands = 100000000;  // the test is about buffering, not the command limit
  posix::server_loop_options o;
  o.write_timeout = 1500ms;
  test_server<> srv("127.0.0.1", cfg, o);
  srv.start();
  raw_client rc(srv.address);
  REQUIRE(rc.read_until("220 "));
  REQUIRE(rc.send_all("EHLO c.test\r\n"));
  REQUIRE(rc.read_until("250 "));
  // Each VRFY is a decision (the handler accepts it) and a ~60-octet reply
  // that is never read: the server's output backs up, the engine stops
  // parsing, the loop stops reading, and TCP stops the client.
  std::string burst;
  for (int i = 0; i < 512; ++i)
    burst += "VRFY someone\r\n";
  std::size_t sent = 0;
  auto stalled_since = std::chrono::steady_clock::now();
  const auto give_up = stalled_since + 20s;
  bool stalled = false;
  while (std::chrono::steady_clock::now() < give_up && sent < (std::size_t(256) << 20)) {
    const long n = posix::detail::send_some(rc.fd.get(), burst);
    REQUIRE(n >= 0);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      stalled_since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - stalled_since > 400ms) {
      stalled = true;
      break;
    } else {
      std::this_thread::sleep_for(5ms);
    }
  }
  INFO("client sent " << sent << " octets before stalling");
  CHECK(stalled);
  CHECK(sent < (std::size_t(64) << 20));  // kernel buffers, not an unbounded server buffer
  {
    std::lock_guard<std::mutex> g(srv.results.m);
    // Unsent engine output stays near limits.output_backlog (1024) plus one reply.
    CHECK(srv.results.max_output <= cfg.limits.output_backlog + 1024);
    // Most of what the client sent sits unread in kernel buffers: the
    // server parsed only the commands whose replies it could send.
    INFO("server answered " << srv.results.verifies << " VRFY commands");
    CHECK(srv.results.verifies > 0);
    CHECK(srv.results.verifies * 14 < sent);
  }
  // The stuck session is reclaimed by the write timeout.
  REQUIRE(eventually([&] { return srv.loop->counters().closed == 1; }, 10000ms));
  CHECK(srv.results.closes_of(posix::close_cause::write_timeout) == 1);
}

TEST_CASE("server loop: octets a session does not take are kept, in order", "[posix][loop]") {
  // A client pipelines far more than the engine buffers and reads nothing
  // for a while: the replies (each VRFY is a decision, ~60 octets of reply
  // for 14 of command) back up, the engine stops parsing with octets of the
  // last read left over, and the loop keeps them (its read buffer is
  // shared). Once the client reads, every command must be answered and the
  // BDAT message arrive byte-exact. read_buffer 7 cuts the stream anywhere.
  const std::size_t read_buffer = GENERATE(std::size_t(65536), std::size_t(4096), std::size_t(7));
  INFO("read_buffer " << read_buffer);
  server_config cfg;
  cfg.extensions.chunking = true;
  cfg.limits.max_commands = 100000;  // the test is about buffering, not the command limit
  posix::server_loop_options o;
  o.read_buffer = read_buffer;
  test_server<> srv("127.0.0.1", cfg, o);
  // A listener whose sessions get a small send buffer (accepted sockets
  // inherit it): the replies back up once the client's window is full.
  posix::listen_result lr = posix::listen_tcp("127.0.0.1", "0");
  REQUIRE(!lr.error);
  const int small = 4096;
  REQUIRE(::setsockopt(lr.fd.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  const posix::socket_address at = lr.bound;
  REQUIRE(!srv.loop->adopt_listener(std::move(lr.fd)));
  srv.start();
  raw_client rc(at);
  REQUIRE(rc.read_until("220 "));
  REQUIRE(rc.send_all("EHLO c.test\r\n"));
  REQUIRE(rc.read_until("250 "));
  rc.received.clear();
  std::mt19937 rng(20261129);
  std::string burst;
  std::vector<std::string> bodies;
  const int vrfys = 6000;  // ~360 KiB of replies: more than the kernel buffers hold
  for (int m = 0; m < 2; ++m) {
    for (int i = 0; i < vrfys; ++i)
      burst += "VRFY someone\r\n";
    burst += "MAIL FROM:<a" + std::to_string(m) + "@b.example>\r\nRCPT TO:<r@c.example>\r\n";
    // BDAT carries raw octets (RFC 3030 §2): pipelined with the commands.
    bodies.push_back(make_content(rng, true));
    const std::string& b = bodies.back();
    const std::size_t half = b.size() / 2;
    burst += "BDAT " + std::to_string(half) + "\r\n" + b.substr(0, half);
    burst += "BDAT " + std::to_string(b.size() - half) + " LAST\r\n" + b.substr(half);
  }
  burst += "QUIT\r\n";
  bool sent = false;
  std::thread writer([&] { sent = rc.send_all(burst, 20000ms); });
  std::this_thread::sleep_for(300ms);  // nothing read: the server's output backs up
  const bool quit_answered = rc.read_until("221 ", 20000ms);
  writer.join();
  REQUIRE(sent);
  REQUIRE(quit_answered);
  auto count = [&](std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t at = 0; (at = rc.received.find(needle, at)) != std::string::npos; ++at)
      ++n;
    return n;
  };
  CHECK(count("252 2.5.0") == std::size_t(2 * vrfys));
  CHECK(count("250 ") == std::size_t(2 * (1 + 1 + 2)));  // MAIL, RCPT, two BDAT, twice
  CHECK(count("\r\n4") + count("\r\n5") == 0);
  REQUIRE(eventually([&] { return srv.loop->counters().closed == 1; }));
  std::lock_guard<std::mutex> g(srv.results.m);
  CHECK(srv.results.verifies == std::size_t(2 * vrfys));
  REQUIRE(srv.results.messages.size() == bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i)
    CHECK(srv.results.messages[i] == bodies[i]);
  CHECK(srv.results.closes[posix::close_cause::engine_closed] == 1);
}

TEST_CASE("server loop: stop() with open sessions and a grace period", "[posix][loop]") {
  posix::server_loop_options o;
  o.grace = 400ms;
  test_server<> srv("127.0.0.1", {}, o);
  srv.start();
  std::vector<std::unique_ptr<raw_client>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<raw_client>(srv.address));
    REQUIRE(idle.back()->read_until("220 "));
  }
  raw_client finisher(srv.address);
  REQUIRE(finisher.read_until("220 "));
  REQUIRE(eventually([&] { return srv.loop->counters().open == 4; }));
  const auto start = std::chrono::steady_clock::now();
  srv.loop->stop();
  // A session that finishes within the grace period completes normally.
  REQUIRE(finisher.send_all("QUIT\r\n"));
  CHECK(finisher.read_until("221 "));
  CHECK(finisher.wait_eof());
  srv.thread.join();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 350ms);
  CHECK(took < 5s);
  CHECK(!srv.run_error);
  const posix::server_counters c = srv.loop->counters();
  CHECK(c.open == 0);
  CHECK(c.closed == 4);
  CHECK(srv.results.closes_of(posix::close_cause::shutdown) == 3);
  CHECK(srv.results.closes_of(posix::close_cause::engine_closed) == 1);
  // The idle ones were told why before the close (RFC 5321 §3.8).
  for (auto& rc : idle) {
    CHECK(rc->read_until("421 4.3.2 "));
    CHECK(rc->wait_eof());
  }
  // The listener was closed at stop().
  CHECK(posix::connect_to(srv.address.to_string(), "25").error == std::errc::connection_refused);
}

namespace {
posix::server_loop<server, sink_context>* signal_target = nullptr;
extern "C" void on_sigusr1(int) {
  if (signal_target != nullptr) signal_target->stop();
}
}  // namespace

TEST_CASE("server loop: stop() from a signal handler", "[posix][loop]") {
  posix::server_loop_options o;
  o.grace = 100ms;
  test_server<> srv("127.0.0.1", {}, o);
  signal_target = srv.loop.get();
  struct sigaction sa {};
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);
  srv.start();
  raw_client rc(srv.address);
  REQUIRE(rc.read_until("220 "));
  REQUIRE(::pthread_kill(srv.thread.native_handle(), SIGUSR1) == 0);
  CHECK(rc.wait_eof(5000ms));
  REQUIRE(eventually([&] { return !srv.running.load(); }));
  srv.thread.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  signal_target = nullptr;
  CHECK(srv.loop->counters().closed == 1);
}

TEST_CASE("server loop: 200 concurrent sessions", "[posix][loop]") {
  test_server<> srv("127.0.0.1");
  srv.start();
  constexpr int n = 200;
  std::vector<posix::unique_fd> fds;
  for (int i = 0; i < n; ++i) {
    posix::connect_result cr = posix::connect_to(srv.address.to_string(), "25");
    REQUIRE(!cr.error);
    fds.push_back(std::move(cr.fd));
  }
  REQUIRE(eventually([&] { return srv.loop->counters().open == n; }));
  // All open at once; now four threads deliver one message on each.
  std::atomic<int> accepted{0}, failures{0};
  std::vector<std::thread> ths;
  for (int t = 0; t < 4; ++t)
    ths.emplace_back([&, t] {
      for (int i = t; i < n; i += 4) {
        const auto msgs = make_messages(static_cast<std::uint32_t>(5000 + i), 1, false);
        const delivery_report r = deliver(fds[static_cast<std::size_t>(i)].get(), msgs);
        accepted += r.accepted;
        if (r.run.error || r.final_state != smtpwire::client_state::closed) ++failures;
      }
    });
  for (auto& th : ths)
    th.join();
  CHECK(failures == 0);
  CHECK(accepted == n);
  REQUIRE(eventually([&] { return srv.loop->counters().closed == n; }));
  CHECK(srv.results.message_count() == n);
}

TEST_CASE("server loop: one loop per thread with SO_REUSEPORT", "[posix][loop]") {
  posix::listen_options lo;
  lo.reuse_port = true;
  test_server<> a("127.0.0.1", {}, {}, lo);
  // The second loop binds the port the kernel gave the first.
  using loop_type = test_server<>::loop_type;
  sink_results second_results;
  loop_type b([](const posix::socket_address&) { return std::make_unique<server>(); },
              [&](loop_type::connection& conn, server_event& e) {
                server& s = conn.session();
                if (auto* end = std::get_if<smtpwire::data_end_event>(&e)) {
                  (void)end;
                  std::lock_guard<std::mutex> g(second_results.m);
                  second_results.messages.emplace_back();
                }
                if (s.awaiting_decision()) REQUIRE(s.accept() == errc::ok);
              });
  REQUIRE(!b.listen("127.0.0.1", std::to_string(a.address.port()), lo));
  a.start();
  std::thread tb([&] { CHECK(!b.run()); });
  int accepted = 0;
  for (int i = 0; i < 24; ++i) {
    const delivery_report r =
        connect_and_deliver(a.address, make_messages(static_cast<std::uint32_t>(i), 1, false));
    CHECK(!r.run.error);
    accepted += r.accepted;
  }
  CHECK(accepted == 24);
  REQUIRE(eventually([&] { return a.loop->counters().closed + b.counters().closed == 24; }));
  b.stop();
  tb.join();
  a.stop_and_join();
  CHECK(a.results.message_count() + second_results.message_count() == 24);
}

TEST_CASE("client driver: transport errors are error codes", "[posix][client]") {
  SECTION("the server closes before the session is over") {
    posix::listen_result l = posix::listen_tcp("127.0.0.1", "0");
    REQUIRE(!l.error);
    std::thread peer([&] {
      pollfd p{l.fd.get(), POLLIN, 0};
      REQUIRE(::poll(&p, 1, 5000) == 1);
      posix::unique_fd s(::accept(l.fd.get(), nullptr, nullptr));
      const char greeting[] = "220 x ESMTP\r\n";
      REQUIRE(::send(s.get(), greeting, sizeof greeting - 1, 0) > 0);
      // Read the EHLO (unread data would make the close a reset), then close
      // without answering it.
      std::string got;
      char buf[256];
      while (got.find("\r\n") == std::string::npos) {
        pollfd q{s.get(), POLLIN, 0};
        REQUIRE(::poll(&q, 1, 5000) == 1);
        const auto n = ::recv(s.get(), buf, sizeof buf, 0);
        REQUIRE(n > 0);
        got.append(buf, static_cast<std::size_t>(n));
      }
      CHECK(got.rfind("EHLO ", 0) == 0);
    });
    posix::connect_result cr = posix::connect_to(l.bound.to_string(), "25");
    REQUIRE(!cr.error);
    const delivery_report r = deliver(cr.fd.get(), make_messages(1, 1, false));
    peer.join();
    CHECK(r.run.error == posix::posix_errc::connection_closed);
  }
  SECTION("the engine's reply timeout fires through the driver") {
    posix::listen_result l = posix::listen_tcp("::1", "0");
    REQUIRE(!l.error);
    posix::connect_result cr = posix::connect_to(l.bound.to_string(), "25");
    REQUIRE(!cr.error);
    // Never accepted, never greeted: the greeting timeout (1 s) ends it.
    client_config cc;
    cc.tls = smtpwire::tls_policy::none;
    cc.timeouts.greeting = std::chrono::seconds(1);
    client c(cc);
    bool saw_error = false;
    const auto start = std::chrono::steady_clock::now();
    const posix::client_run_result rr =
        posix::run_client(cr.fd.get(), c, [&](client&, client_event& e) {
          if (auto* er = std::get_if<ev::error>(&e)) saw_error = er->code == errc::timeout;
        });
    CHECK(!rr.error);
    CHECK(saw_error);
    CHECK(c.state() == smtpwire::client_state::failed);
    CHECK(std::chrono::steady_clock::now() - start >= 900ms);
  }
  SECTION("a handler that returns false cancels") {
    test_server<> srv("127.0.0.1");
    srv.start();
    posix::connect_result cr = posix::connect_to(srv.address.to_string(), "25");
    REQUIRE(!cr.error);
    client_config cc;
    cc.tls = smtpwire::tls_policy::none;
    client c(cc);
    const posix::client_run_result rr = posix::run_client(
        cr.fd.get(), c,
        [&](client&, client_event& e) { return !std::holds_alternative<ev::greeting>(e); });
    CHECK(rr.error == posix::posix_errc::cancelled);
    CHECK(rr.bytes_in > 0);
  }
  SECTION("an application that never acts hits idle_limit") {
    test_server<> srv("127.0.0.1");
    srv.start();
    posix::connect_result cr = posix::connect_to(srv.address.to_string(), "25");
    REQUIRE(!cr.error);
    client_config cc;
    cc.tls = smtpwire::tls_policy::none;
    client c(cc);
    posix::client_options o;
    o.idle_limit = 200ms;
    const posix::client_run_result rr = posix::run_client(
        cr.fd.get(), c, [](client&, client_event&) {}, o);
    CHECK(rr.error == posix::posix_errc::idle_timeout);
    CHECK(c.state() == smtpwire::client_state::ready);
  }
}

TEST_CASE("server loop: swaks delivers with pipelining", "[posix][loop][swaks]") {
  if (::access("/usr/bin/swaks", X_OK) != 0) {
    WARN("swaks is not installed: skipped");
    return;
  }
  test_server<> srv("127.0.0.1");
  srv.start();
  const std::string server_arg = srv.address.to_string();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execl("/usr/bin/timeout", "timeout", "20", "/usr/bin/swaks", "--server", server_arg.c_str(),
            "--to", "a@b.example", "--from", "c@d.example", "--pipeline", "--body",
            "hello from swaks\n.leading dot\n", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  pid_t w = 0;
  const auto until = std::chrono::steady_clock::now() + 30s;
  while ((w = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  if (w == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  REQUIRE(w == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  REQUIRE(eventually([&] { return srv.results.message_count() == 1; }));
  std::lock_guard<std::mutex> g(srv.results.m);
  const std::string& m = srv.results.messages[0];
  CHECK(m.find("hello from swaks\r\n.leading dot\r\n") != std::string::npos);
}

TEST_CASE("server loop: max_sessions pauses accepting; the factory may refuse", "[posix][loop]") {
  posix::server_loop_options o;
  o.max_sessions = 2;
  using loop_type = posix::server_loop<server>;
  std::atomic<int> made{0};
  loop_type loop(
      [&](const posix::socket_address& peer) -> std::unique_ptr<server> {
        CHECK(peer.host() == "127.0.0.1");
        if (made++ == 0) return nullptr;  // the first connection is refused
        return std::make_unique<server>();
      },
      [](loop_type::connection& c, server_event&) {
        if (c.session().awaiting_decision()) REQUIRE(c.session().accept() == errc::ok);
      },
      o);
  posix::socket_address addr;
  REQUIRE(!loop.listen("127.0.0.1", "0", {}, &addr));
  std::thread th([&] { CHECK(!loop.run()); });
  {
    raw_client refused(addr);
    CHECK(refused.wait_eof());
    CHECK(refused.received.empty());
  }
  REQUIRE(eventually([&] { return loop.counters().refused == 1; }));
  raw_client a(addr), b(addr);
  REQUIRE(a.read_until("220 "));
  REQUIRE(b.read_until("220 "));
  raw_client c(addr);  // queued by the kernel, not accepted while two are open
  CHECK(!c.read_until("220 ", 300ms));
  CHECK(loop.counters().open == 2);
  REQUIRE(a.send_all("QUIT\r\n"));
  REQUIRE(a.read_until("221 "));
  CHECK(c.read_until("220 "));  // accepted once a slot is free
  loop.stop();
  th.join();
  const posix::server_counters k = loop.counters();
  CHECK(k.accepted == 3);
  CHECK(k.closed == 3);
  CHECK(k.refused == 1);
}

TEST_CASE("server loop: a decision the handler leaves pending gets 4yz", "[posix][loop]") {
  using loop_type = posix::server_loop<server>;
  loop_type loop([](const posix::socket_address&) { return std::make_unique<server>(); },
                 [](loop_type::connection& c, server_event& e) {
                   // Decides the connection and the hello only.
                   if (std::holds_alternative<smtpwire::connect_event>(e) ||
                       std::holds_alternative<smtpwire::hello_event>(e))
                     REQUIRE(c.session().accept() == errc::ok);
                 });
  posix::socket_address addr;
  REQUIRE(!loop.listen("::1", "0", {}, &addr));
  std::thread th([&] { CHECK(!loop.run()); });
  raw_client rc(addr);
  REQUIRE(rc.read_until("220 "));
  REQUIRE(rc.send_all("EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n"));
  CHECK(rc.read_until("221 "));
  CHECK(rc.received.find("\r\n451 4.3.0") != std::string::npos);
  loop.stop();
  th.join();
}

TEST_CASE("client driver: an invalid descriptor is EBADF", "[posix][client]") {
  client c;
  const auto r = posix::run_client(-1, c, [](client&, client_event&) {});
  CHECK(r.error == std::errc::bad_file_descriptor);
}

// ---------------------------------------------------------------------------
// PROXY protocol (server_loop_options::proxy_protocol) over loopback.
// ---------------------------------------------------------------------------

namespace {

// What a handler saw of one proxied connection, copied out of the header.
struct proxied_seen {
  std::string peer, transport_peer, helo;
  bool has_header = false;
  int version = 0;
  std::string source, destination, authority, ssl_version, ssl_cipher, ssl_cn, unique_id;
  bool ssl = false;
  std::uint8_t ssl_client = 0;
};

struct proxy_server {
  using loop_type = posix::server_loop<server>;
  std::unique_ptr<loop_type> loop;
  posix::socket_address address;
  std::thread thread;
  std::mutex m;
  std::vector<proxied_seen> seen;
  std::vector<std::pair<std::string, errc>> refusals;
  std::vector<std::string> factory_peers;
  int closes = 0;

  explicit proxy_server(posix::proxy_listen_options po) {
    posix::server_loop_options o;
    o.proxy_protocol = std::move(po);
    loop.reset(new loop_type(
        [this](const posix::socket_address& peer) {
          std::lock_guard<std::mutex> g(m);
          factory_peers.push_back(peer.to_string());
          server_config c;
          c.host_name = "sink.test";
          return std::make_unique<server>(c);
        },
        [this](loop_type::connection& conn, server_event& e) { on_event(conn, e); }, o));
    REQUIRE(!loop->error());
    loop->on_close([this](loop_type::connection&, posix::close_cause, std::error_code) {
      std::lock_guard<std::mutex> g(m);
      ++closes;
    });
    loop->on_proxy_refused([this](const posix::socket_address& peer, errc why) {
      std::lock_guard<std::mutex> g(m);
      refusals.emplace_back(peer.host(), why);
    });
    REQUIRE(!loop->listen("127.0.0.1", "0", {}, &address));
    thread = std::thread([this] { CHECK(!loop->run()); });
  }
  ~proxy_server() {
    loop->stop();
    thread.join();
  }

  void on_event(loop_type::connection& conn, server_event& e) {
    server& s = conn.session();
    if (std::holds_alternative<smtpwire::connect_event>(e)) {
      proxied_seen v;
      v.peer = conn.peer().to_string();
      v.transport_peer = conn.transport_peer().to_string();
      if (const smtpwire::wire::proxy_header* h = conn.proxy()) {
        v.has_header = true;
        v.version = static_cast<int>(h->version);
        v.source = std::string(h->source.literal()) + ":" + std::to_string(h->source.port());
        v.destination =
            std::string(h->destination.literal()) + ":" + std::to_string(h->destination.port());
        v.authority = std::string(h->authority);
        v.unique_id = std::string(h->unique_id);
        v.ssl = h->ssl.present;
        v.ssl_client = h->ssl.client;
        v.ssl_version = std::string(h->ssl.version);
        v.ssl_cipher = std::string(h->ssl.cipher);
        v.ssl_cn = std::string(h->ssl.cn);
      }
      std::lock_guard<std::mutex> g(m);
      seen.push_back(std::move(v));
    } else if (auto* h = std::get_if<smtpwire::hello_event>(&e)) {
      std::lock_guard<std::mutex> g(m);
      if (!seen.empty()) seen.back().helo = std::string(h->domain);
    }
    if (s.awaiting_decision()) REQUIRE(s.accept() == errc::ok);
  }

  std::size_t seen_count() {
    std::lock_guard<std::mutex> g(m);
    return seen.size();
  }
  proxied_seen last_seen() {
    std::lock_guard<std::mutex> g(m);
    REQUIRE(!seen.empty());
    return seen.back();
  }
};

std::string v1_header(const char* src, const char* dst, int sport, int dport) {
  return "PROXY TCP4 " + std::string(src) + " " + dst + " " + std::to_string(sport) + " " +
         std::to_string(dport) + "\r\n";
}

std::string v2_header_with_tlvs() {
  namespace w = smtpwire::wire;
  w::proxy_header h;
  h.command = w::proxy_command::proxy;
  h.family = w::proxy_family::inet6;
  h.transport = w::proxy_transport::stream;
  std::uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42};
  std::uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  h.source = w::proxy_address::ipv6(src, 40000);
  h.destination = w::proxy_address::ipv6(dst, 465);
  h.authority = "mx.example.net";
  h.unique_id = "conn-7";
  h.ssl.present = true;
  h.ssl.client = w::proxy_ssl_client::ssl | w::proxy_ssl_client::cert_conn;
  h.ssl.verify = 0;
  h.ssl.version = "TLSv1.3";
  h.ssl.cipher = "TLS_AES_256_GCM_SHA384";
  h.ssl.cn = "client.example.org";
  std::string out;
  REQUIRE(w::write_proxy_v2(out, h, true) == errc::ok);
  return out;
}

}  // namespace

TEST_CASE("server loop PROXY: a v1 header names the client; SMTP follows unchanged",
          "[posix][loop][proxy]") {
  proxy_server srv({});
  raw_client c(srv.address);
  REQUIRE(c.send_all(v1_header("192.0.2.1", "198.51.100.2", 51234, 25)));
  REQUIRE(c.read_until("220 "));
  REQUIRE(c.send_all("EHLO client.example\r\nQUIT\r\n"));
  REQUIRE(c.read_until("221 "));
  const proxied_seen v = srv.last_seen();
  CHECK(v.peer == "192.0.2.1:51234");
  CHECK(v.transport_peer.rfind("127.0.0.1:", 0) == 0);
  CHECK(v.has_header);
  CHECK(v.version == 1);
  CHECK(v.destination == "198.51.100.2:25");
  CHECK(v.helo == "client.example");
  std::lock_guard<std::mutex> g(srv.m);
  REQUIRE(srv.factory_peers.size() == 1);
  CHECK(srv.factory_peers[0] == "192.0.2.1:51234");  // the factory sees the real client
}

TEST_CASE("server loop PROXY: v2 with TLVs (SSL, authority, unique id, CRC32C)",
          "[posix][loop][proxy]") {
  proxy_server srv({});
  raw_client c(srv.address);
  REQUIRE(c.send_all(v2_header_with_tlvs()));
  REQUIRE(c.read_until("220 "));
  REQUIRE(c.send_all("QUIT\r\n"));
  REQUIRE(c.read_until("221 "));
  const proxied_seen v = srv.last_seen();
  CHECK(v.peer == "[2001:db8::42]:40000");
  CHECK(v.version == 2);
  CHECK(v.source == "IPv6:2001:db8::42:40000");
  CHECK(v.authority == "mx.example.net");
  CHECK(v.unique_id == "conn-7");
  CHECK(v.ssl);
  CHECK(v.ssl_client == 3);
  CHECK(v.ssl_version == "TLSv1.3");
  CHECK(v.ssl_cipher == "TLS_AES_256_GCM_SHA384");
  CHECK(v.ssl_cn == "client.example.org");
}

TEST_CASE("server loop PROXY: a header split over segments, nothing written before it ends",
          "[posix][loop][proxy]") {
  proxy_server srv({});
  for (const std::string& hdr :
       {v1_header("203.0.113.9", "127.0.0.1", 1, 25), v2_header_with_tlvs()}) {
    const std::size_t before = srv.seen_count();
    raw_client c(srv.address);
    for (std::size_t i = 0; i < hdr.size(); i += 7) {
      REQUIRE(c.send_all(std::string_view(hdr).substr(i, 7)));
      std::this_thread::sleep_for(3ms);  // separate segments
      if (i + 7 < hdr.size()) CHECK(!c.read_until("220", 1ms));
    }
    CHECK(c.received.empty());  // no greeting before the header is complete
    REQUIRE(c.read_until("220 "));
    REQUIRE(c.send_all("QUIT\r\n"));
    REQUIRE(c.read_until("221 "));
    REQUIRE(srv.seen_count() == before + 1);
    CHECK(srv.last_seen().has_header);
  }
  CHECK(srv.last_seen().peer == "[2001:db8::42]:40000");
}

TEST_CASE("server loop PROXY: SMTP octets in the header's segment reach the engine",
          "[posix][loop][proxy]") {
  proxy_server srv({});
  for (const std::string& hdr :
       {v1_header("192.0.2.7", "192.0.2.8", 2525, 25), v2_header_with_tlvs()}) {
    raw_client c(srv.address);
    REQUIRE(c.send_all(hdr + "EHLO same.segment\r\nNOOP\r\nQUIT\r\n"));
    REQUIRE(c.read_until("221 "));
    // One greeting, then EHLO, NOOP and QUIT answered in order: no octet lost or doubled.
    const std::size_t g = c.received.find("220 "), e = c.received.find("250-"),
                      q = c.received.find("221 ");
    CHECK(g == 0);
    CHECK(e != std::string::npos);
    CHECK(e < q);
    CHECK(c.received.find("500") == std::string::npos);
    CHECK(srv.last_seen().helo == "same.segment");
  }
}

TEST_CASE("server loop PROXY: a connection without a required header is refused",
          "[posix][loop][proxy]") {
  SECTION("SMTP instead of a header: 421, close, no session") {
    proxy_server srv({});
    raw_client c(srv.address);
    REQUIRE(c.send_all("EHLO direct.client\r\n"));
    CHECK(c.wait_eof());
    CHECK(c.received == "421 4.3.0 PROXY protocol header required\r\n");
    REQUIRE(eventually([&] { return srv.loop->counters().refused == 1; }));
    CHECK(srv.loop->counters().accepted == 0);
    std::lock_guard<std::mutex> g(srv.m);
    CHECK(srv.seen.empty());
    CHECK(srv.factory_peers.empty());
    CHECK(srv.closes == 0);  // the application never saw it
    REQUIRE(srv.refusals.size() == 1);
    CHECK(srv.refusals[0].second == errc::proxy_missing);
  }
  SECTION("silence: refused at the header deadline, silently when asked") {
    posix::proxy_listen_options po;
    po.header_timeout = 200ms;
    po.reply_on_refusal = false;
    proxy_server srv(po);
    raw_client c(srv.address);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(c.wait_eof(3000ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 190ms);
    CHECK(c.received.empty());
    std::lock_guard<std::mutex> g(srv.m);
    REQUIRE(srv.refusals.size() == 1);
    CHECK(srv.refusals[0].second == errc::proxy_timeout);
  }
  SECTION("a header cut off by the deadline") {
    posix::proxy_listen_options po;
    po.header_timeout = 200ms;
    proxy_server srv(po);
    raw_client c(srv.address);
    REQUIRE(c.send_all("PROXY TCP4 192.0.2.1 "));
    CHECK(c.wait_eof(3000ms));
    CHECK(c.received.rfind("421 4.4.2 ", 0) == 0);
  }
  SECTION("an invalid v1 header") {
    proxy_server srv({});
    raw_client c(srv.address);
    REQUIRE(c.send_all("PROXY TCP4 192.0.2.01 192.0.2.2 1 25\r\nQUIT\r\n"));
    CHECK(c.wait_eof());
    CHECK(c.received == "421 4.3.0 Invalid PROXY protocol v1 header\r\n");
    std::lock_guard<std::mutex> g(srv.m);
    CHECK(srv.factory_peers.empty());
  }
}

TEST_CASE("server loop PROXY: optional mode takes a direct client at its TCP address",
          "[posix][loop][proxy]") {
  posix::proxy_listen_options po;
  po.reader.required = false;
  po.header_timeout = 150ms;
  proxy_server srv(po);
  {
    raw_client c(srv.address);  // speaks first: no signature, taken at once
    REQUIRE(c.send_all("EHLO direct\r\nQUIT\r\n"));
    REQUIRE(c.read_until("221 "));
    const proxied_seen v = srv.last_seen();
    CHECK(!v.has_header);
    CHECK(v.peer == v.transport_peer);
    CHECK(v.helo == "direct");
  }
  {
    raw_client c(srv.address);  // waits for the greeting: greeted after the deadline
    REQUIRE(c.read_until("220 ", 3000ms));
    REQUIRE(c.send_all("QUIT\r\n"));
    REQUIRE(c.read_until("221 "));
  }
  {
    raw_client c(srv.address);  // a partial v2 signature that is SMTP after all (replayed)
    REQUIRE(c.send_all("\r\nNOOP\r\nQUIT\r\n"));
    REQUIRE(c.read_until("221 "));
    CHECK(c.received.find("250 ") != std::string::npos);
  }
}

TEST_CASE("server loop PROXY: a peer outside allowed_peers is refused before any header",
          "[posix][loop][proxy]") {
  posix::proxy_listen_options po;
  posix::socket_address balancer;
  {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, "192.0.2.250", &in.sin_addr) == 1);
    balancer = posix::socket_address::from(reinterpret_cast<sockaddr*>(&in), sizeof in);
  }
  po.allowed_peers.push_back(balancer);
  {
    proxy_server srv(po);
    raw_client c(srv.address);
    REQUIRE(c.send_all(v1_header("192.0.2.1", "192.0.2.2", 1000, 25)));
    CHECK(c.wait_eof());
    CHECK(c.received == "421 4.3.0 Connection not accepted from this address\r\n");
    std::lock_guard<std::mutex> g(srv.m);
    CHECK(srv.factory_peers.empty());
    REQUIRE(srv.refusals.size() == 1);
    CHECK(srv.refusals[0].first == "127.0.0.1");
    CHECK(srv.refusals[0].second == errc::proxy_peer_untrusted);
  }
  {
    // 127.0.0.1 allowed (as an IPv4-mapped IPv6 address, which compares as IPv4).
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    REQUIRE(::inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr) == 1);
    po.allowed_peers.push_back(
        posix::socket_address::from(reinterpret_cast<sockaddr*>(&in6), sizeof in6));
    proxy_server srv(po);
    raw_client c(srv.address);
    REQUIRE(c.send_all(v1_header("192.0.2.1", "192.0.2.2", 1000, 25) + "QUIT\r\n"));
    REQUIRE(c.read_until("221 "));
    CHECK(srv.last_seen().peer == "192.0.2.1:1000");
  }
}
