// Fuzz target: an EHLO reply as LF-separated line texts (without "250-", a CR
// before each LF dropped). The first byte picks the options (bit 0:
// trailing_whitespace; bit 1: reject_malformed). Invariants: the reader fed
// line by line and parse_ehlo agree; a known capability is set only if some
// line's keyword names it; strict mode fails exactly when the lenient run
// reports something malformed; a success writes a well-formed reply that
// parses back to an equal value with clean diagnostics, and writing that
// again gives the same bytes (FUTURERELEASE without its parameters is
// refused by the writer and left out first).
#include <smtpwire/wire/ehlo.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace wire = smtpwire::wire;

void check(bool ok) {
  if (!ok) std::abort();
}

// The line texts of a reply written by write_ehlo; aborts on a malformed one.
std::vector<std::string_view> split_written(std::string_view reply) {
  std::vector<std::string_view> lines;
  while (!reply.empty()) {
    const std::size_t crlf = reply.find("\r\n");
    check(crlf != std::string_view::npos && crlf >= 4);
    const std::string_view line = reply.substr(0, crlf);
    const bool last = crlf + 2 == reply.size();
    check(line.substr(0, 3) == "250" && line[3] == (last ? ' ' : '-'));
    const std::string_view text = line.substr(4);
    check(text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
    lines.push_back(text);
    reply.remove_prefix(crlf + 2);
  }
  return lines;
}

// True when some keyword line's first token is the keyword of `c` (after
// the trailing whitespace the leniency drops).
bool announced(wire::capability c, const std::vector<std::string_view>& lines, bool trim) {
  const std::string_view kw = wire::to_string(c);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    while (trim && !l.empty() && (l.back() == ' ' || l.back() == '\t'))
      l.remove_suffix(1);
    const std::string_view token = l.substr(0, l.find(' '));
    if (smtpwire::detail::iequals(token, kw)) return true;
    if (c == wire::capability::auth && l.size() >= 5 &&
        smtpwire::detail::iequals(l.substr(0, 5), "auth="))
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  wire::ehlo_options o;
  o.trailing_whitespace = (data[0] & 1) != 0;
  o.reject_malformed = (data[0] & 2) != 0;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string_view> lines;
  while (!in.empty()) {
    const std::size_t lf = in.find('\n');
    std::string_view l = in.substr(0, lf);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lines.push_back(l);
    in = lf == std::string_view::npos ? std::string_view{} : in.substr(lf + 1);
  }

  wire::ehlo_diagnostics d;
  const auto r = wire::parse_ehlo(lines, o, &d);
  wire::ehlo_reader reader(o);
  smtpwire::errc e = smtpwire::errc::ok;
  for (auto l : lines)
    if (e == smtpwire::errc::ok) e = reader.add_line(l);
  if (!r) {
    check(lines.empty() ||
          (r.error() == smtpwire::errc::capability_syntax && e == r.error() && o.reject_malformed));
    return 0;
  }
  check(e == smtpwire::errc::ok && reader.value() == *r);
  check(reader.diagnostics().malformed == d.malformed &&
        reader.diagnostics().duplicates == d.duplicates);
  for (std::size_t i = 0; i < wire::capability_count; ++i) {
    const auto c = static_cast<wire::capability>(i);
    if (r->has(c)) check(announced(c, lines, o.trailing_whitespace));
  }
  if (!o.reject_malformed) {
    wire::ehlo_options strict = o;
    strict.reject_malformed = true;
    const bool clean_syntax = d.malformed == 0 && !d.greeting_malformed;
    check(static_cast<bool>(wire::parse_ehlo(lines, strict)) == clean_syntax);
  }

  wire::capabilities value = *r;
  if (value.domain.empty()) {
    std::string refused;
    check(wire::write_ehlo(refused, value) == smtpwire::errc::capability_value_invalid);
    check(refused.empty());
    value.domain = "x";
  }
  // FUTURERELEASE read without its mandatory parameters (RFC 4865 §3) is
  // offered but cannot be written back: the writer refuses it.
  if (value.has(wire::capability::futurerelease) && value.futurerelease_max_datetime.empty()) {
    std::string refused;
    check(value.futurerelease_max_interval == 0);
    check(wire::write_ehlo(refused, value) == smtpwire::errc::capability_value_invalid);
    check(refused.empty());
    value.set(wire::capability::futurerelease, false);
  }
  for (int legacy = 0; legacy < 2; ++legacy) {
    wire::ehlo_write_options wo;
    wo.legacy_auth_line = legacy != 0;
    std::string out;
    check(wire::write_ehlo(out, value, wo) == smtpwire::errc::ok);
    const auto written = split_written(out);
    wire::ehlo_diagnostics d2;
    const auto back = wire::parse_ehlo(written, {}, &d2);
    check(back && *back == value && d2.clean());
    std::string again;
    check(wire::write_ehlo(again, *back, wo) == smtpwire::errc::ok && again == out);
  }
  return 0;
}
