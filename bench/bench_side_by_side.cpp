// The in-memory rows of the side-by-side comparison (issue 8): smtpwire on
// the same canned bytes that the peers of bench/peers/inmem/ read, beside
// memchr / memcpy over those bytes in the same binary.
//
// The canned inputs (file names below) are read from the directory named by
// SMTPWIRE_INMEM_DIR when it holds them; otherwise they are generated here
// (deterministic: bench/mime_message.hpp for the messages), so that this
// program's ctest smoke run needs nothing. `--write-canned DIR` writes them
// into DIR and exits: bench/peers/inmem/run makes the canned set that way,
// so every implementation reads the same bytes.
//
// One benchmark per (row, impl); an "op" is one pass over that row's input:
//   command parse      commands.txt (pipelined client command lines: EHLO,
//                      MAIL with SIZE/BODY/RET/ENVID, RCPTs with NOTIFY/ORCPT,
//                      DATA, RSET, NOOP, QUIT): split at LF, parse_command,
//                      then parse_mail_params / parse_rcpt_params;
//   reply parse ehlo   ehlo_replies.txt: a 10-line EHLO reply repeated; every
//                      reply read with reply_reader and every line visited;
//   reply parse 250    ok_replies.txt: "250 2.1.0 Ok" repeated, likewise;
//   DATA decode N      msg_N.wire (dot-stuffed message + ".CRLF"): data_decoder,
//                      the content views copied into one buffer (a peer's
//                      Read into its buffer does the same work);
//   DATA encode N      msg_N.eml: data_encoder, its views copied out;
//   server session     session_client.txt (EHLO, MAIL, 5 RCPT, DATA with a
//                      4 KiB message, QUIT): a fresh smtpwire::server, every
//                      decision accepted, its replies drained;
//   client delivery    session_server.txt (greeting, EHLO reply, 250s, 354,
//                      250, 221) fed to a reset smtpwire::client that sends
//                      msg_4k.eml to 5 recipients; its output drained.
// Baselines per row: memchr (every LF of the same bytes) for the parsing
// rows, memcpy of the same bytes (both directions for the sessions) for
// the others. Every op's result is checked before timing.
//
// `--instr` runs each smtpwire op once inside an extern "C" function named
// sbs_instr_<row> after one warm-up run, so that callgrind
// (--collect-atstart=no --toggle-collect='sbs_instr_*') counts exactly one
// op per row; it prints nothing else of interest and exits.
#include <smtpwire/client.hpp>
#include <smtpwire/server.hpp>
#include <smtpwire/wire/command.hpp>
#include <smtpwire/wire/data.hpp>
#include <smtpwire/wire/params.hpp>
#include <smtpwire/wire/reply.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>

#include "canned_session.hpp"
#include "mime_message.hpp"

