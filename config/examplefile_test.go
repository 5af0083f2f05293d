package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/repe"
)

const exampleFile = "../repe-gw.example.yaml"

// TestExampleFile keeps repe-gw.example.yaml true: it loads, it has every
// key that File knows and no other, each key has a comment, and the values
// it shows as defaults are the defaults.
func TestExampleFile(t *testing.T) {
	f, err := Load(exampleFile)
	require.NoError(t, err)

	text, err := os.ReadFile(exampleFile)
	require.NoError(t, err)
	tree, err := parser.ParseBytes(text, 0)
	require.NoError(t, err)
	var keys []exampleKey
	collectKeys(tree.Docs[0].Body, "", &keys)

	t.Run("every key", func(t *testing.T) {
		want := map[string]bool{}
		structKeys(reflect.TypeFor[File](), "", want)
		got := map[string]bool{}
		for _, k := range keys {
			got[k.path] = true
		}
		assert.Equal(t, want, got)
	})

	t.Run("every key documented", func(t *testing.T) {
		lines := strings.Split(string(text), "\n")
		for _, k := range keys {
			line := lines[k.line-1]
			above := strings.TrimSpace(lines[k.line-2])
			assert.True(t, strings.HasPrefix(above, "#") || strings.Contains(line, " #"),
				"%s:%d: %s has no comment above or beside it", exampleFile, k.line, k.path)
		}
	})

	t.Run("defaults", func(t *testing.T) {
		assert.Equal(t, gateway.Config{
			Addr:              gateway.DefaultAddr,
			MaxMessageSize:    repe.DefaultMaxMessageSize,
			MaxConns:          gateway.DefaultMaxConns,
			MaxPendingOutput:  gateway.DefaultMaxPendingOutput,
			MaxPendingInput:   gateway.DefaultMaxPendingInput,
			ReadTimeout:       gateway.DefaultReadTimeout,
			WriteTimeout:      gateway.DefaultWriteTimeout,
			KeepAlive:         gateway.DefaultKeepAlive,
			InlineBudget:      gateway.DefaultInlineBudget,
			MaxConnsPerIP:     0,
			IdleTimeout:       0,
			PluginConcurrency: 0,
			AccessLogSample:   1,
		}, f.Gateway(nil))
		assert.Equal(t, Listen{
			Addr:    ptr(gateway.DefaultAddr),
			TLSAddr: ptr("127.0.0.1:5443"), // no default, which is none: the file shows one
			TLSCert: ptr("../tls/server.crt"), TLSKey: ptr("../tls/server.key"),
			TLSClientCA:     ptr("../tls/clients-ca.crt"),
			HTTPAddr:        ptr("127.0.0.1:8080"), // likewise
			HTTPReadTimeout: ptr(DefaultHTTPReadTimeout), HTTPIdleTimeout: ptr(DefaultHTTPIdleTimeout),
			HTTPMaxHeaderSize: ptr(uint64(DefaultHTTPMaxHeaderSize)),
			ReusePort:         ptr(false),
		}, f.Listen)
		assert.Equal(t, DefaultShutdownTimeout, *f.Limits.ShutdownTimeout)
		assert.Equal(t, time.Duration(0), *f.Limits.ShutdownDelay)
		assert.Equal(t, Admin{
			Addr:                ptr("127.0.0.1:9099"), // no default, which is none: the file shows one
			TokenFile:           ptr("../admin-token"), // likewise
			Insecure:            ptr(false),
			Pprof:               ptr(false),
			ReadyWithoutPlugins: ptr(false),
		}, f.Admin)
		assert.False(t, *f.Security.InsecurePluginPermissions)
		assert.Equal(t, DefaultLogLevel, *f.Log.Level)
		assert.Equal(t, DefaultLogFormat, *f.Log.Format)
		d := f.Defaults
		assert.Equal(t, 10*time.Second, *d.Deadline, "no default, which has none: the file shows one")
		assert.Equal(t, DefaultMode, *d.Mode)
		assert.Equal(t, 0, *d.Queue)
		assert.Equal(t, Restart{
			BackoffMin: ptr(DefaultBackoffMin), BackoffMax: ptr(DefaultBackoffMax),
			MaxFailures: ptr(DefaultMaxFailures), FailureWindow: ptr(DefaultFailureWindow),
		}, d.Restart)
	})

	t.Run("serves this repository's plugins", func(t *testing.T) {
		require.NotEmpty(t, f.Plugins)
		assert.Equal(t, Plugin{Pos: f.Plugins[0].Pos, Path: "../plugins", Enabled: true}, f.Plugins[0])
		for _, p := range f.Plugins[1:] {
			assert.False(t, p.Enabled, "%s: the entries that show keys are not loaded", p.Pos)
		}
	})
}

type exampleKey struct {
	path string // "limits.max_conns", "plugins[].restart.backoff_min"
	line int
}

// collectKeys lists the keys of a YAML tree, except inside config
// mappings, whose keys are the plugin's.
func collectKeys(n ast.Node, prefix string, keys *[]exampleKey) {
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			collectKeys(mv, prefix, keys)
		}
	case *ast.MappingValueNode:
		path := prefix + n.Key.GetToken().Value
		*keys = append(*keys, exampleKey{path, n.Key.GetToken().Position.Line})
		if !strings.HasSuffix(path, ".config") {
			collectKeys(n.Value, path+".", keys)
		}
	case *ast.SequenceNode:
		for _, v := range n.Values {
			collectKeys(v, strings.TrimSuffix(prefix, ".")+"[].", keys)
		}
	}
}

// structKeys lists the keys of t's key tags, as collectKeys does.
func structKeys(t reflect.Type, prefix string, keys map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("key")
		switch {
		case tag == "-":
			continue
		case tag == "" && f.Anonymous:
			structKeys(f.Type, prefix, keys)
			continue
		}
		path := prefix + tag
		keys[path] = true
		switch {
		case f.Type.Kind() == reflect.Struct:
			structKeys(f.Type, path+".", keys)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			structKeys(f.Type.Elem(), path+"[].", keys)
		}
	}
}
