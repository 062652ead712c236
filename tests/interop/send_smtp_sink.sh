#!/usr/bin/env bash
# smtpwire-send into Postfix's smtp-sink (a private instance on a free
# loopback port, run as nobody): plain SMTP (--tls none) with PIPELINING and
# three recipients; smtp-sink's dump (-D) holds the content, which must be
# what was sent (smtp-sink stores LF line ends and adds its own headers).
# smtp-sink offers no STARTTLS, so the default --tls required must refuse to
# send anything (exit 4); smtp-sink's hard (-f rcpt: 5xx) and soft (-r data:
# 4xx) rejections give exit 2 and 3.
source "$(dirname "$0")/common.sh"
sink_bin=/usr/sbin/smtp-sink
need_peer "$sink_bin" postfix
need_tools
id nobody >/dev/null 2>&1 || skip "no user 'nobody' to run smtp-sink as"
sample_message "$work/msg.eml"
chmod 755 "$work"
mkdir -m 777 "$work/dump"

start_smtp_sink() {  # PORT ARGS...
  local p="$1"
  shift
  timeout 60 "$sink_bin" -u nobody "$@" "127.0.0.1:$p" 10 >"$work/smtp-sink.out" 2>&1 &
  pids+=($!)
  wait_port "$p" || fail "smtp-sink did not start"
}
snd() {
  timeout 60 "$bin/smtpwire-send" --server "127.0.0.1:$p1" --helo client.localhost \
    --from alice@example.org --message-file "$work/msg.eml" "$@"
}

p1="$(free_port)"
start_smtp_sink "$p1" -D "$work/dump/all"
snd --tls none --to bob@example.org --to carol@example.org --to dave@example.org -v \
  2>"$work/send.err" || { cat "$work/send.err"; fail "delivery to smtp-sink failed"; }
grep -q '^S: 250-PIPELINING' "$work/send.err" || fail "smtp-sink offered no PIPELINING?"
# Pipelined: MAIL, the RCPTs and DATA leave before the first reply arrives.
awk '/^C: MAIL FROM/{m=1} m&&/^S: /{exit} m&&/^C: DATA/{print "pipelined"; exit}' "$work/send.err" \
  | grep -q pipelined || fail "MAIL..DATA was not sent as one flight"
note "--tls none, 3 recipients, pipelined: exit 0"

rc=0
snd --to bob@example.org 2>"$work/send.err" || rc=$?
((rc == 4)) || { cat "$work/send.err"; fail "--tls required against a server without STARTTLS: exit $rc, expected 4"; }
grep -q 'does not offer STARTTLS' "$work/send.err" || fail "no clear message for the missing STARTTLS"
note "--tls required, no STARTTLS offered: exit 4, nothing sent"
sleep 0.5

"$py" - "$work/dump/all" "$work/msg.eml" <<'PY' || fail "the dumped message differs from what was sent"
import sys
dump = open(sys.argv[1], "rb").read()
sent = open(sys.argv[2], "rb").read()
lines = dump.split(b"\n")
i = next(k for k, l in enumerate(lines) if l.startswith(b"Received: "))
i += 1
while lines[i].startswith(b"\t"):
    i += 1
body = b"\n".join(lines[i:])
# smtp-sink ends each dumped message with an empty line.
if body != sent + b"\n":
    sys.exit("dump body %r... differs from %r..." % (body[:200], sent[:200]))
if dump.count(b"X-Rcpt-Args: ") != 3:
    sys.exit("expected 3 recipients in the dump")
if b"X-Helo-Args: client.localhost" not in dump:
    sys.exit("HELO name not in the dump")
PY
note "content as smtp-sink stored it: identical (LF line ends)"

p1="$(free_port)"
start_smtp_sink "$p1" -f rcpt  # -f: reject RCPT with a hard (5xx) error
rc=0
snd --tls none --to bob@example.org 2>"$work/send.err" || rc=$?
((rc == 2)) || { cat "$work/send.err"; fail "5xx from smtp-sink: exit $rc, expected 2"; }
p1="$(free_port)"
start_smtp_sink "$p1" -r data  # -r: reject DATA with a soft (4xx) error
rc=0
snd --tls none --to bob@example.org 2>"$work/send.err" || rc=$?
((rc == 3)) || { cat "$work/send.err"; fail "4xx from smtp-sink: exit $rc, expected 3"; }
note "smtp-sink -f rcpt (5xx): exit 2; -r data (4xx): exit 3"
pass "smtp-sink: delivery, pipelining, STARTTLS stripping refused, 5xx/4xx statuses"
