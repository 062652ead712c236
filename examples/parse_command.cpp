// Parses a few SMTP command lines, writes a few, and checks the results.
// Returns 0 when every check holds.
#include <smtpwire/wire/command.hpp>

#include <cstdio>
#include <string>

namespace wire = smtpwire::wire;

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += ok ? 0 : 1;
  };

  // Lines come without their CRLF; every view points into the line.
  const auto mail = wire::parse_command("MAIL FROM:<alice@example.org> SIZE=1024 BODY=8BITMIME");
  check(mail && mail->kind == wire::verb::mail, "MAIL parses");
  check(mail && mail->path.address.local_part == "alice", "local part");
  check(mail && mail->path.address.domain == "example.org", "domain");
  check(mail && mail->params == "SIZE=1024 BODY=8BITMIME", "raw parameters for params.hpp");

  const auto pm = wire::parse_command("RCPT TO:<Postmaster>");
  check(pm && pm->path.postmaster, "<Postmaster> is flagged");

  const auto bdat = wire::parse_command("BDAT 18446744073709551616 LAST");
  check(!bdat && bdat.error() == smtpwire::errc::bdat_size_overflow, "BDAT size overflow");

  // A server replies from the error: an unknown verb is 500, bad syntax 501.
  const auto unknown = wire::parse_command("XYZZY plugh");
  const auto bad = wire::parse_command("MAIL FROM: <alice@example.org>");
  check(!unknown && smtpwire::reply_for(unknown.error()).code == 500, "unknown verb: 500");
  check(!bad && smtpwire::reply_for(bad.error()).code == 501, "space after FROM: is 501");
  if (!bad)
    std::printf("     reply: %d %s %s\n", smtpwire::reply_for(bad.error()).code,
                std::string(smtpwire::reply_for(bad.error()).enhanced).c_str(),
                std::string(smtpwire::reply_for(bad.error()).text).c_str());

  // UTF-8 addresses only when the transaction uses SMTPUTF8.
  const char* utf8_line =
      "RCPT TO:<j\xc3\xb6rg@b\xc3\xbc"
      "cher.example>";
  wire::command_options utf8;
  utf8.path.smtputf8 = true;
  check(wire::parse_command(utf8_line).error() == smtpwire::errc::utf8_not_allowed,
        "8-bit refused without SMTPUTF8");
  check(wire::parse_command(utf8_line, utf8).has_value(), "UTF-8 accepted with SMTPUTF8");

  // Writing: the verb in upper case, CRLF appended, invalid values refused.
  std::string out;
  wire::command ehlo;
  ehlo.kind = wire::verb::ehlo;
  ehlo.domain = "client.example.org";
  check(wire::write_command(out, ehlo) == smtpwire::errc::ok, "EHLO written");
  wire::command rcpt;
  rcpt.kind = wire::verb::rcpt;
  rcpt.path.address = {"bob", "example.net", wire::address_kind::domain};
  rcpt.params = "NOTIFY=NEVER";
  check(wire::write_command(out, rcpt) == smtpwire::errc::ok, "RCPT written");
  check(out == "EHLO client.example.org\r\nRCPT TO:<bob@example.net> NOTIFY=NEVER\r\n",
        "written bytes");
  rcpt.params = "NOTIFY=NEVER\r\nRSET";
  check(wire::write_command(out, rcpt) == smtpwire::errc::command_value_invalid,
        "CRLF injection refused");

  // A local part that is not a dot-string is quoted when written.
  std::string lp;
  check(wire::write_local_part(lp, "John Smith") == smtpwire::errc::ok && lp == "\"John Smith\"",
        "local part quoted");
  std::printf("%s\n", failures == 0 ? "all checks passed" : "some checks FAILED");
  return failures == 0 ? 0 : 1;
}
