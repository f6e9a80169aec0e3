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
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --home /var/lib/custodyflows --create-home custodyflows
COPY --from=build /out/custodyflows /usr/local/bin/custodyflows
USER custodyflows
WORKDIR /var/lib/custodyflows
ENTRYPOINT ["custodyflows"]
