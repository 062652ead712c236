// smtpwire — block scanning of message content: 64-octet bit masks of the
// octets that matter to DATA framing (CR, LF, '.', NUL, 8-bit), computed with
// AVX-512BW, AVX2, SSE2, portable SWAR or a plain loop, and the clean-block
// skipper that the DATA decoder and encoder share.
//
// Theory of operation. Almost every octet of a message is ordinary: it is
// neither a line-start dot nor a bare CR, bare LF or NUL. The codecs hand
// such runs to the caller as views of the input, so their cost is the cost of
// finding the few octets that are not ordinary. skip_clean() looks at 64
// octets at a time. In terms of one bit per octet, a block is special when
//
//   bare LF   lf & ~(cr << 1)          an LF whose previous octet is not CR
//   bare CR   cr & ~(lf >> 1)          a CR whose next octet is not LF
//   dot       dot & (lf << 1)          a '.' that starts a line (after CRLF)
//   NUL, 8-bit                         when the caller asks for them
//
// with the octet before the block coming from the scan state (at_line_start,
// after_cr). The quick look (M::quick) decides "clean or not" with as little
// work as the instruction set allows — vector compares against the octets
// shifted by one for SSE2/AVX2, mask-register bit logic for AVX-512 — and
// needs only the LF mask of a clean block, to count lines and line lengths.
// Where the instruction set has wide registers (AVX2, AVX-512) the quick
// look takes two blocks at a time (M::pair): one test and one branch per
// 128 octets, and the line statistics of a pair whose two blocks both hold
// an LF in a few scalar operations (about a fifth less time per octet on
// MIME text, bench/bench_data.cpp). AVX-512 goes further (M::wide): four
// blocks per look, each compared with the octets before it loaded again one
// octet earlier, the special octets found with vector arithmetic (saturating
// subtraction, vpternlog, a minimum for line-start dots and NULs) instead of
// compares, and one kortest per 256 octets: on the AMD EPYC of the benchmarks
// moving compare masks out of mask registers, and then the number of vector
// operations, bounded the quick look (about 1.6x the octets per second of
// pair() on the MIME message).
// A block that is not clean gets its five full masks (M::load) and is
// skipped up to its first special octet, where the byte-wise state machine
// of the codec takes over. A CR in a block's last octet is judged with the
// next block (or by the byte-wise machine), so nothing past the input is
// ever read.
//
// The mask computation is the only part that differs between instruction
// sets. Each variant is a small struct; the skipper is a template
// instantiated once per variant inside a function compiled for that
// instruction set (flatten pulls the template into it), so the AVX2 and
// AVX-512 variants run on any x86-64 build and are chosen at run time with
// __builtin_cpu_supports. All variants give identical results; the tests and
// the fuzzers run every one that the CPU supports on every vector and on
// random data.
#ifndef SMTPWIRE_DETAIL_SIMD_HPP
#define SMTPWIRE_DETAIL_SIMD_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SMTPWIRE_SIMD_X86 1
#endif

