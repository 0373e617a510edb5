# syntax=docker/dockerfile:1
# tpmds image: the node attestor (entrypoint tpmds-attestor) and the verifier CLI (tpmds-verifier).
#   docker build -t tpmds:dev .
#   docker run --rm tpmds:dev --help
# Pure TypeScript/JavaScript: no native addons, so the runtime stage needs nothing but Node.

# Any Node LTS >= 20.19 works; the tests run on 20, the image uses the current LTS line.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
ENV PNPM_HOME=/pnpm PATH=/pnpm:$PATH CI=true
RUN npm install -g pnpm@12.4.2
WORKDIR /src
# Dependency manifests first, so the install layer is cached across source edits.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json ./
COPY packages/tpm2-wire/package.json packages/tpm2-wire/
COPY packages/protocol/package.json packages/protocol/
COPY packages/verifier/package.json packages/verifier/
COPY packages/attestor/package.json packages/attestor/
RUN pnpm install --frozen-lockfile
COPY packages/ packages/
RUN pnpm build
# Self-contained production trees (package "files" + production dependencies only). The
# generated protobuf code is committed, so no protoc is needed here.
RUN pnpm --filter @tpmds/attestor --prod deploy /out/attestor \
 && pnpm --filter @tpmds/verifier --prod deploy /out/verifier

FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tpmds" \
      org.opencontainers.image.description="tpmds node attestor (gRPC access to the node's TPM) and verifier CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
COPY --from=build /out/attestor /opt/tpmds/attestor
COPY --from=build /out/verifier /opt/tpmds/verifier
RUN ln -s /opt/tpmds/attestor/bin/tpmds-attestor.js /usr/local/bin/tpmds-attestor \
 && ln -s /opt/tpmds/verifier/bin/tpmds-verifier.js /usr/local/bin/tpmds-verifier \
 && groupadd --system --gid 10001 tpmds \
 && useradd --system --uid 10001 --gid tpmds --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin tpmds
# Non-root by default. The DaemonSet (manifests/base/daemonset.yaml) explains when and why it
# overrides the user to reach a root-only TPM device and event log.
USER 10001:10001
EXPOSE 50051 8080
ENTRYPOINT ["tpmds-attestor"]
