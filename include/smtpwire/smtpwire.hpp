// smtpwire — the umbrella header: the whole core (errors, the wire grammar,
// the client and server engines, the PROXY protocol reader, MTA-STS and
// TLSRPT). Adapters (OpenSSL, sockets) have their own
// include roots and are never pulled in from here.
#ifndef SMTPWIRE_SMTPWIRE_HPP
#define SMTPWIRE_SMTPWIRE_HPP

#include <smtpwire/client.hpp>
#include <smtpwire/error.hpp>
#include <smtpwire/mta_sts.hpp>
#include <smtpwire/server.hpp>
#include <smtpwire/tls_info.hpp>
#include <smtpwire/tlsrpt.hpp>
#include <smtpwire/wire/base64.hpp>
#include <smtpwire/wire/bdat.hpp>
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/content.hpp>
#include <smtpwire/wire/data.hpp>
#include <smtpwire/wire/ehlo.hpp>
#include <smtpwire/wire/line.hpp>
#include <smtpwire/wire/params.hpp>
#include <smtpwire/wire/path.hpp>
#include <smtpwire/wire/proxy.hpp>
#include <smtpwire/wire/reply.hpp>
#include <smtpwire/wire/sasl.hpp>
#include <smtpwire/wire/xclient.hpp>
#include <smtpwire/wire/xtext.hpp>

#endif  // SMTPWIRE_SMTPWIRE_HPP
