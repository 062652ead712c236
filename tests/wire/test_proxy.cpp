#include <smtpwire/server.hpp>
#include <smtpwire/wire/proxy.hpp>

#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "support/grind.hpp"
#include "support/guard_page.hpp"
#include "support/vectors.hpp"

using smtpwire::errc;
using smtpwire::wire::proxy_address;
using smtpwire::wire::proxy_command;
using smtpwire::wire::proxy_family;
using smtpwire::wire::proxy_header;
using smtpwire::wire::proxy_options;
using smtpwire::wire::proxy_reader;
using smtpwire::wire::proxy_result;
using smtpwire::wire::proxy_status;
using smtpwire::wire::proxy_tlv;
using smtpwire::wire::proxy_transport;
using smtpwire::wire::proxy_version;

namespace {

using smtpwire::test::escape;

proxy_options parse_options(const smtpwire::test::vector_case& vc) {
  proxy_options o;
  for (const auto& [key, v] : smtpwire::test::numeric_options(vc)) {
    if (key == "required")
      o.required = v != 0;
    else if (key == "accept_v1")
      o.accept_v1 = v != 0;
    else if (key == "accept_v2")
      o.accept_v2 = v != 0;
    else if (key == "max_tlv_length")
      o.max_tlv_length = v;
    else
      FAIL("unknown option " << key);
  }
  return o;
}

const char* name(proxy_family f) {
  switch (f) {
    case proxy_family::unspec:
      return "unspec";
    case proxy_family::inet:
      return "inet";
    case proxy_family::inet6:
      return "inet6";
    case proxy_family::unix_socket:
      return "unix_socket";
  }
  return "?";
}

const char* name(proxy_transport t) {
  switch (t) {
    case proxy_transport::unspec:
      return "unspec";
    case proxy_transport::stream:
      return "stream";
    case proxy_transport::dgram:
      return "dgram";
  }
  return "?";
}

std::string describe(const proxy_header& h) {
  std::string log = "header ";
  log += h.version == proxy_version::v1 ? "v1 " : "v2 ";
  log += h.command == proxy_command::local ? "local " : "proxy ";
  log += name(h.family);
  log += ' ';
  log += name(h.transport);
  log += '\n';
  if (h.has_addresses()) {
    log += "source " + std::string(h.source.text()) + " " + std::to_string(h.source.port()) +
           " literal " + std::string(h.source.literal()) + "\n";
    log += "destination " + std::string(h.destination.text()) + " " +
           std::to_string(h.destination.port()) + "\n";
  } else if (h.source.family() != proxy_family::unspec ||
             h.destination.family() != proxy_family::unspec) {
    FAIL("addresses without has_addresses()");
  }
  if (h.family == proxy_family::unix_socket) {
    log += "source_path \"" + escape(h.source_path) + "\"\n";
    log += "destination_path \"" + escape(h.destination_path) + "\"\n";
  }
  auto field = [&](const char* n, std::string_view v) {
    if (!v.empty()) log += std::string(n) + " \"" + escape(v) + "\"\n";
  };
  field("alpn", h.alpn);
  field("authority", h.authority);
  field("unique_id", h.unique_id);
  field("netns", h.netns);
  if (h.ssl.present) {
    log += "ssl client=" + std::to_string(h.ssl.client) + " verify=" + std::to_string(h.ssl.verify);
    auto sub = [&](const char* n, std::string_view v) {
      if (!v.empty()) log += std::string(" ") + n + "=\"" + escape(v) + "\"";
    };
    sub("version", h.ssl.version);
    sub("cn", h.ssl.cn);
    sub("cipher", h.ssl.cipher);
    sub("sig_alg", h.ssl.sig_alg);
    sub("key_alg", h.ssl.key_alg);
    log += '\n';
  }
  if (h.crc32c) log += "crc32c\n";
  std::string_view block = h.tlvs;
  proxy_tlv t;
  std::string types;
  while (next_proxy_tlv(block, t)) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "%02x", t.type);
    types += types.empty() ? "tlv " : " tlv ";
    types += hex;
  }
  if (!block.empty()) FAIL("TLV block not well framed");
  if (!types.empty()) log += types + "\n";
  return log;
}

