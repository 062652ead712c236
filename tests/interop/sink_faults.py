"""Faults against smtpwire-sink (raw sockets and smtplib):
  - clients that disconnect mid-command, mid-DATA and mid-TLS-handshake, and
    one that sends garbage instead of a ClientHello: the sink keeps serving,
    stores nothing for them, and leaves nothing in tmp/
  - a full disk (the Maildir on a 256 KiB tmpfs; needs mount rights, else
    that part is skipped): 452 4.3.1 and no partial message in new/ or tmp/
  - SIGTERM during load (8 clients sending in a loop): the sink stops within
    its grace period and every message that got 250 has its file in new/."""
import sys
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import interop as t  # noqa: E402

ca, cert, key = t.make_pki()
msg = t.sample_message(t.NAME).decode().replace("\n", "\r\n")


def greet(s, f):
    f.readline()
    s.sendall(b"EHLO client.localhost\r\n")
    while f.readline()[3:4] == b"-":
        pass


def raw(port, steps):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        greet(s, f)
        for data, want_reply in steps:
            s.sendall(data)
            if want_reply:
                f.readline()


def deliver(port, n=1):
    ctx = ssl.create_default_context(cafile=ca)
    with smtplib.SMTP("localhost", port, local_hostname="client.localhost", timeout=20) as s:
        s.starttls(context=ctx)
        for _ in range(n):
            s.sendmail("alice@example.org", ["bob@example.org"], msg)


# -- disconnects ---------------------------------------------------------------
sink = t.Sink("--tls-cert", cert, "--tls-key", key, "--maildir", t.path("md1"))
raw(sink.port, [(b"MAIL FROM:<alice@exa", False)])  # mid-command
raw(sink.port, [(b"MAIL FROM:<a@example.org>\r\n", True), (b"RCPT TO:<b@example.org>\r\n", True),
                (b"DATA\r\n", True), (b"Subject: cut\r\n\r\nhalf a mess", False)])  # mid-DATA
raw(sink.port, [(b"STARTTLS\r\n", True), (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", False)])
raw(sink.port, [(b"STARTTLS\r\n", True), (b"this is not a ClientHello\r\n" * 20, False)])
time.sleep(0.3)
deliver(sink.port)
sink.stop()
t.check_maildir(t.path("md1"), 1, msg.encode(), sink=sink)
if sink.log().count("session ") < 5:
    t.fail("expected a log line for each of the 5 sessions", sink)
t.note("disconnects mid-command, mid-DATA, mid-handshake, garbage handshake: survived, nothing stored")

# -- full disk --------------------------------------------------------------------
os.rename(t.path("sink.log"), t.path("sink1.log"))
mnt = t.path("tiny")
os.mkdir(mnt)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
if not mounted:
    t.note("full disk: skipped (cannot mount a tmpfs here)")
else:
    try:
        sink = t.Sink("--maildir", os.path.join(mnt, "Maildir"))
        big = "Subject: big\r\n\r\n" + ("z" * 76 + "\r\n") * 5000  # ~390 KB > 256 KiB
        with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="client.localhost", timeout=20) as s:
            try:
                s.sendmail("alice@example.org", ["bob@example.org"], big)
                t.fail("a message larger than the disk was accepted", sink)
            except smtplib.SMTPDataError as e:
                if e.smtp_code != 452 or b"4.3.1" not in e.smtp_error:
                    t.fail("full disk answered %d %r" % (e.smtp_code, e.smtp_error), sink)
            # The session goes on, and a small message fits again.
            s.sendmail("alice@example.org", ["bob@example.org"], msg)
        sink.stop()
        md = os.path.join(mnt, "Maildir")
        if os.listdir(os.path.join(md, "tmp")):
            t.fail("a partial message was left in tmp/", sink)
        t.check_maildir(md, 1, msg.encode(), want_tls=False, sink=sink)
        t.note("full disk: 452 4.3.1, nothing partial left, the next message stored")
    finally:
        subprocess.run(["umount", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

# -- SIGTERM during load -------------------------------------------------------------
os.rename(t.path("sink.log"), t.path("sink2.log"))
sink = t.Sink("--maildir", t.path("md3"))
accepted, lock, stop = [], threading.Lock(), threading.Event()


def client():
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="client.localhost",
                              timeout=20) as s:
                s.ehlo()
                for _ in range(5):
                    s.mail("alice@example.org")
                    s.rcpt("bob@example.org")
                    code, reply = s.data(msg)
                    if code == 250:
                        m = re.search(rb"queued as (\S+)", reply)
                        with lock:
                            accepted.append(m.group(1).decode() if m else "?")
        except (smtplib.SMTPException, OSError):
            if sink.proc.poll() is not None or stop.is_set():
                return
            time.sleep(0.05)


threads = [threading.Thread(target=client) for _ in range(8)]
for th in threads:
    th.start()
time.sleep(1.5)
sink.proc.send_signal(signal.SIGTERM)
try:
    rc = sink.proc.wait(20)
except subprocess.TimeoutExpired:
    t.fail("the sink did not stop within 20 s of SIGTERM under load", sink)
stop.set()
for th in threads:
    th.join(30)
if rc != 0 or "stopped: sessions=" not in sink.log():
    t.fail("exit %d, or no totals after SIGTERM" % rc, sink)
files = os.listdir(t.path("md3/new"))
if os.listdir(t.path("md3/tmp")):
    t.fail("files left in tmp/ after SIGTERM", sink)
ids = {f.split(".")[0] + f.split(".")[1] for f in files}  # "<sec>" + "M..P..Q.." = the queue id
lost = [a for a in accepted if a not in ids]
if not accepted or lost:
    t.fail("%d accepted, %d files, lost: %r" % (len(accepted), len(files), lost[:5]), sink)
t.note("SIGTERM under load: %d messages got 250, each has its file in new/" % len(accepted))
t.passed("disconnects, full disk, SIGTERM under load")
