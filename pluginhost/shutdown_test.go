package pluginhost

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// TestShutdownWaitsForCalls: shutdown runs only after the calls in flight
// have returned, exactly once, however often Close is called.
func TestShutdownWaitsForCalls(t *testing.T) {
	file := fresh(t, testPluginSO)
	h, errs := Load([]string{file})
	require.Empty(t, errs)
	p := h.Plugins()[0]

	// Three calls that block inside the plugin until released.
	const blocked = 3
	var wg sync.WaitGroup
	var okCalls atomic.Int32
	for i := range blocked {
		wg.Go(func() {
			out, err := p.Call(nil, request(uint64(i), "/test/block", ""))
			if assert.NoError(t, err) && assert.Len(t, out, repe.HeaderSize) {
				okCalls.Add(1)
			}
		})
	}
	require.Eventually(t, func() bool { return counter(t, file, "tp_blocked") == blocked },
		10*time.Second, time.Millisecond)

	// Close gives up while they run: no shutdown, an error that says so.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	err := h.Close(ctx)
	require.ErrorIs(t, err, ErrBusy)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "3 calls in flight")
	assert.Contains(t, err.Error(), file)
	assert.Zero(t, counter(t, file, "tp_shutdown_calls"))

	// New calls are refused from the moment shutdown began.
	_, err = p.Call(nil, request(9, "/test/ping", ""))
	var re *repe.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, repe.MethodNotFound, re.Code)
	assert.LessOrEqual(t, uint32(re.Code), uint32(9), "an error every Glaze client can name")
	assert.Contains(t, re.Message, `plugin "testplugin"`)

	// Once released, a Close with time to wait shuts the plugin down, once.
	ccall(symbol(t, file, "tp_release"), 0, 0)
	require.NoError(t, h.Close(t.Context()))
	wg.Wait()
	assert.Equal(t, int32(blocked), okCalls.Load(), "the calls in flight completed normally")
	assert.Equal(t, int32(1), counter(t, file, "tp_shutdown_calls"))

	require.NoError(t, h.Close(t.Context()))
	require.NoError(t, p.Shutdown(t.Context()))
	assert.Equal(t, int32(1), counter(t, file, "tp_shutdown_calls"), "still once")
	assert.Zero(t, counter(t, file, "tp_shutdown_during_call"))
	assert.Zero(t, counter(t, file, "tp_calls_after_shutdown"))
}

// TestShutdownRacesCalls: calls and several Close calls at once; every call
// either completes or is refused, and shutdown runs once, after the last
// completed call.
func TestShutdownRacesCalls(t *testing.T) {
	file := fresh(t, testPluginSO)
	h, errs := Load([]string{file})
	require.Empty(t, errs)
	p := h.Plugins()[0]

	var callers, closers sync.WaitGroup
	var completed, refused atomic.Int64
	start := make(chan struct{})
	for g := range 8 {
		callers.Go(func() {
			<-start
			dst := make([]byte, 0, 64)
			for i := 0; ; i++ {
				out, err := p.Call(dst, request(uint64(g*1000+i), "/test/ping", ""))
				if err != nil {
					var re *repe.Error
					if assert.ErrorAs(t, err, &re) && assert.Equal(t, repe.MethodNotFound, re.Code) {
						refused.Add(1)
					}
					return
				}
				if !assert.Len(t, out, repe.HeaderSize) {
					return
				}
				completed.Add(1)
			}
		})
	}
	close(start)
	time.Sleep(10 * time.Millisecond)
	for range 3 {
		closers.Go(func() { assert.NoError(t, h.Close(t.Context())) })
	}
	closers.Wait()
	callers.Wait()
	assert.Equal(t, int32(1), counter(t, file, "tp_shutdown_calls"))
	assert.Zero(t, counter(t, file, "tp_shutdown_during_call"), "the plugin saw shutdown during a call")
	assert.Zero(t, counter(t, file, "tp_calls_after_shutdown"), "the plugin saw a call after shutdown")
	assert.Equal(t, int64(8), refused.Load(), "every caller ends with a refused call")
	assert.Positive(t, completed.Load())
}

func TestShutdownIdleWithDoneContext(t *testing.T) {
	t.Parallel()
	// A done context does not keep an idle plugin from shutting down.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := openTest(t)
	require.NoError(t, p.Shutdown(ctx))
	assert.Equal(t, int32(1), counter(t, p.File(), "tp_shutdown_calls"))
}

func TestShutdownNotExported(t *testing.T) {
	t.Parallel()
	p := openTest(t, "-DTP_NO_SHUTDOWN")
	_, err := p.Call(nil, request(1, "/test/ping", ""))
	require.NoError(t, err)
	require.NoError(t, p.Shutdown(t.Context()))
	_, err = p.Call(nil, request(2, "/test/ping", ""))
	assert.ErrorIs(t, err, repe.MethodNotFound)
}
