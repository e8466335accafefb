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
# The client SDK also builds for the browser (grpc-web over wasm32).
rustup target add wasm32-unknown-unknown
cargo check -p coffer-client --target wasm32-unknown-unknown --no-default-features --features wasm
cargo test --workspace
