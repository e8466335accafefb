#!/usr/bin/env bash
# Times `bash scripts/run.sh` on a fresh machine, twice: a fresh clone of REV
# with an empty CARGO_HOME (no crates downloaded, no tools installed) and no
# target/; Rust itself (rustup's toolchain, with the wasm32 target) is all
# there is. Prints the seconds until the server says it is listening.
# Usage: tools/measure-first-run.sh REV   (BENCHMARKS.md, "A newcomer's first run")
#
# With --test, runs the test command (`bash .ci/run`) once instead, the
# same way, and prints its steps' times. Garage lands in the throwaway
# CARGO_HOME, so it is built every time; Debian and pip packages are
# installed system-wide, so only a machine without them measures those.
# Usage: tools/measure-first-run.sh --test REV   (README.md, "Tests")
set -euo pipefail
mode=run
if [ "${1:-}" = "--test" ]; then
  mode=test
  shift
fi
rev="$1"
repo="$(cd "$(dirname "$0")/.." && pwd)"
root=$(mktemp -d /tmp/firstrun-XXXXXX)
git clone -q "$repo" "$root/coffer"
cd "$root/coffer"
git checkout -q "$rev"
export CARGO_HOME="$root/cargo-home"
mkdir -p "$CARGO_HOME/bin"
for t in cargo rustc rustup rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt; do
  ln -s "$(command -v "$t")" "$CARGO_HOME/bin/$t"
done
if [ "$mode" = test ]; then
  # The machine's own tools (pip, node...) stay; only ~/.cargo/bin goes.
  PATH="$CARGO_HOME/bin:$(tr : '\n' <<<"$PATH" | grep -v '/\.cargo/bin' | paste -sd:)"
  export PATH
else
  export PATH="$CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
fi
unset CARGO_TARGET_DIR CARGO_INCREMENTAL GARAGE_BIN
if [ "$mode" = test ]; then
  start=$SECONDS
  status=0
  bash .ci/run >"$root/test.log" 2>&1 || status=$?
  echo "test command: exit $status after $((SECONDS - start)) s"
  sed -n '/^==> steps, in seconds/,$p' "$root/test.log"
  echo "log: $root/test.log"
  exit "$status"
fi
run() {
  local log="$1" start=$SECONDS
  PORT=5091 COFFER_DATA_DIR="$root/data" bash scripts/run.sh >"$log" 2>&1 &
  local pid=$!
  until grep -q "listening on" "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then echo "run.sh ended:"; tail -20 "$log"; exit 1; fi
    sleep 1
  done
  echo "$log: serving after $((SECONDS - start)) s"
  pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  pkill -f "$root/coffer/target" 2>/dev/null || true
  sleep 2
}
run "$root/first.log"
run "$root/second.log"
grep -E "^==>|^    \(" "$root/first.log" || true
echo "logs in $root"
