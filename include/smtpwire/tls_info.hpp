// smtpwire — what a TLS adapter tells an engine once a handshake is done.
#ifndef SMTPWIRE_TLS_INFO_HPP
#define SMTPWIRE_TLS_INFO_HPP

#include <string_view>

namespace smtpwire {

/// Facts about an established TLS session, handed to an engine's
/// tls_established() by the adapter (or the application) that ran the
/// handshake. The engines copy nothing out of it except what they document;
/// the views must stay valid while the engine uses them (the adapter owns
/// the strings for the life of the TLS session).
struct tls_info {
  std::string_view version;  ///< protocol, e.g. "TLSv1.3" (RFC 8314 §4.3 trace field)
  std::string_view cipher;   ///< cipher suite, e.g. "TLS_AES_256_GCM_SHA384"
  /// True when the peer's certificate chain and name were verified against
  /// the configured trust anchors (or DANE records).
  bool peer_verified = false;
  /// The verified peer name (client side) or the client certificate's
  /// subject (server side); empty when none.
  std::string_view peer_name;
};

}  // namespace smtpwire

#endif  // SMTPWIRE_TLS_INFO_HPP
