// smtpwire — the HAProxy PROXY protocol header (versions 1 and 2), server
// side: an incremental, strict, sans-I/O reader, and a writer for the load
// balancer side (and tests).
//
// Theory of operation. A load balancer that forwards TCP connections to an
// SMTP server loses the client's address; the PROXY protocol
// (https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt) has it send
// one header, before any byte of the proxied stream, naming the original
// source and destination. proxy_reader is fed the first bytes of a
// connection in any chunking until it reports the complete header; its
// `consumed` counts exactly the header's octets (never one SMTP octet past
// it), so the rest of the input goes to the server engine unchanged. The
// client's address then reaches the application (proxy_header::source) and
// the Received header (proxy_address::literal() is the form
// received_fields::client_address takes).
//
// Trust. The header rewrites who the peer is: a reader enabled on a listener
// that untrusted clients can reach lets any of them claim any address (and
// so defeat address-based relay control, rate limits and DNSBL checks). The
// policy is the application's: enable a proxy_reader only on listeners that
// only the load balancer can reach (or check the TCP peer against the load
// balancer's addresses before reading a header), and keep
// proxy_options::required on so that a connection that bypassed the load
// balancer is refused rather than taken at face value.
//
// Errors are fatal: the specification requires the receiver to drop a
// connection whose header is invalid, never to guess. Every proxy_* errc
// maps to a 421 reply (reply_for): the header comes from the load balancer,
// so a bad one is a configuration or transport fault on the server's side,
// and the client should retry later rather than bounce the message. An
// application may as well close silently, as HAProxy does.
//
// Memory: the reader owns one buffer of 232 + max_tlv_length octets
// (allocated once, by the constructor) into which the header is copied.
// proxy_header's addresses are held inside the proxy_header value (text and
// binary); its TLV views (ALPN, authority, unique id, SSL fields, namespace,
// AF_UNIX paths, the raw TLV block) point into the reader's buffer and stay
// valid until the reader is reset or destroyed.
#ifndef SMTPWIRE_WIRE_PROXY_HPP
#define SMTPWIRE_WIRE_PROXY_HPP

#include <smtpwire/error.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace smtpwire {
namespace detail {

struct crc32c_table {
  std::uint32_t t[256];
};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as the PROXY v2
/// PP2_TYPE_CRC32C TLV uses (RFC 4960 appendix B's checksum).
constexpr crc32c_table make_crc32c_table() noexcept {
  crc32c_table t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t.t[i] = c;
  }
  return t;
}

inline constexpr crc32c_table crc32c_bytes = make_crc32c_table();

/// Continues a CRC-32C over `n` octets; start with 0xFFFFFFFF and invert the
/// final state.
constexpr std::uint32_t crc32c_update(std::uint32_t state, const unsigned char* p,
                                      std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    state = crc32c_bytes.t[(state ^ p[i]) & 0xffu] ^ (state >> 8);
  return state;
}

/// The CRC-32C of `s`.
inline std::uint32_t crc32c(std::string_view s) noexcept {
  return ~crc32c_update(0xFFFFFFFFu, reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

// IPv4address (RFC 3986 §3.2.2), the form PROXY v1 requires for TCP4:
//   dec-octet = DIGIT / %x31-39 DIGIT / "1" 2DIGIT / "2" %x30-34 DIGIT / "25" %x30-35
// i.e. 0..255 without leading zeros, four of them separated by ".".
/// Parses a dotted quad into 4 octets; false unless it is exactly that.
constexpr bool parse_proxy_ipv4(std::string_view s, std::uint8_t* out) noexcept {
  std::size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part != 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    const std::size_t from = i;
    unsigned v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - from < 3)
      v = v * 10 + static_cast<unsigned>(s[i++] - '0');
    const std::size_t len = i - from;
    if (len == 0 || v > 255 || (len > 1 && s[from] == '0')) return false;
    out[part] = static_cast<std::uint8_t>(v);
  }
  return i == s.size();
}

