# sealgate container image. Not built by CI (no docker on the dev machines).
#   docker build -t sealgate .
#   docker run -p 10025:10025 -v sealgate-data:/var/lib/sealgate \
#     -e SEALGATE__SMTP__ALLOWED_NETWORKS=172.16.0.0/12 \
#     -e SEALGATE__RELAY__UPSTREAM=mx.internal:25 sealgate

FROM rust:1-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sealgate \
 && install -m 0755 target/release/sealgate /usr/local/bin/sealgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/sealgate --shell /usr/sbin/nologin sealgate \
 && install -d -m 0750 -o sealgate -g sealgate /var/lib/sealgate \
 && install -d -m 0755 /etc/sealgate
COPY --from=builder /usr/local/bin/sealgate /usr/local/bin/sealgate
COPY config/sealgate.toml /etc/sealgate/sealgate.toml.example

# Embedded defaults plus these overrides. To use a file, mount it and set
# SEALGATE_CONFIG=/etc/sealgate/sealgate.toml; these variables still win over
# the file's smtp.listen and store.url. Clients reach the container from
# outside loopback: set SEALGATE__SMTP__ALLOWED_NETWORKS (default: loopback only).
ENV SEALGATE__SMTP__LISTEN=0.0.0.0:10025 \
    SEALGATE__STORE__URL=sqlite:///var/lib/sealgate/sealgate.db
VOLUME ["/var/lib/sealgate"]
WORKDIR /var/lib/sealgate
USER 10001
EXPOSE 10025
ENTRYPOINT ["sealgate"]
CMD ["serve"]
