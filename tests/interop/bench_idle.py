"""Memory per idle session, not a test (tests/interop/run does not call it):
opens N connections (default 10000) to smtpwire-sink, reads each greeting,
and prints the sink's RSS growth per session, first without TLS, then with
STARTTLS offered (each session then holds a TLS glue and its buffers).
Needs about N+100 file descriptors per process (ulimit -n).
Usage: tests/interop/bench_idle.py [N]"""
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import interop as t  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
ca, cert, key = t.make_pki()


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1])


for label, args in (("plain", ["--discard"]),
                    ("STARTTLS offered", ["--tls-cert", cert, "--tls-key", key, "--discard"])):
    sink = t.Sink(*args)
    base = rss(sink.proc.pid)
    socks = [socket.create_connection(("127.0.0.1", sink.port)) for _ in range(n)]
    for s in socks:
        s.recv(100)  # the greeting: the session is live
    time.sleep(1)
    grown = rss(sink.proc.pid) - base
    print("%d idle sessions (%s): RSS +%d KiB, %.1f KiB per session" % (n, label, grown, grown / n))
    for s in socks:
        s.close()
    time.sleep(1)
    sink.stop()
