// Catch2 v2 runner, compiled by the build only for -fno-exceptions builds
// (CMake SMTPWIRE_NO_EXCEPTIONS, meson cpp_eh=none). Debian's prebuilt
// Catch2WithMain is compiled with exceptions, so a failing REQUIRE would throw
// through -fno-exceptions frames; compiled with the tests' own flags and
// CATCH_CONFIG_DISABLE_EXCEPTIONS, a failing REQUIRE ends the process instead.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
