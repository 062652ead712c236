"""HAProxy (Debian's haproxy) in front of smtpwire-sink --proxy-protocol
--proxy-from 127.0.0.1, on loopback, with a generated configuration in the
test's temporary directory; haproxy runs in the foreground and is stopped
at the end. Python's smtplib delivers through three HAProxy frontends:
  - send-proxy-v2 (binary header), from source address 127.0.0.2;
  - send-proxy (v1 text line), from 127.0.0.1;
  - TLS terminated by HAProxy (SMTP_SSL to the frontend) with
    send-proxy-v2 with proxy-v2-options ssl,ssl-cipher,authority,crc32c, so
    the header carries PP2_TYPE_SSL (version and cipher), the SNI and a
    CRC32C checksum.
For each, the stored message's Received header names the client's address
(not HAProxy's), the sink's session log line names the client's address and
source port ("from 127.0.0.2:PORT via 127.0.0.1:... proxy=v2"), and the
TLS case names the TLS version HAProxy reported. A direct connection to
the sink (no header) is refused with 421, and the content of every message
arrives byte-exact."""
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import interop as t  # noqa: E402

haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK)
                                      else None)
if haproxy is None:
    if os.environ.get("SMTPWIRE_INTEROP_INSTALL") == "1":
        subprocess.run(["apt-get", "install", "-y", "-q", "haproxy"], timeout=300,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(os.environ,
                                                           DEBIAN_FRONTEND="noninteractive"))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy or "", os.X_OK):
        t.skip("haproxy is not installed (apt-get install haproxy, or SMTPWIRE_INTEROP_INSTALL=1)")

ca, cert, key = t.make_pki()
with open(t.path("haproxy.pem"), "w") as out:  # HAProxy wants the chain and key in one file
    out.write(open(cert).read() + open(key).read())

sink = t.Sink("--proxy-protocol", "--proxy-from", "127.0.0.1", "--maildir", t.path("Maildir"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


p_v2, p_v1, p_tls = free_port(), free_port(), free_port()
cfg = """global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_v2
    bind 127.0.0.1:%(p_v2)d
    default_backend be_v2
backend be_v2
    server sink 127.0.0.1:%(sink)d source 127.0.0.1 send-proxy-v2
frontend fe_v1
    bind 127.0.0.1:%(p_v1)d
    default_backend be_v1
backend be_v1
    server sink 127.0.0.1:%(sink)d source 127.0.0.1 send-proxy
frontend fe_tls
    bind 127.0.0.1:%(p_tls)d ssl crt %(pem)s
    default_backend be_tls
backend be_tls
    server sink 127.0.0.1:%(sink)d source 127.0.0.1 send-proxy-v2 proxy-v2-options ssl,ssl-cipher,authority,crc32c
""" % dict(p_v2=p_v2, p_v1=p_v1, p_tls=p_tls, sink=sink.port, pem=t.path("haproxy.pem"))
with open(t.path("haproxy.cfg"), "w") as f:
    f.write(cfg)
check = subprocess.run([haproxy, "-c", "-f", t.path("haproxy.cfg")], capture_output=True,
                       timeout=30)
if check.returncode != 0:
    t.fail("haproxy -c refused the configuration: %s" % check.stderr.decode(errors="replace"))
hlog = open(t.path("haproxy.log"), "wb")
hp = subprocess.Popen([haproxy, "-db", "-f", t.path("haproxy.cfg")], stdout=hlog, stderr=hlog)
t._procs.append(hp)


def wait_listening(port):
    end = time.time() + 10
    while time.time() < end:
        if hp.poll() is not None:
            t.fail("haproxy exited: %s" % open(t.path("haproxy.log")).read(), sink)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    t.fail("haproxy does not listen on %d" % port, sink)


for p in (p_v2, p_v1, p_tls):
    wait_listening(p)

msg = t.sample_message(t.NAME)
ctx = ssl.create_default_context(cafile=ca)
cases = []  # (label, client address, client port)
try:
    for label, port, source, tls in (("v2", p_v2, "127.0.0.2", False),
                                     ("v1", p_v1, "127.0.0.1", False),
                                     ("v2-ssl", p_tls, "127.0.0.1", True)):
        kw = dict(local_hostname="client-%s.localhost" % label, timeout=20,
                  source_address=(source, 0))
        s = (smtplib.SMTP_SSL("localhost", port, context=ctx, **kw) if tls
             else smtplib.SMTP("127.0.0.1", port, **kw))
        with s:
            host, cport = s.sock.getsockname()[:2]
            s.ehlo()
            refused = s.sendmail("alice@example.org", ["bob@example.org"], msg.decode())
            if refused:
                t.fail("%s: recipients refused: %r" % (label, refused), sink)
        cases.append((label, host, cport))
        t.note("%s: delivered through HAProxy from %s:%d" % (label, host, cport))

    # A client that bypasses the balancer sends no header: refused.
    with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as d:
        d.sendall(b"EHLO direct.localhost\r\n")
        got = b""
        while True:
            b = d.recv(4096)
            if not b:
                break
            got += b
        if not got.startswith(b"421 "):
            t.fail("a direct connection without a header got %r" % got, sink)
    t.note("direct connection without a header: %r" % got.strip().decode())
except (smtplib.SMTPException, OSError) as e:
    t.fail("smtplib: %r (haproxy log: %s)" % (e, open(t.path("haproxy.log")).read()), sink)

# The sink logs a session when it closes: wait (bounded) for each client's
# line, naming its address and source port, and HAProxy as the TCP peer.
wanted = [(label, r"session \d+ from %s:%d via 127\.0\.0\.1:\d+ proxy=%s helo=client-%s\.localhost "
           % (re.escape(host), cport, "v1" if label == "v1" else "v2", re.escape(label)))
          for label, host, cport in cases]
end = time.time() + 10
while time.time() < end and not all(re.search(w, sink.log()) for _, w in wanted):
    time.sleep(0.05)
hp.terminate()
hp.wait(10)
sink.stop()
log = sink.log()
for label, want in wanted:
    if not re.search(want, log):
        t.fail("%s: no session line matching %s" % (label, want), sink)
if not re.search(r"message \d+\.1 .* tls=TLSv1\.[23]/TLS_\S+\(proxy\)", log):
    t.fail("v2-ssl: the log does not name the TLS version and cipher HAProxy reported", sink)
if "refused connection from 127.0.0.1:" not in log or "proxy_missing" not in log:
    t.fail("the direct connection's refusal is not logged", sink)

headers = t.check_maildir(t.path("Maildir"), 3, msg, want_tls=False, sink=sink)
by_helo = {}
for h in headers:
    m = re.match(r"Received: from (\S+) \((\S+)\)", h)
    if m:
        by_helo[m.group(1)] = (m.group(2), h)
for label, host, cport in cases:
    got = by_helo.get("client-%s.localhost" % label)
    if got is None:
        t.fail("%s: no stored message with that HELO: %r" % (label, headers), sink)
    if got[0] != "[%s]" % host:
        t.fail("%s: Received names %s, the client was %s: %s" % (label, got[0], host, got[1]), sink)
    if label == "v2-ssl" and not re.search(r"\(using TLSv1\.[23] with cipher TLS_", got[1]):
        t.fail("v2-ssl: Received does not name the TLS HAProxy reported: %s" % got[1], sink)
    if label != "v2-ssl" and "using TLS" in got[1]:
        t.fail("%s: Received names TLS on a clear connection: %s" % (label, got[1]), sink)
t.passed("v2, v1 and v2-ssl through HAProxy: client address and port in Received and the log")
