#!/usr/bin/env bash
# Builds tpmds-ear-interop (Veraison's `ear` crate 0.6.0, pinned by Cargo.toml and Cargo.lock
# beside this script) for the EAR interop test, into a cache folder keyed by a hash of
# Cargo.toml, Cargo.lock, src/ and this script:
#   ${TPMDS_RUST_EAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds/rust-ear}/<hash>/tpmds-ear-interop
# A second run with the same key does nothing. Cargo's target folder is kept in the cache folder
# too (target/), so a rebuild after a change compiles only what changed; the first build takes
# a few minutes (the crate's JWT library brings in aws-lc).
#
# Output contract (packages/verifier/test/ear-run.test.ts calls this):
#   stdout  one line, the program's path, when it is there (exit 0)
#   stderr  progress, and on a machine without cargo the one line
#           "rust-ear: cargo not found, skipping the EAR interop test"  (exit 3)
#   other   the build failed
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "rust-ear: $*" >&2; }

cargo_bin="$(command -v cargo || true)"
if [ -z "$cargo_bin" ] && [ -x "$HOME/.cargo/bin/cargo" ]; then cargo_bin="$HOME/.cargo/bin/cargo"; fi
if [ -z "$cargo_bin" ]; then
  echo "rust-ear: cargo not found, skipping the EAR interop test" >&2
  exit 3
fi

key="$(cat "$here/Cargo.toml" "$here/Cargo.lock" "$here/build.sh" "$here"/src/*.rs | sha256sum | cut -c1-16)"
cache_root="${TPMDS_RUST_EAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds/rust-ear}"
out="$cache_root/$key"
program="$out/tpmds-ear-interop"

if [ -x "$program" ]; then
  echo "$program"
  exit 0
fi

mkdir -p "$cache_root"
# One build at a time; the loser waits, then finds the program.
exec 9>"$cache_root/.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
if [ -x "$program" ]; then
  echo "$program"
  exit 0
fi

log "building tpmds-ear-interop (ear 0.6.0; the first build takes a few minutes)"
CARGO_TARGET_DIR="$cache_root/target" "$cargo_bin" build --release --locked --quiet --manifest-path "$here/Cargo.toml" >&2
mkdir -p "$out"
cp "$cache_root/target/release/tpmds-ear-interop" "$program.tmp"
mv "$program.tmp" "$program"
# Programs of older keys are no longer used.
find "$cache_root" -mindepth 1 -maxdepth 1 -type d ! -name target ! -name "$key" -exec rm -rf {} + 2>/dev/null || true
log "built $program"
echo "$program"
