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

# The example plugins written with Glaze (glazeplugins/README.md), built by
# CMake with clang-19 into bin/glaze-plugins/, outside the plugins/ that
# make run serves. GLAZE_DIR names a Glaze source tree to build against;
# without it CMake fetches Glaze. make test builds them, and hands their
# folder and GLAZE_DIR to the tests, when clang++-19, cmake and GLAZE_DIR are
# all there; otherwise the tests that need Glaze skip, saying why.
GLAZE_CXX      ?= clang++-19
GLAZE_BUILD    = bin/glaze-build
GLAZE_PLUGINS  = bin/glaze-plugins
GLAZE_TESTABLE := $(and $(GLAZE_DIR),$(shell command -v $(GLAZE_CXX) >/dev/null && command -v cmake >/dev/null && echo yes))
GLAZE_TEST_ENV = $(if $(GLAZE_TESTABLE),REPE_GLAZE_PLUGINS=$(CURDIR)/$(GLAZE_PLUGINS) GLAZE_DIR=$(abspath $(GLAZE_DIR)))

.PHONY: all plugins glaze-plugins glaze-plugins-or-skip build run install cluster-test test test-arm64 test-arm64-short arm64-tools lint bench clean

all: build plugins

plugins: $(PLUGINS)

.SECONDEXPANSION:
plugins/%.so: $$(wildcard plugins/$$(*D)/*.c) $$(wildcard plugins/$$(*D)/*.h) $(wildcard plugins/include/*.h)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $@ $(filter %.c,$^)

glaze-plugins:
	cmake -S glazeplugins -B $(GLAZE_BUILD) -DCMAKE_CXX_COMPILER=$(GLAZE_CXX) -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=$(CURDIR)/$(GLAZE_PLUGINS) \
		$(if $(GLAZE_DIR),-DFETCHCONTENT_SOURCE_DIR_GLAZE=$(abspath $(GLAZE_DIR)))
	cmake --build $(GLAZE_BUILD) --parallel $(shell nproc 2>/dev/null || echo 2)

glaze-plugins-or-skip:
ifeq ($(GLAZE_TESTABLE),yes)
	@$(MAKE) --no-print-directory glaze-plugins
else
	@echo "Skipping the Glaze plugins and their tests: they need $(GLAZE_CXX), cmake and GLAZE_DIR (see glazeplugins/README.md)"
endif

# CGO_ENABLED=0: the gateway loads plugins through purego and needs no cgo.
# -buildvcs=auto, added last to GOFLAGS, stamps the commit into --version
# even where the go command's settings turn stamping off.
build:
	CGO_ENABLED=0 GOFLAGS="$(GOFLAGS) -buildvcs=auto" $(GO) build -o bin/ ./cmd/...

run: build plugins
	./bin/repe-gw --plugins ./plugins --addr $(ADDR)

# make install [PREFIX=/usr/local] [DESTDIR=]: the commands, the plugin
# headers, the example plugins, the example configuration, and a systemd
# unit (deploy/systemd/) with a configuration it starts from. The unit and
# its configuration name /usr/local in their paths, replaced here by
# PREFIX; DESTDIR stages the tree for a package. An existing configuration
# is kept, since it is the operator's. Plugins go in owned by whoever
# installs (root, in production) and writable by nobody else, as the
# gateway's trust checks want.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
INCLUDEDIR  ?= $(PREFIX)/include/repe-gw
PLUGINDIR   ?= $(PREFIX)/lib/repe-gw/plugins
SYSCONFDIR  ?= $(PREFIX)/etc
DOCDIR      ?= $(PREFIX)/share/doc/repe-gw
UNITDIR     ?= $(PREFIX)/lib/systemd/system
UNIT_PATHS  = sed -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/usr/local/etc|$(SYSCONFDIR)|g' \
	-e 's|/usr/local/lib/repe-gw/plugins|$(PLUGINDIR)|g'

install: build plugins
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/repe-gw $(DESTDIR)$(PLUGINDIR)
	install -m 0755 $(wildcard bin/repe*) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(wildcard plugins/include/*.h) $(DESTDIR)$(INCLUDEDIR)/
	for p in $(PLUGIN_DIRS); do \
		install -d -m 0755 $(DESTDIR)$(PLUGINDIR)/$$p && \
		install -m 0755 plugins/$$p/$$p.so $(DESTDIR)$(PLUGINDIR)/$$p/ || exit 1; \
	done
	install -m 0644 repe-gw.example.yaml $(DESTDIR)$(DOCDIR)/
	$(UNIT_PATHS) deploy/systemd/repe-gw.service > $(DESTDIR)$(UNITDIR)/repe-gw.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/repe-gw.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/repe-gw/repe-gw.yaml ] || \
		{ $(UNIT_PATHS) deploy/systemd/repe-gw.yaml > $(DESTDIR)$(SYSCONFDIR)/repe-gw/repe-gw.yaml && \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/repe-gw/repe-gw.yaml; }

# The whole suite, as CI runs it. The no-cgo pass proves that plugins load
# and serve without cgo; the race pass runs everything under the race
# detector (which needs cgo); benchmarks run once so that they keep compiling
# and working; the arm64 pass runs the code that calls C on the other
# architecture it supports. Lint comes last, so that no test waits for it.
# The Glaze plugins are built first, once, for every pass that loads them.
# The Kubernetes manifests' test is a module of its own (deploy/doc.go says
# why), run without -race: k8s.io/api compiles slowly under it.
# Everything but the race pass builds as releases do, with CGO_ENABLED=0, so
# that the passes share one build cache. cmd/repe-gw's tests run the race
# binary as the gateway many times over, which takes minutes on two CPUs:
# the race pass allows 15 of them per package rather than go test's 10.
test: glaze-plugins-or-skip
	CGO_ENABLED=0 $(GO) build ./...
	CGO_ENABLED=0 $(GO) vet ./...
	$(GLAZE_TEST_ENV) CGO_ENABLED=0 $(GO) test -count=1 ./pluginhost/ ./gateway/ ./conformance/ ./cmd/repe-gw/
	$(GLAZE_TEST_ENV) $(GO) test -race -shuffle=on -count=1 -timeout 15m ./...
	cd deploy && CGO_ENABLED=0 $(GO) vet ./... && CGO_ENABLED=0 $(GO) test -count=1 ./...
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench . -benchtime 1x ./...
	@$(MAKE) --no-print-directory test-arm64-short
	@$(MAKE) --no-print-directory lint

# The upgrade and load-balancer tests alone, with their figures: two
# gateways swapped on one port with --reuse-port, and three behind HAProxy
# (Debian: apt-get install haproxy; the test skips without it), one
# stopped with SIGTERM and one killed. make test runs them too.
cluster-test:
	$(GO) test -count=1 -run '^(TestReusePortSwap|TestHAProxy)$$' -v ./cmd/repe-gw/

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
