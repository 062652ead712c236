"""Helpers for the tests/interop/*.py scripts (the Python twin of common.sh).

Where the tools are (SMTPWIRE_TOOLS_DIR, else build/dev/tools), a throwaway
PKI made with the openssl CLI, smtpwire-sink on a free loopback port, byte-
exact Maildir checks, and the exit protocol: 0 pass, 77 skip, 1 fail. Every
process started here is stopped by stop_all() (registered with atexit);
every wait is bounded.
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SMTPWIRE_TOOLS_DIR") or os.path.join(REPO, "build", "dev", "tools")
NAME = os.path.splitext(os.path.basename(sys.argv[0]))[0]
WORK = tempfile.mkdtemp(prefix="smtpwire-interop-%s." % NAME)
_procs = []


def stop_all():
    for p in _procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if os.environ.get("SMTPWIRE_INTEROP_KEEP") == "1":
        print("kept", WORK)
    else:
        shutil.rmtree(WORK, ignore_errors=True)


atexit.register(stop_all)


def skip(why):
    print("SKIP %s: %s" % (NAME, why))
    sys.exit(77)


def fail(why, sink=None):
    print("FAIL %s: %s" % (NAME, why), file=sys.stderr)
    if sink is not None:
        print("--- sink log (last 40 lines)", file=sys.stderr)
        print("\n".join(sink.log().splitlines()[-40:]), file=sys.stderr)
    sys.exit(1)


def passed(what=""):
    print("PASS %s%s" % (NAME, ": " + what if what else ""))
    sys.exit(0)


def note(what):
    print("  %s: %s" % (NAME, what))


def tool(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        fail("%s is missing (build it, or set SMTPWIRE_TOOLS_DIR)" % path)
    return path


def make_pki():
    """ca.pem, server.pem/.key (localhost, 127.0.0.1), users, password in WORK."""
    if shutil.which("openssl") is None:
        skip("the openssl command is not installed")
    w = lambda f: os.path.join(WORK, f)
    run = lambda *a: subprocess.run(a, cwd=WORK, check=True, timeout=60,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "1", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=smtpwire interop CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(w("server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "server.ext", "-out", "server.pem")
    with open(w("users"), "w") as f:
        f.write("alice:s3cret pass\nbob:hunter2\n")
    with open(w("password"), "w") as f:
        f.write("s3cret pass\n")
    return w("ca.pem"), w("server.pem"), w("server.key")


def path(name):
    return os.path.join(WORK, name)


def sample_message(tag):
    """A message with dot lines and a 900-octet line, LF line ends."""
    return ("From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\n"
            "Subject: interop %s\nMessage-ID: <%s.%d@example.org>\n\nfirst line\n"
            ".a line starting with a dot\n..two dots\n.\na long line: %s\n\nlast line\n"
            % (tag, tag, os.getpid(), "x" * 900)).encode()


class Sink:
    """smtpwire-sink on 127.0.0.1:0 with `args`; .port, .implicit_port."""

    def __init__(self, *args):
        self.log_path = path("sink.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([tool("smtpwire-sink"), "--listen", "127.0.0.1:0",
                                      "--hostname", "mx.localhost"] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        _procs.append(self.proc)
        self.port = self.implicit_port = None
        end = time.time() + 10
        while time.time() < end and self.port is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+) \((SMTP|LMTP)", self.log())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.port is None:
            fail("smtpwire-sink did not start", self)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+) \(implicit TLS", self.log())
        if m:
            self.implicit_port = int(m.group(1))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            fail("smtpwire-sink did not stop within 15 s of SIGTERM", self)
        if rc != 0:
            fail("smtpwire-sink exited with status %d" % rc, self)
        if "stopped: sessions=" not in self.log():
            fail("no totals line after SIGTERM", self)


def check_maildir(d, count, sent, want_tls=True, sink=None):
    """d/new holds `count` files, d/tmp none; each is a Received header then `sent` (LF -> CRLF)."""
    sent = sent.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if os.listdir(os.path.join(d, "tmp")):
        fail("files left in tmp/", sink)
    names = sorted(os.listdir(os.path.join(d, "new")))
    if len(names) != count:
        fail("expected %d messages in new/, found %d" % (count, len(names)), sink)
    headers = []
    for n in names:
        data = open(os.path.join(d, "new", n), "rb").read()
        lines = data.split(b"\r\n")
        if not lines[0].startswith(b"Received: from "):
            fail("%s: no Received header first" % n, sink)
        i = 1
        while lines[i].startswith(b"\t"):
            i += 1
        hdr = b" ".join(l.strip() for l in lines[:i]).decode()
        if want_tls and "(using TLSv1." not in hdr:
            fail("%s: Received does not name TLS: %s" % (n, hdr), sink)
        body = b"\r\n".join(lines[i:])
        if body != sent:
            k = next((j for j in range(min(len(body), len(sent))) if body[j] != sent[j]),
                     min(len(body), len(sent)))
            fail("%s: content differs at octet %d: stored %r, sent %r"
                 % (n, k, body[max(0, k - 40):k + 40], sent[max(0, k - 40):k + 40]), sink)
        headers.append(hdr)
    return headers