// Feeds the chunks to one reader and logs what it produced, checking the
// reader's contract on every call.
std::string run_proxy(const std::vector<std::string_view>& chunks, const proxy_options& opt) {
  proxy_reader reader(opt);
  const std::size_t cap = reader.buffer_capacity();
  std::string log;
  std::size_t total = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const std::string_view c = chunks[k];
    const proxy_result r = reader.read(c);
    if (r.consumed > c.size()) FAIL("consumed past the input");
    total += r.consumed;
    if (reader.buffer_capacity() != cap) FAIL("buffer grew");
    if (r.status == proxy_status::need_more) {
      if (r.consumed != c.size()) FAIL("need_more without consuming everything");
      if (r.error != errc::ok) FAIL("need_more with an error");
      continue;
    }
    // The outcome is sticky and consumes nothing more.
    const proxy_result again = reader.read(c.substr(r.consumed));
    if (again.status != r.status || again.error != r.error || again.consumed != 0 ||
        !again.replay.empty())
      FAIL("outcome not repeated, or replay handed over twice");
    if (r.status == proxy_status::error) {
      if (r.error == errc::ok) FAIL("error status without an error");
      return log + "error " + std::string(smtpwire::to_string(r.error)) + "\n";
    }
    if (r.error != errc::ok) FAIL("success with an error");
    std::string smtp(r.replay);
    smtp += c.substr(r.consumed);
    for (std::size_t j = k + 1; j < chunks.size(); ++j)
      smtp += chunks[j];
    if (r.status == proxy_status::header) {
      if (!r.replay.empty()) FAIL("replay with a header");
      log += describe(reader.header());
      log += "boundary " + std::to_string(total) + "\n";
    } else {
      log += "absent boundary " + std::to_string(total - r.replay.size()) + "\n";
    }
    return log + "smtp \"" + escape(smtp) + "\"\n";
  }
  const proxy_result r = reader.finish();
  if (r.consumed != 0) FAIL("finish consumed");
  if (r.status == proxy_status::error)
    return "eof error " + std::string(smtpwire::to_string(r.error)) + "\n";
  if (r.status == proxy_status::absent)
    return "eof absent boundary " + std::to_string(total - r.replay.size()) + "\nsmtp \"" +
           escape(r.replay) + "\"\n";
  FAIL("finish without an outcome");
  return {};
}

}  // namespace

TEST_CASE("proxy vectors, in every chunking", "[wire][proxy]") {
  for (const auto& vc : smtpwire::test::load_vectors("proxy.md")) {
    INFO(vc.file << ":" << vc.line << " " << vc.name);
    const std::string input = vc.bytes("input");
    const proxy_options opt = parse_options(vc);
    smtpwire::test::grind_options g;
    g.max_chunk_size = 40;
    g.random_rounds = 32;
    const std::string log = smtpwire::test::grind(
        input, [&](const std::vector<std::string_view>& chunks) { return run_proxy(chunks, opt); },
        g);
    CHECK(log == vc.text("expect") + "\n");
  }
}

TEST_CASE("proxy vectors before a guard page", "[wire][proxy]") {
  for (const auto& vc : smtpwire::test::load_vectors("proxy.md")) {
    INFO(vc.name);
    const std::string input = vc.bytes("input");
    const proxy_options opt = parse_options(vc);
    smtpwire::test::guarded_input g(input);
    CHECK(run_proxy({g.view()}, opt) == vc.text("expect") + "\n");
    // Every prefix ends at the guard page too: a read past any end crashes.
    for (std::size_t i = 0; i < input.size(); ++i) {
      smtpwire::test::guarded_input prefix(std::string_view(input).substr(0, i));
      (void)run_proxy({prefix.view()}, opt);
    }
  }
}

TEST_CASE("CRC-32C matches the check value", "[wire][proxy]") {
  CHECK(smtpwire::detail::crc32c("123456789") == 0xE3069283u);
  CHECK(smtpwire::detail::crc32c("") == 0u);
}

