// smtpwire-send — submit or relay one message over SMTP (or LMTP), strictly:
// TLS required by default with certificate and name verification, the
// message sent byte for byte (dot-stuffed on the wire; LF-only input goes
// out as CRLF), no header added or changed.
//
//   smtpwire-send --server HOST[:PORT] [--tls required|opportunistic|none|implicit]
//                 [--ca-file FILE] [--tls-name NAME] [--helo NAME]
//                 --from ADDR --to ADDR [--to ADDR ...]
//                 [--auth-user USER --auth-password-file FILE [--auth-mech MECH]]
//                 [--lmtp] [--no-pipelining] [--chunking] [--message-file FILE]
//                 [-v]
//
// Exit status: 0 accepted for every recipient; 1 for some only; 2 rejected
// permanently (5xx); 3 rejected temporarily (4xx, 421); 4 TLS failure; 5
// authentication failed or unavailable; 6 connection, timeout or protocol
// error; 64 usage error.
//
// Built from the engines (smtpwire::client), the OpenSSL glue
// (tls_session) and the POSIX blocking driver (run_client); all protocol
// decisions are the engine's.
#include <smtpwire/client.hpp>
#include <smtpwire/error.hpp>
#include <smtpwire/openssl/channel.hpp>
#include <smtpwire/openssl/context.hpp>
#include <smtpwire/openssl/session.hpp>
#include <smtpwire/posix/address.hpp>
#include <smtpwire/posix/client_driver.hpp>

#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/session.hpp"
#include "common/util.hpp"

namespace {

enum exit_status : int {
  exit_ok = 0,
  exit_partial = 1,
  exit_permanent = 2,
  exit_temporary = 3,
  exit_tls = 4,
  exit_auth = 5,
  exit_connection = 6,
  exit_usage = 64,
};

constexpr const char* usage_text =
    "usage: smtpwire-send --server HOST[:PORT] [--tls required|opportunistic|none|implicit]\n"
    "                     [--ca-file FILE] [--tls-name NAME] [--helo NAME]\n"
    "                     --from ADDR --to ADDR [--to ADDR ...]\n"
    "                     [--auth-user USER --auth-password-file FILE [--auth-mech PLAIN|LOGIN]]\n"
    "                     [--lmtp] [--no-pipelining] [--chunking] [--message-file FILE] [-v]\n"
    "The message is read from --message-file or standard input and sent byte-exact.\n"
    "Default port: 25 (465 with --tls implicit, 24 with --lmtp). --tls defaults to required.\n"
    "Exit: 0 accepted for all recipients, 1 for some, 2 rejected (5xx), 3 temporary failure\n"
    "(4xx), 4 TLS failure, 5 authentication failure, 6 connection/timeout/protocol error,\n"
    "64 usage error.\n";

// -- the -v transcript ---------------------------------------------------------

// Prints the plaintext dialogue line by line on stderr: "C: " for what the
// client sent, "S: " for what it received, "* " for notes. AUTH lines and
// SASL responses are redacted; control octets are shown as \xNN.
class transcript {
 public:
  explicit transcript(bool on) : on_(on) {}
  bool on() const noexcept { return on_; }
  void sent(std::string_view b) { feed(b, out_, true); }
  void received(std::string_view b) { feed(b, in_, false); }
  void note(const std::string& text) {
    if (on_) std::fprintf(stderr, "* %s\n", text.c_str());
  }
  // The server's reply seen as an event (when the tap cannot see the
  // plaintext: after STARTTLS in the fallback mode, see snooping_session).
  void reply(const smtpwire::wire::reply_view& r) { received(r.raw()); }
  // The 354 was seen: client lines are content until ".".
  void begin_content() noexcept { content_ = true; }
  // Prints partial lines still held (the end of the dialogue).
  void flush() {
    if (!out_.empty()) line(out_, true);
    if (!in_.empty()) line(in_, false);
    out_.clear();
    in_.clear();
  }

 private:
  static constexpr std::size_t max_line = 4096;  // longer lines are shown in pieces

