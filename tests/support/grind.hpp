// Test helper: feed the same input to an incremental reader in every chunking
// and require identical results ("grinding", after Boost.Beast's tests).
#ifndef SMTPWIRE_TESTS_GRIND_HPP
#define SMTPWIRE_TESTS_GRIND_HPP

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace smtpwire::test {

/// One chunk in its own heap block of exactly its size, so ASan catches a
/// reader that looks past the end of the chunk it was given.
class chunk {
 public:
  explicit chunk(std::string_view s) : size_(s.size()), data_(new char[s.size() ? s.size() : 1]) {
    for (std::size_t i = 0; i < s.size(); ++i)
      data_[i] = s[i];
  }
  std::string_view view() const { return {data_.get(), size_}; }

 private:
  std::size_t size_;
  std::unique_ptr<char[]> data_;
};

/// Splits `input` at the given cut points (ascending, within bounds).
inline std::vector<chunk> split_at(std::string_view input, const std::vector<std::size_t>& cuts) {
  std::vector<chunk> out;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    out.emplace_back(input.substr(from, cut - from));
    from = cut;
  }
  out.emplace_back(input.substr(from));
  return out;
}

inline std::vector<std::string_view> views(const std::vector<chunk>& chunks) {
  std::vector<std::string_view> v;
  v.reserve(chunks.size());
  for (const auto& c : chunks)
    v.push_back(c.view());
  return v;
}

struct grind_options {
  std::size_t max_chunk_size = 64;  ///< every chunk size 1..min(n, this) is tried
  int random_rounds = 64;           ///< seeded random chunkings
  std::uint32_t seed = 0x5eed;
};

/// Runs `run(chunks)` (a callable taking `const std::vector<std::string_view>&`
/// and returning a printable log of what the reader produced) on: the whole
/// input, every single split point, every fixed chunk size from 1 to
/// max_chunk_size, and seeded random chunkings. Every log must equal the log
/// of the whole input, which is returned.
template <class Run>
std::string grind(std::string_view input, Run&& run, grind_options opt = {}) {
  const std::string whole = run(views(split_at(input, {})));
  auto check = [&](const std::vector<std::size_t>& cuts, const char* how) {
    const std::string got = run(views(split_at(input, cuts)));
    if (got != whole) {
      std::string where;
      for (auto c : cuts)
        where += std::to_string(c) + ' ';
      INFO("chunking " << how << " cuts: " << where);
      REQUIRE(got == whole);
    }
  };
  for (std::size_t i = 1; i < input.size(); ++i)
    check({i}, "single split");
  const std::size_t max_size = std::min(input.size(), opt.max_chunk_size);
  for (std::size_t size = 1; size <= max_size; ++size) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = size; at < input.size(); at += size)
      cuts.push_back(at);
    check(cuts, "fixed size");
  }
  std::mt19937 rng(opt.seed);
  for (int round = 0; round < opt.random_rounds && input.size() > 1; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    for (;;) {
      at += 1 + rng() % (1 + rng() % 32);
      if (at >= input.size()) break;
      cuts.push_back(at);
    }
    check(cuts, "random");
  }
  return whole;
}

}  // namespace smtpwire::test

#endif
