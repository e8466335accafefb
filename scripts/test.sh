#!/usr/bin/env bash
# Coffer's whole test command: installs what the tests need when missing
# (Garage, the AWS CLI, Chromium and playwright-core, the wasm32 target),
# builds the web app as the README's run command does, then checks formatting and lints
# and runs every test (unit tests, the BlobStore conformance suite on local
# and Garage nodes, the end-to-end suite against the real server binary,
# and the browser test in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
# A clean run builds everything once; incremental caches would only add
# gigabytes to target/ and buy nothing.
export CARGO_INCREMENTAL=0

# The run needs a few GB for target/ and the test nodes' data; say so up
# front rather than die in the linker on a full disk.
avail_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${avail_kib:-0}" -lt $((6 * 1024 * 1024)) ]; then
    echo "warning: only $((avail_kib / 1024)) MiB free here; a clean test run needs about 6 GiB" >&2
fi

# Each step says what it does and how long it took; the list comes again
# at the end, passed or failed. First run on a fresh 2-core machine:
# README.md, "Tests".
source scripts/steps.sh
trap steps_summary EXIT

step "installing what the tests need, if missing (first time: Garage about 6 min)"
bash scripts/install-test-deps.sh
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
step_done
# The web app first: the server binary embeds dist/ when it is built.
step "building the web app into dist/"
cargo run -p coffer-web-build
step_done
step "checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
step_done
step "building the server and the CLI"
# The server and the CLI together, as run.sh and the tests build them.
cargo build -p coffer-server -p coffer-client --bin coffer-server --bin coffer
# The client SDK also builds for the browser (grpc-web over wasm32).
cargo check -p coffer-client --target wasm32-unknown-unknown --no-default-features --features wasm
step_done
# The web app (built above, exactly as the README's run command builds
# it) is linted for the only target it has.
step "checking the web app's formatting and lints"
(cd web && cargo clippy --target wasm32-unknown-unknown -- -D warnings && cargo fmt -- --check)
step_done
# A failing test's panic message and location are what a report needs;
# a backtrace is long enough to push them out of a truncated log's tail.
# (RUST_BACKTRACE=1 cargo test ... -- NAME gives one when it helps.)
export RUST_BACKTRACE=0
step "running every test"
cargo test --workspace
step_done