TEST_CASE("proxy address text agrees with inet_pton / inet_ntop", "[wire][proxy]") {
  std::mt19937 rng(99);
  const char alphabet[] = "0123456789abcdefABCDEF:::::...";
  int accepted6 = 0, accepted4 = 0;
  for (int round = 0; round < 200000; ++round) {
    std::string s;
    const std::size_t n = 1 + rng() % 24;
    for (std::size_t i = 0; i < n; ++i)
      s += alphabet[rng() % (sizeof alphabet - 1)];
    if (rng() % 3 == 0) {  // more plausible dotted quads
      s.clear();
      for (int k = 0; k < 4; ++k)
        s += (k ? "." : "") + std::to_string(rng() % 300) + (rng() % 20 == 0 ? "0" : "");
      if (rng() % 10 == 0) s = "0" + s;
    }
    std::uint8_t ours[16] = {}, theirs[16] = {};
    const bool ok6 = smtpwire::detail::parse_proxy_ipv6(s, ours);
    const bool ref6 = inet_pton(AF_INET6, s.c_str(), theirs) == 1;
    INFO("\"" << s << "\"");
    REQUIRE(ok6 == ref6);
    if (ok6) {
      ++accepted6;
      REQUIRE(std::memcmp(ours, theirs, 16) == 0);
      const proxy_address a = proxy_address::ipv6(ours, 1);
      char text[INET6_ADDRSTRLEN];
      REQUIRE(inet_ntop(AF_INET6, ours, text, sizeof text) != nullptr);
      // glibc writes ::/96 addresses as "::a.b.c.d" (deprecated IPv4-
      // compatible form); RFC 5952 and we use hex there.
      static const std::uint8_t zeros[12] = {};
      if (std::memcmp(ours, zeros, 12) != 0) CHECK(a.text() == text);
      std::uint8_t back[16];
      REQUIRE(smtpwire::detail::parse_proxy_ipv6(a.text(), back));
      CHECK(std::memcmp(back, ours, 16) == 0);
    }
    const bool ok4 = smtpwire::detail::parse_proxy_ipv4(s, ours);
    REQUIRE(ok4 == (inet_pton(AF_INET, s.c_str(), theirs) == 1));
    if (ok4) {
      ++accepted4;
      REQUIRE(std::memcmp(ours, theirs, 4) == 0);
      CHECK(proxy_address::ipv4(ours, 0).text() == s);
    }
  }
  CHECK(accepted6 > 500);
  CHECK(accepted4 > 500);
}

