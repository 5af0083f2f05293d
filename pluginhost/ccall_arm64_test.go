package pluginhost

import (
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestTrampolineFrameRecord walks the frame-pointer chain from inside a C
// function that the trampoline called, as a profiler or crash handler in the
// plugin would. The trampoline's frame record must lead back to
// runtime.asmcgocall, with the frame pointer asmcgocall had: none, or one
// higher up the same system stack. A frame pointer that points anywhere else
// (such as into the goroutine's stack) is a broken chain.
func TestTrampolineFrameRecord(t *testing.T) {
	t.Parallel()
	p := openTest(t)
	var chain [4]uintptr
	ccall(symbol(t, p.File(), "tp_frame_chain"), uintptr(unsafe.Pointer(&chain)), 0)
	ret, fp, callerFP, callerRet := chain[0], chain[1], chain[2], chain[3]

	assert.Equal(t, "ccallTrampoline", funcName(ret), "the C function returns into the trampoline")
	assert.Equal(t, "runtime.asmcgocall", funcName(callerRet), "the trampoline's record holds its return address")
	if callerFP != 0 {
		assert.Greater(t, callerFP, fp, "the caller's frame pointer is above the trampoline's")
		assert.Less(t, callerFP-fp, uintptr(1<<20), "on the same stack")
	}
}

// funcName names the Go function containing the return address pc.
func funcName(pc uintptr) string {
	if f := runtime.FuncForPC(pc - 1); f != nil {
		return f.Name()
	}
	return ""
}