namespace {

using namespace smtpwire;

// 4096-aligned copy of a byte string (glibc's memcpy/memchr are sensitive
// to alignment, see NOTES), so that every row and its baseline read the
// same aligned bytes.
struct aligned_bytes {
  char* p = nullptr;
  std::size_t n = 0;
  aligned_bytes() = default;
  explicit aligned_bytes(const std::string& s) : n(s.size()) {
    p = static_cast<char*>(std::aligned_alloc(4096, (n + 4096) / 4096 * 4096));
    if (p == nullptr) std::abort();
    std::memcpy(p, s.data(), n);
  }
  aligned_bytes(const aligned_bytes&) = delete;
  aligned_bytes& operator=(const aligned_bytes&) = delete;
  ~aligned_bytes() { std::free(p); }
  std::string_view view() const { return {p, n}; }
};

const char* const kCommandSession[] = {
    "EHLO client.example.org\r\n",
    "MAIL FROM:<alice.sender@example.org> SIZE=24576 BODY=8BITMIME RET=HDRS "
    "ENVID=QQ314159\r\n",
    "RCPT TO:<bob@example.net>\r\n",
    "RCPT TO:<carol.smith@mail.example.com> NOTIFY=SUCCESS,FAILURE "
    "ORCPT=rfc822;carol.smith@mail.example.com\r\n",
    "RCPT TO:<dave+lists@example.net>\r\n",
    "RCPT TO:<\"eve q\"@example.org>\r\n",
    "RCPT TO:<frank@[192.0.2.17]> NOTIFY=NEVER\r\n",
    "DATA\r\n",
    "RSET\r\n",
    "NOOP\r\n",
    "QUIT\r\n",
};

const char* const kEhloReply =
    "250-mx.example.com Hello client.example.org [192.0.2.1]\r\n"
    "250-SIZE 52428800\r\n"
    "250-8BITMIME\r\n"
    "250-PIPELINING\r\n"
    "250-STARTTLS\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250-CHUNKING\r\n"
    "250 HELP\r\n";

const std::string_view kRcpts[] = {"r1@example.com", "r2@example.com", "r3@example.com",
                                   "r4@example.com", "r5@example.com"};

std::string repeat_to(std::string_view unit, std::size_t size) {
  std::string s;
  while (s.size() + unit.size() <= size)
    s.append(unit.data(), unit.size());
  return s;
}

std::string generate(const std::string& name) {
  if (name == "commands.txt") {
    std::string unit;
    for (const char* line : kCommandSession)
      unit += line;
    return repeat_to(unit, 64 * 1024);
  }
  if (name == "ehlo_replies.txt") return repeat_to(kEhloReply, 64 * 1024);
  if (name == "ok_replies.txt") return repeat_to("250 2.1.0 Ok\r\n", 64 * 1024);
  if (name == "msg_4k.eml") return bench::mime_message(4u << 10);
  if (name == "msg_64k.eml") return bench::mime_message(64u << 10);
  if (name == "msg_1m.eml") return bench::mime_message(1u << 20);
  if (name == "msg_64k.wire") return bench::dot_stuffed(bench::mime_message(64u << 10));
  if (name == "msg_1m.wire") return bench::dot_stuffed(bench::mime_message(1u << 20));
  if (name == "session_client.txt") {
    std::string s = "EHLO client.example.org\r\nMAIL FROM:<a@example.org> SIZE=4096\r\n";
    for (auto r : kRcpts)
      s += "RCPT TO:<" + std::string(r) + ">\r\n";
    return s + "DATA\r\n" + bench::dot_stuffed(bench::mime_message(4u << 10)) + "QUIT\r\n";
  }
  if (name == "session_server.txt")
    return "220 mx.example.com ESMTP\r\n250-mx.example.com\r\n250-SIZE 52428800\r\n"
           "250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n250 2.1.0 Ok\r\n"
           "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
           "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n";
  std::abort();
}

const char* const kFiles[] = {"commands.txt",      "ehlo_replies.txt", "ok_replies.txt",
                              "msg_4k.eml",        "msg_64k.eml",      "msg_1m.eml",
                              "msg_64k.wire",      "msg_1m.wire",      "session_client.txt",
                              "session_server.txt"};

// The named canned input: from SMTPWIRE_INMEM_DIR when the file is there,
// else generated.
std::string load(const std::string& name) {
  if (const char* dir = std::getenv("SMTPWIRE_INMEM_DIR")) {
    std::ifstream f(std::string(dir) + "/" + name, std::ios::binary);
    if (f) return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return generate(name);
}

const aligned_bytes& canned(const char* name) {
  // A handful of files: a linear list is enough and keeps them alive.
  static std::string names[sizeof kFiles / sizeof *kFiles];
  static aligned_bytes* data[sizeof kFiles / sizeof *kFiles] = {};
  for (std::size_t i = 0; i < sizeof kFiles / sizeof *kFiles; ++i)
    if (std::strcmp(kFiles[i], name) == 0) {
      if (data[i] == nullptr) data[i] = new aligned_bytes(load(name));
      return *data[i];
    }
  std::abort();
}

// ---- the smtpwire ops ------------------------------------------------------

// Parses every command line and its ESMTP parameters; returns the number of
// lines that parsed completely.
std::size_t op_commands(std::string_view in) {
  std::size_t ok = 0;
  const char* p = in.data();
  const char* end = p + in.size();
  while (p < end) {
    const char* lf =
        static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const auto r = wire::parse_command(std::string_view(p, static_cast<std::size_t>(lf - p - 1)));
    if (r) {
      bool good = true;
      if (r->kind == wire::verb::mail) good = wire::parse_mail_params(r->params).has_value();
      if (r->kind == wire::verb::rcpt) good = wire::parse_rcpt_params(r->params).has_value();
      ok += good;
    }
    benchmark::DoNotOptimize(r);
    p = lf + 1;
  }
  return ok;
}

std::size_t count_lf(std::string_view b) {
  std::size_t n = 0;
  const char* p = b.data();
  const char* end = p + b.size();
  while (const void* hit = std::memchr(p, '\n', static_cast<std::size_t>(end - p))) {
    ++n;
    p = static_cast<const char*>(hit) + 1;
  }
  return n;
}

// Reads every reply and visits every line; returns replies * 1000 + lines
// of the last reply (a check of both framing and line splitting).
std::size_t op_replies(wire::reply_reader& r, std::string_view b) {
  std::size_t n = 0, lines = 0;
  while (!b.empty()) {
    const wire::reply_result res = r.read(b);
    b.remove_prefix(res.consumed);
    if (res.status != wire::reply_status::reply) return 0;
    ++n;
    lines = 0;
    for (const wire::reply_line& line : res.reply) {
      benchmark::DoNotOptimize(line.text.data());
      ++lines;
    }
  }
  return n * 1000 + lines;
}

std::size_t op_decode(wire::data_decoder& dec, std::string_view in, char* out) {
  dec.reset();
  std::size_t total = 0;
  for (;;) {
    const wire::data_result r = dec.decode(in);
    in.remove_prefix(r.consumed);
    if (r.status == wire::data_status::content) {
      std::memcpy(out + total, r.content.data(), r.content.size());
      total += r.content.size();
    } else if (r.status == wire::data_status::end) {
      return dec.error() == errc::ok ? total : ~std::size_t{0};
    } else {
      return ~std::size_t{0};
    }
  }
}

std::size_t op_encode(wire::data_encoder& enc, std::string_view in, char* out) {
  enc.reset();
  std::size_t total = 0;
  while (!in.empty()) {
    const wire::encode_result r = enc.encode(in);
    in.remove_prefix(r.consumed);
    if (r.status == wire::encode_status::error) return ~std::size_t{0};
    if (r.status == wire::encode_status::output) {
      std::memcpy(out + total, r.output.data(), r.output.size());
      total += r.output.size();
    }
  }
  for (;;) {
    const wire::encode_result r = enc.finish();
    if (r.status != wire::encode_status::output) break;
    std::memcpy(out + total, r.output.data(), r.output.size());
    total += r.output.size();
  }
  return total;
}

server_config server_cfg() {
  server_config c;
  c.host_name = "mx.example.com";
  c.limits.max_commands = ~std::size_t{0};
  return c;
}

// A whole server session over the canned client bytes; returns content
// octets delivered (0 unless the session closed after QUIT).
std::size_t op_server(const server_config& cfg, std::string_view bytes) {
  server s(cfg);
  const std::size_t content = bench::pump_server(s, bytes);
  return s.closed() ? content : 0;
}

client_config client_cfg() {
  client_config cfg;
  cfg.local_name = "client.example.org";
  cfg.tls = tls_policy::none;
  cfg.pipelining = true;
  return cfg;
}

// One delivery of `message` against the canned server bytes; returns the
// client octets written (into `sink`), 0 when the session went wrong.
std::size_t op_client(client& c, std::string_view server, std::string_view message, char* sink) {
  return bench::deliver(c, server, message, kRcpts, 5, sink);
}

// ---- benchmarks ------------------------------------------------------------

void per_op(benchmark::State& st, std::size_t bytes) {
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) *
                       static_cast<std::int64_t>(bytes));
}

