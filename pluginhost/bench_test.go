package pluginhost

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// openBench opens testdata/benchplugin.c, whose repe_plugin_call does next
// to nothing, so that what is measured is the host's call path.
func openBench(b *testing.B) *Plugin {
	p, err := Open(plugintest.Build(b, "testdata/benchplugin.c"))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkCall is a whole Plugin.Call: accounting, thread lock, the C call,
// validation and copy of the 48-byte reply.
func BenchmarkCall(b *testing.B) {
	p := openBench(b)
	req := request(7, "/bench/ping", "")
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		out, err := p.Call(dst[:0], req)
		if err != nil || len(out) != 48 {
			b.Fatal(out, err)
		}
	}
}

// BenchmarkCallParallel is BenchmarkCall from every P at once.
func BenchmarkCallParallel(b *testing.B) {
	p := openBench(b)
	req := request(7, "/bench/ping", "")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, 64)
		for pb.Next() {
			if out, err := p.Call(dst[:0], req); err != nil || len(out) != 48 {
				b.Error(out, err)
				return
			}
		}
	})
}

// BenchmarkCallCFloor is the physical floor: the same repe_plugin_call
// called from a C loop (bench_loop in benchplugin.c), reply copied likewise.
// The ns/C-call metric is the cost of one call there.
func BenchmarkCallCFloor(b *testing.B) {
	p := openBench(b)
	loop := symbol(b, p.File(), "bench_loop")
	req := request(7, "/bench/ping", "")
	const inner = 1000
	var ns uintptr
	b.ReportAllocs()
	for b.Loop() {
		d, _ := ccall3(loop, uintptr(unsafe.Pointer(&req[0])), uintptr(len(req)), inner)
		ns += d
	}
	b.ReportMetric(float64(ns)/float64(b.N*inner), "ns/C-call")
}

// ccall3 calls a three-argument C function through purego, for the floor
// benchmark only (ccall takes two).
func ccall3(fn, a1, a2, a3 uintptr) (uintptr, uintptr) {
	r1, r2, _ := purego.SyscallN(fn, a1, a2, a3)
	return r1, r2
}

// BenchmarkCallPaths compares ways of calling repe_plugin_call, which
// returns a 16-byte struct by value, each with the thread lock and the reply
// copy a real call needs (except "ccall-unlocked"):
//
//   - ccall: pluginhost's trampoline through runtime.cgocall (ccall.go).
//   - ccall-unlocked: the same without runtime.LockOSThread, to price it.
//   - SyscallN: purego.SyscallN, whose r1 and r2 are RAX:RDX / X0:X1.
//   - SyscallN-pooled: SyscallN fed a pooled argument slice, so that its
//     variadic slice does not escape.
//   - RegisterFunc: purego.RegisterFunc with a struct-returning Go func.
func BenchmarkCallPaths(b *testing.B) {
	p := openBench(b)
	req := request(7, "/bench/ping", "")
	type reply struct {
		data *byte
		size uint64
	}
	var registered func(*byte, uint64) reply
	purego.RegisterFunc(&registered, p.callFn)
	args := sync.Pool{New: func() any { return new([2]uintptr) }}

	paths := []struct {
		name   string
		locked bool
		call   func() (uintptr, uintptr)
	}{
		{"ccall", true, func() (uintptr, uintptr) {
			return ccall(p.callFn, uintptr(unsafe.Pointer(&req[0])), uintptr(len(req)))
		}},
		{"ccall-unlocked", false, func() (uintptr, uintptr) {
			return ccall(p.callFn, uintptr(unsafe.Pointer(&req[0])), uintptr(len(req)))
		}},
		{"SyscallN", true, func() (uintptr, uintptr) {
			r1, r2, _ := purego.SyscallN(p.callFn, uintptr(unsafe.Pointer(&req[0])), uintptr(len(req)))
			return r1, r2
		}},
		{"SyscallN-pooled", true, func() (uintptr, uintptr) {
			a := args.Get().(*[2]uintptr)
			a[0], a[1] = uintptr(unsafe.Pointer(&req[0])), uintptr(len(req))
			r1, r2, _ := purego.SyscallN(p.callFn, a[:]...)
			runtime.KeepAlive(req)
			args.Put(a)
			return r1, r2
		}},
		{"RegisterFunc", true, func() (uintptr, uintptr) {
			r := registered(&req[0], uint64(len(req)))
			return uintptr(unsafe.Pointer(r.data)), uintptr(r.size)
		}},
	}
	for _, path := range paths {
		b.Run(path.name, func(b *testing.B) {
			dst := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				if path.locked {
					runtime.LockOSThread()
				}
				data, size := path.call()
				if size != 48 {
					b.Fatal(size)
				}
				dst = append(dst[:0], unsafe.Slice((*byte)(cPointer(data)), size)...)
				if path.locked {
					runtime.UnlockOSThread()
				}
			}
		})
	}
}

// BenchmarkCallCalculator is a realistic small call: get_value on the
// example calculator.
func BenchmarkCallCalculator(b *testing.B) {
	p, err := Open(fresh(b, calculatorSO))
	if err != nil {
		b.Fatal(err)
	}
	req := request(7, "/calculator/get_value", "")
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Call(dst[:0], req); err != nil {
			b.Fatal(err)
		}
	}
}
