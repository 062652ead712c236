// smtpwire tools — small helpers shared by smtpwire-send and smtpwire-sink:
// command-line option scanning, whole-file reads, numbers, host name, time.
#ifndef SMTPWIRE_TOOLS_COMMON_UTIL_HPP
#define SMTPWIRE_TOOLS_COMMON_UTIL_HPP

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

namespace smtpwire_tools {

/// Walks argv: "--name value", "--name=value" and flags. Not a general
/// parser: just enough for the tools' fixed option sets.
class option_scanner {
 public:
  option_scanner(int argc, char** argv) : argc_(argc), argv_(argv) {}
  /// Moves to the next argument; false at the end. name() is the option
  /// ("--from", "-v") or a non-option argument.
  bool next() {
    if (++i_ >= argc_) return false;
    std::string_view a = argv_[i_];
    inline_value_ = false;
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      const auto eq = a.find('=');
      if (eq != std::string_view::npos) {
        name_ = std::string(a.substr(0, eq));
        value_ = std::string(a.substr(eq + 1));
        inline_value_ = true;
        return true;
      }
    }
    name_ = std::string(a);
    return true;
  }
  /// The current option's name.
  const std::string& name() const noexcept { return name_; }
  /// The option's value ("--x=v" or the next argument); false when missing.
  bool value(std::string& out) {
    if (inline_value_) {
      out = value_;
      inline_value_ = false;
      return true;
    }
    if (i_ + 1 >= argc_) return false;
    out = argv_[++i_];
    return true;
  }
  /// True when "--x=v" gave a value a flag does not take.
  bool has_inline_value() const noexcept { return inline_value_; }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string name_, value_;
  bool inline_value_ = false;
};

/// Reads a whole file ("-" for standard input) into `out`, byte for byte.
/// On failure returns false with `why` set (strerror text).
inline bool read_file(const std::string& path, std::string& out, std::string& why) {
  const int fd = path == "-" ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = std::strerror(errno);
    return false;
  }
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      why = std::strerror(errno);
      if (fd != 0) ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (fd != 0) ::close(fd);
  return true;
}

/// A decimal number, optionally followed by k, M or G (powers of 1024).
inline bool parse_size(std::string_view s, std::uint64_t& out) {
  std::uint64_t mult = 1;
  if (!s.empty()) {
    const char last = s.back();
    if (last == 'k' || last == 'K') mult = 1024;
    if (last == 'm' || last == 'M') mult = 1024 * 1024;
    if (last == 'g' || last == 'G') mult = 1024 * 1024 * 1024;
    if (mult != 1) s.remove_suffix(1);
  }
  if (s.empty() || s.size() > 15) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v * mult;
  return true;
}

/// This machine's name (gethostname), or "localhost" when it is not a
/// usable domain (empty, or holding characters a domain cannot).
inline std::string local_host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  for (const char* p = buf; *p != '\0'; ++p) {
    const char c = *p;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) return "localhost";
  }
  return buf;
}

/// The current time as an RFC 5322 date-time in UTC ("Sun, 29 Nov 2026
/// 05:00:00 +0000"); day and month names are English whatever the locale.
inline std::string rfc5322_now() {
  static const char* const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
                tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

/// Constant-time equality for secrets (the time depends on the lengths only).
inline bool secret_equal(std::string_view a, std::string_view b) noexcept {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  const std::size_t n = a.size() < b.size() ? a.size() : b.size();
  for (std::size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  return diff == 0;
}

}  // namespace smtpwire_tools

#endif  // SMTPWIRE_TOOLS_COMMON_UTIL_HPP
