// Benchmark support: a realistic MIME message generated at run time (no
// MiB-sized data files in the repository): a header block with Received
// lines, a text/plain part of prose with some lines that start with a dot, a
// text/html part, and base64 attachments in 76-column lines, up to a target
// size. Deterministic (fixed seed), pure US-ASCII with CRLF line ends.
#ifndef SMTPWIRE_BENCH_MIME_MESSAGE_HPP
#define SMTPWIRE_BENCH_MIME_MESSAGE_HPP

#include <cstddef>
#include <cstdint>
#include <string>

namespace smtpwire::bench {

/// The message content (what the application sends / receives).
inline std::string mime_message(std::size_t target) {
  std::uint32_t seed = 0x12345678u;
  auto next = [&seed]() {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
  };
  static const char* const words[] = {
      "the",     "message",  "server",   "relay",    "delivery", "queue",     "and",
      "of",      "to",       "a",        "transfer", "envelope", "recipient", "header",
      "body",    "content",  "is",       "for",      "with",     "report",    "invoice",
      "meeting", "schedule", "attached", "please",   "review",   "thanks"};
  std::string m;
  m += "Return-Path: <alice@example.org>\r\n";
  for (int i = 0; i < 4; ++i)
    m += "Received: from mx" + std::to_string(i) + ".example.net (mx.example.net [192.0.2." +
         std::to_string(10 + i) + "])\r\n\tby mail.example.org (Postfix) with ESMTPS id 4Q" +
         std::to_string(next() % 99999) + "\r\n\tfor <bob@example.org>; Tue, 5 Mar 2024 10:0" +
         std::to_string(i) + ":00 +0000 (UTC)\r\n";
  m += "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"
       "Subject: Quarterly report and attachments\r\nDate: Tue, 5 Mar 2024 10:00:00 +0000\r\n"
       "Message-ID: <20240305100000.1234@example.org>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: multipart/mixed; boundary=\"=_b0undary_42\"\r\n\r\n"
       "This is a multi-part message in MIME format.\r\n\r\n";
  auto prose = [&](std::size_t bytes) {
    std::size_t start = m.size();
    while (m.size() - start < bytes) {
      std::string line;
      if (next() % 16 == 0) line += ".";  // a line that needs dot-stuffing
      while (line.size() < 60 + next() % 12) {
        line += words[next() % (sizeof words / sizeof *words)];
        line += ' ';
      }
      line.back() = next() % 4 ? '.' : ',';
      m += line + "\r\n";
      if (next() % 8 == 0) m += "\r\n";
    }
  };
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::size_t text = target / 16 + 512;
  m += "--=_b0undary_42\r\nContent-Type: text/plain; charset=us-ascii\r\n"
       "Content-Transfer-Encoding: 7bit\r\n\r\n";
  prose(text);
  m += "\r\n--=_b0undary_42\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body>\r\n";
  prose(text / 2);
  m += "</body></html>\r\n";
  int part = 0;
  while (m.size() + 200 < target) {
    m += "\r\n--=_b0undary_42\r\nContent-Type: application/pdf; name=\"report" +
         std::to_string(++part) +
         ".pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
         "Content-Disposition: attachment\r\n\r\n";
    const std::size_t chunk = target / 3 + 1024;
    const std::size_t start = m.size();
    while (m.size() - start < chunk && m.size() + 120 < target) {
      for (int k = 0; k < 76; ++k)
        m += b64[next() % 64];
      m += "\r\n";
    }
  }
  m += "\r\n--=_b0undary_42--\r\n";
  return m;
}

/// `content` as DATA sends it, written independently of wire/data.hpp: a
/// dot added to each line that starts with one, then ".\r\n".
inline std::string dot_stuffed(const std::string& content) {
  std::string w;
  w.reserve(content.size() + content.size() / 64 + 8);
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '.') w += '.';
    w += c;
    line_start = c == '\n';
  }
  w += ".\r\n";
  return w;
}

}  // namespace smtpwire::bench

#endif
