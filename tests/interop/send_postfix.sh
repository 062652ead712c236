#!/usr/bin/env bash
# smtpwire-send into Postfix's smtpd, and Postfix's smtp client into
# smtpwire-sink: a private Postfix instance (its own config, queue and log
# directories under a temporary directory; smtpd on a free loopback port,
# STARTTLS with the throwaway certificate; relayhost = smtpwire-sink with
# smtp_tls_security_level=secure against the throwaway CA). The message goes
# smtpwire-send --tls required -> Postfix smtpd -> Postfix queue -> Postfix
# smtp (STARTTLS, verified) -> smtpwire-sink (STARTTLS) -> Maildir, and must
# arrive with its content unchanged below Postfix's and the sink's headers;
# once with DATA, once with --chunking (BDAT, which Postfix offers).
# Needs root (Postfix's master) and the postfix package; skips otherwise.
source "$(dirname "$0")/common.sh"
need_private_postfix
need_tools
make_pki
{
  printf 'From: Alice <alice@example.org>\nTo: Bob <bob@example.org>\n'
  printf 'Subject: through Postfix\nDate: %s\nMessage-ID: <postfix.%s@example.org>\n\n' \
    "$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S +0000')" "$$"
  printf 'first line\n.a line starting with a dot\n.\nlast line\n'
} >"$work/msg.eml"

start_sink --tls-cert "$work/server.pem" --tls-key "$work/server.key" --require-tls \
  --maildir "$work/Maildir"

start_private_postfix "relayhost = [localhost]:$port
smtpd_tls_security_level = may
smtpd_tls_cert_file = $pf/etc/server.pem
smtpd_tls_key_file = $pf/etc/server.key
smtp_tls_security_level = secure
smtp_tls_CAfile = $pf/etc/ca.pem
smtp_tls_secure_cert_match = nexthop" "$work/server.pem" "$work/server.key" "$work/ca.pem"

timeout 60 "$bin/smtpwire-send" --server "127.0.0.1:$smtpd_port" --tls required --ca-file "$work/ca.pem" \
  --tls-name localhost --helo client.localhost --from alice@example.org --to bob@example.org \
  --message-file "$work/msg.eml" -v 2>"$work/send.err" \
  || { cat "$work/send.err"; fail "smtpwire-send into Postfix failed"; }
note "smtpwire-send --tls required into Postfix smtpd (STARTTLS): accepted"
timeout 60 "$bin/smtpwire-send" --server "127.0.0.1:$smtpd_port" --ca-file "$work/ca.pem" \
  --tls-name localhost --helo client.localhost --from alice@example.org --to bob@example.org \
  --chunking --message-file "$work/msg.eml" 2>"$work/send.err" \
  || { cat "$work/send.err"; fail "smtpwire-send --chunking into Postfix failed"; }
for _ in $(seq 100); do grep -q 'bdat=1' "$pf/maillog" 2>/dev/null && break; sleep 0.1; done
grep -q 'bdat=1' "$pf/maillog" || fail "Postfix's log shows no BDAT for --chunking"
note "smtpwire-send --chunking (BDAT) into Postfix smtpd: accepted"

# Postfix relays both to the sink.
wait_maildir 2 || { tail -20 "$pf/maillog"; fail "Postfix did not relay both messages to smtpwire-sink"; }
postfix_stop
stop_sink
"$py" - "$work/Maildir/new" "$work/msg.eml" <<'PY' || fail "the relayed message differs"
import os, sys
d = sys.argv[1]
names = os.listdir(d)
assert len(names) == 2, names
sent = open(sys.argv[2], "rb").read().replace(b"\n", b"\r\n")
for n in names:
    data = open(os.path.join(d, n), "rb").read()
    assert data.startswith(b"Received: from postfix.localhost"), data[:200]
    hdr, _, _ = data.partition(b"\r\n\r\n")
    assert b"(using TLSv1." in hdr.split(b"\r\nReceived:")[0], "the sink's Received does not name TLS"
    assert b"by postfix.localhost (Postfix) with ESMTPS" in hdr, "Postfix's Received does not say ESMTPS"
    # Below the Received headers both MTAs prepended, the message is unchanged.
    k = data.index(b"\r\nFrom: Alice") + 2
    assert data[k:] == sent, (data[k:k + 300], sent[:300])
PY
pass "smtpwire-send -> Postfix smtpd (STARTTLS) -> Postfix smtp (verified TLS) -> smtpwire-sink: unchanged"
