#!/usr/bin/env bash
# One-time / idempotent set-up.
#
#  * `scripts/setup.sh`: the npm packages (tests/package.json, pinned by its lock file), which
#    include the socket.io-client bundle chatd serves and the Socket.IO Admin UI's build
#    (@socket.io/admin-ui's ui/dist) it serves with --admin-ui. Enough to run chatd.
#  * `scripts/setup.sh --tests`: also Debian's chromium and nginx for the browser tests,
#    redis-server for the cluster tests, postgresql for chatd's PostgreSQL store tests, the
#    Python Socket.IO client (tests/python/requirements.txt, pinned) in a virtualenv at
#    tests/.venv, a debug build of the whole workspace with every example the Node tests spawn,
#    and cargo-fuzz with a build of the fuzz targets (fuzz/).
#
# Only the package registries the project is allowed to use are touched: crates.io (cargo),
# the npm registry (npm), PyPI (pip, tests only) and Debian's package archive (apt-get).
# Nothing else is downloaded.
# Safe to run any number of times.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# `--tests`: also what the test suite needs (Chromium, nginx, a debug build of everything).
FOR_TESTS=0
[ "${1:-}" = "--tests" ] && FOR_TESTS=1
cd "$ROOT"

log() { printf '==> setup: %s\n' "$*"; }

APT_UPDATED=0
apt_install() {
    # apt_install PKG... — install Debian packages that are missing (root only; no-op if present).
    local missing=()
    local p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
        return 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- system packages ----------------------------------------------------------------------------
# Node.js 20+ and npm are expected on the machine image. Fall back to Debian's packages only if
# they are missing entirely.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi

# >>> EXTRA SYSTEM PACKAGES (reserved) >>>
# Later issues add Debian packages here, via apt_install (e.g. browser tests / reverse-proxy tests):
# Do NOT download browsers/binaries from anywhere else (no puppeteer/playwright browser downloads).
#
# tests/web/: Debian's Chromium (driven by playwright-core, which never downloads a browser of
# its own) and nginx in front of chatd (docs/deploy/nginx.conf).
# Only for the tests (`--tests`): running chatd needs neither.
if [ "$FOR_TESTS" -eq 1 ]; then
    if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium
    fi
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        apt_install nginx-light || apt_install nginx
    fi
    # tests/redis/ and socketio-redis: each test starts its own redis-server on a free port.
    if [ ! -x /usr/bin/redis-server ]; then
        apt_install redis-server
    fi
    # chatd's PostgreSQL store tests and tests/cluster/ (helpers/postgres.mjs): each starts its own server (initdb in a temp dir, a free
    # port), from PATH or /usr/lib/postgresql/*/bin.
    if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
        apt_install postgresql
    fi
fi
# <<< EXTRA SYSTEM PACKAGES (reserved) <<<

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found (the Rust toolchain must be installed)" >&2
    exit 1
fi

log "node $(node --version), npm $(npm --version 2>/dev/null), $(cargo --version)"

# --- Node test dependencies -----------------------------------------------------------------------
cd "$ROOT/tests"
if [ -f package-lock.json ]; then
    log "npm ci (tests/)"
    npm ci --no-audit --no-fund --loglevel=error
else
    log "npm install (tests/, no lock file yet)"
    npm install --no-audit --no-fund --loglevel=error
fi
cd "$ROOT"

# --- Python test client -----------------------------------------------------------------------------
# python-socketio drives the demo protocol as a client in another language would
# (tests/chatd/python-demo.test.mjs).
if [ "$FOR_TESTS" -eq 1 ]; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    VENV="$ROOT/tests/.venv"
    [ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
    log "pip install -r tests/python/requirements.txt (tests/.venv)"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/tests/python/requirements.txt"
fi

# --- Rust workspace -------------------------------------------------------------------------------
# Running chatd builds it with `cargo run --release`; the tests need everything in debug.
if [ "$FOR_TESTS" -eq 1 ]; then
    log "cargo build --workspace --all-targets --examples"
    cargo build --workspace --all-targets --examples
fi

# --- Fuzzing (tests only) ------------------------------------------------------------------------
# The short fuzz runs of scripts/test.sh need cargo-fuzz (built from crates.io, pinned) and the
# targets of fuzz/, built here so the test step only runs them. Stable toolchain: see fuzz.sh.
CARGO_FUZZ_VERSION=0.13.2
if [ "$FOR_TESTS" -eq 1 ]; then
    if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
        log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
        cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
    fi
    log "scripts/fuzz.sh build"
    bash "$ROOT/scripts/fuzz.sh" build
fi

log "done"
