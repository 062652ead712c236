// Fuzz target: any bytes as one command line (without CRLF). The first byte
// picks the options (bit 0: SMTPUTF8; bits 1-2: tighter limits). Invariants:
// a successful parse writes back, the written line parses to an equal
// command, and writing that again gives the same bytes; a failed parse never
// has a verb's syntax error unless peek_verb recognised that verb.
#include <smtpwire/wire/command.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace wire = smtpwire::wire;
  if (size == 0) return 0;
  wire::command_options o;
  o.path.smtputf8 = (data[0] & 1) != 0;
  if (data[0] & 2) o.path.max_local_part = 8;
  if (data[0] & 4) o.path.max_path = 24;
  const std::string_view line(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto r = wire::parse_command(line, o);
  if (!r) {
    if (r.error() == smtpwire::errc::ok) std::abort();
    if (r.error() == smtpwire::errc::command_unknown &&
        wire::peek_verb(line) != wire::verb::unknown)
      std::abort();
    return 0;
  }
  if (wire::peek_verb(line) != r->kind) std::abort();
  std::string out;
  if (wire::write_command(out, *r, o) != smtpwire::errc::ok) std::abort();
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) std::abort();
  const std::string_view written(out.data(), out.size() - 2);
  if (written.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) std::abort();
  const auto back = wire::parse_command(written, o);
  if (!back || *back != *r) std::abort();
  std::string again;
  if (wire::write_command(again, *back, o) != smtpwire::errc::ok || again != out) std::abort();
  return 0;
}
