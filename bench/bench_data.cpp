// DATA and BDAT content codecs over realistic messages (bench/mime_message.hpp:
// MIME with text parts, some dot-stuffed lines, and 76-column base64
// attachments) of 4 KiB, 64 KiB and 1 MiB. Each benchmark checks its result
// against an independent encoding before timing, times memcpy of the same
// bytes between the same 4096-aligned buffers in the same binary, and
// reports its own GB/s, memcpy's, their ratio (x_memcpy) and the heap
// allocations per message made inside the timed loop (a replaced operator
// new counts them).
//
// Variants: decode = views only (what a server forwarding to the
// application by writev does); decode_copy = views copied into one output
// buffer (the memcpy-equivalent work); likewise encode / encode_copy. The
// 64 KiB and 1 MiB view runs repeat with every scanner (scalar is the
// portable fallback).
// decode_stream_1GiB streams a 1 GiB message through one 64 KiB buffer.
#include <smtpwire/wire/bdat.hpp>
#include <smtpwire/wire/data.hpp>

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>

#include "alloc_counter.hpp"
#include "mime_message.hpp"

namespace {

namespace wire = smtpwire::wire;
using smtpwire::detail::scan_kind;

// Thread CPU time: on this shared machine wall time also counts the time
// other processes hold the CPU; both a figure and its baseline use this.
struct clock_type {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<clock_type, duration>;
  static time_point now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return time_point(duration(std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec));
  }
};

// A 4096-aligned buffer: two of them are congruent modulo 4096, which keeps
// glibc memcpy off its (dst - src) % 4096 == 16 slow path (see NOTES).
struct aligned {
  char* p = nullptr;
  std::size_t n = 0;
  explicit aligned(std::size_t size) : n(size) {
    p = static_cast<char*>(std::aligned_alloc(4096, (size + 4096) / 4096 * 4096));
  }
  aligned(const aligned&) = delete;
  aligned& operator=(const aligned&) = delete;
  ~aligned() { std::free(p); }
  std::string_view view() const { return {p, n}; }
};

struct corpus {
  std::string content_s, wire_s;
  aligned content, wire, out;
  explicit corpus(std::size_t size)
      : content_s(smtpwire::bench::mime_message(size)),
        wire_s(smtpwire::bench::dot_stuffed(content_s)),
        content(content_s.size()),
        wire(wire_s.size()),
        out(wire_s.size() + content_s.size() / 8 + 64) {
    std::memcpy(content.p, content_s.data(), content.n);
    std::memcpy(wire.p, wire_s.data(), wire.n);
  }
};

const corpus& get(std::size_t size) {
  static std::map<std::size_t, corpus> cache;
  auto it = cache.find(size);
  if (it == cache.end()) it = cache.emplace(size, size).first;
  return it->second;
}

constexpr std::size_t sizes[] = {4u << 10, 64u << 10, 1u << 20};

// memcpy GB/s of n bytes from src to dst: best of 5 runs of >= 5 ms CPU time each.
double memcpy_gbps(const char* src, char* dst, std::size_t n) {
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    std::size_t reps = 0;
    const auto t0 = clock_type::now();
    auto t1 = t0;
    // Enough copies between clock reads that reading the clock costs nothing.
    const std::size_t batch = std::max<std::size_t>(16, (std::size_t{8} << 20) / n);
    do {
      for (std::size_t k = 0; k < batch; ++k) {
        std::memcpy(dst, src, n);
        benchmark::ClobberMemory();
      }
      reps += batch;
      t1 = clock_type::now();
    } while (t1 - t0 < std::chrono::milliseconds(5));
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    best = std::max(best, static_cast<double>(reps * n) / secs / 1e9);
  }
  return best;
}

template <bool Copy>
std::size_t decode_once(wire::data_decoder& dec, std::string_view in, char* out) {
  dec.reset();
  std::size_t total = 0;
  for (;;) {
    const wire::data_result r = dec.decode(in);
    in.remove_prefix(r.consumed);
    if (r.status == wire::data_status::content) {
      if (Copy) std::memcpy(out + total, r.content.data(), r.content.size());
      benchmark::DoNotOptimize(r.content.data());
      total += r.content.size();
    } else if (r.status == wire::data_status::end) {
      return total;
    } else {
      return ~std::size_t{0};
    }
  }
}

