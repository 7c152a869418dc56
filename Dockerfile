# portico in a container, for CI systems that run steps in images.
#   docker build -t portico .
#   docker run --rm -v "$PWD:/work" -w /work portico plan -f manifests --database "$DATABASE_URL"
# Build stage: the pinned toolchain compiles with the committed Cargo.lock.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin portico \
 && strip target/release/portico

# Runtime: a small Debian with CA certificates (TLS to PostgreSQL, SMTP, GitHub) and an
# unprivileged user. portico needs no other system library (rustls, bundled SQLite).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/portico portico
COPY --from=build /src/target/release/portico /usr/local/bin/portico
USER portico
WORKDIR /home/portico
ENTRYPOINT ["portico"]
CMD ["--help"]
