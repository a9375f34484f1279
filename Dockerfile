# todo-api: build with the Rust toolchain, run on Debian slim as a non-root user.
#   docker build -t todo-api .
#   docker run -e DATABASE_URL=... -e BETTER_AUTH_SECRET=... -p 8000:8000 todo-api

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY sql sql
COPY tests/bench tests/bench
RUN cargo build --release --locked --bin todo-api

FROM debian:bookworm-slim
# libssl3 for TLS to PostgreSQL (Neon requires it); ca-certificates: the system roots that
# sslmode=verify-full and an https JWKS_URL are checked against.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin todo
COPY --from=build /src/target/release/todo-api /usr/local/bin/todo-api
USER 10001
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["todo-api", "healthcheck"]
ENTRYPOINT ["todo-api"]
