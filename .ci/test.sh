#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, formatting, lints, and
# every test (unit, integration, end to end with Postfix, the sink, gpg,
# openssl and PostgreSQL on 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."

./.ci/install-deps.sh

# The PostgreSQL tests need the server on 127.0.0.1:5432; start it if this
# machine has a stopped cluster (tests fail, never skip, when it is missing).
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