namespace smtpwire::detail {

/// Which implementation scans content. `automatic` picks the fastest one the
/// CPU supports when a codec is constructed.
enum class scan_kind : unsigned char {
  automatic,  ///< fastest available (AVX-512BW, else AVX2, else SSE2, else scalar)
  scalar,     ///< one octet at a time: the reference, available everywhere
  swar,       ///< 64-octet blocks with 64-bit integer arithmetic, portable
  sse2,       ///< 64-octet blocks with SSE2 (x86-64 only)
  avx2,       ///< 64-octet blocks with AVX2 (x86-64 CPUs that have it)
  avx512,     ///< 64-octet blocks with AVX-512BW mask registers (CPUs that have it)
};

/// A stable name for `k` ("avx2", …).
constexpr const char* to_string(scan_kind k) noexcept {
  switch (k) {
    case scan_kind::automatic:
      return "automatic";
    case scan_kind::scalar:
      return "scalar";
    case scan_kind::swar:
      return "swar";
    case scan_kind::sse2:
      return "sse2";
    case scan_kind::avx2:
      return "avx2";
    case scan_kind::avx512:
      return "avx512";
  }
  return "unknown";
}

/// True when `k` can run on this CPU (automatic, scalar and swar always can).
inline bool scan_kind_available(scan_kind k) noexcept {
  switch (k) {
    case scan_kind::automatic:
    case scan_kind::scalar:
    case scan_kind::swar:
      return true;
    case scan_kind::sse2:
#ifdef SMTPWIRE_SIMD_X86
      return true;
#else
      return false;
#endif
    case scan_kind::avx2:
#ifdef SMTPWIRE_SIMD_X86
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") &&
             __builtin_cpu_supports("bmi");
#else
      return false;
#endif
    case scan_kind::avx512:
#ifdef SMTPWIRE_SIMD_X86
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi");
#else
      return false;
#endif
  }
  return false;
}

/// `k` with `automatic` (and any kind this CPU lacks) replaced by the
/// fastest available kind.
inline scan_kind resolve_scan_kind(scan_kind k) noexcept {
  if (k != scan_kind::automatic && scan_kind_available(k)) return k;
  if (scan_kind_available(scan_kind::avx512)) return scan_kind::avx512;
  if (scan_kind_available(scan_kind::avx2)) return scan_kind::avx2;
  if (scan_kind_available(scan_kind::sse2)) return scan_kind::sse2;
  // Measured on x86-64, SWAR blocks are no faster than the byte loop (both
  // ~1.5-2.5 GB/s); SWAR stays available, and tested, for explicit use.
  return scan_kind::scalar;
}

/// One bit per octet of a 64-octet block (bit i = octet i).
struct block_masks {
  std::uint64_t cr;   ///< '\r'
  std::uint64_t lf;   ///< '\n'
  std::uint64_t dot;  ///< '.'
  std::uint64_t nul;  ///< '\0'
  std::uint64_t hi;   ///< >= 0x80
};

/// Portable population count (the SWAR and SSE2 builds may lack POPCNT).
constexpr unsigned popcount64(std::uint64_t x) noexcept {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<unsigned>((x * 0x0101010101010101ull) >> 56);
}

/// Masks built one octet at a time (big-endian SWAR fallback, and the model
/// the other variants are tested against).
struct masks_bytewise {
  static block_masks load(const char* p) noexcept {
    block_masks m{0, 0, 0, 0, 0};
    for (unsigned i = 0; i < 64; ++i) {
      const auto c = static_cast<unsigned char>(p[i]);
      const std::uint64_t bit = std::uint64_t{1} << i;
      if (c == '\r') m.cr |= bit;
      if (c == '\n') m.lf |= bit;
      if (c == '.') m.dot |= bit;
      if (c == 0) m.nul |= bit;
      if (c >= 0x80) m.hi |= bit;
    }
    return m;
  }
  static unsigned popcount(std::uint64_t x) noexcept { return popcount64(x); }
  static constexpr bool has_quick = false;
  static constexpr bool has_pair = false;
  static constexpr bool has_wide = false;
  struct acc_t {};
  static bool quick(const char*, acc_t&, bool, std::uint64_t&, acc_t&) noexcept { return false; }
  static bool pair(const char*, acc_t&, bool, std::uint64_t&, std::uint64_t&, acc_t&) noexcept {
    return false;
  }
  static void init(acc_t&, char = 0) noexcept {}
  static bool any_high(const acc_t&) noexcept { return false; }
};

/// Masks from 64-bit words: per-octet equality without false positives, then
/// the eight flag bits gathered into one octet with a multiply.
struct masks_swar {
  static constexpr std::uint64_t ones = 0x0101010101010101ull;
  static constexpr std::uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
  static constexpr std::uint64_t high = 0x8080808080808080ull;
  // 0x80 in each octet of w equal to c, 0 elsewhere.
  static std::uint64_t eq(std::uint64_t w, unsigned char c) noexcept {
    const std::uint64_t x = w ^ (ones * c);
    return ~(((x & low7) + low7) | x | low7);
  }
  // Bit k of the result = bit 7 of octet k of m (only bits 7, 15, … set).
  static std::uint64_t gather(std::uint64_t m) noexcept {
    return ((m >> 7) * 0x0102040810204080ull) >> 56;
  }
  static block_masks load(const char* p) noexcept {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    block_masks m{0, 0, 0, 0, 0};
    for (unsigned k = 0; k < 8; ++k) {
      std::uint64_t w;
      std::memcpy(&w, p + 8 * k, 8);
      const unsigned shift = 8 * k;
      m.cr |= gather(eq(w, '\r')) << shift;
      m.lf |= gather(eq(w, '\n')) << shift;
      m.dot |= gather(eq(w, '.')) << shift;
      m.nul |= gather(eq(w, 0)) << shift;
      m.hi |= gather(w & high) << shift;
    }
    return m;
#else
    return masks_bytewise::load(p);
#endif
  }
  static unsigned popcount(std::uint64_t x) noexcept {
    return popcount64(x);
  }
  static constexpr bool has_quick = false;
  static constexpr bool has_pair = false;
  static constexpr bool has_wide = false;
  struct acc_t {};
  static bool quick(const char*, acc_t&, bool, std::uint64_t&, acc_t&) noexcept {
    return false;
  }
  static bool pair(const char*, acc_t&, bool, std::uint64_t&, std::uint64_t&, acc_t&) noexcept {
    return false;
  }
  static void init(acc_t&, char = 0) noexcept {}
  static bool any_high(const acc_t&) noexcept {
    return false;
  }
};

#ifdef SMTPWIRE_SIMD_X86
/// Masks with SSE2 (part of x86-64, so always available there).
struct masks_sse2 {
  static std::uint64_t bits(__m128i a, __m128i b, __m128i c, __m128i d) noexcept {
    return static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(a))) |
           static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(b))) << 16 |
           static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(c))) << 32 |
           static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(d))) << 48;
  }
  static block_masks load(const char* p) noexcept {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
    const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48));
    const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), dot = _mm_set1_epi8('.');
    const __m128i zero = _mm_setzero_si128();
    block_masks m;
    m.cr = bits(_mm_cmpeq_epi8(v0, cr), _mm_cmpeq_epi8(v1, cr), _mm_cmpeq_epi8(v2, cr),
                _mm_cmpeq_epi8(v3, cr));
    m.lf = bits(_mm_cmpeq_epi8(v0, lf), _mm_cmpeq_epi8(v1, lf), _mm_cmpeq_epi8(v2, lf),
                _mm_cmpeq_epi8(v3, lf));
    m.dot = bits(_mm_cmpeq_epi8(v0, dot), _mm_cmpeq_epi8(v1, dot), _mm_cmpeq_epi8(v2, dot),
                 _mm_cmpeq_epi8(v3, dot));
    m.nul = bits(_mm_cmpeq_epi8(v0, zero), _mm_cmpeq_epi8(v1, zero), _mm_cmpeq_epi8(v2, zero),
                 _mm_cmpeq_epi8(v3, zero));
    m.hi = bits(v0, v1, v2, v3);
    return m;
  }
  static unsigned popcount(std::uint64_t x) noexcept { return popcount64(x); }

  static constexpr bool has_quick = true;
  struct acc_t {
    __m128i v = _mm_setzero_si128();
  };
  // Special octets of one 16-octet vector `v` whose preceding octet is the
  // last octet of `before`: LF without CR before it, CR before a non-LF,
  // '.' after LF, and NUL when `nul`.
  static __m128i bad(__m128i v, __m128i before, bool nul) noexcept {
    const __m128i prev = _mm_or_si128(_mm_slli_si128(v, 1), _mm_srli_si128(before, 15));
    const __m128i lf = _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'));
    __m128i b = _mm_xor_si128(lf, _mm_cmpeq_epi8(prev, _mm_set1_epi8('\r')));
    b = _mm_or_si128(b, _mm_and_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')),
                                      _mm_cmpeq_epi8(prev, _mm_set1_epi8('\n'))));
    if (nul) b = _mm_or_si128(b, _mm_cmpeq_epi8(v, _mm_setzero_si128()));
    return b;
  }
  /// True when the 64 octets at p hold no special octet given that the
  /// octet before them is `prev`; then `lf` gets their LF mask and `acc`
  /// their high bits. (A CR in the last octet is left to the next look.)
  static bool quick(const char* p, acc_t& before, bool nul, std::uint64_t& lf,
                    acc_t& acc) noexcept {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    const __m128i v2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
    const __m128i v3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 48));
    const __m128i b = _mm_or_si128(_mm_or_si128(bad(v0, before.v, nul), bad(v1, v0, nul)),
                                   _mm_or_si128(bad(v2, v1, nul), bad(v3, v2, nul)));
    if (_mm_movemask_epi8(b) != 0) return false;
    const __m128i n = _mm_set1_epi8('\n');
    lf = bits(_mm_cmpeq_epi8(v0, n), _mm_cmpeq_epi8(v1, n), _mm_cmpeq_epi8(v2, n),
              _mm_cmpeq_epi8(v3, n));
    acc.v = _mm_or_si128(acc.v, _mm_or_si128(_mm_or_si128(v0, v1), _mm_or_si128(v2, v3)));
    before.v = v3;
    return true;
  }
  static constexpr bool has_pair = false;
  static constexpr bool has_wide = false;
  static bool pair(const char*, acc_t&, bool, std::uint64_t&, std::uint64_t&, acc_t&) noexcept {
    return false;
  }
  static void init(acc_t& acc, char c = 0) noexcept { acc.v = _mm_set1_epi8(c); }
  static bool any_high(const acc_t& acc) noexcept { return _mm_movemask_epi8(acc.v) != 0; }
};

