// smtpwire — the client engine: a sans-I/O SMTP client session (RFC 5321)
// with STARTTLS (RFC 3207), AUTH (RFC 4954), PIPELINING (RFC 2920), SIZE
// (RFC 1870), 8BITMIME (RFC 6152), CHUNKING and BINARYMIME (RFC 3030), DSN
// (RFC 3461), SMTPUTF8 (RFC 6531) and REQUIRETLS (RFC 8689), that cannot be
// talked out of TLS; also an LMTP client (RFC 2033: LHLO, one reply per
// accepted recipient after the content).
//
// Theory of operation.
//
// The engine never does I/O and never reads a clock. The application feeds
// it the server's bytes (receive), pulls events (next_event) until it gets
// std::monostate ("need more bytes"), and drains the bytes to send (output,
// consume_output). Everything it allocates is allocated by the constructor:
// an input buffer, an output buffer, the reply reader's buffers, a copy of
// the EHLO reply, a SASL scratch buffer and the queue of commands in flight.
// Afterwards the engine appends to those buffers only within their reserved
// capacity; calls that would exceed it are refused (errc::api_bad_state) or
// consume less (send_content).
//
// One delivery:
//
//   greeting 220 -> EHLO -> [STARTTLS -> 220 -> start_tls event; the caller
//   runs the handshake and calls tls_established() -> EHLO again] -> ready
//   event -> [authenticate() -> auth_result] -> send_mail(envelope) ->
//   MAIL / RCPT... / DATA (one flight under PIPELINING) -> recipient events
//   -> send_content event -> send_content(chunk)... end_content() ->
//   message_accepted / message_rejected -> ready -> ... -> quit() -> closed.
//
// BDAT (RFC 3030). With client_config::prefer_bdat and the server's
// CHUNKING, or always for BODY=BINARYMIME, the content goes as BDAT chunks
// instead of DATA: MAIL and RCPT first (one flight under PIPELINING), the
// send_content event once the RCPT replies are in and one was positive (so
// a message without recipients is never transmitted), then the same
// send_content()/end_content() calls. The engine collects the octets in an
// open chunk that output() does not show yet; the chunk is sealed ("BDAT n"
// written before its octets) when the output buffer is full, and by
// end_content() as "BDAT n LAST" — a message that fits the buffer is one
// chunk. Under PIPELINING sealed chunks do not wait for their replies;
// without it each waits for the reply to the one before (send_content then
// takes what fits and returns less: call it again after the next reply).
// Each chunk gets its own reply; a refused one fails the transaction
// (message_rejected, stage content), no further chunk is sent and RSET ends
// it (RFC 3030 §2); the reply to the LAST chunk decides (LMTP: one reply
// per accepted recipient). Chunk octets are never dot-stuffed; under
// BINARYMIME they go byte for byte, otherwise line ends are normalised to
// CRLF as for DATA.
//
// States and the transition table. client_state names the protocol position
// (what the engine waits for); client_transition(state, reply_class) is the
// one table that says what a reply of each class means in each state
// (accepted, intermediate, refused, unexpected, closing, unsolicited). Every
// reply goes through it; the code after it only decides what to send next.
//
// TLS guarantees (Poddebniak et al., "Why TLS is better without STARTTLS",
// USENIX Security 2021):
// - STARTTLS is sent alone, never pipelined. After its 220 the engine emits
//   start_tls and takes no more plaintext: a byte already buffered after the
//   220, or received before tls_established(), fails the session with
//   errc::tls_response_injection and is never parsed.
// - After tls_established() the pre-TLS capabilities are forgotten and EHLO
//   is sent again.
// - Under tls_policy::required (the default) a server that offers no
//   STARTTLS, answers it with anything but 220, or refuses EHLO fails the
//   session (tls_not_offered, tls_refused, tls_helo_only) before any MAIL,
//   RCPT, AUTH or content can leave the engine: the ready state is reachable
//   only over TLS.
// - Credentials never leave in clear unless client_config::auth_in_clear.
//
// Lifetimes. Strings in events are views into the engine's buffers (or the
// application's envelope), valid until the next call on the engine; the
// capabilities event's pointer stays valid until the next EHLO. The
// envelope's strings, and a SASL mechanism passed to authenticate(), must
// stay valid until the transaction's (or the exchange's) final event.
//
// DSN (RFC 3461): envelope::ret, envelope::envid and envelope::dsn (NOTIFY,
// ORCPT) are written by wire/params.hpp's writers, with ENVID and ORCPT
// xtext-encoded by the engine, only when the server offers DSN. The same
// holds for BY (RFC 2852 DELIVERBY), MT-PRIORITY (RFC 6710), RRVS (RFC 7293,
// per recipient) and HOLDFOR / HOLDUNTIL (RFC 4865 FUTURERELEASE): validated,
// and refused before anything is sent when the server does not offer the
// extension (errc::*_not_offered), except that
// client_config::drop_optional_params_when_not_offered sends the message
// without those whose RFC allows relaying without them (MT-PRIORITY, BY in
// N mode, RRVS with the C action) — never BY in R mode, RRVS without C, or
// a release time.
//
// LIMITS (RFC 9422). One send_mail() is one message; it may take several
// transactions. Each transaction carries at most RCPTMAX recipients (and
// client_config::max_recipients), from at most RCPTDOMAINMAX distinct
// domains, picked in envelope order (a recipient whose domain would exceed
// RCPTDOMAINMAX waits for a later transaction); the engine opens the next
// transaction itself after the previous one ends, and the application
// streams the same content again on each send_content event (its
// `transaction` counts them). MAILMAX bounds the MAIL commands of the
// connection: send_mail() refuses with errc::mailmax_reached when none is
// left, and a message that needs more transactions than remain ends early.
// Accounting: every recipient of the message gets exactly one recipient
// event, or is listed in the one recipients_not_attempted event that comes
// before the message's last event (ready, closed or error) — when MAILMAX
// is used up, when the server refused MAIL (or XFORWARD) for a transaction
// (recipients of that and later transactions), when the output was not
// drained enough to open the next transaction, or when the session ended.
// A recipient event with accepted == true followed by message_accepted for
// its transaction is a delivery; nothing is silently dropped.
//
// XCLIENT and XFORWARD (Postfix XCLIENT_README, XFORWARD_README).
// client_config::xclient is sent once per connection after the (TLS) EHLO,
// when the server lists XCLIENT, with only the attributes it lists
// (wire::write_xcommands splits them over lines of at most 512 octets); each
// line must get 220 (anything else fails the session with
// errc::xclient_refused and QUIT) and EHLO is sent again after the last.
// XFORWARD (envelope::xforward, else client_config::xforward) goes before
// each transaction's MAIL when the server lists XFORWARD; each line must get
// 250 before MAIL is sent (never pipelined with MAIL, so that a refused
// XFORWARD can never leave a transaction open): a refusal ends the message
// (message_rejected, stage xforward; its recipients not attempted).
#ifndef SMTPWIRE_CLIENT_HPP
#define SMTPWIRE_CLIENT_HPP

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "smtpwire/detail/chars.hpp"
#include "smtpwire/error.hpp"
#include "smtpwire/tls_info.hpp"
#include "smtpwire/wire/base64.hpp"
#include "smtpwire/wire/bdat.hpp"
#include "smtpwire/wire/command.hpp"
#include "smtpwire/wire/content.hpp"
#include "smtpwire/wire/data.hpp"
#include "smtpwire/wire/ehlo.hpp"
#include "smtpwire/wire/params.hpp"
#include "smtpwire/wire/path.hpp"
#include "smtpwire/wire/reply.hpp"
#include "smtpwire/wire/sasl.hpp"
#include "smtpwire/wire/xclient.hpp"
#include "smtpwire/wire/xtext.hpp"

