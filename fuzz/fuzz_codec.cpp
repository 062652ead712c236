// Fuzz target: any bytes through the xtext (RFC 3461) and base64 (RFC 4648)
// codecs. Invariants, for both: validation agrees with decoding; a failed
// decode appends nothing; decoded input re-encodes to a valid text that
// decodes to the same octets (for base64, to the input itself: the strict
// decoder only accepts canonical text); encoding arbitrary bytes decodes back
// to them; the buffer and std::string interfaces agree.
#include <smtpwire/wire/base64.hpp>
#include <smtpwire/wire/xtext.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {
namespace wire = smtpwire::wire;
using smtpwire::errc;

void check_xtext(std::string_view in) {
  std::string dec = "p";
  const errc e = wire::xtext_decode(dec, in);
  if ((e == errc::ok) != wire::is_xtext(in)) std::abort();
  std::vector<char> buf(in.size());
  const auto r = wire::xtext_decode(buf.data(), buf.size(), in);
  if (e != errc::ok) {
    if (dec != "p" || r.error() != e) std::abort();
  } else {
    const std::string_view d = std::string_view(dec).substr(1);
    if (!r || std::string_view(buf.data(), *r) != d) std::abort();
    if (d.size() != wire::xtext_decoded_size(in)) std::abort();
    std::string enc;
    wire::xtext_encode(enc, d);
    std::string back;
    if (!wire::is_xtext(enc) || enc.size() > in.size() ||
        wire::xtext_decode(back, enc) != errc::ok || back != d)
      std::abort();
  }
  std::string enc;
  wire::xtext_encode(enc, in);
  std::string back;
  if (enc.size() != wire::xtext_encoded_size(in) || wire::xtext_decode(back, enc) != errc::ok ||
      back != in)
    std::abort();
}

void check_base64(std::string_view in) {
  std::string dec = "p";
  const errc e = wire::base64_decode(dec, in);
  if (e != wire::validate_base64(in)) std::abort();
  std::vector<char> buf(in.size());
  const auto r = wire::base64_decode(buf.data(), buf.size(), in);
  if (e != errc::ok) {
    if (dec != "p" || r.error() != e) std::abort();
  } else {
    const std::string_view d = std::string_view(dec).substr(1);
    if (!r || std::string_view(buf.data(), *r) != d) std::abort();
    std::string enc;
    wire::base64_encode(enc, d);
    if (enc != in) std::abort();
  }
  std::string enc;
  wire::base64_encode(enc, in);
  std::string back;
  if (enc.size() != wire::base64_encoded_size(in.size()) ||
      wire::base64_decode(back, enc) != errc::ok || back != in)
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_xtext(in);
  check_base64(in);
  return 0;
}