/// Masks with AVX2; only called from functions compiled for AVX2.
struct masks_avx2 {
  __attribute__((target("avx2"))) static std::uint64_t bits(__m256i a, __m256i b) noexcept {
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm256_movemask_epi8(a))) |
           static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm256_movemask_epi8(b))) << 32;
  }
  __attribute__((target("avx2"))) static block_masks load(const char* p) noexcept {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    const __m256i cr = _mm256_set1_epi8('\r'), lf = _mm256_set1_epi8('\n');
    const __m256i dot = _mm256_set1_epi8('.'), zero = _mm256_setzero_si256();
    block_masks m;
    m.cr = bits(_mm256_cmpeq_epi8(v0, cr), _mm256_cmpeq_epi8(v1, cr));
    m.lf = bits(_mm256_cmpeq_epi8(v0, lf), _mm256_cmpeq_epi8(v1, lf));
    m.dot = bits(_mm256_cmpeq_epi8(v0, dot), _mm256_cmpeq_epi8(v1, dot));
    m.nul = bits(_mm256_cmpeq_epi8(v0, zero), _mm256_cmpeq_epi8(v1, zero));
    m.hi = bits(v0, v1);
    return m;
  }
  __attribute__((target("popcnt"))) static unsigned popcount(std::uint64_t x) noexcept {
    return static_cast<unsigned>(__builtin_popcountll(x));
  }

  static constexpr bool has_quick = true;
  struct acc_t {
    __m256i v;
  };
  // As masks_sse2::bad for 32 octets; `prev` holds the octets before v.
  __attribute__((target("avx2"))) static __m256i bad(__m256i v, __m256i prev, bool nul) noexcept {
    const __m256i lf = _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\n'));
    __m256i b = _mm256_xor_si256(lf, _mm256_cmpeq_epi8(prev, _mm256_set1_epi8('\r')));
    b = _mm256_or_si256(b, _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('.')),
                                            _mm256_cmpeq_epi8(prev, _mm256_set1_epi8('\n'))));
    if (nul) b = _mm256_or_si256(b, _mm256_cmpeq_epi8(v, _mm256_setzero_si256()));
    return b;
  }
  /// See masks_sse2::quick.
  __attribute__((target("avx2"))) static bool quick(const char* p, acc_t& before, bool nul,
                                                    std::uint64_t& lf, acc_t& acc) noexcept {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    // Octet i of pN is the octet before octet i of vN.
    const __m256i p0 = _mm256_alignr_epi8(v0, _mm256_permute2x128_si256(before.v, v0, 0x21), 15);
    const __m256i p1 = _mm256_alignr_epi8(v1, _mm256_permute2x128_si256(v0, v1, 0x21), 15);
    const __m256i b = _mm256_or_si256(bad(v0, p0, nul), bad(v1, p1, nul));
    if (!_mm256_testz_si256(b, b)) return false;
    const __m256i n = _mm256_set1_epi8('\n');
    lf = bits(_mm256_cmpeq_epi8(v0, n), _mm256_cmpeq_epi8(v1, n));
    acc.v = _mm256_or_si256(acc.v, _mm256_or_si256(v0, v1));
    before.v = v1;
    return true;
  }
  static constexpr bool has_pair = true;
  static constexpr bool has_wide = false;
  /// quick() for the 128 octets at p, with one test for both blocks: `lf0`
  /// and `lf1` get the LF masks of the first and the second block.
  __attribute__((target("avx2"))) static bool pair(const char* p, acc_t& before, bool nul,
                                                   std::uint64_t& lf0, std::uint64_t& lf1,
                                                   acc_t& acc) noexcept {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    const __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64));
    const __m256i v3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 96));
    const __m256i p0 = _mm256_alignr_epi8(v0, _mm256_permute2x128_si256(before.v, v0, 0x21), 15);
    const __m256i p1 = _mm256_alignr_epi8(v1, _mm256_permute2x128_si256(v0, v1, 0x21), 15);
    const __m256i p2 = _mm256_alignr_epi8(v2, _mm256_permute2x128_si256(v1, v2, 0x21), 15);
    const __m256i p3 = _mm256_alignr_epi8(v3, _mm256_permute2x128_si256(v2, v3, 0x21), 15);
    const __m256i b = _mm256_or_si256(_mm256_or_si256(bad(v0, p0, nul), bad(v1, p1, nul)),
                                      _mm256_or_si256(bad(v2, p2, nul), bad(v3, p3, nul)));
    if (!_mm256_testz_si256(b, b)) return false;
    const __m256i n = _mm256_set1_epi8('\n');
    lf0 = bits(_mm256_cmpeq_epi8(v0, n), _mm256_cmpeq_epi8(v1, n));
    lf1 = bits(_mm256_cmpeq_epi8(v2, n), _mm256_cmpeq_epi8(v3, n));
    acc.v =
        _mm256_or_si256(acc.v, _mm256_or_si256(_mm256_or_si256(v0, v1), _mm256_or_si256(v2, v3)));
    before.v = v3;
    return true;
  }
  __attribute__((target("avx2"))) static void init(acc_t& acc, char c = 0) noexcept {
    acc.v = _mm256_set1_epi8(c);
  }
  __attribute__((target("avx2"))) static bool any_high(const acc_t& acc) noexcept {
    return _mm256_movemask_epi8(acc.v) != 0;
  }
};

