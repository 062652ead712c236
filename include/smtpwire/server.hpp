// smtpwire — the server engine: a sans-I/O SMTP (RFC 5321), submission
// (RFC 6409) and LMTP (RFC 2033) session state machine that the application
// steers with decisions.
//
// Theory of operation.
//
// Bytes in: receive(bytes) copies the client's bytes into a bounded input
// buffer and returns how many it took (fewer when the buffer is full: offer
// the rest after draining events). Events out: next_event() parses what is
// buffered and returns one event at a time, std::monostate when it needs
// more bytes, a decision, or room in the output. Replies out: output() is
// the reply bytes to send, consume_output(n) drops what was sent. Time in:
// check_time(now) (see deadline()). Nothing here reads a socket or a clock,
// and nothing allocates in steady state: the input buffer (which also holds
// the command line being framed) is sized at construction, SASL buffers when
// AUTH is configured or a mechanism is plugged in, and the output buffer
// starts small (greeting and EHLO reply) and grows to its high-water mark
// (limits.output_backlog plus one reply) once, then is reused. An idle
// default session holds under 2 KiB (see server::memory_reserved).
//
// Decisions. Some events are decision points (server::awaiting_decision()):
// the connection (greeting), HELO/EHLO/LHLO, MAIL, each RCPT, the start of
// content, the end of content (in LMTP once per accepted recipient), AUTH
// credentials, VRFY and EXPN, XCLIENT and XFORWARD. The application answers with accept(),
// reject() or temp_fail(), now or later (after more receive() calls). While
// a decision is pending the engine parses nothing more: later pipelined
// commands stay buffered, so replies always leave in command order
// (RFC 2920 §3) and a slow decision never reorders them.
//
// One table owns sequencing: sequence_rule(state, verb) says, for every state
// that reads commands and every verb, whether the command is processed, out
// of sequence (503 5.5.1, RFC 5321 §4.1.4) or lacks recipients (554 5.5.1,
// §3.3). Feature checks (an extension not offered: 502), syntax (501, 555,
// 553) and policy (530, 538) come from the wire grammars and the config.
//
// STARTTLS (RFC 3207) is a clean cut: when the engine accepts STARTTLS it
// queues 220, drops every byte buffered after the STARTTLS line (counted in
// starttls_event::discarded; CVE-2011-0411 class), then refuses plaintext
// (receive() returns 0) until the caller reports tls_established(); then it
// forgets HELO/EHLO, AUTH and any transaction, stops offering STARTTLS and
// requires a new EHLO. The caller must send the pending output (the 220)
// before starting the handshake.
//
// Content (DATA via wire/data.hpp, BDAT via wire/bdat.hpp) streams out as
// content_event views; nothing is buffered whole. DATA ends only at
// CRLF.CRLF (smuggling sequences stay content and fail the message); every
// BDAT chunk whose command line parsed is consumed, and discarded when the
// command is refused, so chunk octets are never read as commands.
//
// XCLIENT and XFORWARD (Postfix) exist only for a peer the application
// trusts (server_config::xclient_trusted); anyone else gets 500 as for any
// unknown command. An accepted XCLIENT sends the session back to the
// greeting stage (a new 220, EHLO again; TLS stays); XFORWARD attributes
// belong to the next transaction. The engine copies no attribute value: the
// events carry views and say when the application's copy starts afresh.
//
// LIMITS (RFC 9422) announces limits the engine enforces anyway: recipients
// per transaction (452 4.5.3), distinct recipient domains per transaction
// (452 4.5.3) and MAIL commands per session (421 4.5.3, then close).
// DELIVERBY, MT-PRIORITY, RRVS and FUTURERELEASE parameters are refused
// with 555 unless offered, and checked against what was offered.
//
// Errors are sticky only when fatal: too many errors or commands, a timeout,
// too many failed AUTH attempts, or a BDAT chunk size the engine cannot frame
// queue a last 421 (552 for the size) and close the session (closed_event).
#ifndef SMTPWIRE_SERVER_HPP
#define SMTPWIRE_SERVER_HPP

