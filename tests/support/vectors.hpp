// Test helper: conformance vectors written as Markdown (after llhttp).
//
// A vector file is Markdown. Each `## name` heading starts a case; each fenced
// block inside it (```` ```field ````) is a named field of that case. Prose
// between blocks is documentation and is ignored. Byte fields are written
// with C escapes so invisible bytes stay visible:
//   \r \n \t \0 \\ \xHH, and newlines inside the block are NOT part of the
// bytes (write \r\n explicitly). Text fields (expected event logs) are taken
// line by line, as written.
#ifndef SMTPWIRE_TESTS_VECTORS_HPP
#define SMTPWIRE_TESTS_VECTORS_HPP

#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifndef SMTPWIRE_VECTOR_DIR
#error "SMTPWIRE_VECTOR_DIR must name tests/vectors"
#endif

namespace smtpwire::test {

struct vector_case {
  std::string file;
  std::string name;
  int line = 0;  ///< line of the heading, for failure messages
  std::map<std::string, std::vector<std::string>> fields;

  bool has(const std::string& field) const { return fields.count(field) != 0; }
  /// The field's lines as written.
  const std::vector<std::string>& lines(const std::string& field) const {
    auto it = fields.find(field);
    if (it == fields.end()) FAIL("vector '" << name << "' has no field '" << field << "'");
    return it->second;
  }
  /// The field's lines joined with '\n' (no escape processing).
  std::string text(const std::string& field) const {
    std::string s;
    for (const auto& l : lines(field)) {
      if (!s.empty()) s += '\n';
      s += l;
    }
    return s;
  }
  /// The field as bytes: lines concatenated, C escapes decoded.
  std::string bytes(const std::string& field) const;
};

inline std::string decode_escapes(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '\\' || i + 1 == in.size()) {
      out += c;
      continue;
    }
    char e = in[++i];
    switch (e) {
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case '0':
        out += '\0';
        break;
      case '\\':
        out += '\\';
        break;
      case 'x': {
        auto hex = [](char h) -> int {
          if (h >= '0' && h <= '9') return h - '0';
          if (h >= 'a' && h <= 'f') return h - 'a' + 10;
          if (h >= 'A' && h <= 'F') return h - 'A' + 10;
          return -1;
        };
        if (i + 2 >= in.size()) FAIL("truncated \\x escape");
        int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
        if (hi < 0 || lo < 0) FAIL("bad \\x escape in '" << in << "'");
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        break;
      }
      default:
        FAIL("unknown escape \\" << e << " in '" << in << "'");
    }
  }
  return out;
}

/// The inverse of decode_escapes for event logs: CR, LF, HT, NUL, backslash
/// and double quote escaped, other octets outside printable ASCII as \xHH.
inline std::string escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\r':
        out += "\\r";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\0':
        out += "\\0";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += ch;
        } else {
          static const char hex[] = "0123456789abcdef";
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        }
    }
  }
  return out;
}

/// A plainer form for logs that quote values themselves: backslash doubled,
/// every octet outside printable ASCII as \xHH (CR is \x0d), quotes kept.
inline std::string escape_hex(std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

inline std::string vector_case::bytes(const std::string& field) const {
  std::string joined;
  for (const auto& l : lines(field))
    joined += l;
  return decode_escapes(joined);
}

/// Loads every case of `tests/vectors/<name>`; fails the test when the file is
/// missing or has no case.
/// The case's `options` block ("key=N key=N ..." over any lines) as
/// (key, number) pairs in order; none when the case has no options. A token
/// without '=' fails the test.
inline std::vector<std::pair<std::string, unsigned long>> numeric_options(const vector_case& vc) {
  std::vector<std::pair<std::string, unsigned long>> out;
  if (!vc.has("options")) return out;
  std::istringstream in(vc.text("options"));
  std::string tok;
  while (in >> tok) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos) FAIL("bad option " << tok);
    out.emplace_back(tok.substr(0, eq), std::stoul(tok.substr(eq + 1)));
  }
  return out;
}

inline std::vector<vector_case> load_vectors(const std::string& name) {
  const std::string path = std::string(SMTPWIRE_VECTOR_DIR) + "/" + name;
  std::ifstream in(path);
  if (!in) FAIL("cannot open vector file " << path);
  std::vector<vector_case> cases;
  std::string line, field;
  bool in_block = false;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (in_block) {
      if (line.rfind("```", 0) == 0) {
        in_block = false;
      } else if (!field.empty()) {
        cases.back().fields[field].push_back(line);
      }
      continue;
    }
    if (line.rfind("## ", 0) == 0) {
      vector_case c;
      c.file = name;
      c.name = line.substr(3);
      c.line = n;
      cases.push_back(std::move(c));
    } else if (line.rfind("```", 0) == 0 && !cases.empty()) {
      field = line.substr(3);  // an unnamed block is documentation
      in_block = true;
      if (!field.empty()) cases.back().fields[field];  // an empty block is an empty field
    }
  }
  if (cases.empty()) FAIL("no vectors in " << path);
  return cases;
}

}  // namespace smtpwire::test

#endif