void bm_memchr(benchmark::State& st, const char* file) {
  const aligned_bytes& in = canned(file);
  for (auto _ : st)
    benchmark::DoNotOptimize(count_lf(in.view()));
  per_op(st, in.n);
}

void bm_memcpy(benchmark::State& st, const char* file, const char* file2) {
  const aligned_bytes& a = canned(file);
  const aligned_bytes* b = file2 != nullptr ? &canned(file2) : nullptr;
  const std::size_t n = a.n + (b != nullptr ? b->n : 0);
  aligned_bytes dst(std::string(n + 64, '\0'));
  for (auto _ : st) {
    std::memcpy(dst.p, a.p, a.n);
    if (b != nullptr) std::memcpy(dst.p + a.n, b->p, b->n);
    benchmark::ClobberMemory();
  }
  per_op(st, n);
}

void bm_commands(benchmark::State& st) {
  const aligned_bytes& in = canned("commands.txt");
  if (op_commands(in.view()) != count_lf(in.view())) {
    st.SkipWithError("a command of the stream failed to parse");
    return;
  }
  for (auto _ : st)
    benchmark::DoNotOptimize(op_commands(in.view()));
  per_op(st, in.n);
  st.counters["commands"] = static_cast<double>(count_lf(in.view()));
}

void bm_replies(benchmark::State& st, const char* file, std::size_t lines_per_reply) {
  const aligned_bytes& in = canned(file);
  wire::reply_reader r;
  const std::size_t want = count_lf(in.view()) / lines_per_reply * 1000 + lines_per_reply;
  if (op_replies(r, in.view()) != want) {
    st.SkipWithError("reply count or lines differ");
    return;
  }
  for (auto _ : st)
    benchmark::DoNotOptimize(op_replies(r, in.view()));
  per_op(st, in.n);
}