#include <smtpwire/error.hpp>
#include <smtpwire/tls_info.hpp>
#include <smtpwire/wire/base64.hpp>
#include <smtpwire/wire/bdat.hpp>
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/data.hpp>
#include <smtpwire/wire/line.hpp>
#include <smtpwire/wire/params.hpp>
#include <smtpwire/wire/path.hpp>
#include <smtpwire/wire/reply.hpp>
#include <smtpwire/wire/sasl.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace smtpwire {

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The priority assignment policy a server names after MT-PRIORITY (RFC 6710
/// and its IANA registry of policies); the policy itself (who may raise a
/// priority, how levels map) is the application's, at mail_event.
enum class mt_priority_profile : std::uint8_t {
  off,         ///< MT-PRIORITY not offered
  unnamed,     ///< "MT-PRIORITY" without a profile name
  mixer,       ///< "MT-PRIORITY MIXER" (RFC 6710: MIXER, RFC 2156)
  stanag4406,  ///< "MT-PRIORITY STANAG4406" (RFC 6710: STANAG 4406)
  nsep,        ///< "MT-PRIORITY NSEP" (RFC 6710: National Security/Emergency Preparedness)
};

/// The EHLO line of `p` ("MT-PRIORITY MIXER", …); "" for off.
constexpr std::string_view ehlo_line(mt_priority_profile p) noexcept {
  switch (p) {
    case mt_priority_profile::off:
      break;
    case mt_priority_profile::unnamed:
      return "MT-PRIORITY";
    case mt_priority_profile::mixer:
      return "MT-PRIORITY MIXER";
    case mt_priority_profile::stanag4406:
      return "MT-PRIORITY STANAG4406";
    case mt_priority_profile::nsep:
      return "MT-PRIORITY NSEP";
  }
  return "";
}

/// The ESMTP extensions the server offers in its EHLO reply. Parameters of an
/// extension that is not offered are refused (555 5.5.4, RFC 5321
/// §4.1.1.11).
struct server_extensions {
  bool size = true;                 ///< SIZE <max_message_size> (RFC 1870); default on
  bool eightbitmime = true;         ///< 8BITMIME (RFC 6152); default on
  bool pipelining = true;           ///< PIPELINING (RFC 2920); default on
  bool starttls = true;             ///< STARTTLS (RFC 3207), only when tls_available; default on
  bool enhancedstatuscodes = true;  ///< ENHANCEDSTATUSCODES (RFC 2034); default on
  bool smtputf8 = false;            ///< SMTPUTF8 (RFC 6531); default off
  bool chunking = false;            ///< CHUNKING, i.e. BDAT (RFC 3030); default off
  bool binarymime = false;          ///< BINARYMIME (RFC 3030), needs chunking; default off
  bool dsn = false;                 ///< DSN (RFC 3461); default off
  bool requiretls = false;          ///< REQUIRETLS (RFC 8689), offered only inside TLS; default off
  /// XCLIENT (Postfix XCLIENT_README), offered and served only when
  /// server_config::xclient_trusted; default off.
  bool xclient = false;
  /// XFORWARD (Postfix XFORWARD_README), offered and served only when
  /// server_config::xclient_trusted; default off.
  bool xforward = false;
  /// LIMITS (RFC 9422): advertises RCPTMAX (limits.max_recipients), MAILMAX
  /// (limits.max_transactions) and RCPTDOMAINMAX
  /// (limits.max_recipient_domains), each when non-zero. The engine enforces
  /// those limits whether or not they are advertised. Default off.
  bool limits = false;
  /// DELIVERBY (RFC 2852): nullopt = not offered; 0 = offered without a
  /// minimum; n = "DELIVERBY n", and a BY in R mode with a by-time below n
  /// seconds is refused (by_time_below_minimum). Above 999999999 (the
  /// 9-digit min-by-time) it is not offered. Default not offered.
  std::optional<std::uint32_t> deliverby;
  /// MT-PRIORITY (RFC 6710) and the profile named after it; default off.
  mt_priority_profile mt_priority = mt_priority_profile::off;
  /// RRVS (RFC 7293), the RCPT parameter RRVS=date-time[;C|R]; default off.
  bool rrvs = false;
  /// FUTURERELEASE (RFC 4865 §3): the longest HOLDFOR in seconds, at most
  /// 999999999 (9 digits); 0 = not offered (default). Offered only together
  /// with futurerelease_max_datetime.
  std::uint32_t futurerelease_max_interval = 0;
  /// FUTURERELEASE: the latest HOLDUNTIL the server accepts, in seconds
  /// since 1970-01-01T00:00:00Z, written in EHLO as an RFC 3339 date-time
  /// in UTC ("2026-12-06T05:00:00Z"). The engine reads no clock: the
  /// application sets it per session (e.g. now + the interval) and checks a
  /// HOLDUNTIL in the past itself. Outside 1970..9999 (or 0) FUTURERELEASE
  /// is not offered.
  std::int64_t futurerelease_max_datetime = 0;
  /// The built-in AUTH mechanisms (RFC 4954): PLAIN, LOGIN, XOAUTH2 and
  /// OAUTHBEARER, which the engine decodes. Other names are dropped (neither
  /// offered nor run): plug such mechanisms in with
  /// server::add_sasl_mechanism. Empty and none plugged in: no AUTH.
  wire::sasl::mechanism_set auth;
};

/// Policy switches.
struct server_policy {
  /// Refuse MAIL before STARTTLS with 530 5.7.0 (RFC 3207 §4). Default off.
  bool require_tls = false;
  /// Refuse MAIL before a successful AUTH with 530 5.7.0 (submission, RFC
  /// 6409 §4.3; RFC 4954 §6). Default off.
  bool require_auth = false;
  /// Offer and accept AUTH only inside TLS (RFC 4954 §4: mechanisms that
  /// send passwords need a protected channel; 538 5.7.11 otherwise). Default on.
  bool auth_only_over_tls = true;
  /// A client that sends message content before the 354 reply to DATA
  /// violates RFC 2920 §3.1 (DATA must end a pipelined group; the client
  /// waits for 354). The engine notices octets already buffered after the
  /// DATA line when the application accepts DATA (early_content_seen()).
  /// When set, such a client gets 554 5.5.0 and the session closes instead
  /// of the 354: whether the octets arrive before the decision depends on
  /// network timing, so this is a policy for honeypots and strict MTAs, not
  /// a protocol rule. Default off.
  bool reject_early_content = false;
  /// A DATA message with 8-bit octets needs BODY=8BITMIME (RFC 6152 §3) and
  /// a BDAT message under BODY=7BIT (or none) needs the same: fail such
  /// content with 554 5.6.1. Default on.
  bool enforce_body = true;
};

/// Limits. The buffers are sized from these (see server::memory_reserved).
struct server_limits {
  std::size_t max_command_line =
      512;  ///< octets with CRLF; default 512, RFC 5321 §4.5.3.1.4 min 512
  /// AUTH command and SASL response lines (RFC 4954 §4: 12288); only used
  /// when AUTH mechanisms are offered (it sizes the line and SASL buffers).
  std::size_t max_auth_line = 12288;  ///< default 12288; RFC 4954 §4 minimum 12288
  std::size_t max_recipients = 100;   ///< per message; default 100, RFC 5321 §4.5.3.1.8 min 100
  /// MAIL commands per session, refused or not (RFC 9422 §4.1 MAILMAX); the
  /// next one gets 421 4.5.3 and the session closes. 0 = no limit (default);
  /// no RFC minimum.
  std::size_t max_transactions = 0;
  /// Distinct recipient domains per transaction (RFC 9422 §4.3
  /// RCPTDOMAINMAX), compared in any case; a RCPT naming one more gets 452
  /// 4.5.3. 0 = no limit (default); no RFC minimum. When set, the engine
  /// holds 8 octets per domain (a 64-bit hash; a collision can only let a
  /// domain through, never refuse one).
  std::size_t max_recipient_domains = 0;
  std::uint64_t max_message_size =
      33554432;  ///< octets; default 32 MiB, RFC 5321 §4.5.3.1.7 min 64 KiB
  /// Protocol errors before 421 4.7.0; default 10, no RFC limit. The 503/554
  /// a pipelining client gets for RCPT/DATA/BDAT after this server refused
  /// the transaction's MAIL or a RCPT are not errors and do not count.
  std::size_t max_errors = 10;
  std::size_t max_commands = 10000;   ///< command lines per session; default 10000, no RFC limit
  std::size_t max_auth_failures = 3;  ///< failed AUTH exchanges before 421; default 3, no RFC limit
  /// Octets buffered from receive(). Command lines are framed inside this
  /// buffer, so it is never smaller than the longest line (max_command_line,
  /// or max_auth_line when AUTH is offered).
  std::size_t input_buffer = 1024;  ///< default 1024, no RFC limit
  /// Unsent reply octets above which no further command is read (a client
  /// that pipelines without reading replies is paused, not buffered).
  std::size_t output_backlog = 1024;  ///< default 1024, no RFC limit
};

/// Timeouts (RFC 5321 §4.5.3.2). The engine never reads a clock: see
/// server::check_time and server::deadline.
struct server_timeouts {
  /// Waiting for the next command (or SASL line): §4.5.3.2.7, "at least 5 minutes".
  std::chrono::steady_clock::duration command =
      std::chrono::minutes(5);  ///< default 5 min, RFC min 5 min
  /// Waiting for more content octets (DATA or a BDAT chunk); §4.5.3.2.7.
  std::chrono::steady_clock::duration data =
      std::chrono::minutes(5);  ///< default 5 min, RFC min 5 min
  /// Waiting for tls_established() after STARTTLS or in implicit TLS mode.
  std::chrono::steady_clock::duration tls_handshake =
      std::chrono::minutes(1);  ///< default 1 min, no RFC value
};

/// Leniencies, each off by default; none of them changes what ends DATA.
struct server_leniency {
  /// A bare LF in DATA content is delivered as CRLF instead of failing the
  /// message (wire::data_options::bare_lf_in_data). Risk: SMTP smuggling
  /// through a downstream MTA that splits lines differently.
  bool bare_lf_in_data = false;
  /// 8-bit content without BODY=8BITMIME is accepted (many old clients
  /// omit BODY). Risk: a downstream 7-bit hop may mangle the message.
  bool undeclared_8bit = false;
};

/// Everything a server needs to know before the connection starts.
struct server_config {
  std::string host_name = "localhost";  ///< the name in the greeting, EHLO and 221/421 replies
  server_extensions extensions;         ///< what EHLO offers
  server_policy policy;                 ///< policy switches
  server_limits limits;                 ///< limits
  server_timeouts timeouts;             ///< RFC 5321 §4.5.3.2 deadlines
  server_leniency leniency;             ///< named leniencies, all off
  /// The application can run TLS: only then STARTTLS is offered.
  bool tls_available = false;
  /// Implicit TLS (RFC 8314 §3.3, port 465): the caller runs the handshake
  /// first and calls tls_established() before any greeting is written.
  bool implicit_tls = false;
  /// LMTP (RFC 2033): LHLO instead of HELO/EHLO, "LMTP" in the greeting, one
  /// reply per accepted recipient after the content.
  bool lmtp = false;
  /// The peer may use XCLIENT and XFORWARD (when extensions.xclient /
  /// extensions.xforward are on). The application sets it per connection
  /// from what it knows of the TCP peer (a list of trusted proxies or
  /// filters): the commands rewrite audit trails and access decisions, so
  /// an untrusted peer neither sees them in EHLO nor gets any other reply
  /// than the one for an unknown command (500 5.5.1). Default false.
  bool xclient_trusted = false;
};

// ---------------------------------------------------------------------------
// States and the transition table
// ---------------------------------------------------------------------------

/// Where the session is. The first six read command lines.
enum class server_state : std::uint8_t {
  awaiting_hello,    ///< greeted; HELO/EHLO/LHLO needed before MAIL
  awaiting_mail,     ///< hello done; no transaction
  awaiting_rcpt,     ///< MAIL accepted, no recipient accepted yet
  awaiting_data,     ///< at least one recipient accepted
  awaiting_bdat,     ///< between the BDAT chunks of one message (RFC 3030)
  greeting_refused,  ///< the connection was refused with 554: only QUIT (RFC 5321 §3.1)
  connecting,        ///< waiting for the connection decision (the greeting)
  in_data,           ///< reading DATA content
  in_bdat,           ///< reading (or discarding) the octets of a BDAT chunk
  in_auth,           ///< reading SASL responses (RFC 4954 §4)
  tls_pending,       ///< STARTTLS accepted or implicit TLS: waiting for the handshake
  closed,            ///< the session is over; nothing more is read
};

/// Number of states.
inline constexpr std::size_t server_state_count = 12;

/// A stable name for `s` ("awaiting_mail", …).
constexpr std::string_view to_string(server_state s) noexcept {
  switch (s) {
    case server_state::awaiting_hello:
      return "awaiting_hello";
    case server_state::awaiting_mail:
      return "awaiting_mail";
    case server_state::awaiting_rcpt:
      return "awaiting_rcpt";
    case server_state::awaiting_data:
      return "awaiting_data";
    case server_state::awaiting_bdat:
      return "awaiting_bdat";
    case server_state::greeting_refused:
      return "greeting_refused";
    case server_state::connecting:
      return "connecting";
    case server_state::in_data:
      return "in_data";
    case server_state::in_bdat:
      return "in_bdat";
    case server_state::in_auth:
      return "in_auth";
    case server_state::tls_pending:
      return "tls_pending";
    case server_state::closed:
      return "closed";
  }
  return "unknown";
}

/// True for the states that read command lines.
constexpr bool reads_commands(server_state s) noexcept {
  return static_cast<std::uint8_t>(s) <= static_cast<std::uint8_t>(server_state::greeting_refused);
}

/// What the sequencing rules say about a command in a state.
enum class server_rule : std::uint8_t {
  allowed,          ///< processed (its syntax, features and policy still apply)
  out_of_sequence,  ///< 503 5.5.1 Bad sequence of commands (RFC 5321 §4.1.4)
  no_recipients,    ///< 554 5.5.1 No valid recipients (RFC 5321 §3.3)
};

namespace detail {
inline constexpr std::size_t server_verb_count = 18;  // wire::verb values, unknown included

// Rows: the command-reading states in enum order; columns: wire::verb in
// enum order: HELO EHLO LHLO MAIL RCPT DATA BDAT RSET VRFY EXPN HELP NOOP
// QUIT STARTTLS AUTH XCLIENT XFORWARD unknown. RFC 5321 §4.1.4: MAIL needs
// a hello, RCPT a MAIL, DATA a recipient; EHLO and RSET may come any time.
// RFC 3207 §4 and RFC 4954 §4: STARTTLS and AUTH not inside a transaction.
// XCLIENT_README and XFORWARD_README: "at any time except in the middle of
// a mail delivery transaction". RFC 3030 §2: after a BDAT chunk only BDAT,
// RSET, QUIT, NOOP, the hellos and the harmless informational verbs. RFC
// 5321 §3.1: after a 554 greeting, 503 to everything but QUIT.
static_assert(server_verb_count == static_cast<std::size_t>(wire::verb::unknown) + 1,
              "one table column per wire::verb");
inline constexpr char server_table[6][server_verb_count + 1] = {
    // H E L M R D B R V E H N Q S A X X ?
    "AAASSSSAAAAAASSAAA",  // awaiting_hello
    "AAAASSSAAAAAAAAAAA",  // awaiting_mail
    "AAASANNAAAAAASSSSA",  // awaiting_rcpt
    "AAASAAAAAAAAASSSSA",  // awaiting_data
    "AAASSSAAAAAAASSSSA",  // awaiting_bdat
    "SSSSSSSSSSSSASSSSS",  // greeting_refused
};
}  // namespace detail

/// The sequencing rule for `v` in state `s` (the single transition table of
/// the engine). States that do not read commands answer out_of_sequence.
constexpr server_rule sequence_rule(server_state s, wire::verb v) noexcept {
  if (!reads_commands(s)) return server_rule::out_of_sequence;
  const char c = detail::server_table[static_cast<std::size_t>(s)][static_cast<std::size_t>(v)];
  return c == 'A'   ? server_rule::allowed
         : c == 'N' ? server_rule::no_recipients
                    : server_rule::out_of_sequence;
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// A new connection: decide whether to greet (220) or refuse it (554, then
/// only QUIT is served) or 421 (temp_fail: closes). Decision.
struct connect_event {};

/// HELO, EHLO or LHLO. Decision: accept() replies 250 (EHLO/LHLO: with the
/// capability list). Views valid until the next call on the engine.
struct hello_event {
  wire::verb verb = wire::verb::ehlo;  ///< helo, ehlo or lhlo
  std::string_view domain;             ///< as sent (address literal with brackets)
  wire::address_kind kind = wire::address_kind::domain;  ///< what `domain` holds
};

/// MAIL FROM with its typed parameters, already checked against what was
/// offered and the limits: MT-PRIORITY, BY (DELIVERBY), HOLDFOR and
/// HOLDUNTIL (FUTURERELEASE) appear only when offered and within the
/// configured bounds. Decision: accept() replies 250 2.1.0.
struct mail_event {
  wire::path reverse_path;   ///< views valid until the next call on the engine
  wire::mail_params params;  ///< typed parameters (views as above)
  /// True when XFORWARD attributes were accepted for this transaction
  /// (xforward_event since the last reset): the application's merged
  /// attributes describe the original client; false: the real peer does.
  bool xforwarded = false;
};

/// RCPT TO. Decision: accept() replies 250 2.1.5.
struct rcpt_event {
  wire::path forward_path;   ///< views valid until the next call on the engine
  wire::rcpt_params params;  ///< typed parameters (views as above; RRVS only when offered)
  std::size_t accepted = 0;  ///< recipients accepted so far in this transaction
};

/// XCLIENT from a trusted peer (server_config::xclient_trusted), outside a
/// transaction, its attributes valid (wire::parse_xattributes). Decision:
/// accept() resets the session to the greeting stage and replies with the
/// 220 greeting (the client must send EHLO again; TLS stays, RFC 3207 does
/// not allow turning it off); reject() replies 550 5.7.0; temp_fail()
/// replies 421 4.3.0 and closes (XCLIENT_README: "unable to proceed,
/// disconnecting"; a 4yz other than 421 leaves the session open). The
/// attributes persist for the session and attributes not named keep their
/// earlier value (XCLIENT_README): the application merges them. After an
/// accepted XCLIENT the session counts as authenticated exactly when the
/// latest LOGIN attribute held a value (an earlier AUTH is forgotten with
/// the rest of the session). Views valid until the next call on the engine.
struct xclient_event {
  wire::xattributes attributes;  ///< raw xtext values (decode with wire/xtext.hpp)
};

/// XFORWARD from a trusted peer, outside a transaction. Decision: accept()
/// replies 250 2.0.0; reject() 550 5.7.0; temp_fail() 421 4.3.0 and closes
/// (another 4yz leaves it open). XFORWARD_README: the first accepted
/// XFORWARD after a reset starts from all attributes [UNAVAILABLE], later
/// ones overwrite what they name, and everything is forgotten at the end
/// of the next transaction (end of content, RSET, a hello, XCLIENT or
/// STARTTLS). The engine stores no values: the application merges them,
/// starting afresh when `initial` is set, and mail_event::xforwarded says
/// whether they apply. Views valid until the next call on the engine.
struct xforward_event {
  wire::xattributes attributes;  ///< raw xtext values (decode with wire/xtext.hpp)
  bool initial = true;           ///< no XFORWARD was accepted since the last reset
};

/// The start of content: DATA, or the first BDAT chunk of a message.
/// Decision: accept() replies 354 for DATA and lets the chunk through for
/// BDAT; a refusal is the reply to DATA, or to BDAT after its chunk has been
/// consumed and discarded.
struct data_start_event {
  bool bdat = false;  ///< true for BDAT (CHUNKING)
};

/// Unstuffed content octets, in order. A view valid until the next call on
/// the engine. Not a decision.
struct content_event {
  std::string_view bytes;
};

/// The end of content. When `error` is errc::ok it is a decision (in LMTP,
/// one decision per accepted recipient, in RCPT order); otherwise the engine
/// has already replied with the error (reply_for) and the application
/// discards what it received.
struct data_end_event {
  std::uint64_t octets = 0;    ///< content octets (after unstuffing)
  bool eight_bit = false;      ///< an octet >= 0x80 was seen
  bool long_lines = false;     ///< a line over 998 octets was seen (DATA only)
  bool bdat = false;           ///< the content came by BDAT
  std::size_t recipients = 0;  ///< accepted recipients (LMTP: decisions to make)
  errc error = errc::ok;       ///< why the content failed, or ok
};

/// AUTH credentials decoded from the SASL exchange (RFC 4954), or the
/// identity a plugged-in mechanism (sasl_server_mechanism) has verified.
/// Decision: accept() replies 235 2.7.0; reject() 535 5.7.8. For XOAUTH2 and
/// OAUTHBEARER, a reject()/temp_fail() whose server_reply carries
/// `oauth_error` runs the RFC 7628 §3.2.2 error exchange first (a 334 with
/// the JSON status, the client's dummy response, then the reply).
/// For a verified identity the application only authorises: may `authcid`
/// act as `authzid`? Views valid until the next call on the engine.
struct auth_event {
  /// The mechanism; wire::sasl::mechanism::unknown for a plugged-in
  /// mechanism whose name smtpwire does not know.
  wire::sasl::mechanism mechanism = wire::sasl::mechanism::plain;
  std::string_view authzid;         ///< PLAIN/OAUTHBEARER authorization identity; may be empty
  std::string_view authcid;         ///< the user name (XOAUTH2: the user)
  std::string_view secret;          ///< the password, or the bearer token; empty when `verified`
  std::string_view mechanism_name;  ///< the name as offered in EHLO ("PLAIN", "SCRAM-SHA-256", …)
  /// True when a plugged-in mechanism verified the client's proof itself:
  /// `secret` is empty and only the authorisation remains to decide.
  bool verified = false;
};

/// VRFY or EXPN. Decision: accept() replies 252 2.5.0 (RFC 5321 §3.5.3),
/// accept(reply) with the application's 250 text; reject() 550 5.1.1.
struct verify_event {
  wire::verb verb = wire::verb::vrfy;  ///< vrfy or expn
  std::string_view argument;           ///< as sent; valid until the next call on the engine
};

/// STARTTLS was accepted: send the pending output (the 220), then run the
/// handshake and call tls_established() or tls_failed().
struct starttls_event {
  std::size_t discarded = 0;  ///< plaintext octets dropped after the STARTTLS line
};

/// The engine refused a command on its own (syntax, sequence, policy,
/// limits). For logs; not a decision.
struct rejected_event {
  wire::verb verb = wire::verb::unknown;  ///< the command's verb (unknown for framing errors)
  errc error = errc::ok;                  ///< the grammar error, or ok for sequence/policy
  int code = 0;                           ///< the reply code sent
};

/// Why a session ended.
enum class close_reason : std::uint8_t {
  quit,                   ///< the client sent QUIT (221)
  refused,                ///< the connection decision was temp_fail (421)
  too_many_errors,        ///< limits.max_errors reached (421 4.7.0)
  too_many_commands,      ///< limits.max_commands reached (421 4.7.0)
  auth_failures,          ///< limits.max_auth_failures reached (421 4.7.0)
  timeout,                ///< a deadline passed (421 4.4.2)
  unframeable,            ///< a BDAT chunk size that cannot be framed (552, then close)
  tls_failed,             ///< the caller reported a failed TLS handshake
  early_content,          ///< content before the 354 under policy.reject_early_content (554)
  shutdown,               ///< the application called shutdown() (421 4.3.2)
  too_many_transactions,  ///< limits.max_transactions MAIL commands were used (421 4.5.3)
  xcommand_refused,       ///< the application answered XCLIENT or XFORWARD with 421
};

/// A stable name for `r`.
constexpr std::string_view to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::quit:
      return "quit";
    case close_reason::refused:
      return "refused";
    case close_reason::too_many_errors:
      return "too_many_errors";
    case close_reason::too_many_commands:
      return "too_many_commands";
    case close_reason::auth_failures:
      return "auth_failures";
    case close_reason::timeout:
      return "timeout";
    case close_reason::unframeable:
      return "unframeable";
    case close_reason::tls_failed:
      return "tls_failed";
    case close_reason::shutdown:
      return "shutdown";
    case close_reason::early_content:
      return "early_content";
    case close_reason::too_many_transactions:
      return "too_many_transactions";
    case close_reason::xcommand_refused:
      return "xcommand_refused";
  }
  return "unknown";
}

