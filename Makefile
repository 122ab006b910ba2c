# The two commands a newcomer needs: `make run` and `make test`.
GO       ?= go
BIN      := bin/acmecrm
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
REDOCLY := @redocly/cli@2.77.0
ASYNCAPI := @asyncapi/cli@6.2.0

.PHONY: all build run test lint fmt deps clean bench

all: build

## deps: install PostgreSQL and Redis from the OS packages if missing
deps:
	@scripts/deps.sh

## build: compile the one binary to bin/acmecrm
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/acmecrm

## run: the local run — everything embedded/local, nothing to configure
run: deps build
	./$(BIN) dev

## test: the whole suite with the race detector, against real PostgreSQL,
## Redis (one server each for the run) and kfake
test: deps build
	./$(BIN) stack -- $(GO) test -race -count=1 -timeout 20m ./...

## lint: gofmt, go vet, staticcheck, the OpenAPI (Redocly CLI) and AsyncAPI (AsyncAPI CLI) documents, from npm
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@command -v npx >/dev/null || { echo "lint: installing Node.js from the OS packages" >&2; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npx --yes $(REDOCLY) lint --format=stylish internal/httpapi/openapi.json
	npx --yes $(ASYNCAPI) validate api/asyncapi.json

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

## bench: load scenarios with wrk against the local run; see docs/BENCHMARKS.md
bench: deps build
	bench/run.sh
