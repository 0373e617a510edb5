# tpmds-swtpm:dev, the dev overlay's software TPM (swtpm and swtpm_setup from Debian 12), running
# as the same uid as the attestor so both can use the socket in their shared emptyDir.
#   docker build -t tpmds-swtpm:dev -f manifests/overlays/dev/swtpm.Dockerfile manifests/overlays/dev
#   kind load docker-image tpmds-swtpm:dev        (or: minikube image load tpmds-swtpm:dev)
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends swtpm swtpm-tools \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