// IPv6 text (RFC 4291 §2.2): eight 1*4HEXDIG groups separated by ":", one
// run of groups replaceable by "::", the last two groups writable as a
// dotted quad (RFC 3986 IPv6address has the same language).
/// Parses an IPv6 address into 16 octets (network order).
constexpr bool parse_proxy_ipv6(std::string_view s, std::uint8_t* out) noexcept {
  std::uint16_t g[8] = {};
  int n = 0;
  int gap = -1;  // index in g where "::" stands
  std::size_t i = 0;
  if (s.size() >= 2 && s[0] == ':' && s[1] == ':') {
    gap = 0;
    i = 2;
  } else if (s.empty()) {
    return false;
  }
  while (i < s.size()) {
    std::size_t j = i;
    while (j < s.size() && s[j] != ':')
      ++j;
    const std::string_view piece = s.substr(i, j - i);
    if (piece.find('.') != std::string_view::npos) {
      std::uint8_t v4[4] = {};
      if (j != s.size() || n > 6 || !parse_proxy_ipv4(piece, v4)) return false;
      g[n++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      g[n++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      break;
    }
    if (piece.empty() || piece.size() > 4 || n == 8) return false;
    unsigned v = 0;
    for (char c : piece) {
      unsigned d = 0;
      if (c >= '0' && c <= '9')
        d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        d = static_cast<unsigned>(c - 'A' + 10);
      else
        return false;
      v = v * 16 + d;
    }
    g[n++] = static_cast<std::uint16_t>(v);
    if (j == s.size()) break;
    if (j + 1 < s.size() && s[j + 1] == ':') {
      if (gap >= 0) return false;
      gap = n;
      i = j + 2;
    } else {
      i = j + 1;
      if (i == s.size()) return false;  // a trailing single ":"
    }
  }
  if (gap < 0 ? n != 8 : n > 7) return false;
  std::uint16_t full[8] = {};
  const int tail = gap < 0 ? 0 : n - gap;
  const int head = gap < 0 ? n : gap;
  for (int k = 0; k < head; ++k)
    full[k] = g[k];
  for (int k = 0; k < tail; ++k)
    full[8 - tail + k] = g[gap + k];
  for (int k = 0; k < 8; ++k) {
    out[2 * k] = static_cast<std::uint8_t>(full[k] >> 8);
    out[2 * k + 1] = static_cast<std::uint8_t>(full[k] & 0xff);
  }
  return true;
}

// PROXY v1: a port is "a 16-bit unsigned integer expressed in decimal"
// (0..65535); leading zeros are refused so that one port has one spelling.
/// Parses a v1 port.
constexpr bool parse_proxy_port(std::string_view s, std::uint16_t& out) noexcept {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

inline char* put_decimal(char* p, unsigned v) noexcept {
  char tmp[10];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

}  // namespace detail

namespace wire {

/// Which version of the protocol a header used.
enum class proxy_version : std::uint8_t { v1 = 1, v2 = 2 };

/// v2 command (v1 headers are always `proxy`). `local`: the load balancer
/// opened the connection itself (a health check); use the real endpoints.
enum class proxy_command : std::uint8_t { local = 0, proxy = 1 };

/// Address family: v1 TCP4 / TCP6 / UNKNOWN; v2 AF_INET / AF_INET6 /
/// AF_UNIX / AF_UNSPEC. With `unspec` the real endpoints apply.
enum class proxy_family : std::uint8_t { unspec = 0, inet = 1, inet6 = 2, unix_socket = 3 };

/// v2 transport protocol (v1 TCP4/TCP6 are `stream`).
enum class proxy_transport : std::uint8_t { unspec = 0, stream = 1, dgram = 2 };

/// PP2_TYPE_* TLV type codes (proxy-protocol.txt §2.2).
namespace proxy_tlv_type {
inline constexpr std::uint8_t alpn = 0x01;         ///< application protocol (ALPN)
inline constexpr std::uint8_t authority = 0x02;    ///< host name the client asked for (SNI)
inline constexpr std::uint8_t crc32c = 0x03;       ///< CRC-32C of the header, 4 octets
inline constexpr std::uint8_t noop = 0x04;         ///< padding, ignored
inline constexpr std::uint8_t unique_id = 0x05;    ///< opaque connection id, <= 128 octets
inline constexpr std::uint8_t ssl = 0x20;          ///< client(1) verify(4) then sub-TLVs
inline constexpr std::uint8_t ssl_version = 0x21;  ///< sub-TLV of ssl: "TLSv1.3"
inline constexpr std::uint8_t ssl_cn = 0x22;       ///< sub-TLV of ssl: client cert CN
inline constexpr std::uint8_t ssl_cipher = 0x23;   ///< sub-TLV of ssl: cipher name
inline constexpr std::uint8_t ssl_sig_alg = 0x24;  ///< sub-TLV of ssl: cert signature algorithm
inline constexpr std::uint8_t ssl_key_alg = 0x25;  ///< sub-TLV of ssl: cert key algorithm
inline constexpr std::uint8_t netns = 0x30;        ///< network namespace name
}  // namespace proxy_tlv_type

/// PP2_CLIENT_* bits of proxy_ssl::client.
namespace proxy_ssl_client {
inline constexpr std::uint8_t ssl = 0x01;        ///< the client connected over TLS
inline constexpr std::uint8_t cert_conn = 0x02;  ///< it sent a certificate on this connection
inline constexpr std::uint8_t cert_sess = 0x04;  ///< it sent one in this TLS session
}  // namespace proxy_ssl_client

/// An IPv4 or IPv6 address and port, binary and as text, held in the value
/// itself (no view into any buffer).
class proxy_address {
 public:
  /// The unspecified address (family unspec, port 0, empty text).
  constexpr proxy_address() noexcept = default;

  /// An IPv4 address from 4 octets in network order.
  static proxy_address ipv4(const std::uint8_t* octets, std::uint16_t port) noexcept {
    proxy_address a;
    a.family_ = proxy_family::inet;
    a.port_ = port;
    std::memcpy(a.octets_.data(), octets, 4);
    a.format();
    return a;
  }

  /// An IPv6 address from 16 octets in network order.
  static proxy_address ipv6(const std::uint8_t* octets, std::uint16_t port) noexcept {
    proxy_address a;
    a.family_ = proxy_family::inet6;
    a.port_ = port;
    std::memcpy(a.octets_.data(), octets, 16);
    a.format();
    return a;
  }

  /// inet, inet6, or unspec for a default-constructed address.
  proxy_family family() const noexcept { return family_; }
  /// The address octets in network order: 4 (inet), 16 (inet6) or 0.
  const std::uint8_t* data() const noexcept { return octets_.data(); }
  /// 4, 16 or 0.
  std::size_t size() const noexcept {
    return family_ == proxy_family::inet ? 4 : family_ == proxy_family::inet6 ? 16 : 0;
  }
  /// The port, host order.
  std::uint16_t port() const noexcept { return port_; }
  /// Canonical text: dotted quad, or RFC 5952 IPv6 (lower case, longest
  /// zero run as "::", "::ffff:a.b.c.d" for IPv4-mapped addresses);
  /// whatever spelling a v1 header used, the text is re-derived from the
  /// octets. Valid while this value lives.
  std::string_view text() const noexcept {
    return {text_ + literal_skip(), static_cast<std::size_t>(len_ - literal_skip())};
  }
  /// The RFC 5321 address-literal body for received_fields::client_address:
  /// "192.0.2.1" or "IPv6:2001:db8::1".
  std::string_view literal() const noexcept { return {text_, len_}; }

  friend bool operator==(const proxy_address& a, const proxy_address& b) noexcept {
    return a.family_ == b.family_ && a.port_ == b.port_ && a.octets_ == b.octets_;
  }
  friend bool operator!=(const proxy_address& a, const proxy_address& b) noexcept {
    return !(a == b);
  }

 private:
  std::size_t literal_skip() const noexcept { return family_ == proxy_family::inet6 ? 5 : 0; }

  void format() noexcept {
    char* p = text_;
    const std::uint8_t* o = octets_.data();
    if (family_ == proxy_family::inet) {
      p = put_quad(p, o);
    } else {
      std::memcpy(p, "IPv6:", 5);
      p += 5;
      static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(o, mapped, 12) == 0) {
        std::memcpy(p, "::ffff:", 7);
        p = put_quad(p + 7, o + 12);
      } else {
        unsigned g[8];
        for (int k = 0; k < 8; ++k)
          g[k] = static_cast<unsigned>(o[2 * k] << 8 | o[2 * k + 1]);
        int best = -1, best_len = 1;  // RFC 5952 §4.2.2: never "::" for one group
        for (int k = 0; k < 8;) {
          if (g[k] != 0) {
            ++k;
            continue;
          }
          int e = k;
          while (e < 8 && g[e] == 0)
            ++e;
          if (e - k > best_len) best = k, best_len = e - k;
          k = e;
        }
        static const char hex[] = "0123456789abcdef";
        for (int k = 0; k < 8; ++k) {
          if (k == best) {
            *p++ = ':';
            if (k == 0) *p++ = ':';
            k += best_len - 1;
            continue;
          }
          bool lead = true;
          for (int shift = 12; shift >= 0; shift -= 4) {
            const unsigned d = (g[k] >> shift) & 15u;
            if (lead && d == 0 && shift != 0) continue;
            lead = false;
            *p++ = hex[d];
          }
          if (k != 7) *p++ = ':';
        }
      }
    }
    len_ = static_cast<std::uint8_t>(p - text_);
  }

  static char* put_quad(char* p, const std::uint8_t* o) noexcept {
    for (int k = 0; k < 4; ++k) {
      if (k) *p++ = '.';
      p = detail::put_decimal(p, o[k]);
    }
    return p;
  }

  std::array<std::uint8_t, 16> octets_{};
  std::uint16_t port_ = 0;
  proxy_family family_ = proxy_family::unspec;
  std::uint8_t len_ = 0;
  char text_[48] = {};  // "IPv6:" + at most 39 octets of text
};

/// The PP2_TYPE_SSL TLV: how the client reached the load balancer. Empty
/// views mean the sub-TLV was absent (present ones are never empty).
struct proxy_ssl {
  bool present = false;      ///< the SSL TLV was sent
  std::uint8_t client = 0;   ///< proxy_ssl_client bits
  std::uint32_t verify = 1;  ///< 0 when a client certificate was presented and verified
  std::string_view version;  ///< PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3"
  std::string_view cn;       ///< PP2_SUBTYPE_SSL_CN: client certificate's Common Name
  std::string_view cipher;   ///< PP2_SUBTYPE_SSL_CIPHER, e.g. "TLS_AES_256_GCM_SHA384"
  std::string_view sig_alg;  ///< PP2_SUBTYPE_SSL_SIG_ALG, e.g. "SHA256"
  std::string_view key_alg;  ///< PP2_SUBTYPE_SSL_KEY_ALG, e.g. "RSA2048"
};

/// One TLV (see next_proxy_tlv).
struct proxy_tlv {
  std::uint8_t type = 0;
  std::string_view value;
};

/// A parsed PROXY header. Addresses live in the value; every string_view
/// points into the proxy_reader's buffer (valid until its reset() or
/// destruction) or, for headers built by an application for the writers,
/// wherever the application keeps the bytes.
struct proxy_header {
  proxy_version version = proxy_version::v2;
  proxy_command command = proxy_command::proxy;
  proxy_family family = proxy_family::unspec;
  proxy_transport transport = proxy_transport::unspec;
  /// The original client (inet/inet6 with command proxy; unspec otherwise).
  proxy_address source;
  /// The address the client connected to (the load balancer's listener).
  proxy_address destination;
  /// AF_UNIX socket paths (trailing NULs removed; an abstract socket's path
  /// starts with NUL); empty for other families.
  std::string_view source_path, destination_path;
  // TLVs (v2 only; empty = absent; a present one is never empty).
  std::string_view alpn;       ///< PP2_TYPE_ALPN, e.g. "h2"
  std::string_view authority;  ///< PP2_TYPE_AUTHORITY (SNI host name)
  std::string_view unique_id;  ///< PP2_TYPE_UNIQUE_ID, 1..128 octets
  std::string_view netns;      ///< PP2_TYPE_NETNS
  proxy_ssl ssl;               ///< PP2_TYPE_SSL
  bool crc32c = false;         ///< a PP2_TYPE_CRC32C TLV was present (and matched)
  /// Every TLV as sent, known and unknown (custom 0xE0-0xEF, experimental
  /// 0xF0-0xF7 …), already checked to be well framed: walk it with
  /// next_proxy_tlv.
  std::string_view tlvs;

  /// True when the header names the real client: command proxy with an
  /// inet or inet6 family. Otherwise the TCP connection's own endpoints apply.
  bool has_addresses() const noexcept {
    return command == proxy_command::proxy &&
           (family == proxy_family::inet || family == proxy_family::inet6);
  }
};

/// Takes the first TLV off `block` (a proxy_header::tlvs view, or an SSL
/// TLV's sub-TLV area): type(1) length_hi(1) length_lo(1) value(length).
/// False, leaving `block` unchanged, when it is empty or the TLV overruns it.
inline bool next_proxy_tlv(std::string_view& block, proxy_tlv& out) noexcept {
  if (block.size() < 3) return false;
  const auto* u = reinterpret_cast<const unsigned char*>(block.data());
  const std::size_t len = static_cast<std::size_t>(u[1]) << 8 | u[2];
  if (len > block.size() - 3) return false;
  out.type = u[0];
  out.value = block.substr(3, len);
  block.remove_prefix(3 + len);
  return true;
}

/// Switches and limits of a proxy_reader.
struct proxy_options {
  bool accept_v1 = true;  ///< default true; a v1 header when off: proxy_version_refused
  bool accept_v2 = true;  ///< default true; a v2 header when off: proxy_version_refused
  /// Whether every connection must start with a header (default true). When
  /// off, a stream that does not start with a PROXY signature is left to
  /// SMTP untouched (status absent). Keep it on where every connection comes
  /// through the load balancer: optional mode takes a connection that
  /// bypassed it at its TCP address. (SMTP servers speak first, so in
  /// optional mode the application must also decide how long to wait for a
  /// first octet before calling finish() and sending its greeting.)
  bool required = true;
  /// Largest v2 TLV area in octets: a header's length field may be at most
  /// this plus its address block (216 for LOCAL, whose family is ignored).
  /// Default 1024; the specification sets no minimum. Clamped to
  /// 65535 - 216 (what the 16-bit length field can carry).
  std::size_t max_tlv_length = 1024;  ///< default 1024; spec minimum none
};

/// What one call of proxy_reader::read produced.
enum class proxy_status : std::uint8_t {
  need_more,  ///< all input consumed, the header is not complete yet
  header,     ///< proxy_reader::header() is complete; the rest is SMTP
  absent,     ///< (optional mode) no PROXY signature: the stream is SMTP
  error,      ///< proxy_result::error; drop the connection
};

/// The result of proxy_reader::read / finish.
struct proxy_result {
  /// Octets of this call's input that belong to the header. After `header`
  /// or `absent`, input.substr(consumed) is the start of the SMTP stream.
  std::size_t consumed = 0;
  proxy_status status = proxy_status::need_more;
  errc error = errc::ok;
  /// With `absent`: octets that earlier calls consumed (a partial signature
  /// that turned out not to be one); they are the first SMTP octets, before
  /// input.substr(consumed). Points into the reader's buffer; reported by
  /// the call that reports absent only (repeated calls give it empty).
  std::string_view replay;
};

/// An incremental, strict reader of one PROXY protocol header (v1 and v2):
/// any chunking of the same bytes gives the same header, the same error and
/// the same boundary. One per connection; not thread-safe. Once it has
/// reported header, absent or error, further read() calls report the same
/// outcome again, consuming nothing.
///
///     proxy_result r = reader.read(in);
///     if (r.status == proxy_status::need_more) return;          // wait for bytes
///     if (r.status == proxy_status::error) close();             // or 421, reply_for
///     server.receive(r.replay); in.remove_prefix(r.consumed);   // the rest is SMTP
class proxy_reader {
 public:
  /// Smallest octets of a v2 header: signature(12) ver_cmd fam len(2).
  static constexpr std::size_t v2_fixed = 16;
  /// Longest v1 line, CRLF included (spec §2.1: 107 octets).
  static constexpr std::size_t v1_max = 107;
  /// Largest v2 address block (two 108-octet AF_UNIX paths).
  static constexpr std::size_t v2_max_addresses = 216;

  /// A reader with the given options; allocates its buffer here, once.
  explicit proxy_reader(proxy_options opt = {})
      : opt_(normalized(opt)),
        cap_(v2_fixed + v2_max_addresses + opt_.max_tlv_length),
        buf_(new char[cap_]) {}

  /// Consumes octets of `input` that belong to the header; see proxy_result.
  proxy_result read(std::string_view input) noexcept;

  /// The end of the stream before read() reported an outcome: a partial
  /// header is proxy_truncated; an empty stream is proxy_missing when a
  /// header is required, else absent (with any partial signature as replay).
  proxy_result finish() noexcept;

  /// The header (valid after read() reported header).
  const proxy_header& header() const noexcept { return h_; }

  /// Forgets everything (header views become invalid); keeps the buffer.
  void reset() noexcept {
    len_ = 0;
    replay_len_ = 0;
    kind_ = kind::detect;
    outcome_ = proxy_status::need_more;
    error_ = errc::ok;
    h_ = proxy_header{};
  }

  const proxy_options& options() const noexcept { return opt_; }
  /// Octets allocated; never grows.
  std::size_t buffer_capacity() const noexcept { return cap_; }

 private:
  enum class kind : std::uint8_t { detect, v1, v2 };

  static proxy_options normalized(proxy_options o) noexcept {
    if (o.max_tlv_length > 65535 - v2_max_addresses) o.max_tlv_length = 65535 - v2_max_addresses;
    return o;
  }

  proxy_result outcome(std::size_t consumed) const noexcept {
    proxy_result r;
    r.consumed = consumed;
    r.status = outcome_;
    r.error = error_;
    if (outcome_ == proxy_status::absent) r.replay = std::string_view(buf_.get(), replay_len_);
    return r;
  }
  proxy_result fail(std::size_t consumed, errc e) noexcept {
    outcome_ = proxy_status::error;
    error_ = e;
    return outcome(consumed);
  }
  proxy_result absent(std::size_t consumed) noexcept {
    outcome_ = proxy_status::absent;
    replay_len_ = len_;
    const proxy_result r = outcome(consumed);
    replay_len_ = 0;  // handed over once: a repeated call must not replay it again
    return r;
  }

  proxy_result detect(std::string_view in, std::size_t& pos) noexcept;
  proxy_result read_v1(std::string_view in, std::size_t pos) noexcept;
  proxy_result read_v2(std::string_view in, std::size_t pos) noexcept;
  errc parse_v1(std::string_view line) noexcept;
  errc parse_v2() noexcept;
  errc parse_tlvs(std::string_view block) noexcept;

  proxy_options opt_;
  std::size_t cap_;
  std::unique_ptr<char[]> buf_;
  std::size_t len_ = 0;         // octets of the header buffered so far
  std::size_t replay_len_ = 0;  // absent: octets of buf_ that belong to SMTP
  kind kind_ = kind::detect;
  proxy_status outcome_ = proxy_status::need_more;
  errc error_ = errc::ok;
  proxy_header h_;
};

namespace detail_proxy {
inline constexpr char v2_signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                          '\n', 'Q',  'U',  'I',  'T',  '\n'};
inline constexpr std::string_view v2_sig(v2_signature, 12);
inline constexpr std::string_view v1_sig = "PROXY ";

inline std::uint16_t be16(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<std::uint16_t>(u[0] << 8 | u[1]);
}

inline std::size_t address_block(unsigned char fam) noexcept {
  switch (fam >> 4) {
    case 1:
      return 12;
    case 2:
      return 36;
    case 3:
      return 216;
    default:
      return 0;
  }
}

/// The family/transport octets the specification defines (others: drop).
inline bool family_valid(unsigned char fam) noexcept {
  return fam == 0x00 || fam == 0x11 || fam == 0x12 || fam == 0x21 || fam == 0x22 || fam == 0x31 ||
         fam == 0x32;
}

inline std::string_view unix_path(const char* p) noexcept {
  std::size_t n = 108;
  while (n > 0 && p[n - 1] == '\0')
    --n;
  return {p, n};
}
}  // namespace detail_proxy

inline proxy_result proxy_reader::detect(std::string_view in, std::size_t& pos) noexcept {
  // The signatures differ in their first octet, so the buffered prefix
  // decides which one is being matched.
  while (pos < in.size()) {
    const char c = in[pos];
    const std::string_view sig =
        len_ == 0 ? (c == 'P' ? detail_proxy::v1_sig : detail_proxy::v2_sig)
                  : (buf_[0] == 'P' ? detail_proxy::v1_sig : detail_proxy::v2_sig);
    if (sig[len_] != c) {
      if (opt_.required) return fail(pos, errc::proxy_missing);
      return absent(pos);
    }
    buf_[len_++] = c;
    ++pos;
    if (len_ == sig.size()) {
      const bool v1 = sig[0] == 'P';
      if (v1 ? !opt_.accept_v1 : !opt_.accept_v2) return fail(pos, errc::proxy_version_refused);
      kind_ = v1 ? kind::v1 : kind::v2;
      break;
    }
  }
  proxy_result r;
  r.consumed = pos;
  return r;
}

inline proxy_result proxy_reader::read(std::string_view in) noexcept {
  if (outcome_ != proxy_status::need_more) return outcome(0);
  std::size_t pos = 0;
  if (kind_ == kind::detect) {
    proxy_result r = detect(in, pos);
    if (r.status != proxy_status::need_more || kind_ == kind::detect) return r;
  }
  return kind_ == kind::v1 ? read_v1(in, pos) : read_v2(in, pos);
}

inline proxy_result proxy_reader::finish() noexcept {
  if (outcome_ != proxy_status::need_more) return outcome(0);
  if (kind_ != kind::detect) return fail(0, errc::proxy_truncated);
  if (opt_.required) return fail(0, len_ == 0 ? errc::proxy_missing : errc::proxy_truncated);
  return absent(0);
}

inline proxy_result proxy_reader::read_v1(std::string_view in, std::size_t pos) noexcept {
  // The line ends at the first LF, which must follow a CR and lie within
  // 107 octets; nothing after it is taken.
  const std::size_t room = v1_max - len_;
  const std::size_t avail = in.size() - pos;
  const std::size_t window = avail < room ? avail : room;
  const void* hit = window ? std::memchr(in.data() + pos, '\n', window) : nullptr;
  if (hit == nullptr) {
    if (window != 0) std::memcpy(buf_.get() + len_, in.data() + pos, window);
    len_ += window;
    if (len_ == v1_max) return fail(pos + window, errc::proxy_v1_too_long);
    proxy_result r;
    r.consumed = in.size();
    return r;
  }
  const std::size_t take =
      static_cast<std::size_t>(static_cast<const char*>(hit) - in.data()) + 1 - pos;
  std::memcpy(buf_.get() + len_, in.data() + pos, take);
  len_ += take;
  pos += take;
  if (len_ < 2 || buf_[len_ - 2] != '\r') return fail(pos, errc::proxy_v1_syntax);
  if (const errc e = parse_v1(std::string_view(buf_.get(), len_ - 2)); e != errc::ok)
    return fail(pos, e);
  outcome_ = proxy_status::header;
  return outcome(pos);
}

// proxy-protocol.txt §2.1 (v1), as a grammar:
//   line    = "PROXY" SP ( tcp4 / tcp6 / unknown ) CRLF     ; <= 107 octets
//   tcp4    = "TCP4" SP IPv4 SP IPv4 SP port SP port
//   tcp6    = "TCP6" SP IPv6 SP IPv6 SP port SP port
//   unknown = "UNKNOWN" [ SP *( %x20-7E ) ]                 ; the rest is ignored
//   port    = "0" / %x31-39 0*4DIGIT                         ; <= 65535
// One SP exactly between fields; the address family must match the keyword.
inline errc proxy_reader::parse_v1(std::string_view line) noexcept {
  std::string_view rest = line.substr(detail_proxy::v1_sig.size());
  h_ = proxy_header{};
  h_.version = proxy_version::v1;
  h_.command = proxy_command::proxy;
  if (rest.substr(0, 7) == "UNKNOWN") {
    rest.remove_prefix(7);
    if (!rest.empty() && rest[0] != ' ') return errc::proxy_v1_syntax;
    for (char c : rest)
      if (c < 0x20 || c > 0x7e) return errc::proxy_v1_syntax;
    return errc::ok;
  }
  std::string_view f[5];
  for (int k = 0; k < 5; ++k) {
    const std::size_t sp = rest.find(' ');
    if ((sp == std::string_view::npos) != (k == 4)) return errc::proxy_v1_syntax;
    f[k] = rest.substr(0, sp);
    if (f[k].empty()) return errc::proxy_v1_syntax;
    if (k != 4) rest.remove_prefix(sp + 1);
  }
  const bool v4 = f[0] == "TCP4";
  if (!v4 && f[0] != "TCP6") return errc::proxy_v1_syntax;
  std::uint8_t s[16] = {}, d[16] = {};
  std::uint16_t sp = 0, dp = 0;
  const bool addr_ok = v4 ? detail::parse_proxy_ipv4(f[1], s) && detail::parse_proxy_ipv4(f[2], d)
                          : detail::parse_proxy_ipv6(f[1], s) && detail::parse_proxy_ipv6(f[2], d);
  if (!addr_ok || !detail::parse_proxy_port(f[3], sp) || !detail::parse_proxy_port(f[4], dp))
    return errc::proxy_address_invalid;
  h_.family = v4 ? proxy_family::inet : proxy_family::inet6;
  h_.transport = proxy_transport::stream;
  h_.source = v4 ? proxy_address::ipv4(s, sp) : proxy_address::ipv6(s, sp);
  h_.destination = v4 ? proxy_address::ipv4(d, dp) : proxy_address::ipv6(d, dp);
  return errc::ok;
}

inline proxy_result proxy_reader::read_v2(std::string_view in, std::size_t pos) noexcept {
  std::size_t want = v2_fixed;
  for (bool fixed_part = true;; fixed_part = false) {
    if (len_ < want) {  // a whole header in one input is copied too: the views need one home
      const std::size_t take = std::min(want - len_, in.size() - pos);
      if (take != 0) std::memcpy(buf_.get() + len_, in.data() + pos, take);
      len_ += take;
      pos += take;
      if (len_ < want) {
        proxy_result r;
        r.consumed = pos;
        return r;
      }
    }
    if (!fixed_part) break;
    // proxy-protocol.txt §2.2: ver_cmd = version(4 bits, 2) command(4 bits,
    // 0 LOCAL, 1 PROXY); fam = family(4) transport(4); len = 16-bit BE
    // octets following. Unexpected values must make the receiver drop the
    // connection.
    const auto ver_cmd = static_cast<unsigned char>(buf_[12]);
    const auto fam = static_cast<unsigned char>(buf_[13]);
    const std::size_t len = detail_proxy::be16(buf_.get() + 14);
    if ((ver_cmd >> 4) != 2 || (ver_cmd & 15) > 1) return fail(pos, errc::proxy_v2_header_invalid);
    const bool local = (ver_cmd & 15) == 0;
    if (!local && !detail_proxy::family_valid(fam)) return fail(pos, errc::proxy_v2_header_invalid);
    const std::size_t addr = local ? v2_max_addresses : detail_proxy::address_block(fam);
    if (len > addr + opt_.max_tlv_length) return fail(pos, errc::proxy_v2_too_long);
    if (!local && len < addr) return fail(pos, errc::proxy_v2_length_invalid);
    want = v2_fixed + len;
  }
  if (const errc e = parse_v2(); e != errc::ok) return fail(pos, e);
  outcome_ = proxy_status::header;
  return outcome(pos);
}

inline errc proxy_reader::parse_v2() noexcept {
  h_ = proxy_header{};
  h_.version = proxy_version::v2;
  const auto ver_cmd = static_cast<unsigned char>(buf_[12]);
  const auto fam = static_cast<unsigned char>(buf_[13]);
  if ((ver_cmd & 15) == 0) {
    // LOCAL: "the receiver must ... use the real connection endpoints and
    // discard the protocol block including the family which is ignored".
    h_.command = proxy_command::local;
    return errc::ok;
  }
  h_.command = proxy_command::proxy;
  h_.transport = static_cast<proxy_transport>(fam & 15);
  const char* a = buf_.get() + v2_fixed;
  const auto* u = reinterpret_cast<const std::uint8_t*>(a);
  switch (fam >> 4) {
    case 1:  // src(4) dst(4) src_port(2) dst_port(2)
      h_.family = proxy_family::inet;
      h_.source = proxy_address::ipv4(u, detail_proxy::be16(a + 8));
      h_.destination = proxy_address::ipv4(u + 4, detail_proxy::be16(a + 10));
      break;
    case 2:  // src(16) dst(16) src_port(2) dst_port(2)
      h_.family = proxy_family::inet6;
      h_.source = proxy_address::ipv6(u, detail_proxy::be16(a + 32));
      h_.destination = proxy_address::ipv6(u + 16, detail_proxy::be16(a + 34));
      break;
    case 3:  // src(108) dst(108)
      h_.family = proxy_family::unix_socket;
      h_.source_path = detail_proxy::unix_path(a);
      h_.destination_path = detail_proxy::unix_path(a + 108);
      break;
    default:
      h_.family = proxy_family::unspec;
      break;
  }
  const std::size_t addr = detail_proxy::address_block(fam);
  return parse_tlvs(std::string_view(a + addr, len_ - v2_fixed - addr));
}

// proxy-protocol.txt §2.2: each TLV is type(1) length_hi(1) length_lo(1)
// value(length), the TLVs fill the rest of the header exactly; unknown types
// are skipped. A known TLV given twice, or with a length its type cannot
// have, is refused. PP2_TYPE_SSL = client(1) verify(4 BE) sub-TLVs, which
// must fill the SSL value exactly. PP2_TYPE_CRC32C is the CRC-32C of the
// whole header with its own 4 value octets taken as zero.
inline errc proxy_reader::parse_tlvs(std::string_view block) noexcept {
  h_.tlvs = block;
  unsigned seen = 0;  // bit per known type already given
  auto once = [&seen](unsigned bit) {
    const bool first = (seen & bit) == 0;
    seen |= bit;
    return first;
  };
  proxy_tlv t;
  while (!block.empty()) {
    if (!next_proxy_tlv(block, t)) return errc::proxy_tlv_invalid;
    switch (t.type) {
      case proxy_tlv_type::alpn:
        if (!once(1) || t.value.empty()) return errc::proxy_tlv_invalid;
        h_.alpn = t.value;
        break;
      case proxy_tlv_type::authority:
        if (!once(2) || t.value.empty()) return errc::proxy_tlv_invalid;
        h_.authority = t.value;
        break;
      case proxy_tlv_type::crc32c: {
        if (!once(4) || t.value.size() != 4) return errc::proxy_tlv_invalid;
        const auto* base = reinterpret_cast<const unsigned char*>(buf_.get());
        const auto* at = reinterpret_cast<const unsigned char*>(t.value.data());
        const std::size_t before = static_cast<std::size_t>(at - base);
        static const unsigned char zeros[4] = {};
        std::uint32_t s = detail::crc32c_update(0xFFFFFFFFu, base, before);
        s = detail::crc32c_update(s, zeros, 4);
        s = ~detail::crc32c_update(s, at + 4, len_ - before - 4);
        const std::uint32_t sent = static_cast<std::uint32_t>(at[0]) << 24 |
                                   static_cast<std::uint32_t>(at[1]) << 16 |
                                   static_cast<std::uint32_t>(at[2]) << 8 | at[3];
        if (s != sent) return errc::proxy_crc32c_mismatch;
        h_.crc32c = true;
        break;
      }
      case proxy_tlv_type::unique_id:
        if (!once(8) || t.value.empty() || t.value.size() > 128) return errc::proxy_tlv_invalid;
        h_.unique_id = t.value;
        break;
      case proxy_tlv_type::netns:
        if (!once(16) || t.value.empty()) return errc::proxy_tlv_invalid;
        h_.netns = t.value;
        break;
      case proxy_tlv_type::ssl: {
        if (!once(32) || t.value.size() < 5) return errc::proxy_tlv_invalid;
        const auto* v = reinterpret_cast<const unsigned char*>(t.value.data());
        h_.ssl.present = true;
        h_.ssl.client = v[0];
        h_.ssl.verify = static_cast<std::uint32_t>(v[1]) << 24 |
                        static_cast<std::uint32_t>(v[2]) << 16 |
                        static_cast<std::uint32_t>(v[3]) << 8 | v[4];
        std::string_view sub = t.value.substr(5);
        unsigned sub_seen = 0;
        proxy_tlv s;
        while (!sub.empty()) {
          if (!next_proxy_tlv(sub, s)) return errc::proxy_tlv_invalid;
          std::string_view* field = nullptr;
          switch (s.type) {
            case proxy_tlv_type::ssl_version:
              field = &h_.ssl.version;
              break;
            case proxy_tlv_type::ssl_cn:
              field = &h_.ssl.cn;
              break;
            case proxy_tlv_type::ssl_cipher:
              field = &h_.ssl.cipher;
              break;
            case proxy_tlv_type::ssl_sig_alg:
              field = &h_.ssl.sig_alg;
              break;
            case proxy_tlv_type::ssl_key_alg:
              field = &h_.ssl.key_alg;
              break;
            default:
              continue;
          }
          const unsigned bit = 1u << (s.type - proxy_tlv_type::ssl_version);
          if ((sub_seen & bit) != 0 || s.value.empty()) return errc::proxy_tlv_invalid;
          sub_seen |= bit;
          *field = s.value;
        }
        break;
      }
      default:  // NOOP, custom, experimental, future: skipped
        break;
    }
  }
  return errc::ok;
}

/// Appends a v1 header for `h` (command proxy; family inet → "PROXY TCP4
/// ...", inet6 → "PROXY TCP6 ...", unspec → "PROXY UNKNOWN"), as a load
/// balancer sends it. api_value_invalid (nothing appended) for LOCAL, an
/// AF_UNIX family, or addresses whose family differs from h.family.
[[nodiscard]] inline errc write_proxy_v1(std::string& out, const proxy_header& h) {
  if (h.command != proxy_command::proxy) return errc::api_value_invalid;
  if (h.family == proxy_family::unspec) {
    out.append("PROXY UNKNOWN\r\n");
    return errc::ok;
  }
  if ((h.family != proxy_family::inet && h.family != proxy_family::inet6) ||
      h.source.family() != h.family || h.destination.family() != h.family)
    return errc::api_value_invalid;
  char port[8];
  out.append(h.family == proxy_family::inet ? "PROXY TCP4 " : "PROXY TCP6 ");
  out.append(h.source.text()).append(" ").append(h.destination.text()).append(" ");
  out.append(port, static_cast<std::size_t>(detail::put_decimal(port, h.source.port()) - port));
  out.append(" ");
  out.append(port,
             static_cast<std::size_t>(detail::put_decimal(port, h.destination.port()) - port));
  out.append("\r\n");
  return errc::ok;
}

/// Appends a v2 header for `h`: addresses per h.family/h.transport (LOCAL
/// writes family UNSPEC and nothing after it), then the TLVs the header
/// holds, non-empty ones only, in the order ALPN, AUTHORITY, UNIQUE_ID,
/// SSL (with its sub-TLVs), NETNS, then `extra_tlvs` verbatim (already
/// framed TLVs, e.g. custom types), then, when `with_crc32c`, a CRC32C TLV
/// computed over the result. api_value_invalid (nothing appended) for
/// addresses that do not match h.family, an AF_UNIX path over 108 octets, a
/// unique id over 128 octets, or a header longer than the 16-bit length.
[[nodiscard]] inline errc write_proxy_v2(std::string& out, const proxy_header& h,
                                         bool with_crc32c = false,
                                         std::string_view extra_tlvs = {}) {
  std::string b(detail_proxy::v2_sig);
  const bool local = h.command == proxy_command::local;
  b.push_back(local ? '\x20' : '\x21');
  if (local) {
    b.append("\0\0\0", 3);
    out.append(b);
    return errc::ok;
  }
  auto put16 = [](std::string& s, std::size_t v) {
    s.push_back(static_cast<char>((v >> 8) & 0xff));
    s.push_back(static_cast<char>(v & 0xff));
  };
  if (h.transport == proxy_transport::unspec && h.family != proxy_family::unspec)
    return errc::api_value_invalid;
  const unsigned fam = static_cast<unsigned>(h.family) << 4 | static_cast<unsigned>(h.transport);
  if (!detail_proxy::family_valid(static_cast<unsigned char>(fam))) return errc::api_value_invalid;
  b.push_back(static_cast<char>(fam));
  b.append(2, '\0');  // length, filled in below
  switch (h.family) {
    case proxy_family::inet:
    case proxy_family::inet6:
      if (h.source.family() != h.family || h.destination.family() != h.family)
        return errc::api_value_invalid;
      b.append(reinterpret_cast<const char*>(h.source.data()), h.source.size());
      b.append(reinterpret_cast<const char*>(h.destination.data()), h.destination.size());
      put16(b, h.source.port());
      put16(b, h.destination.port());
      break;
    case proxy_family::unix_socket:
      if (h.source_path.size() > 108 || h.destination_path.size() > 108)
        return errc::api_value_invalid;
      b.append(h.source_path).append(108 - h.source_path.size(), '\0');
      b.append(h.destination_path).append(108 - h.destination_path.size(), '\0');
      break;
    case proxy_family::unspec:
      break;
  }
  bool ok = true;
  auto tlv = [&](std::string& s, std::uint8_t type, std::string_view v) {
    if (v.empty()) return;
    if (v.size() > 0xffff) ok = false;
    s.push_back(static_cast<char>(type));
    put16(s, v.size());
    s.append(v);
  };
  tlv(b, proxy_tlv_type::alpn, h.alpn);
  tlv(b, proxy_tlv_type::authority, h.authority);
  if (h.unique_id.size() > 128) return errc::api_value_invalid;
  tlv(b, proxy_tlv_type::unique_id, h.unique_id);
  if (h.ssl.present) {
    std::string v;
    v.push_back(static_cast<char>(h.ssl.client));
    for (int shift = 24; shift >= 0; shift -= 8)
      v.push_back(static_cast<char>((h.ssl.verify >> shift) & 0xff));
    tlv(v, proxy_tlv_type::ssl_version, h.ssl.version);
    tlv(v, proxy_tlv_type::ssl_cn, h.ssl.cn);
    tlv(v, proxy_tlv_type::ssl_cipher, h.ssl.cipher);
    tlv(v, proxy_tlv_type::ssl_sig_alg, h.ssl.sig_alg);
    tlv(v, proxy_tlv_type::ssl_key_alg, h.ssl.key_alg);
    tlv(b, proxy_tlv_type::ssl, v);
  }
  tlv(b, proxy_tlv_type::netns, h.netns);
  b.append(extra_tlvs);
  if (with_crc32c) b.append("\x03\x00\x04\0\0\0\0", 7);
  const std::size_t len = b.size() - proxy_reader::v2_fixed;
  if (!ok || len > 0xffff) return errc::api_value_invalid;
  b[14] = static_cast<char>(len >> 8);
  b[15] = static_cast<char>(len & 0xff);
  if (with_crc32c) {
    const std::uint32_t c = detail::crc32c(b);
    for (int k = 0; k < 4; ++k)
      b[b.size() - 4 + static_cast<std::size_t>(k)] = static_cast<char>((c >> (24 - 8 * k)) & 0xff);
  }
  out.append(b);
  return errc::ok;
}

}  // namespace wire
}  // namespace smtpwire

#endif  // SMTPWIRE_WIRE_PROXY_HPP