/// Masks with AVX-512BW: one compare per class straight into a mask
/// register, so the quick look is scalar bit logic on the masks.
struct masks_avx512 {
  __attribute__((target("avx512f,avx512bw"))) static block_masks load(const char* p) noexcept {
    const __m512i v = _mm512_loadu_si512(p);
    block_masks m;
    m.cr = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\r'));
    m.lf = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n'));
    m.dot = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('.'));
    m.nul = _mm512_cmpeq_epi8_mask(v, _mm512_setzero_si512());
    m.hi = _mm512_movepi8_mask(v);
    return m;
  }
  __attribute__((target("popcnt"))) static unsigned popcount(std::uint64_t x) noexcept {
    return static_cast<unsigned>(__builtin_popcountll(x));
  }

  static constexpr bool has_quick = true;
  struct acc_t {
    std::uint64_t cr = 0;  // as `before`: the previous octet was CR (bit 0)
    std::uint64_t lf = 0;  // as `before`: the previous octet was LF (bit 0)
    std::uint64_t hi = 0;  // as `high`: high bits seen
  };
  static void init(acc_t& a, char c = 0) noexcept {
    a.cr = c == '\r' ? 1u : 0u;
    a.lf = c == '\n' ? 1u : 0u;
    a.hi = 0;
  }
  /// See masks_sse2::quick.
  __attribute__((target("avx512f,avx512bw"))) static bool quick(const char* p, acc_t& before,
                                                                bool nul, std::uint64_t& lf,
                                                                acc_t& acc) noexcept {
    const __m512i v = _mm512_loadu_si512(p);
    const std::uint64_t cr = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\r'));
    const std::uint64_t l = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n'));
    const std::uint64_t dot = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('.'));
    std::uint64_t bad = (l ^ ((cr << 1) | before.cr)) | (dot & ((l << 1) | before.lf));
    if (nul) bad |= _mm512_cmpeq_epi8_mask(v, _mm512_setzero_si512());
    if (bad != 0) return false;
    lf = l;
    acc.hi |= _mm512_movepi8_mask(v);
    before.cr = cr >> 63;
    before.lf = l >> 63;
    return true;
  }
  static constexpr bool has_pair = true;
  /// See masks_avx2::pair. (The bit logic stays in general registers:
  /// written as mask-register operations — kshift, kxor, kortest — it ran at
  /// half the speed on the AMD EPYC (AVX-512) of bench/bench_data.cpp.)
  __attribute__((target("avx512f,avx512bw"))) static bool pair(const char* p, acc_t& before,
                                                               bool nul, std::uint64_t& lf0,
                                                               std::uint64_t& lf1,
                                                               acc_t& acc) noexcept {
    const __m512i v0 = _mm512_loadu_si512(p);
    const __m512i v1 = _mm512_loadu_si512(p + 64);
    const __m512i cr = _mm512_set1_epi8('\r'), lf = _mm512_set1_epi8('\n');
    const __m512i dot = _mm512_set1_epi8('.');
    const std::uint64_t cr0 = _mm512_cmpeq_epi8_mask(v0, cr);
    const std::uint64_t cr1 = _mm512_cmpeq_epi8_mask(v1, cr);
    const std::uint64_t l0 = _mm512_cmpeq_epi8_mask(v0, lf);
    const std::uint64_t l1 = _mm512_cmpeq_epi8_mask(v1, lf);
    const std::uint64_t d0 = _mm512_cmpeq_epi8_mask(v0, dot);
    const std::uint64_t d1 = _mm512_cmpeq_epi8_mask(v1, dot);
    std::uint64_t bad = (l0 ^ ((cr0 << 1) | before.cr)) | (d0 & ((l0 << 1) | before.lf)) |
                        (l1 ^ ((cr1 << 1) | (cr0 >> 63))) | (d1 & ((l1 << 1) | (l0 >> 63)));
    if (nul)
      bad |= _mm512_cmpeq_epi8_mask(v0, _mm512_setzero_si512()) |
             _mm512_cmpeq_epi8_mask(v1, _mm512_setzero_si512());
    if (bad != 0) return false;
    lf0 = l0;
    lf1 = l1;
    acc.hi |= _mm512_movepi8_mask(_mm512_or_si512(v0, v1));
    before.cr = cr1 >> 63;
    before.lf = l1 >> 63;
    return true;
  }
  static constexpr bool has_wide = true;
  /// Octets of one wide look: four blocks.
  static constexpr std::size_t wide_octets = 256;
  struct wide_acc_t {
    __m512i v;  // the octets of the wide looks ORed (for the 8-bit flag)
  };
  __attribute__((target("avx512f"))) static void wide_init(wide_acc_t& a) noexcept {
    a.v = _mm512_setzero_si512();
  }
  /// Moves the high bits gathered by wide() into `acc`.
  __attribute__((target("avx512f,avx512bw"))) static void wide_merge(acc_t& acc,
                                                                     const wide_acc_t& a) noexcept {
    acc.hi |= _mm512_movepi8_mask(a.v);
  }
  // The special octets of the block v whose previous octets are u (u[i] is
  // the octet before v[i]), with vector arithmetic instead of compares:
  // every compare result moved from a mask register to a general register
  // costs more here (AMD EPYC, AVX-512) than a few vector operations, and
  // wide() tests four blocks at once. Returns 1 at an LF not after a CR or
  // a CR not before an LF (else 0); `dot` gets 0 exactly at a '.' after an
  // LF; `lf` gets v's LF mask (one compare: the line statistics need it).
  __attribute__((target("avx512f,avx512bw"))) static __m512i wide_bad(__m512i v, __m512i u,
                                                                      __m512i& dot,
                                                                      std::uint64_t& lf) noexcept {
    const __m512i one = _mm512_set1_epi8(1);
    const __mmask64 l = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n'));
    lf = l;
    // (v ^ '.') | ((u ^ LF ^ '.') ^ '.') in one vpternlog (0x7e: (a ^ c) | (b ^ c))
    dot = _mm512_ternarylogic_epi32(v, _mm512_xor_si512(u, _mm512_set1_epi8('\n' ^ '.')),
                                    _mm512_set1_epi8('.'), 0x7e);
    // 1 where u is CR (1 - (u ^ CR), saturated), flipped where v is LF
    const __m512i cr = _mm512_subs_epu8(one, _mm512_xor_si512(u, _mm512_set1_epi8('\r')));
    return _mm512_mask_sub_epi8(cr, l, one, cr);
  }
  /// quick() for the 256 octets at p, given that p[-1] is an octet of the
  /// clean run already skipped: the octets before each block are loaded
  /// again, unaligned, which costs less than shifting vectors by one octet
  /// and keeps the four blocks independent. `lf` gets the four LF masks and
  /// `acc` the octets ORed. Line-start dots and NULs are found with the
  /// minimum of the four blocks (no compare), and one kortest tests both
  /// that and the bare line ends.
  __attribute__((target("avx512f,avx512bw"))) static bool wide(const char* p, bool nul,
                                                               std::uint64_t (&lf)[4],
                                                               wide_acc_t& acc) noexcept {
    const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
    const __m512i v2 = _mm512_loadu_si512(p + 128), v3 = _mm512_loadu_si512(p + 192);
    __m512i d0, d1, d2, d3;
    // 0xfe: a | b | c
    const __m512i bare = _mm512_ternarylogic_epi32(
        _mm512_ternarylogic_epi32(wide_bad(v0, _mm512_loadu_si512(p - 1), d0, lf[0]),
                                  wide_bad(v1, _mm512_loadu_si512(p + 63), d1, lf[1]),
                                  wide_bad(v2, _mm512_loadu_si512(p + 127), d2, lf[2]), 0xfe),
        wide_bad(v3, _mm512_loadu_si512(p + 191), d3, lf[3]), _mm512_setzero_si512(), 0xfe);
    __m512i lo = _mm512_min_epu8(_mm512_min_epu8(d0, d1), _mm512_min_epu8(d2, d3));
    if (nul)
      lo = _mm512_min_epu8(lo, _mm512_min_epu8(_mm512_min_epu8(v0, v1), _mm512_min_epu8(v2, v3)));
    if (!_kortestz_mask64_u8(_mm512_test_epi8_mask(bare, bare), _mm512_testn_epi8_mask(lo, lo)))
      return false;
    acc.v = _mm512_ternarylogic_epi32(acc.v, _mm512_ternarylogic_epi32(v0, v1, v2, 0xfe), v3, 0xfe);
    return true;
  }
  static bool any_high(const acc_t& acc) noexcept { return acc.hi != 0; }
};
#endif

