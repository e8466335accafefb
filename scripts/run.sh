#!/usr/bin/env bash
# Builds Coffer (the web app with Trunk, then the server) and starts it on
# the embedded default: three local-directory storage nodes and SQLite
# under ./coffer-data; web app, gRPC and grpc-web on http://localhost:5000.
# Arguments go to coffer-server (see `coffer-server --help`); the
# environment and a .env file configure it too (MINIO_ENDPOINT_1..N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

# COFFER_SKIP_WEB_BUILD=1 serves whatever dist/ holds (tests use it to run
# this script while the browser test reads dist/).
if [ -z "${COFFER_SKIP_WEB_BUILD:-}" ]; then
  bash scripts/install-web-deps.sh
  trunk build --release --offline
fi
profile="${COFFER_RUN_PROFILE:-release}"
# The server, and the `coffer` command-line client (built apart, as the
# tests build them, so each keeps its own features and nothing rebuilds).
cargo build --profile "$profile" -p coffer-server --bin coffer-server
cargo build --profile "$profile" -p coffer-client --bin coffer
case "$profile" in
  dev) out=debug ;;
  *) out="$profile" ;;
esac
bin="target/$out/coffer-server"
cli="$(pwd)/target/$out/coffer"

# Where the server will listen, as it will say itself once started.
port="${PORT:-5000}"
for ((i = 1; i <= $#; i++)); do
  case "${!i}" in
    --port=*) port="${!i#--port=}" ;;
    --port) j=$((i + 1)); port="${!j:-$port}" ;;
  esac
done
host="${COFFER_HOST:-localhost}"
case "$host" in 0.0.0.0|::|"") host=localhost ;; esac
scheme=http
if [ -n "${COFFER_TLS_CERT:-}" ]; then scheme=https; fi
if [ "$port" = "0" ]; then
  where="the address in the 'coffer-server listening on' line below"
  login="$cli --server URL login --user admin   (URL: that address)"
else
  where="$scheme://$host:$port"
  login="$cli --server $where login --user admin"
fi

# First run with authentication on and nobody to sign in: create the admin
# `admin` with a random password, shown here once (never stored in clear).
if [ -z "${COFFER_ADMIN_PASSWORD:-}" ] && [ "${COFFER_AUTH:-enabled}" != "disabled" ] \
  && "$bin" "$@" user list 2>/dev/null | grep -q '^no users yet'; then
  password=$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
  COFFER_PASSWORD="$password" "$bin" "$@" user add admin --admin >/dev/null
  cat <<MSG

  Coffer's first admin is ready. Sign in at $where as

      user:     admin
      password: $password

  (shown once: note it now). From the command line:
      $login
  More users:  $bin user add NAME [--admin]
  New password: $bin user passwd admin

MSG
fi
exec "$bin" "$@"
