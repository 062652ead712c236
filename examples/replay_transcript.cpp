// Replays a recorded SMTP conversation through smtpwire's grammar and prints
// what it understood: every reply the server sent (code, enhanced status
// code, text; the EHLO capabilities), every command the client sent with its
// typed arguments and ESMTP parameters, and the message content as the DATA
// decoder delivered it. Each direction is fed to its reader exactly in the
// chunks that were read from the socket when the conversation was recorded
// (scripts/record-transcript).
//
// Usage: replay_transcript [FILE...]   (default: the transcripts in data/)
// Exit status 0 when every byte was understood without an error.
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/data.hpp>
#include <smtpwire/wire/ehlo.hpp>
#include <smtpwire/wire/line.hpp>
#include <smtpwire/wire/params.hpp>
#include <smtpwire/wire/reply.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace wire = smtpwire::wire;
using smtpwire::errc;

namespace {

struct chunk {
  char from;  // 'S' server or 'C' client
  std::string bytes;
};

int hex_digit(char h) {
  if (h >= '0' && h <= '9') return h - '0';
  if (h >= 'a' && h <= 'f') return h - 'a' + 10;
  if (h >= 'A' && h <= 'F') return h - 'A' + 10;
  return -1;
}

// "S: <escaped bytes>" / "C: <escaped bytes>", one read per line.
bool load(const char* path, std::vector<chunk>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 3 || (line[0] != 'S' && line[0] != 'C') || line.compare(1, 2, ": ") != 0)
      continue;
    chunk c{line[0], {}};
    for (std::size_t i = 3; i < line.size(); ++i) {
      if (line[i] != '\\' || i + 1 == line.size()) {
        c.bytes += line[i];
        continue;
      }
      switch (line[++i]) {
        case 'r':
          c.bytes += '\r';
          break;
        case 'n':
          c.bytes += '\n';
          break;
        case 't':
          c.bytes += '\t';
          break;
        case '0':
          c.bytes += '\0';
          break;
        case 'x':
          if (i + 2 < line.size() && hex_digit(line[i + 1]) >= 0 && hex_digit(line[i + 2]) >= 0) {
            c.bytes += static_cast<char>(hex_digit(line[i + 1]) * 16 + hex_digit(line[i + 2]));
            i += 2;
          }
          break;
        default:
          c.bytes += line[i];
      }
    }
    out.push_back(std::move(c));
  }
  return true;
}