/// The session is over: send the pending output, then close the connection.
struct closed_event {
  close_reason reason = close_reason::quit;
};

/// One event; std::monostate means "nothing now": the engine needs more
/// bytes, a decision, room in the output, or it is closed.
using server_event =
    std::variant<std::monostate, connect_event, hello_event, mail_event, rcpt_event,
                 data_start_event, content_event, data_end_event, auth_event, verify_event,
                 starttls_event, rejected_event, closed_event, xclient_event, xforward_event>;

/// Which decision is pending.
enum class server_decision : std::uint8_t {
  none,
  connect,
  hello,
  mail,
  rcpt,
  data_start,
  data_end,
  auth,
  verify,
  xclient,
  xforward,
};

/// A reply an application supplies with a decision. The text must not hold
/// CR, LF or NUL (refused with api_value_invalid: no reply injection); long
/// text is folded into lines of at most 512 octets (wire::write_reply). The
/// enhanced code ("5.7.1") is written only when ENHANCEDSTATUSCODES is
/// offered; when empty, the default one of the decision is used if its class
/// matches.
struct server_reply {
  int code = 0;               ///< the basic code; its class must suit the call
  std::string_view enhanced;  ///< RFC 3463 class.subject.detail, or empty
  std::string_view text;      ///< the text; empty for the default text
  /// Only for reject()/temp_fail() of an OAUTHBEARER or XOAUTH2 auth_event:
  /// the RFC 7628 §3.2.2 error status, a JSON object such as
  /// {"status":"invalid_token","scope":"mail","openid-configuration":"https://…"}
  /// (checked with wire::sasl::parse_oauth_error). The engine sends it
  /// base64-encoded in a 334 challenge and sends this reply (e.g. 535 5.7.8)
  /// only after the client's dummy response: a single 0x01, "AQ==", for
  /// OAUTHBEARER (RFC 7628 §3.2.3), an empty line for XOAUTH2; anything
  /// else gets 501 (5.7.0 for "*", else 5.5.2) instead. Either way the
  /// attempt counts towards limits.max_auth_failures. Empty: the reply
  /// goes out at once. api_value_invalid for any other decision, for
  /// accept(), or for JSON that does not parse.
  std::string_view oauth_error{};
};

// ---------------------------------------------------------------------------
// Received trace field (RFC 5321 §4.4)
// ---------------------------------------------------------------------------

/// The WITH protocol name of RFC 3848 (and RFC 6531 §4.3 for SMTPUTF8):
/// SMTP for HELO, ESMTP for EHLO, LMTP for LHLO; "S" appended for TLS, "A"
/// for an authenticated client; UTF8SMTP / UTF8LMTP replace ESMTP / LMTP for
/// a transaction that used SMTPUTF8. The strings are static.
constexpr std::string_view received_protocol(wire::verb hello, bool tls, bool auth,
                                             bool smtputf8) noexcept {
  constexpr std::string_view names[] = {
      "SMTP", "SMTPS", "SMTPA", "SMTPSA",                  // HELO (RFC 3848 has no S/A forms
                                                           // for HELO; ESMTP ones are used)
      "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA",              // EHLO
      "LMTP", "LMTPS", "LMTPA", "LMTPSA",                  // LHLO
      "UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA",  // EHLO + SMTPUTF8
      "UTF8LMTP", "UTF8LMTPS", "UTF8LMTPA", "UTF8LMTPSA",  // LHLO + SMTPUTF8
  };
  std::size_t row = hello == wire::verb::lhlo ? 2 : hello == wire::verb::ehlo ? 1 : 0;
  if (row == 0 && (tls || auth)) row = 1;  // only ESMTP has registered S/A forms
  if (smtputf8 && row != 0) row += 2;
  return names[row * 4 + (tls ? 1 : 0) + (auth ? 2 : 0)];
}

/// What goes into a Received header field. Every view must be free of CR,
/// LF and NUL; the ones written inside a comment (client_host, the TLS
/// facts) also of '(', ')' and '\\'.
struct received_fields {
  std::string_view helo;         ///< the client's HELO/EHLO/LHLO argument (required)
  std::string_view client_host;  ///< the client's verified host name; may be empty
  /// The client's address as an address-literal body: "192.0.2.1" or
  /// "IPv6:2001:db8::1" (written in brackets); may be empty.
  std::string_view client_address;
  std::string_view by;            ///< this server's name (required)
  std::string_view protocol;      ///< WITH protocol, e.g. received_protocol(); may be empty
  std::string_view id;            ///< the queue id (an Atom); may be empty
  std::string_view for_path;      ///< one recipient path with brackets; may be empty
  const tls_info* tls = nullptr;  ///< written as a comment (protocol and cipher) when set
  /// The RFC 5322 date-time, e.g. "Sun, 29 Nov 2026 05:00:00 +0000" (the
  /// engine reads no clock; required).
  std::string_view date_time;
};

// RFC 5321 §4.4:
//   Time-stamp-line = "Received:" FWS Stamp <CRLF>
//   Stamp           = From-domain By-domain Opt-info [CFWS] ";" FWS date-time
//   From-domain     = "FROM" FWS Extended-Domain
//   By-domain       = CFWS "BY" FWS Extended-Domain
//   Extended-Domain = Domain / ( Domain FWS "(" TCP-info ")" ) /
//                     ( address-literal FWS "(" TCP-info ")" )
//   TCP-info        = address-literal / ( Domain FWS address-literal )
//   Opt-info        = [Via] [With] [ID] [For] [Additional-Registered-Clauses]
//   With            = CFWS "WITH" FWS Protocol
//   ID              = CFWS "ID" FWS ( Atom / msg-id )
//   For             = CFWS "FOR" FWS ( Path / Mailbox )
/// Appends a complete Received header field, folded with CRLF HT before
/// each clause, ending in CRLF. The TLS facts go in a comment after the WITH
/// clause, "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)", as Postfix
/// writes them. Errors (nothing appended): api_value_invalid for a missing
/// required field, CR/LF/NUL anywhere, or a parenthesis or backslash in a
/// commented value.
[[nodiscard]] inline errc append_received(std::string& out, const received_fields& f) {
  const std::string_view all[] = {f.helo,
                                  f.client_host,
                                  f.client_address,
                                  f.by,
                                  f.protocol,
                                  f.id,
                                  f.for_path,
                                  f.date_time,
                                  f.tls ? f.tls->version : std::string_view(),
                                  f.tls ? f.tls->cipher : std::string_view()};
  for (std::string_view v : all)
    if (detail::has_line_breaking_byte(v)) return errc::api_value_invalid;
  auto commentable = [](std::string_view v) {
    return v.find_first_of("()\\") == std::string_view::npos;
  };
  const bool no_space =
      f.helo.find(' ') == std::string_view::npos && f.by.find(' ') == std::string_view::npos &&
      f.id.find(' ') == std::string_view::npos && f.for_path.find(' ') == std::string_view::npos &&
      f.protocol.find(' ') == std::string_view::npos &&
      f.client_address.find_first_of(" []") == std::string_view::npos;
  if (f.helo.empty() || f.by.empty() || f.date_time.empty() || !no_space ||
      !commentable(f.client_host) || !commentable(f.client_address) ||
      (f.tls && (!commentable(f.tls->version) || !commentable(f.tls->cipher))))
    return errc::api_value_invalid;
  out.append("Received: from ").append(f.helo);
  if (!f.client_host.empty() || !f.client_address.empty()) {
    out.append(" (");
    out.append(f.client_host);
    if (!f.client_address.empty()) {
      if (!f.client_host.empty()) out.push_back(' ');
      out.append("[").append(f.client_address).append("]");
    }
    out.append(")");
  }
  out.append("\r\n\tby ").append(f.by);
  if (!f.protocol.empty()) out.append(" with ").append(f.protocol);
  if (f.tls && !f.tls->version.empty()) {
    out.append("\r\n\t(using ").append(f.tls->version);
    if (!f.tls->cipher.empty()) out.append(" with cipher ").append(f.tls->cipher);
    out.append(")");
  }
  if (!f.id.empty()) out.append("\r\n\tid ").append(f.id);
  if (!f.for_path.empty()) out.append("\r\n\tfor ").append(f.for_path);
  out.append(";\r\n\t").append(f.date_time).append("\r\n");
  return errc::ok;
}

// ---------------------------------------------------------------------------
// Pluggable SASL mechanisms (RFC 4422, RFC 4954 §4)
// ---------------------------------------------------------------------------

/// A server-side SASL mechanism the application plugs in (SCRAM, CRAM-MD5, …). One instance per
/// session; the engine calls start() for each AUTH naming it, then respond() for each client line.
///
/// The engine does the SMTP side exactly as for the built-in mechanisms: it
/// base64-decodes the initial response and every client line (invalid
/// base64: 501 5.5.2; a line over limits.max_auth_line: 500 5.5.6), ends
/// the exchange on "*" (501 5.7.0) without calling the mechanism, and
/// base64-encodes each challenge into a 334 reply. A mechanism that has
/// server-final data to send (SCRAM's "v=…") returns it as a challenge and
/// sets `done` on the client's next (empty) response (RFC 4954 §4). When
/// `done` is set the engine emits auth_event{verified = true} with
/// authcid()/authzid(), and the application still accept()s (235) or
/// reject()s (535) the identity. The views the mechanism returns must stay
/// valid until the next call on the engine; the object must outlive the
/// server it is added to.
class sasl_server_mechanism {
 public:
  virtual std::string_view name() const noexcept = 0;  ///< as offered in EHLO's AUTH line
  /// `initial`: the decoded initial response; `present` false when AUTH carried none.
  /// Returns errc::ok and either sets `done` (the exchange is over: authcid()/authzid() are valid)
  /// or appends the decoded challenge to `challenge` (sent base64 in a 334). Any other errc fails
  /// the exchange (535 5.7.8 for a wrong proof — use a new errc sasl_auth_failed; 501 5.5.2 for a
  /// malformed message).
  ///
  /// `challenge` arrives empty; appending to it may allocate. With `done`
  /// set, nothing may be appended (the engine answers 451 4.3.0 then: a
  /// mechanism bug). sasl_auth_failed counts as a failed AUTH attempt
  /// (limits.max_auth_failures), like the application's reject(); any other
  /// error is answered with reply_for(error) and, when that is a 5yz,
  /// counts as a protocol error (limits.max_errors).
  virtual errc start(std::string_view initial, bool present, std::string& challenge,
                     bool& done) = 0;
  /// A client line of the exchange after start() (decoded; empty for an
  /// empty line); the same contract as start().
  virtual errc respond(std::string_view response, std::string& challenge, bool& done) = 0;
  /// The authentication identity, valid once `done` was set.
  virtual std::string_view authcid() const noexcept = 0;
  /// The authorization identity (empty: the same as authcid), valid once `done` was set.
  virtual std::string_view authzid() const noexcept = 0;

 protected:
  ~sasl_server_mechanism() = default;
};

/// How many mechanisms server::add_sasl_mechanism takes.
inline constexpr std::size_t max_sasl_mechanisms = 8;

namespace detail {

// RFC 3339 §5.6 (the text was checked with wire::is_date_time):
//   date-time = full-date "T" full-time
//   full-date = date-fullyear "-" date-month "-" date-mday
//   full-time = partial-time time-offset
//   partial-time = time-hour ":" time-minute ":" time-second [time-secfrac]
//   time-offset  = "Z" / time-numoffset ; time-numoffset = ("+" / "-") hh ":" mm
// as seconds since 1970-01-01T00:00:00Z; a non-zero fraction counts as one
// more second when `round_up` (so "later than" errs towards later).
constexpr std::int64_t date_time_seconds(std::string_view t, bool round_up) noexcept {
  auto num = [&](std::size_t at, std::size_t n) {
    std::int64_t v = 0;
    for (std::size_t i = at; i < at + n && i < t.size(); ++i)
      v = v * 10 + (t[i] - '0');
    return v;
  };
  const std::int64_t y = num(0, 4), mo = num(5, 2), d = num(8, 2);
  std::int64_t secs = num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2);
  std::size_t i = 19;
  bool fraction = false;
  if (i < t.size() && t[i] == '.')
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i)
      fraction = fraction || t[i] != '0';
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    const std::int64_t off = num(i + 1, 2) * 3600 + num(i + 4, 2) * 60;
    secs -= t[i] == '+' ? off : -off;
  }
  // Days from the civil date (proleptic Gregorian; March-based years).
  const std::int64_t yy = y - (mo <= 2 ? 1 : 0);
  const std::int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  const std::int64_t yoe = yy - era * 400;
  const std::int64_t doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = era * 146097 + doe - 719468;
  return days * 86400 + secs + (round_up && fraction ? 1 : 0);
}