/// Where the octet before the scan position leaves the line structure.
enum scan_at : unsigned char {
  at_mid_line = 0,    ///< inside a line
  at_line_start = 1,  ///< just after a CRLF (or at the start of the message)
  at_after_cr = 2,    ///< just after a CR that is itself part of the scanned input
};

/// The state skip_clean reads and updates. Offsets count content octets
/// (octets the codec delivers), which equal input octets inside clean blocks.
struct scan_state {
  scan_at at = at_line_start;
  std::uint64_t content = 0;     ///< content octets before the scan position
  std::uint64_t line_begin = 0;  ///< content offset where the current line began
  std::uint64_t lines = 0;       ///< CRLFs counted
  bool eight_bit = false;        ///< an octet >= 0x80 was seen
  bool long_line = false;        ///< a line longer than long_line_octets was seen
};

/// Longest line in octets, CRLF excluded, before scan_state::long_line is set
/// (RFC 5322 §2.1.1: "Each line of characters MUST be no more than 998
/// characters, … excluding the CRLF").
inline constexpr std::uint64_t long_line_octets = 998;

/// Which octets stop skip_clean besides bare CR, bare LF and line-start dots.
struct scan_stops {
  bool nul = true;         ///< stop at NUL
  bool eight_bit = false;  ///< stop at octets >= 0x80
};