  void feed(std::string_view b, std::string& partial, bool client) {
    if (!on_) return;
    for (char c : b) {
      partial.push_back(c);
      if (c == '\n' || partial.size() >= max_line) {
        line(partial, client);
        partial.clear();
      }
    }
  }

  static std::string printable(std::string_view l) {
    std::string s;
    for (char c : l) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 && c != '\t') {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02X", u);
        s += buf;
      } else {
        s.push_back(c);
      }
    }
    return s;
  }

  static std::string upper_word(std::string_view l) {
    std::string w;
    for (char c : l) {
      if (c == ' ') break;
      w.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
    }
    return w;
  }

  void line(std::string_view l, bool client) {
    if (l.size() >= 2 && l.substr(l.size() - 2) == "\r\n")
      l.remove_suffix(2);
    else if (!l.empty() && l.back() == '\n')
      l.remove_suffix(1);  // a bare LF (shown as the line end)
    if (client) {
      if (content_) {
        if (l == ".") content_ = false;
        std::fprintf(stderr, "C: %s\n", printable(l).c_str());
        return;
      }
      if (auth_) {
        std::fprintf(stderr, "C: <SASL response redacted>\n");
        return;
      }
      if (upper_word(l) == "AUTH") {
        auth_ = true;
        const std::string_view rest =
            l.substr(l.find(' ') == std::string_view::npos ? l.size() : l.find(' ') + 1);
        const auto sp = rest.find(' ');
        const std::string mech(rest.substr(0, sp));
        std::fprintf(stderr, "C: AUTH %s%s\n", printable(mech).c_str(),
                     sp == std::string_view::npos ? "" : " <initial response redacted>");
        return;
      }
      std::fprintf(stderr, "C: %s\n", printable(l).c_str());
      return;
    }
    std::fprintf(stderr, "S: %s\n", printable(l).c_str());
    if (l.size() >= 3 && (l.size() == 3 || l[3] == ' ')) {  // the last line of a reply
      const std::string_view code = l.substr(0, 3);
      if (auth_ && code != "334") auth_ = false;
      if (code == "354") content_ = true;
    }
  }

  bool on_;
  std::string out_, in_;
  bool auth_ = false;     // inside an AUTH exchange: client lines are secrets
  bool content_ = false;  // after 354: client lines are message content
};

// The client engine with a tap on its plaintext: every octet it takes from
// the server and every octet of its output that is sent (by the glue, or by
// the driver when there is no TLS) goes to the transcript. The glue and the
// driver call these through the static type, so hiding suffices.
class tap_client : public smtpwire::client {
 public:
  explicit tap_client(const smtpwire::client_config& c) : smtpwire::client(c) {}
  void set_transcript(transcript* t) noexcept { t_ = t; }
  std::size_t receive(std::string_view b) noexcept {
    const std::size_t n = smtpwire::client::receive(b);
    if (t_ != nullptr) t_->received(b.substr(0, n));
    return n;
  }
  void consume_output(std::size_t n) noexcept {
    if (t_ != nullptr) t_->sent(output().substr(0, n));
    smtpwire::client::consume_output(n);
  }

 private:
  transcript* t_ = nullptr;
};

}  // namespace

namespace smtpwire::openssl {
/// tap_client is a smtpwire::client for the glue.
template <>
struct engine_traits<tap_client> : engine_traits<smtpwire::client> {};
}  // namespace smtpwire::openssl

namespace {

// The -v transcript when the glue refuses tap_client (its constructor
// accepts only the exact smtpwire::client type): the session is
// tls_session<smtpwire::client>, and the transcript is rebuilt from what
// the application can observe. Before STARTTLS the network bytes are the
// plaintext; after it, server replies come from the events that carry them
// (replies that raise no event, e.g. 250 to MAIL, 354, 334, are not shown),
// and client lines from the engine's output, read before every call that
// may send it (a command the glue encrypts within the same call as its
// creation, e.g. a SASL response, can be missed). Best effort, for humans;
// the protocol is untouched.
class snooping_session {
 public:
  using inner_type = smtpwire_tools::either_session<smtpwire::client>;
  /// `implicit`: TLS from the first octet (--tls implicit), so no network
  /// octet is plaintext.
  snooping_session(std::unique_ptr<inner_type> s, transcript& t, bool implicit)
      : s_(std::move(s)), t_(t), cut_(implicit) {}

