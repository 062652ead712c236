// smtpwire tools — where smtpwire-sink puts accepted messages: a Maildir
// (tmp/ then rename into new/, unique names, fsync of the file and of new/),
// an mboxrd file (From_ line, ">From " quoting, LF line ends, fcntl lock,
// fsync, truncated back on failure), or nowhere (discard, counted).
#ifndef SMTPWIRE_TOOLS_COMMON_STORE_HPP
#define SMTPWIRE_TOOLS_COMMON_STORE_HPP

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <string_view>

namespace smtpwire_tools {

/// How messages are stored.
enum class store_kind { maildir, mbox, discard };

/// The store shared by every session (and thread) of a sink.
class message_store {
 public:
  message_store() = default;
  message_store(const message_store&) = delete;
  message_store& operator=(const message_store&) = delete;
  ~message_store() {
    if (dir_fd_ >= 0) ::close(dir_fd_);
    if (mbox_fd_ >= 0) ::close(mbox_fd_);
  }

  /// Prepares the store: creates the Maildir's tmp/, new/ and cur/ (and the
  /// directory itself), or opens (creating) the mbox file. False with `why`
  /// on failure.
  bool open(store_kind k, const std::string& path, const std::string& host, std::string& why) {
    kind_ = k;
    path_ = path;
    host_ = host;
    for (char c : host) {  // Maildir names: '/' and ':' are escaped (as Courier does)
      if (c == '/')
        safe_host_ += "\\057";
      else if (c == ':')
        safe_host_ += "\\072";
      else
        safe_host_.push_back(c);
    }
    if (k == store_kind::maildir) {
      for (const std::string& d : {path, path + "/tmp", path + "/new", path + "/cur"}) {
        if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
          why = "cannot create " + d + ": " + std::strerror(errno);
          return false;
        }
      }
      for (const char* sub : {"/tmp", "/new"}) {
        const std::string d = path + sub;
        if (::access(d.c_str(), W_OK | X_OK) != 0) {
          why = "cannot write to " + d + ": " + std::strerror(errno);
          return false;
        }
      }
      dir_fd_ = ::open((path + "/new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dir_fd_ < 0) {
        why = "cannot open " + path + "/new: " + std::strerror(errno);
        return false;
      }
    } else if (k == store_kind::mbox) {
      mbox_fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (mbox_fd_ < 0) {
        why = "cannot open " + path + ": " + std::strerror(errno);
        return false;
      }
    }
    return true;
  }

  store_kind kind() const noexcept { return kind_; }
  const std::string& path() const noexcept { return path_; }

  /// A new unique queue id (an RFC 5322 atom: letters and digits) and, for
  /// a Maildir, the file name: "<sec>.M<usec>P<pid>Q<n>.<host>".
  void make_id(std::string& id, std::string& file_name) {
    timeval tv{};
    ::gettimeofday(&tv, nullptr);
    const std::uint64_t n = ++sequence_;
    char buf[96];
    std::snprintf(buf, sizeof buf, "%lldM%06ldP%ldQ%llu", static_cast<long long>(tv.tv_sec),
                  static_cast<long>(tv.tv_usec), static_cast<long>(::getpid()),
                  static_cast<unsigned long long>(n));
    id = buf;
    std::snprintf(buf, sizeof buf, "%lld.M%06ldP%ldQ%llu.", static_cast<long long>(tv.tv_sec),
                  static_cast<long>(tv.tv_usec), static_cast<long>(::getpid()),
                  static_cast<unsigned long long>(n));
    file_name = buf + safe_host_;
  }

  int new_dir_fd() const noexcept { return dir_fd_; }
  int mbox_fd() const noexcept { return mbox_fd_; }
  std::mutex& mbox_mutex() noexcept { return mbox_mu_; }

 private:
  store_kind kind_ = store_kind::discard;
  std::string path_, host_, safe_host_;
  int dir_fd_ = -1;   // the Maildir's new/, for fsync after each rename
  int mbox_fd_ = -1;  // the mbox, O_APPEND
  std::mutex mbox_mu_;
  std::atomic<std::uint64_t> sequence_{0};
};

/// One message being received: begin() at the start of content, write()
/// for each piece (the Received header first), then commit() or abort().
/// The destructor aborts an uncommitted message (no partial file remains).
class message_writer {
 public:
  explicit message_writer(message_store& s) : s_(s) {}
  message_writer(const message_writer&) = delete;
  message_writer& operator=(const message_writer&) = delete;
  ~message_writer() { abort(); }

  /// Starts a message; false with `why` when its file cannot be created.
  bool begin(std::string_view from, std::string& why) {
    s_.make_id(id_, name_);
    from_ = std::string(from);
    octets_ = 0;
    err_ = 0;
    buf_.clear();
    if (s_.kind() != store_kind::maildir) return true;
    tmp_path_ = s_.path() + "/tmp/" + name_;
    fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      why = std::strerror(errno);
      return false;
    }
    return true;
  }