/// The quick part of skip_clean_impl: skips whole clean blocks with
/// M::quick, the state kept in registers and the previous vector carried
/// along; returns the new position.
template <class M, bool Stats, bool Nul>
inline std::size_t quick_run(const char* p, std::size_t pos, std::size_t n, std::uint64_t& budget,
                             typename M::acc_t& high, scan_state& s) noexcept {
  typename M::acc_t before;
  M::init(before, s.at == at_after_cr ? '\r' : s.at == at_line_start ? '\n' : 'a');
  std::uint64_t content = s.content, line_begin = s.line_begin, lines = s.lines;
  bool long_line = false;
  std::size_t q = pos;
  // A block's line statistics: its LFs end lines; the first one ends the
  // line that began at line_begin (maybe many blocks back), the others end
  // lines shorter than 64 octets.
  auto block = [&](std::uint64_t lf, std::uint64_t at) {
    if (lf != 0) {
      const unsigned first = static_cast<unsigned>(__builtin_ctzll(lf));
      long_line |= at + first - 1 - line_begin > long_line_octets;
      line_begin = at + 64 - static_cast<unsigned>(__builtin_clzll(lf));
      lines += M::popcount(lf);
    }
  };
  if constexpr (M::has_wide) {
    // Four blocks per look, each compared with the octets before it loaded
    // from memory; so the run's first block goes through quick(), whose
    // previous octet comes from the scan state (p[pos - 1] is not always
    // the octet the state describes, nor always readable). When a wide look
    // fails, pair() and quick() below go on up to the special octet.
    constexpr std::size_t w = M::wide_octets;
    std::uint64_t lf;
    if (n - q > w + 64 && budget >= w + 64 && M::quick(p + q, before, Nul, lf, high)) {
      if (Stats) block(lf, content);
      content += 64;
      q += 64;
      budget -= 64;
      typename M::wide_acc_t wide_high;
      M::wide_init(wide_high);
      std::uint64_t l[4];
      while (n - q > w && budget >= w && M::wide(p + q, Nul, l, wide_high)) {
        if (Stats) {
          // Only the first line end of the 256 octets can end a long line,
          // and only when that line began more than ~1000 octets before it:
          // rare, so its position is looked up only then.
          if (content + w - 2 - line_begin > long_line_octets) {
            const unsigned k = l[0] ? 0 : l[1] ? 1 : l[2] ? 2 : 3;
            if (l[k] != 0) {
              const unsigned first = static_cast<unsigned>(__builtin_ctzll(l[k]));
              long_line |= content + 64 * k + first - 1 - line_begin > long_line_octets;
            }
          }
          lines += M::popcount(l[0]) + M::popcount(l[1]) + M::popcount(l[2]) + M::popcount(l[3]);
          // The last line end (where the current line begins): the highest
          // block with an LF.
          const unsigned k = l[3] ? 3 : l[2] ? 2 : l[1] ? 1 : 0;
          if (l[k] != 0)
            line_begin = content + 64 * (k + 1) - static_cast<unsigned>(__builtin_clzll(l[k]));
        }
        content += w;
        q += w;
        budget -= w;
      }
      M::wide_merge(high, wide_high);
      const char c = p[q - 1];
      M::init(before, c == '\r' || c == '\n' ? c : 'a');
    }
  }
  if (M::has_pair) {
    // Two blocks per look: one test and one branch per 128 octets. When both
    // blocks hold an LF, only the pair's first line can be long (the others
    // began inside the pair), so one check covers it.
    std::uint64_t lf0, lf1;
    while (n - q > 128 && budget >= 128 && M::pair(p + q, before, Nul, lf0, lf1, high)) {
      if (Stats) {
        if (lf0 != 0 && lf1 != 0) {
          const unsigned first = static_cast<unsigned>(__builtin_ctzll(lf0));
          long_line |= content + first - 1 - line_begin > long_line_octets;
          line_begin = content + 128 - static_cast<unsigned>(__builtin_clzll(lf1));
          lines += M::popcount(lf0) + M::popcount(lf1);
        } else {
          block(lf0, content);
          block(lf1, content + 64);
        }
      }
      content += 128;
      q += 128;
      budget -= 128;
    }
  }
  std::uint64_t lf;
  while (n - q > 64 && budget >= 64 && M::quick(p + q, before, Nul, lf, high)) {
    if (Stats) block(lf, content);
    content += 64;
    q += 64;
    budget -= 64;
  }
  if (q != pos) {
    if (Stats) {
      s.content = content;
      s.line_begin = line_begin;
      s.lines = lines;
      s.long_line = s.long_line || long_line;
    }
    const char c = p[q - 1];
    s.at = c == '\n' ? at_line_start : c == '\r' ? at_after_cr : at_mid_line;
  }
  return q;
}