  std::size_t receive(std::string_view b) noexcept {
    before();
    const std::size_t n = s_->receive(b);
    if (!cut_) t_.received(b.substr(0, n));
    after_adding();
    return n;
  }
  std::string_view output() const noexcept {
    before();
    const std::string_view v = s_->output();
    logged_ = s_->engine().output().size();  // output() only encrypts what was logged
    return v;
  }
  void consume_output(std::size_t n) noexcept {
    before();
    s_->consume_output(n);
    logged_ = s_->engine().output().size();
  }
  void transport_eof() noexcept { s_->transport_eof(); }
  smtpwire::client& engine() noexcept { return s_->engine(); }
  smtpwire::client_event next_event() noexcept {
    before();
    smtpwire::client_event e = s_->next_event();
    after_adding();
    if (std::holds_alternative<smtpwire::client_events::start_tls>(e)) {
      cut_ = true;
      t_.note(
          "(transcript after STARTTLS rebuilt from events: replies without one, such as "
          "250 to MAIL, 354 and 334, are not shown)");
    } else if (cut_) {
      std::visit(
          [this](const auto& x) {
            if constexpr (has_reply<std::decay_t<decltype(x)>>::value) {
              if (x.reply.code() != 0) t_.reply(x.reply);
            }
          },
          e);
      if (const auto* c = std::get_if<smtpwire::client_events::capabilities>(&e))
        t_.note("EHLO reply over TLS (as parsed): " + describe(*c->caps));
    }
    return e;
  }
  bool tls_active() const noexcept { return s_->tls_active(); }
  const smtpwire::tls_info* tls() const noexcept { return s_->tls(); }
  std::error_code tls_error() const noexcept { return s_->tls_error(); }
  inner_type::tls_type* tls_glue() noexcept { return s_->tls_glue(); }

 private:
  template <class T, class = void>
  struct has_reply : std::false_type {};
  template <class T>
  struct has_reply<T, std::void_t<decltype(std::declval<const T&>().reply)>> : std::true_type {};

  // "mx.example offers SIZE 1000, PIPELINING, AUTH PLAIN LOGIN, …".
  static std::string describe(const smtpwire::wire::capabilities& caps) {
    namespace w = smtpwire::wire;
    std::string d = std::string(caps.domain) + " offers";
    const char* sep = " ";
    for (std::size_t i = 0; i < w::capability_count; ++i) {
      const auto cap = static_cast<w::capability>(i);
      if (!caps.has(cap)) continue;
      d += sep;
      sep = ", ";
      d += std::string(w::to_string(cap));
      if (cap == w::capability::size && caps.size != 0) d += " " + std::to_string(caps.size);
      if (cap == w::capability::auth) {
        for (std::size_t m = 0; m < w::sasl::mechanism_count; ++m)
          if (caps.mechanisms.has(static_cast<w::sasl::mechanism>(m)))
            d += " " + std::string(w::sasl::to_string(static_cast<w::sasl::mechanism>(m)));
        for (std::size_t m = 0; m < caps.other_mechanism_count; ++m)
          d += " " + std::string(caps.other_mechanisms[m]);
      }
    }
    for (std::size_t i = 0; i < caps.extension_count; ++i) {
      d += sep;
      sep = ", ";
      d += std::string(caps.extensions[i].keyword);
    }
    return d;
  }

  // Logs engine output produced since the last look (by the application's
  // calls between the driver's calls).
  void before() const {
    const std::string_view out = s_->engine().output();
    if (out.size() > logged_) t_.sent(out.substr(logged_));
    logged_ = out.size();
  }
  // After a call that may add output (and, for next_event, may also have
  // encrypted it: then what is left cannot be told apart and is skipped).
  void after_adding() const {
    const std::string_view out = s_->engine().output();
    if (out.size() > logged_) t_.sent(out.substr(logged_));
    logged_ = out.size();
  }