namespace smtpwire {

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// When the session must be encrypted.
enum class tls_policy : std::uint8_t {
  none,           ///< never send STARTTLS
  opportunistic,  ///< STARTTLS when offered; continue in clear when not offered or refused
  required,       ///< STARTTLS or nothing: fail before any MAIL, AUTH or content (default)
  implicit,       ///< RFC 8314 port 465: the caller runs TLS before the greeting
};

/// "none", "opportunistic", "required" or "implicit".
constexpr std::string_view to_string(tls_policy p) noexcept {
  switch (p) {
    case tls_policy::none:
      return "none";
    case tls_policy::opportunistic:
      return "opportunistic";
    case tls_policy::required:
      return "required";
    case tls_policy::implicit:
      return "implicit";
  }
  return "unknown";
}

/// How long the client waits for each reply (RFC 5321 §4.5.3.2). The
/// defaults are the RFC's minimums.
struct client_timeouts {
  std::chrono::seconds greeting{300};  ///< initial 220; default 5 min, RFC §4.5.3.2.1 minimum 5 min
  std::chrono::seconds mail{300};      ///< MAIL; default 5 min, RFC §4.5.3.2.2 minimum 5 min
  std::chrono::seconds rcpt{300};      ///< RCPT; default 5 min, RFC §4.5.3.2.3 minimum 5 min
  std::chrono::seconds data_init{
      120};  ///< 354 to DATA; default 2 min, RFC §4.5.3.2.4 minimum 2 min
  std::chrono::seconds data_term{
      600};  ///< reply to ".": default 10 min, RFC §4.5.3.2.6 minimum 10 min
  /// Every other reply (EHLO, STARTTLS, AUTH, RSET, QUIT, …); RFC 5321 sets
  /// none, 5 min follows the MAIL and RCPT values.
  std::chrono::seconds other{300};  ///< default 5 min; no RFC minimum
  /// The TLS handshake the adapter runs after the 220 to STARTTLS (or at the
  /// start of an implicit-TLS session); on expiry the session fails with
  /// errc::timeout and nothing is sent in clear.
  std::chrono::seconds tls_handshake{60};  ///< default 1 min; no RFC value
};

/// Configuration of a client engine; copied by the constructor (local_name
/// included).
struct client_config {
  /// The name sent in EHLO/HELO: a domain or an address literal
  /// ("[192.0.2.1]"); checked by the constructor (a bad name makes
  /// client::config_error() api_value_invalid and the engine unusable).
  std::string_view local_name = "localhost";
  tls_policy tls = tls_policy::required;  ///< default required
  /// Let AUTH send credentials without TLS. Default false: authenticate()
  /// refuses with errc::auth_requires_tls.
  bool auth_in_clear = false;
  /// Send MAIL, RCPT… and DATA in one flight when the server offers
  /// PIPELINING (RFC 2920). Default true.
  bool pipelining = true;
  /// Speak LMTP (RFC 2033): LHLO instead of EHLO (no HELO fallback), and
  /// after the content one reply per accepted recipient, each reported as a
  /// delivery event. Default false.
  bool lmtp = false;
  /// Send the content with BDAT (RFC 3030 CHUNKING) instead of DATA when the
  /// server offers CHUNKING. BODY=BINARYMIME always uses BDAT. Default false.
  bool prefer_bdat = false;
  /// When the server does not offer DSN (RFC 3461), send the message without
  /// the envelope's DSN parameters (RET, ENVID, NOTIFY, ORCPT) instead of
  /// refusing it with errc::dsn_not_offered. Default false.
  bool drop_dsn_when_not_offered = false;
  /// When the server does not offer their extension, send the message
  /// without MT-PRIORITY (RFC 6710), without BY in N mode (RFC 2852 §5: the
  /// message is relayed, a "relayed" DSN is the relaying MTA's business) and
  /// without RRVS when every recipient's action is C (RFC 7293 §3: continue),
  /// instead of refusing it (errc::mt_priority_not_offered,
  /// deliverby_not_offered, rrvs_not_offered). BY in R mode, RRVS without C,
  /// HOLDFOR and HOLDUNTIL are always refused then. Default false.
  bool drop_optional_params_when_not_offered = false;
  /// XCLIENT attributes (decoded values; kind absent = not sent), sent once
  /// per connection when the server lists XCLIENT, only those it lists. The
  /// views must outlive the engine; a value wire::write_xcommands refuses
  /// makes config_error() api_value_invalid. Default: none.
  wire::xattributes xclient{};
  /// XFORWARD attributes for every transaction whose envelope::xforward is
  /// nullptr; same rules as xclient. Default: none.
  wire::xattributes xforward{};
  /// Reply limits (line length, lines, bytes per reply; see reply_options).
  wire::reply_options reply;
  /// Most recipients in one envelope, and in one transaction (the server's
  /// LIMITS RCPTMAX may lower the latter); RFC 5321 §4.5.3.1.8 requires a
  /// server to accept at least 100.
  std::size_t max_recipients = 100;  ///< default 100; RFC 5321 §4.5.3.1.8 minimum 100
  /// Octets the engine buffers from receive() before the caller pulls events.
  std::size_t input_buffer = 16384;  ///< default 16 KiB; no RFC minimum
  /// Octets of output the engine holds before the caller drains it; a whole
  /// pipelined MAIL/RCPT/DATA flight must fit.
  std::size_t output_buffer = 65536;  ///< default 64 KiB; at least 16 KiB is used
  client_timeouts timeouts;           ///< RFC 5321 §4.5.3.2 waits
};

// ---------------------------------------------------------------------------
// States and the transition table
// ---------------------------------------------------------------------------

/// Where the session is: mostly, which reply the engine waits for.
enum class client_state : std::uint8_t {
  tls_handshake,  ///< waiting for tls_established() (implicit TLS, or after STARTTLS's 220)
  greeting,       ///< waiting for the 220 greeting
  ehlo,           ///< EHLO (LMTP: LHLO) sent
  helo,           ///< HELO sent (EHLO refused, policy allows it)
  starttls,       ///< STARTTLS sent
  xclient,        ///< an XCLIENT line sent (Postfix XCLIENT_README: 220 expected)
  auth,           ///< AUTH or a SASL response sent
  ready,          ///< idle: send_mail, authenticate, command or quit may be called
  xforward,       ///< an XFORWARD line sent before a transaction's MAIL (250 expected)
  mail,           ///< waiting for the reply to MAIL
  rcpt,           ///< waiting for the reply to a RCPT
  data,           ///< waiting for the 354 to DATA
  content,        ///< the application streams the message (send_content / end_content)
  bdat,           ///< BDAT content streamed in chunks (RFC 3030); their replies may arrive
  data_end,       ///< waiting for the reply to the end of data
  rset,           ///< waiting for the reply to RSET
  command,        ///< waiting for the reply to a low-level command (NOOP, VRFY, …)
  quit,           ///< QUIT sent
  closed,         ///< the session ended (221 to QUIT, or 421)
  failed,         ///< a fatal error; see client::error()
};

/// Number of client_state values.
inline constexpr std::size_t client_state_count = 20;

/// The state's name ("awaiting" positions are named after what was sent).
constexpr std::string_view to_string(client_state s) noexcept {
  switch (s) {
    case client_state::tls_handshake:
      return "tls_handshake";
    case client_state::greeting:
      return "greeting";
    case client_state::ehlo:
      return "ehlo";
    case client_state::helo:
      return "helo";
    case client_state::starttls:
      return "starttls";
    case client_state::xclient:
      return "xclient";
    case client_state::auth:
      return "auth";
    case client_state::ready:
      return "ready";
    case client_state::xforward:
      return "xforward";
    case client_state::mail:
      return "mail";
    case client_state::rcpt:
      return "rcpt";
    case client_state::data:
      return "data";
    case client_state::content:
      return "content";
    case client_state::bdat:
      return "bdat";
    case client_state::data_end:
      return "data_end";
    case client_state::rset:
      return "rset";
    case client_state::command:
      return "command";
    case client_state::quit:
      return "quit";
    case client_state::closed:
      return "closed";
    case client_state::failed:
      return "failed";
  }
  return "unknown";
}

/// The class of a reply (RFC 5321 §4.2.1), with 421 apart (§3.8: the
/// server is closing the channel, whatever was asked).
enum class reply_class : std::uint8_t {
  positive_completion,    ///< 2yz
  positive_intermediate,  ///< 3yz
  transient,              ///< 4yz other than 421
  permanent,              ///< 5yz
  service_closing,        ///< 421
};

/// Number of reply_class values.
inline constexpr std::size_t reply_class_count = 5;

/// "2yz", "3yz", "4yz", "5yz" or "421".
constexpr std::string_view to_string(reply_class c) noexcept {
  switch (c) {
    case reply_class::positive_completion:
      return "2yz";
    case reply_class::positive_intermediate:
      return "3yz";
    case reply_class::transient:
      return "4yz";
    case reply_class::permanent:
      return "5yz";
    case reply_class::service_closing:
      return "421";
  }
  return "unknown";
}

/// The class of a valid reply code (200..559).
constexpr reply_class class_of(int code) noexcept {
  if (code == 421) return reply_class::service_closing;
  switch (code / 100) {
    case 2:
      return reply_class::positive_completion;
    case 3:
      return reply_class::positive_intermediate;
    case 4:
      return reply_class::transient;
    default:
      return reply_class::permanent;
  }
}

/// What a reply means in a state.
enum class reply_outcome : std::uint8_t {
  accepted,      ///< the command succeeded (or, for DATA, 354: send the content)
  intermediate,  ///< AUTH: 334, a SASL challenge
  refused,       ///< the command failed (4yz temporary, 5yz permanent)
  unexpected,    ///< a class the command cannot receive: fatal errc::reply_unexpected
  closing,       ///< 421, or any reply to QUIT: the session is over
  unsolicited,   ///< no command in flight: fatal errc::reply_unsolicited
  injection,     ///< tls_handshake: fatal errc::tls_response_injection
  ignored,       ///< closed or failed: the bytes are dropped
};

/// The outcome's name.
constexpr std::string_view to_string(reply_outcome o) noexcept {
  switch (o) {
    case reply_outcome::accepted:
      return "accepted";
    case reply_outcome::intermediate:
      return "intermediate";
    case reply_outcome::refused:
      return "refused";
    case reply_outcome::unexpected:
      return "unexpected";
    case reply_outcome::closing:
      return "closing";
    case reply_outcome::unsolicited:
      return "unsolicited";
    case reply_outcome::injection:
      return "injection";
    case reply_outcome::ignored:
      return "ignored";
  }
  return "unknown";
}

namespace detail {
using ro = reply_outcome;
// Rows in client_state order; columns 2yz, 3yz, 4yz, 5yz, 421.
// RFC 5321 §4.3.2 lists the replies each command may get: 3yz only for DATA
// (354) and, by RFC 4954, for AUTH (334); 421 may come "in response to any
// command". RFC 3030 §2: each BDAT chunk gets a 2yz, 4yz or 5yz reply.
// RFC 5321 §4.1.1.10: "The receiver MUST send a "221 OK" reply" to QUIT,
// and nothing may follow it, so every reply to QUIT ends the session.
// XCLIENT_README: XCLIENT gets 220 (the new greeting) or 4yz/5yz; XFORWARD
// gets 250 or 4yz/5yz, like MAIL.
inline constexpr reply_outcome client_table[client_state_count][reply_class_count] = {
    /* tls_handshake */ {ro::injection, ro::injection, ro::injection, ro::injection, ro::injection},
    /* greeting */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* ehlo     */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* helo     */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* starttls */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* xclient  */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* auth     */ {ro::accepted, ro::intermediate, ro::refused, ro::refused, ro::closing},
    /* ready    */
    {ro::unsolicited, ro::unsolicited, ro::unsolicited, ro::unsolicited, ro::closing},
    /* xforward */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* mail     */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* rcpt     */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* data     */ {ro::unexpected, ro::accepted, ro::refused, ro::refused, ro::closing},
    /* content  */
    {ro::unsolicited, ro::unsolicited, ro::unsolicited, ro::unsolicited, ro::closing},
    /* bdat     */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* data_end */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* rset     */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* command  */ {ro::accepted, ro::unexpected, ro::refused, ro::refused, ro::closing},
    /* quit     */ {ro::closing, ro::closing, ro::closing, ro::closing, ro::closing},
    /* closed   */ {ro::ignored, ro::ignored, ro::ignored, ro::ignored, ro::ignored},
    /* failed   */ {ro::ignored, ro::ignored, ro::ignored, ro::ignored, ro::ignored},
};
}  // namespace detail

/// The transition table: what a reply of class `c` means in state `s`.
constexpr reply_outcome client_transition(client_state s, reply_class c) noexcept {
  return detail::client_table[static_cast<std::size_t>(s)][static_cast<std::size_t>(c)];
}

/// The longest AUTH command line and SASL response line the client sends,
/// CRLF included (RFC 4954 §4). A longer initial response is sent after the
/// first 334 instead of on the AUTH line; a longer response cancels the
/// exchange ("*").
inline constexpr std::size_t auth_line_max = 12288;  ///< fixed by RFC 4954 §4

// ---------------------------------------------------------------------------
// SASL mechanisms
// ---------------------------------------------------------------------------

/// A client SASL mechanism (RFC 4422) as the engine drives it over AUTH
/// (RFC 4954). Messages are DECODED octets; the engine does the base64.
/// Built-in: sasl_plain, sasl_login, sasl_xoauth2, sasl_oauthbearer; other
/// mechanisms (SCRAM, CRAM-MD5: they need a hash library) implement this
/// interface outside the core and are passed to client::authenticate().
class sasl_client_mechanism {
 public:
  /// The mechanism name sent after AUTH ("PLAIN", "SCRAM-SHA-256", …).
  virtual std::string_view name() const noexcept = 0;
  /// Appends the initial response to `out` and sets `present`, or leaves
  /// `present` false to send none (RFC 4954 §4). An empty present response
  /// goes out as "=". Returns errc::ok or an error (nothing is sent).
  virtual errc initial_response(std::string& out, bool& present) = 0;
  /// Appends the response to the decoded server challenge `challenge`;
  /// returning an error makes the engine cancel the exchange with "*".
  virtual errc respond(std::string_view challenge, std::string& out) = 0;
  /// Asked when the server answers 235: errc::ok when the exchange is
  /// complete on this side. A mechanism that authenticates the server too
  /// (SCRAM) returns an error when the server never proved itself (e.g. 235
  /// without server-final); the engine then fails the session with that
  /// error and QUIT instead of reporting success. Default: complete.
  virtual errc finish() noexcept { return errc::ok; }

 protected:
  ~sasl_client_mechanism() = default;
};

/// PLAIN (RFC 4616) with an initial response. The views must outlive the
/// exchange.
class sasl_plain final : public sasl_client_mechanism {
 public:
  /// `authzid` may be empty ("act as myself").
  sasl_plain(std::string_view authcid, std::string_view passwd, std::string_view authzid = {})
      : v_{authzid, authcid, passwd} {}
  std::string_view name() const noexcept override { return "PLAIN"; }
  errc initial_response(std::string& out, bool& present) override {
    present = true;
    return wire::sasl::write_plain(out, v_);
  }
  /// PLAIN has a single message: any challenge is refused.
  errc respond(std::string_view, std::string&) override { return errc::sasl_message_invalid; }

 private:
  wire::sasl::plain v_;
};

/// LOGIN (draft-murchison-sasl-login): user name and password, each in
/// answer to one 334 challenge, by step order. The views must outlive the
/// exchange.
class sasl_login final : public sasl_client_mechanism {
 public:
  sasl_login(std::string_view user, std::string_view passwd) : user_(user), passwd_(passwd) {}
  std::string_view name() const noexcept override { return "LOGIN"; }
  errc initial_response(std::string&, bool& present) override {
    present = false;
    step_ = 0;
    return errc::ok;
  }
  /// The first challenge gets the user name, the second the password, a
  /// third is refused.
  errc respond(std::string_view, std::string& out) override {
    if (step_ >= 2) return errc::sasl_message_invalid;
    return wire::sasl::write_login_response(out, step_++ == 0 ? user_ : passwd_);
  }

 private:
  std::string_view user_, passwd_;
  int step_ = 0;
};

/// XOAUTH2 (Google): user and OAuth 2.0 access token in the initial
/// response. A 334 challenge carries the server's JSON error; the answer is
/// an empty response, after which the server sends the failure reply.
class sasl_xoauth2 final : public sasl_client_mechanism {
 public:
  sasl_xoauth2(std::string_view user, std::string_view token) : v_{user, token} {}
  std::string_view name() const noexcept override { return "XOAUTH2"; }
  errc initial_response(std::string& out, bool& present) override {
    present = true;
    answered_ = false;
    return wire::sasl::write_xoauth2(out, v_);
  }
  errc respond(std::string_view, std::string&) override {
    if (answered_) return errc::sasl_message_invalid;
    answered_ = true;
    return errc::ok;
  }

 private:
  wire::sasl::xoauth2 v_;
  bool answered_ = false;
};

/// OAUTHBEARER (RFC 7628): the GS2 header and the bearer token in the
/// initial response; an error challenge (§3.2.3) is answered with the
/// single ^A the RFC prescribes.
class sasl_oauthbearer final : public sasl_client_mechanism {
 public:
  /// `authzid` in RFC 5801 wire form, may be empty.
  explicit sasl_oauthbearer(std::string_view token, std::string_view authzid = {}) {
    v_.token = token;
    v_.authzid = authzid;
  }
  std::string_view name() const noexcept override { return "OAUTHBEARER"; }
  errc initial_response(std::string& out, bool& present) override {
    present = true;
    answered_ = false;
    return wire::sasl::write_oauthbearer(out, v_);
  }
  errc respond(std::string_view, std::string& out) override {
    if (answered_) return errc::sasl_message_invalid;
    answered_ = true;
    out.append(wire::sasl::oauthbearer_error_ack);
    return errc::ok;
  }

