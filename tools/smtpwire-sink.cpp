// smtpwire-sink — receive mail like Postfix's smtp-sink, but into a real,
// safe store: a Maildir (tmp/ then rename into new/, unique names, fsync),
// an mboxrd file (locked), or nowhere (--discard). STARTTLS (and implicit
// TLS listeners), AUTH PLAIN/LOGIN against a user:password file (offered
// only over TLS), a Received header naming the TLS version and cipher at
// the top of each stored message.
//
//   smtpwire-sink --listen ADDR:PORT [--listen ...] [--implicit-tls-listen ADDR:PORT]
//                 [--hostname NAME] [--tls-cert FILE --tls-key FILE] [--require-tls]
//                 [--auth-file FILE] [--require-auth]
//                 [--maildir DIR | --mbox FILE | --discard]
//                 [--max-size BYTES] [--max-recipients N] [--lmtp] [--threads N]
//                 [--proxy-protocol[=required|optional] [--proxy-from ADDR[,ADDR...]]]
//                 [--xforward-from ADDR[,ADDR...]]
//
// Behind a load balancer (HAProxy's send-proxy / send-proxy-v2) the PROXY
// protocol header names the real client: it goes into the Received header
// and the logs, and the PP2_TYPE_SSL facts (TLS between the client and the
// balancer) into the Received header's TLS comment when the session itself
// runs no TLS. Use --proxy-protocol only on a listener that the balancer
// alone can reach, and name the balancers with --proxy-from.
//
// --xforward-from offers Postfix's XFORWARD (XFORWARD_README) to clients
// from those addresses only (a content filter or relay that passes on its
// own client's facts, e.g. Postfix's smtp_send_xforward_command=yes): the
// forwarded NAME, ADDR and HELO then go into the Received header, and the
// forwarded client into the message log line.
//
// Logs one line per listener at start, one per message and one per
// session on stderr; SIGTERM/SIGINT stop it gracefully (no new
// connections, open sessions get 10 s) and print the totals. Exit status:
// 0 after a signal; 64 for an invalid command line or configuration file;
// 69 when a resource is unavailable (certificate or key not loadable, auth
// file or store not readable/creatable, address in use).
//
// Built from the engine (smtpwire::server), the OpenSSL glue (tls_session)
// and the POSIX server loop; every protocol decision is the engine's.
#include <smtpwire/error.hpp>
#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/openssl/context.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/posix/address.hpp>
#include <smtpwire/posix/server_loop.hpp>
#include <smtpwire/server.hpp>
#include <smtpwire/wire/xclient.hpp>
#include <smtpwire/wire/xtext.hpp>

#include <arpa/inet.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "common/session.hpp"
#include "common/store.hpp"
#include "common/util.hpp"