  std::unique_ptr<inner_type> s_;
  transcript& t_;
  mutable std::size_t logged_ = 0;  // octets at the front of engine().output() already logged
  bool cut_ = false;                // after start_tls: network bytes are ciphertext
};

using smtpwire::errc;
namespace ev = smtpwire::client_events;

std::string first_line(const smtpwire::wire::reply_view& r) {
  std::string_view raw = r.raw();
  const auto e = raw.find("\r\n");
  return std::string(raw.substr(0, e));
}

// The options as given on the command line.
struct options {
  std::string server;
  std::string tls = "required";
  std::string ca_file, tls_name, helo;
  std::string from;
  std::vector<std::string> to;
  std::string auth_user, auth_password_file, auth_mech;
  bool lmtp = false, no_pipelining = false, chunking = false, verbose = false;
  std::string message_file = "-";
};

// Reads argv into `o`; false (with a message printed) on a usage error.
bool parse(int argc, char** argv, options& o, bool& help) {
  smtpwire_tools::option_scanner sc(argc, argv);
  auto need = [&](std::string& out) {
    if (sc.value(out)) return true;
    std::fprintf(stderr, "smtpwire-send: %s needs a value\n", sc.name().c_str());
    return false;
  };
  while (sc.next()) {
    const std::string& n = sc.name();
    std::string v;
    bool flag = false;
    if (n == "--server") {
      if (!need(o.server)) return false;
    } else if (n == "--tls") {
      if (!need(o.tls)) return false;
    } else if (n == "--ca-file") {
      if (!need(o.ca_file)) return false;
    } else if (n == "--tls-name") {
      if (!need(o.tls_name)) return false;
    } else if (n == "--helo") {
      if (!need(o.helo)) return false;
    } else if (n == "--from") {
      if (!need(o.from)) return false;
    } else if (n == "--to") {
      if (!need(v)) return false;
      o.to.push_back(v);
    } else if (n == "--auth-user") {
      if (!need(o.auth_user)) return false;
    } else if (n == "--auth-password-file") {
      if (!need(o.auth_password_file)) return false;
    } else if (n == "--auth-mech") {
      if (!need(o.auth_mech)) return false;
    } else if (n == "--message-file") {
      if (!need(o.message_file)) return false;
    } else if (n == "--lmtp") {
      o.lmtp = flag = true;
    } else if (n == "--no-pipelining") {
      o.no_pipelining = flag = true;
    } else if (n == "--chunking") {
      o.chunking = flag = true;
    } else if (n == "-v" || n == "--verbose") {
      o.verbose = flag = true;
    } else if (n == "-h" || n == "--help") {
      help = flag = true;
    } else {
      std::fprintf(stderr, "smtpwire-send: unknown argument '%s'\n", n.c_str());
      return false;
    }
    if (flag && sc.has_inline_value()) {
      std::fprintf(stderr, "smtpwire-send: %s takes no value\n", n.c_str());
      return false;
    }
  }
  if (help) return true;
  if (o.server.empty() || o.from.empty() || o.to.empty()) {
    std::fprintf(stderr, "smtpwire-send: --server, --from and at least one --to are required\n");
    return false;
  }
  if (o.tls != "required" && o.tls != "opportunistic" && o.tls != "none" && o.tls != "implicit") {
    std::fprintf(stderr,
                 "smtpwire-send: --tls must be required, opportunistic, none or implicit\n");
    return false;
  }
  if (o.auth_user.empty() != o.auth_password_file.empty()) {
    std::fprintf(stderr, "smtpwire-send: --auth-user and --auth-password-file go together\n");
    return false;
  }
  for (char& c : o.auth_mech)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (!o.auth_mech.empty() && o.auth_mech != "PLAIN" && o.auth_mech != "LOGIN") {
    std::fprintf(stderr, "smtpwire-send: --auth-mech must be PLAIN or LOGIN\n");
    return false;
  }
  if (!o.auth_mech.empty() && o.auth_user.empty()) {
    std::fprintf(stderr, "smtpwire-send: --auth-mech needs --auth-user\n");
    return false;
  }
  // "<addr>" is accepted for "addr"; "<>" is the null reverse-path.
  auto unbracket = [](std::string& a) {
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  };
  unbracket(o.from);
  for (std::string& r : o.to)
    unbracket(r);
  return true;
}

// The application side of one delivery: reacts to the engine's events.
class sender {
 public:
  sender(const options& o, const std::string& message, std::string password, transcript& t)
      : o_(o), message_(message), t_(t), password_(std::move(password)) {
    for (const std::string& r : o.to)
      rcpts_.push_back(r);
    refused_.assign(rcpts_.size(), 0);
    env_.from = o.from;
    env_.recipients = rcpts_.data();
    env_.recipient_count = rcpts_.size();
    // SIZE (RFC 1870 §3): the message's octets with CRLF line ends, so a
    // server's limit refuses it before any content is sent.
    std::uint64_t size = message.size();
    for (std::size_t i = 0; i < message.size(); ++i) {
      const char c = message[i];
      if (static_cast<unsigned char>(c) >= 0x80)
        env_.body = smtpwire::wire::body_type::eight_bit_mime;
      if (c == '\n' && (i == 0 || message[i - 1] != '\r')) ++size;
      if (c == '\r' && (i + 1 == message.size() || message[i + 1] != '\n')) ++size;
    }
    env_.size = size;
    if (!o.auth_user.empty()) {
      if (o.auth_mech == "PLAIN") {
        plain_.reset(new smtpwire::sasl_plain(o.auth_user, password_));
        mech_ = plain_.get();
      } else if (o.auth_mech == "LOGIN") {
        login_.reset(new smtpwire::sasl_login(o.auth_user, password_));
        mech_ = login_.get();
      }
    }
  }
  sender(const sender&) = delete;
  sender& operator=(const sender&) = delete;

