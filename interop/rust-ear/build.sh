#!/usr/bin/env bash
# Builds tpmds-ear-interop (Veraison's `ear` crate 0.6.0, pinned by Cargo.toml and Cargo.lock
# beside this script) for the EAR interop test, into a cache folder keyed by a hash of
# Cargo.toml, Cargo.lock, src/, this script and scripts/lib/build-cache.sh (the cache, shared with
# test/k8s/build.sh):
#   ${TPMDS_RUST_EAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds/rust-ear}/<hash>/tpmds-ear-interop
# A second run with the same key does nothing; folders of other keys unused for 30 days are removed
# after a build. Cargo's target folder is kept in the cache folder too (target/), so a rebuild
# after a change compiles only what changed; the first build takes a few minutes (the crate's JWT
# library brings in aws-lc).
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

source "$here/../../scripts/lib/build-cache.sh"
key="$(build_cache_key "$here/Cargo.toml" "$here/Cargo.lock" "$here/build.sh" "$here"/src/*.rs)"
cache_root="${TPMDS_RUST_EAR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds/rust-ear}"
build_cache_open rust-ear "$cache_root" "$key"
program="$build_cache_dir/tpmds-ear-interop"

if build_cache_ready; then
  echo "$program"
  exit 0
fi

# One build at a time; the loser waits, then finds the program.
build_cache_lock
if build_cache_ready; then
  echo "$program"
  exit 0
fi

log "building tpmds-ear-interop (ear 0.6.0; the first build takes a few minutes)"
CARGO_TARGET_DIR="$cache_root/target" "$cargo_bin" build --release --locked --quiet --manifest-path "$here/Cargo.toml" >&2
build_cache_stage
cp "$cache_root/target/release/tpmds-ear-interop" "$build_cache_staging/"
build_cache_commit
log "built $program"
echo "$program"