 private:
  wire::sasl::oauthbearer v_;
  bool answered_ = false;
};

/// What authenticate(const credentials&) may use; the views must outlive
/// the exchange.
struct credentials {
  std::string_view user;      ///< authentication identity (PLAIN authcid, LOGIN user, OAuth user)
  std::string_view password;  ///< PLAIN/LOGIN password; empty when using a token
  std::string_view token;     ///< OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER); empty when none
  std::string_view authzid;   ///< PLAIN / OAUTHBEARER authorization identity; usually empty
};

// ---------------------------------------------------------------------------
// Envelope and events
// ---------------------------------------------------------------------------

/// The DSN requests for one recipient (RFC 3461 §4.1, §4.2); see
/// envelope::dsn.
struct recipient_dsn {
  /// NOTIFY as wire::notify_flags bits: wire::notify_never alone, or any
  /// non-empty set of notify_success, notify_failure, notify_delay; 0 sends
  /// no NOTIFY. Another value makes send_mail() fail with
  /// errc::notify_invalid.
  std::uint8_t notify = 0;
  /// ORCPT's addr-type (RFC 3461 §4.2: an atom such as "rfc822").
  std::string_view orcpt_type = "rfc822";
  /// ORCPT's address as plain octets (e.g. "Bob@Example.COM"), xtext-encoded
  /// by the engine; empty sends no ORCPT. At most 500 octets with addr-type
  /// and ";" once encoded (RFC 3461 §4.2), else errc::param_value_invalid.
  std::string_view orcpt;
};

/// One message's envelope and its MAIL parameters. The strings and arrays
/// must stay valid until the transaction's final event.
struct envelope {
  /// The reverse-path mailbox without brackets ("alice@example.org"); empty
  /// for the null reverse-path "<>".
  std::string_view from;
  const std::string_view* recipients = nullptr;  ///< forward-path mailboxes, without brackets
  std::size_t recipient_count = 0;               ///< 1..client_config::max_recipients
  /// Message size for SIZE= (RFC 1870), when the server offers SIZE; 0 = not
  /// declared. A size above the server's advertised limit is refused before
  /// anything is sent (errc::message_too_big).
  std::uint64_t size = 0;
  /// BODY= (RFC 6152, RFC 3030): eight_bit_mime needs the server's 8BITMIME
  /// (errc::data_8bit_not_offered otherwise); binary_mime needs CHUNKING and
  /// BINARYMIME (errc::data_binary_not_offered otherwise) and always sends
  /// the content with BDAT, byte for byte. Under seven_bit, content octets
  /// >= 0x80 fail the session (errc::data_8bit_not_declared) before they
  /// are sent.
  wire::body_type body = wire::body_type::seven_bit;
  /// Declare SMTPUTF8 (RFC 6531 §3.4); set automatically when an address is
  /// not ASCII. Needs the server's SMTPUTF8 (errc::utf8_not_allowed).
  bool smtputf8 = false;
  /// Declare REQUIRETLS (RFC 8689 §4.1): only over TLS and when offered
  /// (errc::requiretls_not_offered otherwise).
  bool requiretls = false;
  /// RET (RFC 3461 §4.3): a DSN returns the whole message (full) or its
  /// headers (hdrs); empty sends no RET. Like ENVID and envelope::dsn it
  /// needs the server's DSN (errc::dsn_not_offered otherwise, unless
  /// client_config::drop_dsn_when_not_offered).
  std::optional<wire::ret_type> ret;
  /// ENVID (RFC 3461 §4.4): the envelope identifier as plain printable
  /// US-ASCII (errc::api_value_invalid otherwise), xtext-encoded by the
  /// engine; at most 100 octets once encoded (errc::param_value_invalid).
  /// Empty sends no ENVID.
  std::string_view envid;
  /// Per-recipient NOTIFY and ORCPT (RFC 3461), recipient_count entries, or
  /// nullptr for none.
  const recipient_dsn* dsn = nullptr;
  /// Further MAIL parameters as written (e.g. "MT-PRIORITY=3"), after the
  /// engine's own; the whole set must parse as MAIL parameters
  /// (wire::parse_mail_params: no keyword twice, e.g. no RET here when
  /// `ret` is set), never containing CR, LF or NUL.
  std::string_view mail_params;
  /// Per-recipient RCPT parameters (e.g. "X-TAG=1"), recipient_count
  /// entries, or nullptr for none; checked as mail_params, with
  /// wire::parse_rcpt_params.
  const std::string_view* rcpt_params = nullptr;
  /// BY (RFC 2852 §4): time in seconds, |time| <= 999999999, greater than
  /// zero in R mode and not below the server's DELIVERBY min-by-time then
  /// (errc::param_value_invalid otherwise). Needs the server's DELIVERBY
  /// (errc::deliverby_not_offered; see drop_optional_params_when_not_offered).
  std::optional<wire::deliver_by> by;
  /// MT-PRIORITY (RFC 6710 §3): -9..9 (errc::param_value_invalid otherwise).
  /// Needs the server's MT-PRIORITY (errc::mt_priority_not_offered).
  std::optional<int> mt_priority;
  /// RRVS (RFC 7293 §3) per recipient: recipient_count entries or nullptr;
  /// an entry with an empty date_time sends none. date_time is an RFC 3339
  /// date-time, action 0 (none), 'R' or 'C' (errc::param_value_invalid
  /// otherwise). Needs the server's RRVS (errc::rrvs_not_offered).
  const wire::rrvs_param* rrvs = nullptr;
  /// HOLDFOR (RFC 4865 §3): seconds to hold the message, at most 999999999
  /// and at most the server's max-future-release-interval
  /// (errc::param_value_invalid). Needs the server's FUTURERELEASE
  /// (errc::futurerelease_not_offered); never with holduntil
  /// (errc::param_conflict).
  std::optional<std::uint32_t> holdfor;
  /// HOLDUNTIL (RFC 4865 §3): an RFC 3339 date-time (errc::param_value_invalid
  /// otherwise); empty sends none. Needs FUTURERELEASE, like holdfor. Its
  /// comparison with the server's max-future-release-date-time is left to
  /// the server.
  std::string_view holduntil;
  /// XFORWARD attributes for this message's transactions, or nullptr for
  /// client_config::xforward. Checked by send_mail() (the xclient.hpp
  /// errors); sent only when the server lists XFORWARD, only the attributes
  /// it lists.
  const wire::xattributes* xforward = nullptr;
};

/// Which step of a transaction failed (message_rejected).
enum class rejection_stage : std::uint8_t {
  mail,        ///< MAIL refused
  recipients,  ///< no recipient accepted
  data,        ///< DATA refused
  content,     ///< the reply to the end of data was negative
  xforward,    ///< XFORWARD refused (before MAIL)
};

/// "mail", "recipients", "data", "content" or "xforward".
constexpr std::string_view to_string(rejection_stage s) noexcept {
  switch (s) {
    case rejection_stage::mail:
      return "mail";
    case rejection_stage::recipients:
      return "recipients";
    case rejection_stage::data:
      return "data";
    case rejection_stage::content:
      return "content";
    case rejection_stage::xforward:
      return "xforward";
  }
  return "unknown";
}

/// Why recipients of a message were not attempted.
enum class not_attempted_reason : std::uint8_t {
  transaction_limit,    ///< the server's LIMITS MAILMAX (RFC 9422) is used up
  transaction_refused,  ///< MAIL (or XFORWARD) refused: see the message_rejected before
  output_full,          ///< output() was not drained enough to open the next transaction
  session_ended,        ///< 421, or a fatal error, before these recipients were answered
};
/// "transaction_limit", "transaction_refused", "output_full" or "session_ended".
constexpr std::string_view to_string(not_attempted_reason r) noexcept {
  switch (r) {
    case not_attempted_reason::transaction_limit:
      return "transaction_limit";
    case not_attempted_reason::transaction_refused:
      return "transaction_refused";
    case not_attempted_reason::output_full:
      return "output_full";
    case not_attempted_reason::session_ended:
      return "session_ended";
  }
  return "unknown";
}

/// The events of a client session. Reply views: see wire::reply_view (code,
/// enhanced code, lines, raw bytes; is_transient() / is_permanent()).
namespace client_events {
/// The server's 220 greeting.
struct greeting {
  wire::reply_view reply;
};
/// The capabilities of the last EHLO (or an empty set after HELO).
struct capabilities {
  const wire::capabilities* caps;  ///< valid until the next EHLO
  bool extended;                   ///< false after the HELO fallback
  bool tls;                        ///< learned over TLS
};
/// STARTTLS got 220: run the TLS handshake now, then call tls_established().
/// Nothing more is read in clear.
struct start_tls {
  wire::reply_view reply;
};
/// The session is idle: authenticate, send_mail, command or quit.
struct ready {};
/// The end of an AUTH exchange (RFC 4954 §6: 235 success; 535, 534, 454,
/// 501, … failure). The session stays usable either way.
struct auth_result {
  bool success;
  std::string_view mechanism;  ///< the mechanism name
  wire::reply_view reply;
};
/// The reply to one RCPT (not sent after MAIL was refused).
struct recipient {
  std::size_t index;         ///< into envelope::recipients
  std::string_view address;  ///< envelope::recipients[index]
  bool accepted;             ///< 2yz (250, 251, 252)
  wire::reply_view reply;
};
/// DATA got 354 (BDAT: the RCPT replies are in) and at least one recipient
/// was accepted: call send_content() with the message, then end_content().
/// Under LIMITS the same message is streamed once per transaction.
struct send_content {
  std::size_t transaction = 0;  ///< 0 for the message's first transaction, then 1, 2, …
};
/// LMTP only (RFC 2033 §4.2): the reply for one accepted recipient after
/// the content, in recipient order; message_accepted or message_rejected
/// (stage content) follows the last one.
struct delivery {
  std::size_t index;         ///< into envelope::recipients
  std::string_view address;  ///< envelope::recipients[index]
  bool delivered;            ///< 2yz
  wire::reply_view reply;
};
/// The message was accepted for the accepted recipients (LMTP: for at least
/// one of them; `recipients` counts the deliveries, `reply` is the last one).
struct message_accepted {
  std::size_t recipients;  ///< accepted recipients (LMTP: delivered ones)
  wire::reply_view reply;
};
/// The message was not transmitted (mail, recipients, data) or was refused
/// after its content (content). reply.is_transient(): try again later.
struct message_rejected {
  rejection_stage stage;
  wire::reply_view reply;
};
/// The reply to a low-level command (NOOP, RSET, VRFY, EXPN, HELP).
struct command_reply {
  wire::verb verb;
  wire::reply_view reply;
};
/// Recipients of the message that got no recipient event: their RCPT was
/// never sent or never answered within an open transaction. Send them again
/// (another connection for transaction_limit). Comes once, before the
/// message's last event.
struct recipients_not_attempted {
  /// Indices into envelope::recipients, ascending; valid until the next
  /// call on the engine.
  const std::uint32_t* indices;
  std::size_t count;  ///< >= 1
  not_attempted_reason reason;
};
/// XCLIENT took effect: its last line got 220 (Postfix XCLIENT_README);
/// EHLO has been sent again.
struct xclient_accepted {
  wire::reply_view reply;
};
/// The session ended: 221 to QUIT, or 421 at any time. Close the connection.
struct closed {
  wire::reply_view reply;
};
/// A fatal error; the session is over. `reply` is the offending reply when
/// there is one (its code is 0 otherwise). Flush output() (it may hold a
/// final QUIT), then close the connection.
struct error {
  errc code;
  wire::reply_view reply;
};
}  // namespace client_events

/// One event, or std::monostate when the engine needs more input.
using client_event =
    std::variant<std::monostate, client_events::greeting, client_events::capabilities,
                 client_events::start_tls, client_events::ready, client_events::auth_result,
                 client_events::recipient, client_events::send_content, client_events::delivery,
                 client_events::message_accepted, client_events::message_rejected,
                 client_events::command_reply, client_events::closed, client_events::error,
                 client_events::recipients_not_attempted, client_events::xclient_accepted>;

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// A sans-I/O SMTP client session. Not thread-safe; one per connection.
class client {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// A session about to read the greeting (or, under tls_policy::implicit,
  /// to be told that TLS is up). Allocates every buffer it will use.
  explicit client(const client_config& cfg = {});

  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Back to the state of a new connection with the same configuration,
  /// keeping every buffer (no allocation): for the next connection.
  void reset() noexcept;

  /// errc::api_value_invalid when client_config::local_name is not a domain
  /// or address literal, or client_config::xclient / xforward holds a value
  /// wire::write_xcommands refuses (then the engine is in state failed), else
  /// errc::ok.
  errc config_error() const noexcept { return config_error_; }

  // -- bytes in, events out --------------------------------------------------

  /// Stores server bytes (decrypted, when TLS is up) for next_event();
  /// returns how many were taken: fewer than given when the input buffer is
  /// full (pull events, then pass the rest). In tls_handshake state any
  /// byte is a response injection and fails the session; in closed and
  /// failed states bytes are taken and dropped.
  std::size_t receive(std::string_view bytes) noexcept;

  /// The next event, or std::monostate when more input is needed (or the
  /// session is over). Views in the event are valid until the next call on
  /// the engine.
  client_event next_event() noexcept;

  /// Bytes to send to the server, valid until the next call that changes
  /// output (consume_output, or any call that sends a command).
  std::string_view output() const noexcept {
    return std::string_view(out_).substr(out_pos_, visible_end() - out_pos_);
  }
  /// Marks the first `n` bytes of output() as sent (n is capped at its size).
  void consume_output(std::size_t n) noexcept;

  // -- TLS --------------------------------------------------------------------

  /// Reports the TLS handshake done (after start_tls, or at the start of an
  /// implicit-TLS session). Forgets everything learned in clear and sends
  /// EHLO again (or waits for the greeting under implicit TLS). Errors:
  /// api_bad_state outside tls_handshake; tls_response_injection (fatal)
  /// when plaintext arrived after the 220.
  errc tls_established(const tls_info& info) noexcept;

  /// Reports a failed TLS handshake (after start_tls, or at the start of an
  /// implicit-TLS session): the session fails with an error event carrying
  /// errc::tls_handshake_failed, and nothing more is sent — no QUIT in clear
  /// over a connection whose TLS state is unknown. Close the connection.
  /// Returns errc::ok, or api_bad_state outside tls_handshake (nothing
  /// changes then).
  errc tls_failed() noexcept;

  /// True once TLS is up.
  bool tls_active() const noexcept { return tls_; }
  /// The TLS facts reported by tls_established() (views owned by the adapter).
  const tls_info& tls() const noexcept { return tls_info_; }

  // -- high level --------------------------------------------------------------

  /// Starts AUTH (RFC 4954) with `mech`, which must outlive the exchange.
  /// Allowed in ready. Errors (nothing sent): api_bad_state; auth_requires_tls
  /// without TLS unless auth_in_clear; auth_not_offered when the server's
  /// last EHLO did not list the mechanism; the mechanism's own error for a
  /// value it cannot encode.
  errc authenticate(sasl_client_mechanism& mech);

