package pluginhost

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// TestCallConcurrent has many goroutines call one plugin at once, each with
// payloads of its own, on at least 4 Ps so that goroutines move between OS
// threads: every reply must be the one for its own request, which fails if
// a reply were copied after another call on the same thread had overwritten
// the plugin's thread-local buffer. Run it with -race too.
func TestCallConcurrent(t *testing.T) {
	prev := runtime.GOMAXPROCS(max(4, runtime.GOMAXPROCS(0)))
	defer runtime.GOMAXPROCS(prev)
	require.GreaterOrEqual(t, runtime.GOMAXPROCS(0), 4)

	p := openTest(t)
	const goroutines, calls = 32, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			var dst []byte
			for i := range calls {
				id := uint64(g)<<32 | uint64(i)
				// Sizes differ too, so a mixed-up reply cannot match by chance.
				body := bytes.Repeat([]byte(strconv.FormatUint(id, 36)+";"), 1+(g+i)%40)
				req := repe.AppendMessage(nil, repe.Header{ID: id}, "/test/echo", body)
				var err error
				dst, err = p.Call(dst[:0], req)
				if err != nil {
					t.Errorf("call %d/%d: %v", g, i, err)
					return
				}
				m, err := repe.Parse(dst)
				if err != nil {
					t.Errorf("call %d/%d: %v", g, i, err)
					return
				}
				if m.ID() != id || !bytes.Equal(m.Body(), body) {
					t.Errorf("call %d/%d: got id %d body %q, want id %d body %q", g, i, m.ID(), m.Body(), id, body)
					return
				}
			}
		})
	}
	wg.Wait()
}
