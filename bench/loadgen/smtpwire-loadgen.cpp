// smtpwire-loadgen — a load generator for the end-to-end benchmarks
// (scripts/bench): C workers, each running sessions one after the other
// until S sessions are done in total, each session delivering M messages
// (MAIL, RCPT, DATA) and then QUIT, in clear or over STARTTLS with the
// server's certificate verified against a CA file. Postfix's smtp-source has
// no TLS; this gives every TLS-capable peer the same client.
//
//   smtpwire-loadgen --server HOST:PORT [--tls none|required] [--ca-file FILE]
//                    [--tls-name NAME] [--concurrency C] [--sessions S]
//                    [--messages M] [--size BYTES] [--no-resumption]
//                    [--timeout SECONDS]
//
// Prints one line of key=value pairs on stdout: sessions, messages, failed,
// seconds, sessions_per_s, messages_per_s, cpu_s (this process: user+system).
// Exit status: 0 when every message was accepted, 1 when any session or
// message failed, 64 for a usage error.
//
// Built from the client engine (smtpwire::client), the OpenSSL glue
// (tls_session) and the POSIX blocking driver (run_client), one thread per
// worker; every protocol decision is the engine's.
#include <smtpwire/client.hpp>
#include <smtpwire/error.hpp>
#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/openssl/context.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/posix/address.hpp>
#include <smtpwire/posix/client_driver.hpp>

#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "common/session.hpp"

namespace {

namespace ev = smtpwire::client_events;
using smtpwire::errc;

constexpr const char* usage_text =
    "usage: smtpwire-loadgen --server HOST:PORT [--tls none|required] [--ca-file FILE]\n"
    "                        [--tls-name NAME] [--concurrency C] [--sessions S]\n"
    "                        [--messages M] [--size BYTES] [--no-resumption]\n"
    "                        [--timeout SECONDS]\n"
    "C workers (default 1) run S sessions in total (default C), each delivering M\n"
    "messages (default 1) of BYTES octets (default 4096) and then QUIT.\n";

struct options {
  std::string server, tls = "none", ca_file, tls_name;
  unsigned long concurrency = 1, sessions = 0, messages = 1, size = 4096, timeout = 120;
  bool resumption = true;
};

bool number(const char* v, unsigned long& out, unsigned long min) {
  char* end = nullptr;
  const unsigned long n = std::strtoul(v, &end, 10);
  if (end == v || *end != '\0' || n < min) return false;
  out = n;
  return true;
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string n = argv[i];
    if (n == "--no-resumption") {
      o.resumption = false;
      continue;
    }
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    bool ok = true;
    if (n == "--server")
      o.server = v;
    else if (n == "--tls")
      o.tls = v;
    else if (n == "--ca-file")
      o.ca_file = v;
    else if (n == "--tls-name")
      o.tls_name = v;
    else if (n == "--concurrency")
      ok = number(v, o.concurrency, 1) && o.concurrency <= 10000;
    else if (n == "--sessions")
      ok = number(v, o.sessions, 1);
    else if (n == "--messages")
      ok = number(v, o.messages, 1);
    else if (n == "--size")
      ok = number(v, o.size, 64);
    else if (n == "--timeout")
      ok = number(v, o.timeout, 1);
    else
      ok = false;
    if (!ok) return false;
  }
  if (o.sessions == 0) o.sessions = o.concurrency;
  return !o.server.empty() && (o.tls == "none" || o.tls == "required");
}

// A message of about `size` octets: headers, then 76-octet lines, some
// starting with a dot so that the dot-stuffing path is exercised.
std::string make_message(std::size_t size) {
  std::string m =
      "From: <load@example.org>\r\nTo: <sink@example.org>\r\nSubject: smtpwire-loadgen\r\n"
      "Message-ID: <loadgen@example.org>\r\n\r\n";
  std::size_t line = 0;
  while (m.size() + 78 <= size) {
    std::string l(76, static_cast<char>('a' + line % 26));
    if (line % 16 == 15) l[0] = '.';
    m += l;
    m += "\r\n";
    ++line;
  }
  while (m.size() + 2 < size)
    m += 'z';
  m += "\r\n";
  return m;
}

// One session's application: M messages, then QUIT.
class worker_app {
 public:
  worker_app(const std::string& message, std::size_t messages, const smtpwire::envelope& env)
      : message_(message), messages_(messages), env_(env) {}

  std::size_t accepted() const noexcept { return accepted_; }
  bool failed() const noexcept { return failed_; }

  template <class Session>
  bool on_event(Session& s, smtpwire::client_event& e) {
    smtpwire::client& c = s.engine();
    if (std::holds_alternative<std::monostate>(e)) {
      push(c);
    } else if (std::holds_alternative<ev::ready>(e)) {
      proceed(c);
    } else if (std::holds_alternative<ev::send_content>(e)) {
      in_content_ = true;
      pos_ = 0;
      push(c);
    } else if (std::holds_alternative<ev::message_accepted>(e)) {
      ++accepted_;
      proceed(c);
    } else if (std::holds_alternative<ev::message_rejected>(e)) {
      failed_ = true;
      proceed(c);
    } else if (auto* er = std::get_if<ev::error>(&e)) {
      if (!failed_ && report_.fetch_add(1) < 3)
        std::fprintf(stderr, "smtpwire-loadgen: session error: %s\n",
                     std::string(smtpwire::to_string(er->code)).c_str());
      failed_ = true;
    }
    return true;
  }

