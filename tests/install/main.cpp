// A consumer of an installed (or subproject) smtpwire: built by
// tests/install/run through find_package, pkg-config and a meson subproject.
// It uses only public headers; exit status 0 when every check holds.
#include <smtpwire/detail/chars.hpp>
#include <smtpwire/error.hpp>
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/path.hpp>

#include <cstdio>
#include <string>
#include <system_error>

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAILED: %s\n", what);
      ++failures;
    }
  };

  const std::error_code ec = smtpwire::errc::bare_lf;
  check(static_cast<bool>(ec), "errc::bare_lf is an error");
  check(std::string(ec.category().name()) == "smtpwire", "category name");
  const auto reply = smtpwire::reply_for(smtpwire::errc::line_too_long);
  check(reply.code == 500 && reply.enhanced == "5.5.6", "reply_for(line_too_long) is 500 5.5.6");

  smtpwire::result<int> r = 42;
  check(r && *r == 42, "result<int> holds a value");

  check(smtpwire::detail::iequals("EHLO", "ehlo"), "iequals ignores ASCII case");
  check(smtpwire::detail::has_line_breaking_byte("a\r\nb"), "CRLF is line-breaking");

  namespace wire = smtpwire::wire;
  const auto mail = wire::parse_command("MAIL FROM:<alice@example.org> SIZE=1024");
  check(mail && mail->kind == wire::verb::mail, "MAIL parses");
  check(mail && mail->path.address.domain == "example.org", "MAIL domain");
  std::string out;
  check(mail && wire::write_command(out, *mail) == smtpwire::errc::ok &&
            out == "MAIL FROM:<alice@example.org> SIZE=1024\r\n",
        "MAIL writes back");
  const auto rcpt = wire::parse_forward_path("<bob@example.net>");
  check(rcpt && rcpt->address.local_part == "bob", "forward path parses");

  std::printf("smtpwire consumer: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
