# custodyflows: `make run` starts everything, `make test` runs every test.
GO        ?= go
BIN       := bin/custodyflows
# Fuzz time per target for `make fuzz`.
FUZZTIME  ?= 30s

export GOTOOLCHAIN := local
# mattn/go-sqlite3 needs cgo.
export CGO_ENABLED := 1

.PHONY: run build test test-deps lint bench fuzz clean

## run: build, then start the whole product on an embedded Temporal server
run: build
	./$(BIN) dev

## build: the single binary
build:
	$(GO) build -o $(BIN) ./cmd/custodyflows

## test: vet, then every test, end-to-end ones included (what CI runs)
test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

## test-deps: Chromium for the Gateway's browser tests and PostgreSQL's server
## binaries for the store's tests (apt-get as root, else says what to install)
test-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium chromium-driver"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "make test needs Chromium (browser tests) and PostgreSQL's server binaries (store tests): run 'sudo apt-get install$$missing' (or 'make test-deps' as root)" >&2; \
		exit 1; \
	fi; \
	echo "installing$$missing with apt-get"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

## lint: go vet and a gofmt check
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## bench: every benchmark, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

## fuzz: each fuzz target for FUZZTIME
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## clean: remove the binary and the dev data directory
clean:
	rm -rf bin .data