  /// Picks the mechanism from what the server offers (OAUTHBEARER, XOAUTH2
  /// with a token; PLAIN, LOGIN with a password) and starts AUTH. Errors as
  /// authenticate(mech), auth_not_offered when no mechanism fits.
  errc authenticate(const credentials& c);

  /// Starts a message: [XFORWARD…], MAIL, RCPT for each recipient, DATA —
  /// in one flight when PIPELINING is offered and enabled (with BDAT: MAIL
  /// and the RCPTs; the chunks follow the RCPT replies), and under LIMITS
  /// as many transactions as RCPTMAX / RCPTDOMAINMAX need (see the top
  /// comment). Allowed in ready. All checks happen before anything is
  /// written (nothing is sent on error): mailmax_reached (the server's
  /// MAILMAX is used up on this connection);
  /// api_bad_state (state, or output full), api_value_invalid (no or too
  /// many recipients, an ENVID that is not printable US-ASCII), the
  /// path.hpp errors for a bad address, command_value_invalid for
  /// parameters that would put CR, LF or NUL on the wire, the params.hpp
  /// errors for parameters that do not parse back (param_syntax,
  /// param_duplicate, notify_invalid, param_value_invalid for a too long
  /// ENVID or ORCPT, …), message_too_big, data_8bit_not_offered,
  /// data_binary_not_offered (BINARYMIME without the server's CHUNKING and
  /// BINARYMIME), dsn_not_offered, utf8_not_allowed,
  /// requiretls_not_offered, deliverby_not_offered, mt_priority_not_offered,
  /// rrvs_not_offered, futurerelease_not_offered, param_value_invalid and
  /// param_conflict for the values of BY, MT-PRIORITY, RRVS, HOLDFOR and
  /// HOLDUNTIL, the xclient.hpp errors for envelope::xforward.
  errc send_mail(const envelope& env);

  /// Streams message octets after the send_content event. DATA: dot-stuffed
  /// by wire::data_encoder (bare CR / LF sent as CRLF). BDAT: into the open
  /// chunk, line ends normalised the same way but never dot-stuffed, and
  /// under BINARYMIME byte for byte. Returns the octets taken: fewer when
  /// output is full (drain it and pass the rest), or, with BDAT without
  /// PIPELINING, when a chunk's reply is due (pass the rest after the next
  /// reply). Errors: api_bad_state (also after a refused BDAT chunk);
  /// data_nul (not under BINARYMIME) and data_8bit_not_declared fail the
  /// session (the server is mid-message: nothing can repair it).
  result<std::size_t> send_content(std::string_view chunk) noexcept;

  /// Ends the message: DATA's "." line, or BDAT's LAST chunk (sent once the
  /// reply to the chunk before it is in, without PIPELINING); a CRLF is
  /// added when text content lacks one (not under BINARYMIME). Errors:
  /// api_bad_state (not in content, or output full).
  errc end_content() noexcept;

  /// Sends QUIT (allowed in ready). Errors: api_bad_state.
  errc quit();

  // -- low level ---------------------------------------------------------------

  /// Sends one of NOOP, RSET, VRFY, EXPN, HELP with `argument` (required for
  /// VRFY and EXPN, optional for NOOP and HELP, none for RSET); its reply
  /// comes as a command_reply event. Allowed in ready. Errors:
  /// api_bad_state; api_value_invalid for another verb;
  /// command_value_invalid for an argument the writer refuses.
  errc command(wire::verb v, std::string_view argument = {});

  // -- time ------------------------------------------------------------------

  /// When the current wait expires: the time of the first check_time() call
  /// since the wait began, plus its timeout; nullopt when no reply is
  /// awaited or the clock of this wait has not been started yet.
  std::optional<time_point> deadline() const noexcept;

  /// Tells the engine the time: starts the clock of a new wait, or fails the
  /// session with errc::timeout (an error event) when `now` is past the
  /// deadline. Call it after receive(), after sending output and when
  /// deadline() passes.
  void check_time(time_point now) noexcept;

  // -- inspection --------------------------------------------------------------

  client_state state() const noexcept { return state_; }
  /// The fatal error, errc::ok when none.
  errc error() const noexcept { return error_; }
  /// The capabilities of the last EHLO (empty before, and after STARTTLS
  /// until the new EHLO reply).
  const wire::capabilities& capabilities() const noexcept { return ehlo_.value(); }
  /// True after a 235 to AUTH.
  bool authenticated() const noexcept { return authenticated_; }
  /// MAIL commands sent on this connection (what the server's LIMITS
  /// MAILMAX counts).
  std::size_t transactions() const noexcept { return mails_sent_; }
  /// Octets allocated by the constructor for all buffers.
  std::size_t buffer_capacity() const noexcept {
    return in_.capacity() + out_.capacity() + caps_buf_.capacity() + scratch_.capacity() +
           reader_.buffer_capacity() + pending_.capacity() * sizeof(pending) +
           (accepted_index_.capacity() + batch_.capacity() + domains_.capacity() +
            unattempted_.capacity()) *
               sizeof(std::uint32_t) +
           rstate_.capacity();
  }

 private:
  enum class kind : std::uint8_t {
    xforward,
    mail,
    rcpt,
    data,
    bdat,
    data_end,
    discard_end,
    rset,
    command
  };
  // Per recipient of the message (rstate_).
  static constexpr std::uint8_t rs_waiting = 0;   // in no transaction yet
  static constexpr std::uint8_t rs_batched = 1;   // in the current transaction
  static constexpr std::uint8_t rs_reported = 2;  // its recipient event was emitted
  // Room kept for a chunk's BDAT command line, written when the chunk is
  // sealed (wire::bdat_command holds at most 31 octets).
  static constexpr std::size_t chunk_gap = 32;
  static constexpr std::size_t no_chunk = static_cast<std::size_t>(-1);
  struct pending {
    kind k;
    std::uint32_t index;  // rcpt: recipient index; command: verb
  };

  std::chrono::seconds timeout_of(client_state s) const noexcept;
  void set_state(client_state s) noexcept {
    state_ = s;
    wait_started_ = false;
  }
  void push_event(const client_event& e) noexcept {
    // Sized for the most one reply can cause (e.g. delivery,
    // message_accepted, recipients_not_attempted, ready).
    if (ev_count_ < events_.size()) events_[(ev_head_ + ev_count_++) % events_.size()] = e;
  }
  void fail(errc e, wire::reply_view r = {}, bool send_quit = false);
  void become_ready() noexcept {
    set_state(client_state::ready);
    push_event(client_events::ready{});
  }
  std::size_t out_free() noexcept;
  bool write(const wire::command& c);
  void send_ehlo();
  void send_helo();
  void after_ehlo();
  void handle(const wire::reply_view& r);
  void handle_setup(reply_outcome o, const wire::reply_view& r);
  void handle_auth(reply_outcome o, const wire::reply_view& r);
  void handle_txn(reply_outcome o, const wire::reply_view& r);
  bool send_next_txn_command();
  errc write_mail(const envelope& env);
  errc write_rcpt(const envelope& env, std::size_t i);
  std::size_t rcpt_estimate(const envelope& env, std::size_t i) const noexcept;
  std::size_t txn_recipient_cap() const noexcept;
  bool mailmax_reached() const noexcept;
  void plan_batch();
  void open_transaction();
  void write_flight(bool written);
  void end_transaction();
  void finish_message(not_attempted_reason why);
  void report_unattempted(not_attempted_reason why) noexcept;
  const wire::xattributes* xforward_of(const envelope& env) const noexcept;
  void send_x_line();
  static bool has_attributes(const wire::xattributes& x) noexcept { return !x.empty(); }
  void follow_pending() noexcept;
  std::size_t visible_end() const noexcept {
    return chunk_at_ == no_chunk ? out_.size() : chunk_at_;
  }
  void drop_chunk() noexcept {
    if (chunk_at_ != no_chunk) out_.resize(chunk_at_);
    chunk_at_ = no_chunk;
  }
  void begin_bdat();
  bool may_seal(bool last);
  void seal(bool last);
  result<std::size_t> send_chunks(std::string_view in) noexcept;
  static bool has_8bit(std::string_view s) noexcept;
  void append_normalised(std::string_view part);
  errc end_chunks() noexcept;
  void store_capabilities(const wire::reply_view& r);
  void send_auth_response(std::string_view b64_challenge);
  void check_injection() noexcept {
    if (state_ == client_state::tls_handshake && (in_pos_ < in_.size() || !reader_.idle()))
      fail(errc::tls_response_injection);
  }

  client_config cfg_;
  std::string local_name_;
  wire::address_kind local_kind_ = wire::address_kind::domain;
  errc config_error_ = errc::ok;
  client_state state_;
  errc error_ = errc::ok;
  bool tls_ = false;
  tls_info tls_info_;
  bool authenticated_ = false;
  bool extended_ = false;  // the last hello was EHLO

  std::string in_;
  std::size_t in_pos_ = 0;
  std::string out_;
  std::size_t out_pos_ = 0;
  wire::reply_reader reader_;
  std::string caps_buf_;
  wire::ehlo_reader ehlo_;
  std::string scratch_;

  std::array<client_event, 8> events_{};
  std::size_t ev_head_ = 0, ev_count_ = 0;

  std::vector<pending> pending_;
  std::size_t pend_head_ = 0;

  // transaction
  envelope env_{};
  bool pipelined_ = false;
  std::size_t rcpt_sent_ = 0;
  std::size_t accepted_ = 0;
  std::size_t delivered_ = 0;                  // LMTP: 2yz after the content
  std::vector<std::uint32_t> accepted_index_;  // LMTP: who gets a reply after the content
  bool mail_ok_ = false;
  bool rejected_ = false;  // message_rejected already emitted for this transaction
  wire::data_encoder encoder_;
  wire::path_options path_opt_{};
  bool use_dsn_ = false;  // this transaction sends its DSN parameters
  bool use_by_ = false, use_mt_priority_ = false, use_rrvs_ = false;  // dropped when false

  // the message's transactions (LIMITS, RFC 9422)
  std::vector<std::uint8_t> rstate_;        // rs_* per recipient of the message
  std::vector<std::uint32_t> batch_;        // the current transaction's recipients, in order
  std::vector<std::uint32_t> domains_;      // one recipient per distinct domain of batch_
  std::vector<std::uint32_t> unattempted_;  // what recipients_not_attempted lists
  std::size_t waiting_ = 0;                 // recipients in no transaction yet
  std::size_t rcpt_replied_ = 0;            // RCPT replies of the current transaction
  std::size_t transaction_ = 0;             // the current transaction's number in the message
  std::size_t mails_sent_ = 0;              // MAIL commands on this connection
  bool in_message_ = false;                 // between send_mail() and the message's end
  bool stop_message_ = false;               // MAIL or XFORWARD refused: no further transaction

  // XCLIENT / XFORWARD lines, written into scratch_ and sent one at a time
  std::size_t x_pos_ = 0;
  bool xclient_done_ = false;

  // BDAT (RFC 3030)
  bool bdat_ = false;                // this transaction sends its content with BDAT
  std::size_t chunk_at_ = no_chunk;  // out_ offset of the open chunk (its command gap)
  bool ended_ = false;               // end_content() was called
  bool blocked_ = false;             // send_content stopped: a chunk waits to be sealed
  bool end_pending_ = false;         // the LAST chunk waits for the reply to the one before
  bool cr_pending_ = false;          // the content so far ends in a CR (its LF may follow)
  bool ends_lf_ = false;             // the content so far ends in LF (so in CRLF)
  std::uint64_t content_octets_ = 0;

  // auth
  sasl_client_mechanism* mech_ = nullptr;
  bool deferred_ir_ = false;  // scratch_ holds an initial response held back for the 334
  std::optional<sasl_plain> plain_;
  std::optional<sasl_login> login_;
  std::optional<sasl_xoauth2> xoauth2_;
  std::optional<sasl_oauthbearer> oauthbearer_;