template <bool Copy>
std::size_t encode_once(wire::data_encoder& enc, std::string_view in, char* out) {
  enc.reset();
  std::size_t total = 0;
  auto put = [&](std::string_view v) {
    if (Copy) std::memcpy(out + total, v.data(), v.size());
    benchmark::DoNotOptimize(v.data());
    total += v.size();
  };
  while (!in.empty()) {
    const wire::encode_result r = enc.encode(in);
    in.remove_prefix(r.consumed);
    if (r.status == wire::encode_status::output) put(r.output);
    if (r.status == wire::encode_status::error) return ~std::size_t{0};
  }
  for (;;) {
    const wire::encode_result r = enc.finish();
    if (r.status != wire::encode_status::output) break;
    put(r.output);
  }
  return total;
}

void report(benchmark::State& st, std::size_t bytes, double secs, double base_gbps,
            std::size_t allocs) {
  const double iters = static_cast<double>(st.iterations());
  const double gbps = bytes * iters / secs / 1e9;
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) *
                       static_cast<std::int64_t>(bytes));
  st.counters["GB/s"] = gbps;
  st.counters["memcpy_GB/s"] = base_gbps;
  st.counters["x_memcpy"] = gbps / base_gbps;
  st.counters["allocs/msg"] = static_cast<double>(allocs) / iters;
}

