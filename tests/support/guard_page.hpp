// Test helper: place bytes so that they end exactly before an inaccessible
// page. A parser that reads one byte past its input crashes (SIGSEGV), with or
// without sanitizers (picohttpparser's technique).
#ifndef SMTPWIRE_TESTS_GUARD_PAGE_HPP
#define SMTPWIRE_TESTS_GUARD_PAGE_HPP

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace smtpwire::test {

class guarded_input {
 public:
  explicit guarded_input(std::string_view s) {
    page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    data_pages_ = (s.size() + page_ - 1) / page_ + 1;
    len_ = (data_pages_ + 1) * page_;
    void* m = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) std::abort();
    base_ = static_cast<char*>(m);
    if (mprotect(base_ + data_pages_ * page_, page_, PROT_NONE) != 0) std::abort();
    char* start = base_ + data_pages_ * page_ - s.size();
    if (!s.empty()) std::memcpy(start, s.data(), s.size());
    view_ = {start, s.size()};
  }
  guarded_input(const guarded_input&) = delete;
  guarded_input& operator=(const guarded_input&) = delete;
  ~guarded_input() { munmap(base_, len_); }
  /// The bytes; the byte after the last one is unreadable.
  std::string_view view() const { return view_; }

 private:
  std::size_t page_ = 0, data_pages_ = 0, len_ = 0;
  char* base_ = nullptr;
  std::string_view view_;
};

}  // namespace smtpwire::test

#endif
