#!/usr/bin/env bash
# Throughput, not a test (tests/interop/run does not call it): Postfix's
# smtp-source (plain SMTP, 20 sessions, several messages per connection)
# into smtpwire-sink --discard and into Postfix's own smtp-sink, alternated
# in the same run on the same machine; prints messages/s for each and the
# ratio. The machine's other load moves both numbers: compare the ratio.
# Usage: tests/interop/bench_throughput.sh [MESSAGES [ROUNDS]]   (default 20000, 2)
source "$(dirname "$0")/common.sh"
need_peer /usr/sbin/smtp-source postfix
need_peer /usr/sbin/smtp-sink postfix
need_tools
msgs="${1:-20000}"
rounds="${2:-2}"
start_sink --discard
p_sw="$port"
p_pf="$(free_port)"
timeout 600 /usr/sbin/smtp-sink -u nobody "127.0.0.1:$p_pf" 256 >/dev/null 2>&1 &
pids+=($!)
wait_port "$p_pf" || fail "smtp-sink did not start"

rate() {  # PORT -> messages/s
  local t0 t1
  t0=$(date +%s.%N)
  timeout 600 /usr/sbin/smtp-source -s 20 -m "$msgs" -l 1000 -d -f a@example.org \
    -t b@example.org "127.0.0.1:$1" >/dev/null 2>&1 || fail "smtp-source into port $1 failed"
  t1=$(date +%s.%N)
  "$py" -c "print(round($msgs / ($t1 - $t0)))"
}
sum_sw=0 sum_pf=0
for r in $(seq "$rounds"); do
  a="$(rate "$p_sw")"
  b="$(rate "$p_pf")"
  echo "round $r: smtpwire-sink --discard $a msg/s, Postfix smtp-sink $b msg/s"
  sum_sw=$((sum_sw + a)) sum_pf=$((sum_pf + b))
done
"$py" -c "print('ratio smtpwire-sink / smtp-sink: %.2f' % ($sum_sw / $sum_pf))"
stop_sink