// 9999-12-31T23:59:59Z, the last second an RFC 3339 date-time can name.
inline constexpr std::int64_t date_time_seconds_max = 253402300799;

// Appends `t` (seconds since 1970, 0 < t <= date_time_seconds_max) as an
// RFC 3339 date-time in UTC: "YYYY-MM-DDTHH:MM:SSZ".
inline void append_date_time(std::string& out, std::int64_t t) {
  const std::int64_t days = t / 86400, secs = t % 86400;
  // Civil date from days (proleptic Gregorian; March-based years).
  const std::int64_t z = days + 719468;
  const std::int64_t era = z / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  auto put = [&](std::int64_t v, int width, char after) {
    char buf[4];
    for (int i = width - 1; i >= 0; --i, v /= 10)
      buf[i] = static_cast<char>('0' + v % 10);
    out.append(buf, static_cast<std::size_t>(width));
    if (after != 0) out.push_back(after);
  };
  put(y, 4, '-');
  put(m, 2, '-');
  put(d, 2, 'T');
  put(secs / 3600, 2, ':');
  put(secs / 60 % 60, 2, ':');
  put(secs % 60, 2, 'Z');
}

// FNV-1a over the lower-cased domain: RCPTDOMAINMAX compares domains in
// any case (RFC 5321 §2.4) without keeping their text.
constexpr std::uint64_t domain_hash(std::string_view d) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (char c : d) {
    h ^= static_cast<unsigned char>(ascii_lower(c));
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------

/// A server session. Not thread-safe; one per connection. Allocates its
/// buffers in the constructor; only the output buffer grows later, once, to
/// its high-water mark (see memory_reserved()).
class server {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// A session for a connection that has just been accepted. The first
  /// event is connect_event (after tls_established() in implicit TLS mode).
  explicit server(server_config cfg = {});

  // -- bytes in ------------------------------------------------------------

  /// Copies client octets into the input buffer; returns how many it took:
  /// fewer than offered when the buffer is full (drain events, then offer
  /// the rest), 0 while a STARTTLS handshake is pending (those octets belong
  /// to TLS) and after the session closed.
  std::size_t receive(std::string_view bytes) noexcept;

  /// The next event (see server_event). Views in it are valid until the
  /// next call on the engine.
  server_event next_event() noexcept;

  // -- decisions -----------------------------------------------------------

  /// True while a decision point waits for accept/reject/temp_fail.
  bool awaiting_decision() const noexcept { return pending_ != server_decision::none; }
  /// The pending decision (server_decision::none when there is none).
  server_decision pending_decision() const noexcept { return pending_; }

  /// Accepts the pending decision with its default positive reply.
  /// errc::api_bad_state when no decision is pending.
  errc accept() noexcept { return decide(2, nullptr); }
  /// Accepts with the application's reply: 2yz, except 220 for the
  /// connection and 354 for DATA (the start of a BDAT message takes no
  /// reply). api_value_invalid for another code or text with CR, LF or NUL
  /// (nothing is written and the decision stays pending).
  errc accept(const server_reply& r) noexcept { return decide(2, &r); }
  /// Refuses permanently with the default 5yz reply of the decision.
  errc reject() noexcept { return decide(5, nullptr); }
  /// Refuses permanently with the application's 5yz reply.
  errc reject(const server_reply& r) noexcept { return decide(5, &r); }
  /// Refuses transiently with the default 4yz reply of the decision.
  errc temp_fail() noexcept { return decide(4, nullptr); }
  /// Refuses transiently with the application's 4yz reply.
  errc temp_fail(const server_reply& r) noexcept { return decide(4, &r); }

  // -- SASL ----------------------------------------------------------------

  /// Plugs in a SASL mechanism: EHLO offers it after the built-in ones
  /// (where AUTH is offered at all, i.e. respecting
  /// policy.auth_only_over_tls) and AUTH naming it (case-insensitively)
  /// runs it. `m` must outlive the server. Call before the greeting, at the
  /// latest while the connect decision is pending; it sizes the SASL
  /// buffers from limits.max_auth_line when the configuration had no AUTH.
  /// Errors (nothing changes): api_bad_state after the greeting was
  /// decided; api_value_invalid when name() is not an RFC 4422 §3.1
  /// mechanism name, is already offered (a built-in one of
  /// extensions.auth, or added before), or max_sasl_mechanisms are added.
  errc add_sasl_mechanism(sasl_server_mechanism& m) noexcept;

  // -- TLS -----------------------------------------------------------------

  /// The handshake after STARTTLS (or, in implicit TLS mode, at the start)
  /// succeeded. The engine forgets the pre-TLS session (RFC 3207 §4.2) and
  /// copies nothing out of `info` (keep it for the Received field).
  /// errc::api_bad_state unless the state is tls_pending.
  errc tls_established(const tls_info& info) noexcept;
  /// The handshake failed: the session closes without a reply.
  errc tls_failed() noexcept;

  /// The service is going down (RFC 5321 §3.8): queues "421 4.3.2 <host>
  /// Service shutting down" and closes the session (close_reason::shutdown);
  /// a message in progress is not accepted and a pending decision is
  /// dropped. While a STARTTLS handshake runs nothing may go out in clear,
  /// so the session just closes. api_bad_state when already closed.
  errc shutdown() noexcept;
  /// True once a handshake has completed.
  bool tls_active() const noexcept { return tls_; }

  // -- bytes out -----------------------------------------------------------

  /// Reply octets not yet sent. Valid until the next call on the engine.
  std::string_view output() const noexcept { return std::string_view(out_).substr(out_pos_); }
  /// Marks the first `n` octets of output() as sent; api_value_invalid
  /// (nothing changes) when n > output().size().
  errc consume_output(std::size_t n) noexcept;

  // -- time ----------------------------------------------------------------

  /// Reports the time: arms the current wait's clock at `now` when the wait
  /// began since the last call (bytes arrived or a decision was made; the
  /// state at deadline() time picks the timeout), or, when the armed
  /// deadline has passed, queues
  /// 421 4.4.2 and closes (closed_event{timeout}). Call it after each batch
  /// of receive()/next_event() and when deadline() passes.
  void check_time(time_point now) noexcept;
  /// When the current wait expires: time_point::max() when the engine is not
  /// waiting for the client (a decision is pending, output is backed up, it
  /// is closed) or the clock of this wait is not armed yet (call
  /// check_time).
  time_point deadline() const noexcept;

  // -- inspection ----------------------------------------------------------

  /// The current state.
  server_state state() const noexcept { return state_; }
  /// True once the session is over (the pending output is its last).
  bool closed() const noexcept { return state_ == server_state::closed; }
  /// True after a successful AUTH.
  bool authenticated() const noexcept { return authenticated_; }
  /// The WITH protocol of this session for a Received field (see
  /// received_protocol): call it at data_end_event, before deciding.
  std::string_view protocol() const noexcept {
    return received_protocol(accepted_hello_, tls_, authenticated_, tx_smtputf8_);
  }
  /// True once a client sent content before the 354 (see
  /// server_policy::reject_early_content).
  bool early_content_seen() const noexcept { return early_content_; }
  /// Protocol errors counted towards limits.max_errors.
  std::size_t errors() const noexcept { return errors_; }
  /// The configuration in force.
  const server_config& config() const noexcept { return cfg_; }
  /// Heap octets the session holds now: the input buffer, the output and
  /// scratch strings' capacity, the SASL buffer, the mechanism table, the
  /// RCPTDOMAINMAX table (8 octets per limits.max_recipient_domains) and a
  /// host name too long for the string's inline buffer. With sizeof(server)
  /// the memory of an idle session. It grows only while the output buffer
  /// reaches its high-water mark, once when the first EHLO reply's
  /// extension lines (XCLIENT, LIMITS, …) outgrow the scratch string, and
  /// when add_sasl_mechanism sizes the SASL buffers.
  std::size_t memory_reserved() const noexcept {
    return in_cap_ + heap_capacity(out_) + heap_capacity(scratch_) + sasl_cap_ +
           heap_capacity(cfg_.host_name) + domain_capacity() * sizeof(std::uint64_t) +
           (mechs_ ? max_sasl_mechanisms * sizeof(sasl_server_mechanism*) : 0);
  }

 private:
  enum class auth_step : std::uint8_t {
    none,
    plain,
    login_user,
    login_pass,
    xoauth2,
    oauthbearer,
    custom,
    oauth_error_bearer,   // RFC 7628 §3.2.2 error challenge sent: waiting for 0x01
    oauth_error_xoauth2,  // the same for XOAUTH2: waiting for an empty response
  };
  bool in_oauth_error() const noexcept {
    return auth_ == auth_step::oauth_error_bearer || auth_ == auth_step::oauth_error_xoauth2;
  }

  bool auth_configured() const noexcept {
    return !cfg_.extensions.auth.empty() || mech_count_ != 0;
  }
  bool auth_offered() const noexcept {
    return auth_configured() && (tls_ || !cfg_.policy.auth_only_over_tls);
  }
  bool starttls_offered() const noexcept {
    return cfg_.extensions.starttls && cfg_.tls_available && !tls_ && !cfg_.implicit_tls;
  }
  bool enhanced() const noexcept { return cfg_.extensions.enhancedstatuscodes; }
  bool xclient_offered() const noexcept { return cfg_.xclient_trusted && cfg_.extensions.xclient; }
  bool xforward_offered() const noexcept {
    return cfg_.xclient_trusted && cfg_.extensions.xforward;
  }
  bool futurerelease_offered() const noexcept {
    return cfg_.extensions.futurerelease_max_interval != 0;
  }
  // More recipient domains than recipients cannot be accepted.
  std::size_t domain_capacity() const noexcept {
    const auto& l = cfg_.limits;
    return l.max_recipient_domains < l.max_recipients ? l.max_recipient_domains : l.max_recipients;
  }

  static void append_decimal(std::string& out, std::uint64_t v) {
    char d[20];
    int n = 0;
    do {
      d[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n != 0)
      out.push_back(d[--n]);
  }
  void reply(int code, std::string_view enh, std::string_view text) noexcept;
  void reply_error(errc e) noexcept;
  server_event refuse(wire::verb v, errc e) noexcept;
  server_event refuse(wire::verb v, int code, std::string_view enh, std::string_view text,
                      bool count = true) noexcept;
  bool count_error() noexcept;
  bool follows_refusal(wire::verb v) const noexcept;
  void close(close_reason r) noexcept;
  void fatal(close_reason r, int code, std::string_view enh, std::string_view text) noexcept;
  void reset_transaction() noexcept;
  void activity() noexcept { clock_armed_ = false; }
  std::string_view input() const noexcept {
    return std::string_view(in_.get() + in_pos_, in_end_ - in_pos_);
  }

  server_event on_line(std::string_view line) noexcept;
  server_event on_auth_line(std::string_view line) noexcept;
  server_event on_mail(const wire::command& c) noexcept;
  server_event on_rcpt(const wire::command& c) noexcept;
  server_event on_xcommand(const wire::command& c, wire::verb v) noexcept;
  bool rcpt_domain_allowed(const wire::path& p) noexcept;
  server_event on_bdat(const wire::command& c, server_rule rule) noexcept;
  server_event on_auth(const wire::command& c) noexcept;
  server_event auth_message(std::string_view msg) noexcept;
  server_event custom_step(errc e, bool done) noexcept;
  void end_auth() noexcept;
  bool count_auth_failure() noexcept;
  std::size_t sasl_capacity() const noexcept { return line_max_ / 4 * 3 * 2 + 8; }
  wire::line_result read_line() noexcept;
  wire::line_result line_error(std::size_t consumed, errc e) noexcept;
  void drop_input() noexcept {
    in_pos_ = in_end_ = 0;
    scanned_ = 0;
    discarding_ = false;
    discard_prev_cr_ = false;
  }
  static std::size_t heap_capacity(const std::string& s) noexcept {
    // The small-string buffer inside the object is not heap memory.
    const char* d = s.data();
    const char* o = reinterpret_cast<const char*>(&s);
    return d >= o && d < o + sizeof(s) ? 0 : s.capacity() + 1;
  }
  server_event read_data() noexcept;
  server_event read_bdat() noexcept;
  server_event end_of_content(errc e, std::uint64_t octets, bool eight, bool long_lines,
                              bool bdat) noexcept;
  void write_ehlo_reply(wire::verb v) noexcept;
  errc decide(int cls, const server_reply* r) noexcept;
  void default_reply(server_decision d, int cls) noexcept;
  void after_decision(server_decision d, int cls) noexcept;

  // Wide members first, then the narrow ones together: sizeof(server) is
  // part of the memory of every idle session.
  server_config cfg_;
  std::size_t line_max_ = 512;  // the longest line with CRLF: command or SASL line
  std::unique_ptr<char[]> in_;  // client octets; command lines are framed in place
  std::size_t in_cap_ = 0;
  std::size_t in_pos_ = 0;
  std::size_t in_end_ = 0;
  std::size_t scanned_ = 0;  // octets after in_pos_ known to hold no CR, LF or NUL
  std::string out_;
  std::size_t out_pos_ = 0;
  std::string scratch_;            // EHLO's SIZE and AUTH lines, texts with the host name
  std::string_view enh_override_;  // decide(): the application's enhanced code, when given
  std::unique_ptr<char[]> sasl_;   // decoded SASL messages (LOGIN keeps the user here)
  std::size_t sasl_cap_ = 0;
  std::size_t sasl_len_ = 0;
  wire::data_decoder data_;
  wire::bdat_reader bdat_;
  std::unique_ptr<sasl_server_mechanism*[]> mechs_;  // add_sasl_mechanism; allocated by the first
  sasl_server_mechanism* mech_ = nullptr;  // the plugged-in mechanism of the open exchange
  std::size_t rcpts_ = 0;                  // accepted recipients of the transaction
  std::size_t lmtp_left_ = 0;              // LMTP end-of-content decisions still due
  std::size_t errors_ = 0;
  std::size_t commands_ = 0;
  std::size_t auth_failures_ = 0;
  // RCPTDOMAINMAX: hashes of the transaction's accepted recipient domains;
  // the pending RCPT's new one waits at domains_[domain_count_].
  std::unique_ptr<std::uint64_t[]> domains_;
  std::size_t domain_count_ = 0;
  std::size_t transactions_ = 0;  // MAIL commands of the session (limits.max_transactions)
  time_point wait_since_{};
  int code_override_ = 0;       // decide(): an application code with the default text
  int discard_reply_code_ = 0;  // the reply after a discarded chunk (0: already sent)
  errc bdat_error_ = errc::ok;  // an error found in accepted chunk octets

  server_state state_ = server_state::connecting;
  server_state bdat_prev_state_ = server_state::awaiting_hello;  // to restore after a refused chunk
  server_decision pending_ = server_decision::none;
  auth_step auth_ = auth_step::none;
  wire::verb hello_verb_ = wire::verb::ehlo;  // the verb of the pending hello decision
  wire::verb verify_verb_ = wire::verb::vrfy;
  wire::verb accepted_hello_ = wire::verb::helo;  // the verb of the accepted hello
  close_reason close_reason_ = close_reason::quit;
  std::uint8_t mech_count_ = 0;
  bool mech_started_ = false;     // start() was called for the open exchange
  bool discarding_ = false;       // skipping the rest of a refused line, up to CRLF
  bool discard_prev_cr_ = false;  // the last octet skipped was CR
  bool tls_ = false;
  bool authenticated_ = false;
  bool greeted_ = false;  // a hello was accepted (since the last STARTTLS)
  bool connect_reported_ = false;
  bool close_event_due_ = false;
  bool tx_smtputf8_ = false;   // the transaction's MAIL had SMTPUTF8
  bool tx_8bit_ok_ = false;    // BODY=8BITMIME or BINARYMIME
  bool tx_binary_ = false;     // BODY=BINARYMIME
  bool bdat_discard_ = false;  // the open chunk is consumed and dropped
  bool bdat_started_ = false;  // a BDAT chunk of this message was accepted
  bool bdat_last_ = false;     // the open chunk carries LAST
  bool bdat_eight_ = false;
  // The application refused this transaction's MAIL or a RCPT: the 503/554
  // that a pipelining client then gets for its RCPT/DATA/BDAT follow from
  // our refusal, not from a client error, and do not count (RFC 2920 §3.1).
  bool refused_in_tx_ = false;
  bool discard_count_ = true;  // whether the reply after a discarded chunk counts
  bool early_content_ = false;
  bool clock_armed_ = false;
  bool pending_domain_new_ = false;  // the pending RCPT names a domain not yet counted
  bool xforward_given_ = false;      // an XFORWARD was accepted since the last reset
  bool xclient_login_ = false;       // the latest XCLIENT LOGIN held a value
  wire::xvalue_kind pending_login_ = wire::xvalue_kind::absent;  // LOGIN of the pending XCLIENT
};

// ---------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------

inline server::server(server_config cfg) : cfg_(std::move(cfg)) {
  if (cfg_.limits.input_buffer == 0) cfg_.limits.input_buffer = 1;
  if (cfg_.limits.max_command_line < 3) cfg_.limits.max_command_line = 3;
  if (cfg_.host_name.empty() || detail::has_line_breaking_byte(cfg_.host_name) ||
      cfg_.host_name.find(' ') != std::string::npos)
    cfg_.host_name = "localhost";
  wire::sasl::mechanism_set built_in;
  for (auto m : {wire::sasl::mechanism::plain, wire::sasl::mechanism::login,
                 wire::sasl::mechanism::xoauth2, wire::sasl::mechanism::oauthbearer})
    if (cfg_.extensions.auth.has(m)) built_in.add(m);
  cfg_.extensions.auth = built_in;
  line_max_ = cfg_.limits.max_command_line;
  if (!cfg_.extensions.auth.empty() && cfg_.limits.max_auth_line > line_max_)
    line_max_ = cfg_.limits.max_auth_line;
  // Lines are framed in place: the input buffer holds the longest line.
  in_cap_ = cfg_.limits.input_buffer < line_max_ ? line_max_ : cfg_.limits.input_buffer;
  in_.reset(new char[in_cap_]);
  // Enough for the greeting and an EHLO reply; a pipelining client's
  // backlog grows it (up to limits.output_backlog + one reply) once.
  out_.reserve(256);
  scratch_.reserve(cfg_.host_name.size() + 64);  // host name + the longest fixed text
  if (!cfg_.extensions.auth.empty()) {
    sasl_cap_ = sasl_capacity();  // LOGIN keeps user + password
    sasl_.reset(new char[sasl_cap_]);
  }
  wire::data_options dopt;
  dopt.max_message_size = cfg_.limits.max_message_size;
  dopt.bare_lf_in_data = cfg_.leniency.bare_lf_in_data;
  data_ = wire::data_decoder(dopt);
  bdat_ = wire::bdat_reader(wire::bdat_options{cfg_.limits.max_message_size});
  auto& x = cfg_.extensions;
  if (x.futurerelease_max_interval > detail::params_impl::holdfor_max ||
      x.futurerelease_max_datetime <= 0 ||
      x.futurerelease_max_datetime > detail::date_time_seconds_max) {
    x.futurerelease_max_interval = 0;
    x.futurerelease_max_datetime = 0;
  }
  if (x.deliverby && *x.deliverby > 999999999) x.deliverby.reset();  // RFC 2852 §3: 1*9DIGIT
  if (domain_capacity() != 0) domains_.reset(new std::uint64_t[domain_capacity()]);
  if (cfg_.implicit_tls) state_ = server_state::tls_pending;
}

inline std::size_t server::receive(std::string_view bytes) noexcept {
  if (state_ == server_state::closed || state_ == server_state::tls_pending) return 0;
  if (in_pos_ != 0) {
    std::memmove(in_.get(), in_.get() + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
  }
  const std::size_t room = in_cap_ - in_end_;
  const std::size_t n = bytes.size() < room ? bytes.size() : room;
  if (n != 0) {
    std::memcpy(in_.get() + in_end_, bytes.data(), n);
    in_end_ += n;
    activity();
  }
  return n;
}

inline errc server::add_sasl_mechanism(sasl_server_mechanism& m) noexcept {
  if (state_ != server_state::connecting &&
      !(state_ == server_state::tls_pending && !connect_reported_))
    return errc::api_bad_state;
  const std::string_view name = m.name();
  if (!wire::sasl::is_mechanism_name(name) || mech_count_ == max_sasl_mechanisms)
    return errc::api_value_invalid;
  const wire::sasl::mechanism known = wire::sasl::find_mechanism(name);
  if (known != wire::sasl::mechanism::unknown && cfg_.extensions.auth.has(known))
    return errc::api_value_invalid;
  for (std::size_t i = 0; i < mech_count_; ++i)
    if (detail::iequals(mechs_[i]->name(), name)) return errc::api_value_invalid;
  // Nothing has been read yet (the greeting is not out), so the line reader
  // can be replaced by one that takes SASL lines.
  if (cfg_.limits.max_auth_line > line_max_) line_max_ = cfg_.limits.max_auth_line;
  if (in_cap_ < line_max_) {
    // Bytes may have been received already (they are kept).
    std::unique_ptr<char[]> bigger(new char[line_max_]);
    std::memcpy(bigger.get(), in_.get() + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
    in_ = std::move(bigger);
    in_cap_ = line_max_;
  }
  if (sasl_cap_ < sasl_capacity()) {
    sasl_cap_ = sasl_capacity();
    sasl_.reset(new char[sasl_cap_]);
  }
  if (!mechs_) mechs_.reset(new sasl_server_mechanism*[max_sasl_mechanisms]);
  mechs_[mech_count_++] = &m;
  return errc::ok;
}

inline errc server::consume_output(std::size_t n) noexcept {
  if (n > out_.size() - out_pos_) return errc::api_value_invalid;
  out_pos_ += n;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  return errc::ok;
}

inline void server::reply(int code, std::string_view enh, std::string_view text) noexcept {
  // The texts come from this file or were checked by decide(); the writer
  // refuses CR/LF/NUL again, and then the generic text goes out instead.
  if (code_override_ != 0) {
    code = code_override_;
    if (!enh_override_.empty()) enh = enh_override_;
  }
  std::optional<wire::enhanced_code> e;
  if (enhanced() && !enh.empty()) {
    auto parsed = wire::parse_enhanced_code(enh);
    if (parsed && parsed->cls == code / 100) e = *parsed;
  }
  std::string_view line = text;
  if (wire::write_reply_lines(out_, code, e, &line, &line + 1) != errc::ok) {
    line = code / 100 == 2 ? std::string_view("Ok") : std::string_view("Error");
    (void)wire::write_reply_lines(out_, code, std::optional<wire::enhanced_code>{}, &line,
                                  &line + 1);
  }
}

inline void server::reply_error(errc e) noexcept {
  const reply_template t = reply_for(e);
  reply(t.code, t.enhanced, t.text);
}

inline bool server::count_error() noexcept {
  ++errors_;
  if (errors_ < cfg_.limits.max_errors) return false;
  scratch_.assign(cfg_.host_name).append(" Too many errors, closing connection");
  fatal(close_reason::too_many_errors, 421, "4.7.0", scratch_);
  return true;
}

inline bool server::follows_refusal(wire::verb v) const noexcept {
  return refused_in_tx_ && cfg_.extensions.pipelining &&
         (v == wire::verb::rcpt || v == wire::verb::data || v == wire::verb::bdat);
}

inline server_event server::refuse(wire::verb v, errc e) noexcept {
  const reply_template t = reply_for(e);
  reply(t.code, t.enhanced, t.text);
  count_error();
  return rejected_event{v, e, t.code};
}

inline server_event server::refuse(wire::verb v, int code, std::string_view enh,
                                   std::string_view text, bool count) noexcept {
  reply(code, enh, text);
  if (count) count_error();
  return rejected_event{v, errc::ok, code};
}

inline void server::close(close_reason r) noexcept {
  state_ = server_state::closed;
  pending_ = server_decision::none;
  close_reason_ = r;
  close_event_due_ = true;
  drop_input();
}

inline void server::fatal(close_reason r, int code, std::string_view enh,
                          std::string_view text) noexcept {
  reply(code, enh, text);
  close(r);
}

inline errc server::shutdown() noexcept {
  if (state_ == server_state::closed) return errc::api_bad_state;
  if (state_ == server_state::tls_pending) {
    close(close_reason::shutdown);
    return errc::ok;
  }
  scratch_.assign(cfg_.host_name).append(" Service shutting down");
  fatal(close_reason::shutdown, 421, "4.3.2", scratch_);
  return errc::ok;
}

inline void server::reset_transaction() noexcept {
  tx_smtputf8_ = tx_8bit_ok_ = tx_binary_ = false;
  bdat_started_ = false;
  bdat_error_ = errc::ok;
  bdat_eight_ = false;
  rcpts_ = 0;
  domain_count_ = 0;
  xforward_given_ = false;  // XFORWARD_README: reset at the end of the transaction
  refused_in_tx_ = false;
  bdat_.reset();
  data_.reset();
  if (reads_commands(state_) || state_ == server_state::in_data || state_ == server_state::in_bdat)
    state_ = greeted_ ? server_state::awaiting_mail : server_state::awaiting_hello;
}

inline errc server::tls_established(const tls_info& info) noexcept {
  (void)info;
  if (state_ != server_state::tls_pending) return errc::api_bad_state;
  tls_ = true;
  greeted_ = false;
  authenticated_ = false;
  xclient_login_ = false;
  auth_ = auth_step::none;
  mech_ = nullptr;
  drop_input();
  state_ = server_state::awaiting_hello;
  reset_transaction();
  if (!connect_reported_) state_ = server_state::connecting;  // implicit TLS: greet now
  activity();
  return errc::ok;
}

inline errc server::tls_failed() noexcept {
  if (state_ != server_state::tls_pending) return errc::api_bad_state;
  close(close_reason::tls_failed);
  return errc::ok;
}

inline void server::check_time(time_point now) noexcept {
  if (state_ == server_state::closed || pending_ != server_decision::none ||
      out_.size() - out_pos_ > cfg_.limits.output_backlog)
    return;
  if (!clock_armed_) {
    clock_armed_ = true;
    wait_since_ = now;
    return;
  }
  if (now < deadline()) return;
  if (state_ == server_state::tls_pending) {
    // Mid-handshake, a plaintext reply would corrupt the TLS stream.
    close(close_reason::timeout);
    return;
  }
  scratch_.assign(cfg_.host_name).append(" Timeout, closing connection");
  fatal(close_reason::timeout, 421, "4.4.2", scratch_);
}

inline server::time_point server::deadline() const noexcept {
  if (!clock_armed_ || state_ == server_state::closed || pending_ != server_decision::none ||
      out_.size() - out_pos_ > cfg_.limits.output_backlog)
    return time_point::max();
  const auto& t = cfg_.timeouts;
  const auto d = state_ == server_state::in_data || state_ == server_state::in_bdat ? t.data
                 : state_ == server_state::tls_pending ? t.tls_handshake
                                                       : t.command;
  if (wait_since_ > time_point::max() - d) return time_point::max();
  return wait_since_ + d;
}

inline server_event server::next_event() noexcept {
  for (;;) {
    if (close_event_due_) {
      close_event_due_ = false;
      return closed_event{close_reason_};
    }
    if (pending_ != server_decision::none) return std::monostate{};
    switch (state_) {
      case server_state::closed:
      case server_state::tls_pending:
        return std::monostate{};
      case server_state::connecting:
        connect_reported_ = true;
        pending_ = server_decision::connect;
        return connect_event{};
      case server_state::in_data:
        return read_data();
      case server_state::in_bdat:
        return read_bdat();
      default:
        break;
    }
    if (out_.size() - out_pos_ > cfg_.limits.output_backlog) return std::monostate{};
    const wire::line_result r = read_line();
    if (r.status == wire::line_status::need_more) return std::monostate{};
    if (r.status == wire::line_status::error) {
      if (++commands_ > cfg_.limits.max_commands) {
        fatal(close_reason::too_many_commands, 421, "4.7.0", "Too many commands");
        continue;
      }
      if (state_ == server_state::in_auth) {
        // An over-long or malformed SASL line ends the exchange (RFC 4954 §4: 500 or 501).
        const bool rejected_token = in_oauth_error();
        end_auth();
        server_event ev = refuse(wire::verb::unknown, r.error);
        if (rejected_token && state_ != server_state::closed) count_auth_failure();
        return ev;
      }
      return refuse(wire::verb::unknown, r.error);
    }
    server_event ev = on_line(r.line);
    if (!std::holds_alternative<std::monostate>(ev)) return ev;
  }
}

inline wire::line_result server::line_error(std::size_t consumed, errc e) noexcept {
  in_pos_ += consumed;
  scanned_ = 0;
  discarding_ = true;
  discard_prev_cr_ = false;
  wire::line_result r;
  r.consumed = consumed;
  r.status = wire::line_status::error;
  r.error = e;
  return r;
}

// RFC 5321 §2.3.8 and §4.1.1: a line ends only with CRLF; bare CR, bare LF
// and NUL are refused, as is a line over line_max_ octets, and the rest of a
// refused line is skipped up to its CRLF (the framing of wire::line_reader,
// applied to the input buffer so that no second line buffer is needed).
inline wire::line_result server::read_line() noexcept {
  wire::line_result r;
  const char* const base = in_.get();
  if (discarding_) {
    // Only CRLF ends the offending line: a bare LF in its tail cannot start
    // a smuggled command.
    for (;;) {
      const std::size_t n = in_end_ - in_pos_;
      const void* hit = n != 0 ? std::memchr(base + in_pos_, '\n', n) : nullptr;
      if (hit == nullptr) {
        if (n != 0) discard_prev_cr_ = base[in_end_ - 1] == '\r';
        in_pos_ = in_end_;
        return r;
      }
      const auto lf = static_cast<std::size_t>(static_cast<const char*>(hit) - base);
      const bool after_cr = lf == in_pos_ ? discard_prev_cr_ : base[lf - 1] == '\r';
      in_pos_ = lf + 1;
      discard_prev_cr_ = false;
      if (after_cr) break;
    }
    discarding_ = false;
    scanned_ = 0;
  }
  const char* const p = base + in_pos_;
  const std::size_t n = in_end_ - in_pos_;
  const std::size_t room = line_max_ - 2;  // data octets allowed before CRLF
  // One octet past `room` is scanned too: there only CR may follow a full line.
  const std::size_t window = n <= room ? n : room + 1;
  const std::size_t from = scanned_ < window ? scanned_ : window;
  const std::size_t i = from + detail::scan_line(p + from, window - from, n - from, false).stop;
  if (i == window) {
    if (n > room) return line_error(room + 1, errc::line_too_long);
    scanned_ = n;  // the buffer holds line_max_ octets: the line can complete
    return r;
  }
  switch (p[i]) {
    case '\r':
      if (i + 1 == n) {
        scanned_ = i;
        return r;
      }
      if (p[i + 1] != '\n') return line_error(i + 1, errc::bare_cr);
      r.consumed = i + 2;
      r.status = wire::line_status::line;
      r.line = std::string_view(p, i);
      r.in_input = true;
      in_pos_ += i + 2;
      scanned_ = 0;
      return r;
    case '\n':
      return line_error(i + 1, errc::bare_lf);
    default:
      return line_error(i + 1, errc::nul_byte);
  }
}

inline server_event server::on_line(std::string_view line) noexcept {
  if (++commands_ > cfg_.limits.max_commands) {
    fatal(close_reason::too_many_commands, 421, "4.7.0", "Too many commands");
    return std::monostate{};
  }
  if (state_ == server_state::in_auth) return on_auth_line(line);
  const wire::verb v = wire::peek_verb(line);
  if (v != wire::verb::auth && line.size() + 2 > cfg_.limits.max_command_line)
    return refuse(v, errc::line_too_long);
  if (state_ == server_state::greeting_refused) {
    if (v != wire::verb::quit)
      return refuse(v, 503, "5.5.1", "Bad sequence of commands: connection refused, send QUIT");
  }
  if (v == wire::verb::unknown) return refuse(v, errc::command_unknown);
  // An untrusted peer must not learn that the commands exist.
  if ((v == wire::verb::xclient && !xclient_offered()) ||
      (v == wire::verb::xforward && !xforward_offered()))
    return refuse(v, errc::command_unknown);
  const bool is_hello_verb = v == wire::verb::helo || v == wire::verb::ehlo;
  if ((cfg_.lmtp && is_hello_verb) || (!cfg_.lmtp && v == wire::verb::lhlo))
    return refuse(v, errc::command_unknown);

  wire::command_options copt;
  copt.path.smtputf8 = cfg_.extensions.smtputf8;
  const auto parsed = wire::parse_command(line, copt);
  if (!parsed) {
    if (v == wire::verb::bdat && parsed.error() == errc::bdat_size_overflow) {
      // The chunk cannot be framed: its octets would be read as commands.
      const reply_template t = reply_for(errc::bdat_size_overflow);
      fatal(close_reason::unframeable, t.code, t.enhanced, t.text);
      return rejected_event{v, errc::bdat_size_overflow, t.code};
    }
    return refuse(v, parsed.error());
  }
  const wire::command& c = *parsed;
  const server_rule rule = sequence_rule(state_, v);
  if (v == wire::verb::bdat) return on_bdat(c, rule);
  if (rule == server_rule::out_of_sequence)
    return refuse(v, 503, "5.5.1", "Bad sequence of commands", !follows_refusal(v));
  if (rule == server_rule::no_recipients)
    return refuse(v, 554, "5.5.1", "No valid recipients", !follows_refusal(v));

  switch (v) {
    case wire::verb::helo:
    case wire::verb::ehlo:
    case wire::verb::lhlo:
      hello_verb_ = v;
      pending_ = server_decision::hello;
      return hello_event{v, c.domain, c.domain_kind};
    case wire::verb::mail:
      return on_mail(c);
    case wire::verb::rcpt:
      return on_rcpt(c);
    case wire::verb::data:
      if (tx_binary_)
        return refuse(v, 503, "5.5.1", "BODY=BINARYMIME requires BDAT, not DATA (RFC 3030)");
      pending_ = server_decision::data_start;
      return data_start_event{false};
    case wire::verb::rset:
      reset_transaction();
      reply(250, "2.0.0", "Ok");
      return std::monostate{};
    case wire::verb::noop:
      reply(250, "2.0.0", "Ok");
      return std::monostate{};
    case wire::verb::help:
      reply(214, "2.0.0", "See RFC 5321 (https://www.rfc-editor.org/rfc/rfc5321)");
      return std::monostate{};
    case wire::verb::vrfy:
    case wire::verb::expn:
      verify_verb_ = v;
      pending_ = server_decision::verify;
      return verify_event{v, c.argument};
    case wire::verb::quit:
      scratch_.assign(cfg_.host_name).append(" Service closing transmission channel");
      reply(221, "2.0.0", scratch_);
      close(close_reason::quit);
      return std::monostate{};
    case wire::verb::starttls: {
      if (tls_) return refuse(v, 503, "5.5.1", "TLS already active");
      if (!starttls_offered()) return refuse(v, 502, "5.5.1", "Command not offered");
      reply(220, "2.0.0", "Ready to start TLS");
      // RFC 3207 §4.2 and CVE-2011-0411: nothing sent in plaintext after
      // STARTTLS may be read once TLS starts.
      const std::size_t dropped = in_end_ - in_pos_;
      drop_input();
      state_ = server_state::tls_pending;
      return starttls_event{dropped};
    }
    case wire::verb::auth:
      return on_auth(c);
    case wire::verb::xclient:
    case wire::verb::xforward:
      return on_xcommand(c, v);
    default:
      break;
  }
  return refuse(v, errc::command_unknown);
}

inline server_event server::on_xcommand(const wire::command& c, wire::verb v) noexcept {
  const bool xclient = v == wire::verb::xclient;
  wire::xattributes a;
  const errc e = wire::parse_xattributes(
      xclient ? wire::xcommand::xclient : wire::xcommand::xforward, c.argument, a);
  if (e != errc::ok) return refuse(v, e);
  if (xclient) {
    pending_login_ = a.get(wire::xattr::login);
    pending_ = server_decision::xclient;
    return xclient_event{a};
  }
  pending_ = server_decision::xforward;
  return xforward_event{a, !xforward_given_};
}

inline server_event server::on_mail(const wire::command& c) noexcept {
  const wire::verb v = wire::verb::mail;
  // RFC 9422 §4.1: MAILMAX counts every MAIL, whatever became of it; a
  // client past it can do nothing useful in this session.
  if (cfg_.limits.max_transactions != 0 && transactions_ >= cfg_.limits.max_transactions) {
    scratch_.assign(cfg_.host_name).append(" Too many transactions, closing connection");
    fatal(close_reason::too_many_transactions, 421, "4.5.3", scratch_);
    return rejected_event{v, errc::ok, 421};
  }
  ++transactions_;
  if (cfg_.policy.require_tls && !tls_)
    return refuse(v, 530, "5.7.0", "Must issue a STARTTLS command first", false);
  if (cfg_.policy.require_auth && !authenticated_)
    return refuse(v, 530, "5.7.0", "Authentication required", false);
  const auto& x = cfg_.extensions;
  wire::param_options po;
  po.utf8_values = x.smtputf8;
  po.allow_unknown = false;
  auto p = wire::parse_mail_params(c.params, po);
  if (!p) return refuse(v, p.error());
  const wire::mail_params& m = *p;
  const bool binary_ok = x.binarymime && x.chunking;
  const bool body_ok =
      !m.body ||
      (*m.body == wire::body_type::binary_mime ? binary_ok : (x.eightbitmime || binary_ok));
  const bool dsn_ok = x.dsn || (!m.ret && !m.envid);
  if ((m.size && !x.size) || !body_ok || (m.smtputf8 && !x.smtputf8) || !dsn_ok ||
      (m.auth && !auth_offered()) || (m.requiretls && !(x.requiretls && tls_)) ||
      (m.mt_priority && x.mt_priority == mt_priority_profile::off) || (m.by && !x.deliverby) ||
      ((m.holdfor || m.holduntil) && !futurerelease_offered()))
    return refuse(v, errc::param_unknown);
  if (m.size && *m.size > cfg_.limits.max_message_size) return refuse(v, errc::message_too_big);
  // RFC 2852 §4: a message to be returned when late needs at least the
  // min-by-time the server offered (the grammar already refused a by-time
  // of zero or less in R mode); N mode only asks for a "delayed" DSN.
  if (m.by && m.by->mode == wire::by_mode::return_message &&
      m.by->time < static_cast<std::int64_t>(*x.deliverby))
    return refuse(v, errc::by_time_below_minimum);
  // RFC 4865 §3: no hold beyond what FUTURERELEASE announced.
  if (m.holdfor && *m.holdfor > x.futurerelease_max_interval)
    return refuse(v, errc::holdfor_too_long);
  if (m.holduntil && detail::date_time_seconds(*m.holduntil, true) > x.futurerelease_max_datetime)
    return refuse(v, errc::holduntil_too_late);
  if (!wire::is_ascii(c.path) && !m.smtputf8) return refuse(v, errc::utf8_not_allowed);
  tx_smtputf8_ = m.smtputf8;
  tx_binary_ = m.body && *m.body == wire::body_type::binary_mime;
  tx_8bit_ok_ = m.body && *m.body != wire::body_type::seven_bit;
  pending_ = server_decision::mail;
  return mail_event{c.path, m, xforward_given_};
}

inline server_event server::on_rcpt(const wire::command& c) noexcept {
  const wire::verb v = wire::verb::rcpt;
  if (rcpts_ >= cfg_.limits.max_recipients)
    return refuse(v, 452, "4.5.3", "Too many recipients", false);
  wire::param_options po;
  po.utf8_values = tx_smtputf8_;
  po.allow_unknown = false;
  auto p = wire::parse_rcpt_params(c.params, po);
  if (!p) return refuse(v, p.error());
  if (((p->notify != 0 || p->orcpt) && !cfg_.extensions.dsn) || (p->rrvs && !cfg_.extensions.rrvs))
    return refuse(v, errc::param_unknown);
  if (!wire::is_ascii(c.path) && !tx_smtputf8_) return refuse(v, errc::utf8_not_allowed);
  if (!rcpt_domain_allowed(c.path))
    return refuse(v, 452, "4.5.3", "Too many recipient domains", false);
  pending_ = server_decision::rcpt;
  return rcpt_event{c.path, *p, rcpts_};
}

// RFC 9422 §4.3 RCPTDOMAINMAX: at most that many distinct domains among
// the transaction's recipients; <postmaster> names none.
inline bool server::rcpt_domain_allowed(const wire::path& p) noexcept {
  pending_domain_new_ = false;
  if (cfg_.limits.max_recipient_domains == 0 || p.postmaster) return true;
  const std::uint64_t h = detail::domain_hash(p.address.domain);
  for (std::size_t i = 0; i < domain_count_; ++i)
    if (domains_[i] == h) return true;
  if (domain_count_ >= cfg_.limits.max_recipient_domains || domain_count_ >= domain_capacity())
    return false;
  domains_[domain_count_] = h;
  pending_domain_new_ = true;
  return true;
}

inline server_event server::on_bdat(const wire::command& c, server_rule rule) noexcept {
  // Whatever the verdict, the chunk's octets are consumed (RFC 3030 §2):
  // refused chunks are discarded, then the refusal is sent.
  bdat_discard_ = true;
  bdat_last_ = c.last;
  discard_count_ = !follows_refusal(wire::verb::bdat);
  if (!cfg_.extensions.chunking) {
    discard_reply_code_ = 502;
  } else if (rule == server_rule::out_of_sequence) {
    discard_reply_code_ = 503;
  } else if (rule == server_rule::no_recipients) {
    discard_reply_code_ = 554;
  } else {
    bdat_discard_ = false;
  }
  bdat_prev_state_ = state_;
  state_ = server_state::in_bdat;
  (void)bdat_.begin_chunk(c.size, c.last);
  if (bdat_discard_) return std::monostate{};
  if (!bdat_started_) {
    pending_ = server_decision::data_start;
    return data_start_event{true};
  }
  return std::monostate{};
}

inline server_event server::read_bdat() noexcept {
  for (;;) {
    const wire::bdat_result r = bdat_.read(input());
    in_pos_ += r.consumed;
    if (r.status == wire::bdat_status::need_more) return std::monostate{};
    if (r.status == wire::bdat_status::content) {
      if (bdat_discard_ || bdat_error_ != errc::ok) continue;
      std::size_t k = 0;
      while (k < r.content.size() && static_cast<unsigned char>(r.content[k]) < 0x80)
        ++k;
      if (k != r.content.size()) {
        bdat_eight_ = true;
        if (cfg_.policy.enforce_body && !tx_8bit_ok_ && !cfg_.leniency.undeclared_8bit) {
          // As for DATA: what is delivered before the error does not depend
          // on the chunking, so cut at the offending octet.
          bdat_error_ = errc::data_8bit_not_declared;
          if (k == 0) continue;
          return content_event{r.content.substr(0, k)};
        }
      }
      return content_event{r.content};
    }
    // chunk_end
    if (bdat_discard_) {
      bdat_discard_ = false;
      // A refused chunk does not belong to the transaction: forget its framing.
      if (!bdat_started_) bdat_.reset();
      state_ = bdat_prev_state_;
      if (discard_reply_code_ == 0) {
        // The application refused the start of content: its reply is already out.
        return std::monostate{};
      }
      const std::string_view text = discard_reply_code_ == 502   ? "Command not offered"
                                    : discard_reply_code_ == 503 ? "Bad sequence of commands"
                                                                 : "No valid recipients";
      return refuse(wire::verb::bdat, discard_reply_code_, "5.5.1", text,
                    discard_count_ || discard_reply_code_ == 502);
    }
    const errc e = bdat_error_ != errc::ok ? bdat_error_ : r.error;
    if (r.last) return end_of_content(e, bdat_.octets(), bdat_eight_, false, true);
    state_ = server_state::awaiting_bdat;
    if (e != errc::ok) {
      reply_error(e);
      return std::monostate{};
    }
    scratch_.clear();
    append_decimal(scratch_, bdat_.octets());
    scratch_.append(" octets received");
    reply(250, "2.0.0", scratch_);
    return std::monostate{};
  }
}

inline server_event server::read_data() noexcept {
  for (;;) {
    const wire::data_result r = data_.decode(input());
    in_pos_ += r.consumed;
    switch (r.status) {
      case wire::data_status::need_more:
        return std::monostate{};
      case wire::data_status::content:
        return content_event{r.content};
      case wire::data_status::error:
        continue;  // the decoder drains to the real end; the end reports the error
      case wire::data_status::end:
        return end_of_content(r.error, data_.octets(), data_.eight_bit(), data_.long_lines(),
                              false);
    }
  }
}

inline server_event server::end_of_content(errc e, std::uint64_t octets, bool eight,
                                           bool long_lines, bool bdat) noexcept {
  data_end_event ev{octets, eight, long_lines, bdat, rcpts_, e};
  if (e != errc::ok) {
    const std::size_t n = cfg_.lmtp ? rcpts_ : 1;
    for (std::size_t i = 0; i < n; ++i)
      reply_error(e);
    reset_transaction();
    return ev;
  }
  lmtp_left_ = cfg_.lmtp ? rcpts_ : 1;
  pending_ = server_decision::data_end;
  return ev;
}

inline server_event server::on_auth(const wire::command& c) noexcept {
  const wire::verb v = wire::verb::auth;
  if (!auth_configured()) return refuse(v, 502, "5.5.1", "Command not offered");
  if (authenticated_) return refuse(v, 503, "5.5.1", "Already authenticated");
  if (!auth_offered())
    return refuse(v, 538, "5.7.11", "Encryption required for requested authentication mechanism");
  for (std::size_t i = 0; i < mech_count_; ++i) {
    if (!detail::iequals(mechs_[i]->name(), c.mechanism)) continue;
    auth_ = auth_step::custom;
    mech_ = mechs_[i];
    mech_started_ = false;
    sasl_len_ = 0;
    state_ = server_state::in_auth;
    if (c.initial_response.empty()) {
      mech_started_ = true;
      scratch_.clear();
      bool done = false;
      const errc e = mech_->start({}, false, scratch_, done);
      return custom_step(e, done);
    }
    // RFC 4954 §4: "=" is an empty initial response.
    return on_auth_line(c.initial_response == "=" ? std::string_view() : c.initial_response);
  }
  namespace sasl = wire::sasl;
  const sasl::mechanism m = sasl::find_mechanism(c.mechanism);
  const bool decoded = m == sasl::mechanism::plain || m == sasl::mechanism::login ||
                       m == sasl::mechanism::xoauth2 || m == sasl::mechanism::oauthbearer;
  if (!decoded || !cfg_.extensions.auth.has(m))
    return refuse(v, 504, "5.5.4", "Unrecognized authentication type");
  switch (m) {
    case sasl::mechanism::plain:
      auth_ = auth_step::plain;
      break;
    case sasl::mechanism::login:
      auth_ = auth_step::login_user;
      break;
    case sasl::mechanism::xoauth2:
      auth_ = auth_step::xoauth2;
      break;
    default:
      auth_ = auth_step::oauthbearer;
      break;
  }
  sasl_len_ = 0;
  state_ = server_state::in_auth;
  if (c.initial_response.empty()) {
    // RFC 4954 §4: an empty challenge, or LOGIN's "Username:".
    if (auth_ == auth_step::login_user)
      reply(334, {}, "VXNlcm5hbWU6");
    else
      out_.append("334 \r\n");
    return std::monostate{};
  }
  return on_auth_line(c.initial_response == "=" ? std::string_view() : c.initial_response);
}

inline void server::end_auth() noexcept {
  auth_ = auth_step::none;
  mech_ = nullptr;
  mech_started_ = false;
  sasl_len_ = 0;
  state_ = server_state::awaiting_mail;
}

inline bool server::count_auth_failure() noexcept {
  if (++auth_failures_ < cfg_.limits.max_auth_failures) return false;
  scratch_.assign(cfg_.host_name).append(" Too many authentication failures");
  fatal(close_reason::auth_failures, 421, "4.7.0", scratch_);
  return true;
}

inline server_event server::custom_step(errc e, bool done) noexcept {
  const wire::verb v = wire::verb::auth;
  if (e == errc::sasl_auth_failed) {
    end_auth();
    const reply_template t = reply_for(e);
    reply(t.code, t.enhanced, t.text);
    count_auth_failure();
    return rejected_event{v, e, t.code};
  }
  if (e == errc::ok && done && !scratch_.empty()) e = errc::api_value_invalid;  // mechanism bug
  if (e != errc::ok) {
    end_auth();
    const reply_template t = reply_for(e);
    reply(t.code, t.enhanced, t.text);
    if (t.code / 100 == 5) count_error();
    return rejected_event{v, e, t.code};
  }
  if (done) {
    pending_ = server_decision::auth;
    const std::string_view name = mech_->name();
    return auth_event{
        wire::sasl::find_mechanism(name), mech_->authzid(), mech_->authcid(), {}, name, true};
  }
  // RFC 4954 §4: continue-req = "334" SP [base64] CRLF
  out_.append("334 ");
  wire::base64_encode(out_, scratch_);
  out_.append("\r\n");
  return std::monostate{};
}

inline server_event server::on_auth_line(std::string_view line) noexcept {
  const wire::verb v = wire::verb::auth;
  if (in_oauth_error()) {
    // RFC 7628 §3.2.3: the client acknowledges the error challenge with a
    // lone 0x01 (XOAUTH2: an empty response); then the held reply goes out.
    const bool bearer = auth_ == auth_step::oauth_error_bearer;
    end_auth();
    if (line == (bearer ? std::string_view("AQ==") : std::string_view())) {
      out_.append(scratch_);
      count_auth_failure();
      return std::monostate{};
    }
    server_event ev = line == "*" ? refuse(v, 501, "5.7.0", "Authentication cancelled", false)
                                  : refuse(v, errc::sasl_message_invalid);
    if (state_ != server_state::closed) count_auth_failure();
    return ev;
  }
  if (line == "*") {
    end_auth();
    return refuse(v, 501, "5.7.0", "Authentication cancelled", false);
  }
  if (sasl_len_ + line.size() / 4 * 3 > sasl_cap_) {
    end_auth();
    return refuse(v, errc::line_too_long);
  }
  const auto n = wire::base64_decode(sasl_.get() + sasl_len_, sasl_cap_ - sasl_len_, line);
  if (!n) {
    end_auth();
    return refuse(v, errc::base64_invalid);
  }
  const std::string_view msg(sasl_.get() + sasl_len_, *n);
  return auth_message(msg);
}

inline server_event server::auth_message(std::string_view msg) noexcept {
  namespace sasl = wire::sasl;
  const wire::verb v = wire::verb::auth;
  auto fail = [&](errc e) {
    end_auth();
    return refuse(v, e);
  };
  const sasl::options so{};
  switch (auth_) {
    case auth_step::custom: {
      scratch_.clear();
      bool done = false;
      const bool first = !mech_started_;
      mech_started_ = true;
      const errc e =
          first ? mech_->start(msg, true, scratch_, done) : mech_->respond(msg, scratch_, done);
      return custom_step(e, done);
    }
    case auth_step::plain: {
      const auto p = sasl::parse_plain(msg, so);
      if (!p) return fail(p.error());
      pending_ = server_decision::auth;
      return auth_event{sasl::mechanism::plain, p->authzid, p->authcid, p->passwd, "PLAIN"};
    }
    case auth_step::login_user: {
      const auto u = sasl::parse_login_response(msg, so);
      if (!u) return fail(u.error());
      sasl_len_ = msg.size();  // keep the user name for the password step
      auth_ = auth_step::login_pass;
      reply(334, {}, "UGFzc3dvcmQ6");
      return std::monostate{};
    }
    case auth_step::login_pass: {
      const auto pw = sasl::parse_login_response(msg, so);
      if (!pw) return fail(pw.error());
      pending_ = server_decision::auth;
      return auth_event{
          sasl::mechanism::login, {}, std::string_view(sasl_.get(), sasl_len_), *pw, "LOGIN"};
    }
    case auth_step::xoauth2: {
      const auto x = sasl::parse_xoauth2(msg, so);
      if (!x) return fail(x.error());
      pending_ = server_decision::auth;
      return auth_event{sasl::mechanism::xoauth2, {}, x->user, x->token, "XOAUTH2"};
    }
    case auth_step::oauthbearer: {
      const auto o = sasl::parse_oauthbearer(msg, so);
      if (!o) return fail(o.error());
      pending_ = server_decision::auth;
      return auth_event{sasl::mechanism::oauthbearer, {}, o->authzid, o->token, "OAUTHBEARER"};
    }
    case auth_step::none:
    case auth_step::oauth_error_bearer:  // handled by on_auth_line
    case auth_step::oauth_error_xoauth2:
      break;
  }
  return fail(errc::auth_syntax);
}

inline void server::write_ehlo_reply(wire::verb v) noexcept {
  if (v == wire::verb::helo) {
    reply(250, {}, cfg_.host_name);
    return;
  }
  const auto& x = cfg_.extensions;
  // Lines with numbers or lists are written into scratch_ first, then
  // viewed (scratch_ may move while it grows).
  enum piece { p_size, p_auth, p_deliverby, p_futurerelease, p_limits, p_xclient, p_xforward, p_n };
  std::array<std::size_t, p_n + 1> at{};
  scratch_.clear();
  auto mark = [&](piece p) { at[p + 1] = scratch_.size(); };
  if (x.size) {
    scratch_.append("SIZE ");
    append_decimal(scratch_, cfg_.limits.max_message_size);
  }
  mark(p_size);
  if (auth_offered() && !authenticated_) {
    scratch_.append("AUTH");
    for (std::size_t i = 0; i < wire::sasl::mechanism_count; ++i) {
      const auto m = static_cast<wire::sasl::mechanism>(i);
      if (x.auth.has(m)) scratch_.append(" ").append(wire::sasl::to_string(m));
    }
    for (std::size_t i = 0; i < mech_count_; ++i)
      scratch_.append(" ").append(mechs_[i]->name());
  }
  mark(p_auth);
  // RFC 2852 §3: "DELIVERBY" [SP min-by-time]
  if (x.deliverby) {
    scratch_.append("DELIVERBY");
    if (*x.deliverby != 0) append_decimal(scratch_.append(" "), *x.deliverby);
  }
  mark(p_deliverby);
  // RFC 4865 §3: "FUTURERELEASE" SP max-future-release-interval SP
  // max-future-release-date-time
  if (futurerelease_offered()) {
    append_decimal(scratch_.append("FUTURERELEASE "), x.futurerelease_max_interval);
    detail::append_date_time(scratch_.append(" "), x.futurerelease_max_datetime);
  }
  mark(p_futurerelease);
  // RFC 9422 §3: "LIMITS" 1*(SP limit-name "=" limit-value), limit-value
  // 1*6DIGIT: a larger limit is announced as 999999 (the client then stays
  // below the real one).
  if (x.limits) {
    const std::size_t start = scratch_.size();
    scratch_.append("LIMITS");
    const std::pair<std::string_view, std::size_t> limits[] = {
        {"MAILMAX", cfg_.limits.max_transactions},
        {"RCPTMAX", cfg_.limits.max_recipients},
        {"RCPTDOMAINMAX", cfg_.limits.max_recipient_domains}};
    for (const auto& l : limits)
      if (l.second != 0)
        append_decimal(scratch_.append(" ").append(l.first).append("="),
                       l.second < 999999 ? l.second : 999999);
    if (scratch_.size() == start + 6) scratch_.resize(start);  // no limit to announce
  }
  mark(p_limits);
  // XCLIENT_README / XFORWARD_README: the keyword, then the attribute names
  // the server takes.
  for (const auto cmd : {wire::xcommand::xclient, wire::xcommand::xforward}) {
    if (cmd == wire::xcommand::xclient ? xclient_offered() : xforward_offered()) {
      scratch_.append(wire::to_string(cmd));
      for (std::size_t i = 0; i < wire::xattr_count; ++i)
        if (wire::allowed(cmd, static_cast<wire::xattr>(i)))
          scratch_.append(" ").append(wire::to_string(static_cast<wire::xattr>(i)));
    }
    mark(cmd == wire::xcommand::xclient ? p_xclient : p_xforward);
  }
  const std::string_view s(scratch_);
  auto piece_of = [&](piece p) { return s.substr(at[p], at[p + 1] - at[p]); };
  std::array<std::string_view, 24> lines{};
  std::size_t n = 0;
  auto add = [&](std::string_view l) {
    if (!l.empty()) lines[n++] = l;
  };
  add(cfg_.host_name);
  add(piece_of(p_size));
  if (x.eightbitmime) add("8BITMIME");
  if (x.pipelining) add("PIPELINING");
  if (starttls_offered()) add("STARTTLS");
  add(piece_of(p_auth));
  if (x.enhancedstatuscodes) add("ENHANCEDSTATUSCODES");
  if (x.smtputf8) add("SMTPUTF8");
  if (x.chunking) add("CHUNKING");
  if (x.binarymime && x.chunking) add("BINARYMIME");
  if (x.dsn) add("DSN");
  if (x.requiretls && tls_) add("REQUIRETLS");
  add(piece_of(p_deliverby));
  add(ehlo_line(x.mt_priority));
  if (x.rrvs) add("RRVS");
  add(piece_of(p_futurerelease));
  add(piece_of(p_limits));
  add(piece_of(p_xclient));
  add(piece_of(p_xforward));
  (void)wire::write_reply_lines(out_, 250, std::optional<wire::enhanced_code>{}, lines.begin(),
                                lines.begin() + static_cast<std::ptrdiff_t>(n));
}

inline void server::default_reply(server_decision d, int cls) noexcept {
  switch (d) {
    case server_decision::none:
      break;
    case server_decision::connect:
      scratch_.assign(cfg_.host_name);
      if (cls == 2) {
        scratch_.append(cfg_.lmtp ? " LMTP" : " ESMTP");
        reply(220, {}, scratch_);
      } else if (cls == 5) {
        scratch_.append(" Service not available");
        reply(554, {}, scratch_);
      } else {
        scratch_.append(" Service not available, closing transmission channel");
        reply(421, {}, scratch_);
      }
      return;
    case server_decision::hello:
      if (cls == 2)
        write_ehlo_reply(hello_verb_);
      else if (cls == 5)
        reply(550, "5.7.1", "Hello refused");
      else
        reply(450, "4.7.1", "Hello temporarily refused");
      return;
    case server_decision::mail:
      if (cls == 2)
        reply(250, "2.1.0", "Ok");
      else if (cls == 5)
        reply(550, "5.7.1", "Sender refused");
      else
        reply(451, "4.3.0", "Sender temporarily refused");
      return;
    case server_decision::rcpt:
      if (cls == 2)
        reply(250, "2.1.5", "Ok");
      else if (cls == 5)
        reply(550, "5.1.1", "Recipient refused");
      else
        reply(450, "4.2.0", "Recipient temporarily refused");
      return;
    case server_decision::data_start:
      if (cls == 2 && state_ == server_state::in_bdat) return;  // the chunk's end replies
      if (cls == 2)
        reply(354, {}, "End data with <CR><LF>.<CR><LF>");
      else if (cls == 5)
        reply(554, "5.5.0", "Transaction failed");
      else
        reply(451, "4.3.0", "Transaction temporarily failed");
      return;
    case server_decision::data_end:
      if (cls == 2)
        reply(250, "2.0.0", "Ok: message accepted");
      else if (cls == 5)
        reply(554, "5.6.0", "Message refused");
      else
        reply(451, "4.3.0", "Message temporarily refused");
      return;
    case server_decision::auth:
      if (cls == 2)
        reply(235, "2.7.0", "Authentication successful");
      else if (cls == 5)
        reply(535, "5.7.8", "Authentication credentials invalid");
      else
        reply(454, "4.7.0", "Temporary authentication failure");
      return;
    case server_decision::verify:
      if (cls == 2)
        reply(252, "2.5.0", "Cannot verify the user, but will accept the message");
      else if (cls == 5)
        reply(550, "5.1.1", "Mailbox unavailable");
      else
        reply(450, "4.2.0", "Mailbox temporarily unavailable");
      return;
    case server_decision::xclient:
    case server_decision::xforward:
      // XCLIENT_README, XFORWARD_README reply codes: 220 (XCLIENT: the new
      // greeting) or 250, 550 insufficient authorization, 421 unable to
      // proceed, disconnecting.
      if (cls == 2 && d == server_decision::xclient) {
        scratch_.assign(cfg_.host_name).append(cfg_.lmtp ? " LMTP" : " ESMTP");
        reply(220, {}, scratch_);
      } else if (cls == 2) {
        reply(250, "2.0.0", "Ok");
      } else if (cls == 5) {
        reply(550, "5.7.0", "Insufficient authorization");
      } else {
        scratch_.assign(cfg_.host_name).append(" Unable to proceed, closing connection");
        reply(421, "4.3.0", scratch_);
      }
      return;
  }
}

inline errc server::decide(int cls, const server_reply* r) noexcept {
  const server_decision d = pending_;
  if (d == server_decision::none) return errc::api_bad_state;
  const bool oauth_error = r != nullptr && !r->oauth_error.empty();
  if (oauth_error && (d != server_decision::auth || cls == 2 ||
                      (auth_ != auth_step::oauthbearer && auth_ != auth_step::xoauth2) ||
                      !wire::sasl::parse_oauth_error(r->oauth_error)))
    return errc::api_value_invalid;
  const std::size_t reply_at = out_.size();
  if (d == server_decision::data_start && cls == 2 && state_ != server_state::in_bdat &&
      in_end_ != in_pos_) {
    early_content_ = true;  // RFC 2920 §3.1: octets after DATA before the 354
    if (cfg_.policy.reject_early_content) {
      if (r != nullptr && r->code != 354) return errc::api_value_invalid;
      pending_ = server_decision::none;
      fatal(close_reason::early_content, 554, "5.5.0",
            "Improper use of pipelining: content sent before the 354 reply");
      return errc::ok;
    }
  }
  if (r != nullptr) {
    const int code = r->code;
    bool code_ok = code / 100 == cls && wire::is_valid_reply_code(code);
    if (cls == 2 && d == server_decision::data_start)  // 354 for DATA; BDAT sends no reply here
      code_ok = state_ != server_state::in_bdat && code == 354;
    else if (cls == 2 && (d == server_decision::connect || d == server_decision::xclient))
      code_ok = code == 220;
    if (!code_ok || detail::has_line_breaking_byte(r->text) ||
        detail::has_line_breaking_byte(r->enhanced))
      return errc::api_value_invalid;
    if (!r->enhanced.empty()) {
      const auto e = wire::parse_enhanced_code(r->enhanced);
      if (!e || e->cls != cls) return errc::api_value_invalid;
    }
    if (!r->text.empty()) {
      std::optional<wire::enhanced_code> e;
      if (enhanced() && !r->enhanced.empty()) e = *wire::parse_enhanced_code(r->enhanced);
      std::string_view t = r->text;
      const std::size_t before = out_.size();
      if (wire::write_reply_lines(out_, code, e, &t, &t + 1) != errc::ok) {
        out_.resize(before);
        return errc::api_value_invalid;
      }
    } else {
      // The application's code (and enhanced code) with the default text.
      code_override_ = code;
      enh_override_ = r->enhanced;
      default_reply(d, cls);
      code_override_ = 0;
      enh_override_ = {};
    }
  } else {
    default_reply(d, cls);
  }
  pending_ = server_decision::none;
  activity();
  if (oauth_error) {
    // RFC 7628 §3.2.2: the error status goes out as a challenge; the reply
    // just written waits (in scratch_) for the client's dummy response.
    scratch_.assign(out_, reply_at, std::string::npos);
    out_.resize(reply_at);
    out_.append("334 ");
    wire::base64_encode(out_, r->oauth_error);
    out_.append("\r\n");
    auth_ = auth_ == auth_step::oauthbearer ? auth_step::oauth_error_bearer
                                            : auth_step::oauth_error_xoauth2;
    return errc::ok;
  }
  if ((d == server_decision::xclient || d == server_decision::xforward) && cls == 4 &&
      (r == nullptr || r->code == 421)) {
    close(close_reason::xcommand_refused);  // 421: "unable to proceed, disconnecting"
    return errc::ok;
  }
  after_decision(d, cls);
  return errc::ok;
}

inline void server::after_decision(server_decision d, int cls) noexcept {
  switch (d) {
    case server_decision::none:
      break;
    case server_decision::connect:
      if (cls == 2)
        state_ = server_state::awaiting_hello;
      else if (cls == 5)
        state_ = server_state::greeting_refused;
      else
        close(close_reason::refused);
      break;
    case server_decision::hello:
      if (cls == 2) {
        // RFC 5321 §4.1.4: a hello resets the transaction.
        greeted_ = true;
        accepted_hello_ = hello_verb_;
        state_ = server_state::awaiting_mail;
        reset_transaction();
      }
      break;
    case server_decision::mail:
      if (cls == 2) {
        state_ = server_state::awaiting_rcpt;
        rcpts_ = 0;
        refused_in_tx_ = false;
      } else {
        tx_smtputf8_ = tx_8bit_ok_ = tx_binary_ = false;
        refused_in_tx_ = true;
      }
      break;
    case server_decision::rcpt:
      if (cls == 2) {
        ++rcpts_;
        if (pending_domain_new_) ++domain_count_;
        state_ = server_state::awaiting_data;
      } else {
        refused_in_tx_ = true;
      }
      break;
    case server_decision::data_start:
      if (state_ == server_state::in_bdat) {
        if (cls == 2) {
          bdat_started_ = true;
        } else {
          // Consume and drop the chunk; the reply is already out.
          bdat_discard_ = true;
          discard_reply_code_ = 0;
        }
      } else if (cls == 2) {
        // RFC 6152 §3: 8-bit content only under BODY=8BITMIME (or BINARYMIME).
        wire::data_options o = data_.options();
        o.reject_8bit = cfg_.policy.enforce_body && !tx_8bit_ok_ && !cfg_.leniency.undeclared_8bit;
        data_ = wire::data_decoder(o);
        state_ = server_state::in_data;
      }
      break;
    case server_decision::data_end:
      if (lmtp_left_ > 1) {
        --lmtp_left_;
        pending_ = server_decision::data_end;  // RFC 2033 §4.2: one reply per recipient
        return;
      }
      lmtp_left_ = 0;
      reset_transaction();
      break;
    case server_decision::auth:
      end_auth();
      if (cls == 2)
        authenticated_ = true;
      else
        count_auth_failure();
      break;
    case server_decision::verify:
      break;
    case server_decision::xclient:
      if (cls == 2) {
        // XCLIENT_README: back to the greeting stage, except TLS.
        if (pending_login_ == wire::xvalue_kind::value)
          xclient_login_ = true;
        else if (pending_login_ != wire::xvalue_kind::absent)
          xclient_login_ = false;
        authenticated_ = xclient_login_;
        greeted_ = false;
        state_ = server_state::awaiting_hello;
        reset_transaction();
      }
      break;
    case server_decision::xforward:
      if (cls == 2) xforward_given_ = true;
      break;
  }
}

}  // namespace smtpwire

#endif  // SMTPWIRE_SERVER_HPP
