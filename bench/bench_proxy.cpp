// PROXY header reading, per connection: one proxy_reader per header (as a
// server has one per connection), fed a v1 TCP6 line, a v2 TCP4 header, and
// a v2 TCP6 header with ALPN, AUTHORITY, SSL sub-TLVs and a CRC32C (HAProxy's
// send-proxy-v2-ssl-cn with proxy-v2-options crc32c). Baseline: memchr for
// the v1 line's LF plus a copy of the header's octets (the least any reader
// that keeps the header must do), so the ratio is what to read.
#include <smtpwire/wire/proxy.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using namespace smtpwire::wire;

std::string v1_header() {
  return "PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::25 51234 25\r\n";
}

std::string v2_header(bool tlvs) {
  proxy_header h;
  h.transport = proxy_transport::stream;
  std::uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  std::uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x25};
  if (tlvs) {
    h.family = proxy_family::inet6;
    h.source = proxy_address::ipv6(a, 51234);
    h.destination = proxy_address::ipv6(b, 25);
    h.alpn = "smtp";
    h.authority = "mx.example.org";
    h.ssl.present = true;
    h.ssl.client = 7;
    h.ssl.verify = 0;
    h.ssl.version = "TLSv1.3";
    h.ssl.cn = "client.example.org";
    h.ssl.cipher = "TLS_AES_256_GCM_SHA384";
  } else {
    h.family = proxy_family::inet;
    h.source = proxy_address::ipv4(a + 12, 51234);
    h.destination = proxy_address::ipv4(b + 12, 25);
  }
  std::string out;
  if (write_proxy_v2(out, h, tlvs) != smtpwire::errc::ok) std::abort();
  return out;
}

void bm_baseline_memchr_copy(benchmark::State& st) {
  const std::string in = v1_header();
  char copy[128];
  for (auto _ : st) {
    const void* lf = std::memchr(in.data(), '\n', in.size());
    benchmark::DoNotOptimize(lf);
    std::memcpy(copy, in.data(), in.size());
    benchmark::DoNotOptimize(copy);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * in.size()));
}

void read_one(benchmark::State& st, const std::string& in) {
  proxy_reader reader;
  for (auto _ : st) {
    reader.reset();
    const proxy_result r = reader.read(in);
    if (r.status != proxy_status::header) std::abort();
    benchmark::DoNotOptimize(reader.header().source.port());
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * in.size()));
}

void bm_read_v1_tcp6(benchmark::State& st) {
  read_one(st, v1_header());
}
void bm_read_v2_tcp4(benchmark::State& st) {
  read_one(st, v2_header(false));
}
void bm_read_v2_tcp6_tlvs_crc(benchmark::State& st) {
  read_one(st, v2_header(true));
}

}  // namespace

BENCHMARK(bm_baseline_memchr_copy);
BENCHMARK(bm_read_v1_tcp6);
BENCHMARK(bm_read_v2_tcp4);
BENCHMARK(bm_read_v2_tcp6_tlvs_crc);
