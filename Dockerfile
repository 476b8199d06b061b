# lakelet in a container: the daemon, real Postgres computes on FUSE views of the page store,
# and the proxy on port 5432.
#
#   docker build -t lakelet .
#   docker run -d --name lakelet --device /dev/fuse --cap-add SYS_ADMIN -p 5432:5432 lakelet
#   docker exec lakelet lakelet branch create pr-1 --from main --ttl 1d
#   docker exec lakelet lakelet connstr pr-1        # host 127.0.0.1:5432 works from the host
#   docker exec lakelet lakelet bench --sizes 1,10  # the report lands in /var/lib/lakelet-bench
#
# Why the flags: each branch's Postgres runs on a FUSE mount, which needs the /dev/fuse device
# and the mount(2) capability (CAP_SYS_ADMIN). Hosts whose AppArmor profile forbids mounts in
# containers also need `--security-opt apparmor=unconfined`. Nothing else is privileged.

FROM rust:1.85-bookworm AS build
# The system RocksDB (docs/ARCHITECTURE.md, "RocksDB route") and libclang for its bindings.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends librocksdb-dev libsnappy-dev libclang-dev clang pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# benches/ only because Cargo.toml declares its targets; they are not built.
COPY benches ./benches
COPY src ./src
RUN cargo build --release --locked --bin lakelet

FROM debian:bookworm-slim
# Postgres (the computes, pgbench and pg_dump for `lakelet bench`), fuse3, and the shared
# libraries the binary links: RocksDB 7.8 and snappy.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql postgresql-client fuse3 librocksdb7.8 libsnappy1v5 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/lakelet /usr/local/bin/lakelet
# The daemon runs as root (it mounts the views) and starts every Postgres as the unprivileged
# `lakelet` user, which it creates on first start.
ENV LAKELET_DATA_DIR=/var/lib/lakelet
VOLUME /var/lib/lakelet
WORKDIR /var/lib
EXPOSE 5432
STOPSIGNAL SIGTERM
ENTRYPOINT ["lakelet"]
# The proxy listens on every interface of the container (clients still authenticate); the
# control API stays on the container's loopback, for `docker exec … lakelet …`.
CMD ["daemon", "--proxy-host", "0.0.0.0", "--proxy-port", "5432"]