TEST_CASE("proxy headers round-trip through the writers", "[wire][proxy]") {
  std::mt19937 rng(20261129);
  auto bytes = [&](std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i)
      s += static_cast<char>(rng() % 256);
    return s;
  };
  auto text = [&](std::size_t max) {
    std::string s(1 + rng() % max, 'x');
    for (char& c : s)
      c = static_cast<char>('!' + rng() % 94);
    return s;
  };
  int headers = 0, flips = 0, flips_caught = 0;
  for (int round = 0; round < 5000; ++round) {
    proxy_header h;
    std::string store[12];  // keeps the views of h alive
    const bool v1 = rng() % 3 == 0;
    h.version = v1 ? proxy_version::v1 : proxy_version::v2;
    h.command = !v1 && rng() % 8 == 0 ? proxy_command::local : proxy_command::proxy;
    const unsigned pick = rng() % (v1 ? 3 : 4);
    h.family = static_cast<proxy_family>(pick);
    h.transport = h.family == proxy_family::unspec
                      ? proxy_transport::unspec
                      : (v1 || rng() % 2 ? proxy_transport::stream : proxy_transport::dgram);
    std::uint8_t a[16], b[16];
    for (auto& x : a)
      x = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng());
    for (auto& x : b)
      x = static_cast<std::uint8_t>(rng());
    const auto sp = static_cast<std::uint16_t>(rng()), dp = static_cast<std::uint16_t>(rng());
    if (h.family == proxy_family::inet) {
      h.source = proxy_address::ipv4(a, sp);
      h.destination = proxy_address::ipv4(b, dp);
    } else if (h.family == proxy_family::inet6) {
      h.source = proxy_address::ipv6(a, sp);
      h.destination = proxy_address::ipv6(b, dp);
    } else if (h.family == proxy_family::unix_socket) {
      store[0] = "/" + text(100);
      store[1] = "/" + text(100);
      h.source_path = store[0];
      h.destination_path = store[1];
    }
    bool crc = false;
    std::string extra;
    if (!v1 && h.command == proxy_command::proxy) {
      if (rng() % 2) h.alpn = store[2] = bytes(1 + rng() % 20);
      if (rng() % 2) h.authority = store[3] = text(60);
      if (rng() % 2) h.unique_id = store[4] = bytes(1 + rng() % 128);
      if (rng() % 2) h.netns = store[5] = text(20);
      if (rng() % 2) {
        h.ssl.present = true;
        h.ssl.client = static_cast<std::uint8_t>(rng() % 8);
        h.ssl.verify = rng();
        if (rng() % 2) h.ssl.version = store[6] = text(10);
        if (rng() % 2) h.ssl.cn = store[7] = text(40);
        if (rng() % 2) h.ssl.cipher = store[8] = text(30);
        if (rng() % 2) h.ssl.sig_alg = store[9] = text(10);
        if (rng() % 2) h.ssl.key_alg = store[10] = text(10);
      }
      if (rng() % 4 == 0) extra = std::string("\xe3\x00\x02", 3) + bytes(2);
      crc = rng() % 2;
    }
    std::string wire;
    const errc e = v1 ? write_proxy_v1(wire, h) : write_proxy_v2(wire, h, crc, extra);
    if (v1 && h.family == proxy_family::unix_socket) {
      CHECK(e == errc::api_value_invalid);
      CHECK(wire.empty());
      continue;
    }
    REQUIRE(e == errc::ok);
    if (v1) REQUIRE(wire.size() <= proxy_reader::v1_max);
    const std::string smtp = "EHLO client.example\r\n";
    const std::string stream = wire + smtp;
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0;;) {
      at += 1 + rng() % 50;
      if (at >= stream.size()) break;
      cuts.push_back(at);
    }
    const auto chunks = smtpwire::test::split_at(stream, cuts);
    proxy_options opt;
    opt.max_tlv_length = 2048;
    proxy_reader reader(opt);
    std::size_t total = 0;
    std::string rest;
    bool done = false;
    for (const auto& c : chunks) {
      if (done) {
        rest += c.view();
        continue;
      }
      const proxy_result r = reader.read(c.view());
      INFO("round " << round << " \"" << escape(stream) << "\"");
      REQUIRE(r.status != proxy_status::error);
      REQUIRE(r.status != proxy_status::absent);
      total += r.consumed;
      if (r.status == proxy_status::header) {
        done = true;
        rest += c.view().substr(r.consumed);
      }
    }
    REQUIRE(done);
    CHECK(total == wire.size());
    CHECK(rest == smtp);
    const proxy_header& got = reader.header();
    CHECK(got.version == h.version);
    CHECK(got.command == h.command);
    if (h.command == proxy_command::local) {
      CHECK(got.family == proxy_family::unspec);
      ++headers;
      continue;
    }
    CHECK(got.family == h.family);
    CHECK(got.transport == h.transport);
    CHECK(got.source == h.source);
    CHECK(got.destination == h.destination);
    CHECK(got.source.text() == h.source.text());
    CHECK(got.source_path == h.source_path);
    CHECK(got.destination_path == h.destination_path);
    CHECK(got.alpn == h.alpn);
    CHECK(got.authority == h.authority);
    CHECK(got.unique_id == h.unique_id);
    CHECK(got.netns == h.netns);
    CHECK(got.ssl.present == h.ssl.present);
    if (h.ssl.present) {
      CHECK(got.ssl.client == h.ssl.client);
      CHECK(got.ssl.verify == h.ssl.verify);
      CHECK(got.ssl.version == h.ssl.version);
      CHECK(got.ssl.cn == h.ssl.cn);
      CHECK(got.ssl.cipher == h.ssl.cipher);
      CHECK(got.ssl.sig_alg == h.ssl.sig_alg);
      CHECK(got.ssl.key_alg == h.ssl.key_alg);
    }
    CHECK(got.crc32c == crc);
    if (crc) {
      // A flipped bit after the signature (the length field aside, which
      // changes where the header ends) fails the header, unless it turned
      // the CRC32C TLV into another TLV: then no checksum is claimed.
      std::string bad = wire;
      std::size_t at = 12 + rng() % (bad.size() - 14);
      if (at >= 14) at += 2;
      bad[at] = static_cast<char>(bad[at] ^ (1u << (rng() % 8)));
      proxy_reader r2(opt);
      const proxy_result r = r2.read(bad);
      if (r.status == proxy_status::error)
        ++flips_caught;
      else
        CHECK((r.status == proxy_status::header && !r2.header().crc32c));
      ++flips;
    }
    ++headers;
  }
  CHECK(headers > 4000);
  CHECK(flips > 1000);
  CHECK(flips_caught * 100 > flips * 95);
}