/// Skips clean 64-octet blocks of p[pos, n) and returns the new position:
/// the first octet that the byte-wise machine must see (a special octet, the
/// octet at which `budget` content octets have been skipped, or a position
/// less than 64 octets before n). Reads only p[pos, n). With Stats, counts
/// the skipped octets into `s`; `s.at` is always updated.
template <class M, bool Stats>
inline std::size_t skip_clean_impl(const char* p, std::size_t pos, std::size_t n,
                                   std::uint64_t budget, scan_stops stops, scan_state& s) noexcept {
  // Quick look first: in clean content most blocks need only their LF mask.
  const bool quick = M::has_quick && !stops.eight_bit;
  typename M::acc_t high;
  M::init(high);
  for (;;) {
    if (quick && n - pos > 64 && budget >= 64)
      pos = stops.nul ? quick_run<M, Stats, true>(p, pos, n, budget, high, s)
                      : quick_run<M, Stats, false>(p, pos, n, budget, high, s);
    if (n - pos <= 64) break;
    const block_masks b = M::load(p + pos);
    const std::uint64_t prev_cr = s.at == at_after_cr ? 1u : 0u;
    const std::uint64_t prev_lf = s.at == at_line_start ? 1u : 0u;
    const std::uint64_t next_lf = p[pos + 64] == '\n' ? 1u : 0u;
    std::uint64_t special = (b.lf & ~((b.cr << 1) | prev_cr)) |          // bare LF
                            (b.cr & ~((b.lf >> 1) | (next_lf << 63))) |  // bare CR
                            (b.dot & ((b.lf << 1) | prev_lf));           // line-start dot
    special |= prev_cr & ~b.lf;  // the CR before the block is bare
    if (stops.nul) special |= b.nul;
    if (stops.eight_bit) special |= b.hi;
    if (budget < 64) special |= std::uint64_t{1} << budget;
    const unsigned take = special ? static_cast<unsigned>(__builtin_ctzll(special)) : 64u;
    if (take != 0) {
      const std::uint64_t keep = take == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << take) - 1;
      const std::uint64_t lf = b.lf & keep;
      if (Stats) {
        if (lf != 0) {
          // CR of the block's first line end: content offset s.content + first - 1.
          const unsigned first = static_cast<unsigned>(__builtin_ctzll(lf));
          if (s.content + first - 1 - s.line_begin > long_line_octets) s.long_line = true;
          const unsigned last = 63u - static_cast<unsigned>(__builtin_clzll(lf));
          s.line_begin = s.content + last + 1;
          s.lines += M::popcount(lf);
          // Lines wholly inside the block are shorter than 64 octets.
        }
        if (b.hi & keep) s.eight_bit = true;
        s.content += take;
      }
      const std::uint64_t last_bit = std::uint64_t{1} << (take - 1);
      s.at = (b.lf & last_bit) ? at_line_start : (b.cr & last_bit) ? at_after_cr : at_mid_line;
      pos += take;
      budget -= take;
    }
    if (take != 64) break;
  }
  if (Stats && M::any_high(high)) s.eight_bit = true;
  return pos;
}

