#!/usr/bin/env bash
# curl into smtpwire-sink: STARTTLS required (--ssl-reqd), the certificate
# verified against the throwaway CA for "localhost", AUTH (curl picks PLAIN
# or LOGIN), two recipients; the message arrives byte-exact. Also: a curl
# that does not trust the CA fails the handshake, and content with bare LF
# (curl without --crlf) is refused; neither stores anything.
source "$(dirname "$0")/common.sh"
need_peer curl curl
need_tools
make_pki
sample_message "$work/msg.eml"
start_sink --tls-cert "$work/server.pem" --tls-key "$work/server.key" --require-tls \
  --auth-file "$work/users" --require-auth --maildir "$work/Maildir"

cu() {
  timeout 30 curl --silent --show-error --max-time 20 --ssl-reqd \
    --resolve "localhost:$port:127.0.0.1" --url "smtp://localhost:$port/client.localhost" \
    --mail-from alice@example.org --mail-rcpt bob@example.org --mail-rcpt carol@example.org \
    --user 'alice:s3cret pass' --upload-file "$work/msg.eml" "$@" >"$work/curl.out" 2>&1
}
cu --cacert "$work/ca.pem" --crlf || { cat "$work/curl.out"; fail "curl --ssl-reqd"; }
note "STARTTLS (verified) + AUTH + 2 recipients: ok"
# Without --crlf curl sends the file's bare LFs as they are: the sink is
# strict (only CRLF ends a line) and refuses the content.
if cu --cacert "$work/ca.pem"; then fail "content with bare LF was accepted"; fi
grep -q 'failed=data_bare_lf' "$work/sink.log" || fail "bare LF content not refused as data_bare_lf"
note "bare-LF content (curl without --crlf) refused"
if cu --capath /nonexistent-dir --cacert /dev/null; then
  fail "curl accepted a certificate it cannot verify"
fi
note "untrusted certificate: curl refused the handshake"

stop_sink
check_maildir "$work/Maildir" 1 "$work/msg.eml"
grep -q 'to=<bob@example.org>,<carol@example.org>' "$work/sink.log" || fail "two recipients not logged"
pass "1 message byte-exact, 2 recipients"