  // time
  bool wait_started_ = false;
  time_point wait_start_{};
};

// ---------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------

inline client::client(const client_config& cfg)
    : cfg_(cfg),
      local_name_(cfg.local_name),
      state_(cfg.tls == tls_policy::implicit ? client_state::tls_handshake
                                             : client_state::greeting),
      reader_(cfg.reply) {
  if (cfg_.max_recipients < 1) cfg_.max_recipients = 1;
  if (cfg_.input_buffer < 512) cfg_.input_buffer = 512;
  if (cfg_.output_buffer < 16384) cfg_.output_buffer = 16384;
  cfg_.local_name = local_name_;
  in_.reserve(cfg_.input_buffer);
  out_.reserve(cfg_.output_buffer);
  caps_buf_.reserve(reader_.options().max_reply_bytes);
  // A SASL message: the largest OAuth token and its framing, then base64;
  // at least the XCLIENT / XFORWARD lines (one per attribute at worst, each
  // at most 512 octets).
  scratch_.reserve(std::max<std::size_t>(2 * wire::sasl::options{}.max_token + 1024, 8192));
  pending_.reserve(cfg_.max_recipients + 4);
  accepted_index_.reserve(cfg_.max_recipients);
  rstate_.reserve(cfg_.max_recipients);
  batch_.reserve(cfg_.max_recipients);
  domains_.reserve(cfg_.max_recipients);
  unattempted_.reserve(cfg_.max_recipients);
  // EHLO takes a domain or an address literal (RFC 5321 §4.1.1.1).
  if (!local_name_.empty() && local_name_.front() == '[') {
    const auto lit = wire::parse_address_literal(local_name_);
    if (lit) local_kind_ = lit->kind;
  }
  wire::command probe;
  probe.kind = wire::verb::ehlo;
  probe.domain = local_name_;
  probe.domain_kind = local_kind_;
  const std::size_t old = out_.size();
  bool bad = wire::write_command(out_, probe) != errc::ok;
  out_.resize(old);
  // XCLIENT / XFORWARD values, checked once against every attribute name.
  std::size_t lines = 0;
  if (has_attributes(cfg_.xclient) &&
      wire::write_xcommands(scratch_, wire::xcommand::xclient, cfg_.xclient, 0xffff, lines) !=
          errc::ok)
    bad = true;
  if (has_attributes(cfg_.xforward) &&
      wire::write_xcommands(scratch_, wire::xcommand::xforward, cfg_.xforward, 0xffff, lines) !=
          errc::ok)
    bad = true;
  scratch_.clear();
  if (bad) {
    config_error_ = errc::api_value_invalid;
    error_ = errc::api_value_invalid;
    state_ = client_state::failed;
  }
}

inline void client::reset() noexcept {
  if (config_error_ != errc::ok) return;
  state_ = cfg_.tls == tls_policy::implicit ? client_state::tls_handshake : client_state::greeting;
  error_ = errc::ok;
  tls_ = false;
  tls_info_ = tls_info{};
  authenticated_ = false;
  extended_ = false;
  in_.clear();
  in_pos_ = 0;
  out_.clear();
  out_pos_ = 0;
  reader_.reset();
  caps_buf_.clear();
  ehlo_.reset();
  std::fill(scratch_.begin(), scratch_.end(), '\0');
  scratch_.clear();
  ev_head_ = ev_count_ = 0;
  pending_.clear();
  pend_head_ = 0;
  accepted_index_.clear();
  env_ = envelope{};
  mech_ = nullptr;
  deferred_ir_ = false;
  bdat_ = false;
  chunk_at_ = no_chunk;
  wait_started_ = false;
  rstate_.clear();
  batch_.clear();
  domains_.clear();
  unattempted_.clear();
  waiting_ = rcpt_replied_ = transaction_ = mails_sent_ = 0;
  in_message_ = stop_message_ = false;
  x_pos_ = 0;
  xclient_done_ = false;
}

inline std::chrono::seconds client::timeout_of(client_state s) const noexcept {
  switch (s) {
    case client_state::greeting:
      return cfg_.timeouts.greeting;
    case client_state::mail:
    case client_state::xforward:
      return cfg_.timeouts.mail;
    case client_state::rcpt:
      return cfg_.timeouts.rcpt;
    case client_state::data:
      return cfg_.timeouts.data_init;
    case client_state::data_end:
    case client_state::bdat:
      return cfg_.timeouts.data_term;
    case client_state::tls_handshake:
      return cfg_.timeouts.tls_handshake;
    default:
      return cfg_.timeouts.other;
  }
}

inline std::optional<client::time_point> client::deadline() const noexcept {
  switch (state_) {
    case client_state::ready:
    case client_state::content:
    case client_state::closed:
    case client_state::failed:
      return std::nullopt;
    case client_state::bdat:
      // Streaming chunks: a wait runs only while a chunk's reply is due.
      if (pend_head_ >= pending_.size()) return std::nullopt;
      break;
    default:
      break;
  }
  if (!wait_started_) return std::nullopt;
  return wait_start_ + timeout_of(state_);
}

inline void client::check_time(time_point now) noexcept {
  switch (state_) {
    case client_state::ready:
    case client_state::content:
    case client_state::closed:
    case client_state::failed:
      return;
    case client_state::bdat:
      if (pend_head_ >= pending_.size()) return;
      break;
    default:
      break;
  }
  if (!wait_started_) {
    wait_started_ = true;
    wait_start_ = now;
    return;
  }
  if (now >= wait_start_ + timeout_of(state_)) fail(errc::timeout);
}

inline void client::fail(errc e, wire::reply_view r, bool send_quit) {
  if (state_ == client_state::failed) return;
  report_unattempted(not_attempted_reason::session_ended);
  error_ = e;
  state_ = client_state::failed;
  drop_chunk();
  pending_.clear();
  pend_head_ = 0;
  if (mech_ != nullptr) {
    // Drop any credential bytes still waiting in scratch.
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
    mech_ = nullptr;
    deferred_ir_ = false;
  }
  // The stream is still in step with the server only after a complete,
  // well-formed refusal; then QUIT is the polite end (RFC 5321 §4.1.1.10).
  if (send_quit && out_free() >= 6) out_.append("QUIT\r\n");
  push_event(client_events::error{e, r});
}

inline std::size_t client::out_free() noexcept {
  if (out_pos_ != 0 && out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ != 0 && chunk_at_ != no_chunk) {
    // An open chunk grows at the end: give it the space already sent.
    out_.erase(0, out_pos_);
    chunk_at_ -= out_pos_;
    out_pos_ = 0;
  }
  return cfg_.output_buffer - out_.size();
}

inline void client::consume_output(std::size_t n) noexcept {
  const std::size_t left = visible_end() - out_pos_;
  out_pos_ += n < left ? n : left;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ >= cfg_.output_buffer / 2) {
    // Keep the free space at the end without reallocating.
    out_.erase(0, out_pos_);
    if (chunk_at_ != no_chunk) chunk_at_ -= out_pos_;
    out_pos_ = 0;
  }
}

inline bool client::write(const wire::command& c) {
  return wire::write_command(out_, c, wire::command_options{path_opt_}) == errc::ok;
}

inline std::size_t client::receive(std::string_view bytes) noexcept {
  if (state_ == client_state::closed || state_ == client_state::failed) return bytes.size();
  if (state_ == client_state::tls_handshake) {
    if (!bytes.empty()) fail(errc::tls_response_injection);
    return bytes.size();
  }
  if (ev_count_ == 0 && in_pos_ != 0) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  const std::size_t room = cfg_.input_buffer - in_.size();
  const std::size_t n = bytes.size() < room ? bytes.size() : room;
  in_.append(bytes.data(), n);
  return n;
}

inline client_event client::next_event() noexcept {
  for (;;) {
    if (ev_count_ != 0) {
      client_event e = events_[ev_head_];
      ev_head_ = (ev_head_ + 1) % events_.size();
      --ev_count_;
      return e;
    }
    if (state_ == client_state::tls_handshake) {
      check_injection();
      if (ev_count_ != 0) continue;
      return std::monostate{};
    }
    if (state_ == client_state::closed || state_ == client_state::failed) return std::monostate{};
    const wire::reply_result r = reader_.read(std::string_view(in_).substr(in_pos_));
    in_pos_ += r.consumed;
    if (r.status == wire::reply_status::need_more) {
      in_.clear();
      in_pos_ = 0;
      return std::monostate{};
    }
    if (r.status == wire::reply_status::error) {
      fail(r.error);
      continue;
    }
    handle(r.reply);
  }
}

inline void client::handle(const wire::reply_view& r) {
  const reply_outcome o = client_transition(state_, class_of(r.code()));
  switch (o) {
    case reply_outcome::closing:
      drop_chunk();
      pending_.clear();
      pend_head_ = 0;
      report_unattempted(not_attempted_reason::session_ended);
      set_state(client_state::closed);
      push_event(client_events::closed{r});
      return;
    case reply_outcome::unexpected:
      fail(errc::reply_unexpected, r);
      return;
    case reply_outcome::unsolicited:
      fail(errc::reply_unsolicited, r);
      return;
    case reply_outcome::injection:
      fail(errc::tls_response_injection, r);
      return;
    case reply_outcome::ignored:
      return;
    default:
      break;
  }
  switch (state_) {
    case client_state::greeting:
    case client_state::ehlo:
    case client_state::helo:
    case client_state::starttls:
    case client_state::xclient:
      handle_setup(o, r);
      return;
    case client_state::auth:
      handle_auth(o, r);
      return;
    default:
      handle_txn(o, r);
      return;
  }
}

inline void client::send_ehlo() {
  wire::command c;
  c.kind = cfg_.lmtp ? wire::verb::lhlo : wire::verb::ehlo;
  c.domain = local_name_;
  c.domain_kind = local_kind_;
  (void)write(c);  // checked by the constructor
  ehlo_.reset();
  set_state(client_state::ehlo);
}

inline void client::send_helo() {
  wire::command c;
  c.kind = wire::verb::helo;
  c.domain = local_name_;
  if (!write(c)) {
    // An address literal is valid for EHLO but not for HELO (RFC 5321
    // §4.1.1.1); nothing else can be said.
    fail(errc::hello_refused, {}, true);
    return;
  }
  set_state(client_state::helo);
}

inline void client::store_capabilities(const wire::reply_view& r) {
  // The capability views must outlive this reply: keep a copy of it.
  caps_buf_.assign(r.raw().data(), r.raw().size());
  ehlo_.reset();
  std::string_view rest = caps_buf_;
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    (void)ehlo_.add_line(line.size() > 4 ? line.substr(4) : std::string_view{});
    rest.remove_prefix(eol + 2);
  }
}

inline void client::after_ehlo() {
  const bool want_tls = cfg_.tls == tls_policy::opportunistic || cfg_.tls == tls_policy::required;
  if (!tls_ && want_tls && extended_ && ehlo_.value().has(wire::capability::starttls)) {
    out_.append("STARTTLS\r\n");
    set_state(client_state::starttls);
    return;
  }
  if (!tls_ && cfg_.tls == tls_policy::required) {
    fail(extended_ ? errc::tls_not_offered : errc::tls_helo_only, {}, true);
    return;
  }
  // XCLIENT_README: once per connection, after the EHLO that counts (over
  // TLS when TLS is wanted), only the attributes the server lists.
  if (!xclient_done_ && extended_ && has_attributes(cfg_.xclient) &&
      ehlo_.value().has(wire::capability::xclient)) {
    scratch_.clear();
    std::size_t lines = 0;
    const errc e = wire::write_xcommands(scratch_, wire::xcommand::xclient, cfg_.xclient,
                                         ehlo_.value().xclient, lines);
    if (e == errc::ok && lines != 0) {
      x_pos_ = 0;
      send_x_line();
      set_state(client_state::xclient);
      return;
    }
    scratch_.clear();  // none of our attributes is listed: nothing to send
  }
  become_ready();
}

inline void client::send_x_line() {
  // One line of those write_xcommands left in scratch_ (each ends in CRLF).
  const std::size_t eol = scratch_.find("\r\n", x_pos_);
  const std::size_t end = eol == std::string::npos ? scratch_.size() : eol + 2;
  out_.append(scratch_, x_pos_, end - x_pos_);
  x_pos_ = end;
  if (x_pos_ >= scratch_.size()) scratch_.clear();
}

inline void client::handle_setup(reply_outcome o, const wire::reply_view& r) {
  switch (state_) {
    case client_state::greeting:
      if (o != reply_outcome::accepted || r.code() != 220) {
        fail(errc::greeting_refused, r, true);
        return;
      }
      push_event(client_events::greeting{r});
      send_ehlo();
      return;
    case client_state::ehlo:
      if (o == reply_outcome::accepted) {
        extended_ = true;
        store_capabilities(r);
        push_event(client_events::capabilities{&ehlo_.value(), true, tls_});
        after_ehlo();
        return;
      }
      // RFC 5321 §4.1.4: fall back to HELO — which has no STARTTLS, so not
      // when TLS is still required. LMTP has no HELO (RFC 2033 §4.1).
      if (cfg_.lmtp) {
        fail(errc::hello_refused, r, true);
        return;
      }
      if (!tls_ && cfg_.tls == tls_policy::required) {
        fail(errc::tls_helo_only, r, true);
        return;
      }
      send_helo();
      return;
    case client_state::helo:
      if (o != reply_outcome::accepted) {
        fail(errc::hello_refused, r, true);
        return;
      }
      extended_ = false;
      ehlo_.reset();
      push_event(client_events::capabilities{&ehlo_.value(), false, tls_});
      after_ehlo();
      return;
    case client_state::starttls:
      if (o == reply_outcome::accepted && r.code() == 220) {
        set_state(client_state::tls_handshake);
        push_event(client_events::start_tls{r});
        return;
      }
      if (cfg_.tls == tls_policy::required) {
        fail(errc::tls_refused, r, true);
        return;
      }
      // Opportunistic: carry on in clear with what the EHLO said.
      become_ready();
      return;
    case client_state::xclient:
      // XCLIENT_README: success is the 220 greeting of a new session; any
      // other reply leaves the server's idea of the client unknown.
      if (o != reply_outcome::accepted || r.code() != 220) {
        scratch_.clear();
        fail(errc::xclient_refused, r, true);
        return;
      }
      if (x_pos_ != 0 && !scratch_.empty()) {
        send_x_line();
        set_state(client_state::xclient);
        return;
      }
      xclient_done_ = true;
      push_event(client_events::xclient_accepted{r});
      send_ehlo();
      return;
    default:
      return;
  }
}

inline errc client::tls_established(const tls_info& info) noexcept {
  if (state_ != client_state::tls_handshake) return errc::api_bad_state;
  check_injection();
  if (state_ == client_state::failed) return errc::tls_response_injection;
  tls_ = true;
  tls_info_ = info;
  // RFC 3207 §4.2: discard all knowledge obtained from the server in clear.
  reader_.reset();
  in_.clear();
  in_pos_ = 0;
  ehlo_.reset();
  caps_buf_.clear();
  authenticated_ = false;
  extended_ = false;
  if (cfg_.tls == tls_policy::implicit) {
    set_state(client_state::greeting);
    return errc::ok;
  }
  send_ehlo();
  return errc::ok;
}

