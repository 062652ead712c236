#include <smtpwire/tlsrpt.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

// Only the header, for its X509_V_ERR_* numbers: the core suite links no OpenSSL.
#if __has_include(<openssl/x509_vfy.h>)
#include <openssl/x509_vfy.h>
#define SMTPWIRE_TEST_HAVE_OPENSSL_HEADERS 1
#endif

using smtpwire::errc;
namespace rpt = smtpwire::tlsrpt;

namespace {

// Runs python3's json module on `json` (a strict RFC 8259 reader: no
// trailing commas, no raw control characters, no invalid escapes) with
// `script`, which sees the parsed value as `v` and exits non-zero on a
// mismatch (`quiet`: its traceback is not shown). Returns the exit status.
int python_check(const std::string& json, const std::string& script, bool quiet = false) {
  char path[] = "/tmp/smtpwire_tlsrpt_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path, std::ios::binary) << json;
  char spath[] = "/tmp/smtpwire_tlsrpt_py_XXXXXX";
  const int sfd = mkstemp(spath);
  REQUIRE(sfd >= 0);
  close(sfd);
  std::ofstream(spath, std::ios::binary)
      << "import json, sys\n"
      << "v = json.loads(open(sys.argv[1], 'rb').read().decode('utf-8', 'strict'))\n"
      << script << "\n";
  const std::string cmd =
      "python3 " + std::string(spath) + " " + path + (quiet ? " 2>/dev/null" : "");
  const int rc = std::system(cmd.c_str());
  std::remove(path);
  std::remove(spath);
  return rc;
}

// RFC 8460 §4.4's example report, with mx-host as a list (see tlsrpt.hpp).
rpt::report rfc_example() {
  rpt::report r;
  r.organization_name = "Company-X";
  r.start = 1459468800;  // 2016-04-01T00:00:00Z
  r.end = 1459555199;    // 2016-04-01T23:59:59Z
  r.contact_info = "sts-reporting@company-x.example";
  r.report_id = "5065427c-23d3-47ca-b6e0-946ea0e8c4be";
  rpt::policy_result p;
  p.type = rpt::policy_type::sts;
  p.policy_string = {"version: STSv1", "mode: testing", "mx: *.mail.company-y.example",
                     "max_age: 86400"};
  p.policy_domain = "company-y.example";
  p.mx_host = {"*.mail.company-y.example"};
  p.total_successful_session_count = 5326;
  p.total_failure_session_count = 303;
  rpt::failure_detail f1;
  f1.result = rpt::result_type::certificate_expired;
  f1.sending_mta_ip = "2001:db8:abcd:0012::1";
  f1.receiving_mx_hostname = "mx1.mail.company-y.example";
  f1.failed_session_count = 100;
  rpt::failure_detail f2;
  f2.result = rpt::result_type::starttls_not_supported;
  f2.sending_mta_ip = "2001:db8:abcd:0013::1";
  f2.receiving_mx_hostname = "mx2.mail.company-y.example";
  f2.receiving_ip = "203.0.113.56";
  f2.failed_session_count = 200;
  f2.additional_information =
      "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported";
  rpt::failure_detail f3;
  f3.result = rpt::result_type::validation_failure;
  f3.sending_mta_ip = "198.51.100.62";
  f3.receiving_ip = "203.0.113.58";
  f3.receiving_mx_hostname = "mx-backup.mail.company-y.example";
  f3.failed_session_count = 3;
  f3.failure_reason_code = "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED";
  p.failure_details = {f1, f2, f3};
  r.policies.push_back(p);
  return r;
}

const char* const rfc_example_json = R"JSON({
  "organization-name": "Company-X",
  "date-range": {
    "start-datetime": "2016-04-01T00:00:00Z",
    "end-datetime": "2016-04-01T23:59:59Z"
  },
  "contact-info": "sts-reporting@company-x.example",
  "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
  "policies": [{
    "policy": {
      "policy-type": "sts",
      "policy-string": ["version: STSv1","mode: testing",
            "mx: *.mail.company-y.example","max_age: 86400"],
      "policy-domain": "company-y.example",
      "mx-host": ["*.mail.company-y.example"]
    },
    "summary": {
      "total-successful-session-count": 5326,
      "total-failure-session-count": 303
    },
    "failure-details": [{
      "result-type": "certificate-expired",
      "sending-mta-ip": "2001:db8:abcd:0012::1",
      "receiving-mx-hostname": "mx1.mail.company-y.example",
      "failed-session-count": 100
    }, {
      "result-type": "starttls-not-supported",
      "sending-mta-ip": "2001:db8:abcd:0013::1",
      "receiving-mx-hostname": "mx2.mail.company-y.example",
      "receiving-ip": "203.0.113.56",
      "failed-session-count": 200,
      "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"
    }, {
      "result-type": "validation-failure",
      "sending-mta-ip": "198.51.100.62",
      "receiving-ip": "203.0.113.58",
      "receiving-mx-hostname": "mx-backup.mail.company-y.example",
      "failed-session-count": 3,
      "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    }]
  }]
})JSON";

std::string hex(std::string_view s) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("tlsrpt: RFC 8460 §4.4 example report rebuilt", "[tlsrpt]") {
  std::string out;
  REQUIRE(rpt::write_report(out, rfc_example()) == errc::ok);
  // Same value as the RFC's example (python compares objects key by key and
  // arrays in order), and our key order is the §4.4 field order.
  std::string script = "expected = json.loads(r'''";
  script += rfc_example_json;
  script +=
      "''')\n"
      "assert v == expected, (v, expected)\n"
      "assert list(v) == ['organization-name', 'date-range', 'contact-info', 'report-id', "
      "'policies']\n"
      "assert list(v['policies'][0]) == ['policy', 'summary', 'failure-details']\n";
  CHECK(python_check(out, script) == 0);
  // Compact: no insignificant whitespace outside strings.
  CHECK(out.find("\n") == std::string::npos);
  CHECK(out.substr(0, 52) == R"({"organization-name":"Company-X","date-range":{"star)");
}

TEST_CASE("tlsrpt: the checker catches a wrong report", "[tlsrpt]") {
  auto r = rfc_example();
  r.policies[0].failure_details[2].failed_session_count = 4;
  r.policies[0].total_failure_session_count = 304;
  std::string out;
  REQUIRE(rpt::write_report(out, r) == errc::ok);
  std::string script = "expected = json.loads(r'''";
  script += rfc_example_json;
  script += "''')\nassert v == expected\n";
  CHECK(python_check(out, script, true) != 0);
}

TEST_CASE("tlsrpt: JSON string escaping", "[tlsrpt]") {
  std::string all;
  for (int c = 1; c < 0x80; ++c)
    all += static_cast<char>(c);
  all += "\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xa7";  // é € 📧
  auto r = rfc_example();
  r.organization_name = all;
  r.report_id = std::string("a\0b", 3);
  r.policies[0].policy_string = {"quote \" backslash \\ slash /", "\r\n\t\b\f\x1f\x7f"};
  std::string out;
  REQUIRE(rpt::write_report(out, r) == errc::ok);
  // No raw control octet survives; the named escapes are used where JSON has them.
  for (char c : out)
    CHECK(static_cast<unsigned char>(c) >= 0x20);
  CHECK(out.find(R"(\r\n\t\b\f\u001f)") != std::string::npos);
  CHECK(out.find(R"("a\u0000b")") != std::string::npos);
  CHECK(out.find(R"(quote \" backslash \\ slash /)") != std::string::npos);
  const std::string script = "assert v['organization-name'].encode('utf-8').hex() == '" + hex(all) +
                             "'\n"
                             "assert v['report-id'] == 'a\\x00b'\n"
                             "assert v['policies'][0]['policy']['policy-string'] == "
                             "['quote \" backslash \\\\ slash /', '\\r\\n\\t\\b\\f\\x1f\\x7f']\n";
  CHECK(python_check(out, script) == 0);
}

TEST_CASE("tlsrpt: malformed UTF-8 and missing fields are refused", "[tlsrpt]") {
  const char* const bad_utf8[] = {
      "\x80",              // lone continuation
      "\xc3",              // truncated
      "\xc0\xaf",          // overlong '/'
      "\xed\xa0\x80",      // surrogate U+D800
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xff",
  };
  for (const char* b : bad_utf8) {
    INFO(hex(b));
    for (int field = 0; field < 4; ++field) {
      auto r = rfc_example();
      switch (field) {
        case 0:
          r.organization_name += b;
          break;
        case 1:
          r.policies[0].policy_string.back() += b;
          break;
        case 2:
          r.policies[0].failure_details[1].receiving_mx_hostname += b;
          break;
        case 3:
          r.policies[0].mx_host[0] += b;
          break;
      }
      std::string out = "keep";
      CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
      CHECK(out == "keep");
    }
  }
  auto r = rfc_example();
  r.organization_name.clear();
  std::string out;
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  r = rfc_example();
  r.contact_info.clear();
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  r = rfc_example();
  r.report_id.clear();
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  r = rfc_example();
  r.policies[0].policy_domain.clear();
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  r = rfc_example();
  r.end = r.start - 1;
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  r = rfc_example();
  r.policies[0].total_failure_session_count = 302;  // details add up to 303
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  r.policies[0].failure_details[0].failed_session_count = ~std::uint64_t{0};  // no wrap-around
  r.policies[0].total_failure_session_count = ~std::uint64_t{0};
  CHECK(rpt::write_report(out, r) == errc::tlsrpt_value_invalid);
  CHECK(out.empty());
}

TEST_CASE("tlsrpt: RFC 3339 date-times", "[tlsrpt]") {
  struct row {
    std::int64_t t;
    const char* text;
  };
  const row rows[] = {
      {0, "1970-01-01T00:00:00Z"},
      {-1, "1969-12-31T23:59:59Z"},
      {951782400, "2000-02-29T00:00:00Z"},
      {951868799, "2000-02-29T23:59:59Z"},
      {4107542400, "2100-03-01T00:00:00Z"},  // 2100 is no leap year
      {1459555199, "2016-04-01T23:59:59Z"},
      {rpt::min_time, "0000-01-01T00:00:00Z"},
      {rpt::max_time, "9999-12-31T23:59:59Z"},
  };
  for (const auto& r : rows) {
    INFO(r.t);
    std::string out;
    REQUIRE(rpt::format_datetime(out, r.t) == errc::ok);
    CHECK(out == r.text);
  }
  std::string out;
  CHECK(rpt::format_datetime(out, rpt::max_time + 1) == errc::tlsrpt_value_invalid);
  CHECK(rpt::format_datetime(out, rpt::min_time - 1) == errc::tlsrpt_value_invalid);
  CHECK(out.empty());
  // A week and an hour apart across 1600..2799, checked against python's calendar.
  std::string days;
  bool all_ok = true;
  for (std::int64_t t = -11676096000; t < 26179200000; t += 86400 * 7 + 3607) {
    all_ok = rpt::format_datetime(days, t) == errc::ok && all_ok;
    days += ' ' + std::to_string(t) + '\n';
  }
  CHECK(all_ok);
  const std::string script =
      "import datetime\n"
      "for line in v.splitlines():\n"
      "  text, t = line.split(' ')\n"
      "  d = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=int(t))\n"
      "  assert d.strftime('%Y-%m-%dT%H:%M:%SZ') == text, line\n";
  CHECK(python_check(
            std::string("\"") +
                [&] {
                  std::string e;
                  for (char c : days)
                    e += c == '\n' ? std::string("\\n") : std::string(1, c);
                  return e;
                }() +
                "\"",
            script) == 0);
}

TEST_CASE("tlsrpt: counting sessions", "[tlsrpt]") {
  rpt::policy_result p;
  p.type = rpt::policy_type::no_policy_found;
  p.policy_domain = "example.org";
  rpt::count_success(p);
  rpt::count_success(p);
  rpt::count_failure(p, rpt::result_type::starttls_not_supported, "192.0.2.1", "mx.example.org");
  rpt::count_failure(p, rpt::result_type::starttls_not_supported, "192.0.2.1", "mx.example.org");
  rpt::count_failure(p, rpt::result_type::certificate_host_mismatch, "192.0.2.1", "mx.example.org");
  rpt::count_failure(p, rpt::result_type::starttls_not_supported, "192.0.2.2", "mx.example.org",
                     "198.51.100.7");
  CHECK(p.total_successful_session_count == 2);
  CHECK(p.total_failure_session_count == 4);
  REQUIRE(p.failure_details.size() == 3);
  CHECK(p.failure_details[0].failed_session_count == 2);
  CHECK(p.failure_details[1].result == rpt::result_type::certificate_host_mismatch);
  CHECK(p.failure_details[2].receiving_ip == "198.51.100.7");

  rpt::report r;
  r.organization_name = "Sender";
  r.contact_info = "mailto:tlsrpt@sender.example";
  r.report_id = "1";
  r.start = 1700000000;
  r.end = 1700086399;
  r.policies.push_back(p);
  std::string out;
  REQUIRE(rpt::write_report(out, r) == errc::ok);
  // Optional fields left empty are omitted, not written as "".
  CHECK(out.find("policy-string") == std::string::npos);
  CHECK(out.find("\"mx-host\"") == std::string::npos);
  CHECK(out.find("receiving-mx-helo") == std::string::npos);
  CHECK(out.find("\"\"") == std::string::npos);
  const std::string script =
      "p = v['policies'][0]\n"
      "assert p['policy'] == {'policy-type': 'no-policy-found', 'policy-domain': 'example.org'}\n"
      "assert p['summary'] == {'total-successful-session-count': 2, "
      "'total-failure-session-count': 4}\n"
      "assert [f['failed-session-count'] for f in p['failure-details']] == [2, 1, 1]\n"
      "assert p['failure-details'][1]['result-type'] == 'certificate-host-mismatch'\n"
      "assert v['date-range'] == {'start-datetime': '2023-11-14T22:13:20Z', "
      "'end-datetime': '2023-11-15T22:13:19Z'}\n";
  CHECK(python_check(out, script) == 0);
}

TEST_CASE("tlsrpt: names", "[tlsrpt]") {
  CHECK(rpt::to_string(rpt::policy_type::no_policy_found) == "no-policy-found");
  CHECK(rpt::to_string(rpt::result_type::sts_webpki_invalid) == "sts-webpki-invalid");
  CHECK(rpt::to_string(rpt::result_type::dane_required) == "dane-required");
  CHECK(rpt::to_string(rpt::result_type::tlsa_invalid) == "tlsa-invalid");
  CHECK(rpt::to_string(rpt::result_type::dnssec_invalid) == "dnssec-invalid");
  CHECK(rpt::to_string(rpt::result_type::sts_policy_fetch_error) == "sts-policy-fetch-error");
  CHECK(rpt::to_string(rpt::result_type::certificate_not_trusted) == "certificate-not-trusted");
}

TEST_CASE("tlsrpt: an empty report", "[tlsrpt]") {
  rpt::report r;
  r.organization_name = "o";
  r.contact_info = "c";
  r.report_id = "i";
  std::string out;
  REQUIRE(rpt::write_report(out, r) == errc::ok);
  CHECK(out == R"({"organization-name":"o","date-range":{"start-datetime":"1970-01-01T00:00:00Z",)"
               R"("end-datetime":"1970-01-01T00:00:00Z"},"contact-info":"c","report-id":"i",)"
               R"("policies":[]})");
}

TEST_CASE("tlsrpt: classify a session from the adapter's results", "[tlsrpt]") {
  using rt = rpt::result_type;
  rpt::session_outcome s;
  s.verified = true;
  CHECK_FALSE(rpt::classify(s).failed);

  s.policy_mx_matched = false;  // verified, but the MX is not in the MTA-STS policy
  CHECK(rpt::classify(s).failed);
  CHECK(rpt::classify(s).result == rt::validation_failure);

  s = {};
  s.starttls_offered = false;
  CHECK(rpt::classify(s).result == rt::starttls_not_supported);
  CHECK(rpt::classify(s).reason_code.empty());

  struct row {
    long code;
    rt result;
    std::string_view name;
  };
  const row rows[] = {
      {10, rt::certificate_expired, "X509_V_ERR_CERT_HAS_EXPIRED"},
      {62, rt::certificate_host_mismatch, "X509_V_ERR_HOSTNAME_MISMATCH"},
      {18, rt::certificate_not_trusted, "X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"},
      {19, rt::certificate_not_trusted, "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN"},
      {20, rt::certificate_not_trusted, "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"},
      {9, rt::validation_failure, "X509_V_ERR_CERT_NOT_YET_VALID"},
      {65, rt::validation_failure, "X509_V_ERR_DANE_NO_MATCH"},
      {0, rt::validation_failure, ""},    // handshake failed before verification
      {999, rt::validation_failure, ""},  // a code classify does not know
  };
  for (const auto& r : rows) {
    INFO(r.code);
    s = {};
    s.verify_code = r.code;
    const auto c = rpt::classify(s);
    CHECK(c.failed);
    CHECK(c.result == r.result);
    CHECK(c.reason_code == r.name);
  }
#ifdef SMTPWIRE_TEST_HAVE_OPENSSL_HEADERS
  // The numbers classify hard-codes are OpenSSL's.
  CHECK(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT == 2);
  CHECK(X509_V_ERR_CERT_NOT_YET_VALID == 9);
  CHECK(X509_V_ERR_CERT_HAS_EXPIRED == 10);
  CHECK(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT == 18);
  CHECK(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN == 19);
  CHECK(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY == 20);
  CHECK(X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE == 21);
  CHECK(X509_V_ERR_CERT_UNTRUSTED == 27);
  CHECK(X509_V_ERR_HOSTNAME_MISMATCH == 62);
  CHECK(X509_V_ERR_DANE_NO_MATCH == 65);
#endif
}