  int result() const noexcept { return result_; }

  template <class Session>
  bool on_event(Session& s, smtpwire::client_event& e) {
    smtpwire::client& c = s.engine();
    if (std::holds_alternative<std::monostate>(e)) {
      push_content(c);
    } else if (auto* caps = std::get_if<ev::capabilities>(&e)) {
      if (caps->tls && !tls_noted_ && s.tls() != nullptr) {
        tls_noted_ = true;
        const smtpwire::tls_info& i = *s.tls();
        std::string n = "TLS established: " + std::string(i.version) + ", cipher " +
                        std::string(i.cipher) + ", ";
        if (i.peer_verified)
          n += "certificate verified for " + std::string(i.peer_name);
        else
          n += "certificate NOT verified (" + verification_reason(s) + ")";
        t_.note(n);
      }
    } else if (std::holds_alternative<ev::start_tls>(e)) {
      t_.note("starting TLS");
    } else if (std::holds_alternative<ev::ready>(e)) {
      proceed(c);
    } else if (auto* a = std::get_if<ev::auth_result>(&e)) {
      if (a->success) {
        t_.note("authenticated as " + o_.auth_user + " (" + std::string(a->mechanism) + ")");
      } else {
        fail(exit_auth, "authentication failed: " + first_line(a->reply));
      }
      proceed(c);
    } else if (auto* r = std::get_if<ev::recipient>(&e)) {
      if (!r->accepted) {
        refused_[r->index] = r->reply.is_transient() ? 4 : 5;
        std::fprintf(stderr, "smtpwire-send: <%s> refused: %s\n", std::string(r->address).c_str(),
                     first_line(r->reply).c_str());
      }
    } else if (std::holds_alternative<ev::send_content>(e)) {
      // Once per transaction: a message split by the server's LIMITS is sent again in full.
      t_.begin_content();
      in_content_ = true;
      pos_ = 0;
      push_content(c);
    } else if (auto* d = std::get_if<ev::delivery>(&e)) {
      if (!d->delivered) {
        refused_[d->index] = d->reply.is_transient() ? 4 : 5;
        std::fprintf(stderr, "smtpwire-send: <%s> not delivered: %s\n",
                     std::string(d->address).c_str(), first_line(d->reply).c_str());
      }
    } else if (auto* m = std::get_if<ev::message_accepted>(&e)) {
      message_done_ = true;
      const bool all = m->recipients == rcpts_.size();
      if (result_ < 0) result_ = all ? exit_ok : exit_partial;
      t_.note(std::string(all ? "message accepted: " : "message accepted for some recipients: ") +
              first_line(m->reply));
      proceed(c);
    } else if (auto* m = std::get_if<ev::message_rejected>(&e)) {
      message_done_ = true;
      int code =
          m->reply.is_transient() || m->reply.code() == 421 ? exit_temporary : exit_permanent;
      if (m->stage == smtpwire::rejection_stage::recipients || m->reply.code() == 0) {
        code = exit_permanent;
        for (int r : refused_)
          if (r == 4) code = exit_temporary;
      }
      fail(code, "message rejected (" + std::string(smtpwire::to_string(m->stage)) +
                     "): " + first_line(m->reply));
      proceed(c);
    } else if (auto* cl = std::get_if<ev::closed>(&e)) {
      if (result_ < 0 || !message_done_)
        fail(cl->reply.is_permanent() ? exit_permanent : exit_temporary,
             "the server closed the session: " + first_line(cl->reply));
    } else if (auto* er = std::get_if<ev::error>(&e)) {
      on_error(s, *er);
    }
    return true;
  }

