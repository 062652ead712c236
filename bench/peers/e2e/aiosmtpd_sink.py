"""aiosmtpd_sink.py: a discard sink on aiosmtpd (Debian's python3-aiosmtpd),
a peer of smtpwire-sink --discard in scripts/bench. The whole message is read
(aiosmtpd buffers it) and thrown away; STARTTLS is offered when --cert/--key
are given. Prints "ready PORT" once listening.

    python3 aiosmtpd_sink.py --listen 127.0.0.1:PORT [--cert FILE --key FILE]
"""
import argparse
import asyncio
import signal
import ssl

from aiosmtpd.smtp import SMTP


class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK discarded"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)

    def factory():
        return SMTP(Discard(), hostname="aiosmtpd-sink.example", data_size_limit=0,
                    tls_context=tls, require_starttls=False, timeout=60,
                    enable_SMTPUTF8=True)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(factory, host, int(port), backlog=4096))
    print("ready %d" % server.sockets[0].getsockname()[1], flush=True)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    server.close()


if __name__ == "__main__":
    main()
