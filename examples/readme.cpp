// The example of README.md, compiled and checked so it never rots.
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/data.hpp>
#include <smtpwire/wire/params.hpp>

#include <cstdio>
#include <string>

namespace wire = smtpwire::wire;

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += ok ? 0 : 1;
  };

  // One command line (without its CRLF); every view points into the line.
  auto cmd = wire::parse_command("MAIL FROM:<alice@example.org> SIZE=1024 BODY=8BITMIME");
  check(cmd && cmd->kind == wire::verb::mail, "MAIL parses");
  auto params = wire::parse_mail_params(cmd->params);
  check(params && params->size == 1024u, "SIZE=1024");
  check(params && params->body == wire::body_type::eight_bit_mime, "BODY=8BITMIME");

  auto bad = wire::parse_command("MAIL FROM: <alice@example.org>");
  const auto r = smtpwire::reply_for(bad.error());
  check(!bad && r.code == 501 && r.enhanced == "5.5.4", "a space after FROM: gets 501 5.5.4");

  // After DATA: feed bytes as they arrive; content comes back as views, and
  // only <CRLF>.<CRLF> ends the message.
  wire::data_decoder dec;
  std::string_view in = "Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n";
  std::string content;
  bool ended = false;
  for (;;) {
    wire::data_result d = dec.decode(in);
    in.remove_prefix(d.consumed);
    if (d.status == wire::data_status::content) {
      content += d.content;
    } else if (d.status == wire::data_status::end) {
      ended = d.error == smtpwire::errc::ok;
      break;
    } else if (d.status == wire::data_status::need_more) {
      break;
    }
  }
  check(ended, "end of data");
  check(content == "Subject: hi\r\n\r\n.dot\r\n", "the leading dot removed");
  check(in == "QUIT\r\n", "the next command is left over");
  return failures == 0 ? 0 : 1;
}
