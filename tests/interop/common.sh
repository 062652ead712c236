# Sourced by the tests/interop/*.sh scripts: where the tools are, a
# throwaway PKI, starting/stopping smtpwire-sink on a free loopback port,
# byte-exact checks, and the exit protocol (0 pass, 77 skip, else fail).
# Every peer a script starts is stopped by its EXIT trap; every wait is
# bounded.
set -euo pipefail

interop_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$interop_dir/../.." && pwd)"
bin="${SMTPWIRE_TOOLS_DIR:-$repo/build/dev/tools}"
py=/usr/bin/python3  # Debian's python (aiosmtpd is installed for it)
[[ -x "$py" ]] || py="$(command -v python3)"
name="$(basename "$0" .sh)"

work="$(mktemp -d "${TMPDIR:-/tmp}/smtpwire-interop-$name.XXXXXX")"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  if [[ "${SMTPWIRE_INTEROP_KEEP:-0}" == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

skip() { echo "SKIP $name: $*"; exit 77; }
fail() {
  echo "FAIL $name: $*" >&2
  if [[ -f "$work/sink.log" ]]; then echo "--- sink log" >&2; cat "$work/sink.log" >&2; fi
  exit 1
}
pass() { echo "PASS $name${1:+: $1}"; exit 0; }
note() { echo "  $name: $*"; }

# need_peer COMMAND PACKAGE: skip unless COMMAND exists; with
# SMTPWIRE_INTEROP_INSTALL=1 the Debian PACKAGE is installed first (as root
# or through sudo).
need_peer() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ "${SMTPWIRE_INTEROP_INSTALL:-0}" == 1 ]]; then
    local sudo=()
    ((EUID == 0)) || sudo=(sudo -n)
    echo "  $name: installing $2"
    timeout 300 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" \
      </dev/null >/dev/null 2>&1 || true
    command -v "$1" >/dev/null 2>&1 && return 0
  fi
  skip "$1 is not installed (apt-get install $2, or SMTPWIRE_INTEROP_INSTALL=1)"
}

need_tools() {
  local t
  for t in smtpwire-send smtpwire-sink; do
    [[ -x "$bin/$t" ]] || fail "$bin/$t is missing (build it, or set SMTPWIRE_TOOLS_DIR)"
  done
}

# make_pki: $work/ca.pem, server.pem/.key for localhost + 127.0.0.1,
# users (alice:secret), password.
make_pki() {
  command -v openssl >/dev/null || skip "the openssl command is not installed"
  (
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -keyout ca.key -out ca.pem -subj "/CN=smtpwire interop CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
      -extfile server.ext -out server.pem 2>/dev/null
    printf 'alice:s3cret pass\nbob:hunter2\n' >users
    printf 's3cret pass\n' >password
  )
}

# free_port: a port that was free a moment ago (for peers that cannot pick one).
free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s).
wait_port() {
  "$py" - "$1" <<'PY'
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

# start_sink ARGS...: smtpwire-sink on 127.0.0.1:0 (plus ARGS), log in
# $work/sink.log; sets $sink_pid and $port (and $implicit_port when an
# implicit-TLS listener was asked for).
start_sink() {
  "$bin/smtpwire-sink" --listen 127.0.0.1:0 --hostname mx.localhost "$@" 2>"$work/sink.log" &
  sink_pid=$!
  pids+=("$sink_pid")
  port=""
  local _
  for _ in $(seq 100); do
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) (\(SMTP\|LMTP\).*/\1/p' "$work/sink.log" | head -1)"
    [[ -n "$port" ]] && break
    kill -0 "$sink_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$port" ]] || fail "smtpwire-sink did not start"
  implicit_port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) (implicit TLS.*/\1/p' "$work/sink.log" | head -1)"
}

# A private Postfix instance (send_postfix.sh, sink_postfix_xforward.sh):
# its own config, queue and log directories under $pf, smtpd on a free
# loopback port ($smtpd_port), nothing chrooted, stopped by the EXIT trap.
# need_private_postfix skips unless it can run (root, the postfix package).
pf="$work/postfix"
need_private_postfix() {
  need_peer postfix postfix
  ((EUID == 0)) || skip "a private Postfix instance needs root"
  id postfix >/dev/null 2>&1 && getent group postdrop >/dev/null || skip "no postfix user or postdrop group"
}
pfx() { timeout 60 postfix -c "$pf/etc" "$@"; }
postfix_stop() { pfx stop >/dev/null 2>&1 || pfx abort >/dev/null 2>&1 || true; }