std::string printable(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (u >= 0x20 && u < 0x7f) {
      out += ch;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  return out;
}

// The client's side of the conversation: command lines, then content after
// DATA, then command lines again.
class client_side {
 public:
  // Returns false on the first error.
  bool feed(std::string_view in) {
    while (!in.empty()) {
      if (in_data_) {
        const wire::data_result r = data_.decode(in);
        in.remove_prefix(r.consumed);
        if (r.status == wire::data_status::content) {
          content_ += r.content;
        } else if (r.status == wire::data_status::end) {
          end_of_data(r.error);
          if (r.error != errc::ok) return false;
        } else if (r.status == wire::data_status::error) {
          std::printf("  C  content error %s at octet %llu\n",
                      std::string(smtpwire::to_string(r.error)).c_str(),
                      static_cast<unsigned long long>(r.error_offset));
        } else {
          break;
        }
        continue;
      }
      const wire::line_result r = lines_.read(in);
      in.remove_prefix(r.consumed);
      if (r.status == wire::line_status::need_more) break;
      if (r.status == wire::line_status::error) {
        std::printf("  C  framing error: %s\n", std::string(smtpwire::to_string(r.error)).c_str());
        return false;
      }
      if (!command(r.line)) return false;
    }
    return true;
  }

  // What the next reply answers: a command's verb or the end of data
  // (replies come in order); "greeting" before anything was sent.
  std::string_view take_answered() {
    if (sent_.empty()) return "greeting";
    const std::string_view v = sent_.front();
    sent_.erase(sent_.begin());
    return v;
  }

 private:
  bool command(std::string_view line) {
    const auto cmd = wire::parse_command(line);
    if (!cmd) {
      const auto reply = smtpwire::reply_for(cmd.error());
      std::printf("  C  %s -> error %s (a server replies %d %s %s)\n", printable(line).c_str(),
                  std::string(smtpwire::to_string(cmd.error())).c_str(), reply.code,
                  std::string(reply.enhanced).c_str(), std::string(reply.text).c_str());
      return false;
    }
    sent_.push_back(wire::to_string(cmd->kind));
    std::printf("  C  %s", std::string(wire::to_string(cmd->kind)).c_str());
    switch (cmd->kind) {
      case wire::verb::helo:
      case wire::verb::ehlo:
      case wire::verb::lhlo:
        std::printf(" domain=%s", std::string(cmd->domain).c_str());
        break;
      case wire::verb::mail:
      case wire::verb::rcpt: {
        const auto& p = cmd->path;
        if (p.null)
          std::printf(" null reverse-path");
        else if (p.postmaster)
          std::printf(" <Postmaster>");
        else
          std::printf(" local-part=%s domain=%s", std::string(p.address.local_part).c_str(),
                      std::string(p.address.domain).c_str());
        if (!p.source_route.empty())
          std::printf(" source-route=%s", std::string(p.source_route).c_str());
        if (!params(cmd->kind, cmd->params)) return false;
        break;
      }
      case wire::verb::data:
        in_data_ = true;
        data_.reset();
        content_.clear();
        break;
      case wire::verb::bdat:
        std::printf(" size=%llu%s", static_cast<unsigned long long>(cmd->size),
                    cmd->last ? " LAST" : "");
        break;
      default:
        if (!cmd->argument.empty()) std::printf(" argument=%s", printable(cmd->argument).c_str());
    }
    std::printf("\n");
    return true;
  }

  static bool params(wire::verb v, std::string_view text) {
    if (text.empty()) return true;
    std::printf(" params:");
    wire::param_reader reader(text, false);
    wire::esmtp_param p;
    while (reader.next(p))
      std::printf(" %s%s%s", std::string(p.keyword).c_str(), p.has_value ? "=" : "",
                  std::string(p.value).c_str());
    const errc e = v == wire::verb::mail ? wire::parse_mail_params(text).error()
                                         : wire::parse_rcpt_params(text).error();
    if (e != errc::ok) {
      std::printf(" -> error %s\n", std::string(smtpwire::to_string(e)).c_str());
      return false;
    }
    return true;
  }

  void end_of_data(errc e) {
    in_data_ = false;
    sent_.push_back("end of data");
    std::printf("  C  content  %llu octets in %llu lines (%llu on the wire)%s%s -> %s\n",
                static_cast<unsigned long long>(data_.octets()),
                static_cast<unsigned long long>(data_.lines()),
                static_cast<unsigned long long>(data_.wire_octets()),
                data_.eight_bit() ? ", 8-bit" : "", data_.long_lines() ? ", long lines" : "",
                e == errc::ok ? "end of data" : std::string(smtpwire::to_string(e)).c_str());
    std::string_view body = content_;
    while (!body.empty()) {
      const std::size_t eol = body.find("\r\n");
      std::printf("     | %s\n", printable(body.substr(0, eol)).c_str());
      body.remove_prefix(eol == std::string_view::npos ? body.size() : eol + 2);
    }
  }

  wire::line_reader lines_;
  wire::data_decoder data_;
  bool in_data_ = false;
  std::string content_;  // only so the demo can print the message
  std::vector<std::string_view> sent_;
};

bool server_feed(wire::reply_reader& replies, client_side& client, std::string_view in) {
  while (!in.empty()) {
    const wire::reply_result r = replies.read(in);
    in.remove_prefix(r.consumed);
    if (r.status == wire::reply_status::need_more) break;
    if (r.status == wire::reply_status::error) {
      std::printf("  S  reply error: %s\n", std::string(smtpwire::to_string(r.error)).c_str());
      return false;
    }
    const wire::reply_view& reply = r.reply;
    const std::string_view answered = client.take_answered();
    std::printf("  S  %d (%s, %s)", reply.code(),
                reply.is_positive()    ? "positive"
                : reply.is_transient() ? "transient"
                                       : "permanent",
                std::string(answered).c_str());
    if (reply.front().enhanced) {
      const auto& e = *reply.front().enhanced;
      std::printf(" [%u.%u.%u]", e.cls, e.subject, e.detail);
    }
    std::printf(" \"%s\"%s\n", printable(reply.front().text).c_str(),
                reply.size() > 1 ? " + more lines" : "");
    if (answered == wire::to_string(wire::verb::ehlo) && reply.is_positive_completion()) {
      std::vector<std::string_view> texts;
      for (const wire::reply_line& l : reply)
        texts.push_back(l.full_text);
      const auto caps = wire::parse_ehlo(texts);
      if (!caps) {
        std::printf("     capabilities: error %s\n",
                    std::string(smtpwire::to_string(caps.error())).c_str());
        return false;
      }
      std::printf("     server %s offers:", std::string(caps->domain).c_str());
      for (std::size_t i = 0; i < wire::capability_count; ++i) {
        const auto c = static_cast<wire::capability>(i);
        if (caps->has(c)) std::printf(" %s", std::string(wire::to_string(c)).c_str());
        if (c == wire::capability::auth && caps->has(c)) {
          for (std::size_t m = 0; m < wire::sasl::mechanism_count; ++m)
            if (caps->offers(static_cast<wire::sasl::mechanism>(m)))
              std::printf(" %s",
                          std::string(wire::sasl::to_string(static_cast<wire::sasl::mechanism>(m)))
                              .c_str());
        }
      }
      if (caps->has(wire::capability::size) && caps->size != 0)
        std::printf(" (SIZE limit %llu)", static_cast<unsigned long long>(caps->size));
      std::printf("\n");
    }
  }
  return true;
}

bool replay(const char* path) {
  std::vector<chunk> chunks;
  if (!load(path, chunks) || chunks.empty()) {
    std::fprintf(stderr, "cannot read a transcript from %s\n", path);
    return false;
  }
  std::printf("== %s (%zu reads)\n", path, chunks.size());
  wire::reply_reader replies;
  client_side client;
  for (const chunk& c : chunks) {
    const bool ok = c.from == 'S' ? server_feed(replies, client, c.bytes) : client.feed(c.bytes);
    if (!ok) return false;
  }
  return replies.idle();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const char*> files(argv + 1, argv + argc);
  if (files.empty()) files = {"data/swaks-to-postfix-smtp-sink.txt", "data/swaks-to-aiosmtpd.txt"};
  bool ok = true;
  for (const char* f : files)
    ok = replay(f) && ok;
  std::printf(ok ? "every byte understood\n" : "FAILED\n");
  return ok ? 0 : 1;
}
