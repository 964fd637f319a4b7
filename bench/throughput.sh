#!/usr/bin/env bash
# Throughput and memory of the gateway: messages per second through a release
# build of `sealgate serve`, for plaintext, PGP/MIME and S/MIME, with Postfix's
# smtp-source as the load generator and smtp-sink as the upstream.
# Prints numbers; asserts nothing (these machines are shared and noisy).
#
#   bench/throughput.sh [MESSAGES] [SESSIONS] [SIZE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
SESSIONS=${2:-8}
SIZE=${3:-20000}

command -v smtp-source >/dev/null || { echo "needs smtp-source/smtp-sink (Debian package postfix)"; exit 1; }
cargo build --release -q -p sealgate
BIN=$PWD/target/release/sealgate

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  gpgconf --homedir "$work/gnupg" --kill all 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Keys made now: an ed25519/cv25519 OpenPGP key and an RSA-2048 certificate.
export GNUPGHOME="$work/gnupg"; mkdir -m 700 "$GNUPGHOME"
gpg -q --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'Bench <pgp@bench.test>' future-default default never 2>/dev/null
gpg -q --armor --export pgp@bench.test > "$work/pgp.asc"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/smime.key" -out "$work/smime.pem" -days 30 \
  -subj "/CN=bench" -addext "subjectAltName=email:smime@bench.test" \
  -addext "keyUsage=digitalSignature,keyEncipherment" -addext "extendedKeyUsage=emailProtection" 2>/dev/null

sink_port=$(free_port); gw_port=$(free_port)
sink_user=(); [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" "127.0.0.1:$sink_port" 256 >/dev/null 2>&1 & pids+=($!)
cat > "$work/sealgate.toml" <<TOML
[smtp]
listen = "127.0.0.1:$gw_port"
max_connections = 256
[relay]
upstream = "127.0.0.1:$sink_port"
tls = "none"
[store]
url = "sqlite://$work/data/sealgate.db"
[keys]
pgp_keyrings = ["$work/pgp.asc"]
smime_certificates = ["$work/smime.pem"]
[log]
level = "warn"
TOML
(cd "$work" && exec "$BIN" --config "$work/sealgate.toml" serve) & gw=$!; pids+=($gw)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$gw_port) 2>/dev/null && break; sleep 0.1; done

echo "sealgate throughput: $N messages of $SIZE bytes, $SESSIONS parallel sessions, $(nproc) cores"
printf '%-10s %10s %12s\n' case seconds msgs/sec
for case in plain:plain@open.test pgp:pgp@bench.test smime:smime@bench.test; do
  name=${case%%:*}; rcpt=${case#*:}
  start=$(date +%s.%N)
  smtp-source -s "$SESSIONS" -m "$N" -l "$SIZE" -f sender@bench.test -t "$rcpt" "127.0.0.1:$gw_port"
  end=$(date +%s.%N)
  python3 -c "d=$end-$start; print(f'{\"$name\":<10} {d:10.2f} {$N/d:12.1f}')"
done
echo "gateway peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$gw/status)"
