# repe-gw: the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
CC      ?= cc
ADDR    ?= 127.0.0.1:5099
CFLAGS  ?= -O2 -g -Wall -Wextra -std=c11
PLUGIN_CFLAGS = $(CFLAGS) -fPIC -fvisibility=hidden -Iplugins/include
PLUGIN_LDFLAGS = -shared -pthread

# Every directory under plugins/ with C sources, except include/, is one
# plugin, built from them into plugins/<name>/<name>.so, next to its source.
# Others are skipped: a C++ plugin built by its own command (plugins/README.md)
# or a folder of notes is no C plugin to build.
PLUGIN_DIRS := $(filter-out include,$(patsubst plugins/%/,%,$(sort $(dir $(wildcard plugins/*/*.c)))))
PLUGINS     := $(foreach p,$(PLUGIN_DIRS),plugins/$(p)/$(p).so)

# The arm64 pass: test binaries cross-built for arm64 run under qemu-user, and
# build their test plugins with the cross compiler (internal/plugintest reads
# CC). Debian: apt-get install qemu-user gcc-aarch64-linux-gnu.
ARM64_CC   ?= aarch64-linux-gnu-gcc
ARM64_EXEC ?= qemu-aarch64 -L /usr/aarch64-linux-gnu

.PHONY: all plugins build run test test-arm64 test-arm64-short arm64-tools lint bench clean

all: build plugins

plugins: $(PLUGINS)

.SECONDEXPANSION:
plugins/%.so: $$(wildcard plugins/$$(*D)/*.c) $$(wildcard plugins/$$(*D)/*.h) $(wildcard plugins/include/*.h)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $@ $(filter %.c,$^)

# CGO_ENABLED=0: the gateway loads plugins through purego and needs no cgo.
# -buildvcs=auto, added last to GOFLAGS, stamps the commit into --version
# even where the go command's settings turn stamping off.
build:
	CGO_ENABLED=0 GOFLAGS="$(GOFLAGS) -buildvcs=auto" $(GO) build -o bin/ ./cmd/...

run: build plugins
	./bin/repe-gw --plugins ./plugins --addr $(ADDR)

# The whole suite, as CI runs it. The no-cgo pass proves that plugins load
# and serve without cgo; the race pass runs everything under the race
# detector (which needs cgo); benchmarks run once so that they keep compiling
# and working; the arm64 pass runs the code that calls C on the other
# architecture it supports. Lint comes last, so that no test waits for it.
# Everything but the race pass builds as releases do, with CGO_ENABLED=0, so
# that the passes share one build cache.
test:
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./pluginhost/ ./gateway/ ./conformance/ ./cmd/repe-gw/
	$(GO) test -race -shuffle=on -count=1 ./...
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench . -benchtime 1x ./...
	@$(MAKE) --no-print-directory test-arm64-short
	@$(MAKE) --no-print-directory lint

# The arm64 pass of make test: the packages that call C are built and vetted
# for arm64 (the trampoline's assembly included), and pluginhost's tests and
# the conformance replay run under qemu-user. test-arm64 runs the gateway's
# tests there too, which adds about a minute: more than make test can spend.
test-arm64-short: arm64-tools
	CGO_ENABLED=0 GOARCH=arm64 $(GO) vet ./pluginhost/ ./gateway/ ./conformance/
	$(ARM64_TEST) ./pluginhost/ ./conformance/

# Isolated plugins run in a worker that the gateway starts from its own
# executable: qemu-user cannot follow that exec of an arm64 binary without
# binfmt_misc, so those tests are left out here.
test-arm64: arm64-tools
	$(ARM64_TEST) -skip '^TestIsolated' ./pluginhost/ ./gateway/ ./conformance/

ARM64_TEST = CGO_ENABLED=0 GOARCH=arm64 CC="$(ARM64_CC)" $(GO) test -count=1 -exec "$(ARM64_EXEC)"

arm64-tools:
	@for tool in $(firstword $(ARM64_CC)) $(firstword $(ARM64_EXEC)); do \
		command -v $$tool >/dev/null || { echo "$$tool not found (Debian: apt-get install qemu-user gcc-aarch64-linux-gnu)"; exit 1; }; \
	done

# staticcheck is pinned in go.mod as a tool, so it comes with the module's
# other dependencies and needs no download of its own.
lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	CGO_ENABLED=0 $(GO) tool staticcheck ./...

# The benchmark suite (bench/README.md): writes results/bench.md, in about
# five minutes on a quiet machine. It pins servers and the load tool to
# separate CPUs with taskset; BENCHMARKS.md explains the method and figures.
bench:
	GO=$(GO) CC=$(CC) bench/run.sh

clean:
	rm -rf bin results $(PLUGINS)
