# syntax=docker/dockerfile:1
# tpmds image: the node attestor (entrypoint tpmds-attestor), the verifier CLI (tpmds-verifier) and
# the device plugin (tpmds-device-plugin; manifests/device-plugin/daemonset.yaml runs this image with
# command: [tpmds-device-plugin]).
#   docker build -t tpmds:dev .
#   docker run --rm tpmds:dev --help
# Without a registry, scripts/build-image.sh builds this file with buildah on a local Node base
# (it passes NODE_IMAGE and NODE_RUNTIME_IMAGE). Pure TypeScript/JavaScript: no native addons, so the
# runtime stage needs nothing but Node.

# Any Node LTS >= 20.19 works; the tests run on 20, the image uses the current LTS line.
# NODE_IMAGE needs node and npm (the build stage); NODE_RUNTIME_IMAGE needs node, a POSIX sh and an
# env that knows -S (GNU coreutils >= 8.30, as in Debian's; not busybox): the entry point
# tpmds-attestor runs with the runtime settings on its first line (packages/attestor/README.md, "Memory").
ARG NODE_IMAGE=node:24-bookworm-slim
ARG NODE_RUNTIME_IMAGE=${NODE_IMAGE}

# Dependency manifests only, taken from the whole packages/ tree so that a new workspace package
# needs no edit here; the install step below is cached until a manifest or the lockfile changes.
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY packages/ packages/
RUN node -e "const fs = require('node:fs'); \
  for (const p of fs.readdirSync('packages')) for (const f of fs.readdirSync('packages/' + p)) \
    if (f !== 'package.json') fs.rmSync('packages/' + p + '/' + f, { recursive: true, force: true });"

FROM ${NODE_IMAGE} AS build
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH CI=true
# Optional: a CA file Node (npm, pnpm) trusts while this stage fetches packages, for builds behind
# a TLS-intercepting proxy (scripts/build-image.sh mounts the host's NODE_EXTRA_CA_CERTS there).
# Unset by default; it never reaches the runtime stage.
ARG NODE_EXTRA_CA_CERTS
RUN npm install -g --no-fund --no-audit pnpm@12.4.2
WORKDIR /src
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json ./
COPY --from=manifests /src/packages/ packages/
RUN pnpm install --frozen-lockfile
COPY packages/ packages/
RUN pnpm build
# Self-contained production trees (package "files" + production dependencies only: no dev
# dependencies, tests or test data), one per workspace package that has a command ("bin" in its
# package.json: attestor, verifier, device-plugin), in /out/<its folder>; a new command needs no
# edit here. The generated protobuf code is committed, so no protoc here.
RUN dirs=$(node -e "const fs = require('node:fs'); \
      for (const d of fs.readdirSync('packages').sort()) \
        if (JSON.parse(fs.readFileSync('packages/' + d + '/package.json', 'utf8')).bin) console.log(d);") \
 && [ -n "$dirs" ] \
 && for d in $dirs; do pnpm --filter "./packages/$d" --prod deploy "/out/$d" || exit 1; done

FROM ${NODE_RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tpmds" \
      org.opencontainers.image.description="tpmds node attestor (gRPC access to the node's TPM), verifier CLI and device plugin" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# One COPY for all trees: files the deploys share are hard links in /out and stay so here.
COPY --from=build /out/ /opt/tpmds/
# Every command of every tree is linked into /usr/local/bin (tpmds-attestor ->
# /opt/tpmds/attestor/bin/tpmds-attestor.js, likewise tpmds-verifier and tpmds-device-plugin).
# The user is written into /etc/passwd and /etc/group directly (no useradd: the local base has no
# passwd package).
RUN node -e "const fs = require('node:fs'), path = require('node:path'); \
      for (const d of fs.readdirSync('/opt/tpmds')) { \
        const bin = JSON.parse(fs.readFileSync('/opt/tpmds/' + d + '/package.json', 'utf8')).bin; \
        if (typeof bin !== 'object') throw new Error(d + ': package.json bin must name its commands'); \
        for (const [name, file] of Object.entries(bin)) \
          fs.symlinkSync(path.posix.join('/opt/tpmds', d, file), '/usr/local/bin/' + name); }" \
 && echo 'tpmds:x:10001:' >> /etc/group \
 && echo 'tpmds:x:10001:10001:tpmds:/nonexistent:/usr/sbin/nologin' >> /etc/passwd
# Non-root by default. The DaemonSet (manifests/base/daemonset.yaml) explains when and why it
# overrides the user to reach a root-only TPM device and event log.
USER 10001:10001
EXPOSE 50051 8080
ENTRYPOINT ["tpmds-attestor"]
