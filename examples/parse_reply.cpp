// Parses the EHLO reply of a real Postfix server and a 421 reply with
// wire::reply_reader, prints what it understood, then writes a long reply
// that the writer folds into 512-octet lines and reads it back. Exits 0 only
// when every result is the expected one.
#include <smtpwire/wire/reply.hpp>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpwire::wire;

namespace {

// Reads every complete reply in `bytes`, which arrive in two pieces as they
// might from a socket; calls `on_reply` for each.
template <class F>
bool read_all(reply_reader& reader, std::string_view bytes, F&& on_reply) {
  const std::string_view pieces[] = {bytes.substr(0, bytes.size() / 3),
                                     bytes.substr(bytes.size() / 3)};
  for (std::string_view in : pieces) {
    while (!in.empty()) {
      const reply_result r = reader.read(in);
      in.remove_prefix(r.consumed);
      if (r.status == reply_status::need_more) break;
      if (r.status == reply_status::error) {
        std::printf("error: %s\n", std::string(smtpwire::to_string(r.error)).c_str());
        return false;
      }
      on_reply(r.reply);  // the view is valid until the next read()
    }
  }
  return reader.idle();
}

void print(const reply_view& v) {
  std::printf("reply %d (%zu line%s, %s)\n", v.code(), v.size(), v.size() == 1 ? "" : "s",
              v.is_positive()    ? "positive"
              : v.is_transient() ? "transient failure"
                                 : "permanent failure");
  for (const reply_line& line : v) {
    std::string code;
    if (line.enhanced && write_enhanced_code(code, *line.enhanced) != smtpwire::errc::ok)
      code = "?";
    std::printf("  %-9s %.*s\n", code.c_str(), static_cast<int>(line.text.size()),
                line.text.data());
  }
}

}  // namespace

int main() {
  bool ok = true;

  // EHLO reply recorded from Postfix's smtp-sink (examples/data), with the
  // last line "250 " (SP, no text).
  const std::string ehlo =
      "250-mx.example.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n"
      "250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
  reply_reader reader;
  std::vector<std::string> keywords;
  ok &= read_all(reader, ehlo, [&](const reply_view& v) {
    print(v);
    ok &= v.code() == 250 && v.size() == 9;
    bool first = true;
    for (const reply_line& line : v) {
      if (!first && !line.text.empty()) keywords.emplace_back(line.text);
      first = false;
    }
  });
  ok &= keywords.size() == 7 && keywords[0] == "PIPELINING" && keywords[6] == "DSN";

  // A server shutting down (RFC 5321 §3.8): transient, enhanced code 4.7.0.
  const std::string shutdown =
      "421-4.7.0 mx.example.test Service not available,\r\n"
      "421 4.7.0 closing transmission channel\r\n";
  int seen = 0;
  ok &= read_all(reader, shutdown, [&](const reply_view& v) {
    print(v);
    ++seen;
    const reply value = to_reply(v);
    ok &= v.is_transient() && v.enhanced() && *v.enhanced() == enhanced_code{4, 7, 0};
    ok &=
        value == reply{421,
                       enhanced_code{4, 7, 0},
                       {"mx.example.test Service not available,", "closing transmission channel"}};
  });
  ok &= seen == 1;

  // A long reply: folded at spaces into lines of at most 512 octets, the
  // enhanced code repeated on each; it reads back as the folded value.
  std::string text = "Message rejected:";
  while (text.size() < 1200)
    text += " policy reason " + std::to_string(text.size());
  const reply long_reply{550, enhanced_code{5, 7, 1}, {text}};
  std::string wire;
  ok &= write_reply(wire, long_reply) == smtpwire::errc::ok;
  std::size_t lines = 0, longest = 0;
  for (std::string_view w = wire; !w.empty(); ++lines) {
    const std::size_t end = w.find("\r\n") + 2;
    longest = end > longest ? end : longest;
    w.remove_prefix(end);
  }
  std::printf("wrote a %zu-octet text as %zu lines, the longest %zu octets:\n%s", text.size(),
              lines, longest, wire.c_str());
  const auto back = parse_reply(wire);
  const auto folded = fold_reply(long_reply);
  ok &= lines == 3 && longest <= 512 && back && folded && *back == *folded;
  std::string joined;
  if (back)
    for (const std::string& piece : back->lines)
      joined += piece;
  ok &= joined == text;

  // Application text cannot inject a reply line.
  std::string refused;
  ok &= write_reply(refused, 250, "OK\r\n250 injected") == smtpwire::errc::reply_text_invalid;
  ok &= refused.empty();

  std::printf("%s\n", ok ? "all results as expected" : "UNEXPECTED RESULT");
  return ok ? 0 : 1;
}
