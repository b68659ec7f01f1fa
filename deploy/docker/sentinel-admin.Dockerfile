# syntax=docker/dockerfile:1
# The admin API image: `sentinel-admin` on Debian slim, as a non-root user,
# with a read-only root filesystem (it writes nothing to disk: state is in
# PostgreSQL, migrations are compiled into the binary), and the admin
# console's build (console/, built with Node in its own stage) that `serve`
# serves at /console/ from SENTINEL_CONSOLE_DIR. Build from the repository
# root:
#
#   docker build -f deploy/docker/sentinel-admin.Dockerfile -t sentinel-admin:dev .
#   docker run --rm sentinel-admin:dev --help
#   docker run --rm -e DATABASE_URL=postgres://owner:…@db:5432/sentinel sentinel-admin:dev migrate
#   docker run --rm --read-only -p 127.0.0.1:8081:8081 \
#     -e DATABASE_URL=postgres://sentinel_api:…@db:5432/sentinel \
#     -e SENTINEL_PLATFORM_DATABASE_URL=postgres://sentinel_platform:…@db:5432/sentinel sentinel-admin:dev
#   curl -s 127.0.0.1:8081/healthz
#
# The default command is `serve --listen 0.0.0.0:8081`; every other
# subcommand (migrate, bootstrap, seed-demo, gateway-key, snapshot-jwks, …)
# runs the same way. docs/deploy.md says what was and was not verified.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=20.19
ARG DEBIAN_SUITE=bookworm

# ---------------------------------------------------------------- console
FROM node:${NODE_VERSION}-${DEBIAN_SUITE}-slim AS console
# The locked dependencies first (a layer that changes only with the lock),
# then the sources; `npm run build` type-checks, lints and bundles into
# dist/, with Redoc for /api/v1/docs in dist/vendor/.
WORKDIR /console
COPY console/package.json ./package.json
COPY console/package-lock.json ./package-lock.json
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --loglevel=error
COPY console/ ./
RUN npm run -s build

# ---------------------------------------------------------------- build
FROM rust:${RUST_VERSION}-${DEBIAN_SUITE} AS builder
# No Pingora, no cmake: the Rust image's C compiler is all the build needs.
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=sentinel-target,sharing=locked \
    cargo build --release --locked -p sentinel-admin --bin sentinel-admin \
 && install -D -m 0755 target/release/sentinel-admin /out/sentinel-admin

# ---------------------------------------------------------------- runtime
FROM debian:${DEBIAN_SUITE}-slim AS sentinel-admin
# ca-certificates: for TLS to PostgreSQL, which the binary cannot speak yet
# (sqlx is built without a TLS feature: docs/deploy.md, "TLS"). uid/gid
# 10001 as in the gateway image.
# /var/lib/sentinel-admin: where the compose stack's one-shot service writes
# the gateway key and the snapshot JWKS (a volume; the image needs no write).
# (DL3008: apt versions are not pinned; Debian drops superseded versions from
# its mirrors, so pins break builds. The suite is pinned: DEBIAN_SUITE.)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sentinel \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sentinel-admin
COPY --chmod=0755 deploy/docker/healthcheck /usr/local/bin/sentinel-healthcheck
COPY --from=builder /out/sentinel-admin /usr/local/bin/sentinel-admin
COPY --from=console /console/dist /usr/share/sentinel-admin/console
USER 10001:10001
ENV RUST_LOG=info \
    SENTINEL_CONSOLE_DIR=/usr/share/sentinel-admin/console
EXPOSE 8081
# /healthz answers 200 only while the database answers: a readiness signal.
# (Kubernetes uses a TCP liveness probe instead, docs/deploy.md.)
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["sentinel-healthcheck", "8081", "/healthz"]
# SIGTERM: stop accepting, answer pending long-polls (304), exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sentinel-admin"]
CMD ["serve", "--listen", "0.0.0.0:8081"]
