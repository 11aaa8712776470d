# signalbox: multi-stage build, minimal non-root runtime.
# No Docker engine exists on the development machines: this file is reviewed, not built, by
# `make test` (the manifests it feeds are tested against the dev cluster's API server).

# Build: the toolchain the project is developed with. Dependencies are fetched and compiled
# in a layer of their own, so a source change rebuilds only signalbox.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin signalbox \
    && rm -rf src
# Templates (askama) and migrations (sqlx) are compiled into the binary.
COPY src src
COPY templates templates
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin signalbox

# Run: glibc and CA certificates only; no shell, no package manager. `nonroot` is 65532,
# the user the Deployment's securityContext asks for.
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/signalbox /app/signalbox
COPY static /app/static
ENV SIGNALBOX_STATIC_DIR=/app/static \
    SIGNALBOX_LISTEN=0.0.0.0:8080 \
    SIGNALBOX_DATABASE=/data/signalbox.db \
    SIGNALBOX_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/app/signalbox"]
