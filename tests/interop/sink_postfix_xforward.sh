#!/usr/bin/env bash
# Postfix's smtp client with smtp_send_xforward_command=yes relaying into
# smtpwire-sink --xforward-from 127.0.0.1: a private Postfix instance (its
# own config, queue and log directories under a temporary directory; smtpd
# on a free loopback port; relayhost = the sink, no TLS). Python's smtplib
# submits to Postfix from source address 127.0.0.3 with HELO
# orig-client.localhost; Postfix forwards that client's facts with XFORWARD
# (NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE as the sink offers them) and
# the sink's Received header must name the original client (HELO and
# [127.0.0.3]), its message log line the original address and source port.
# A client from an address outside --xforward-from (127.0.0.2) is neither
# offered XFORWARD nor allowed to use it (500).
# Needs root (Postfix's master) and the postfix package; skips otherwise.
source "$(dirname "$0")/common.sh"
need_private_postfix
need_tools

start_sink --xforward-from 127.0.0.1 --maildir "$work/Maildir"

# An untrusted client: no XFORWARD in EHLO, the command refused like an unknown one.
"$py" - "$port" <<'PY' || fail "an untrusted client saw or used XFORWARD"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="untrusted.localhost",
                  source_address=("127.0.0.2", 0), timeout=20) as s:
    code, caps = s.ehlo()
    assert code == 250 and b"XFORWARD" not in caps, caps
    code, msg = s.docmd("XFORWARD", "ADDR=192.0.2.1")
    assert code == 500, (code, msg)
PY
note "untrusted 127.0.0.2: no XFORWARD offered, XFORWARD answered 500"

start_private_postfix "relayhost = [127.0.0.1]:$port
smtp_tls_security_level = none
smtp_send_xforward_command = yes"

sample_message "$work/msg.eml"
client_port="$("$py" - "$smtpd_port" "$work/msg.eml" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="orig-client.localhost",
                  source_address=("127.0.0.3", 0), timeout=20) as s:
    port = s.sock.getsockname()[1]
    refused = s.sendmail("alice@example.org", ["bob@example.org"], open(sys.argv[2]).read())
    assert not refused, refused
print(port)
PY
)" || fail "smtplib could not submit to Postfix"
note "smtplib from 127.0.0.3:$client_port into Postfix smtpd: accepted"

wait_maildir 1 || { tail -20 "$pf/maillog"; fail "Postfix did not relay the message to smtpwire-sink"; }
postfix_stop
stop_sink

grep -Eq "message [0-9]+\.1 .* xforward=[^ ]*\[127\.0\.0\.3\]:$client_port " "$work/sink.log" \
  || fail "the sink's log does not name the forwarded client 127.0.0.3:$client_port"
grep -Eq "session [0-9]+ from 127\.0\.0\.1:[0-9]+ helo=postfix\.localhost " "$work/sink.log" \
  || fail "the sink's session line does not name Postfix as the TCP peer"
"$py" - "$work/Maildir/new" <<'PY' || fail "the sink's Received header does not name the original client"
import os, sys
d = sys.argv[1]
[n] = os.listdir(d)
data = open(os.path.join(d, n), "rb").read()
first = data.split(b"\r\nReceived:")[0].split(b"\r\n\r\n")[0]
assert first.startswith(b"Received: from orig-client.localhost ("), first
assert b"[127.0.0.3])" in first, first
# Below it, Postfix's own Received names the same client.
assert b"from orig-client.localhost (" in data.split(b"\r\nReceived:", 1)[1].split(b"\r\n\r\n")[0], data[:600]
PY
pass "Postfix smtp (XFORWARD) -> smtpwire-sink: the original client 127.0.0.3:$client_port in Received and the log"