void bm_decode(benchmark::State& st, const char* wire_file, const char* eml_file) {
  const aligned_bytes& in = canned(wire_file);
  const aligned_bytes& want = canned(eml_file);
  aligned_bytes out(std::string(in.n + 64, '\0'));
  wire::data_decoder dec;
  if (op_decode(dec, in.view(), out.p) != want.n || std::memcmp(out.p, want.p, want.n) != 0) {
    st.SkipWithError("decoded content differs from the message");
    return;
  }
  for (auto _ : st)
    benchmark::DoNotOptimize(op_decode(dec, in.view(), out.p));
  per_op(st, in.n);
  st.SetLabel(detail::to_string(dec.scan()));
}

void bm_encode(benchmark::State& st, const char* eml_file, const char* wire_file) {
  const aligned_bytes& in = canned(eml_file);
  const aligned_bytes& want = canned(wire_file);
  aligned_bytes out(std::string(want.n + 64, '\0'));
  wire::data_encoder enc;
  if (op_encode(enc, in.view(), out.p) != want.n || std::memcmp(out.p, want.p, want.n) != 0) {
    st.SkipWithError("encoded wire differs from the canned dot-stuffing");
    return;
  }
  for (auto _ : st)
    benchmark::DoNotOptimize(op_encode(enc, in.view(), out.p));
  per_op(st, in.n);
  st.SetLabel(detail::to_string(enc.scan()));
}

void bm_server(benchmark::State& st) {
  const aligned_bytes& in = canned("session_client.txt");
  const server_config cfg = server_cfg();
  if (op_server(cfg, in.view()) != canned("msg_4k.eml").n) {
    st.SkipWithError("server session did not deliver the message and close");
    return;
  }
  for (auto _ : st)
    benchmark::DoNotOptimize(op_server(cfg, in.view()));
  per_op(st, in.n);
}

