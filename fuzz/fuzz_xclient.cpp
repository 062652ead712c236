// Fuzz target: any bytes as the attribute text after "XCLIENT " / "XFORWARD ".
// The first byte picks the command (bit 0: XFORWARD) and the line length of
// the writer (40 + 4 * (byte >> 1) octets); the second byte the attributes the
// "server" offers (bit i: xattr i, shifted by the command). Invariants, each
// an abort() when broken:
// - parse_command on the whole line agrees with parse_xattributes about the
//   shape (an accepted attribute list is an accepted command argument);
// - accepted attributes pass validate_xattributes once decoded;
// - write_xcommands of the decoded values gives lines of at most the line
//   length, each a command that parses back; together the lines hold exactly
//   the offered attributes with the same decoded values (round-trip oracle),
//   or the writer says line_too_long and appends nothing.
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/xclient.hpp>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>

namespace {
namespace wire = smtpwire::wire;
using smtpwire::errc;
using wire::xattr;
using wire::xcommand;
using wire::xvalue_kind;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string decode(std::string_view raw) {
  std::string out;
  check(wire::xtext_decode(out, raw) == errc::ok);
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const xcommand c = (data[0] & 1) ? xcommand::xforward : xcommand::xclient;
  const std::size_t max_line = 40 + 4 * static_cast<std::size_t>(data[0] >> 1);
  const std::uint16_t offered =
      static_cast<std::uint16_t>((data[1] | (data[1] << 8)) & wire::all_xattrs(c));
  const std::string_view args(reinterpret_cast<const char*>(data + 2), size - 2);

  wire::xattributes parsed;
  const errc e = wire::parse_xattributes(c, args, parsed);

  std::string line(wire::to_string(c));
  line.append(" ").append(args);
  const auto cmd = wire::parse_command(line);
  if (e == errc::ok) {
    check(cmd.has_value());
    check(cmd->kind == (c == xcommand::xclient ? wire::verb::xclient : wire::verb::xforward));
    check(cmd->argument == args);
  } else if (!cmd && cmd.error() != errc::command_unknown) {
    // A line the command parser refuses for its shape is refused here too.
    check(e == cmd.error());
  }
  if (e != errc::ok) return 0;

  std::deque<std::string> store;
  wire::xattributes decoded;
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const auto a = static_cast<xattr>(i);
    if (parsed.get(a) == xvalue_kind::value) {
      check(wire::allowed(c, a));
      store.push_back(decode(parsed.value(a)));
      decoded.set(a, store.back());
    } else {
      decoded.set(a, parsed.get(a));
    }
  }
  check(wire::validate_xattributes(c, decoded) == errc::ok);

  std::string out = "k";
  std::size_t lines = 0;
  const errc w = wire::write_xcommands(out, c, decoded, offered, lines, max_line);
  if (w == errc::line_too_long) {
    check(out == "k" && lines == 0);
    return 0;
  }
  check(w == errc::ok && out[0] == 'k');
  std::string_view rest = std::string_view(out).substr(1);
  wire::xattributes merged;
  std::size_t n = 0;
  while (!rest.empty()) {
    const std::size_t crlf = rest.find("\r\n");
    check(crlf != std::string_view::npos && crlf + 2 <= max_line);
    const auto back = wire::parse_command(rest.substr(0, crlf));
    rest.remove_prefix(crlf + 2);
    ++n;
    check(back.has_value());
    wire::xattributes part;
    check(wire::parse_xattributes(c, back->argument, part) == errc::ok);
    for (std::size_t i = 0; i < wire::xattr_count; ++i) {
      if (part.kind[i] == xvalue_kind::absent) continue;
      check(merged.kind[i] == xvalue_kind::absent);
      merged.kind[i] = part.kind[i];
      if (part.kind[i] == xvalue_kind::value) {
        store.push_back(decode(part.raw[i]));
        merged.raw[i] = store.back();
      }
    }
  }
  check(n == lines);
  for (std::size_t i = 0; i < wire::xattr_count; ++i) {
    const bool is_offered = (offered >> i) & 1u;
    const xvalue_kind want = is_offered ? decoded.kind[i] : xvalue_kind::absent;
    check(merged.kind[i] == want);
    if (want == xvalue_kind::value) check(merged.raw[i] == decoded.raw[i]);
  }
  return 0;
}
