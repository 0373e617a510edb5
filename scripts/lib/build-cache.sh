# shellcheck shell=bash
# The cache of the scripts that build a test tool once per version of its inputs: test/k8s/build.sh
# (kube-apiserver, kubectl, etcd) and interop/rust-ear/build.sh (the EAR interop program). Sourced
# by them (after `set -euo pipefail`), not run.
#
# A cache root holds one folder per key: 16 hex digits of sha256 over the build's inputs, the script
# that builds them and this file. A key folder is complete once it has a `built` stamp; the stamp's
# time is when a build script last used it. Worktrees and branches share a root, so a build never
# removes a key another one may still use: after each build, key folders unused for 30 days are
# removed, and staging folders of builds killed more than a day ago.
#
#   key="$(build_cache_key FILE...)"    the key of these files (and this file)
#   build_cache_open LABEL ROOT KEY     sets build_cache_dir=ROOT/KEY; LABEL starts its progress lines
#   build_cache_ready                   true when build_cache_dir is built (it is marked used now)
#   build_cache_lock                    one build at a time per root: waits for another one to end
#   build_cache_stage                   sets build_cache_staging, an empty folder to build into
#                                       (removed if the script exits before build_cache_commit)
#   build_cache_commit                  the staging folder becomes build_cache_dir, built; then prunes
#
# Usage:
#   build_cache_open tool "$root" "$key"
#   if build_cache_ready; then echo "$build_cache_dir"; exit 0; fi
#   build_cache_lock
#   if build_cache_ready; then echo "$build_cache_dir"; exit 0; fi   # built while we waited
#   build_cache_stage; make --output "$build_cache_staging"; build_cache_commit
#   echo "$build_cache_dir"

build_cache_lib="${BASH_SOURCE[0]}"
build_cache_retention_days=30

build_cache_key() {
  cat "$@" "$build_cache_lib" | sha256sum | cut -c1-16
}

build_cache_open() {
  build_cache_label="$1"
  build_cache_root="$2"
  build_cache_dir="$2/$3"
}

build_cache_ready() {
  [ -f "$build_cache_dir/built" ] || return 1
  touch "$build_cache_dir/built" 2>/dev/null || true # last used (a read-only cache still works)
}

build_cache_lock() {
  mkdir -p "$build_cache_root"
  exec 9>"$build_cache_root/.lock"
  if ! flock -n 9; then
    echo "$build_cache_label: another build is running; waiting for it" >&2
    flock 9
  fi
}

build_cache_stage() {
  build_cache_staging="$build_cache_dir.tmp.$$"
  rm -rf "$build_cache_staging"
  mkdir -p "$build_cache_staging"
  trap 'rm -rf "$build_cache_staging"' EXIT
}

build_cache_commit() {
  rm -rf "$build_cache_dir"
  mv "$build_cache_staging" "$build_cache_dir"
  trap - EXIT
  touch "$build_cache_dir/built"
  build_cache_prune
}

# Key folders other than this one unused for the retention time (by their stamp; a folder without
# one, from an older layout or a build that never finished, by its own time), and stale staging
# folders. Best effort: what cannot be removed now is tried again after the next build.
build_cache_prune() {
  local dir used
  for dir in "$build_cache_root"/*; do
    [[ -d "$dir" && "${dir##*/}" =~ ^[0-9a-f]{16}$ && "$dir" != "$build_cache_dir" ]] || continue
    used="$dir/built"
    [ -e "$used" ] || used="$dir"
    if [ -n "$(find "$used" -maxdepth 0 -mtime +"$build_cache_retention_days" 2>/dev/null)" ]; then rm -rf "$dir" 2>/dev/null || true; fi
  done
  find "$build_cache_root" -mindepth 1 -maxdepth 1 -name '*.tmp.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
}