inline errc client::tls_failed() noexcept {
  if (state_ != client_state::tls_handshake) return errc::api_bad_state;
  // Whatever sat in the output buffer was meant for a TLS channel that does
  // not exist: drop it rather than let it leave in clear.
  out_.clear();
  out_pos_ = 0;
  fail(errc::tls_handshake_failed);
  return errc::ok;
}

// ---- AUTH ----------------------------------------------------------------------

inline errc client::authenticate(sasl_client_mechanism& mech) {
  if (state_ != client_state::ready) return errc::api_bad_state;
  if (!tls_ && !cfg_.auth_in_clear) return errc::auth_requires_tls;
  // RFC 4954 §4: only a mechanism the server listed in its last EHLO.
  const wire::capabilities& caps = ehlo_.value();
  const wire::sasl::mechanism known = wire::sasl::find_mechanism(mech.name());
  bool offered = known != wire::sasl::mechanism::unknown && caps.offers(known);
  for (std::size_t i = 0; i < caps.other_mechanism_count && !offered; ++i)
    offered = detail::iequals(caps.other_mechanisms[i], mech.name());
  if (!caps.has(wire::capability::auth) || !offered) return errc::auth_not_offered;
  scratch_.clear();
  bool present = false;
  const errc e = mech.initial_response(scratch_, present);
  if (e != errc::ok) {
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
    return e;
  }
  // RFC 4954 §4: the AUTH command line, and every response line, is at
  // most 12288 octets with its CRLF. An initial response that would make
  // the AUTH line longer is not sent with it: AUTH goes alone, and the
  // response answers the server's first (empty) 334 challenge.
  const std::size_t b64 = present ? wire::base64_encoded_size(scratch_.size()) : 0;
  if (b64 + 2 > auth_line_max) {
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
    return errc::line_too_long;  // too long even as a response line
  }
  const bool inline_ir =
      present && 5 + mech.name().size() + 1 + (b64 == 0 ? 1 : b64) + 2 <= auth_line_max;
  const std::size_t need = 32 + mech.name().size() + (inline_ir ? b64 : 0);
  if (need > out_free() || !wire::sasl::is_mechanism_name(mech.name())) {
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
    return need > out_free() ? errc::api_bad_state : errc::command_value_invalid;
  }
  const std::size_t old = out_.size();
  out_.append("AUTH ").append(mech.name());
  if (inline_ir) {
    out_.push_back(' ');
    if (scratch_.empty())
      out_.push_back('=');
    else
      wire::base64_encode(out_, scratch_);
  }
  if (detail::has_line_breaking_byte(std::string_view(out_).substr(old))) {
    out_.resize(old);
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
    return errc::command_value_invalid;
  }
  out_.append("\r\n");
  // A deferred initial response stays in scratch_ until the 334.
  deferred_ir_ = present && !inline_ir;
  if (!deferred_ir_) {
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
  }
  mech_ = &mech;
  set_state(client_state::auth);
  return errc::ok;
}

inline errc client::authenticate(const credentials& c) {
  if (state_ != client_state::ready) return errc::api_bad_state;
  if (!tls_ && !cfg_.auth_in_clear) return errc::auth_requires_tls;
  const wire::capabilities& caps = ehlo_.value();
  if (!c.token.empty()) {
    if (caps.offers(wire::sasl::mechanism::oauthbearer)) {
      oauthbearer_.emplace(c.token, c.authzid);
      return authenticate(*oauthbearer_);
    }
    if (caps.offers(wire::sasl::mechanism::xoauth2)) {
      xoauth2_.emplace(c.user, c.token);
      return authenticate(*xoauth2_);
    }
    return errc::auth_not_offered;
  }
  if (caps.offers(wire::sasl::mechanism::plain)) {
    plain_.emplace(c.user, c.password, c.authzid);
    return authenticate(*plain_);
  }
  if (caps.offers(wire::sasl::mechanism::login) && c.authzid.empty()) {
    login_.emplace(c.user, c.password);
    return authenticate(*login_);
  }
  return errc::auth_not_offered;
}

inline void client::send_auth_response(std::string_view b64_challenge) {
  errc e = errc::ok;
  std::size_t split = 0;
  if (deferred_ir_) {
    // RFC 4954 §4: the initial response that did not fit on the AUTH line
    // answers the first challenge (which RFC 4422 §5 makes empty).
    deferred_ir_ = false;
  } else {
    scratch_.clear();
    e = wire::base64_decode(scratch_, b64_challenge);
    split = scratch_.size();
    if (e == errc::ok) {
      const std::string_view challenge(scratch_.data(), split);
      // respond() appends after the challenge; scratch_ has room for both.
      e = mech_->respond(challenge, scratch_);
    }
  }
  const std::string_view response = std::string_view(scratch_).substr(split);
  const std::size_t line = wire::base64_encoded_size(response.size()) + 2;
  if (e != errc::ok || line > out_free() || line > auth_line_max) {
    out_.append("*\r\n");  // RFC 4954 §4: cancel the exchange
  } else {
    wire::base64_encode(out_, response);
    out_.append("\r\n");
  }
  std::fill(scratch_.begin(), scratch_.end(), '\0');
  scratch_.clear();
  wait_started_ = false;
}

inline void client::handle_auth(reply_outcome o, const wire::reply_view& r) {
  if (o == reply_outcome::intermediate) {
    if (r.code() != 334) {
      fail(errc::reply_unexpected, r);
      return;
    }
    send_auth_response(r.front().text);
    return;
  }
  const std::string_view name = mech_->name();
  if (deferred_ir_) {
    // Refused before its first challenge: the held-back response never leaves.
    std::fill(scratch_.begin(), scratch_.end(), '\0');
    scratch_.clear();
    deferred_ir_ = false;
  }
  const errc finished = o == reply_outcome::accepted ? mech_->finish() : errc::ok;
  mech_ = nullptr;
  if (finished != errc::ok) {
    fail(finished, r, true);
    return;
  }
  authenticated_ = o == reply_outcome::accepted;
  push_event(client_events::auth_result{authenticated_, name, r});
  become_ready();
}

// ---- transactions ---------------------------------------------------------------

inline std::size_t client::rcpt_estimate(const envelope& env, std::size_t i) const noexcept {
  return 16 + env.recipients[i].size() +
         (env.rcpt_params != nullptr ? env.rcpt_params[i].size() + 1 : 0) +
         (env.dsn != nullptr ? 48 + env.dsn[i].orcpt_type.size() + 3 * env.dsn[i].orcpt.size()
                             : 0) +
         (env.rrvs != nullptr ? 16 + env.rrvs[i].date_time.size() : 0);
}

inline std::size_t client::txn_recipient_cap() const noexcept {
  // RFC 9422 §4.2: RCPTMAX is the most RCPT commands per transaction.
  const wire::capabilities& caps = ehlo_.value();
  std::size_t cap = cfg_.max_recipients;
  if (caps.has(wire::capability::limits) && caps.limits.rcptmax != 0 && caps.limits.rcptmax < cap)
    cap = caps.limits.rcptmax;
  return cap;
}

inline bool client::mailmax_reached() const noexcept {
  // RFC 9422 §4.1: MAILMAX is the most transactions (MAIL commands) per
  // session; counted over the whole connection, which never exceeds it.
  const wire::capabilities& caps = ehlo_.value();
  return caps.has(wire::capability::limits) && caps.limits.mailmax != 0 &&
         mails_sent_ >= caps.limits.mailmax;
}

inline errc client::send_mail(const envelope& env) {
  if (state_ != client_state::ready) return errc::api_bad_state;
  if (cfg_.tls == tls_policy::required && !tls_)
    return errc::api_bad_state;  // unreachable by design
  if (env.recipient_count == 0 || env.recipient_count > cfg_.max_recipients ||
      env.recipients == nullptr)
    return errc::api_value_invalid;
  if (mailmax_reached()) return errc::mailmax_reached;
  const wire::capabilities& caps = ehlo_.value();
  // RFC 3030 §3: BINARYMIME content can only be sent with BDAT.
  if (env.body == wire::body_type::binary_mime &&
      (!caps.has(wire::capability::chunking) || !caps.has(wire::capability::binarymime)))
    return errc::data_binary_not_offered;
  if (env.body == wire::body_type::eight_bit_mime && !caps.has(wire::capability::eightbitmime))
    return errc::data_8bit_not_offered;
  if (env.size != 0 && caps.has(wire::capability::size) && caps.size != 0 && env.size > caps.size)
    return errc::message_too_big;
  if (env.requiretls && (!tls_ || !caps.has(wire::capability::requiretls)))
    return errc::requiretls_not_offered;
  // SMTPUTF8 (RFC 6531 §3.4): needed when asked for or when an address is
  // not ASCII.
  bool utf8 = env.smtputf8;
  auto non_ascii = [](std::string_view s) {
    for (char ch : s)
      if (static_cast<unsigned char>(ch) >= 0x80) return true;
    return false;
  };
  // DSN (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT, only
  // when the server offers DSN (RFC 3461 §4: a client MUST NOT send them
  // otherwise).
  bool dsn = env.ret.has_value() || !env.envid.empty();
  for (std::size_t i = 0; env.dsn != nullptr && i < env.recipient_count; ++i)
    dsn = dsn || env.dsn[i].notify != 0 || !env.dsn[i].orcpt.empty();
  if (dsn && !caps.has(wire::capability::dsn)) {
    if (!cfg_.drop_dsn_when_not_offered) return errc::dsn_not_offered;
    dsn = false;
  }
  // RFC 3461 §4.4: ENVID is printable US-ASCII.
  for (char ch : env.envid)
    if (ch < 0x20 || ch > 0x7e) return errc::api_value_invalid;
  const bool drop = cfg_.drop_optional_params_when_not_offered;
  // BY (RFC 2852 §4): by-time is 1*9DIGIT with a sign; "R" mode needs a
  // positive time, not below the server's min-by-time (§3, §4).
  bool by = env.by.has_value();
  if (by) {
    const wire::deliver_by& b = *env.by;
    if (b.time > 999999999 || b.time < -999999999) return errc::param_value_invalid;
    const bool r_mode = b.mode == wire::by_mode::return_message;
    if (r_mode && b.time <= 0) return errc::param_value_invalid;
    if (!caps.has(wire::capability::deliverby)) {
      if (!drop || r_mode) return errc::deliverby_not_offered;
      by = false;
    } else if (r_mode && caps.deliverby != 0 && b.time < caps.deliverby) {
      return errc::param_value_invalid;
    }
  }
  // MT-PRIORITY (RFC 6710 §3): priority-value is -9..9.
  bool mtp = env.mt_priority.has_value();
  if (mtp) {
    if (*env.mt_priority < -9 || *env.mt_priority > 9) return errc::param_value_invalid;
    if (!caps.has(wire::capability::mt_priority)) {
      if (!drop) return errc::mt_priority_not_offered;
      mtp = false;
    }
  }
  // RRVS (RFC 7293 §3):  "RRVS=" date-time [ ";" ( "C" / "R" ) ]
  bool rrvs = false, all_continue = true;
  for (std::size_t i = 0; env.rrvs != nullptr && i < env.recipient_count; ++i) {
    const wire::rrvs_param& p = env.rrvs[i];
    if (p.date_time.empty()) continue;
    if (!wire::is_date_time(p.date_time) || (p.action != 0 && p.action != 'R' && p.action != 'C'))
      return errc::param_value_invalid;
    rrvs = true;
    all_continue = all_continue && p.action == 'C';
  }
  if (rrvs && !caps.has(wire::capability::rrvs)) {
    if (!drop || !all_continue) return errc::rrvs_not_offered;
    rrvs = false;
  }
  // FUTURERELEASE (RFC 4865 §3): HOLDFOR or HOLDUNTIL, never both, within
  // the server's max-future-release-interval.
  if (env.holdfor.has_value() || !env.holduntil.empty()) {
    if (env.holdfor.has_value() && !env.holduntil.empty()) return errc::param_conflict;
    if (!env.holduntil.empty() && !wire::is_date_time(env.holduntil))
      return errc::param_value_invalid;
    if (env.holdfor.has_value() && *env.holdfor > 999999999) return errc::param_value_invalid;
    if (!caps.has(wire::capability::futurerelease)) return errc::futurerelease_not_offered;
    if (env.holdfor.has_value() && caps.futurerelease_max_interval != 0 &&
        *env.holdfor > caps.futurerelease_max_interval)
      return errc::param_value_invalid;
  }
  // Room for the whole envelope's lines (and XFORWARD's, at most one line
  // per attribute): every later transaction fits once this one is drained.
  std::size_t estimate = 256 + env.from.size() + env.mail_params.size() + 3 * env.envid.size() +
                         env.holduntil.size() + (xforward_of(env) != nullptr ? 6 * 512 : 0);
  if (non_ascii(env.from)) utf8 = true;
  for (std::size_t i = 0; i < env.recipient_count; ++i) {
    if (non_ascii(env.recipients[i])) utf8 = true;
    estimate += rcpt_estimate(env, i);
  }
  if (utf8 && !caps.has(wire::capability::smtputf8)) return errc::utf8_not_allowed;
  if (estimate > out_free()) return errc::api_bad_state;
  if (env.xforward != nullptr) {
    // Checked against every attribute name, as client_config::xforward is.
    std::size_t lines = 0;
    scratch_.clear();
    const errc xe =
        wire::write_xcommands(scratch_, wire::xcommand::xforward, *env.xforward, 0xffff, lines);
    scratch_.clear();
    if (xe != errc::ok) return xe;
  }

  wire::path_options po;
  po.smtputf8 = utf8;
  path_opt_ = po;
  use_dsn_ = dsn;
  use_by_ = by;
  use_mt_priority_ = mtp;
  use_rrvs_ = rrvs;

  const std::size_t old = out_.size();
  if (const errc me = write_mail(env); me != errc::ok) return me;
  const std::size_t mail_end = out_.size();
  // Every RCPT is checked now, even without pipelining or when LIMITS
  // splits the message, so that a bad address is refused before MAIL leaves.
  for (std::size_t i = 0; i < env.recipient_count; ++i) {
    if (const errc re = write_rcpt(env, i); re != errc::ok) {
      out_.resize(old);
      return re;
    }
  }
  pipelined_ = cfg_.pipelining && caps.has(wire::capability::pipelining);
  bdat_ = env.body == wire::body_type::binary_mime ||
          (cfg_.prefer_bdat && caps.has(wire::capability::chunking));
  env_ = env;
  in_message_ = true;
  stop_message_ = false;
  transaction_ = 0;
  waiting_ = env.recipient_count;
  rstate_.assign(env.recipient_count, rs_waiting);
  plan_batch();
  const wire::xattributes* xf = xforward_of(env);
  if (batch_.size() == env.recipient_count && xf == nullptr) {
    // One transaction, in envelope order: the lines just written are its.
    if (!pipelined_) out_.resize(mail_end);
    write_flight(true);
  } else {
    out_.resize(old);
    open_transaction();
  }
  return errc::ok;
}

