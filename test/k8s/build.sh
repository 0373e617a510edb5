#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd for the @k8s tests from the pinned Go module beside this
# script (go.mod/go.sum), into a cache folder keyed by a hash of go.mod, go.sum, cmd/etcd/main.go,
# this script and scripts/lib/build-cache.sh (the cache, shared with interop/rust-ear/build.sh):
#   ${TPMDS_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds/k8s}/<hash>/bin
# A second run with the same key does nothing; folders of other keys unused for 30 days are removed
# after a build. Uses the machine's own Go caches (GOMODCACHE, GOCACHE), so a rebuild after a
# version bump only fetches and compiles what changed.
#
# Output contract (the TypeScript harness calls this too, see test/k8s/kube.ts):
#   stdout  one line, the bin folder, when the binaries are there (exit 0)
#   stderr  progress, and on a machine without Go the one line
#           "k8s: Go not found, skipping the API-server tests"  (exit 0; or exit 3 with --strict)
#   exit 3  Go missing and --strict given (the harness uses --strict to tell "skip" from "built")
#   other   the build failed
# Options: --strict (see above), --quiet (no progress lines when already built).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
strict=0
quiet=0
for arg in "$@"; do
  case "$arg" in
    --strict) strict=1 ;;
    --quiet) quiet=1 ;;
    *) echo "k8s: unknown option $arg" >&2; exit 2 ;;
  esac
done

log() { echo "k8s: $*" >&2; }

go_bin="$(command -v go || true)"
if [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ]; then go_bin=/usr/local/go/bin/go; fi
if [ -z "$go_bin" ]; then
  echo "k8s: Go not found, skipping the API-server tests" >&2
  [ "$strict" -eq 1 ] && exit 3
  exit 0
fi

source "$here/../../scripts/lib/build-cache.sh"
key="$(build_cache_key "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here/cmd/etcd/main.go")"
build_cache_open k8s "${TPMDS_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds/k8s}" "$key"
bin="$build_cache_dir/bin"

if build_cache_ready; then
  [ "$quiet" -eq 1 ] || log "binaries up to date in $bin"
  echo "$bin"
  exit 0
fi

# One build at a time (the test command and the harness may both ask); the loser waits, then finds it built.
build_cache_lock
if build_cache_ready; then
  echo "$bin"
  exit 0
fi

cd "$here"
export GOFLAGS="-mod=readonly"   # go.mod/go.sum are committed and tidy: never rewrite them
export CGO_ENABLED=0
k8s_version="$("$go_bin" list -m -f '{{.Version}}' k8s.io/kubernetes)"
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

# 2 parallel compiles keep the peak near 2.4 GB and leave a 2-core machine usable; low priority for
# the same reason. A cold build is 6-8 minutes on 2 free cores, mostly compiling.
build_cache_stage
tmp="$build_cache_staging"
mkdir -p "$tmp/bin"
log "building kube-apiserver, kubectl ($k8s_version) and etcd with $("$go_bin" env GOVERSION) into $bin (first time: several minutes)"
start=$(date +%s)
nice -n 10 "$go_bin" build -p 2 -trimpath -ldflags "$ld" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl ./cmd/etcd
"$go_bin" version -m "$tmp/bin/kube-apiserver" >"$tmp/versions.txt" # the module versions it was built from
echo "built in $(($(date +%s) - start)) s" >>"$tmp/versions.txt"
# Other keys (older versions, other branches) unused for 30 days: gone (~200 MB each).
build_cache_commit
log "built in $(($(date +%s) - start)) s: $(ls "$bin" | tr '\n' ' ')"
echo "$bin"
