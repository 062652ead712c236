// Reply parsing speed against a memchr baseline over the same bytes.
//
// Inputs (~64 KiB each, repeated whole replies): a real 10-line EHLO reply,
// "250 2.1.0 Ok", and "354 End data with <CR><LF>.<CR><LF>". For each:
//   BM_memchr_lf      memchr for every LF (the floor any line parser pays),
//   BM_line_reader    wire::line_reader over the bytes (framing only),
//   BM_reply_reader   wire::reply_reader: one reply_view per reply,
//   BM_reply_lines    reply_reader plus iterating every line (text and
//                     enhanced code), which is what a client does.
// Results are checked (reply and line counts) before anything is timed.
// ns_per_reply is an inverted rate, which Google Benchmark prints with an "s"
// suffix: the number is nanoseconds per reply.
// Read the ratio BM_reply_* / BM_memchr_lf (bytes_per_second) of one run.
#include <smtpwire/wire/reply.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace {

using namespace smtpwire::wire;

const char* const kEhlo =
    "250-mx.example.com Hello client.example.org [192.0.2.1]\r\n"
    "250-SIZE 52428800\r\n"
    "250-8BITMIME\r\n"
    "250-PIPELINING\r\n"
    "250-STARTTLS\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250-CHUNKING\r\n"
    "250 HELP\r\n";
const char* const kOk = "250 2.1.0 Ok\r\n";
const char* const kData = "354 End data with <CR><LF>.<CR><LF>\r\n";

struct aligned_free {
  void operator()(char* p) const { std::free(p); }
};

// The reply repeated to about 64 KiB, in a 64-octet-aligned block (glibc's
// memcpy/memchr are sensitive to alignment; see NOTES.md).
struct input {
  std::unique_ptr<char, aligned_free> mem;
  std::string_view bytes;
  std::size_t replies = 0;
  std::size_t lines = 0;
};

input make_input(const char* reply) {
  const std::string one(reply);
  std::string all;
  input in;
  while (all.size() + one.size() <= 64 * 1024) {
    all += one;
    ++in.replies;
  }
  for (char c : all)
    in.lines += c == '\n';
  in.mem.reset(static_cast<char*>(std::aligned_alloc(64, (all.size() + 63) / 64 * 64)));
  std::memcpy(in.mem.get(), all.data(), all.size());
  in.bytes = std::string_view(in.mem.get(), all.size());
  return in;
}

const input& get(int which) {
  static const input inputs[] = {make_input(kEhlo), make_input(kOk), make_input(kData)};
  return inputs[which];
}

std::size_t count_lf(std::string_view b) {
  std::size_t n = 0;
  const char* p = b.data();
  const char* end = p + b.size();
  while (const void* hit = std::memchr(p, '\n', static_cast<std::size_t>(end - p))) {
    ++n;
    p = static_cast<const char*>(hit) + 1;
  }
  return n;
}

std::size_t count_lines(line_reader& r, std::string_view b) {
  std::size_t n = 0;
  while (!b.empty()) {
    const line_result res = r.read(b);
    b.remove_prefix(res.consumed);
    if (res.status != line_status::line) std::abort();
    ++n;
  }
  return n;
}

std::size_t count_replies(reply_reader& r, std::string_view b, bool iterate,
                          std::size_t* lines = nullptr) {
  std::size_t n = 0, l = 0;
  while (!b.empty()) {
    const reply_result res = r.read(b);
    b.remove_prefix(res.consumed);
    if (res.status != reply_status::reply) std::abort();
    ++n;
    if (iterate)
      for (const reply_line& line : res.reply) {
        benchmark::DoNotOptimize(line.text.data());
        benchmark::DoNotOptimize(line.enhanced);
        ++l;
      }
  }
  if (lines != nullptr) *lines = l;
  return n;
}

void set_counters(benchmark::State& state, const input& in) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.bytes.size()));
  state.counters["ns_per_reply"] = benchmark::Counter(
      static_cast<double>(in.replies) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_memchr_lf(benchmark::State& state) {
  const input& in = get(static_cast<int>(state.range(0)));
  if (count_lf(in.bytes) != in.lines) std::abort();
  for (auto _ : state)
    benchmark::DoNotOptimize(count_lf(in.bytes));
  set_counters(state, in);
}

void BM_line_reader(benchmark::State& state) {
  const input& in = get(static_cast<int>(state.range(0)));
  line_reader r(line_options{2048, true});
  if (count_lines(r, in.bytes) != in.lines) std::abort();
  for (auto _ : state)
    benchmark::DoNotOptimize(count_lines(r, in.bytes));
  set_counters(state, in);
}

void BM_reply_reader(benchmark::State& state) {
  const input& in = get(static_cast<int>(state.range(0)));
  reply_reader r;
  if (count_replies(r, in.bytes, false) != in.replies) std::abort();
  for (auto _ : state)
    benchmark::DoNotOptimize(count_replies(r, in.bytes, false));
  set_counters(state, in);
}

void BM_reply_lines(benchmark::State& state) {
  const input& in = get(static_cast<int>(state.range(0)));
  reply_reader r;
  std::size_t lines = 0;
  if (count_replies(r, in.bytes, true, &lines) != in.replies || lines != in.lines) std::abort();
  for (auto _ : state)
    benchmark::DoNotOptimize(count_replies(r, in.bytes, true));
  set_counters(state, in);
}

// Arg: 0 = 10-line EHLO reply, 1 = "250 2.1.0 Ok", 2 = "354 End data ...".
BENCHMARK(BM_memchr_lf)->ArgName("reply")->Arg(0)->Arg(1)->Arg(2);
BENCHMARK(BM_line_reader)->ArgName("reply")->Arg(0)->Arg(1)->Arg(2);
BENCHMARK(BM_reply_reader)->ArgName("reply")->Arg(0)->Arg(1)->Arg(2);
BENCHMARK(BM_reply_lines)->ArgName("reply")->Arg(0)->Arg(1)->Arg(2);

}  // namespace