inline const wire::xattributes* client::xforward_of(const envelope& env) const noexcept {
  // XFORWARD_README: only when the server lists XFORWARD (and, by
  // write_xcommands, only the attributes it lists).
  const wire::xattributes* x = env.xforward != nullptr ? env.xforward : &cfg_.xforward;
  if (!has_attributes(*x) || !extended_ || !ehlo_.value().has(wire::capability::xforward) ||
      ehlo_.value().xforward == 0)
    return nullptr;
  return x;
}

inline void client::plan_batch() {
  // RFC 9422 §4.2, §4.3: at most RCPTMAX recipients from at most
  // RCPTDOMAINMAX distinct domains; the rest wait for the next transaction.
  // Picked in envelope order, skipping those of a domain that would be one
  // too many, so that one transaction carries as many as allowed.
  const wire::capabilities& caps = ehlo_.value();
  const std::size_t cap = txn_recipient_cap();
  const std::size_t dom_cap =
      caps.has(wire::capability::limits) ? caps.limits.rcptdomainmax : std::uint32_t{0};
  auto domain_of = [](std::string_view a) {
    const std::size_t at = a.rfind('@');
    return at == std::string_view::npos ? std::string_view() : a.substr(at + 1);
  };
  batch_.clear();
  domains_.clear();
  for (std::size_t i = 0; i < env_.recipient_count && batch_.size() < cap; ++i) {
    if (rstate_[i] != rs_waiting) continue;
    if (dom_cap != 0) {
      const std::string_view d = domain_of(env_.recipients[i]);
      bool known = false;
      for (std::uint32_t j : domains_)
        if (detail::iequals(domain_of(env_.recipients[j]), d)) {
          known = true;
          break;
        }
      if (!known) {
        if (domains_.size() >= dom_cap) continue;
        domains_.push_back(static_cast<std::uint32_t>(i));
      }
    }
    batch_.push_back(static_cast<std::uint32_t>(i));
    rstate_[i] = rs_batched;
  }
  waiting_ -= batch_.size();
}

inline void client::open_transaction() {
  // The batch is planned; its lines must fit the output buffer (they did
  // for the whole envelope in send_mail(), unless output() was not drained).
  const wire::xattributes* xf = xforward_of(env_);
  std::size_t need = 256 + env_.from.size() + env_.mail_params.size() + 3 * env_.envid.size() +
                     env_.holduntil.size() + (xf != nullptr ? 6 * 512 : 0);
  for (std::uint32_t i : batch_)
    need += rcpt_estimate(env_, i);
  if (need > out_free()) {
    finish_message(not_attempted_reason::output_full);
    return;
  }
  if (xf != nullptr) {
    scratch_.clear();
    std::size_t lines = 0;
    const errc e = wire::write_xcommands(scratch_, wire::xcommand::xforward, *xf,
                                         ehlo_.value().xforward, lines);
    if (e == errc::ok && lines != 0) {
      pending_.clear();
      pend_head_ = 0;
      x_pos_ = 0;
      send_x_line();
      pending_.push_back({kind::xforward, 0});
      set_state(client_state::xforward);
      return;
    }
    scratch_.clear();
  }
  write_flight(false);
}

inline void client::write_flight(bool written) {
  // MAIL, and under PIPELINING the batch's RCPTs and DATA (not with BDAT:
  // its content waits for the RCPT replies).
  if (!written) {
    (void)write_mail(env_);  // checked by send_mail
    if (pipelined_)
      for (std::uint32_t i : batch_)
        (void)write_rcpt(env_, i);
  }
  ++mails_sent_;
  pending_.clear();
  pend_head_ = 0;
  rcpt_sent_ = pipelined_ ? batch_.size() : 0;
  rcpt_replied_ = 0;
  accepted_ = 0;
  delivered_ = 0;
  accepted_index_.clear();
  mail_ok_ = false;
  rejected_ = false;
  pending_.push_back({kind::mail, 0});
  if (pipelined_) {
    for (std::uint32_t i : batch_)
      pending_.push_back({kind::rcpt, i});
    if (!bdat_) {
      out_.append("DATA\r\n");
      pending_.push_back({kind::data, 0});
    }
  }
  set_state(client_state::mail);
}

inline void client::end_transaction() {
  pending_.clear();
  pend_head_ = 0;
  // Without a refusal every recipient of an ended transaction has had its
  // recipient event, so with none waiting nothing is listed.
  if (stop_message_ || waiting_ == 0) {
    finish_message(not_attempted_reason::transaction_refused);
    return;
  }
  if (mailmax_reached()) {
    finish_message(not_attempted_reason::transaction_limit);
    return;
  }
  ++transaction_;
  plan_batch();
  open_transaction();
}

inline void client::finish_message(not_attempted_reason why) {
  report_unattempted(why);
  become_ready();
}

inline void client::report_unattempted(not_attempted_reason why) noexcept {
  if (!in_message_) return;
  in_message_ = false;
  unattempted_.clear();
  for (std::size_t i = 0; i < env_.recipient_count; ++i)
    if (rstate_[i] != rs_reported) unattempted_.push_back(static_cast<std::uint32_t>(i));
  if (!unattempted_.empty())
    push_event(
        client_events::recipients_not_attempted{unattempted_.data(), unattempted_.size(), why});
}

inline errc client::write_mail(const envelope& env) {
  const wire::capabilities& caps = ehlo_.value();
  wire::param_options pao;
  pao.utf8_values = path_opt_.smtputf8;
  wire::command c;
  c.kind = wire::verb::mail;
  if (env.from.empty()) {
    c.path.null = true;
  } else {
    const auto mb = wire::parse_mailbox(env.from, path_opt_);
    if (!mb) return mb.error();
    c.path.address = *mb;
  }
  // MAIL parameters: ours through the params.hpp writer, then the
  // application's; all of them joined in the scratch buffer (free outside
  // AUTH, and large enough: appends below never reallocate it, so views
  // into it stay valid).
  scratch_.clear();
  if (wire::xtext_encoded_size(env.envid) > pao.max_envid) return errc::param_value_invalid;
  if (512 + pao.max_envid + env.mail_params.size() + env.holduntil.size() > scratch_.capacity())
    return errc::command_value_invalid;
  wire::mail_params m;
  if (env.size != 0 && caps.has(wire::capability::size)) m.size = env.size;
  if (env.body != wire::body_type::seven_bit) m.body = env.body;
  m.smtputf8 = path_opt_.smtputf8;
  m.requiretls = env.requiretls;
  if (use_dsn_) {
    m.ret = env.ret;
    if (!env.envid.empty()) {
      wire::xtext_encode(scratch_, env.envid);
      m.envid = std::string_view(scratch_);
    }
  }
  if (use_by_) m.by = env.by;
  if (use_mt_priority_) m.mt_priority = env.mt_priority;
  m.holdfor = env.holdfor;
  if (!env.holduntil.empty()) m.holduntil = env.holduntil;
  const std::size_t at = scratch_.size();
  if (const errc e = wire::write_mail_params(scratch_, m, pao); e != errc::ok) {
    scratch_.clear();
    return e;
  }
  if (!env.mail_params.empty()) {
    if (detail::has_line_breaking_byte(env.mail_params)) {
      scratch_.clear();
      return errc::command_value_invalid;
    }
    scratch_.push_back(' ');
    scratch_.append(env.mail_params);
  }
  std::string_view params = std::string_view(scratch_).substr(at);
  if (!params.empty()) params.remove_prefix(1);
  if (const auto parsed = wire::parse_mail_params(params, pao); !parsed) {
    scratch_.clear();
    return parsed.error();
  }
  c.params = params;
  const errc we = wire::write_command(out_, c, wire::command_options{path_opt_});
  scratch_.clear();
  return we;
}

inline errc client::write_rcpt(const envelope& env, std::size_t i) {
  wire::command rc;
  rc.kind = wire::verb::rcpt;
  const auto mb = wire::parse_mailbox(env.recipients[i], path_opt_);
  if (!mb) return mb.error();
  rc.path.address = *mb;
  wire::param_options pao;
  pao.utf8_values = path_opt_.smtputf8;
  const std::string_view raw = env.rcpt_params != nullptr ? env.rcpt_params[i] : std::string_view();
  if (detail::has_line_breaking_byte(raw)) return errc::command_value_invalid;
  // As for MAIL: everything is joined in scratch_, within its capacity.
  scratch_.clear();
  if (256 + pao.max_orcpt + raw.size() > scratch_.capacity()) return errc::command_value_invalid;
  wire::rcpt_params rp;
  if (use_dsn_ && env.dsn != nullptr) {
    const recipient_dsn& d = env.dsn[i];
    rp.notify = d.notify;
    if (!d.orcpt.empty()) {
      // RFC 3461 §4.2: addr-type ";" xtext, at most 500 octets.
      if (d.orcpt_type.size() + 1 + wire::xtext_encoded_size(d.orcpt) > pao.max_orcpt)
        return errc::param_value_invalid;
      wire::xtext_encode(scratch_, d.orcpt);
      rp.orcpt = wire::orcpt_param{d.orcpt_type, std::string_view(scratch_)};
    }
  }
  if (use_rrvs_ && env.rrvs != nullptr && !env.rrvs[i].date_time.empty()) rp.rrvs = env.rrvs[i];
  const std::size_t at = scratch_.size();
  errc e = wire::write_rcpt_params(scratch_, rp, pao);
  if (e == errc::ok) {
    if (!raw.empty()) {
      scratch_.push_back(' ');
      scratch_.append(raw);
    }
    std::string_view params = std::string_view(scratch_).substr(at);
    if (!params.empty()) params.remove_prefix(1);
    if (const auto parsed = wire::parse_rcpt_params(params, pao); !parsed) e = parsed.error();
    rc.params = params;
  }
  if (e == errc::ok) e = wire::write_command(out_, rc, wire::command_options{path_opt_});
  scratch_.clear();
  return e;
}

inline bool client::send_next_txn_command() {
  // Without pipelining: one command at a time, each after the last reply.
  // Returns false when BDAT content began instead (no command in flight).
  if (rcpt_sent_ < batch_.size()) {
    const std::uint32_t i = batch_[rcpt_sent_++];
    (void)write_rcpt(env_, i);  // checked by send_mail
    pending_.push_back({kind::rcpt, i});
    return true;
  }
  if (bdat_) {
    begin_bdat();
    return false;
  }
  out_.append("DATA\r\n");
  pending_.push_back({kind::data, 0});
  return true;
}

inline void client::follow_pending() noexcept {
  // The state is what the oldest command in flight waits for.
  if (pend_head_ >= pending_.size()) {
    set_state(ended_ || !bdat_ ? client_state::data_end : client_state::bdat);
    return;
  }
  switch (pending_[pend_head_].k) {
    case kind::xforward:
      set_state(client_state::xforward);
      break;
    case kind::mail:
      set_state(client_state::mail);
      break;
    case kind::rcpt:
      set_state(client_state::rcpt);
      break;
    case kind::data:
      set_state(client_state::data);
      break;
    case kind::bdat:
      set_state(ended_ ? client_state::data_end : client_state::bdat);
      break;
    case kind::data_end:
    case kind::discard_end:
      set_state(client_state::data_end);
      break;
    case kind::rset:
      set_state(client_state::rset);
      break;
    case kind::command:
      set_state(client_state::command);
      break;
  }
}

inline void client::begin_bdat() {
  pending_.clear();
  pend_head_ = 0;
  chunk_at_ = no_chunk;
  ended_ = blocked_ = end_pending_ = cr_pending_ = ends_lf_ = false;
  content_octets_ = 0;
  set_state(client_state::bdat);
  push_event(client_events::send_content{transaction_});
}

inline bool client::may_seal(bool last) {
  if (pend_head_ != 0) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pend_head_));
    pend_head_ = 0;
  }
  // RFC 3030 §2: without PIPELINING each chunk waits for the last reply.
  if (!pipelined_ && !pending_.empty()) return false;
  // The queue never grows past its reserved size: keep room for the LAST
  // chunk's replies (one per accepted recipient in LMTP) and for an RSET.
  const std::size_t end_replies = cfg_.lmtp ? accepted_ : 1;
  const std::size_t need = (last ? end_replies : 1 + end_replies) + 1;
  return pending_.size() + need <= pending_.capacity();
}

