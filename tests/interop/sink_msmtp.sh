#!/usr/bin/env bash
# msmtp into smtpwire-sink: STARTTLS with the certificate verified against
# the throwaway CA, AUTH (msmtp's choice of PLAIN/LOGIN), two recipients;
# the message arrives byte-exact.
source "$(dirname "$0")/common.sh"
need_peer msmtp msmtp
need_tools
make_pki
# msmtp adds a Date header to a message without one: give it one.
sample_message "$work/body.eml"
{ printf 'Date: %s\n' "$(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S +0000')"; cat "$work/body.eml"; } >"$work/msg.eml"
start_sink --tls-cert "$work/server.pem" --tls-key "$work/server.key" --require-tls \
  --auth-file "$work/users" --require-auth --maildir "$work/Maildir"
cat >"$work/msmtprc" <<EOC
account interop
host localhost
port $port
domain client.localhost
from alice@example.org
tls on
tls_starttls on
tls_trust_file $work/ca.pem
auth on
user alice
password s3cret pass
logfile $work/msmtp.log
EOC
chmod 600 "$work/msmtprc"
timeout 30 msmtp --file="$work/msmtprc" --account=interop bob@example.org carol@example.org \
  <"$work/msg.eml" >"$work/msmtp.out" 2>&1 || { cat "$work/msmtp.out"; fail "msmtp failed"; }
stop_sink
check_maildir "$work/Maildir" 1 "$work/msg.eml"
pass "1 message byte-exact over STARTTLS + AUTH"
