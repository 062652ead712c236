// Test support: two smtpwire::openssl::channel objects joined in memory by a
// seeded, randomly chunked pipe, and a handshake driver.
#ifndef SMTPWIRE_TEST_OPENSSL_PIPE_HPP
#define SMTPWIRE_TEST_OPENSSL_PIPE_HPP

#include <smtpwire/openssl/channel.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>

namespace smtpwire_test {

struct wire_pipe {
  std::mt19937 rng;
  std::size_t max_chunk;
  explicit wire_pipe(std::uint32_t seed, std::size_t max = 4096) : rng(seed), max_chunk(max) {}

  // One random chunk from `from` to `to`; true when an octet moved.
  bool move(smtpwire::openssl::channel& from, smtpwire::openssl::channel& to) {
    const std::string_view out = from.ciphertext_out();
    if (out.empty()) return false;
    const std::size_t want = std::uniform_int_distribution<std::size_t>(1, max_chunk)(rng);
    const std::size_t k = std::min(out.size(), want);
    const std::size_t taken = to.receive_ciphertext(out.substr(0, k));
    from.consume_ciphertext(taken);
    return taken != 0;
  }
};

struct handshake_outcome {
  smtpwire::openssl::handshake_status client;
  smtpwire::openssl::handshake_status server;
  bool established() const noexcept {
    return client == smtpwire::openssl::handshake_status::done &&
           server == smtpwire::openssl::handshake_status::done;
  }
};

// Runs both handshakes until no octet moves any more.
inline handshake_outcome run_handshake(smtpwire::openssl::channel& c, smtpwire::openssl::channel& s,
                                       wire_pipe& p) {
  handshake_outcome o{c.handshake(), s.handshake()};
  for (int guard = 0; guard < 100000; ++guard) {
    bool moved = p.move(c, s);
    o.server = s.handshake();
    moved = p.move(s, c) || moved;
    o.client = c.handshake();
    if (!moved && c.ciphertext_out().empty() && s.ciphertext_out().empty()) break;
  }
  return o;
}

}  // namespace smtpwire_test

#endif  // SMTPWIRE_TEST_OPENSSL_PIPE_HPP
