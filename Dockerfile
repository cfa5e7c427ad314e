# arus's image: built in one stage, run in a slim one holding only the
# shared libraries the binary links (tests/suite/k8s.rs checks the runtime
# package list against `ldd` of the binary), as a non-root user.
#   docker build -t arus:0.1.0 .
# No container engine was available where this was written: the image has
# not been built here (README, "Running on Kubernetes").

FROM rust:1.95-slim-bookworm AS build
# librdkafka is built from source by its configure script (TLS, SASL/SCRAM):
# a C/C++ toolchain, make, pkg-config and OpenSSL's headers; no cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p arus \
 && cp target/release/arus /usr/local/bin/arus

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libc6 libgcc-s1 libssl3 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin arus
COPY --from=build /usr/local/bin/arus /usr/local/bin/arus
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/arus"]
CMD ["serve"]
