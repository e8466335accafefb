#!/usr/bin/env bash
# Coffer's whole test command: installs what the tests need when missing
# (Garage, the AWS CLI), then checks formatting and lints and runs every
# test (unit tests, the BlobStore conformance suite on local and Garage
# nodes, and the end-to-end suite against the real server binary).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p coffer-server --bin coffer-server
cargo test --workspace
