"""smtpwire-send into aiosmtpd (a private in-process server on a free
loopback port) with STARTTLS required and AUTH PLAIN/LOGIN, and the exit
statuses against real replies:
  0  accepted (PLAIN; LOGIN; PIPELINING off; 3 recipients) — content byte-exact
  1  one recipient of two refused (550)
  2  every recipient refused permanently (550)
  3  the recipient refused temporarily (450)
  4  the CA not trusted; --tls-name not in the certificate
  5  a wrong password (535)
and LMTP (smtpwire-send --lmtp, two recipients) into aiosmtpd's LMTP mode."""
import os
import socket
import ssl
import subprocess
import sys

import logging
import warnings

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import interop as t  # noqa: E402

logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd logs refused handshakes
warnings.simplefilter("ignore", DeprecationWarning)

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.lmtp import LMTP
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:
    t.skip("aiosmtpd is not installed for %s (apt-get install python3-aiosmtpd)" % sys.executable)

ca, cert, key = t.make_pki()
send = t.tool("smtpwire-send")
received = []


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("perm"):
            return "550 5.1.1 No such user"
        if address.startswith("temp"):
            return "450 4.2.0 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"alice"
          and auth_data.password == b"s3cret pass")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class LMTPHandler(Handler):
    # aiosmtpd's LMTP class sends handle_DATA's one reply as it is; RFC 2033
    # §4.2 wants one reply per accepted recipient, so this handler writes
    # them all (joined with CRLF). "full@" recipients are not delivered.
    async def handle_DATA(self, server, session, envelope):
        received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "\r\n".join("552 5.2.2 Mailbox full" if r.startswith("full") else "250 2.0.0 Delivered"
                           for r in envelope.rcpt_tos)


class LMTPController(Controller):
    def factory(self):
        return LMTP(self.handler)


tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
smtp_port = free_port()
smtpd = Controller(Handler(), hostname="127.0.0.1", port=smtp_port, server_hostname="aiosmtpd.localhost",
                   tls_context=tls, require_starttls=True, authenticator=authenticator,
                   auth_require_tls=True, ready_timeout=10)
smtpd.start()
lmtp_port = free_port()
lmtpd = LMTPController(LMTPHandler(), hostname="127.0.0.1", port=lmtp_port, ready_timeout=10)
lmtpd.start()

msg = t.sample_message(t.NAME)
with open(t.path("msg.eml"), "wb") as f:
    f.write(msg)


def run(*args, port=None, expect, auth=True, tls_args=None):
    cmd = [send, "--server", "127.0.0.1:%d" % (port or smtp_port), "--helo", "client.localhost",
           "--from", "alice@example.org", "--message-file", t.path("msg.eml")]
    cmd += tls_args if tls_args is not None else ["--ca-file", ca, "--tls-name", "localhost"]
    if auth:
        cmd += ["--auth-user", "alice", "--auth-password-file", t.path("password")]
    cmd += list(args)
    before = len(received)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    err = p.stderr.decode(errors="replace")
    if p.returncode != expect:
        t.fail("%s\nexit %d, expected %d; stderr:\n%s" % (" ".join(args), p.returncode, expect, err))
    if "s3cret" in err:
        t.fail("the password appears on stderr")
    return received[before:], err


try:
    sent = msg.replace(b"\n", b"\r\n")
    for extra in (["--auth-mech", "PLAIN"], ["--auth-mech", "LOGIN"], ["--no-pipelining"], []):
        got, err = run("--to", "bob@example.org", "-v", *extra, expect=0)
        if len(got) != 1 or got[0][2] != sent:
            t.fail("%s: content not byte-exact: %r" % (extra, got[0][2][:200] if got else None))
        if "C: AUTH" not in err or "TLS established" not in err:
            t.fail("-v transcript lacks AUTH or the TLS note:\n" + err)
    t.note("STARTTLS + AUTH PLAIN / LOGIN / engine's pick, with and without pipelining: exit 0, byte-exact")
    got, _ = run("--to", "bob@example.org", "--to", "carol@example.org", "--to", "dave@example.org",
                 expect=0)
    if got[0][1] != ["bob@example.org", "carol@example.org", "dave@example.org"]:
        t.fail("recipients: %r" % got[0][1])
    got, _ = run("--to", "bob@example.org", "--to", "perm@example.org", expect=1)
    if got[0][1] != ["bob@example.org"]:
        t.fail("partial: recipients %r" % got[0][1])
    run("--to", "perm@example.org", "--to", "perm2@example.org", expect=2)
    run("--to", "temp@example.org", expect=3)
    t.note("exit 0 (3 recipients), 1 (one refused), 2 (all 550), 3 (450)")
    run("--to", "bob@example.org", expect=4, tls_args=["--tls-name", "localhost"])
    run("--to", "bob@example.org", expect=4, tls_args=["--ca-file", ca, "--tls-name", "wrong.example"])
    got, _ = run("--to", "bob@example.org", expect=0, tls_args=["--ca-file", ca])  # 127.0.0.1 SAN
    t.note("exit 4 (untrusted CA, wrong name); the IP address SAN verifies")
    with open(t.path("password"), "w") as f:
        f.write("wrong\n")
    got, _ = run("--to", "bob@example.org", expect=5)
    if got:
        t.fail("a message went out after a failed AUTH")
    with open(t.path("password"), "w") as f:
        f.write("s3cret pass\n")
    t.note("exit 5 (535 to a wrong password, nothing sent)")
    got, _ = run("--lmtp", "--to", "bob@example.org", "--to", "carol@example.org", port=lmtp_port,
                 auth=False, expect=0, tls_args=["--tls", "none"])
    if len(got) != 1 or got[0][2] != sent or got[0][1] != ["bob@example.org", "carol@example.org"]:
        t.fail("LMTP delivery: %r" % (got,))
    got, err = run("--lmtp", "--to", "bob@example.org", "--to", "full@example.org", port=lmtp_port,
                   auth=False, expect=1, tls_args=["--tls", "none"])
    if "<full@example.org> not delivered: 552" not in err:
        t.fail("LMTP: the per-recipient failure is not reported:\n" + err)
    run("--lmtp", "--to", "full@example.org", port=lmtp_port, auth=False, expect=2,
        tls_args=["--tls", "none"])
    t.note("LMTP into aiosmtpd: exit 0 (2 recipients, byte-exact), 1 (one not delivered), 2 (none)")
finally:
    smtpd.stop()
    lmtpd.stop()
t.passed("exit statuses 0-5 and content byte-exact against aiosmtpd")