// range(0): size index; range(1): scan_kind; range(2): copy the views.
void bm_decode(benchmark::State& st) {
  const corpus& c = get(sizes[st.range(0)]);
  const auto kind = static_cast<scan_kind>(st.range(1));
  if (!smtpwire::detail::scan_kind_available(kind)) {
    st.SkipWithError("scanner not available on this CPU");
    return;
  }
  const bool copy = st.range(2) != 0;
  wire::data_options opt;
  opt.scan = kind;
  wire::data_decoder dec(opt);
  const std::size_t n = decode_once<true>(dec, c.wire.view(), c.out.p);
  if (n != c.content.n || std::memcmp(c.out.p, c.content.p, n) != 0 ||
      dec.error() != smtpwire::errc::ok) {
    st.SkipWithError("decoded content differs from the message");
    return;
  }
  const double base = memcpy_gbps(c.wire.p, c.out.p, c.wire.n);
  const std::size_t a0 = smtpwire::bench::alloc_count();
  const auto t0 = clock_type::now();
  for (auto _ : st) {
    const std::size_t got = copy ? decode_once<true>(dec, c.wire.view(), c.out.p)
                                 : decode_once<false>(dec, c.wire.view(), c.out.p);
    benchmark::DoNotOptimize(got);
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  report(st, c.wire.n, secs, base, smtpwire::bench::alloc_count() - a0);
  st.SetLabel(std::string(smtpwire::detail::to_string(dec.scan())) + (copy ? " copy" : " views"));
}

void bm_encode(benchmark::State& st) {
  const corpus& c = get(sizes[st.range(0)]);
  const auto kind = static_cast<scan_kind>(st.range(1));
  if (!smtpwire::detail::scan_kind_available(kind)) {
    st.SkipWithError("scanner not available on this CPU");
    return;
  }
  const bool copy = st.range(2) != 0;
  wire::data_encoder_options opt;
  opt.scan = kind;
  wire::data_encoder enc(opt);
  const std::size_t n = encode_once<true>(enc, c.content.view(), c.out.p);
  if (n != c.wire.n || std::memcmp(c.out.p, c.wire.p, n) != 0) {
    st.SkipWithError("encoded wire differs from the independent dot-stuffing");
    return;
  }
  const double base = memcpy_gbps(c.content.p, c.out.p, c.content.n);
  const std::size_t a0 = smtpwire::bench::alloc_count();
  const auto t0 = clock_type::now();
  for (auto _ : st) {
    const std::size_t got = copy ? encode_once<true>(enc, c.content.view(), c.out.p)
                                 : encode_once<false>(enc, c.content.view(), c.out.p);
    benchmark::DoNotOptimize(got);
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  report(st, c.content.n, secs, base, smtpwire::bench::alloc_count() - a0);
  st.SetLabel(std::string(smtpwire::detail::to_string(enc.scan())) + (copy ? " copy" : " views"));
}

// BDAT: the reader hands out views of whole chunks; baseline as above.
void bm_bdat_read(benchmark::State& st) {
  const corpus& c = get(sizes[st.range(0)]);
  const std::size_t chunk = 64u << 10;
  wire::bdat_reader reader;
  const double base = memcpy_gbps(c.content.p, c.out.p, c.content.n);
  auto once = [&]() {
    reader.reset();
    std::string_view in = c.content.view();
    std::size_t total = 0;
    while (!reader.complete()) {
      const std::size_t n = std::min(chunk, in.size());
      if (reader.begin_chunk(n, n == in.size()) != smtpwire::errc::ok) return ~std::size_t{0};
      for (;;) {
        const wire::bdat_result r = reader.read(in);
        in.remove_prefix(r.consumed);
        if (r.status == wire::bdat_status::content) {
          std::memcpy(c.out.p + total, r.content.data(), r.content.size());
          total += r.content.size();
        } else {
          break;
        }
      }
    }
    return total;
  };
  if (once() != c.content.n) {
    st.SkipWithError("BDAT framing lost octets");
    return;
  }
  const std::size_t a0 = smtpwire::bench::alloc_count();
  const auto t0 = clock_type::now();
  for (auto _ : st)
    benchmark::DoNotOptimize(once());
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  report(st, c.content.n, secs, base, smtpwire::bench::alloc_count() - a0);
}

// A 1 GiB message through one fixed 64 KiB buffer: memory stays at the
// buffer plus the decoder (a few words), whatever the message size.
void bm_decode_stream_1gib(benchmark::State& st) {
  const corpus& c = get(64u << 10);
  const std::string_view block(c.wire.p, c.wire.n - 3);  // without ".\r\n"
  const std::size_t repeats = (std::size_t{1} << 30) / block.size();
  rusage ru0{};
  getrusage(RUSAGE_SELF, &ru0);
  const std::size_t a0 = smtpwire::bench::alloc_count();
  std::uint64_t content = 0;
  const auto t0 = clock_type::now();
  wire::data_options opt;
  opt.max_message_size = ~std::uint64_t{0};
  for (auto _ : st) {
    wire::data_decoder dec(opt);
    content = 0;
    for (std::size_t k = 0; k < repeats; ++k) {
      std::string_view in = block;
      while (!in.empty()) {
        const wire::data_result r = dec.decode(in);
        in.remove_prefix(r.consumed);
        content += r.content.size();
      }
    }
    std::string_view tail = ".\r\n";
    while (!dec.done())
      tail.remove_prefix(dec.decode(tail).consumed);
    benchmark::DoNotOptimize(content);
  }
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  rusage ru1{};
  getrusage(RUSAGE_SELF, &ru1);
  if (content != repeats * c.content.n) st.SkipWithError("content lost");
  const double base = memcpy_gbps(c.wire.p, c.out.p, c.wire.n);
  report(st, repeats * block.size(), secs, base, smtpwire::bench::alloc_count() - a0);
  st.counters["maxrss_growth_KiB"] = static_cast<double>(ru1.ru_maxrss - ru0.ru_maxrss);
}

void size_args(benchmark::internal::Benchmark* b) {
  const auto best = static_cast<std::int64_t>(scan_kind::automatic);
  for (std::int64_t copy : {0, 1})
    for (std::int64_t s : {0, 1, 2})
      b->Args({s, best, copy});
  for (scan_kind k :
       {scan_kind::scalar, scan_kind::swar, scan_kind::sse2, scan_kind::avx2, scan_kind::avx512})
    for (std::int64_t size : {1, 2})
      b->Args({size, static_cast<std::int64_t>(k), 0});
  b->ArgNames({"size", "scan", "copy"});
}

}  // namespace

BENCHMARK(bm_decode)->Apply(size_args);
BENCHMARK(bm_encode)->Apply(size_args);
BENCHMARK(bm_bdat_read)->Arg(0)->Arg(1)->Arg(2)->ArgName("size");
BENCHMARK(bm_decode_stream_1gib)->Iterations(1)->Unit(benchmark::kMillisecond);
