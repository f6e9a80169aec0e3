# custodyflows: one binary for every command (api, worker, sandbox, migrate, dev).
# mattn/go-sqlite3 needs cgo, so the build and runtime images share a libc.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=1
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /out/custodyflows ./cmd/custodyflows

FROM debian:bookworm-slim
# A fixed, numeric, non-root uid: Kubernetes can only verify runAsNonRoot
# against a number, and the manifests' runAsUser and fsGroup name the same
# one. /var/lib/custodyflows is the only path the process writes (the
# sandbox's and a SQLite app database's files); it is created here, owned by
# that user, so a named volume mounted on it starts out writable: Docker
# copies the image directory's owner into an empty volume.
# Healthchecks need nothing extra: bash's /dev/tcp and grep, both in the
# base image, send one HTTP request to the health route.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 10001 custodyflows \
	&& useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/custodyflows --no-create-home custodyflows \
	&& install -d -m 0700 -o 10001 -g 10001 /var/lib/custodyflows
COPY --from=build /out/custodyflows /usr/local/bin/custodyflows
USER 10001:10001
WORKDIR /var/lib/custodyflows
ENTRYPOINT ["custodyflows"]
