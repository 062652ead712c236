"""smtpwire-send into smtpwire-sink, both ends smtpwire, through the
features the other peers cannot reach:
  - STARTTLS + AUTH + PIPELINING, 8-bit content (BODY=8BITMIME): byte-exact
  - implicit TLS (--tls implicit into --implicit-tls-listen)
  - --tls opportunistic without the CA: encrypted, unverified, delivered
  - LMTP over STARTTLS (--lmtp both sides), 3 recipients
  - limits: --max-size (SIZE: exit 2 before any content), --max-recipients
    (one recipient refused: exit 1), --require-tls vs --tls none (530: exit 2)
  - --mbox: mboxrd From_ quoting, LF line ends
  - --threads 2: 20 concurrent sends, every accepted message stored
  - a client that disconnects mid-DATA leaves nothing in new/ or tmp/
  - bad configuration: missing certificate, unreadable auth file (69),
    address in use (69), an unknown option (64)."""
import sys
import concurrent.futures
import os
import socket
import subprocess
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import interop as t  # noqa: E402

ca, cert, key = t.make_pki()
send = t.tool("smtpwire-send")
sink_bin = t.tool("smtpwire-sink")
msg = t.sample_message(t.NAME)
msg8 = msg.replace(b"first line", "first line: caf\u00e9 \u2713".encode())
for name, data in (("msg.eml", msg), ("msg8.eml", msg8), ("big.eml", b"Subject: big\n\n" + b"y" * 100000 + b"\n")):
    with open(t.path(name), "wb") as f:
        f.write(data)


