#!/usr/bin/env python3
"""End-to-end benchmarks of scripts/bench: real processes on 127.0.0.1.

Every server (smtpwire-sink --discard and its peers: Postfix's smtp-sink, a
go-smtp sink, nodemailer's smtp-server, aiosmtpd) runs in its own process on
a free loopback port, started and stopped here; every wait and every client
run is bounded by a timeout. Sections (JSON Lines in OUT/<section>.jsonl,
format in scripts/bench):

  plain     smtp-source into each server: messages/s at 1/10/100 sessions,
            4 KiB and 1 MiB messages, and the server's CPU s per 1,000 messages
            (utime+stime from /proc/PID/stat)
  starttls  smtpwire-loadgen (STARTTLS, certificate verified against the CA)
            into each TLS-capable server: sessions/s and messages/s
  profile   perf record on smtpwire-sink under STARTTLS: share of its CPU in
            the smtpwire engines, the TLS glue, OpenSSL, the kernel, libc
  client    smtp-source vs smtpwire-loadgen / smtpwire-send into Postfix's
            smtp-sink: messages/s and client CPU s per 1,000 messages
  idle      N idle sessions (greeting read) per server: RSS per session
  growth    one message of 1 KiB .. 1 GiB into smtpwire-sink (and smtp-sink),
            streamed from a generator: time and peak RSS of the server

Each measurement is taken after a warm-up run that also calibrates the run's
size so that one repetition lasts about --target seconds; repetitions of the
servers alternate (rep 1 of every server, then rep 2, ...), so a ratio is
computed pair by pair from runs that were next to each other in time.
"""
import argparse
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")
FROM, TO = "load@example.org", "sink@example.org"
KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, flush=True)


