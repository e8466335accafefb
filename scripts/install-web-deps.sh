#!/usr/bin/env bash
# Installs what front-end development with `trunk serve` needs, if missing
# (idempotent): the wasm32 target, Trunk 0.21.14 and wasm-bindgen-cli 0.2.130
# (which must equal the wasm-bindgen crate pinned in web/Cargo.toml). Trunk
# runs --offline and never downloads tools itself. Building and running
# Coffer needs none of this: scripts/run.sh and scripts/test.sh build the
# web app with tools/web-build.
set -euo pipefail
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if ! trunk --version 2>/dev/null | grep -q "0\.21\.14"; then
    echo "installing trunk 0.21.14 (a few minutes, once)"
    cargo install trunk@0.21.14 --locked
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "0\.2\.130"; then
    echo "installing wasm-bindgen-cli 0.2.130 (a few minutes, once)"
    # Not --locked: one of its locked dependencies was yanked.
    cargo install wasm-bindgen-cli@0.2.130
fi
