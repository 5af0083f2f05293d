# repe-gw's container image:
#
#   docker build -t repe-gw .
#   docker run -p 5099:5099 repe-gw
#
# It expects two public Debian 12 (bookworm) images: golang:1.26-bookworm to
# build, which has Go, gcc and make, and debian:bookworm-slim to run, whose
# glibc matches the one the plugins are built against. The build fetches Go
# modules and the runtime stage installs curl from Debian, so both need the
# network. Plugins other than the examples go in the same way: built in the
# first stage, copied into /opt/repe-gw/plugins in the second.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0, as make build: the gateway opens plugins with purego, so it
# needs no cgo, only the system's dynamic loader at run time. make plugins
# builds every C plugin under plugins/ with gcc.
RUN CGO_ENABLED=0 go build -trimpath -o /out/bin/ ./cmd/repe-gw ./cmd/repe \
	&& make plugins \
	&& for so in plugins/*/*.so; do \
		dir=/out/plugins/$(basename "$(dirname "$so")"); mkdir -p "$dir" && cp "$so" "$dir/"; \
	done

# The runtime needs libc and its dynamic loader (plugins are shared
# objects), and the C and C++ libraries the plugins link to; curl is for
# the health check, since the gateway's probes are HTTP.
FROM debian:bookworm-slim
RUN apt-get update \
	&& apt-get install -y --no-install-recommends curl libstdc++6 \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin repe-gw
# Owned by root and writable by nobody else, as the gateway's trust checks
# want of plugins and of its configuration file; --chmod because COPY
# keeps the build's modes, which a umask of 002 makes group-writable.
COPY --from=build --chmod=0755 /out/bin/ /usr/local/bin/
COPY --from=build --chmod=0755 /out/plugins/ /opt/repe-gw/plugins/
COPY --chmod=0644 deploy/container/repe-gw.yaml /etc/repe-gw/repe-gw.yaml
USER 65532:65532
# 5099: REPE. 9099: the admin listener, on loopback unless a token file is
# given (deploy/kubernetes mounts one and listens on every interface).
EXPOSE 5099
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
	CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9099/healthz"]
ENTRYPOINT ["/usr/local/bin/repe-gw", "--config", "/etc/repe-gw/repe-gw.yaml"]