 private:
  void proceed(smtpwire::client& c) {
    if (c.state() != smtpwire::client_state::ready || quit_sent_) return;
    if (failed_ || sent_ == messages_) {
      quit_sent_ = true;
      (void)c.quit();
      return;
    }
    ++sent_;
    if (c.send_mail(env_) != errc::ok) {
      failed_ = true;
      quit_sent_ = true;
      (void)c.quit();
    }
  }
  void push(smtpwire::client& c) {
    if (!in_content_) return;
    while (pos_ < message_.size()) {
      auto r = c.send_content(std::string_view(message_).substr(pos_));
      if (!r) {
        in_content_ = false;
        return;
      }
      if (*r == 0) return;  // output full: the driver drains it and calls again
      pos_ += *r;
    }
    if (c.end_content() == errc::ok) in_content_ = false;
  }

  static inline std::atomic<int> report_{0};  // first few errors only, not one per session
  const std::string& message_;
  std::size_t messages_;
  const smtpwire::envelope& env_;
  std::size_t sent_ = 0, accepted_ = 0, pos_ = 0;
  bool in_content_ = false, quit_sent_ = false, failed_ = false;
};

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  options o;
  if (!parse(argc, argv, o)) {
    std::fputs(usage_text, stderr);
    return 64;
  }
  smtpwire::posix::host_port hp;
  if (smtpwire::posix::parse_host_port(o.server, "25", hp)) {
    std::fprintf(stderr, "smtpwire-loadgen: --server '%s' is not HOST:PORT\n", o.server.c_str());
    return 64;
  }

  // One TLS context per worker: OpenSSL 3 serialises much of a handshake on
  // locks inside a shared SSL_CTX, which would make the load generator, not
  // the server, the bottleneck.
  smtpwire::openssl::peer_identity peer;
  peer.host = o.tls_name.empty() ? hp.host : o.tls_name;
  smtpwire::openssl::client_tls_options to;
  to.ca_file = o.ca_file;
  to.verify = smtpwire::openssl::verify_mode::required;
  to.session_resumption = o.resumption;
  const bool tls = o.tls == "required";
  auto make_context = [&]() -> std::unique_ptr<smtpwire::openssl::client_context> {
    std::string text;
    auto c = smtpwire::openssl::client_context::create(to, &text);
    if (!c) {
      std::fprintf(stderr, "smtpwire-loadgen: TLS setup failed: %s\n",
                   text.empty() ? c.error().message().c_str() : text.c_str());
      return nullptr;
    }
    return std::unique_ptr<smtpwire::openssl::client_context>(
        new smtpwire::openssl::client_context(std::move(*c)));
  };
  if (tls && !make_context()) return 64;  // a bad --ca-file is a usage error, before any thread

  const std::string message = make_message(o.size);
  const std::string_view rcpt = "sink@example.org";
  smtpwire::envelope env;
  env.from = "load@example.org";
  env.recipients = &rcpt;
  env.recipient_count = 1;
  env.size = message.size();

  smtpwire::client_config cfg;
  cfg.local_name = "loadgen.example.org";
  cfg.tls = tls ? smtpwire::tls_policy::required : smtpwire::tls_policy::none;

  std::atomic<unsigned long> next{0}, sessions_ok{0}, sessions_failed{0}, messages_ok{0};
  smtpwire::posix::client_options drv;
  drv.idle_limit = std::chrono::seconds(o.timeout);
  drv.read_buffer = 65536;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout);

  auto work = [&]() {
    using session_type = smtpwire_tools::either_session<smtpwire::client>;
    std::unique_ptr<smtpwire::openssl::client_context> ctx;
    if (tls) ctx = make_context();
    while (next.fetch_add(1) < o.sessions) {
      if (std::chrono::steady_clock::now() > deadline) {
        sessions_failed.fetch_add(1);
        continue;
      }
      std::unique_ptr<session_type> s;
      if (tls) {
        if (!ctx) {
          sessions_failed.fetch_add(1);
          continue;
        }
        auto ch = smtpwire::openssl::channel::client(*ctx, peer);
        if (!ch) {
          sessions_failed.fetch_add(1);
          continue;
        }
        s.reset(new session_type(cfg, std::move(*ch)));
      } else {
        s.reset(new session_type(cfg));
      }
      smtpwire::posix::connect_result conn = smtpwire::posix::connect_tcp(hp.host, hp.port);
      if (conn.error) {
        if (sessions_failed.fetch_add(1) == 0)
          std::fprintf(stderr, "smtpwire-loadgen: cannot connect to %s port %s: %s\n",
                       hp.host.c_str(), hp.port.c_str(), conn.error.message().c_str());
        continue;
      }
      worker_app app(message, o.messages, env);
      const smtpwire::posix::client_run_result r = smtpwire::posix::run_client(
          conn.fd.get(), *s,
          [&](auto& sess, smtpwire::client_event& e) { return app.on_event(sess, e); }, drv);
      messages_ok.fetch_add(app.accepted());
      if (r.error || app.failed() || app.accepted() != o.messages)
        sessions_failed.fetch_add(1);
      else
        sessions_ok.fetch_add(1);
    }
  };

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  threads.reserve(o.concurrency);
  for (unsigned long i = 0; i < o.concurrency; ++i)
    threads.emplace_back(work);
  for (std::thread& t : threads)
    t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::printf(
      "sessions=%lu messages=%lu failed=%lu seconds=%.6f sessions_per_s=%.2f "
      "messages_per_s=%.2f cpu_s=%.4f\n",
      sessions_ok.load(), messages_ok.load(), sessions_failed.load(), secs,
      static_cast<double>(sessions_ok.load()) / secs,
      static_cast<double>(messages_ok.load()) / secs, cpu_seconds());
  return sessions_failed.load() == 0 ? 0 : 1;
}
