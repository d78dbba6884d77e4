# syntax=docker/dockerfile:1
# Base images are pinned by digest, so a rebuild gets the same bytes until the digest is changed
# here on purpose (scripts/check-deploy requires it, and the tag in a comment above each FROM).
# To update: look up the tag's current digest (`docker buildx imagetools inspect TAG`, `crane
# digest TAG` or `skopeo inspect docker://TAG`), replace it, rebuild and test.

# Build stage: the same toolchain as rust-toolchain.toml (scripts/ci checks they agree).
# Tag: rust:1.95.0-bookworm
FROM rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
WORKDIR /src

# Dependency layer: build the dependencies against stub sources (one for every target the
# manifests declare, from scripts/stub-targets) so that code changes do not rebuild them.
# RUN steps use paths under WORKDIR only: scripts/check-deploy replays this stage without a
# container engine (scripts/replay-dockerfile).
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY tests/emulator/Cargo.toml tests/emulator/Cargo.toml
COPY scripts/stub-targets scripts/stub-targets
RUN sh scripts/stub-targets Cargo.toml tests/emulator/Cargo.toml \
 && cargo build --release --locked -p q-group-sync --bin q-group-sync \
 && rm -rf src

COPY src src
COPY config config
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked -p q-group-sync --bin q-group-sync \
 && mkdir -p out/var/lib/q-group-sync out/etc/q-group-sync \
 && cp target/release/q-group-sync out/q-group-sync \
 && cp config/example.toml out/etc/q-group-sync/example.toml \
 && printf '%s\n' '# Defaults only: set keys with Q_GROUP_SYNC_<SECTION>__<KEY> variables,' \
      '# or mount your own config.toml over this file (see example.toml).' \
      > out/etc/q-group-sync/config.toml

# Runtime stage: libc and CA certificates only; no shell; runs as uid 65532.
# Tag: gcr.io/distroless/cc-debian12:nonroot
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
COPY --from=build /src/out/q-group-sync /q-group-sync
COPY --from=build /src/out/etc/q-group-sync /etc/q-group-sync
COPY --from=build --chown=65532:65532 /src/out/var/lib/q-group-sync /var/lib/q-group-sync
USER 65532:65532
VOLUME ["/var/lib/q-group-sync"]
ENV Q_GROUP_SYNC_CONFIG=/etc/q-group-sync/config.toml
# /metrics, /livez, /readyz, /status and POST /sync (server.listen); the SCIM listener
# (scim.listen) when the source is [scim].
EXPOSE 9090 8443
ENTRYPOINT ["/q-group-sync"]
CMD ["serve"]
