# The plugsync image: FROM scratch around a statically linked plugsync (nothing is pulled, so
# the binary is built on the host and the image holds it plus the CA bundle for https remotes).
#
#   OPENSSL_STATIC=1 RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --locked --bin plugsync --target x86_64-unknown-linux-gnu
#   mkdir -p target/image/cache && cp /etc/ssl/certs/ca-certificates.crt target/image/
#   docker build -t plugsync/plugsync:0.1.0 .
#
# Runs as an unprivileged user; the Git cache lives in /var/cache/plugsync (a volume or an
# emptyDir there keeps it across restarts). examples/kubernetes/deployment.yaml runs this image.
FROM scratch
COPY target/x86_64-unknown-linux-gnu/release/plugsync /plugsync
COPY target/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --chown=65532:65532 target/image/cache/ /var/cache/plugsync/
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PLUGSYNC_CACHE_DIR=/var/cache/plugsync \
    TMPDIR=/var/cache/plugsync \
    PLUGSYNC_LISTEN=0.0.0.0:8080
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/plugsync"]
CMD ["run"]
