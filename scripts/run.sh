#!/usr/bin/env bash
# Builds Coffer and starts it on the embedded default: three local-directory
# storage nodes and SQLite under ./coffer-data, listening on port 5000.
# Arguments are passed to coffer-server (see `coffer-server --help`); the
# environment and a .env file configure it too (MINIO_ENDPOINT_1..N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${COFFER_RUN_PROFILE:-release}"
cargo build --profile "$profile" -p coffer-server --bin coffer-server
case "$profile" in
  dev) out=debug ;;
  *) out="$profile" ;;
esac
exec "target/$out/coffer-server" "$@"
