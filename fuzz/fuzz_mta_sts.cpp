// Fuzz target: the MTA-STS TXT record and policy parsers (RFC 8461). The
// first byte picks the parser (bit 0: record) and, for policies, a size limit
// (bit 1 set: max_size = (byte >> 2) * 4). Invariants: a size limit changes
// nothing but errc::mta_sts_policy_too_large; an accepted policy has valid
// patterns, is written back by write_policy and reads back equal, reads the
// same with its CRLFs turned into LFs, and each pattern matches a host built
// from it (in any case, with a root dot) but never its bare parent; an
// accepted record's id is 1-32 alphanumerics inside the input.
#include <smtpwire/mta_sts.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

namespace sts = smtpwire::mta_sts;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

void check_record(std::string_view txt) {
  const auto r = sts::parse_record(txt);
  if (!r) {
    check(r.error() == smtpwire::errc::mta_sts_record_invalid);
    return;
  }
  check(!r->id.empty() && r->id.size() <= 32);
  check(r->id.data() >= txt.data() && r->id.data() + r->id.size() <= txt.data() + txt.size());
  for (char c : r->id)
    check((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  check(txt.substr(0, 7) == "v=STSv1");
  if (txt.size() > 7 && txt[7] == ';') check(sts::is_sts_record(txt));
}

void check_policy(std::string_view body, std::uint8_t flags) {
  const auto r = sts::parse_policy(body);
  if (flags & 2) {
    sts::policy_options o;
    o.max_size = static_cast<std::size_t>(flags >> 2) * 4;
    const auto limited = sts::parse_policy(body, o);
    if (body.size() > o.max_size)
      check(limited.error() == smtpwire::errc::mta_sts_policy_too_large);
    else
      check(limited.error() == r.error() && (!r || *limited == *r));
  }
  if (!r) {
    check(r.error() != smtpwire::errc::ok);
    return;
  }
  check(r->max_age <= sts::max_age_limit);
  check(r->policy_mode == sts::mode::none || !r->mx.empty());

  std::string written;
  check(sts::write_policy(written, *r) == smtpwire::errc::ok);
  const auto back = sts::parse_policy(written);
  check(back && *back == *r);
  std::string again;
  check(sts::write_policy(again, *back) == smtpwire::errc::ok && again == written);

  std::string lf;
  for (std::size_t i = 0; i < body.size(); ++i)
    if (!(body[i] == '\r' && i + 1 < body.size() && body[i + 1] == '\n')) lf += body[i];
  const auto lf_r = sts::parse_policy(lf);
  check(lf_r && *lf_r == *r);

  for (const auto& m : r->mx) {
    check(sts::is_mx_pattern(m));
    const bool wildcard = m[0] == '*';
    const std::string_view base = wildcard ? std::string_view(m).substr(2) : std::string_view(m);
    const std::string host = wildcard ? "x." + std::string(base) : m;
    if (host.size() <= 253) {
      check(sts::matches(m, host));
      check(sts::matches(m, upper(host) + "."));
      check(sts::decide(*r, host).mx_matches);
    }
    check(!sts::matches(m, "x.y." + std::string(base)) || !wildcard);
    if (wildcard) check(!sts::matches(m, base));
    const auto d = sts::decide(*r, host);
    check(d.require_tls == (r->policy_mode == sts::mode::enforce && d.mx_matches));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1)
    check_record(in);
  else
    check_policy(in, data[0]);
  return 0;
}
