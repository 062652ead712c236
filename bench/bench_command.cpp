// Command parsing over a realistic mix (EHLO, MAIL FROM with SIZE and BODY,
// five RCPTs, DATA, QUIT) repeated over ~64 KiB of CRLF lines: split the
// lines with memchr, parse each. Baseline: memchr for every LF over the same
// bytes, so the ratio of the two is what to read.
#include <smtpwire/wire/command.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

// 4096-aligned copy of the input (see NOTES: misaligned buffers skew memchr).
struct buffer {
  char* data = nullptr;
  std::size_t size = 0;
  std::size_t commands = 0;
  buffer() {
    static const char* const session[] = {
        "EHLO client.example.org\r\n",
        "MAIL FROM:<alice.sender@example.org> SIZE=24576 BODY=8BITMIME\r\n",
        "RCPT TO:<bob@example.net>\r\n",
        "RCPT TO:<carol.smith@mail.example.com>\r\n",
        "RCPT TO:<dave+lists@example.net>\r\n",
        "RCPT TO:<\"eve q\"@example.org>\r\n",
        "RCPT TO:<frank@[192.0.2.17]>\r\n",
        "DATA\r\n",
        "QUIT\r\n",
    };
    std::string s;
    while (s.size() < 64 * 1024)
      for (const char* line : session) {
        s += line;
        ++commands;
      }
    size = s.size();
    data = static_cast<char*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096));
    std::memcpy(data, s.data(), size);
  }
  ~buffer() { std::free(data); }
};

const buffer& input() {
  static const buffer b;
  return b;
}

// Parses every line; returns the number parsed successfully.
std::size_t parse_all(const buffer& b) {
  std::size_t ok = 0;
  const char* p = b.data;
  const char* end = b.data + b.size;
  while (p < end) {
    const char* lf =
        static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const auto line = std::string_view(p, static_cast<std::size_t>(lf - p - 1));  // minus CR
    const auto r = smtpwire::wire::parse_command(line);
    ok += r.has_value();
    benchmark::DoNotOptimize(r);
    p = lf + 1;
  }
  return ok;
}

void bm_parse_commands(benchmark::State& state) {
  const buffer& b = input();
  if (parse_all(b) != b.commands) {
    state.SkipWithError("a command of the mix failed to parse");
    return;
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(parse_all(b));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * b.size));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * b.commands));
  state.counters["ns/command"] =
      benchmark::Counter(static_cast<double>(state.iterations() * b.commands),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void bm_baseline_memchr_lf(benchmark::State& state) {
  const buffer& b = input();
  for (auto _ : state) {
    std::size_t lines = 0;
    const char* p = b.data;
    const char* end = b.data + b.size;
    while (p < end) {
      const char* lf =
          static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
      ++lines;
      p = lf + 1;
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * b.size));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * b.commands));
  state.counters["ns/command"] =
      benchmark::Counter(static_cast<double>(state.iterations() * b.commands),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK(bm_baseline_memchr_lf);
BENCHMARK(bm_parse_commands);