template <bool Stats>
inline std::size_t skip_clean_swar(const char* p, std::size_t pos, std::size_t n,
                                   std::uint64_t budget, scan_stops stops, scan_state& s) noexcept {
  return skip_clean_impl<masks_swar, Stats>(p, pos, n, budget, stops, s);
}

#ifdef SMTPWIRE_SIMD_X86
template <bool Stats>
inline std::size_t skip_clean_sse2(const char* p, std::size_t pos, std::size_t n,
                                   std::uint64_t budget, scan_stops stops, scan_state& s) noexcept {
  return skip_clean_impl<masks_sse2, Stats>(p, pos, n, budget, stops, s);
}

template <bool Stats>
__attribute__((target("avx2,popcnt,bmi"), flatten)) inline std::size_t skip_clean_avx2(
    const char* p, std::size_t pos, std::size_t n, std::uint64_t budget, scan_stops stops,
    scan_state& s) noexcept {
  return skip_clean_impl<masks_avx2, Stats>(p, pos, n, budget, stops, s);
}

template <bool Stats>
__attribute__((target("avx512f,avx512bw,popcnt,bmi"), flatten)) inline std::size_t
skip_clean_avx512(const char* p, std::size_t pos, std::size_t n, std::uint64_t budget,
                  scan_stops stops, scan_state& s) noexcept {
  return skip_clean_impl<masks_avx512, Stats>(p, pos, n, budget, stops, s);
}
#endif

/// skip_clean_impl with the masks of `kind` (a resolved kind; `scalar`
/// skips nothing).
template <bool Stats>
inline std::size_t skip_clean(scan_kind kind, const char* p, std::size_t pos, std::size_t n,
                              std::uint64_t budget, scan_stops stops, scan_state& s) noexcept {
  switch (kind) {
#ifdef SMTPWIRE_SIMD_X86
    case scan_kind::avx512:
      return skip_clean_avx512<Stats>(p, pos, n, budget, stops, s);
    case scan_kind::avx2:
      return skip_clean_avx2<Stats>(p, pos, n, budget, stops, s);
    case scan_kind::sse2:
      return skip_clean_sse2<Stats>(p, pos, n, budget, stops, s);
#endif
    case scan_kind::swar:
      return skip_clean_swar<Stats>(p, pos, n, budget, stops, s);
    default:
      return pos;
  }
}

}  // namespace smtpwire::detail

#endif  // SMTPWIRE_DETAIL_SIMD_HPP