  // The driver stopped: report a transport failure when nothing else was.
  void finish(const smtpwire::posix::client_run_result& r) {
    t_.flush();
    if (result_ >= 0) return;
    if (r.error)
      fail(exit_connection, "connection error: " + r.error.message());
    else
      fail(exit_connection, "the session ended without a result");
  }

 private:
  template <class Session>
  static std::string verification_reason(Session& s) {
    if (s.tls_glue() == nullptr) return "no TLS";
    const auto v = s.tls_glue()->tls_channel().verification();
    return v.reason.empty() ? "not checked" : std::string(v.reason);
  }

  void fail(int code, const std::string& why) {
    std::fprintf(stderr, "smtpwire-send: %s\n", why.c_str());
    if (result_ < 0) result_ = code;
  }

  void quit(smtpwire::client& c) {
    if (quit_sent_) return;
    quit_sent_ = true;
    (void)c.quit();
  }

  // Moves the session forward from the ready state: AUTH, the message, QUIT.
  void proceed(smtpwire::client& c) {
    if (c.state() != smtpwire::client_state::ready || quit_sent_) return;
    if (result_ >= 0 || message_done_) return quit(c);
    if (!o_.auth_user.empty() && !auth_started_) {
      auth_started_ = true;
      smtpwire::credentials cr;
      cr.user = o_.auth_user;
      cr.password = password_;
      const errc e = mech_ != nullptr ? c.authenticate(*mech_) : c.authenticate(cr);
      if (e != errc::ok) {
        fail(exit_auth, "authentication unavailable: " + std::string(smtpwire::to_string(e)));
        quit(c);
      }
      return;
    }
    if (!mail_sent_) {
      mail_sent_ = true;
      const errc e = c.send_mail(env_);
      if (e != errc::ok) {
        fail(e == errc::message_too_big ? exit_permanent : exit_connection,
             "cannot send the message: " + std::string(smtpwire::to_string(e)));
        quit(c);
      }
    }
  }

  // Streams the message while the engine takes it, then ends it.
  void push_content(smtpwire::client& c) {
    if (!in_content_) return;
    while (pos_ < message_.size()) {
      auto r = c.send_content(std::string_view(message_).substr(pos_));
      if (!r) {
        in_content_ = false;  // the engine failed the session: an error event follows
        return;
      }
      if (*r == 0) return;  // output full: the driver drains it and calls again
      pos_ += *r;
    }
    if (c.end_content() == errc::ok) in_content_ = false;
  }

