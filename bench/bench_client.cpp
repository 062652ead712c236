// Client engine speed: one whole delivery (greeting, EHLO, MAIL, 5 RCPT,
// DATA with a 4 KiB message, QUIT) against canned server bytes, the engine
// reused through reset() as a connection pool would.
//   BM_memcpy_baseline   memcpy of the same bytes (server replies in, the
//                        client's commands and content out): the floor,
//   BM_client_pipelined  the engine with PIPELINING (one flight),
//   BM_client_lockstep   the engine without PIPELINING (a reply per command),
//   BM_client_bdat       the engine with PIPELINING and CHUNKING: the message
//                        as one "BDAT n LAST" chunk (RFC 3030), no stuffing.
// Counters: deliveries (a rate: deliveries per second) and
// allocs_per_delivery (bench/alloc_counter.hpp; the goal is 0). The client's
// bytes are checked against the expected dialogue before anything is timed.
// Read the ratio BM_client_* / BM_memcpy_baseline (bytes_per_second).
#include <smtpwire/client.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "alloc_counter.hpp"
#include "canned_session.hpp"

namespace {

using namespace smtpwire;

const std::string_view kRcpts[] = {"r1@example.com", "r2@example.com", "r3@example.com",
                                   "r4@example.com", "r5@example.com"};

std::string make_message() {
  std::string m = "From: a@example.org\r\nTo: r1@example.com\r\nSubject: bench\r\n\r\n";
  while (m.size() < 4096 - 80)
    m += std::string(76, 'x') + "\r\n";
  m += ".dot line\r\n";
  return m;
}

std::string server_bytes(bool pipelining, bool bdat = false) {
  std::string s = "220 mx.example.com ESMTP\r\n250-mx.example.com\r\n250-SIZE 52428800\r\n";
  s += pipelining ? "250-PIPELINING\r\n" : "";
  s += bdat ? "250-CHUNKING\r\n" : "";
  s += "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n250 2.1.0 Ok\r\n";
  for (int i = 0; i < 5; ++i)
    s += "250 2.1.5 Ok\r\n";
  if (!bdat) s += "354 End data with <CR><LF>.<CR><LF>\r\n";
  s += "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n";
  return s;
}

// One delivery; returns the number of client bytes written (all drained
// into `sink`, which has room for them); aborts when the session went wrong.
std::size_t deliver(client& c, std::string_view server, std::string_view message, char* sink) {
  const std::size_t n = bench::deliver(c, server, message, kRcpts, 5, sink);
  if (n == 0) std::abort();
  return n;
}

client_config config(bool pipelining, bool bdat) {
  client_config cfg;
  cfg.prefer_bdat = bdat;
  cfg.local_name = "client.example.org";
  cfg.tls = tls_policy::none;
  cfg.pipelining = pipelining;
  return cfg;
}

std::string expected_client_bytes(const std::string& message, bool bdat = false) {
  std::string s = "EHLO client.example.org\r\nMAIL FROM:<a@example.org> SIZE=" +
                  std::to_string(message.size()) + "\r\n";
  for (auto r : kRcpts)
    s += "RCPT TO:<" + std::string(r) + ">\r\n";
  if (bdat)
    return s + "BDAT " + std::to_string(message.size()) + " LAST\r\n" + message + "QUIT\r\n";
  s += "DATA\r\n";
  std::string stuffed = message;
  stuffed.insert(stuffed.find("\r\n.dot") + 2, ".");
  return s + stuffed + ".\r\nQUIT\r\n";
}

void run_engine(benchmark::State& state, bool pipelining, bool bdat = false) {
  const std::string message = make_message();
  const std::string server = server_bytes(pipelining, bdat);
  const std::string want = expected_client_bytes(message, bdat);
  client c{config(pipelining, bdat)};
  std::string sink(want.size() + 4096, '\0');
  const std::size_t n = deliver(c, server, message, &sink[0]);
  if (std::string_view(sink.data(), n) != want) {
    state.SkipWithError("client bytes differ from the expected dialogue");
    return;
  }
  const std::size_t allocs_before = bench::alloc_count();
  std::size_t deliveries = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(deliver(c, server, message, &sink[0]));
    benchmark::ClobberMemory();
    ++deliveries;
  }
  const std::size_t allocs = bench::alloc_count() - allocs_before;
  state.SetBytesProcessed(static_cast<std::int64_t>(deliveries * (server.size() + want.size())));
  state.counters["deliveries"] =
      benchmark::Counter(static_cast<double>(deliveries), benchmark::Counter::kIsRate);
  state.counters["allocs_per_delivery"] =
      deliveries ? static_cast<double>(allocs) / static_cast<double>(deliveries) : 0.0;
}

void BM_client_pipelined(benchmark::State& state) {
  run_engine(state, true);
}
void BM_client_lockstep(benchmark::State& state) {
  run_engine(state, false);
}
void BM_client_bdat(benchmark::State& state) {
  run_engine(state, true, true);
}

void BM_memcpy_baseline(benchmark::State& state) {
  const std::string message = make_message();
  const std::string server = server_bytes(true);
  const std::string want = expected_client_bytes(message);
  std::string in_buf(server.size(), '\0'), out_buf(want.size(), '\0');
  std::size_t deliveries = 0;
  for (auto _ : state) {
    std::memcpy(&in_buf[0], server.data(), server.size());
    std::memcpy(&out_buf[0], want.data(), want.size());
    benchmark::DoNotOptimize(in_buf.data());
    benchmark::DoNotOptimize(out_buf.data());
    benchmark::ClobberMemory();
    ++deliveries;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(deliveries * (server.size() + want.size())));
  state.counters["deliveries"] =
      benchmark::Counter(static_cast<double>(deliveries), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_memcpy_baseline);
BENCHMARK(BM_client_pipelined);
BENCHMARK(BM_client_lockstep);
BENCHMARK(BM_client_bdat);

}  // namespace