def raise_nofile():
    """Raises this process's fd limit (10,000 idle sessions); the servers and
    clients started later inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 30000
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def cpu_seconds(pid):
    """utime+stime of a live process (its own threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(cmd, timeout, env=None, stdout=subprocess.DEVNULL):
    """Runs cmd; returns (exit status, wall s, CPU s of the child, stdout)."""
    t0 = time.monotonic()
    # No preexec_fn: Python then spawns without a fork of itself, whose page
    # copying would be billed to the child. The raised fd limit is inherited.
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
    timer = threading.Timer(timeout, lambda: p.kill())
    timer.start()
    out = b""
    try:
        if stdout == subprocess.PIPE:
            out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, out.decode(errors="replace")


class Failed(Exception):
    pass


class Server:
    """One peer: how to start it (plain or with STARTTLS) on a port."""

    def __init__(self, impl, make_cmd, tls=True, env=None, why_no_tls=""):
        self.impl, self.make_cmd, self.tls, self.env, self.why_no_tls = (
            impl, make_cmd, tls, env, why_no_tls)
        self.proc = None
        self.max_sessions = None  # most sessions it serves at once, when it has a cap

    def start(self, ctx, tls=False, extra=()):
        self.port = free_port()
        cmd = self.make_cmd(ctx, self.port, tls) + list(extra)
        env = dict(os.environ, **(self.env or {}))
        self.log = open(os.path.join(ctx.work, "%s.log" % self.impl), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed("%s exited at start (status %s), see %s" %
                             (self.impl, self.proc.returncode, self.log.name))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    if s.recv(512).startswith(b"220"):
                        break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise Failed("%s did not greet on port %d within 20 s" % (self.impl, self.port))
        time.sleep(0.1)
        return self

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(12)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.log.close()

    @property
    def pid(self):
        return self.proc.pid


class Results:
    def __init__(self, out):
        self.out = out
        os.makedirs(out, exist_ok=True)

    def write(self, section, obj):
        obj = dict(section=section, **obj)
        with open(os.path.join(self.out, section + ".jsonl"), "a") as f:
            f.write(json.dumps(obj) + "\n")

    def figure(self, section, row, impl, unit, better, values, note=None):
        if not values:
            return
        obj = dict(row=row, impl=impl, unit=unit, better=better,
                   median=round(statistics.median(values), 4), min=round(min(values), 4),
                   max=round(max(values), 4), runs=len(values),
                   values=[round(v, 4) for v in values])
        if note:
            obj["note"] = note
        self.write(section, obj)

    def skipped(self, section, row, impl, why):
        self.write(section, dict(row=row, impl=impl, skipped=why))


def size_label(n):
    if n >= GIB:
        return "%d GiB" % (n // GIB)
    if n >= MIB:
        return "%d MiB" % (n // MIB)
    return "%d KiB" % (n // KIB)


# ---------------------------------------------------------------- context ---

class Ctx:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.res = Results(a.out)
        self.bin = a.bin
        self.sink = os.path.join(a.bin, "smtpwire-sink")
        self.send = os.path.join(a.bin, "smtpwire-send")
        self.loadgen = os.path.join(a.bin, "smtpwire-loadgen")
        self.here = os.path.dirname(os.path.abspath(__file__))
        self.make_pki()

    def make_pki(self):
        w = self.work
        run = lambda *c: subprocess.run(c, cwd=w, check=True, timeout=60,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj",
            "/CN=smtpwire bench CA")
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
        with open(os.path.join(w, "server.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem")
        self.ca, self.cert, self.key = (os.path.join(w, f) for f in
                                        ("ca.pem", "server.pem", "server.key"))

    def servers(self):
        a = self.a

        def smtpwire(c, port, tls):
            cmd = [c.sink, "--listen", "127.0.0.1:%d" % port, "--discard",
                   "--hostname", "smtpwire-sink.example", "--max-size", str(2 * GIB)]
            return cmd + (["--tls-cert", c.cert, "--tls-key", c.key] if tls else [])

        def postfix(c, port, tls):
            return ["/usr/sbin/smtp-sink", "-u", "nobody", "127.0.0.1:%d" % port, "4096"]

        def gosmtp(c, port, tls):
            cmd = [a.gosmtp, "-listen", "127.0.0.1:%d" % port]
            return cmd + (["-cert", c.cert, "-key", c.key] if tls else [])

        def nodemailer(c, port, tls):
            cmd = [a.node, os.path.join(c.here, "nodemailer_sink.js"), "--listen",
                   "127.0.0.1:%d" % port]
            return cmd + (["--cert", c.cert, "--key", c.key] if tls else [])

        def aiosmtpd(c, port, tls):
            cmd = [a.python, os.path.join(c.here, "aiosmtpd_sink.py"), "--listen",
                   "127.0.0.1:%d" % port]
            return cmd + (["--cert", c.cert, "--key", c.key] if tls else [])

        out = [Server("smtpwire", smtpwire)]
        out.append(Server("postfix-smtp-sink", postfix, tls=False,
                          why_no_tls="Postfix's smtp-sink has no STARTTLS"))
        # smtp-sink serves 256 sessions at once at most (further connections
        # wait in the listen queue): its idle row is taken at 250.
        out[-1].max_sessions = 250
        for impl, fn, have in (("go-smtp", gosmtp, a.gosmtp),
                               ("nodemailer", nodemailer, a.node and a.node_modules),
                               ("aiosmtpd", aiosmtpd, a.python)):
            out.append(Server(impl, fn, env={"NODE_PATH": a.node_modules or ""}))
            out[-1].missing = None if have else "not installed"
        out[0].missing = out[1].missing = None
        if not os.access("/usr/sbin/smtp-sink", os.X_OK):
            out[1].missing = "Postfix's smtp-sink is not installed"
        for s in out:
            s.missing = a.missing.get(s.impl, s.missing)
        return out


def calibrate(n_warm, seconds_warm, target, lo, hi):
    rate = n_warm / max(seconds_warm, 1e-3)
    return int(min(max(rate * target, lo), hi))


# ------------------------------------------------------------------ plain ---

def smtp_source(port, sessions, msgs, size, timeout):
    cmd = ["/usr/sbin/smtp-source", "-s", str(sessions), "-m", str(msgs), "-l", str(size), "-d",
           "-M", "source.example.org", "-f", FROM, "-t", TO, "127.0.0.1:%d" % port]
    rc, wall, cpu, _ = run_child(cmd, timeout)
    if rc != 0:
        raise Failed("smtp-source exited %d (port %d, %d sessions, %d messages)" %
                     (rc, port, sessions, msgs))
    return wall, cpu


def start_all(ctx, servers, section, tls=False):
    """Starts every available server once for a section; the others get a
    skipped line per row later. Returns {impl: why} for those that failed."""
    bad = {}
    for s in servers:
        if s.missing:
            bad[s.impl] = s.missing
        elif tls and not s.tls:
            bad[s.impl] = s.why_no_tls
        else:
            try:
                s.start(ctx, tls=tls)
            except Failed as e:
                bad[s.impl] = str(e)
                log("  %s: %s does not start: %s" % (section, s.impl, e))
    return bad


def section_plain(ctx, servers):
    a, res = ctx.a, ctx.res
    bad = start_all(ctx, servers, "plain")
    for size in a.sizes:
        for conc in a.concurrency:
            row = "%s, %d session%s" % (size_label(size), conc, "" if conc == 1 else "s")
            for impl, why in bad.items():
                res.skipped("plain", row, impl, why)
            live = [s for s in servers if s.impl not in bad]
            # A warm-up run per server, which also sizes its repetitions.
            counts = {}
            for s in live:
                try:
                    per = 2 if size < MIB else 1  # at least this many messages per session
                    n0 = max(conc * per, a.warm_bytes // size)
                    wall, _ = smtp_source(s.port, conc, n0, size, a.timeout)
                    counts[s.impl] = calibrate(n0, wall, a.target, max(conc * per, 4),
                                               a.max_msgs)
                except Failed as e:
                    res.skipped("plain", row, s.impl, str(e))
                    log("  skipped", s.impl, e)
            rates = {k: [] for k in counts}
            cpus = {k: [] for k in counts}
            started = [s for s in live if s.impl in counts]
            for rep in range(a.reps):
                for s in started:
                    n = counts[s.impl]
                    c0 = cpu_seconds(s.pid)
                    try:
                        wall, _ = smtp_source(s.port, conc, n, size, a.timeout)
                    except Failed as e:
                        res.skipped("plain", row, s.impl, str(e))
                        log("  failed", s.impl, e)
                        continue
                    c1 = cpu_seconds(s.pid)
                    rates[s.impl].append(n / wall)
                    cpus[s.impl].append((c1 - c0) / n * 1000)
            for s in started:
                if len(rates[s.impl]) != a.reps:
                    continue
                res.figure("plain", "messages/s, " + row, s.impl, "msg/s", "higher",
                           rates[s.impl], note="%d messages per run" % counts[s.impl])
                res.figure("plain", "server CPU s per 1,000 messages, " + row, s.impl,
                           "CPU s", "lower", cpus[s.impl])
            log("plain %-22s" % row, "  ".join("%s %.0f msg/s" % (k, statistics.median(v))
                                                for k, v in rates.items() if v))


# --------------------------------------------------------------- starttls ---

def loadgen(ctx, port, conc, sessions, msgs, size, tls=True, timeout=120):
    cmd = [ctx.loadgen, "--server", "127.0.0.1:%d" % port, "--concurrency", str(conc),
           "--sessions", str(sessions), "--messages", str(msgs), "--size", str(size),
           "--timeout", str(timeout)]
    if tls:
        cmd += ["--tls", "required", "--ca-file", ctx.ca, "--tls-name", "localhost",
                "--no-resumption"]
    rc, wall, cpu, out = run_child(cmd, timeout + 10, stdout=subprocess.PIPE)
    kv = dict(x.split("=", 1) for x in out.split())
    if rc != 0 or "messages" not in kv:
        raise Failed("smtpwire-loadgen exited %d (port %d): %s" % (rc, port, out.strip()))
    return wall, cpu, kv


def section_starttls(ctx, servers):
    a, res = ctx.a, ctx.res
    conc = a.tls_concurrency
    bad = start_all(ctx, servers, "starttls", tls=True)
    rows = (("sessions/s", "1 message of 4 KiB per session, %d concurrent, full handshakes" % conc,
             1), ("messages/s", "4 KiB messages, %d sessions" % conc, None))
    for what, desc, per_session in rows:
        row = "%s, %s" % (what, desc)
        for impl, why in bad.items():
            res.skipped("starttls", row, impl, why)
        live = [s for s in servers if s.impl not in bad]
        plan = {}
        for s in live:
            try:
                if per_session == 1:
                    n0 = conc * 4
                    wall, _, _ = loadgen(ctx, s.port, conc, n0, 1, 4 * KIB)
                    plan[s.impl] = (calibrate(n0, wall, a.target, conc * 2, a.max_sessions), 1)
                else:
                    m0 = 20
                    wall, _, _ = loadgen(ctx, s.port, conc, conc, m0, 4 * KIB)
                    m = calibrate(conc * m0, wall, a.target, conc * 4, a.max_msgs) // conc
                    plan[s.impl] = (conc, max(m, 4))
            except Failed as e:
                res.skipped("starttls", row, s.impl, str(e))
                log("  skipped", s.impl, e)
        started = [s for s in live if s.impl in plan]
        vals = {s.impl: [] for s in started}
        cpus = {s.impl: [] for s in started}
        for rep in range(a.reps):
            for s in started:
                sess, m = plan[s.impl]
                c0 = cpu_seconds(s.pid)
                try:
                    wall, _, kv = loadgen(ctx, s.port, conc, sess, m, 4 * KIB)
                except Failed as e:
                    res.skipped("starttls", row, s.impl, str(e))
                    log("  failed", s.impl, e)
                    continue
                c1 = cpu_seconds(s.pid)
                n = float(kv["sessions"] if per_session == 1 else kv["messages"])
                vals[s.impl].append(n / float(kv["seconds"]))
                cpus[s.impl].append((c1 - c0) / n * 1000)
        unit = "sessions/s" if per_session == 1 else "msg/s"
        for s in started:
            if len(vals[s.impl]) != a.reps:
                continue
            sess, m = plan[s.impl]
            res.figure("starttls", row, s.impl, unit, "higher", vals[s.impl],
                       note="%d sessions x %d messages per run" % (sess, m))
            res.figure("starttls", "server CPU s per 1,000 %s, %s" %
                       ("sessions" if per_session == 1 else "messages", desc), s.impl,
                       "CPU s", "lower", cpus[s.impl])
        log("starttls %-10s" % what, "  ".join("%s %.0f" % (k, statistics.median(v))
                                               for k, v in vals.items() if v))


# ---------------------------------------------------------------- profile ---

def section_profile(ctx, servers):
    """perf record on smtpwire-sink while smtpwire-loadgen runs STARTTLS
    sessions (10 messages of 4 KiB each); samples are grouped by symbol/DSO."""
    a, res = ctx.a, ctx.res
    row_base = "smtpwire-sink CPU share under STARTTLS (perf, %d sessions x 10 x 4 KiB)"
    perf = shutil.which("perf")
    if perf is None:
        res.skipped("profile", "CPU share", "smtpwire", "perf is not installed (linux-perf)")
        return
    s = servers[0]
    s.start(ctx, tls=True)
    data = os.path.join(ctx.work, "perf.data")
    try:
        conc = a.tls_concurrency
        wall, _, _ = loadgen(ctx, s.port, conc, conc * 2, 10, 4 * KIB)  # warm-up
        sessions = calibrate(conc * 2, wall, a.target * 2, conc * 2, a.max_sessions)
        rec = subprocess.Popen([perf, "record", "-q", "-F", "1999", "-o", data, "-p",
                                str(s.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        loadgen(ctx, s.port, conc, sessions, 10, 4 * KIB)
        rec.send_signal(signal.SIGINT)
        rec.wait(30)
    except Failed as e:
        res.skipped("profile", "CPU share", "smtpwire", str(e))
        return
    finally:
        s.stop()
    rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort",
                          "dso,sym", "--percent-limit", "0", "-q"], capture_output=True,
                         text=True, timeout=120)
    groups = {}
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if kind == "k" or dso.startswith("[kernel"):
            g = "kernel"
        elif "libssl" in dso or "libcrypto" in dso:
            g = "OpenSSL (libssl, libcrypto)"
        elif "libc.so" in dso or "libc-" in dso or "libstdc++" in dso:
            g = "libc, libstdc++"
        elif "smtpwire::openssl" in sym:
            g = "smtpwire TLS glue (smtpwire::openssl)"
        elif "smtpwire::posix" in sym:
            g = "smtpwire POSIX loop (smtpwire::posix)"
        elif "smtpwire::" in sym:
            g = "smtpwire engines (smtpwire::, smtpwire::wire, smtpwire::detail)"
        elif "smtpwire-sink" in dso:
            g = "smtpwire-sink tool code, other"
        else:
            g = "other (%s)" % dso
        groups[g] = groups.get(g, 0.0) + pct
    total = sum(groups.values()) or 1.0
    for g, p in sorted(groups.items(), key=lambda x: -x[1]):
        if p / total < 0.001:
            continue
        res.figure("profile", g, "smtpwire", "% of samples", "lower", [p * 100 / total],
                   note=row_base % conc)
    log("profile", ", ".join("%s %.1f%%" % (g, p * 100 / total) for g, p in groups.items()
                             if p / total >= 0.01))


# ----------------------------------------------------------------- client ---

def section_client(ctx, servers):
    a, res = ctx.a, ctx.res
    pf = next(s for s in servers if s.impl == "postfix-smtp-sink")
    if pf.missing:
        res.skipped("client", "client side", "smtp-source", pf.missing)
        return
    msg = os.path.join(ctx.work, "message-4k.eml")
    with open(msg, "w") as f:
        f.write("From: <%s>\r\nTo: <%s>\r\nSubject: bench\r\n\r\n" % (FROM, TO))
        while f.tell() < 4 * KIB - 80:
            f.write("x" * 76 + "\r\n")
    pf.start(ctx)
    try:
        # One message per process: what a cron job or an application's
        # "send one mail" pays, start-up included.
        row = "1 message of 4 KiB, one client process each, messages/s"
        k = a.one_shot
        clients = {
            "smtp-source": ["/usr/sbin/smtp-source", "-s", "1", "-m", "1", "-l", str(4 * KIB),
                            "-M", "source.example.org", "-f", FROM, "-t", TO,
                            "127.0.0.1:%d" % pf.port],
            "smtpwire": [ctx.send, "--server", "127.0.0.1:%d" % pf.port, "--tls", "none",
                         "--helo", "send.example.org", "--from", FROM, "--to", TO,
                         "--message-file", msg],
            "smtpwire-loadgen": [ctx.loadgen, "--server", "127.0.0.1:%d" % pf.port,
                                 "--sessions", "1", "--messages", "1", "--size", str(4 * KIB)],
        }
        for cmd in clients.values():  # warm-up: page cache, binaries
            rc, _, _, _ = run_child(cmd, 30)
            if rc != 0:
                raise Failed("%s exited %d" % (cmd[0], rc))
        rates = {k2: [] for k2 in clients}
        cpu = {k2: [] for k2 in clients}
        for rep in range(a.reps):
            for impl, cmd in clients.items():
                t = c = 0.0
                for _ in range(k):
                    rc, wall, cc, _ = run_child(cmd, 30)
                    if rc != 0:
                        raise Failed("%s exited %d" % (cmd[0], rc))
                    t += wall
                    c += cc
                rates[impl].append(k / t)
                cpu[impl].append(c / k * 1000)
        notes = {"smtpwire": "smtpwire-send", "smtp-source": "Postfix smtp-source",
                 "smtpwire-loadgen": "smtpwire-loadgen --sessions 1"}
        for impl in clients:
            res.figure("client", row, impl, "msg/s", "higher", rates[impl],
                       note="%s, %d runs of one message" % (notes[impl], k))
            res.figure("client", "client CPU s per 1,000 messages, 1 message per process", impl,
                       "CPU s", "lower", cpu[impl], note=notes[impl])
        log("client one-shot", "  ".join("%s %.0f msg/s" % (i, statistics.median(v))
                                         for i, v in rates.items()))
        # Many messages per session, as a relay would send them.
        for conc in a.concurrency:
            row = "4 KiB messages, %d session%s" % (conc, "" if conc == 1 else "s")
            n0 = max(conc * 2, a.warm_bytes // (4 * KIB))
            wall, _ = smtp_source(pf.port, conc, n0, 4 * KIB, a.timeout)
            n = calibrate(n0, wall, a.target, conc * 4, a.max_msgs)
            per = max(n // conc, 2)
            n = per * conc
            vals = {"smtp-source": [], "smtpwire": []}
            cpus = {"smtp-source": [], "smtpwire": []}
            for rep in range(a.reps):
                wall, cc = smtp_source(pf.port, conc, n, 4 * KIB, a.timeout)
                vals["smtp-source"].append(n / wall)
                cpus["smtp-source"].append(cc / n * 1000)
                wall, cc, kv = loadgen(ctx, pf.port, conc, conc, per, 4 * KIB, tls=False)
                vals["smtpwire"].append(int(kv["messages"]) / wall)
                cpus["smtpwire"].append(cc / n * 1000)
            for impl in vals:
                note = "smtpwire-loadgen" if impl == "smtpwire" else "Postfix smtp-source -d"
                res.figure("client", "messages/s, " + row, impl, "msg/s", "higher", vals[impl],
                           note="%s, %d messages per run" % (note, n))
                res.figure("client", "client CPU s per 1,000 messages, " + row, impl, "CPU s",
                           "lower", cpus[impl], note=note)
            log("client %-22s" % row, "  ".join("%s %.0f msg/s" % (i, statistics.median(v))
                                                 for i, v in vals.items()))
    except Failed as e:
        res.skipped("client", "client side", "smtpwire", str(e))
        log("  client skipped:", e)
    finally:
        pf.stop()


# ------------------------------------------------------------------- idle ---

def open_idle(port, n, timeout=60):
    """n connections that have each read the greeting; returns the sockets."""
    socks = []
    deadline = time.monotonic() + timeout
    batch = 256
    while len(socks) < n:
        if time.monotonic() > deadline:
            raise Failed("only %d of %d sessions opened in %d s" % (len(socks), n, timeout))
        group = []
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket()
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            s.setblocking(False)
            group.append(s)
        sel = selectors.DefaultSelector()
        for s in group:
            sel.register(s, selectors.EVENT_READ)
        pending = len(group)
        while pending:
            ready = sel.select(timeout=max(0.1, deadline - time.monotonic()))
            if not ready and time.monotonic() > deadline:
                raise Failed("greetings missing after %d s" % timeout)
            for key, _ in ready:
                data = key.fileobj.recv(512)
                if not data.startswith(b"220"):
                    raise Failed("no greeting: %r" % data[:60])
                sel.unregister(key.fileobj)
                pending -= 1
        sel.close()
        socks += group
    return socks


def section_idle(ctx, servers):
    a, res = ctx.a, ctx.res
    n = a.idle
    for tls in (False, True):
        row = "RSS per idle session, %d sessions, %s" % (n, "STARTTLS offered" if tls else
                                                          "plain")
        for s in servers:
            if s.missing or (tls and not s.tls):
                res.skipped("idle", row, s.impl, s.missing or s.why_no_tls)
                continue
            vals = []
            k = min(n, s.max_sessions or n)
            try:
                for rep in range(a.idle_reps):
                    s.start(ctx, tls=tls)
                    try:
                        # First allocations, lazy imports; closed again, since
                        # smtpwire-sink (like a real server) caps its sessions
                        # at 10,000 by default.
                        for x in open_idle(s.port, 50):
                            x.close()
                        time.sleep(a.settle)
                        base = status_kib(s.pid, "VmRSS")
                        socks = open_idle(s.port, k, timeout=max(10, k // 400))
                        time.sleep(a.settle * 3)
                        grown = status_kib(s.pid, "VmRSS") - base
                        vals.append(grown / k)
                        for x in socks:
                            x.close()
                    finally:
                        s.stop()
            except (Failed, OSError) as e:
                res.skipped("idle", row, s.impl, str(e))
                log("  idle skipped", s.impl, e)
                continue
            note = "VmRSS growth over %d sessions that read the greeting" % k
            if k < n:
                note += " (it serves at most %d at once)" % (s.max_sessions + 6)
            res.figure("idle", row, s.impl, "KiB/session", "lower", vals, note=note)
            log("idle %-5s %-18s %.1f KiB/session" % ("tls" if tls else "plain", s.impl,
                                                      statistics.median(vals)))


# ----------------------------------------------------------------- growth ---

_BLOCK = []


def body_block():
    """1 MiB of 78-octet lines (every 16th starts with a dot), built once."""
    if not _BLOCK:
        lines = [("." if i % 16 == 15 else "") + chr(ord("a") + i % 26) * 76
                 for i in range(MIB // 78 + 1)]
        _BLOCK.append("".join(x[:76] + "\r\n" for x in lines).encode())
    return _BLOCK[0]


def stream_one(port, size, timeout):
    """One message of `size` octets, generated while it is sent; returns
    the seconds from DATA's 354 to the 250 after the final dot."""
    blk = body_block()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise Failed("connection closed")
            if line[3:4] != b"-":
                return line

    def cmd(c, want):
        s.sendall(c)
        r = reply()
        if not r.startswith(want):
            raise Failed("%r -> %r" % (c, r))

    reply()
    cmd(b"EHLO growth.example.org\r\n", b"250")
    cmd(b"MAIL FROM:<%s>\r\n" % FROM.encode(), b"250")
    cmd(b"RCPT TO:<%s>\r\n" % TO.encode(), b"250")
    cmd(b"DATA\r\n", b"354")
    t0 = time.monotonic()
    head = b"Subject: growth\r\n\r\n"
    s.sendall(head)
    left = size - len(head)
    while left > len(blk):
        s.sendall(blk)
        left -= len(blk)
    tail = blk[:max(left - 2, 0)]
    tail = tail[:len(tail) - (len(tail) % 78)]
    s.sendall(tail + b"\r\n.\r\n")
    r = reply()
    t1 = time.monotonic()
    if not r.startswith(b"250"):
        raise Failed("end of data -> %r" % r)
    s.sendall(b"QUIT\r\n")
    f.close()
    s.close()
    return t1 - t0


def section_growth(ctx, servers):
    a, res = ctx.a, ctx.res
    for s in servers[:2]:
        if s.missing:
            res.skipped("growth", "growth", s.impl, s.missing)
            continue
        for size in a.growth:
            times, rss, cpus = [], [], []
            try:
                for rep in range(min(a.reps, 3) if size < 256 * MIB else min(a.reps, 2)):
                    s.start(ctx)
                    try:
                        stream_one(s.port, 4 * KIB, 30)  # warm-up
                        c0 = cpu_seconds(s.pid)
                        times.append(stream_one(s.port, size, a.timeout))
                        cpus.append(cpu_seconds(s.pid) - c0)
                        rss.append(status_kib(s.pid, "VmHWM"))
                    finally:
                        s.stop()
            except (Failed, OSError) as e:
                res.skipped("growth", size_label(size), s.impl, str(e))
                continue
            lbl = size_label(size)
            res.figure("growth", "time for one message, " + lbl, s.impl, "s", "lower", times,
                       note="354 to 250, streamed")
            if size >= 16 * MIB:  # CPU time comes in 10 ms ticks: too coarse below
                res.figure("growth", "server CPU per MiB, " + lbl, s.impl, "CPU ms/MiB",
                           "lower", [c * 1000 / (size / MIB) for c in cpus])
            res.figure("growth", "server peak RSS (VmHWM), " + lbl, s.impl, "KiB", "lower", rss)
            log("growth %-18s %-7s %.3f s, peak RSS %d KiB" % (s.impl, lbl,
                                                             statistics.median(times),
                                                             statistics.median(rss)))


SECTIONS = {"plain": section_plain, "starttls": section_starttls, "profile": section_profile,
            "client": section_client, "idle": section_idle, "growth": section_growth}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True, help="smtpwire-sink, smtpwire-send, smtpwire-loadgen")
    ap.add_argument("--gosmtp", default="")
    ap.add_argument("--node", default=shutil.which("node") or "")
    ap.add_argument("--node-modules", default="")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--missing", default="{}", help="JSON {impl: why} for peers not installed")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    a = ap.parse_args()
    a.missing = json.loads(a.missing)
    if a.smoke:
        a.sizes, a.concurrency, a.reps, a.target = [4 * KIB, 64 * KIB], [1, 4], 1, 0.05
        a.max_msgs, a.max_sessions, a.warm_bytes, a.timeout = 200, 40, 64 * KIB, 30
        a.tls_concurrency, a.one_shot, a.idle, a.idle_reps = 2, 2, 100, 1
        a.growth = [KIB, MIB]
        a.settle = 0.1
    else:
        a.sizes, a.concurrency, a.reps, a.target = [4 * KIB, MIB], [1, 10, 100], 5, 0.5
        a.max_msgs, a.max_sessions, a.warm_bytes, a.timeout = 200000, 20000, 8 * MIB, 120
        a.tls_concurrency, a.one_shot, a.idle, a.idle_reps = 10, 20, 10000, 1
        a.growth = [KIB, MIB, 16 * MIB, 256 * MIB, GIB]
        a.settle = 0.4
    raise_nofile()
    # A timeout or ^C still stops the servers (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(a.work, exist_ok=True)
    ctx = Ctx(a)
    servers = ctx.servers()
    for name in a.sections.split(","):
        t0 = time.monotonic()
        log("section", name)
        try:
            SECTIONS[name](ctx, servers)
        except Failed as e:
            ctx.res.skipped(name, name, "smtpwire", "harness failure: %s" % e)
            log("  section %s failed: %s" % (name, e))
        finally:
            for s in servers:
                s.stop()
        ctx.res.write("timing", dict(row=name, seconds=round(time.monotonic() - t0, 1)))


if __name__ == "__main__":
    main()
