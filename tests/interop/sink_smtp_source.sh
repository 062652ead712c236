#!/usr/bin/env bash
# Postfix's smtp-source into smtpwire-sink (plain SMTP, Maildir): 200
# messages of 4 KB with 2 recipients each, over 8 parallel sessions and
# several messages per connection (-d); then the same in LMTP (-L) into
# smtpwire-sink --lmtp. Every message must be in new/ (none in tmp/), each
# starting with a Received header, and the sink's totals must match.
source "$(dirname "$0")/common.sh"
source_bin=/usr/sbin/smtp-source
need_peer "$source_bin" postfix
need_tools

count_ok() {  # DIR N
  local n
  n="$(find "$1/new" -type f | wc -l)"
  ((n == $2)) || fail "$1/new holds $n messages, expected $2"
  [[ -z "$(find "$1/tmp" -type f)" ]] || fail "files left in $1/tmp"
  local f
  for f in "$1"/new/*; do
    head -c 15 "$f" | grep -q '^Received: from ' || fail "$f: no Received header first"
  done
}

start_sink --maildir "$work/Maildir"
timeout 120 "$source_bin" -s 8 -m 200 -l 4096 -r 2 -d -N -f alice@example.org \
  -t bob@example.org -M client.localhost "127.0.0.1:$port" >"$work/source.out" 2>&1 \
  || { cat "$work/source.out"; fail "smtp-source (SMTP) failed"; }
stop_sink
count_ok "$work/Maildir" 200
grep -q 'messages=200 ' "$work/sink.log" || fail "the sink's totals do not say messages=200"
note "SMTP: 200 messages over 8 sessions stored"

mv "$work/sink.log" "$work/sink-smtp.log"
start_sink --lmtp --maildir "$work/Maildir-lmtp"
timeout 120 "$source_bin" -L -s 4 -m 50 -l 1024 -r 3 -d -N -f alice@example.org \
  -t bob@example.org -M client.localhost "127.0.0.1:$port" >"$work/source.out" 2>&1 \
  || { cat "$work/source.out"; fail "smtp-source (LMTP) failed"; }
stop_sink
count_ok "$work/Maildir-lmtp" 50
grep -q ' with LMTP' "$work"/Maildir-lmtp/new/* || fail "no 'with LMTP' in Received"
pass "200 SMTP + 50 LMTP messages stored, none lost"
