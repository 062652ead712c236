// Benchmark support: counts heap allocations by replacing the global
// operator new (include in exactly one translation unit of a benchmark
// program). The library promises none per message in steady state; the
// benchmarks read alloc_count() around their timed loops and report the
// difference per message.
#ifndef SMTPWIRE_BENCH_ALLOC_COUNTER_HPP
#define SMTPWIRE_BENCH_ALLOC_COUNTER_HPP

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace smtpwire::bench {
inline std::atomic<std::size_t>& alloc_counter() noexcept {
  static std::atomic<std::size_t> n{0};
  return n;
}
/// Heap allocations made so far by this program.
inline std::size_t alloc_count() noexcept {
  return alloc_counter().load(std::memory_order_relaxed);
}
}  // namespace smtpwire::bench

// Out of line, so that the compiler does not pair the malloc inside new with
// the free inside delete and warn about a mismatch that is not there.
#define SMTPWIRE_BENCH_NOINLINE __attribute__((noinline))

SMTPWIRE_BENCH_NOINLINE void* operator new(std::size_t n) {
  smtpwire::bench::alloc_counter().fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
#if defined(__cpp_exceptions)
  throw std::bad_alloc();
#else
  std::abort();  // the noexcept build: out of memory cannot be reported
#endif
}
SMTPWIRE_BENCH_NOINLINE void* operator new[](std::size_t n) {
  return operator new(n);
}
SMTPWIRE_BENCH_NOINLINE void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  smtpwire::bench::alloc_counter().fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
SMTPWIRE_BENCH_NOINLINE void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return operator new(n, t);
}
SMTPWIRE_BENCH_NOINLINE void operator delete(void* p) noexcept {
  std::free(p);
}
SMTPWIRE_BENCH_NOINLINE void operator delete[](void* p) noexcept {
  std::free(p);
}
SMTPWIRE_BENCH_NOINLINE void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
SMTPWIRE_BENCH_NOINLINE void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
SMTPWIRE_BENCH_NOINLINE void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
SMTPWIRE_BENCH_NOINLINE void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

#endif