  template <class Session>
  void on_error(Session& s, const ev::error& er) {
    std::string why = std::string(smtpwire::to_string(er.code));
    if (er.reply.code() != 0) why += ": " + first_line(er.reply);
    int code = exit_connection;
    switch (er.code) {
      case errc::tls_not_offered:
        why = "TLS required, but the server does not offer STARTTLS";
        code = exit_tls;
        break;
      case errc::tls_refused:
      case errc::tls_helo_only:
      case errc::tls_response_injection:
        code = exit_tls;
        break;
      case errc::tls_handshake_failed: {
        code = exit_tls;
        const std::error_code te = s.tls_error();
        if (te) why += ": " + te.message();
        if (s.tls_glue() != nullptr) {
          const std::string_view text = s.tls_glue()->tls_channel().error_text();
          if (!text.empty()) why += " (" + std::string(text) + ")";
        }
        break;
      }
      case errc::auth_not_offered:
      case errc::auth_requires_tls:
        code = exit_auth;
        break;
      case errc::greeting_refused:
      case errc::hello_refused:
        code = er.reply.is_transient() ? exit_temporary : exit_permanent;
        break;
      case errc::message_too_big:
        code = exit_permanent;
        break;
      default:
        break;
    }
    fail(code, why);
  }

  const options& o_;
  const std::string& message_;
  transcript& t_;
  std::string password_;  // the mechanisms keep views of it
  std::vector<std::string_view> rcpts_;
  std::vector<int> refused_;  // 0, or 4/5: the class of the refusal
  smtpwire::envelope env_;
  std::unique_ptr<smtpwire::sasl_plain> plain_;
  std::unique_ptr<smtpwire::sasl_login> login_;
  smtpwire::sasl_client_mechanism* mech_ = nullptr;  // --auth-mech, else the engine picks
  std::size_t pos_ = 0;
  int result_ = -1;
  bool auth_started_ = false, mail_sent_ = false, in_content_ = false, message_done_ = false,
       quit_sent_ = false, tls_noted_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  options o;
  bool help = false;
  if (!parse(argc, argv, o, help)) {
    std::fputs(usage_text, stderr);
    return exit_usage;
  }
  if (help) {
    std::fputs(usage_text, stdout);
    return exit_ok;
  }

  std::string message, why;
  if (!smtpwire_tools::read_file(o.message_file, message, why)) {
    std::fprintf(stderr, "smtpwire-send: cannot read the message from %s: %s\n",
                 o.message_file == "-" ? "standard input" : o.message_file.c_str(), why.c_str());
    return exit_usage;
  }
  if (message.find('\0') != std::string::npos) {
    std::fprintf(stderr,
                 "smtpwire-send: the message contains NUL octets, which SMTP cannot carry\n");
    return exit_usage;
  }
  std::string password;
  if (!o.auth_password_file.empty()) {
    if (!smtpwire_tools::read_file(o.auth_password_file, password, why)) {
      std::fprintf(stderr, "smtpwire-send: cannot read %s: %s\n", o.auth_password_file.c_str(),
                   why.c_str());
      return exit_usage;
    }
    const auto eol = password.find_first_of("\r\n");
    if (eol != std::string::npos) password.resize(eol);  // the first line is the password
  }

  smtpwire::posix::host_port hp;
  const std::string default_port = o.tls == "implicit" ? "465" : o.lmtp ? "24" : "25";
  if (smtpwire::posix::parse_host_port(o.server, default_port, hp)) {
    std::fprintf(stderr, "smtpwire-send: --server '%s' is not HOST[:PORT]\n", o.server.c_str());
    return exit_usage;
  }

  smtpwire::client_config cfg;
  const std::string helo = o.helo.empty() ? smtpwire_tools::local_host_name() : o.helo;
  cfg.local_name = helo;
  cfg.tls = o.tls == "none"            ? smtpwire::tls_policy::none
            : o.tls == "opportunistic" ? smtpwire::tls_policy::opportunistic
            : o.tls == "implicit"      ? smtpwire::tls_policy::implicit
                                       : smtpwire::tls_policy::required;
  cfg.lmtp = o.lmtp;
  cfg.pipelining = !o.no_pipelining;
  cfg.prefer_bdat = o.chunking;
  if (cfg.max_recipients < o.to.size()) cfg.max_recipients = o.to.size();

