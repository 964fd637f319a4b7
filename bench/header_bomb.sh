#!/usr/bin/env bash
# Memory of a header bomb (issue 6 item 10): a release `sealgate serve` gets a
# 20 MB message made of nothing but tiny header fields ("a:b"), first at the
# default limits (refused with 552 5.3.4 as soon as the splitter passes 10,000
# fields), then with the limits raised so that every field is parsed. Prints
# the daemon's peak RSS (VmHWM) before and after each, and the rise as a
# multiple of the message size. The target is a rise of at most 3x the
# message size at the defaults. Asserts nothing (shared, noisy machines).
#
#   bench/header_bomb.sh [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-20}
command -v smtp-sink >/dev/null || { echo "needs smtp-sink (Debian package postfix)"; exit 1; }
cargo build --release -q -p sealgate
BIN=$PWD/target/release/sealgate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sink_port=$(free_port)
sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" "127.0.0.1:$sink_port" 16 >/dev/null 2>&1 & pids+=($!)

hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

# Sends one message of MB megabytes of "a:b\r\n" fields; prints the reply.
send() {
  python3 - "$1" "$MB" <<'PY'
import socket, sys
port, mb = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if len(line) < 4 or line[3:4] != b"-":
            return line.decode(errors="replace").strip()
reply()
for c in (b"EHLO bench.test", b"MAIL FROM:<a@bench.test>", b"RCPT TO:<x@open.test>", b"DATA"):
    s.sendall(c + b"\r\n"); reply()
s.sendall(b"a:b\r\n" * (mb * 1024 * 1024 // 5) + b"\r\nbody\r\n.\r\n")
print(reply()); s.sendall(b"QUIT\r\n")
PY
}

run() {
  local label=$1 extra=$2 port; port=$(free_port)
  cat > "$work/sealgate.toml" <<TOML
[smtp]
listen = "127.0.0.1:$port"
max_message_size = $(( (MB + 8) * 1024 * 1024 ))
$extra
[relay]
upstream = "127.0.0.1:$sink_port"
tls = "none"
[store]
url = "sqlite://$work/data-$port/sealgate.db"
[log]
level = "warn"
TOML
  (cd "$work" && exec "$BIN" --config "$work/sealgate.toml" serve) & local gw=$!; pids+=($gw)
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  local before after reply
  before=$(hwm $gw)
  reply=$(send "$port")
  after=$(hwm $gw)
  python3 -c "b,a,mb=$before,$after,$MB; print(f'{\"$label\":<24} before {b/1024:7.1f} MB  after {a/1024:7.1f} MB  rise {(a-b)/1024:7.1f} MB = {(a-b)/1024/mb:4.2f}x the message   reply: $reply')"
  kill $gw; wait $gw 2>/dev/null || true
}

echo "header bomb: one ${MB} MB message of 'a:b' header fields, $(nproc) cores"
run "default limits" ""
run "limits raised" $'max_header_size = 1073741824\nmax_header_fields = 100000000'
