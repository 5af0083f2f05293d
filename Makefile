# repe-gw: the two commands a newcomer needs are `make run` and `make test`.

GO      ?= go
CC      ?= cc
ADDR    ?= 127.0.0.1:5099
CFLAGS  ?= -O2 -g -Wall -Wextra -std=c11
PLUGIN_CFLAGS = $(CFLAGS) -fPIC -fvisibility=hidden -Iplugins/include
PLUGIN_LDFLAGS = -shared -pthread

# Every directory under plugins/ except include/ is one plugin, built from its
# C sources into plugins/<name>/<name>.so, next to its source.
PLUGIN_DIRS := $(filter-out include,$(notdir $(patsubst %/,%,$(wildcard plugins/*/))))
PLUGINS     := $(foreach p,$(PLUGIN_DIRS),plugins/$(p)/$(p).so)

.PHONY: all plugins build run test clean

all: build plugins

plugins: $(PLUGINS)

.SECONDEXPANSION:
plugins/%.so: $$(wildcard plugins/$$(*D)/*.c) $$(wildcard plugins/$$(*D)/*.h) plugins/include/repe_plugin.h
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $@ $(filter %.c,$^)

# CGO_ENABLED=0: the gateway loads plugins through purego and needs no cgo.
build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

run: build plugins
	./bin/repe-gw --plugins ./plugins --addr $(ADDR)

clean:
	rm -rf bin $(PLUGINS)
