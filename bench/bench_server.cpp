// The server engine over canned client bytes: a full session (connect,
// EHLO, MAIL, 5 RCPT, DATA with a 4 KiB message, QUIT) per iteration, and
// transactions (MAIL, 5 RCPT, DATA 4 KiB) repeated inside one long session.
// Every reply is decided at once with accept(). Reported: sessions or
// transactions per second (items), the bytes fed (SetBytesProcessed), heap
// allocations per item inside the timed loop, and the same bytes memcpy'd
// in the same binary as the baseline (x_memcpy = our time / memcpy time).
// BM_idle_session reports the memory of an idle session (greeted, EHLO
// answered): sizeof(server) plus the heap buffers it holds
// (server::memory_reserved), and the allocations that took;
// BM_session_after_transactions the same after pipelined transactions.
#include <smtpwire/server.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>

#include "alloc_counter.hpp"
#include "canned_session.hpp"

namespace {

using namespace smtpwire;

std::string message_4k() {
  std::string m = "From: a@client.example\r\nTo: b@mx.example\r\nSubject: bench\r\n\r\n";
  while (m.size() < 4096 - 80)
    m += "The quick brown fox jumps over the lazy dog. .dots and more text here.\r\n";
  m += ".leading dot line\r\n";
  return m;
}

std::string stuffed(const std::string& m) {
  std::string out;
  std::size_t from = 0;
  while (from < m.size()) {
    const std::size_t nl = m.find("\r\n", from) + 2;
    if (m[from] == '.') out += '.';
    out.append(m, from, nl - from);
    from = nl;
  }
  return out;
}

std::string transaction_bytes(const std::string& msg) {
  std::string t = "MAIL FROM:<alice@client.example>\r\n";
  for (int i = 0; i < 5; ++i)
    t += "RCPT TO:<user" + std::to_string(i) + "@mx.example>\r\n";
  t += "DATA\r\n" + stuffed(msg) + ".\r\n";
  return t;
}

server_config bench_config() {
  server_config c;
  c.host_name = "mx.example";
  c.limits.max_commands = ~std::size_t{0};
  return c;
}

void report_allocs(benchmark::State& state, std::size_t allocs) {
  state.counters["allocs_per_item"] =
      benchmark::Counter(static_cast<double>(allocs) / static_cast<double>(state.iterations()));
}

void BM_session(benchmark::State& state) {
  const std::string msg = message_4k();
  const std::string bytes = "EHLO client.example\r\n" + transaction_bytes(msg) + "QUIT\r\n";
  const server_config cfg = bench_config();
  {  // checked before timing
    server s(cfg);
    if (bench::pump_server(s, bytes) != msg.size() || !s.closed())
      state.SkipWithError("session did not complete");
  }
  const std::size_t a0 = smtpwire::bench::alloc_count();
  for (auto _ : state) {
    server s(cfg);
    benchmark::DoNotOptimize(bench::pump_server(s, bytes));
  }
  report_allocs(state, smtpwire::bench::alloc_count() - a0);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}

void BM_transaction(benchmark::State& state) {
  const std::string msg = message_4k();
  const std::string tx = transaction_bytes(msg);
  server s(bench_config());
  bench::pump_server(s, "EHLO client.example\r\n");
  if (bench::pump_server(s, tx) != msg.size()) state.SkipWithError("transaction did not complete");
  const std::size_t a0 = smtpwire::bench::alloc_count();
  for (auto _ : state)
    benchmark::DoNotOptimize(bench::pump_server(s, tx));
  report_allocs(state, smtpwire::bench::alloc_count() - a0);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(tx.size()));
}

void BM_memcpy_baseline(benchmark::State& state) {
  const std::string tx = transaction_bytes(message_4k());
  std::string dst(tx.size(), '\0');
  for (auto _ : state) {
    // The engine copies input in 1 KiB pieces (limits.input_buffer).
    for (std::size_t at = 0; at < tx.size(); at += 1024)
      std::memcpy(&dst[0] + at, tx.data() + at, std::min<std::size_t>(1024, tx.size() - at));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(tx.size()));
}

void BM_idle_session(benchmark::State& state) {
  // An idle session: constructed, greeted, EHLO answered, output sent.
  const server_config cfg = bench_config();
  std::size_t reserved = 0;
  const std::size_t a0 = smtpwire::bench::alloc_count();
  for (auto _ : state) {
    server s(cfg);
    bench::pump_server(s, "EHLO client.example\r\n");
    reserved = s.memory_reserved();
    benchmark::DoNotOptimize(&s);
  }
  report_allocs(state, smtpwire::bench::alloc_count() - a0);
  state.counters["sizeof_server"] = static_cast<double>(sizeof(server));
  state.counters["buffers_reserved"] = static_cast<double>(reserved);
  state.counters["idle_bytes"] = static_cast<double>(sizeof(server) + reserved);
}

void BM_session_after_transactions(benchmark::State& state) {
  // The memory a session keeps once it has carried pipelined transactions
  // (buffers grow once and are kept, so that transactions do not allocate).
  const std::string tx = transaction_bytes(message_4k());
  server s(bench_config());
  bench::pump_server(s, "EHLO client.example\r\n");
  for (int i = 0; i < 4; ++i)
    bench::pump_server(s, tx);
  for (auto _ : state)
    benchmark::DoNotOptimize(s.memory_reserved());
  state.counters["buffers_reserved"] = static_cast<double>(s.memory_reserved());
  state.counters["idle_bytes"] = static_cast<double>(sizeof(server) + s.memory_reserved());
}

BENCHMARK(BM_session);
BENCHMARK(BM_transaction);
BENCHMARK(BM_memcpy_baseline);
BENCHMARK(BM_idle_session);
BENCHMARK(BM_session_after_transactions);

}  // namespace