void bm_client(benchmark::State& st) {
  const aligned_bytes& in = canned("session_server.txt");
  const aligned_bytes& msg = canned("msg_4k.eml");
  client c{client_cfg()};
  std::string sink(msg.n * 2 + 4096, '\0');
  if (op_client(c, in.view(), msg.view(), &sink[0]) == 0) {
    st.SkipWithError("client delivery did not complete");
    return;
  }
  for (auto _ : st)
    benchmark::DoNotOptimize(op_client(c, in.view(), msg.view(), &sink[0]));
  per_op(st, in.n + msg.n);
}

void register_all() {
  // Names: <row>/<impl>; bench/peers/inmem/run maps them to inmem.jsonl rows.
  benchmark::RegisterBenchmark("command parse/memchr", bm_memchr, "commands.txt");
  benchmark::RegisterBenchmark("command parse/smtpwire", bm_commands);
  benchmark::RegisterBenchmark("reply parse ehlo/memchr", bm_memchr, "ehlo_replies.txt");
  benchmark::RegisterBenchmark("reply parse ehlo/smtpwire", bm_replies, "ehlo_replies.txt",
                               std::size_t{10});
  benchmark::RegisterBenchmark("reply parse 250/memchr", bm_memchr, "ok_replies.txt");
  benchmark::RegisterBenchmark("reply parse 250/smtpwire", bm_replies, "ok_replies.txt",
                               std::size_t{1});
  benchmark::RegisterBenchmark("DATA decode 64 KiB/memcpy", bm_memcpy, "msg_64k.wire", nullptr);
  benchmark::RegisterBenchmark("DATA decode 64 KiB/smtpwire", bm_decode, "msg_64k.wire",
                               "msg_64k.eml");
  benchmark::RegisterBenchmark("DATA decode 1 MiB/memcpy", bm_memcpy, "msg_1m.wire", nullptr);
  benchmark::RegisterBenchmark("DATA decode 1 MiB/smtpwire", bm_decode, "msg_1m.wire",
                               "msg_1m.eml");
  benchmark::RegisterBenchmark("DATA encode 64 KiB/memcpy", bm_memcpy, "msg_64k.eml", nullptr);
  benchmark::RegisterBenchmark("DATA encode 64 KiB/smtpwire", bm_encode, "msg_64k.eml",
                               "msg_64k.wire");
  benchmark::RegisterBenchmark("DATA encode 1 MiB/memcpy", bm_memcpy, "msg_1m.eml", nullptr);
  benchmark::RegisterBenchmark("DATA encode 1 MiB/smtpwire", bm_encode, "msg_1m.eml",
                               "msg_1m.wire");
  benchmark::RegisterBenchmark("server session/memcpy", bm_memcpy, "session_client.txt", nullptr);
  benchmark::RegisterBenchmark("server session/smtpwire", bm_server);
  benchmark::RegisterBenchmark("client delivery/memcpy", bm_memcpy, "session_server.txt",
                               "msg_4k.eml");
  benchmark::RegisterBenchmark("client delivery/smtpwire", bm_client);
}

