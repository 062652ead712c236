#!/usr/bin/python3
"""Python's SMTP paths on the canned bytes of bench/bench_side_by_side.cpp.

Usage: py_bench.py CANNED_DIR REPS MIN_SECONDS_PER_REP
Prints one JSON object per (row, impl): {"row", "impl", "ns": [...], "note"}
or {"row", "impl", "skipped"}. Times are process CPU time (time.process_time_ns).

  python-smtplib  reply parse: SMTP.getreply() over a file object holding the
                  canned replies (what smtplib does after every command);
                  DATA encode: SMTP.data(message) with a fake socket (its
                  _quote_periods dot-stuffing, the terminator, sendall, and
                  reading the canned 354 and 250);
                  client delivery: greeting, ehlo, mail, 5 rcpt, data, quit
                  over a fake socket and the canned server bytes.
  aiosmtpd        server session: aiosmtpd.smtp.SMTP (the asyncio protocol)
                  given a fake transport, fed the canned client stream with
                  data_received, run until its handler task ends (QUIT);
                  DATA decode N: the same with msg_N.wire as the message
                  (aiosmtpd reads DATA line by line inside its session, so
                  the row includes that session's few commands).
"""
import asyncio
import io
import json
import os
import smtplib
import sys
import time


def measure(reps, min_sec, op):
    if not op():
        return None
    out = []
    for _ in range(reps):
        iters = 0
        t0 = time.process_time_ns()
        batch = 1
        while True:
            for _ in range(batch):
                op()
            iters += batch
            el = time.process_time_ns() - t0
            if el >= min_sec * 1e9:
                break
            batch *= 2
        out.append(el / iters)
    return out


def emit(row, impl, ns, note):
    if ns is None:
        print(json.dumps({"row": row, "impl": impl, "skipped": "result check failed"}))
    else:
        print(json.dumps({"row": row, "impl": impl, "ns": ns, "note": note}))
    sys.stdout.flush()


class FakeSock:
    def __init__(self):
        self.out = []
        self.n = 0

    def sendall(self, b):
        self.n += len(b)

    def close(self):
        pass


def main():
    canned, reps, min_sec = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

    def read(name):
        with open(os.path.join(canned, name), "rb") as f:
            return f.read()

    # reply parse
    for row, name, lines in (("reply parse ehlo", "ehlo_replies.txt", 10),
                             ("reply parse 250", "ok_replies.txt", 1)):
        data = read(name)
        want = data.count(b"\n") // lines

        def op(data=data, want=want, lines=lines):
            s = smtplib.SMTP()
            s.file = io.BytesIO(data)
            code = msg = None
            for _ in range(want):
                code, msg = s.getreply()
            return code == 250 and msg.count(b"\n") == lines - 1 and s.file.read(1) == b""

        emit(row, "python-smtplib", measure(reps, min_sec, op),
             "smtplib.SMTP.getreply() per reply over io.BytesIO (Python %d.%d)" % sys.version_info[:2])

    # DATA encode
    for row, eml, wire in (("DATA encode 64 KiB", "msg_64k.eml", "msg_64k.wire"),
                           ("DATA encode 1 MiB", "msg_1m.eml", "msg_1m.wire")):
        msg, want = read(eml), read(wire)

        def op(msg=msg, want=want):
            s = smtplib.SMTP()
            s.sock = FakeSock()
            s.file = io.BytesIO(b"354 go ahead\r\n250 2.0.0 Ok\r\n")
            code, _ = s.data(msg)
            # "data\r\n" plus the stuffed message and terminator
            return code == 250 and s.sock.n == 6 + len(want)

        emit(row, "python-smtplib", measure(reps, min_sec, op),
             "smtplib.SMTP.data(): _quote_periods + terminator + fake sendall + 2 getreply")

    # client delivery
    server_bytes, msg4k = read("session_server.txt"), read("msg_4k.eml")
    rcpts = ["r%d@example.com" % i for i in range(1, 6)]

    def client_op():
        s = smtplib.SMTP()
        s.sock = FakeSock()
        s.file = io.BytesIO(server_bytes)
        if s.getreply()[0] != 220:
            return False
        if s.ehlo("client.example.org")[0] != 250:
            return False
        if s.mail("a@example.org", ["SIZE=%d" % len(msg4k)])[0] != 250:
            return False
        for r in rcpts:
            if s.rcpt(r)[0] != 250:
                return False
        if s.data(msg4k)[0] != 250:
            return False
        n = s.sock.n
        return s.quit()[0] == 221 and n > len(msg4k)

    emit("client delivery", "python-smtplib", measure(reps, min_sec, client_op),
         "smtplib.SMTP over a fake socket and io.BytesIO (lock-step)")

    # aiosmtpd
    try:
        import aiosmtpd
        from aiosmtpd.smtp import SMTP
    except ImportError as e:
        for row in ("server session", "DATA decode 64 KiB", "DATA decode 1 MiB"):
            print(json.dumps({"row": row, "impl": "aiosmtpd", "skipped": "aiosmtpd not importable: %s" % e}))
        return

    class Handler:
        def __init__(self):
            self.content = 0

        async def handle_DATA(self, server, session, envelope):
            self.content += len(envelope.original_content)
            return "250 2.0.0 Ok"

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.n = 0
            self.closing = False

        def get_extra_info(self, name, default=None):
            return {"peername": ("192.0.2.1", 25000), "sockname": ("192.0.2.2", 25)}.get(name, default)

        def write(self, data):
            self.n += len(data)

        def is_closing(self):
            return self.closing

        def close(self):
            self.closing = True

        def pause_reading(self):
            pass

        def resume_reading(self):
            pass

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def session_op(stream, content_len):
        handler = Handler()

        def op():
            handler.content = 0
            proto = SMTP(handler, hostname="mx.example.com", loop=loop)
            t = Transport()
            proto.connection_made(t)
            proto.data_received(stream)
            try:
                loop.run_until_complete(proto._handler_coroutine)
            except asyncio.CancelledError:  # QUIT cancels the handler task
                pass
            proto.connection_lost(None)
            return handler.content == content_len and t.closing

        return op

    head = (b"EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\n"
            + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) + b"DATA\r\n")
    note = "aiosmtpd %s SMTP protocol over a fake transport, whole session" % aiosmtpd.__version__
    emit("server session", "aiosmtpd",
         measure(reps, min_sec, session_op(read("session_client.txt"), len(msg4k))), note)
    for row, wire, eml in (("DATA decode 64 KiB", "msg_64k.wire", "msg_64k.eml"),
                           ("DATA decode 1 MiB", "msg_1m.wire", "msg_1m.eml")):
        emit(row, "aiosmtpd",
             measure(reps, min_sec, session_op(head + read(wire) + b"QUIT\r\n", len(read(eml)))),
             note + " (EHLO, MAIL, 5 RCPT, DATA of this message, QUIT)")


main()
