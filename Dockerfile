# aagtm container images.
#
#   docker build -t aagtm .                          the aagtm binary (default, last stage)
#   docker build --target client -t aagtm-client .   dig + redis-cli, for docker-compose.yml
#
# The aagtm image runs as a non-root user (65532) on distroless/static: no
# shell, no package manager, only /aagtm. Its entrypoint is the binary, so
# `docker run aagtm serve --config /etc/aagtm/aagtm.yaml --node ns1`.

# --- build: a static, reproducible binary ---------------------------------
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/aagtm ./cmd/aagtm \
 && mkdir -p /out/state

# --- client: the lab's resolver-side tools ----------------------------------
FROM debian:bookworm-slim AS client
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bind9-dnsutils redis-tools curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["sleep", "infinity"]

# --- aagtm: the runtime image (default target) ------------------------------
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/aagtm /aagtm
# The state file's folder, owned by the runtime user, so a named volume
# mounted here starts writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/aagtm
USER 65532:65532
# DNS (UDP and TCP), report ingest (gRPC), admin HTTP.
EXPOSE 53/udp 53/tcp 7411/tcp 8053/tcp
ENTRYPOINT ["/aagtm"]
CMD ["--help"]
