#!/usr/bin/env bash
# The durable queue's performance goal (issue 7) in one invocation:
# sealgate (durable queue, PGP, 10 KB, one recipient, 50 sessions) against
# Postfix relaying the same load unencrypted through its own queue, and
# their ratio; the peak RSS for one 25 MB message (PGP and S/MIME); a
# fan-out case; and the resolver's cached lookups per second.
# Prints numbers; asserts only that the runs worked (these machines are
# shared and noisy: figures move by tens of percent between runs).
#
#   bench/queue.sh [MESSAGES] [ratio] [rss] [fanout]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v smtp-source >/dev/null || { echo "needs smtp-source/smtp-sink (Debian package postfix)"; exit 1; }
cargo bench -q -p sealgate --bench queue -- "$@"
cargo bench -q -j1 -p sealgate-keys --bench resolver | grep -E "^resolver|lookups/sec"
