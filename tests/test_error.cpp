#include <smtpwire/error.hpp>

#include <catch2/catch.hpp>

#include <string>

#include "support/vectors.hpp"

using smtpwire::errc;

TEST_CASE("errc is a std::error_code enum with its own category", "[error]") {
  std::error_code ec = errc::bare_lf;
  CHECK(ec);
  CHECK(std::string(ec.category().name()) == "smtpwire");
  CHECK(ec.message().find("bare_lf") == 0);
  CHECK_FALSE(std::error_code(errc::ok));
  CHECK(ec == make_error_code(errc::bare_lf));
  CHECK(ec != make_error_code(errc::bare_cr));
}

TEST_CASE("every protocol error maps to a well-formed reply", "[error]") {
  for (int v = 1; v < 1000; ++v) {
    const auto e = static_cast<errc>(v);
    if (smtpwire::to_string(e) == "unknown") continue;
    const auto r = smtpwire::reply_for(e);
    INFO(smtpwire::to_string(e));
    CHECK(r.code >= 400);
    CHECK(r.code <= 559);
    // The enhanced code's class agrees with the basic code's class (RFC 3463 §3).
    REQUIRE(r.enhanced.size() >= 5);
    CHECK(r.enhanced[0] == static_cast<char>('0' + r.code / 100));
    CHECK_FALSE(r.text.empty());
  }
}

TEST_CASE("result holds a value or an error", "[error]") {
  smtpwire::result<std::string> good = std::string("x");
  REQUIRE(good);
  CHECK(*good == "x");
  CHECK(good.error() == errc::ok);
  smtpwire::result<std::string> bad = errc::mail_syntax;
  CHECK_FALSE(bad);
  CHECK(bad.error() == errc::mail_syntax);
  bad = good;
  CHECK(bad.value() == "x");
}

TEST_CASE("vector files decode escapes", "[error][vectors]") {
  CHECK(smtpwire::test::decode_escapes("a\\r\\n\\0\\x41\\\\") == std::string("a\r\n\0A\\", 6));
}
