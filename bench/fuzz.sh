#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for MINUTES minutes each, one after
# another, on one core; outside CI. See docs/fuzzing.md.
#
#   bench/fuzz.sh MINUTES [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Each target starts from its committed seeds (fuzz/corpus/TARGET, read
# only) and keeps what it learns in fuzz/work/TARGET (not committed).
# Crashes, timeouts (an input taking over TIMEOUT seconds) and out-of-memory
# inputs (RSS over 2 GiB) land in fuzz/artifacts/TARGET/. Prints per target
# the executions and any artifact; exits 1 if any target found something.
#
# Environment: MAX_LEN (default 65536) caps input size for every target but
# mime_header, which gets MIME_MAX_LEN (default 1048576) so that a
# non-linear header or Content-Type parser shows up as a timeout; TIMEOUT
# (default 10 s, 30 s for smtp_session, which waits on a socket).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

MINUTES=${1:?usage: bench/fuzz.sh MINUTES [TARGET...]}
shift
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
MAX_LEN=${MAX_LEN:-65536}
MIME_MAX_LEN=${MIME_MAX_LEN:-1048576}
TIMEOUT=${TIMEOUT:-10}

# No sanitizer: the code under test is safe Rust (and system OpenSSL, which
# a Rust-side sanitizer would not instrument); debug assertions and overflow
# checks are on.
cargo +nightly fuzz build -s none -a

found=0
for t in "${TARGETS[@]}"; do
  mkdir -p "work/$t" "artifacts/$t" "corpus/$t"
  len=$MAX_LEN; limit=$TIMEOUT
  [ "$t" = mime_header ] && len=$MIME_MAX_LEN
  [ "$t" = smtp_session ] && limit=$(( TIMEOUT > 30 ? TIMEOUT : 30 ))
  before=$(ls "artifacts/$t" | wc -l)
  log="work/$t.log"
  echo "== $t: $MINUTES min, max_len $len, timeout ${limit}s"
  set +e
  cargo +nightly fuzz run -s none -a "$t" "work/$t" "corpus/$t" -- \
    -max_total_time=$(( MINUTES * 60 )) -max_len="$len" -timeout="$limit" \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  echo "   executions: ${runs:-?} (exit $rc, log fuzz/$log)"
  after=$(ls "artifacts/$t" | wc -l)
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    found=1
    grep -m1 -E "panicked at|deadly signal|ALARM: working on the last Unit|out-of-memory" "$log" | sed 's/^/   /' || true
    ls -t "artifacts/$t" | head -n $(( after - before > 0 ? after - before : 1 )) | sed "s|^|   artifact: fuzz/artifacts/$t/|"
  fi
done
exit $found