  // The TLS context and a channel for the peer (nullptr under --tls none).
  std::unique_ptr<smtpwire::openssl::client_context> ctx;
  smtpwire::openssl::peer_identity peer;
  peer.host = o.tls_name.empty() ? hp.host : o.tls_name;
  if (cfg.tls != smtpwire::tls_policy::none) {
    smtpwire::openssl::client_tls_options to;
    to.ca_file = o.ca_file;
    to.verify = cfg.tls == smtpwire::tls_policy::opportunistic
                    ? smtpwire::openssl::verify_mode::opportunistic
                    : smtpwire::openssl::verify_mode::required;
    std::string text;
    auto c = smtpwire::openssl::client_context::create(to, &text);
    if (!c) {
      std::fprintf(stderr, "smtpwire-send: TLS setup failed%s%s: %s\n",
                   o.ca_file.empty() ? "" : " with --ca-file ", o.ca_file.c_str(),
                   text.empty() ? c.error().message().c_str() : text.c_str());
      return exit_usage;
    }
    ctx.reset(new smtpwire::openssl::client_context(std::move(*c)));
  }
  auto make_channel = [&]() -> std::optional<smtpwire::openssl::channel> {
    auto ch = smtpwire::openssl::channel::client(*ctx, peer);
    if (ch) return std::move(*ch);
    std::fprintf(stderr, "smtpwire-send: cannot set up TLS for '%s': %s\n", peer.host.c_str(),
                 ch.error().message().c_str());
    return std::nullopt;
  };
  auto bad_helo = [&]() {
    std::fprintf(stderr, "smtpwire-send: --helo '%s' is not a domain or address literal\n",
                 helo.c_str());
    return exit_usage;
  };

  transcript t(o.verbose);
  sender app(o, message, password, t);
  auto deliver = [&](auto& session) {
    smtpwire::posix::connect_result conn = smtpwire::posix::connect_tcp(hp.host, hp.port);
    if (conn.error) {
      std::fprintf(stderr, "smtpwire-send: cannot connect to %s port %s: %s\n", hp.host.c_str(),
                   hp.port.c_str(), conn.error.message().c_str());
      return static_cast<int>(exit_connection);
    }
    t.note("connected to " + conn.address.to_string());
    const smtpwire::posix::client_run_result r = smtpwire::posix::run_client(
        conn.fd.get(), session,
        [&](auto& sess, smtpwire::client_event& e) { return app.on_event(sess, e); });
    app.finish(r);
    return app.result();
  };

  using plain_session = smtpwire_tools::either_session<smtpwire::client>;
  using tapped_session = smtpwire_tools::either_session<tap_client>;
  if (!o.verbose) {
    std::unique_ptr<plain_session> s;
    if (!ctx) {
      s.reset(new plain_session(cfg));
    } else {
      auto ch = make_channel();
      if (!ch) return exit_usage;
      s.reset(new plain_session(cfg, std::move(*ch)));
    }
    if (s->engine().config_error() != errc::ok) return bad_helo();
    return deliver(*s);
  }
  // -v: the tap sees the engine's plaintext both ways, when the glue takes
  // an engine type derived from smtpwire::client; otherwise the snooping
  // fallback.
  std::unique_ptr<tapped_session> tapped;
  if (!ctx) {
    tapped.reset(new tapped_session(cfg));
  } else {
    auto ch = make_channel();
    if (!ch) return exit_usage;
    tapped.reset(new tapped_session(cfg, std::move(*ch)));
    if (tapped->tls_error()) tapped.reset();  // refused by the glue: use the fallback
  }
  if (tapped) {
    if (tapped->engine().config_error() != errc::ok) return bad_helo();
    tapped->engine().set_transcript(&t);
    return deliver(*tapped);
  }
  auto ch = make_channel();
  if (!ch) return exit_usage;
  snooping_session snoop(std::unique_ptr<plain_session>(new plain_session(cfg, std::move(*ch))), t,
                         cfg.tls == smtpwire::tls_policy::implicit);
  if (snoop.engine().config_error() != errc::ok) return bad_helo();
  return deliver(snoop);
}
