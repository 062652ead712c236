// Fuzz target for wire/proxy.hpp. Input: byte 0 picks the options (bit 0
// off = required, bit 1 = v1 refused, bit 2 = v2 refused, bits 3-7 =
// max_tlv_length / 4, 0 = the default 1024), byte 1 seeds the chunking, the
// rest is the start of a connection. Invariants (abort on violation): the
// outcome, the header and the boundary are the same whole, one octet at a
// time and in seeded random chunks; no call consumes past its input; the
// header is no longer than its limits; a header written back with
// write_proxy_v1/v2 reads back to the same fields.
#include <smtpwire/wire/proxy.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using smtpwire::errc;
using namespace smtpwire::wire;

void check(bool ok) {
  if (!ok) std::abort();
}

// The fields the writers carry (unknown TLVs and NOOP are not rewritten).
std::string fields(const proxy_header& h) {
  std::string s;
  s += static_cast<char>('0' + static_cast<int>(h.version));
  s += static_cast<char>('0' + static_cast<int>(h.command));
  s += static_cast<char>('0' + static_cast<int>(h.family));
  s += static_cast<char>('0' + static_cast<int>(h.transport));
  for (const proxy_address* a : {&h.source, &h.destination}) {
    s.append(reinterpret_cast<const char*>(a->data()), a->size());
    s += std::to_string(a->port()) + "|" + std::string(a->literal()) + "|";
  }
  for (std::string_view v :
       {h.source_path, h.destination_path, h.alpn, h.authority, h.unique_id, h.netns, h.ssl.version,
        h.ssl.cn, h.ssl.cipher, h.ssl.sig_alg, h.ssl.key_alg})
    s += std::to_string(v.size()) + ":" + std::string(v);
  if (h.ssl.present) s += "ssl" + std::to_string(h.ssl.client) + "/" + std::to_string(h.ssl.verify);
  if (h.crc32c) s += "crc";
  return s;
}

struct outcome {
  std::string log;
  proxy_header header;
  bool has_header = false;
};

outcome run(std::string_view in, const std::vector<std::size_t>& sizes, const proxy_options& opt,
            proxy_reader& reader) {
  outcome o;
  std::size_t total = 0, k = 0;
  while (!in.empty()) {
    const std::size_t n = sizes.empty() ? in.size() : sizes[k++ % sizes.size()];
    const std::string_view chunk = in.substr(0, n);
    in.remove_prefix(chunk.size());
    const proxy_result r = reader.read(chunk);
    check(r.consumed <= chunk.size());
    total += r.consumed;
    if (r.status == proxy_status::need_more) {
      check(r.consumed == chunk.size());
      continue;
    }
    if (r.status == proxy_status::error) {
      check(r.error != errc::ok);
      o.log = "E" + std::string(smtpwire::to_string(r.error));
      return o;
    }
    check(r.error == errc::ok);
    if (r.status == proxy_status::absent) {
      check(!opt.required && r.replay.size() < 12);
      o.log = "A" + std::to_string(total - r.replay.size()) + std::string(r.replay);
      return o;
    }
    const proxy_header& h = reader.header();
    check(h.version == proxy_version::v1 ? total <= proxy_reader::v1_max
                                         : total <= 16 + 216 + reader.options().max_tlv_length);
    check(h.version == proxy_version::v1 ? opt.accept_v1 : opt.accept_v2);
    o.log = "H" + std::to_string(total) + fields(h);
    o.header = h;
    o.has_header = true;
    return o;
  }
  const proxy_result r = reader.finish();
  o.log = r.status == proxy_status::error
              ? "EOF" + std::string(smtpwire::to_string(r.error))
              : "EOFA" + std::to_string(total - r.replay.size()) + std::string(r.replay);
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  proxy_options opt;
  opt.required = (data[0] & 1) == 0;
  opt.accept_v1 = (data[0] & 2) == 0;
  opt.accept_v2 = (data[0] & 4) == 0;
  opt.max_tlv_length = (data[0] >> 3) == 0 ? 1024 : static_cast<std::size_t>(data[0] >> 3) * 4;
  std::uint32_t seed = data[1] * 2654435761u + 1;
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);

  std::vector<std::size_t> random_sizes;
  for (std::size_t total = 0; total < in.size();) {
    seed = seed * 1103515245u + 12345u;
    const std::size_t n = 1 + (seed >> 16) % 37;
    random_sizes.push_back(n);
    total += n;
  }
  proxy_reader whole_reader(opt), one_reader(opt), random_reader(opt);
  const outcome whole = run(in, {}, opt, whole_reader);
  check(run(in, {1}, opt, one_reader).log == whole.log);
  check(run(in, random_sizes, opt, random_reader).log == whole.log);

  if (whole.has_header) {
    // The load balancer's side: write the header back and read it again.
    const proxy_header& h = whole.header;
    std::string wire;
    const errc e = h.version == proxy_version::v1 ? write_proxy_v1(wire, h)
                                                  : write_proxy_v2(wire, h, h.crc32c);
    check(e == errc::ok);
    proxy_options again = opt;
    again.required = true;
    proxy_reader back(again);
    const proxy_result r = back.read(wire);
    check(r.status == proxy_status::header && r.consumed == wire.size());
    check(fields(back.header()) == fields(h));
  }
  return 0;
}
