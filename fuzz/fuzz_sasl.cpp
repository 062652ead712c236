// Fuzz target: the first byte picks the codec (low 3 bits: PLAIN, LOGIN
// prompt, LOGIN response, XOAUTH2, OAUTHBEARER, OAuth error JSON) and bit 3
// small limits; the rest is the decoded message. Invariants: a successful
// parse writes back, the written bytes parse to an equal value, and writing
// that again gives the same bytes; a failed parse reports
// sasl_message_invalid.
#include <smtpwire/wire/sasl.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace sasl = smtpwire::wire::sasl;

void check(bool ok) {
  if (!ok) std::abort();
}

// Parse, write, parse again, write again: equal values, equal bytes.
template <class Parse, class Write>
void round_trip(std::string_view msg, Parse parse, Write write) {
  const auto r = parse(msg);
  if (!r) {
    check(r.error() == smtpwire::errc::sasl_message_invalid);
    return;
  }
  std::string out;
  check(write(out, *r) == smtpwire::errc::ok);
  const auto back = parse(std::string_view(out));
  check(back && *back == *r);
  std::string again;
  check(write(again, *back) == smtpwire::errc::ok && again == out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using smtpwire::errc;
  if (size == 0) return 0;
  sasl::options o;
  if (data[0] & 8) {
    o.max_field = 8;
    o.max_token = 16;
  }
  const std::string_view msg(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] & 7) {
    case 0:
      round_trip(
          msg, [&](std::string_view m) { return sasl::parse_plain(m, o); },
          [&](std::string& out, const sasl::plain& v) { return sasl::write_plain(out, v, o); });
      break;
    case 1: {
      const auto r = sasl::parse_login_prompt(msg);
      if (!r) break;
      std::string out;
      sasl::write_login_prompt(out, *r);
      const auto back = sasl::parse_login_prompt(out);
      check(back && *back == *r);
      break;
    }
    case 2:
      round_trip(
          msg, [&](std::string_view m) { return sasl::parse_login_response(m, o); },
          [&](std::string& out, std::string_view v) {
            return sasl::write_login_response(out, v, o);
          });
      break;
    case 3:
      round_trip(
          msg, [&](std::string_view m) { return sasl::parse_xoauth2(m, o); },
          [&](std::string& out, const sasl::xoauth2& v) { return sasl::write_xoauth2(out, v, o); });
      break;
    case 4: {
      round_trip(
          msg, [&](std::string_view m) { return sasl::parse_oauthbearer(m, o); },
          [&](std::string& out, const sasl::oauthbearer& v) {
            return sasl::write_oauthbearer(out, v, o);
          });
      if (const auto r = sasl::parse_oauthbearer(msg, o); r && !r->authzid.empty()) {
        std::string plain, wire_form;
        check(sasl::append_saslname_unescaped(plain, r->authzid) == errc::ok);
        check(sasl::append_saslname_escaped(wire_form, plain) == errc::ok);
        check(wire_form == r->authzid);
      }
      break;
    }
    default:
      round_trip(
          msg, [](std::string_view m) { return sasl::parse_oauth_error(m); },
          [](std::string& out, const sasl::oauth_error& v) {
            return sasl::write_oauth_error(out, v);
          });
      break;
  }
  return 0;
}