TEST_CASE("the client address reaches the Received header", "[wire][proxy]") {
  proxy_reader reader;
  const std::string in = "PROXY TCP6 2001:db8::7 2001:db8::25 40000 25\r\n";
  REQUIRE(reader.read(in).status == proxy_status::header);
  const proxy_header& h = reader.header();
  REQUIRE(h.has_addresses());
  smtpwire::received_fields f;
  f.helo = "client.example";
  f.client_address = h.source.literal();
  f.by = "mx.example.org";
  f.date_time = "Sun, 29 Nov 2026 10:00:00 +0000";
  std::string out;
  REQUIRE(smtpwire::append_received(out, f) == errc::ok);
  CHECK(out.rfind("Received: from client.example ([IPv6:2001:db8::7])\r\n", 0) == 0);
}

TEST_CASE("proxy header views live in the reader, addresses in the value", "[wire][proxy]") {
  proxy_header copy;
  std::string wire;
  {
    proxy_header h;
    h.family = proxy_family::inet;
    h.transport = proxy_transport::stream;
    const std::uint8_t s[4] = {198, 51, 100, 9}, d[4] = {203, 0, 113, 1};
    h.source = proxy_address::ipv4(s, 1234);
    h.destination = proxy_address::ipv4(d, 25);
    h.alpn = "smtp";
    REQUIRE(write_proxy_v2(wire, h, true) == errc::ok);
  }
  proxy_reader reader;
  REQUIRE(reader.read(wire).status == proxy_status::header);
  const char* alpn = reader.header().alpn.data();
  const bool in_input = alpn >= wire.data() && alpn < wire.data() + wire.size();
  CHECK_FALSE(in_input);  // a copy, not the input
  copy = reader.header();
  wire.assign(wire.size(), '\0');  // the input buffer may go away
  CHECK(copy.alpn == "smtp");
  CHECK(copy.source.text() == "198.51.100.9");
  CHECK(copy.source.literal() == "198.51.100.9");
  reader.reset();
  CHECK(copy.source.text() == "198.51.100.9");  // held in the value
  CHECK(reader.read("PROXY UNKNOWN\r\n").status == proxy_status::header);
  CHECK_FALSE(reader.header().has_addresses());
}

TEST_CASE("proxy reader memory is bounded by its options", "[wire][proxy]") {
  proxy_options o;
  CHECK(proxy_reader(o).buffer_capacity() == 16 + 216 + 1024);
  o.max_tlv_length = 1u << 30;
  proxy_reader big(o);
  CHECK(big.options().max_tlv_length == 65535 - 216);
  CHECK(big.buffer_capacity() == 16 + 65535);
}

TEST_CASE("proxy writers refuse what they cannot write", "[wire][proxy]") {
  std::string out;
  proxy_header h;
  h.command = proxy_command::local;
  CHECK(write_proxy_v1(out, h) == errc::api_value_invalid);
  h.command = proxy_command::proxy;
  h.family = proxy_family::inet;
  h.transport = proxy_transport::stream;
  CHECK(write_proxy_v1(out, h) == errc::api_value_invalid);  // no addresses
  CHECK(write_proxy_v2(out, h) == errc::api_value_invalid);
  h.family = proxy_family::unix_socket;
  const std::string long_path(109, 'p');
  h.source_path = long_path;
  CHECK(write_proxy_v2(out, h) == errc::api_value_invalid);
  h.family = proxy_family::unspec;
  h.transport = proxy_transport::unspec;
  h.source_path = {};
  const std::string uid(129, 'u');
  h.unique_id = uid;
  CHECK(write_proxy_v2(out, h) == errc::api_value_invalid);
  const std::string huge(70000, 'a');
  h.unique_id = {};
  h.authority = huge;
  CHECK(write_proxy_v2(out, h) == errc::api_value_invalid);
  CHECK(out.empty());
  h.authority = {};
  CHECK(write_proxy_v1(out, h) == errc::ok);
  CHECK(out == "PROXY UNKNOWN\r\n");
}

TEST_CASE("proxy errors map to 421 replies and have names", "[wire][proxy]") {
  for (int v = static_cast<int>(errc::proxy_missing); v <= static_cast<int>(errc::proxy_truncated);
       ++v) {
    const auto e = static_cast<errc>(v);
    INFO(v);
    CHECK(smtpwire::to_string(e).substr(0, 6) == "proxy_");
    CHECK(smtpwire::reply_for(e).code == 421);
    CHECK(smtpwire::reply_for(e).enhanced == "4.3.0");
  }
  CHECK(smtpwire::make_error_code(errc::proxy_crc32c_mismatch).message() ==
        "proxy_crc32c_mismatch: PROXY protocol v2 header checksum mismatch");
}