def run(port, *args, expect, message="msg.eml", sink=None, tls=None, auth=True):
    cmd = [send, "--server", "127.0.0.1:%d" % port, "--helo", "client.localhost",
           "--from", "alice@example.org", "--message-file", t.path(message)]
    cmd += tls if tls is not None else ["--ca-file", ca, "--tls-name", "localhost"]
    if auth:
        cmd += ["--auth-user", "alice", "--auth-password-file", t.path("password")]
    p = subprocess.run(cmd + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != expect:
        t.fail("%s: exit %d, expected %d:\n%s" % (" ".join(args), p.returncode, expect,
                                                  p.stderr.decode(errors="replace")), sink)
    return p.stderr.decode(errors="replace")


# -- STARTTLS, AUTH, 8-bit, implicit TLS, opportunistic ----------------------
sink = t.Sink("--implicit-tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
              "--auth-file", t.path("users"), "--maildir", t.path("md1"))
run(sink.port, "--to", "bob@example.org", expect=0, sink=sink)
run(sink.port, "--to", "bob@example.org", expect=0, message="msg8.eml", sink=sink)
run(sink.implicit_port, "--to", "bob@example.org", expect=0, sink=sink,
    tls=["--tls", "implicit", "--ca-file", ca, "--tls-name", "localhost"])
err = run(sink.port, "--to", "bob@example.org", "-v", expect=0, sink=sink, auth=False,
          tls=["--tls", "opportunistic"])
if "NOT verified" not in err:
    t.fail("opportunistic: the transcript does not say the certificate was not verified:\n" + err)
sink.stop()
names = sorted(os.listdir(t.path("md1/new")))
if len(names) != 4:
    t.fail("expected 4 messages, found %d" % len(names), sink)
bodies = []
for n in names:
    data = open(t.path("md1/new/" + n), "rb").read()
    if b"(using TLSv1." not in data.split(b"\r\n\r\n")[0]:
        t.fail("%s: no TLS in Received" % n, sink)
    bodies.append(data[data.index(b"\r\nFrom: ") + 2:])
want = [m.replace(b"\n", b"\r\n") for m in (msg, msg8, msg, msg)]
if sorted(bodies) != sorted(want):
    t.fail("stored contents differ from what was sent", sink)
if sink.log().count("auth=alice stored=") != 3:
    t.fail("expected 3 authenticated deliveries in the log", sink)
t.note("STARTTLS+AUTH, 8-bit, implicit TLS, opportunistic: exit 0, byte-exact, TLS in Received")

# -- LMTP over STARTTLS --------------------------------------------------------
os.rename(t.path("sink.log"), t.path("sink1.log"))
sink = t.Sink("--lmtp", "--tls-cert", cert, "--tls-key", key, "--require-tls",
              "--maildir", t.path("md2"))
run(sink.port, "--lmtp", "--to", "bob@example.org", "--to", "carol@example.org",
    "--to", "dave@example.org", expect=0, sink=sink, auth=False)
sink.stop()
hdr = t.check_maildir(t.path("md2"), 1, msg, sink=sink)
if "LMTPS" not in hdr[0]:
    t.fail("Received does not say LMTPS: " + hdr[0], sink)
t.note("LMTP over STARTTLS, 3 recipients: exit 0")

# -- limits and policy ---------------------------------------------------------
os.rename(t.path("sink.log"), t.path("sink2.log"))
sink = t.Sink("--tls-cert", cert, "--tls-key", key, "--require-tls", "--max-size", "65536",
              "--max-recipients", "2", "--maildir", t.path("md3"))
err = run(sink.port, "--to", "bob@example.org", expect=2, message="big.eml", sink=sink, auth=False)
if "message_too_big" not in err:
    t.fail("--max-size: expected message_too_big:\n" + err, sink)
err = run(sink.port, "--to", "a@example.org", "--to", "b@example.org", "--to", "c@example.org",
          expect=1, sink=sink, auth=False)
err = run(sink.port, "--to", "bob@example.org", expect=2, sink=sink, auth=False, tls=["--tls", "none"])
if "530" not in err:
    t.fail("--require-tls vs --tls none: expected 530:\n" + err, sink)
sink.stop()
t.check_maildir(t.path("md3"), 1, msg, sink=sink)
t.note("--max-size: exit 2; --max-recipients 2 with 3: exit 1; --require-tls vs clear: exit 2")

# -- mbox --------------------------------------------------------------------------
os.rename(t.path("sink.log"), t.path("sink3.log"))
sink = t.Sink("--mbox", t.path("mbox"))
with open(t.path("from.eml"), "wb") as f:
    f.write(b"Subject: mbox\n\nFrom the start\n>From quoted\nnot From here\n")
for _ in range(2):
    run(sink.port, "--to", "bob@example.org", expect=0, message="from.eml", sink=sink,
        auth=False, tls=["--tls", "none"])
sink.stop()
mbox = open(t.path("mbox"), "rb").read()
parts = mbox.split(b"\nFrom ")
if not mbox.startswith(b"From alice@example.org ") or len(parts) != 2:
    t.fail("mbox: expected 2 From_ lines:\n%r" % mbox, sink)
for p in parts:
    if b"\n>From the start\n>>From quoted\nnot From here\n" not in p or b"\r" in p:
        t.fail("mbox: bad quoting or line ends:\n%r" % p, sink)
t.note("--mbox: mboxrd quoting, LF line ends, 2 messages")

# -- threads and concurrency -------------------------------------------------------
os.rename(t.path("sink.log"), t.path("sink4.log"))
sink = t.Sink("--threads", "2", "--tls-cert", cert, "--tls-key", key, "--maildir", t.path("md5"))
with concurrent.futures.ThreadPoolExecutor(8) as ex:
    futs = [ex.submit(run, sink.port, "--to", "bob@example.org", expect=0, sink=sink, auth=False)
            for _ in range(20)]
    for f in futs:
        f.result()
sink.stop()
t.check_maildir(t.path("md5"), 20, msg, sink=sink)
t.note("--threads 2: 20 concurrent STARTTLS deliveries stored")

# -- a client that disconnects mid-DATA ---------------------------------------------
os.rename(t.path("sink.log"), t.path("sink5.log"))
sink = t.Sink("--maildir", t.path("md6"))
with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as s:
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO client.localhost\r\n")
    while f.readline()[3:4] == b"-":
        pass
    for cmd in (b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n"):
        s.sendall(cmd)
        f.readline()
    s.sendall(b"Subject: cut\r\n\r\npartial content" + b"z" * 100000)
time.sleep(0.5)
sink.stop()
if os.listdir(t.path("md6/new")) or os.listdir(t.path("md6/tmp")):
    t.fail("a message cut off mid-DATA left a file", sink)
t.note("disconnect mid-DATA: nothing stored, nothing left in tmp/")

# -- bad configuration ---------------------------------------------------------------
def sink_exit(*args):
    p = subprocess.run([sink_bin] + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=20)
    return p.returncode, p.stderr.decode(errors="replace")


checks = [
    ((64, "unknown argument"), ("--listen", "127.0.0.1:0", "--discard", "--bogus")),
    ((64, "exactly one of"), ("--listen", "127.0.0.1:0")),
    ((64, "needs --tls-cert"), ("--listen", "127.0.0.1:0", "--discard", "--require-tls")),
    ((69, "cannot load the certificate"), ("--listen", "127.0.0.1:0", "--discard", "--tls-cert",
                                          t.path("missing.pem"), "--tls-key", key)),
    ((69, "cannot read --auth-file"), ("--listen", "127.0.0.1:0", "--discard", "--tls-cert", cert,
                                      "--tls-key", key, "--auth-file", t.path("missing"))),
]
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
checks.append(((69, "cannot listen"), ("--listen", "127.0.0.1:%d" % busy.getsockname()[1], "--discard")))
for (code, text), args in checks:
    rc, err = sink_exit(*args)
    if rc != code or text not in err:
        t.fail("%s: exit %d (%s), expected %d with %r" % (" ".join(args), rc, err.strip(), code, text))
busy.close()
t.note("bad configuration: exit 64/69 with a clear message")
t.passed("smtpwire-send into smtpwire-sink: TLS modes, LMTP, limits, mbox, threads, faults")
