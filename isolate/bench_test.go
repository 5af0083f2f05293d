//go:build linux

package isolate

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// BenchmarkCall is a pipelined batch of reads of the calculator's value from
// one client, of 32 requests and of one (the round trip): answered by a
// worker process (isolated), and by the same plugin loaded in this
// process, one pluginhost call per request, as the gateway calls it
// (in-process). ns/req is per request.
//
// isolated-4-callers is four callers at once, each calling with its own
// batch, as four client connections' jobs reach an isolated plugin: their
// batches share exchanges with the worker.
func BenchmarkCall(b *testing.B) {
	so := plugintest.Build(b, plugintest.RepoPath("plugins/calculator/calculator.c"))
	isolated, _ := startPlugin(b, so, nil)
	inProcess, err := pluginhost.Open(so)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 64<<10)
	for _, n := range []int{32, 1} {
		batch := calculatorBatch(n)
		b.Run("isolated/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				out, err := isolated.Call(dst[:0], batch, time.Now().Add(10*time.Second))
				if err != nil || len(out) == 0 {
					b.Fatal(out, err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/req")
		})
		b.Run("isolated-4-callers/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, 4/runtime.GOMAXPROCS(0)))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				dst := make([]byte, 0, 64<<10)
				for pb.Next() {
					out, err := isolated.Call(dst[:0], batch, time.Now().Add(10*time.Second))
					if err != nil || len(out) == 0 {
						b.Error(out, err)
						return
					}
				}
			})
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/req")
		})
		b.Run("in-process/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				out := dst[:0]
				for reqs := batch; len(reqs) > 0; {
					m := repe.Message(reqs)
					if out, err = inProcess.Call(out, reqs[:m.Length()]); err != nil {
						b.Fatal(err)
					}
					reqs = reqs[m.Length():]
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*n), "ns/req")
		})
	}
}