  /// Appends message octets (CRLF line ends, as received).
  void write(std::string_view b) {
    octets_ += b.size();
    if (s_.kind() == store_kind::discard || err_ != 0) return;
    buf_.append(b.data(), b.size());
    if (s_.kind() == store_kind::maildir && buf_.size() >= flush_at) flush();
  }

  /// Makes the message durable: Maildir: write, fsync, rename into new/,
  /// fsync new/; mbox: append under the lock, fsync (truncated back on
  /// failure). False with `why` (e.g. "No space left on device").
  bool commit(std::string& why) {
    switch (s_.kind()) {
      case store_kind::discard:
        return true;
      case store_kind::mbox:
        return commit_mbox(why);
      case store_kind::maildir:
        break;
    }
    flush();
    if (err_ == 0 && ::fsync(fd_) != 0) err_ = errno;
    if (::close(fd_) != 0 && err_ == 0) err_ = errno;
    fd_ = -1;
    const std::string final_path = s_.path() + "/new/" + name_;
    if (err_ == 0 && ::rename(tmp_path_.c_str(), final_path.c_str()) != 0) err_ = errno;
    if (err_ != 0) {
      why = std::strerror(err_);
      (void)::unlink(tmp_path_.c_str());
      tmp_path_.clear();
      return false;
    }
    tmp_path_.clear();
    if (::fsync(s_.new_dir_fd()) != 0) {
      // The file is in new/ but the rename may not survive a crash: refuse
      // (the client retries; a duplicate beats a loss).
      why = std::string("fsync of new/: ") + std::strerror(errno);
      (void)::unlink(final_path.c_str());
      return false;
    }
    stored_ = "new/" + name_;
    return true;
  }

  /// Drops the message (its temporary file too).
  void abort() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!tmp_path_.empty()) (void)::unlink(tmp_path_.c_str());
    tmp_path_.clear();
    buf_.clear();
  }

  const std::string& id() const noexcept { return id_; }
  std::uint64_t octets() const noexcept { return octets_; }
  /// Where it went: "new/<name>" (Maildir), the mbox path, or "discarded".
  std::string stored() const {
    return s_.kind() == store_kind::maildir ? stored_
           : s_.kind() == store_kind::mbox  ? s_.path()
                                            : std::string("discarded");
  }

 private:
  static constexpr std::size_t flush_at = 65536;

  void flush() {
    std::size_t off = 0;
    while (err_ == 0 && off < buf_.size()) {
      const ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    buf_.clear();
  }

  // mboxrd (RFC 4155 and the "mboxrd" convention): a From_ line, every
  // line matching ^>*From␠ gets one more '>', LF line ends, an empty line
  // after the message.
  bool commit_mbox(std::string& why) {
    std::string out;
    out.reserve(buf_.size() + 128);
    char date[64];
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
    std::string sender = from_;
    if (sender.size() >= 2 && sender.front() == '<') sender = sender.substr(1, sender.size() - 2);
    if (sender.empty() || sender.find_first_of(" \t") != std::string::npos)
      sender = "MAILER-DAEMON";
    out += "From " + sender + " " + date + "\n";
    std::size_t pos = 0;
    while (pos < buf_.size()) {
      std::size_t e = buf_.find('\n', pos);
      std::string_view l(buf_.data() + pos, (e == std::string::npos ? buf_.size() : e) - pos);
      pos = e == std::string::npos ? buf_.size() : e + 1;
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      std::size_t g = 0;
      while (g < l.size() && l[g] == '>')
        ++g;
      if (l.substr(g, 5) == "From ") out.push_back('>');
      out.append(l.data(), l.size());
      out.push_back('\n');
    }
    out.push_back('\n');
    buf_.clear();
    std::lock_guard<std::mutex> g(s_.mbox_mutex());
    const int fd = s_.mbox_fd();
    flock lk{};
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    while (::fcntl(fd, F_SETLKW, &lk) != 0) {
      if (errno != EINTR) {
        why = std::string("cannot lock the mbox: ") + std::strerror(errno);
        return false;
      }
    }
    const off_t start = ::lseek(fd, 0, SEEK_END);
    int err = 0;
    std::size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::write(fd, out.data() + off, out.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      off += static_cast<std::size_t>(n);
    }
    if (err == 0 && ::fsync(fd) != 0) err = errno;
    if (err != 0 && start >= 0) (void)::ftruncate(fd, start);  // no partial message stays
    lk.l_type = F_UNLCK;
    (void)::fcntl(fd, F_SETLK, &lk);
    if (err != 0) {
      why = std::strerror(err);
      return false;
    }
    return true;
  }

  message_store& s_;
  std::string id_, name_, tmp_path_, stored_, from_;
  std::string buf_;
  int fd_ = -1;
  int err_ = 0;
  std::uint64_t octets_ = 0;
};

}  // namespace smtpwire_tools

#endif  // SMTPWIRE_TOOLS_COMMON_STORE_HPP
