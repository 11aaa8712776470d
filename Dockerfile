# signalbox: multi-stage build, minimal non-root runtime.
# (No Docker engine exists on the development machines; this file is exercised by the
# cluster's image builder, not by `make test`.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY templates templates
COPY migrations migrations
COPY benches benches
RUN cargo build --release --locked --bin signalbox

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /src/target/release/signalbox /app/signalbox
COPY static /app/static
ENV SIGNALBOX_STATIC_DIR=/app/static
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/app/signalbox"]
