# syntax=docker/dockerfile:1
# The gateway image: `sentinel` on Debian slim, as a non-root user, with a
# read-only root filesystem. Build from the repository root (the context is
# the workspace; .dockerignore keeps target/ and the rest out):
#
#   docker build -f deploy/docker/sentinel.Dockerfile -t sentinel:dev .
#   docker run --rm --read-only --tmpfs /tmp -p 127.0.0.1:8080:8080 -p 127.0.0.1:9090:9090 \
#     sentinel:dev demo --listen 0.0.0.0:8080 --ops 0.0.0.0:9090
#   curl -s 127.0.0.1:9090/readyz
#
# `sentinel run` reads /etc/sentinel/sentinel.toml (mount it, with its route
# files and keys). Writable paths: /var/lib/sentinel for the policy snapshot
# cache (`[policy] cache_file`) and, later, the audit spool: mount a volume
# there; /tmp (a tmpfs) for the graceful-upgrade socket and the files of
# `sentinel demo`. Everything else can stay read-only. docs/deploy.md says
# what was and was not verified of this file.
#
# The `demo-upstream` target is the load test's 1 KiB upstream
# (examples/upstream.rs), which the compose stack uses as a stand-in app:
#   docker build -f deploy/docker/sentinel.Dockerfile --target demo-upstream -t sentinel-demo-upstream:dev .

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-${DEBIAN_SUITE} AS builder
# Pingora builds zlib-ng with cmake; ring, zstd and the rest need only cc.
# (DL3008: apt versions are not pinned; Debian drops superseded versions from
# its mirrors, so pins break builds. The suite is pinned: DEBIAN_SUITE.)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The release profile (fat LTO, one codegen unit) takes minutes: the cache
# mounts keep the registry and target/ between builds. The binary is copied
# out of the cache mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=sentinel-target,sharing=locked \
    cargo build --release --locked -p sentinel --bin sentinel \
 && install -D -m 0755 target/release/sentinel /out/sentinel

# Examples compile the dev-dependencies too, so the stand-in upstream is a
# stage of its own, built only when asked for.
FROM builder AS demo-upstream-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=sentinel-target,sharing=locked \
    cargo build --release --locked -p sentinel --example upstream \
 && install -D -m 0755 target/release/examples/upstream /out/demo-upstream

# ---------------------------------------------------------------- runtime
FROM debian:${DEBIAN_SUITE}-slim AS runtime
# ca-certificates: upstreams with `tls = true` and `verify = true` check
# against the system roots. One fixed uid/gid (10001) in both Sentinel
# images, so files one writes to a shared volume the other can read.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sentinel \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sentinel
COPY --chmod=0755 deploy/docker/healthcheck /usr/local/bin/sentinel-healthcheck

FROM runtime AS demo-upstream
COPY --from=demo-upstream-builder /out/demo-upstream /usr/local/bin/demo-upstream
USER 10001:10001
EXPOSE 7100
ENTRYPOINT ["demo-upstream"]
CMD ["--listen", "0.0.0.0:7100"]

# The default target: the gateway.
FROM runtime AS sentinel
COPY --from=builder /out/sentinel /usr/local/bin/sentinel
USER 10001:10001
WORKDIR /var/lib/sentinel
ENV SENTINEL_LOG=info \
    TMPDIR=/tmp
# 8080: proxy, 9090: ops (/healthz, /readyz, /metrics, JWKS). Never publish
# the ops port where clients reach the proxy.
EXPOSE 8080 9090
# /readyz: 200 once a policy snapshot is loaded (and, with on_stale =
# "refuse", while it is fresh). Another ops port: override the health check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["sentinel-healthcheck", "9090", "/readyz"]
# SIGTERM: stop accepting, finish requests in flight (docs/deploy.md,
# "Upgrades"); SIGQUIT hands the sockets to a new process (--upgrade).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sentinel"]
CMD ["run", "--config", "/etc/sentinel/sentinel.toml"]