namespace {

enum exit_status : int { exit_ok = 0, exit_usage = 64, exit_unavailable = 69 };

constexpr const char* usage_text =
    "usage: smtpwire-sink --listen ADDR:PORT [--listen ...] [--implicit-tls-listen ADDR:PORT]\n"
    "                     [--hostname NAME] [--tls-cert FILE --tls-key FILE] [--require-tls]\n"
    "                     [--auth-file FILE] [--require-auth]\n"
    "                     [--maildir DIR | --mbox FILE | --discard]\n"
    "                     [--max-size BYTES] [--max-recipients N] [--lmtp] [--threads N]\n"
    "                     [--proxy-protocol[=required|optional] [--proxy-from ADDR[,ADDR...]]]\n"
    "                     [--xforward-from ADDR[,ADDR...]]\n"
    "PORT 0 picks a free port (printed in the 'listening on' line). --auth-file holds\n"
    "user:password lines; AUTH PLAIN/LOGIN is offered only after STARTTLS.\n"
    "--proxy-protocol reads a PROXY v1/v2 header (HAProxy send-proxy[-v2]) on every\n"
    "connection (required by default; optional also takes direct clients after 5 s);\n"
    "the client it names goes into Received and the logs. Only for listeners the load\n"
    "balancer alone can reach; --proxy-from refuses connections from other addresses.\n"
    "--xforward-from offers XFORWARD to those client addresses only; the forwarded\n"
    "client then goes into Received and the log.\n"
    "Exit: 0 after SIGTERM/SIGINT, 64 invalid command line or auth file, 69 resource\n"
    "unavailable (certificate, files, address in use).\n";

using session_type = smtpwire_tools::either_session<smtpwire::server>;
using smtpwire::errc;

struct options {
  std::vector<std::string> listen, implicit_listen;
  std::string hostname, tls_cert, tls_key, auth_file, maildir, mbox;
  bool require_tls = false, require_auth = false, discard = false, lmtp = false;
  std::string proxy_mode;  // "", "required" or "optional"
  std::vector<smtpwire::posix::socket_address> proxy_from, xforward_from;
  std::uint64_t max_size = 0, max_recipients = 0, threads = 1;
};

// A numeric IPv4 or IPv6 address (no name lookup: a balancer is named by address).
bool numeric_address(const std::string& text, smtpwire::posix::socket_address& out) {
  sockaddr_in in{};
  sockaddr_in6 in6{};
  if (::inet_pton(AF_INET, text.c_str(), &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
    out = smtpwire::posix::socket_address::from(reinterpret_cast<sockaddr*>(&in), sizeof in);
    return true;
  }
  if (::inet_pton(AF_INET6, text.c_str(), &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    out = smtpwire::posix::socket_address::from(reinterpret_cast<sockaddr*>(&in6), sizeof in6);
    return true;
  }
  return false;
}

bool parse(int argc, char** argv, options& o, bool& help) {
  smtpwire_tools::option_scanner sc(argc, argv);
  auto need = [&](std::string& out) {
    if (sc.value(out)) return true;
    std::fprintf(stderr, "smtpwire-sink: %s needs a value\n", sc.name().c_str());
    return false;
  };
  auto number = [&](std::uint64_t& out, std::uint64_t min) {
    std::string v;
    if (!need(v)) return false;
    if (smtpwire_tools::parse_size(v, out) && out >= min) return true;
    std::fprintf(stderr, "smtpwire-sink: %s: '%s' is not a number >= %llu\n", sc.name().c_str(),
                 v.c_str(), static_cast<unsigned long long>(min));
    return false;
  };
  while (sc.next()) {
    const std::string& n = sc.name();
    std::string v;
    bool flag = false;
    if (n == "--listen") {
      if (!need(v)) return false;
      o.listen.push_back(v);
    } else if (n == "--implicit-tls-listen") {
      if (!need(v)) return false;
      o.implicit_listen.push_back(v);
    } else if (n == "--hostname") {
      if (!need(o.hostname)) return false;
    } else if (n == "--tls-cert") {
      if (!need(o.tls_cert)) return false;
    } else if (n == "--tls-key") {
      if (!need(o.tls_key)) return false;
    } else if (n == "--auth-file") {
      if (!need(o.auth_file)) return false;
    } else if (n == "--maildir") {
      if (!need(o.maildir)) return false;
    } else if (n == "--mbox") {
      if (!need(o.mbox)) return false;
    } else if (n == "--max-size") {
      if (!number(o.max_size, 65536)) return false;  // RFC 5321 §4.5.3.1.7: at least 64k
    } else if (n == "--max-recipients") {
      if (!number(o.max_recipients, 1)) return false;
    } else if (n == "--threads") {
      if (!number(o.threads, 1)) return false;
      if (o.threads > 256) {
        std::fprintf(stderr, "smtpwire-sink: --threads: at most 256\n");
        return false;
      }
    } else if (n == "--proxy-protocol") {
      o.proxy_mode = "required";
      if (sc.has_inline_value()) {
        (void)sc.value(o.proxy_mode);
        if (o.proxy_mode != "required" && o.proxy_mode != "optional") {
          std::fprintf(stderr,
                       "smtpwire-sink: --proxy-protocol=%s: expected required or optional\n",
                       o.proxy_mode.c_str());
          return false;
        }
      }
    } else if (n == "--proxy-from" || n == "--xforward-from") {
      if (!need(v)) return false;
      auto& list = n == "--proxy-from" ? o.proxy_from : o.xforward_from;
      std::size_t pos = 0;
      for (;;) {
        const std::size_t comma = v.find(',', pos);
        std::string a = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
        smtpwire::posix::socket_address sa;
        if (!numeric_address(a, sa)) {
          std::fprintf(stderr, "smtpwire-sink: %s: '%s' is not an IP address\n", n.c_str(),
                       a.c_str());
          return false;
        }
        list.push_back(sa);
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (n == "--require-tls") {
      o.require_tls = flag = true;
    } else if (n == "--require-auth") {
      o.require_auth = flag = true;
    } else if (n == "--discard") {
      o.discard = flag = true;
    } else if (n == "--lmtp") {
      o.lmtp = flag = true;
    } else if (n == "-h" || n == "--help") {
      help = flag = true;
    } else {
      std::fprintf(stderr, "smtpwire-sink: unknown argument '%s'\n", n.c_str());
      return false;
    }
    if (flag && sc.has_inline_value()) {
      std::fprintf(stderr, "smtpwire-sink: %s takes no value\n", n.c_str());
      return false;
    }
  }
  if (help) return true;
  auto fail = [](const char* why) {
    std::fprintf(stderr, "smtpwire-sink: %s\n", why);
    return false;
  };
  if (o.listen.empty() && o.implicit_listen.empty())
    return fail("at least one --listen or --implicit-tls-listen is required");
  if (o.tls_cert.empty() != o.tls_key.empty()) return fail("--tls-cert and --tls-key go together");
  const bool tls = !o.tls_cert.empty();
  if (o.require_tls && !tls) return fail("--require-tls needs --tls-cert and --tls-key");
  if (!o.implicit_listen.empty() && !tls)
    return fail("--implicit-tls-listen needs --tls-cert and --tls-key");
  if (!o.auth_file.empty() && !tls)
    return fail("--auth-file needs --tls-cert and --tls-key (AUTH is offered only over TLS)");
  if (o.require_auth && o.auth_file.empty()) return fail("--require-auth needs --auth-file");
  if (!o.proxy_from.empty() && o.proxy_mode.empty())
    return fail("--proxy-from needs --proxy-protocol");
  if ((o.maildir.empty() ? 0 : 1) + (o.mbox.empty() ? 0 : 1) + (o.discard ? 1 : 0) != 1)
    return fail("exactly one of --maildir, --mbox and --discard is required");
  return true;
}

// user:password lines; empty lines and lines starting with '#' are skipped.
int load_auth(const std::string& path, std::map<std::string, std::string>& users) {
  std::string text, why;
  if (!smtpwire_tools::read_file(path, text, why)) {
    std::fprintf(stderr, "smtpwire-sink: cannot read --auth-file %s: %s\n", path.c_str(),
                 why.c_str());
    return exit_unavailable;
  }
  std::size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    std::size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    std::string line = text.substr(pos, e - pos);
    pos = e + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::fprintf(stderr, "smtpwire-sink: %s line %zu: expected user:password\n", path.c_str(),
                   line_no);
      return exit_usage;
    }
    users[line.substr(0, colon)] = line.substr(colon + 1);
  }
  if (users.empty()) {
    std::fprintf(stderr, "smtpwire-sink: %s holds no user:password line\n", path.c_str());
    return exit_usage;
  }
  return exit_ok;
}

// Totals over every session and thread.
struct totals {
  std::atomic<std::uint64_t> sessions{0}, tls_sessions{0}, messages{0}, octets{0}, refused{0},
      failed{0}, auth_ok{0}, auth_failed{0}, numbers{0};
};

void log_line(const std::string& s) {
  std::string l = "smtpwire-sink: " + s + "\n";
  std::fputs(l.c_str(), stderr);  // one call: lines from threads never interleave
}

// Per-connection state (the loop default-constructs it).
struct conn_state {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::string helo, user, from, end = "-";
  std::vector<std::string> rcpts;
  std::unique_ptr<smtpwire_tools::message_writer> msg;
  std::uint64_t messages = 0, rejected_commands = 0;
  unsigned auth_failures = 0;
  std::string tls;                 // "TLSv1.3/TLS_AES_256_GCM_SHA384" once up
  smtpwire::tls_info proxied_tls;  // from the PROXY header's PP2_TYPE_SSL (views into it)
  bool has_proxied_tls = false;
  // XFORWARD attributes (decoded) for the next transaction, allocated at
  // the first XFORWARD (an idle session holds none), and whether the
  // current transaction uses them (mail_event::xforwarded).
  struct xforward_attributes {
    std::string value[smtpwire::wire::xattr_count];
    bool set[smtpwire::wire::xattr_count] = {};
  };
  std::unique_ptr<xforward_attributes> xf;
  bool xforwarded = false;
  std::uint64_t number = 0;  // the session's number in the logs (1, 2, …), set at first use
};

using loop_type = smtpwire::posix::server_loop<session_type, conn_state>;

// What every loop (thread) shares.
struct sink {
  options o;
  smtpwire::server_config cfg;
  std::unique_ptr<smtpwire::openssl::server_context> tls;
  std::map<std::string, std::string> users;
  smtpwire_tools::message_store store;
  totals t;

  std::unique_ptr<session_type> make(bool implicit, const smtpwire::posix::socket_address& peer) {
    smtpwire::server_config c = cfg;
    c.implicit_tls = implicit;
    for (const auto& a : o.xforward_from)
      if (smtpwire::posix::same_host(a, peer)) c.xclient_trusted = true;
    if (!tls) return std::unique_ptr<session_type>(new session_type(c));
    auto ch = smtpwire::openssl::channel::server(*tls);
    if (!ch) return nullptr;  // out of memory: the connection is refused
    return std::unique_ptr<session_type>(new session_type(c, std::move(*ch)));
  }

  static std::string address_literal(const smtpwire::posix::socket_address& a) {
    return a.family() == AF_INET6 ? "IPv6:" + a.host() : a.host();
  }

  void on_event(loop_type::connection& c, smtpwire::server_event& e) {
    session_type& s = c.session();
    smtpwire::server& eng = s.engine();
    conn_state& st = c.context();
    if (st.number == 0) st.number = t.numbers.fetch_add(1, std::memory_order_relaxed) + 1;
    if (st.tls.empty() && s.tls() != nullptr) {
      st.tls = std::string(s.tls()->version) + "/" + std::string(s.tls()->cipher);
      t.tls_sessions.fetch_add(1, std::memory_order_relaxed);
    }
    if (std::holds_alternative<smtpwire::connect_event>(e)) {
      t.sessions.fetch_add(1, std::memory_order_relaxed);
      // TLS the client ran with the load balancer (PP2_TYPE_SSL, client bit
      // PP2_CLIENT_SSL): the header lives as long as the connection.
      const smtpwire::wire::proxy_header* ph = c.proxy();
      if (ph != nullptr && ph->ssl.present &&
          (ph->ssl.client & smtpwire::wire::proxy_ssl_client::ssl) != 0 &&
          !ph->ssl.version.empty()) {
        st.proxied_tls.version = ph->ssl.version;
        st.proxied_tls.cipher = ph->ssl.cipher;
        st.proxied_tls.peer_verified =
            ph->ssl.verify == 0 && (ph->ssl.client & smtpwire::wire::proxy_ssl_client::cert_conn);
        st.proxied_tls.peer_name = ph->ssl.cn;
        st.has_proxied_tls = true;
      }
      (void)eng.accept();
    } else if (auto* h = std::get_if<smtpwire::hello_event>(&e)) {
      st.helo = std::string(h->domain);
      (void)eng.accept();
    } else if (auto* a = std::get_if<smtpwire::auth_event>(&e)) {
      const auto it = users.find(std::string(a->authcid));
      const bool known = it != users.end();
      // Compare even for an unknown user, so the time does not tell.
      const bool match =
          smtpwire_tools::secret_equal(known ? it->second : std::string(), a->secret) && known &&
          !a->verified;
      const bool authz_ok = a->authzid.empty() || a->authzid == a->authcid;
      if (match && authz_ok) {
        st.user = std::string(a->authcid);
        t.auth_ok.fetch_add(1, std::memory_order_relaxed);
        (void)eng.accept();
      } else {
        ++st.auth_failures;
        t.auth_failed.fetch_add(1, std::memory_order_relaxed);
        (void)eng.reject();
      }
    } else if (auto* xf = std::get_if<smtpwire::xforward_event>(&e)) {
      take_xforward(eng, st, *xf);
    } else if (auto* m = std::get_if<smtpwire::mail_event>(&e)) {
      st.msg.reset();
      st.rcpts.clear();
      st.xforwarded = m->xforwarded;
      const auto& p = m->reverse_path;
      st.from = p.null ? "<>"
                       : "<" + std::string(p.address.local_part) +
                             (p.address.domain.empty() ? "" : "@") + std::string(p.address.domain) +
                             ">";
      (void)eng.accept();
    } else if (auto* r = std::get_if<smtpwire::rcpt_event>(&e)) {
      const auto& p = r->forward_path;
      st.rcpts.push_back("<" + std::string(p.address.local_part) +
                         (p.address.domain.empty() ? "" : "@") + std::string(p.address.domain) +
                         ">");
      (void)eng.accept();
    } else if (std::holds_alternative<smtpwire::data_start_event>(e)) {
      start_message(c, s, st);
    } else if (auto* ct = std::get_if<smtpwire::content_event>(&e)) {
      if (st.msg) st.msg->write(ct->bytes);
    } else if (auto* d = std::get_if<smtpwire::data_end_event>(&e)) {
      end_message(s, st, *d);
    } else if (std::holds_alternative<smtpwire::verify_event>(e)) {
      (void)eng.accept();  // 252: cannot verify, will accept
    } else if (std::holds_alternative<smtpwire::rejected_event>(e)) {
      ++st.rejected_commands;
    } else if (auto* cl = std::get_if<smtpwire::closed_event>(&e)) {
      st.end = std::string(smtpwire::to_string(cl->reason));
    }
  }

  // XFORWARD_README: the first XFORWARD after a reset starts from nothing
  // known, later ones overwrite what they name; values are xtext.
  static void take_xforward(smtpwire::server& eng, conn_state& st,
                            const smtpwire::xforward_event& x) {
    namespace w = smtpwire::wire;
    std::string decoded[w::xattr_count];
    for (std::size_t i = 0; i < w::xattr_count; ++i) {
      if (x.attributes.kind[i] != w::xvalue_kind::value) continue;
      if (smtpwire::wire::xtext_decode(decoded[i], x.attributes.raw[i]) != errc::ok ||
          smtpwire::detail::has_line_breaking_byte(decoded[i])) {
        smtpwire::server_reply r;
        r.code = 501;
        r.enhanced = "5.5.4";
        r.text = "Bad XFORWARD attribute value";
        (void)eng.reject(r);
        return;
      }
    }
    if (!st.xf) st.xf.reset(new conn_state::xforward_attributes);
    if (x.initial)
      for (std::size_t i = 0; i < w::xattr_count; ++i) {
        st.xf->value[i].clear();
        st.xf->set[i] = false;
      }
    for (std::size_t i = 0; i < w::xattr_count; ++i) {
      if (x.attributes.kind[i] == w::xvalue_kind::absent) continue;
      st.xf->set[i] = x.attributes.kind[i] == w::xvalue_kind::value;
      st.xf->value[i] = st.xf->set[i] ? decoded[i] : std::string();
    }
    (void)eng.accept();
  }

  static const std::string* xf_value(const conn_state& st, smtpwire::wire::xattr a) {
    const auto i = static_cast<std::size_t>(a);
    return st.xforwarded && st.xf && st.xf->set[i] && !st.xf->value[i].empty() ? &st.xf->value[i]
                                                                               : nullptr;
  }

  void start_message(loop_type::connection& c, session_type& s, conn_state& st) {
    smtpwire::server& eng = s.engine();
    st.msg.reset(new smtpwire_tools::message_writer(store));
    std::string why;
    if (!st.msg->begin(st.from, why)) {
      log_line("session " + std::to_string(st.number) + ": cannot store a message: " + why);
      st.msg.reset();
      smtpwire::server_reply r;
      r.code = 452;
      r.enhanced = "4.3.1";
      r.text = "Insufficient system storage";
      (void)eng.temp_fail(r);
      return;
    }
    std::string addr = address_literal(c.peer());
    const std::string date = smtpwire_tools::rfc5322_now();
    smtpwire::received_fields f;
    f.helo = st.helo.empty() ? std::string_view("unknown") : std::string_view(st.helo);
    // An XFORWARD from a trusted relay describes the original client.
    if (const std::string* v = xf_value(st, smtpwire::wire::xattr::addr)) addr = *v;
    if (const std::string* v = xf_value(st, smtpwire::wire::xattr::helo)) f.helo = *v;
    if (const std::string* v = xf_value(st, smtpwire::wire::xattr::name)) f.client_host = *v;
    f.client_address = addr;
    f.by = cfg.host_name;
    f.protocol = eng.protocol();
    f.id = st.msg->id();
    if (st.rcpts.size() == 1) f.for_path = st.rcpts.front();
    f.tls = s.tls() != nullptr ? s.tls() : st.has_proxied_tls ? &st.proxied_tls : nullptr;
    f.date_time = date;
    std::string header;
    if (smtpwire::append_received(header, f) != errc::ok) {
      f.helo = "unknown";  // a HELO argument (or forwarded fact) the header cannot carry
      f.client_host = {};
      f.client_address = address_literal(c.peer());
      f.for_path = {};
      header.clear();
      (void)smtpwire::append_received(header, f);
    }
    st.msg->write(header);
    (void)eng.accept();
  }

  void end_message(session_type& s, conn_state& st, const smtpwire::data_end_event& d) {
    smtpwire::server& eng = s.engine();
    std::string line = "message " + std::to_string(st.number) + "." + std::to_string(++st.messages);
    if (st.msg) line += " id=" + st.msg->id();
    line += " from=" + st.from + " to=";
    for (std::size_t i = 0; i < st.rcpts.size(); ++i)
      line += (i ? "," : "") + st.rcpts[i];
    line += " size=" + std::to_string(d.octets);
    if (st.xforwarded) {
      const std::string* n = xf_value(st, smtpwire::wire::xattr::name);
      const std::string* a = xf_value(st, smtpwire::wire::xattr::addr);
      const std::string* p = xf_value(st, smtpwire::wire::xattr::port);
      line += " xforward=" + (n ? *n : std::string("-")) + "[" + (a ? *a : std::string("-")) +
              "]:" + (p ? *p : std::string("-"));
    }
    line += " tls=" + tls_text(st);
    line += " auth=" + (st.user.empty() ? std::string("-") : st.user);
    if (d.error != errc::ok || !st.msg) {
      line += " failed=" + std::string(smtpwire::to_string(d.error));
      t.failed.fetch_add(1, std::memory_order_relaxed);
      st.msg.reset();
      log_line(line);
      return;  // the engine has replied with the error
    }
    std::string why;
    if (st.msg->commit(why)) {
      const std::string text = "Ok: queued as " + st.msg->id();
      smtpwire::server_reply r;
      r.code = 250;
      r.enhanced = "2.0.0";
      r.text = text;
      while (eng.awaiting_decision() &&
             eng.pending_decision() == smtpwire::server_decision::data_end)
        if (eng.accept(r) != errc::ok) break;
      t.messages.fetch_add(1, std::memory_order_relaxed);
      t.octets.fetch_add(d.octets, std::memory_order_relaxed);
      line += " stored=" + st.msg->stored();
    } else {
      smtpwire::server_reply r;
      r.code = 452;
      r.enhanced = "4.3.1";
      r.text = "Insufficient system storage";
      while (eng.awaiting_decision() &&
             eng.pending_decision() == smtpwire::server_decision::data_end)
        if (eng.temp_fail(r) != errc::ok) break;
      t.refused.fetch_add(1, std::memory_order_relaxed);
      line += " refused=452 (" + why + ")";
    }
    st.msg.reset();
    log_line(line);
  }

  // The session's own TLS, else the TLS the load balancer reported ("(proxy)").
  static std::string tls_text(const conn_state& st) {
    if (!st.tls.empty()) return st.tls;
    if (st.has_proxied_tls)
      return std::string(st.proxied_tls.version) + "/" +
             (st.proxied_tls.cipher.empty() ? std::string("-")
                                            : std::string(st.proxied_tls.cipher)) +
             "(proxy)";
    return "none";
  }

  void on_close(loop_type::connection& c, smtpwire::posix::close_cause why, std::error_code ec) {
    conn_state& st = c.context();
    if (st.number == 0) st.number = t.numbers.fetch_add(1, std::memory_order_relaxed) + 1;
    st.msg.reset();  // a message cut off mid-DATA leaves no file
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - st.start).count();
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.3fs", secs);
    std::string line = "session " + std::to_string(st.number) + " from " + c.peer().to_string();
    if (const smtpwire::wire::proxy_header* ph = c.proxy())
      line += " via " + c.transport_peer().to_string() +
              (ph->version == smtpwire::wire::proxy_version::v1 ? " proxy=v1" : " proxy=v2");
    line += " helo=" + (st.helo.empty() ? std::string("-") : st.helo);
    line += " tls=" + tls_text(st);
    line += " auth=" + (st.user.empty() ? std::string("-") : st.user);
    if (st.auth_failures != 0) line += " auth_failures=" + std::to_string(st.auth_failures);
    line += " messages=" + std::to_string(st.messages);
    if (st.rejected_commands != 0)
      line += " rejected_commands=" + std::to_string(st.rejected_commands);
    line += " end=" + st.end + "/" + std::string(smtpwire::posix::to_string(why));
    if (ec) line += " (" + ec.message() + ")";
    const std::error_code te = c.session().tls_error();
    if (te) line += " tls_error=" + te.message();
    line += " " + std::string(dur);
    log_line(line);
  }
};

// The loops, for the signal handler (stop() is async-signal-safe).
constexpr std::size_t max_loops = 1024;
loop_type* g_loops[max_loops];
std::atomic<std::size_t> g_loop_count{0};

extern "C" void on_signal(int) {
  const std::size_t n = g_loop_count.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i)
    g_loops[i]->stop();
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<sink> sk(new sink);
  options& o = sk->o;
  bool help = false;
  if (!parse(argc, argv, o, help)) {
    std::fputs(usage_text, stderr);
    return exit_usage;
  }
  if (help) {
    std::fputs(usage_text, stdout);
    return exit_ok;
  }

  // The engine's configuration, shared by every session.
  smtpwire::server_config& cfg = sk->cfg;
  cfg.host_name = o.hostname.empty() ? smtpwire_tools::local_host_name() : o.hostname;
  cfg.lmtp = o.lmtp;
  cfg.tls_available = !o.tls_cert.empty();
  cfg.policy.require_tls = o.require_tls;
  cfg.policy.require_auth = o.require_auth;
  if (o.max_size != 0) cfg.limits.max_message_size = o.max_size;
  if (o.max_recipients != 0) cfg.limits.max_recipients = o.max_recipients;
  cfg.extensions.xforward = !o.xforward_from.empty();
  {
    // Reject a --hostname the engine's replies and Received cannot carry.
    smtpwire::received_fields f;
    f.helo = "x";
    f.by = cfg.host_name;
    f.date_time = "x";
    std::string probe;
    if (cfg.host_name.empty() || smtpwire::append_received(probe, f) != errc::ok) {
      std::fprintf(stderr, "smtpwire-sink: --hostname '%s' is not a usable name\n",
                   cfg.host_name.c_str());
      return exit_usage;
    }
  }

  if (!o.auth_file.empty()) {
    if (int rc = load_auth(o.auth_file, sk->users)) return rc;
    cfg.extensions.auth.add(smtpwire::wire::sasl::mechanism::plain);
    cfg.extensions.auth.add(smtpwire::wire::sasl::mechanism::login);
  }

  if (!o.tls_cert.empty()) {
    smtpwire::openssl::server_tls_options so;
    so.cert_file = o.tls_cert;
    so.key_file = o.tls_key;
    std::string text;
    auto ctx = smtpwire::openssl::server_context::create(so, &text);
    if (!ctx) {
      std::fprintf(stderr, "smtpwire-sink: cannot load the certificate %s and key %s: %s\n",
                   o.tls_cert.c_str(), o.tls_key.c_str(),
                   text.empty() ? ctx.error().message().c_str() : text.c_str());
      return exit_unavailable;
    }
    sk->tls.reset(new smtpwire::openssl::server_context(std::move(*ctx)));
  }

  {
    std::string why;
    const smtpwire_tools::store_kind k = !o.maildir.empty() ? smtpwire_tools::store_kind::maildir
                                         : !o.mbox.empty()  ? smtpwire_tools::store_kind::mbox
                                                            : smtpwire_tools::store_kind::discard;
    if (!sk->store.open(k, !o.maildir.empty() ? o.maildir : o.mbox, cfg.host_name, why)) {
      std::fprintf(stderr, "smtpwire-sink: %s\n", why.c_str());
      return exit_unavailable;
    }
  }

  // One loop per thread and listener kind; with several threads every
  // loop listens on every address with SO_REUSEPORT.
  struct listener {
    smtpwire::posix::host_port hp;
    bool implicit;
    std::string text;
  };
  std::vector<listener> listeners;
  for (int pass = 0; pass < 2; ++pass) {
    for (const std::string& l : pass == 0 ? o.listen : o.implicit_listen) {
      listener x;
      x.implicit = pass == 1;
      x.text = l;
      // parse_host_port refuses port 0, which here means "pick a free port".
      const bool any_port = l.size() > 2 && l.compare(l.size() - 2, 2, ":0") == 0;
      const std::string text = any_port ? l.substr(0, l.size() - 1) + "1" : l;
      if (smtpwire::posix::parse_host_port(text, "", x.hp) || x.hp.port.empty()) {
        std::fprintf(stderr, "smtpwire-sink: '%s' is not ADDR:PORT\n", l.c_str());
        return exit_usage;
      }
      if (any_port) x.hp.port = "0";
      listeners.push_back(x);
    }
  }
  smtpwire::posix::server_loop_options lo;
  lo.grace = std::chrono::seconds(10);
  if (!o.proxy_mode.empty()) {
    smtpwire::posix::proxy_listen_options po;
    po.reader.required = o.proxy_mode == "required";
    po.allowed_peers = o.proxy_from;
    lo.proxy_protocol = po;
  }
  std::vector<std::unique_ptr<loop_type>> loops;
  std::vector<bool> loop_implicit;
  for (int kind = 0; kind < 2; ++kind) {
    bool any = false;
    for (const listener& l : listeners)
      any = any || l.implicit == (kind == 1);
    if (!any) continue;
    for (std::uint64_t i = 0; i < o.threads; ++i) {
      const bool implicit = kind == 1;
      sink* shared = sk.get();
      std::unique_ptr<loop_type> lp(new loop_type(
          [shared, implicit](const smtpwire::posix::socket_address& peer) {
            return shared->make(implicit, peer);
          },
          [shared](loop_type::connection& c, smtpwire::server_event& e) { shared->on_event(c, e); },
          lo));
      if (lp->error()) {
        std::fprintf(stderr, "smtpwire-sink: cannot create the event loop: %s\n",
                     lp->error().message().c_str());
        return exit_unavailable;
      }
      lp->on_close([shared](loop_type::connection& c, smtpwire::posix::close_cause why,
                            std::error_code ec) { shared->on_close(c, why, ec); });
      lp->on_proxy_refused([](const smtpwire::posix::socket_address& peer, errc why) {
        log_line("refused connection from " + peer.to_string() + ": " +
                 std::string(smtpwire::to_string(why)));
      });
      loops.push_back(std::move(lp));
      loop_implicit.push_back(implicit);
    }
  }
  smtpwire::posix::listen_options lso;
  lso.reuse_port = o.threads > 1;
  for (listener& l : listeners) {
    bool first = true;
    for (std::size_t i = 0; i < loops.size(); ++i) {
      if (loop_implicit[i] != l.implicit) continue;
      smtpwire::posix::socket_address bound;
      if (std::error_code ec = loops[i]->listen(l.hp.host, l.hp.port, lso, &bound)) {
        std::fprintf(stderr, "smtpwire-sink: cannot listen on %s: %s\n", l.text.c_str(),
                     ec.message().c_str());
        return exit_unavailable;
      }
      if (first) {
        first = false;
        l.hp.port = std::to_string(bound.port());  // port 0: the other loops share the pick
        std::string what = l.implicit ? "implicit TLS" : o.lmtp ? "LMTP" : "SMTP";
        if (!l.implicit && cfg.tls_available) what += ", STARTTLS";
        if (o.require_tls) what += ", TLS required";
        if (!sk->users.empty()) what += o.require_auth ? ", AUTH required" : ", AUTH";
        if (!o.proxy_mode.empty()) what += ", PROXY protocol " + o.proxy_mode;
        if (!o.xforward_from.empty()) what += ", XFORWARD";
        log_line("listening on " + bound.to_string() + " (" + what + ")");
      }
    }
  }
  const std::string where = !o.maildir.empty() ? "Maildir " + o.maildir
                            : !o.mbox.empty()  ? "mbox " + o.mbox
                                               : std::string("nowhere (--discard)");
  log_line("storing into " + where + "; " + std::to_string(o.threads) + " thread(s)");

  if (loops.size() > max_loops) {
    std::fprintf(stderr, "smtpwire-sink: too many loops\n");
    return exit_usage;
  }
  for (std::size_t i = 0; i < loops.size(); ++i)
    g_loops[i] = loops[i].get();
  g_loop_count.store(loops.size(), std::memory_order_release);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  std::vector<std::thread> threads;
  std::vector<std::error_code> errors(loops.size());
  for (std::size_t i = 1; i < loops.size(); ++i)
    threads.emplace_back([&loops, &errors, i] { errors[i] = loops[i]->run(); });
  errors[0] = loops[0]->run();
  for (std::thread& th : threads)
    th.join();

  int rc = exit_ok;
  for (const std::error_code& ec : errors)
    if (ec) {
      log_line("event loop failed: " + ec.message());
      rc = exit_unavailable;
    }
  const totals& t = sk->t;
  log_line("stopped: sessions=" + std::to_string(t.sessions.load()) +
           " tls=" + std::to_string(t.tls_sessions.load()) + " messages=" +
           std::to_string(t.messages.load()) + " octets=" + std::to_string(t.octets.load()) +
           " refused=" + std::to_string(t.refused.load()) + " failed=" +
           std::to_string(t.failed.load()) + " auth_ok=" + std::to_string(t.auth_ok.load()) +
           " auth_failed=" + std::to_string(t.auth_failed.load()));
  return rc;
}
