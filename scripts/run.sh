#!/usr/bin/env bash
# Builds Coffer (the web app, the server and the `coffer` command-line
# client) and starts the server on the embedded default: three
# local-directory storage nodes and SQLite under ./coffer-data; web app,
# gRPC and grpc-web on http://localhost:5000. Arguments go to coffer-server
# (see `coffer-server --help`); the environment and a .env file configure
# it too (MINIO_ENDPOINT_1..N, ...). Nothing to install but Rust: the web
# app is built by an in-repo step (tools/web-build), not Trunk.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
profile="${COFFER_RUN_PROFILE:-release}"

# Each step says what it does, how long it took the first time on a
# 2-core machine, and how long it took now.
source scripts/steps.sh

# COFFER_SKIP_WEB_BUILD=1 serves whatever dist/ holds (tests use it to run
# this script while the browser test reads dist/).
if [ -z "${COFFER_SKIP_WEB_BUILD:-}" ]; then
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding Rust's wasm32 target (once)"
    rustup target add wasm32-unknown-unknown
    step_done
  fi
  step "building the web app into dist/ (first time 3-4 min, then seconds)"
  cargo run -q --profile "$profile" -p coffer-web-build
  step_done
fi
# The server and the `coffer` command-line client in one build: they share
# most of their dependencies (tokio, tonic, hyper, rustls...), which then
# compile once.
step "building the server and the coffer command-line client (first time 4-5 min, then seconds)"
cargo build --profile "$profile" -p coffer-server -p coffer-client --bin coffer-server --bin coffer
step_done
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
