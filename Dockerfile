# syntax=docker/dockerfile:1
# tpmds image: the node attestor (entrypoint tpmds-attestor) and the verifier CLI (tpmds-verifier).
#   docker build -t tpmds:dev .
#   docker run --rm tpmds:dev --help
# Without a registry, scripts/build-image.sh builds this file with buildah on a local Node base
# (it passes NODE_IMAGE and NODE_RUNTIME_IMAGE). Pure TypeScript/JavaScript: no native addons, so the
# runtime stage needs nothing but Node.

# Any Node LTS >= 20.19 works; the tests run on 20, the image uses the current LTS line.
# NODE_IMAGE needs node and npm (the build stage); NODE_RUNTIME_IMAGE needs node and a POSIX sh.
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
# dependencies, tests or test data). The generated protobuf code is committed, so no protoc here.
RUN pnpm --filter @tpmds/attestor --prod deploy /out/attestor \
 && pnpm --filter @tpmds/verifier --prod deploy /out/verifier

FROM ${NODE_RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tpmds" \
      org.opencontainers.image.description="tpmds node attestor (gRPC access to the node's TPM) and verifier CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
# One COPY for both trees: files the two deploys share are hard links in /out and stay so here.
COPY --from=build /out/ /opt/tpmds/
# The user is written into /etc/passwd and /etc/group directly (no useradd: the local base has no
# passwd package).
RUN ln -s /opt/tpmds/attestor/bin/tpmds-attestor.js /usr/local/bin/tpmds-attestor \
 && ln -s /opt/tpmds/verifier/bin/tpmds-verifier.js /usr/local/bin/tpmds-verifier \
 && echo 'tpmds:x:10001:' >> /etc/group \
 && echo 'tpmds:x:10001:10001:tpmds:/nonexistent:/usr/sbin/nologin' >> /etc/passwd
# Non-root by default. The DaemonSet (manifests/base/daemonset.yaml) explains when and why it
# overrides the user to reach a root-only TPM device and event log.
USER 10001:10001
EXPOSE 50051 8080
ENTRYPOINT ["tpmds-attestor"]