int write_canned(const char* dir) {
  for (const char* name : kFiles) {
    const std::string path = std::string(dir) + "/" + name;
    std::ofstream f(path, std::ios::binary);
    const std::string s = generate(name);
    f.write(s.data(), static_cast<std::streamsize>(s.size()));
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace

// ---- one op per row for callgrind ----------------------------------------
// Each sbs_instr_<row> runs its row's op once on already-loaded inputs;
// noinline and extern "C" so that --toggle-collect can name them, and
// never a tail call, so that the op runs inside their frame.
namespace {
std::string g_sink;
wire::data_decoder* g_dec;
wire::data_encoder* g_enc;
wire::reply_reader* g_rr;
client* g_client;
server_config* g_scfg;
std::size_t g_result;
}  // namespace

namespace {
__attribute__((noinline)) void row_command_parse() {
  g_result += op_commands(canned("commands.txt").view());
}
__attribute__((noinline)) void row_reply_parse_ehlo() {
  g_result += op_replies(*g_rr, canned("ehlo_replies.txt").view());
}
__attribute__((noinline)) void row_reply_parse_250() {
  g_result += op_replies(*g_rr, canned("ok_replies.txt").view());
}
__attribute__((noinline)) void row_data_decode_64k() {
  g_result += op_decode(*g_dec, canned("msg_64k.wire").view(), &g_sink[0]);
}
__attribute__((noinline)) void row_data_decode_1m() {
  g_result += op_decode(*g_dec, canned("msg_1m.wire").view(), &g_sink[0]);
}
__attribute__((noinline)) void row_data_encode_64k() {
  g_result += op_encode(*g_enc, canned("msg_64k.eml").view(), &g_sink[0]);
}
__attribute__((noinline)) void row_data_encode_1m() {
  g_result += op_encode(*g_enc, canned("msg_1m.eml").view(), &g_sink[0]);
}
__attribute__((noinline)) void row_server_session() {
  g_result += op_server(*g_scfg, canned("session_client.txt").view());
}
__attribute__((noinline)) void row_client_delivery() {
  g_result += op_client(*g_client, canned("session_server.txt").view(), canned("msg_4k.eml").view(),
                        &g_sink[0]);
}
}  // namespace

// One frame per row for callgrind (--toggle-collect='sbs_instr_*'): not inlined,
// and the empty asm after the call keeps it from becoming a tail call.
#define SMTPWIRE_SBS_INSTR(row)                                 \
  extern "C" __attribute__((noinline)) void sbs_instr_##row() { \
    row_##row();                                                \
    __asm__ volatile("" ::: "memory");                          \
  }
SMTPWIRE_SBS_INSTR(command_parse)
SMTPWIRE_SBS_INSTR(reply_parse_ehlo)
SMTPWIRE_SBS_INSTR(reply_parse_250)
SMTPWIRE_SBS_INSTR(data_decode_64k)
SMTPWIRE_SBS_INSTR(data_decode_1m)
SMTPWIRE_SBS_INSTR(data_encode_64k)
SMTPWIRE_SBS_INSTR(data_encode_1m)
SMTPWIRE_SBS_INSTR(server_session)
SMTPWIRE_SBS_INSTR(client_delivery)
#undef SMTPWIRE_SBS_INSTR

namespace {
int run_instr() {
  for (const char* name : kFiles)
    (void)canned(name);
  g_sink.assign((4u << 20), '\0');
  wire::data_decoder dec;
  wire::data_encoder enc;
  wire::reply_reader rr;
  client c{client_cfg()};
  server_config scfg = server_cfg();
  g_dec = &dec;
  g_enc = &enc;
  g_rr = &rr;
  g_client = &c;
  g_scfg = &scfg;
  using fn = void (*)();
  const struct {
    fn warm, counted;
  } rows[] = {{row_command_parse, sbs_instr_command_parse},
              {row_reply_parse_ehlo, sbs_instr_reply_parse_ehlo},
              {row_reply_parse_250, sbs_instr_reply_parse_250},
              {row_data_decode_64k, sbs_instr_data_decode_64k},
              {row_data_decode_1m, sbs_instr_data_decode_1m},
              {row_data_encode_64k, sbs_instr_data_encode_64k},
              {row_data_encode_1m, sbs_instr_data_encode_1m},
              {row_server_session, sbs_instr_server_session},
              {row_client_delivery, sbs_instr_client_delivery}};
  for (const auto& row : rows) {
    row.warm();  // first touch of the inputs and buffers, not counted
    row.counted();
  }
  std::printf("scan=%s result=%zu\n", detail::to_string(dec.scan()), g_result);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--write-canned") == 0) return write_canned(argv[2]);
  if (argc == 2 && std::strcmp(argv[1], "--instr") == 0) return run_instr();
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