# start_private_postfix MAIN_CF_LINES [FILE...]: copies FILEs into $pf/etc,
# writes main.cf (the shared settings, then MAIN_CF_LINES: relayhost, TLS,
# the feature under test), starts Postfix and waits for its smtpd.
start_private_postfix() {
  local extra="$1"
  shift
  chmod 755 "$work"
  mkdir -p "$pf/etc" "$pf/queue" "$pf/data"
  chown postfix "$pf/data"
  (($# == 0)) || cp "$@" "$pf/etc/"
  smtpd_port="$(free_port)"
  cat >"$pf/etc/main.cf" <<EOC
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
maillog_file = $pf/maillog
maillog_file_prefixes = $pf
myhostname = postfix.localhost
mydomain = localhost
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_host_lookup = native
smtp_helo_name = postfix.localhost
alias_maps =
alias_database =
local_recipient_maps =
smtputf8_enable = no
$extra
EOC
  # master.cf: Debian's, with smtpd moved to the free port, nothing chrooted,
  # and the postlog service for maillog_file.
  sed -e 's/^\([a-z].*\(unix\|inet\|fifo\|pass\|unix-dgram\) *[-yn] *[-yn] *\)[-y]/\1n/' \
    -e "s/^smtp \( *inet \)/127.0.0.1:$smtpd_port\1/" /etc/postfix/master.cf >"$pf/etc/master.cf"
  grep -q '^postlog' "$pf/etc/master.cf" || echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >>"$pf/etc/master.cf"
  # check creates the queue directories; its warnings about the system's own
  # (unconfigured) Postfix files do not concern this instance.
  pfx check >"$work/postfix-check.out" 2>&1 || true
  pfx start >"$work/postfix-start.out" 2>&1 || { cat "$work/postfix-start.out"; fail "postfix start failed"; }
  trap 'postfix_stop; cleanup' EXIT
  wait_port "$smtpd_port" || fail "Postfix's smtpd does not listen on $smtpd_port"
}

# wait_maildir N: until $work/Maildir/new holds N messages (30 s); false if not.
wait_maildir() {
  local _
  for _ in $(seq 300); do
    (($(ls "$work/Maildir/new" 2>/dev/null | wc -l) == $1)) && return 0
    sleep 0.1
  done
  return 1
}

# stop_sink: SIGTERM, wait (bounded), check the totals line was printed.
stop_sink() {
  kill -TERM "$sink_pid"
  local _
  for _ in $(seq 150); do kill -0 "$sink_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$sink_pid" 2>/dev/null && fail "smtpwire-sink did not stop within 15 s of SIGTERM"
  wait "$sink_pid" || fail "smtpwire-sink exited with status $?"
  grep -q 'stopped: sessions=' "$work/sink.log" || fail "no totals line after SIGTERM"
}

# check_maildir DIR COUNT EXPECTED_FILE: DIR/new holds COUNT files, none in
# tmp/, each a Received header (naming TLS when $want_tls is 1) followed by
# EXPECTED_FILE with LF -> CRLF, byte for byte.
check_maildir() {
  "$py" - "$1" "$2" "$3" "${want_tls:-1}" <<'PY' || fail "Maildir check failed"
import os, sys
d, count, expected, want_tls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
sent = open(expected, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
names = sorted(os.listdir(os.path.join(d, "new")))
if os.listdir(os.path.join(d, "tmp")):
    sys.exit("files left in tmp/: %r" % os.listdir(os.path.join(d, "tmp")))
if len(names) != count:
    sys.exit("expected %d messages in new/, found %d" % (count, len(names)))
for n in names:
    data = open(os.path.join(d, "new", n), "rb").read()
    lines = data.split(b"\r\n")
    if not lines[0].startswith(b"Received: from "):
        sys.exit("%s: no Received header first" % n)
    i = 1
    while lines[i].startswith(b"\t"):
        i += 1
    hdr = b" ".join(l.strip() for l in lines[:i]).decode()
    if want_tls and "(using TLSv1." not in hdr:
        sys.exit("%s: Received does not name TLS: %s" % (n, hdr))
    body = b"\r\n".join(lines[i:])
    if body != sent:
        k = next((j for j in range(min(len(body), len(sent))) if body[j] != sent[j]), min(len(body), len(sent)))
        sys.exit("%s: content differs from what was sent at octet %d (stored %d octets, sent %d):\n"
                 "stored: %r\nsent:   %r" % (n, k, len(body), len(sent), body[max(0, k - 40):k + 40],
                                            sent[max(0, k - 40):k + 40]))
PY
}

# sample_message FILE: a message with a dot line, a long line, 8-bit-free.
sample_message() {
  {
    printf 'From: Alice <alice@example.org>\n'
    printf 'To: Bob <bob@example.org>\n'
    printf 'Subject: interop %s\n' "$name"
    printf 'Message-ID: <%s.%s@example.org>\n' "$name" "$$"
    printf '\n'
    printf 'first line\n'
    printf '.a line starting with a dot\n'
    printf '..two dots\n'
    printf '.\n'
    printf 'a long line: %s\n' "$(printf 'x%.0s' $(seq 900))"
    printf '\n'
    printf 'last line\n'
  } >"$1"
}
