"""Python's smtplib into smtpwire-sink (messages passed as str: smtplib makes
the line ends CRLF): STARTTLS with the certificate
verified (ssl.create_default_context with the throwaway CA, host name
"localhost"), login() (smtplib picks the mechanism), sendmail() with three
recipients, two messages in one session; both arrive byte-exact. Also an
implicit-TLS client (smtplib.SMTP_SSL) into --implicit-tls-listen, and a
bad password refused with 535."""
import sys
import smtplib
import ssl

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import interop as t  # noqa: E402

ca, cert, key = t.make_pki()
sink = t.Sink("--implicit-tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
              "--require-tls", "--auth-file", t.path("users"), "--require-auth",
              "--maildir", t.path("Maildir"))
ctx = ssl.create_default_context(cafile=ca)
msg = t.sample_message(t.NAME)
rcpts = ["bob@example.org", "carol@example.org", "dave@example.org"]

try:
    with smtplib.SMTP("localhost", sink.port, local_hostname="client.localhost", timeout=20) as s:
        s.ehlo()
        if not s.has_extn("starttls"):
            t.fail("no STARTTLS offered", sink)
        if s.has_extn("auth"):
            t.fail("AUTH offered before TLS", sink)
        s.starttls(context=ctx)
        s.ehlo()
        s.login("alice", "s3cret pass")
        refused = s.sendmail("alice@example.org", rcpts, msg.decode())
        if refused:
            t.fail("recipients refused: %r" % refused, sink)
        refused = s.sendmail("alice@example.org", rcpts[:1], msg.decode())
        if refused:
            t.fail("recipients refused: %r" % refused, sink)
    t.note("STARTTLS (verified) + login + 3 recipients + 2 messages in one session: ok")

    with smtplib.SMTP_SSL("localhost", sink.implicit_port, local_hostname="client.localhost",
                          context=ctx, timeout=20) as s:
        s.login("bob", "hunter2")
        s.sendmail("bob@example.org", rcpts[:2], msg.decode())
    t.note("implicit TLS (SMTP_SSL) + login: ok")

    with smtplib.SMTP("localhost", sink.port, local_hostname="client.localhost", timeout=20) as s:
        s.starttls(context=ctx)
        try:
            s.login("alice", "wrong")
            t.fail("a wrong password was accepted", sink)
        except smtplib.SMTPAuthenticationError as e:
            if e.smtp_code != 535:
                t.fail("wrong password answered %d" % e.smtp_code, sink)
    t.note("wrong password refused (535)")
except (smtplib.SMTPException, OSError) as e:
    t.fail("smtplib: %r" % (e,), sink)

sink.stop()
headers = t.check_maildir(t.path("Maildir"), 3, msg, sink=sink)
if not any("ESMTPSA" in h for h in headers):
    t.fail("no Received with ESMTPSA", sink)
t.passed("3 messages byte-exact (STARTTLS and implicit TLS)")
