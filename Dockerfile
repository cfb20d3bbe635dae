# Gatehouse container image: a static binary on an empty base, running as
# an unprivileged user, with its SQLite database on the /data volume.
#
#   docker build -t gatehouse .
#   docker run -p 8080:8080 -v gatehouse-data:/data \
#     -e GATEHOUSE_SERVER_PUBLIC_URL=https://app.example.com \
#     -e GATEHOUSE_UPSTREAM_URL=http://app:3000 gatehouse
#
# The build steps live in scripts/build-image.sh, which CI also runs
# without Docker.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION=$VERSION sh scripts/build-image.sh /rootfs

FROM scratch
COPY --from=build /rootfs/usr /usr
COPY --from=build /rootfs/etc /etc
COPY --from=build /rootfs/tmp /tmp
COPY --from=build --chown=65532:65532 /rootfs/data /data
USER 65532:65532
WORKDIR /data
ENV GATEHOUSE_CONFIG=/etc/gatehouse/config.yaml
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/gatehouse", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