inline void client::seal(bool last) {
  const std::size_t payload = out_.size() - chunk_at_ - chunk_gap;
  const wire::bdat_command c = wire::make_bdat_command(payload, last);
  const std::size_t skip = chunk_gap - c.size;
  std::copy(c.text, c.text + c.size, out_.begin() + static_cast<std::ptrdiff_t>(chunk_at_ + skip));
  out_.erase(chunk_at_, skip);
  chunk_at_ = no_chunk;
  if (!last) {
    pending_.push_back({kind::bdat, 0});
  } else if (cfg_.lmtp) {
    for (std::uint32_t i : accepted_index_)
      pending_.push_back({kind::data_end, i});
  } else {
    pending_.push_back({kind::data_end, 0});
  }
}

inline result<std::size_t> client::send_chunks(std::string_view in) noexcept {
  const bool binary = env_.body == wire::body_type::binary_mime;
  std::size_t taken = 0;
  while (!in.empty()) {
    if (chunk_at_ == no_chunk) {
      if (out_free() < chunk_gap + 16) break;
      chunk_at_ = out_.size();
      out_.append(chunk_gap, ' ');
    }
    // Normalising can double every octet; 8 octets stay free for the end.
    const std::size_t room = out_free();
    const std::size_t cap = room > 8 ? (binary ? room - 8 : (room - 8) / 2) : 0;
    const std::size_t n = cap < in.size() ? cap : in.size();
    if (n != 0) {
      const std::string_view part = in.substr(0, n);
      if (env_.body == wire::body_type::seven_bit && has_8bit(part)) {
        fail(errc::data_8bit_not_declared);
        return errc::data_8bit_not_declared;
      }
      if (!binary && std::memchr(part.data(), '\0', part.size()) != nullptr) {
        fail(errc::data_nul);
        return errc::data_nul;
      }
      if (binary) {
        out_.append(part.data(), part.size());
      } else {
        append_normalised(part);
      }
      content_octets_ += n;
      in.remove_prefix(n);
      taken += n;
    }
    if (in.empty()) break;
    // The output buffer is full: the open chunk goes out as it is.
    if (out_.size() - chunk_at_ > chunk_gap && may_seal(false)) {
      seal(false);
    } else {
      blocked_ = true;
    }
    break;
  }
  return taken;
}

inline bool client::has_8bit(std::string_view s) noexcept {
  std::size_t i = 0;
  std::uint64_t acc = 0;
  for (; s.size() - i >= 8; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    acc |= w;
  }
  for (; i < s.size(); ++i)
    acc |= static_cast<unsigned char>(s[i]);
  return (acc & 0x8080808080808080u) != 0;
}

inline void client::append_normalised(std::string_view part) {
  // Line ends as wire::data_encoder writes them: bare CR and bare LF become
  // CRLF. No dot stuffing: BDAT frames by size (RFC 3030 §2). The next CR
  // and LF are searched with memchr and remembered, so that runs of CRLF
  // lines cost two memchr calls per line and bare line ends no rescans.
  const char* const base = part.data();
  const std::size_t n = part.size();
  std::size_t i = 0;
  if (cr_pending_) {
    cr_pending_ = false;
    out_.push_back('\n');
    if (base[0] == '\n') i = 1;
  }
  auto find = [&](char c, std::size_t from) {
    const void* p = std::memchr(base + from, c, n - from);
    return p == nullptr ? n : static_cast<std::size_t>(static_cast<const char*>(p) - base);
  };
  std::size_t cr = find('\r', i), lf = find('\n', i);
  while (i < n) {
    if (cr < i) cr = find('\r', i);
    if (lf < i) lf = find('\n', i);
    const std::size_t e = cr < lf ? cr : lf;
    out_.append(base + i, e - i);
    if (e == n) break;
    if (e == lf) {
      out_.append("\r\n");  // a bare LF
      i = e + 1;
    } else if (e + 1 == n) {
      out_.push_back('\r');  // its LF, if any, comes in the next part
      cr_pending_ = true;
      i = n;
    } else {
      out_.append("\r\n");
      i = e + 1 + (lf == e + 1 ? 1 : 0);
    }
  }
  ends_lf_ = base[n - 1] == '\n';
}

inline errc client::end_chunks() noexcept {
  const bool binary = env_.body == wire::body_type::binary_mime;
  if (chunk_at_ == no_chunk) {
    if (out_free() < chunk_gap + 8) return errc::api_bad_state;
    chunk_at_ = out_.size();
    out_.append(chunk_gap, ' ');
  } else if (out_free() < 8) {
    return errc::api_bad_state;
  }
  // As wire::data_encoder: a message that does not end with CRLF gets one;
  // an empty one stays empty. Binary content goes as it is.
  if (!binary) {
    if (cr_pending_)
      out_.push_back('\n');
    else if (content_octets_ != 0 && !ends_lf_)
      out_.append("\r\n");
    cr_pending_ = false;
  }
  ended_ = true;
  blocked_ = false;
  if (may_seal(true))
    seal(true);
  else
    end_pending_ = true;
  follow_pending();
  return errc::ok;
}

inline void client::handle_txn(reply_outcome o, const wire::reply_view& r) {
  if (pend_head_ >= pending_.size()) {
    // Unreachable by construction (every waiting state has a command in
    // flight); kept so that a logic slip can never read out of bounds.
    fail(errc::reply_unsolicited, r);
    return;
  }
  const pending p = pending_[pend_head_++];
  const bool ok = o == reply_outcome::accepted;
  auto next_state = [&]() { follow_pending(); };
  auto send_rset = [&]() {
    out_.append("RSET\r\n");
    pending_.push_back({kind::rset, 0});
  };
  switch (p.k) {
    case kind::xforward:
      if (!ok) {
        // XFORWARD_README: refused; no MAIL was sent, the message ends.
        stop_message_ = true;
        scratch_.clear();
        push_event(client_events::message_rejected{rejection_stage::xforward, r});
        end_transaction();
        return;
      }
      if (!scratch_.empty()) {
        send_x_line();
        pending_.push_back({kind::xforward, 0});
        next_state();
        return;
      }
      write_flight(false);
      return;
    case kind::mail:
      mail_ok_ = ok;
      if (!ok) {
        rejected_ = true;
        // The server will not take this sender now: no further transaction.
        stop_message_ = true;
        push_event(client_events::message_rejected{rejection_stage::mail, r});
        if (!pipelined_) {
          end_transaction();
          return;
        }
      } else if (!pipelined_) {
        if (!send_next_txn_command()) return;
      }
      next_state();
      return;
    case kind::rcpt: {
      ++rcpt_replied_;
      if (!rejected_) {
        if (ok) {
          ++accepted_;
          accepted_index_.push_back(p.index);
        }
        rstate_[p.index] = rs_reported;
        push_event(client_events::recipient{p.index, env_.recipients[p.index], ok, r});
        if (rcpt_replied_ == batch_.size() && accepted_ == 0) {
          rejected_ = true;
          push_event(client_events::message_rejected{rejection_stage::recipients, r});
        }
      }
      if (!pipelined_) {
        if (rejected_)
          send_rset();  // MAIL was accepted: a transaction is open, end it
        else if (!send_next_txn_command())
          return;
      } else if (bdat_ && pend_head_ == pending_.size()) {
        // The last reply of a pipelined MAIL/RCPT flight: the content, if
        // any recipient was accepted, starts only now.
        if (!rejected_) {
          begin_bdat();
          return;
        }
        if (!mail_ok_) {
          end_transaction();
          return;
        }
        send_rset();
      }
      next_state();
      return;
    }
    case kind::bdat:
      if (!rejected_) {
        if (!ok) {
          // RFC 3030 §2: after a refused chunk the transaction has failed
          // and no further BDAT may be sent; RSET ends it.
          rejected_ = true;
          ended_ = true;
          blocked_ = end_pending_ = false;
          drop_chunk();
          push_event(client_events::message_rejected{rejection_stage::content, r});
          send_rset();
        } else if (chunk_at_ != no_chunk && (blocked_ || end_pending_) && may_seal(end_pending_)) {
          // The chunk the application filled while this reply was due.
          blocked_ = false;
          seal(end_pending_);
          end_pending_ = false;
        }
      }
      next_state();
      return;
    case kind::data:
      if (ok) {
        if (!rejected_) {
          encoder_.reset();
          set_state(client_state::content);
          push_event(client_events::send_content{transaction_});
          return;
        }
        // RFC 2033 §4.2: an LMTP server MUST refuse DATA without a
        // recipient, and would owe no reply to the end of data.
        if (cfg_.lmtp) {
          fail(errc::reply_unexpected, r);
          return;
        }
        // RFC 2920 §3.1: 354 although no recipient was accepted; end the
        // (empty) message instead of sending the content.
        out_.append(".\r\n");
        pending_.push_back({kind::discard_end, 0});
        set_state(client_state::data_end);
        return;
      }
      if (!rejected_) {
        rejected_ = true;
        push_event(client_events::message_rejected{rejection_stage::data, r});
      }
      if (mail_ok_) {
        send_rset();
        set_state(client_state::rset);
        return;
      }
      end_transaction();
      return;
    case kind::data_end:
      if (rejected_) {
        // The LAST chunk of a message whose earlier chunk was refused.
        next_state();
        return;
      }
      if (cfg_.lmtp) {
        if (ok) ++delivered_;
        push_event(client_events::delivery{p.index, env_.recipients[p.index], ok, r});
        if (pend_head_ != pending_.size()) {
          next_state();
          return;
        }
        if (delivered_ != 0)
          push_event(client_events::message_accepted{delivered_, r});
        else
          push_event(client_events::message_rejected{rejection_stage::content, r});
        end_transaction();
        return;
      }
      if (ok)
        push_event(client_events::message_accepted{accepted_, r});
      else
        push_event(client_events::message_rejected{rejection_stage::content, r});
      end_transaction();
      return;
    case kind::discard_end:
      end_transaction();
      return;
    case kind::rset:
      pending_.clear();
      pend_head_ = 0;
      if (!ok) {
        // The server refused to forget the transaction: its state is unknown.
        fail(errc::reply_unexpected, r, true);
        return;
      }
      end_transaction();
      return;
    case kind::command:
      pending_.clear();
      pend_head_ = 0;
      push_event(client_events::command_reply{static_cast<wire::verb>(p.index), r});
      become_ready();
      return;
  }
}

inline result<std::size_t> client::send_content(std::string_view chunk) noexcept {
  if (state_ == client_state::bdat && !ended_) return send_chunks(chunk);
  if (state_ != client_state::content) return errc::api_bad_state;
  const std::size_t space = out_free();
  // Worst case every octet doubles (a dot or a bare LF); keep room for the
  // terminator that end_content() writes.
  const std::size_t take_max = space > 16 ? (space - 16) / 2 : 0;
  std::string_view in = chunk.substr(0, chunk.size() < take_max ? chunk.size() : take_max);
  if (env_.body == wire::body_type::seven_bit && has_8bit(in)) {
    fail(errc::data_8bit_not_declared);
    return errc::data_8bit_not_declared;
  }
  std::size_t taken = 0;
  while (!in.empty()) {
    const wire::encode_result r = encoder_.encode(in);
    in.remove_prefix(r.consumed);
    taken += r.consumed;
    if (r.status == wire::encode_status::output) {
      out_.append(r.output.data(), r.output.size());
    } else if (r.status == wire::encode_status::error) {
      fail(r.error);
      return r.error;
    } else {
      break;
    }
  }
  return taken;
}

inline errc client::end_content() noexcept {
  if (state_ == client_state::bdat && !ended_) return end_chunks();
  if (state_ != client_state::content) return errc::api_bad_state;
  if (out_free() < 16) return errc::api_bad_state;
  for (;;) {
    const wire::encode_result r = encoder_.finish();
    if (r.status != wire::encode_status::output) break;
    out_.append(r.output.data(), r.output.size());
  }
  pending_.clear();
  pend_head_ = 0;
  if (cfg_.lmtp) {
    for (std::uint32_t i : accepted_index_)
      pending_.push_back({kind::data_end, i});
  } else {
    pending_.push_back({kind::data_end, 0});
  }
  set_state(client_state::data_end);
  return errc::ok;
}

inline errc client::quit() {
  if (state_ != client_state::ready) return errc::api_bad_state;
  if (out_free() < 6) return errc::api_bad_state;
  out_.append("QUIT\r\n");
  set_state(client_state::quit);
  return errc::ok;
}

inline errc client::command(wire::verb v, std::string_view argument) {
  if (state_ != client_state::ready) return errc::api_bad_state;
  switch (v) {
    case wire::verb::noop:
    case wire::verb::rset:
    case wire::verb::vrfy:
    case wire::verb::expn:
    case wire::verb::help:
      break;
    default:
      return errc::api_value_invalid;
  }
  if (argument.size() + 16 > out_free()) return errc::api_bad_state;
  wire::command c;
  c.kind = v;
  c.argument = argument;
  if (v == wire::verb::rset && !argument.empty()) return errc::command_value_invalid;
  if (wire::write_command(out_, c) != errc::ok) return errc::command_value_invalid;
  pending_.clear();
  pend_head_ = 0;
  pending_.push_back({kind::command, static_cast<std::uint32_t>(v)});
  set_state(client_state::command);
  return errc::ok;
}

}  // namespace smtpwire

#endif  // SMTPWIRE_CLIENT_HPP
