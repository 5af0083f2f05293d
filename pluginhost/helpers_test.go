package pluginhost

import (
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

const testPluginSrc = "testdata/testplugin.c"

// openTest opens a fresh instance of testplugin.c built with cflags.
func openTest(t *testing.T, cflags ...string) *Plugin {
	t.Helper()
	file := fresh(t, testPluginSO)
	if len(cflags) > 0 {
		file = plugintest.Build(t, testPluginSrc, cflags...)
	}
	p, err := Open(file)
	require.NoError(t, err)
	return p
}

// request encodes a request frame as Glaze's clients do.
func request(id uint64, query, body string) []byte {
	return repe.AppendMessage(nil, repe.Header{ID: id, QueryFormat: repe.QueryJSONPointer, BodyFormat: repe.BodyJSON},
		query, []byte(body))
}

// notifyRequest is request with the notify flag set.
func notifyRequest(id uint64, query, body string) []byte {
	return repe.AppendMessage(nil, repe.Header{ID: id, Notify: true, QueryFormat: repe.QueryJSONPointer,
		BodyFormat: repe.BodyJSON}, query, []byte(body))
}

// rawCall hands req to the plugin's repe_plugin_call as it is, without Call's
// checks, and copies whatever comes back: for feeding malformed frames to a
// plugin that must answer them itself.
func rawCall(p *Plugin, req []byte) []byte {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ptr uintptr
	if len(req) > 0 {
		ptr = uintptr(unsafe.Pointer(unsafe.SliceData(req)))
	}
	data, size := ccall(p.callFn, ptr, uintptr(len(req)))
	if size == 0 {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(cPointer(data)), size)...)
}

// symbol finds an exported symbol of a loaded plugin's library (dlopen of a
// loaded file returns the same library).
func symbol(t testing.TB, file, name string) uintptr {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := purego.Dlopen(file, purego.RTLD_NOW|purego.RTLD_LOCAL)
	require.NoError(t, err)
	addr, err := purego.Dlsym(h, name)
	require.NoError(t, err)
	return addr
}

// counter reads one of testplugin.c's atomic_int counters.
func counter(t *testing.T, file, name string) int32 {
	t.Helper()
	return atomic.LoadInt32((*int32)(cPointer(symbol(t, file, name))))
}
