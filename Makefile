# Build, test, lint and benchmark sacred. `make test` is the whole test suite
# (it needs PostgreSQL and MariaDB for the SQL tests: see scripts/services.sh;
# without them those tests are skipped and say why, except when CI=true).
GO      ?= go
BIN     ?= bin/sacred
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/sacred-go/sacred/internal/cli.Version=$(VERSION)
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build docs test test-short lint bench services clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sacred

# Man pages and shell completions (bash, zsh, fish, PowerShell), as the
# release archives ship them: build/man/*.1, build/completions/*.
docs:
	$(GO) run -ldflags '-X github.com/sacred-go/sacred/internal/cli.Version=$(VERSION)' ./internal/cli/gendocs -man build/man -completions build/completions

# The 1 GiB object-store test skips itself under -race (its in-process test
# servers would need over 20 GB there): the second line runs it without.
test:
	$(GO) test -race -count=1 -timeout 40m ./...
	$(GO) test -count=1 -timeout 20m -run '^TestObjstoreOneGigabyteOutput$$' ./test/e2e

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$$( command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck ) ./...

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	scripts/bench.sh

services:
	scripts/services.sh

clean:
	rm -rf bin build dist
