// Codec throughput on 64 KiB: base64 decode and encode (AUTH payloads, the
// content layer), xtext decode and encode (ENVID/ORCPT/AUTH values), and
// parse_mail_params on a typical MAIL parameter text. Baseline: memcpy of the
// same bytes between the same 4096-aligned buffers, so read the ratio.
#include <smtpwire/wire/base64.hpp>
#include <smtpwire/wire/params.hpp>
#include <smtpwire/wire/xtext.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

namespace {
namespace wire = smtpwire::wire;

constexpr std::size_t raw_size = 64 * 1024;

// 4096-aligned buffers (see NOTES: glibc memcpy slows down on some offsets).
struct aligned {
  char* data = nullptr;
  std::size_t size = 0;
  explicit aligned(std::string_view s) : size(s.size()) {
    data = static_cast<char*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096 + 4096));
    std::memcpy(data, s.data(), size);
  }
  aligned(const aligned&) = delete;
  aligned& operator=(const aligned&) = delete;
  ~aligned() { std::free(data); }
  std::string_view view() const { return {data, size}; }
};

struct inputs {
  std::string raw;   // random octets
  std::string text;  // printable ASCII, mostly xchars (typical xtext payload)
  std::string b64;   // base64 of raw
  std::string xt;    // xtext of text
  inputs() {
    std::mt19937 rng(42);
    raw.resize(raw_size);
    for (auto& c : raw)
      c = static_cast<char>(rng());
    text.resize(raw_size);
    for (auto& c : text)
      c = static_cast<char>(32 + rng() % 95);  // ~3% need escaping
    wire::base64_encode(b64, raw);
    wire::xtext_encode(xt, text);
  }
};

const inputs& in() {
  static const inputs i;
  return i;
}

void bm_memcpy_baseline(benchmark::State& state) {
  const aligned src(in().b64);
  aligned dst(in().b64);
  for (auto _ : state) {
    std::memcpy(dst.data, src.data, src.size);
    benchmark::DoNotOptimize(dst.data);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * src.size));
}
BENCHMARK(bm_memcpy_baseline);

void bm_base64_decode(benchmark::State& state) {
  const aligned src(in().b64);
  aligned dst(in().raw);
  auto check = wire::base64_decode(dst.data, dst.size, src.view());
  if (!check || *check != in().raw.size() || std::memcmp(dst.data, in().raw.data(), *check) != 0) {
    state.SkipWithError("base64 decode mismatch");
    return;
  }
  for (auto _ : state) {
    auto r = wire::base64_decode(dst.data, dst.size, src.view());
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  // Bytes of encoded input consumed.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * src.size));
}
BENCHMARK(bm_base64_decode);

void bm_base64_encode(benchmark::State& state) {
  const aligned src(in().raw);
  aligned dst(in().b64);
  std::memset(dst.data, 0, dst.size);
  wire::base64_encode(dst.data, src.view());
  if (dst.view() != in().b64) {
    state.SkipWithError("base64 encode mismatch");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(wire::base64_encode(dst.data, src.view()));
    benchmark::ClobberMemory();
  }
  // Bytes of encoded output produced, comparable with the decode figure.
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * dst.size));
}
BENCHMARK(bm_base64_encode);

void bm_base64_validate(benchmark::State& state) {
  const aligned src(in().b64);
  if (!wire::is_base64(src.view())) {
    state.SkipWithError("base64 validate mismatch");
    return;
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(wire::validate_base64(src.view()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * src.size));
}
BENCHMARK(bm_base64_validate);

void bm_xtext_decode(benchmark::State& state) {
  const aligned src(in().xt);
  aligned dst(in().xt);  // room for in.size(): the single-pass path
  auto check = wire::xtext_decode(dst.data, dst.size, src.view());
  if (!check || std::string_view(dst.data, *check) != in().text) {
    state.SkipWithError("xtext decode mismatch");
    return;
  }
  for (auto _ : state) {
    auto r = wire::xtext_decode(dst.data, dst.size, src.view());
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * src.size));
}
BENCHMARK(bm_xtext_decode);

void bm_xtext_encode(benchmark::State& state) {
  std::string out;
  out.reserve(in().xt.size());
  wire::xtext_encode(out, in().text);
  if (out != in().xt) {
    state.SkipWithError("xtext encode mismatch");
    return;
  }
  for (auto _ : state) {
    out.clear();
    wire::xtext_encode(out, in().text);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in().xt.size()));
}
BENCHMARK(bm_xtext_encode);

void bm_parse_mail_params(benchmark::State& state) {
  static constexpr std::string_view params =
      "SIZE=24576 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=e+3Dmc2@example.com "
      "REQUIRETLS";
  const auto check = wire::parse_mail_params(params);
  if (!check || check->size != 24576u || !check->requiretls) {
    state.SkipWithError("params parse mismatch");
    return;
  }
  for (auto _ : state) {
    auto r = wire::parse_mail_params(params);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * params.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(bm_parse_mail_params);

}  // namespace
