#!/usr/bin/env bash
# Installs what tpmds needs on a Debian 12 machine and builds it:
#   Debian packages (swtpm, tpm2-tools, ... — test and demo tooling, not runtime dependencies;
#   buildah and mmdebstrap build the container image without a registry: scripts/build-image.sh),
#   pnpm at the pinned version, the locked npm dependencies, then `pnpm build`.
# Needs root (or sudo) for apt. Safe to run again. Works from any directory.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

PNPM_VERSION=12.4.2
NODE_MIN=20.19.0
APT_PACKAGES=(swtpm swtpm-tools tpm2-tools socat python3-tpm2-pytss python3-cryptography protobuf-compiler openssl
  buildah mmdebstrap debian-archive-keyring)

step() { echo "::: $*"; }
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install Debian packages" >&2; exit 1; }
  SUDO="sudo"
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v node >/dev/null || { echo "setup: Node.js is not installed (need >= ${NODE_MIN})" >&2; exit 1; }
node_version=$(node --version | sed 's/^v//')
version_ge "$node_version" "$NODE_MIN" || { echo "setup: Node.js ${node_version} is too old (need >= ${NODE_MIN})" >&2; exit 1; }
if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  step "installing pnpm ${PNPM_VERSION}"
  $SUDO npm install -g --no-fund --no-audit "pnpm@${PNPM_VERSION}" >/dev/null
  hash -r
fi

step "pnpm install (from the lockfile)"
CI=true pnpm install --frozen-lockfile
step "pnpm build"
pnpm build
step "ready: node ${node_version}, pnpm $(pnpm --version)"
