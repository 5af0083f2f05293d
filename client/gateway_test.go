package client

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// The tests in this file run the client against the real gateway, over TCP
// on the loopback interface, with the calculator and the gateway's test
// plugin compiled from C for the test. The gateway answers each
// connection's requests one after another, in order, as Glaze's server does.

// serve starts a gateway with the plugins at paths and returns its address.
func serve(tb testing.TB, cfg gateway.Config, paths ...string) string {
	tb.Helper()
	srv, _ := gatewaytest.Serve(tb, cfg, paths...)
	return srv.Addr().String()
}

// logBuffer collects a client's debug records, for tests that check what
// the client did with a reply.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

const discarded = `msg="client: discarding a reply that matches no call"`

func TestGatewayCalls(t *testing.T) {
	addr := serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/x"))
	c := dial(t, addr, &Config{Conns: 1})
	tests := []struct {
		name  string
		query string
		body  string
		opts  []CallOption
		bf    repe.BodyFormat
		want  string
	}{
		{"set", "/calculator/set_value", "41.5", nil, repe.BodyJSON, "null"},
		{"increment", "/calculator/increment", "", nil, repe.BodyJSON, "42.5"},
		{"read the object", "/calculator", "", nil, repe.BodyJSON, `{"value":42.5}`},
		{"write a member", "/calculator/value", "-1E-7", nil, repe.BodyJSON, "null"},
		{"read a member", "/calculator/value", "", nil, repe.BodyJSON, "-1E-7"},
		{"echo JSON", "/x/echo", `{"a":[1,2]}`, nil, repe.BodyJSON, `{"a":[1,2]}`},
		{"echo BEVE", "/x/echo", "\x09\x05", []CallOption{WithBodyFormat(repe.BodyBEVE)}, repe.BodyBEVE, "\x09\x05"},
		{"echo UTF-8", "/x/echo", "héllo", []CallOption{WithBodyFormat(repe.BodyUTF8)}, repe.BodyUTF8, "héllo"},
		{"ping", "/x/ping", "", nil, repe.BodyJSON, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), tt.query, []byte(tt.body), tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, repe.OK, reply.EC)
			assert.Equal(t, tt.bf, reply.BodyFormat)
			assert.Equal(t, tt.want, string(reply.Body))
		})
	}

	t.Run("the gateway echoes a chosen id", func(t *testing.T) {
		reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/x/ping", nil, WithID(1<<63+5))
		require.NoError(t, err)
		assert.Equal(t, uint64(1<<63+5), reply.ID)
	})
}

func TestGatewayErrors(t *testing.T) {
	addr := serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/x"))
	c := dial(t, addr, nil)
	tests := []struct {
		name  string
		query string
		body  string
		code  repe.ErrorCode
		msg   string
	}{
		// The gateway's own answer: no plugin owns the path.
		{"no plugin", "/nothing", "", repe.MethodNotFound, "No plugin registered for path"},
		{"segment boundary", "/calculatorX/value", "", repe.MethodNotFound, "No plugin registered for path"},
		// The plugins' answers, in Glaze's words.
		{"unknown path in a plugin", "/calculator/nope", "", repe.MethodNotFound, "invalid_query: /calculator/nope"},
		{"unknown path in gwtest", "/x/nope", "", repe.MethodNotFound, "invalid_query: /x/nope"},
		{"not a number", "/calculator/set_value", `"x"`, repe.ParseNumberFailure,
			"1:1: parse_number_failure\n   \"x\"\n   ^"},
		{"unknown key", "/calculator", `{"value":1,"bogus":2}`, repe.UnknownKey,
			"1:13: unknown_key\n   {\"value\":1,\"bogus\":2}\n               ^"},
		{"no input", "/calculator/value", " ", repe.NoReadInput, "index 1: no_read_input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), tt.query, []byte(tt.body))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.code)
			assert.NotErrorIs(t, err, repe.ConnectionFailure)

			var ce *Error
			require.ErrorAs(t, err, &ce)
			assert.True(t, ce.Remote, "the server's error")
			assert.Equal(t, tt.query, ce.Query)
			assert.NoError(t, ce.Cause)

			var re *repe.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tt.code, re.Code)
			assert.Equal(t, tt.msg, re.Message)

			assert.Equal(t, tt.code, reply.EC, "the error reply comes back too")
			assert.Equal(t, repe.BodyUTF8, reply.BodyFormat)
			assert.Equal(t, tt.msg, string(reply.Body))
		})
	}

	// The errors left every connection in sync.
	reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/calculator/value", nil)
	require.NoError(t, err)
	assert.Equal(t, "1", string(reply.Body), "the unknown-key write set value before failing, as Glaze does")
}

// TestGatewayNotify checks notifies reach the plugin, in order with the
// calls on their connection, and that no reply to one ever reaches the
// client: not from a plugin that answers notifies anyway, not for a path
// no plugin owns.
func TestGatewayNotify(t *testing.T) {
	var log logBuffer
	addr := serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/x"))
	c := dial(t, addr, &Config{Conns: 1, Logger: log.logger()})
	ctx := ctxTimeout(t, gatewaytest.Timeout)

	for range 3 {
		require.NoError(t, c.Notify(ctx, "/calculator/increment", nil))
	}
	require.NoError(t, c.Notify(ctx, "/calculator/set_value", []byte(`"bad"`)), "a failing notify is silent")
	require.NoError(t, c.Notify(ctx, "/x/notify", nil), "gwtest replies even to this; the gateway drops it")
	require.NoError(t, c.Notify(ctx, "/nothing", nil))
	require.NoError(t, c.Notify(ctx, "/x/echo", []byte(`"dropped"`), WithID(7)), "the id the next call gets")

	reply, err := c.Call(ctx, "/calculator/value", nil)
	require.NoError(t, err)
	assert.Equal(t, "3", string(reply.Body), "the notifies ran before the call on the same connection")
	reply, err = c.Call(ctx, "/x/echo", []byte(`"mine"`))
	require.NoError(t, err)
	assert.Equal(t, `"mine"`, string(reply.Body))
	assert.NotContains(t, log.String(), discarded, "no reply to a notify arrived")
}

// gate is the gate test plugin (cmd/repe-gw/testdata/gate.c) at a root of
// its own: a call to <root>/wait is held until open, and each call held is
// recorded in the plugin's events file as it arrives.
type gate struct {
	so, dir string
}

func newGate(t *testing.T, root string) gate {
	t.Helper()
	dir := t.TempDir()
	so := plugintest.Build(t, plugintest.RepoPath("cmd/repe-gw/testdata/gate.c"),
		fmt.Sprintf("-DGATE_DIR=%q", dir), fmt.Sprintf("-DGATE_NAME=%q", strings.TrimPrefix(root, "/")),
		fmt.Sprintf("-DGATE_ROOT=%q", root))
	return gate{so: so, dir: dir}
}

// open answers the calls held and any later ones.
func (g gate) open(t *testing.T) {
	require.NoError(t, os.WriteFile(filepath.Join(g.dir, "go"), nil, 0o644))
}

// held reports whether the plugin has recorded a call held with this id.
func (g gate) held(id uint64) bool {
	b, _ := os.ReadFile(filepath.Join(g.dir, "events"))
	return strings.Contains(string(b), " wait "+strconv.FormatUint(id, 10)+"\n")
}

// TestGatewayTimeout runs a call into a plugin that holds it until the
// test lets it go: the call returns at its deadline with ec 7, the
// connection stays open, the late reply is read and dropped, and the next
// call on the connection, which the gateway answers after the held one,
// gets its own reply.
func TestGatewayTimeout(t *testing.T) {
	var log logBuffer
	late, cancelled := newGate(t, "/late"), newGate(t, "/cancelled")
	addr := serve(t, gateway.Config{}, late.so, cancelled.so)
	defer late.open(t) // before the gateway's cleanup waits for the calls
	defer cancelled.open(t)
	c := dial(t, addr, &Config{Conns: 1, Logger: log.logger()})
	cn := c.slots[0].conn.Load()

	err := within(t, func() error {
		_, err := c.Call(ctxTimeout(t, 500*time.Millisecond), "/late/wait", nil)
		return err
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, repe.Timeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.False(t, ce.Remote)
	assert.Equal(t, "client: /late/wait: timeout: context deadline exceeded", err.Error())
	assert.Eventually(t, func() bool { return late.held(1) }, gatewaytest.Timeout, time.Millisecond,
		"the request was sent whole, and the plugin holds it")

	late.open(t)
	reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/late/echo", []byte(`"next"`))
	require.NoError(t, err)
	assert.Equal(t, `"next"`, string(reply.Body))
	assert.Same(t, cn, c.slots[0].conn.Load(), "the connection was kept")
	assert.False(t, cn.dead.Load())
	assert.Contains(t, log.String(), discarded+" remote="+addr+" id=1 ec=0", "the late reply to call 1 was read and dropped first")

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			// Cancel once the plugin holds the call (id 3, after 1 and 2).
			for deadline := time.Now().Add(gatewaytest.Timeout); !cancelled.held(3) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		err := within(t, func() error {
			_, err := c.Call(ctx, "/cancelled/wait", nil)
			return err
		})
		assert.ErrorIs(t, err, repe.Timeout)
		assert.ErrorIs(t, err, context.Canceled)
		assert.True(t, cancelled.held(3), "cancelled while the plugin held it")
		cancelled.open(t)
		reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/late/echo", []byte(`"after"`))
		require.NoError(t, err)
		assert.Equal(t, `"after"`, string(reply.Body))
		assert.Same(t, cn, c.slots[0].conn.Load())
		assert.Contains(t, log.String(), discarded+" remote="+addr+" id=3 ec=0")
	})
}

// TestGatewayManyGoroutines shares one client among many goroutines whose
// calls are in flight at once, and checks that every caller gets its own
// reply. With one connection, every call is multiplexed over it, and the
// gateway answers in order, so a reply given to the wrong call shows at
// once. Bodies of many sizes make frames straddle the client's reads; a few
// slow calls hold up everything behind them on their connection; the
// calculator counts the increments, which must each run once.
func TestGatewayManyGoroutines(t *testing.T) {
	addr := serve(t, gateway.Config{}, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/x"))
	for _, conns := range []int{1, 3} {
		t.Run("conns="+strconv.Itoa(conns), func(t *testing.T) {
			c := dial(t, addr, &Config{Conns: conns})
			before, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/calculator/value", nil)
			require.NoError(t, err)
			start, err := strconv.ParseInt(string(before.Body), 10, 64)
			require.NoError(t, err)
			const goroutines, calls = 32, 60
			var (
				wg         sync.WaitGroup
				increments atomic.Int64
				mu         sync.Mutex
				ids        = make(map[uint64]int) // per id, how many replies carried it
			)
			for g := range goroutines {
				wg.Go(func() {
					for i := range calls {
						ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
						reply, err := callOne(ctx, c, g, i, &increments)
						cancel()
						if err != nil {
							t.Errorf("goroutine %d, call %d: %v", g, i, err)
							return
						}
						mu.Lock()
						ids[reply.ID]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()

			reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/calculator/value", nil)
			require.NoError(t, err)
			assert.Equal(t, strconv.FormatInt(start+increments.Load(), 10), string(reply.Body), "each increment ran once")
			if conns == 1 {
				assert.Len(t, ids, goroutines*calls, "every call had an id of its own")
				assert.NotContains(t, ids, uint64(0))
			}
			for i := range c.slots {
				cn := c.slots[i].conn.Load()
				require.NotNil(t, cn)
				assert.False(t, cn.dead.Load(), "no connection failed")
			}
		})
	}
}

// callOne makes call i of goroutine g: mostly an echo of a body unique to
// the call, sometimes an increment, and rarely the 200 ms sleep.
func callOne(ctx context.Context, c *Client, g, i int, increments *atomic.Int64) (Reply, error) {
	switch {
	case g%16 == 0 && i%30 == 0:
		reply, err := c.Call(ctx, "/x/sleep", nil)
		if err == nil && len(reply.Body) != 0 {
			err = fmt.Errorf("sleep replied %q", reply.Body)
		}
		return reply, err
	case i%5 == 0:
		reply, err := c.Call(ctx, "/calculator/increment", nil)
		if err == nil {
			increments.Add(1)
			if _, perr := strconv.ParseFloat(string(reply.Body), 64); perr != nil {
				err = fmt.Errorf("increment replied %q", reply.Body)
			}
		}
		return reply, err
	}
	// Sizes up to 96 KiB, beyond the client's 64 KiB read buffer.
	size := (g*7919 + i*104729) % (96 << 10)
	body := make([]byte, 0, size+32)
	body = fmt.Appendf(body, `["g%d i%d","`, g, i)
	for len(body) < size {
		body = append(body, byte('a'+(g+i+len(body))%26))
	}
	body = append(body, `"]`...)
	reply, err := c.Call(ctx, "/x/echo", body)
	if err == nil && (!bytes.Equal(reply.Body, body) || reply.BodyFormat != repe.BodyJSON) {
		err = fmt.Errorf("echo of %d bytes came back as %d bytes starting %.20q, format %v",
			len(body), len(reply.Body), reply.Body, reply.BodyFormat)
	}
	return reply, err
}

// TestGatewayLargeBody sends a 16 MiB body through the test plugin's echo
// and back.
func TestGatewayLargeBody(t *testing.T) {
	addr := serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/x"))
	c := dial(t, addr, &Config{Conns: 1})
	body := make([]byte, 16<<20)
	rng := rand.NewChaCha8([32]byte{5})
	_, _ = rng.Read(body)
	reply, err := c.Call(ctxTimeout(t, time.Minute), "/x/echo", body, WithBodyFormat(repe.BodyRaw))
	require.NoError(t, err)
	assert.Equal(t, repe.BodyRaw, reply.BodyFormat)
	assert.Len(t, reply.Body, len(body))
	assert.True(t, bytes.Equal(body, reply.Body), "the body changed on the way")

	// The connection is still in step after the big frames.
	reply, err = c.Call(ctxTimeout(t, gatewaytest.Timeout), "/x/echo", []byte(`"small"`))
	require.NoError(t, err)
	assert.Equal(t, `"small"`, string(reply.Body))
}

// TestGatewayRestart stops the gateway under an idle pool and starts a new
// one on the same address: while it is down, calls fail with ec 9; once it
// is back, every slot of the pool dials again and calls succeed.
func TestGatewayRestart(t *testing.T) {
	srv, host := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/x"))
	addr := srv.Addr().String()
	c := dial(t, addr, &Config{Conns: 2})
	echo := func(body string) error {
		reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/x/echo", []byte(body))
		if err == nil && string(reply.Body) != body {
			err = fmt.Errorf("echo of %s came back as %s", body, reply.Body)
		}
		return err
	}
	for i := range 4 { // both slots connected
		require.NoError(t, echo(strconv.Itoa(i)))
	}
	old := []*conn{c.slots[0].conn.Load(), c.slots[1].conn.Load()}
	require.NotNil(t, old[1])

	ctx := ctxTimeout(t, gatewaytest.Timeout)
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, host.Close(ctx))
	require.Eventually(t, func() bool { return old[0].dead.Load() && old[1].dead.Load() },
		gatewaytest.Timeout, 5*time.Millisecond, "the client sees the gateway close its connections")

	for range 2 {
		err := echo("1")
		assert.ErrorIs(t, err, repe.ConnectionFailure)
		assert.ErrorContains(t, err, "connection refused")
	}

	serve(t, gateway.Config{Addr: addr}, gatewaytest.TestPlugin(t, "/x"))
	for i := range 4 {
		require.NoError(t, echo(strconv.Itoa(i)))
	}
	for i, cn := range old {
		assert.NotSame(t, cn, c.slots[i].conn.Load(), "slot %d dialled again", i)
	}
}

// TestGatewayClosesConnection sends a request larger than the gateway's
// limit but not the client's: the gateway answers ec 2 and closes the
// connection, and the next call dials again.
func TestGatewayClosesConnection(t *testing.T) {
	addr := serve(t, gateway.Config{MaxMessageSize: 1024}, gatewaytest.TestPlugin(t, "/x"))
	c := dial(t, addr, &Config{Conns: 1})
	first := c.slots[0].conn.Load()

	_, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/x/echo", make([]byte, 2000), WithBodyFormat(repe.BodyRaw))
	require.Error(t, err)
	assert.ErrorIs(t, err, repe.InvalidHeader)
	assert.ErrorContains(t, err, "REPE message exceeds maximum allowed size: length 2055, limit 1024")
	require.Eventually(t, first.dead.Load, gatewaytest.Timeout, 5*time.Millisecond, "the gateway closed the connection")

	reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/x/echo", []byte(`"again"`))
	require.NoError(t, err)
	assert.Equal(t, `"again"`, string(reply.Body))
	assert.NotSame(t, first, c.slots[0].conn.Load(), "a new connection")

	t.Run("closed by the client", func(t *testing.T) {
		cn := c.slots[0].conn.Load()
		require.NoError(t, cn.nc.Close())
		require.Eventually(t, cn.dead.Load, gatewaytest.Timeout, 5*time.Millisecond)
		reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/x/echo", []byte(`"once more"`))
		require.NoError(t, err)
		assert.Equal(t, `"once more"`, string(reply.Body))
	})
}

// warm runs calls until the gateway trusts the plugin to run on its event
// loop, as it does with fast plugins in steady state.
func warm(tb testing.TB, c *Client, query string) {
	tb.Helper()
	for range 500 {
		if _, err := c.Call(context.Background(), query, nil); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestGatewayCallAllocs holds a call to the calculator through the gateway
// to one allocation, the reply body. The count is the whole process's, so
// it holds the gateway, in the same process, to none.
func TestGatewayCallAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	addr := serve(t, gateway.Config{}, gatewaytest.Calculator(t))
	c := dial(t, addr, &Config{Conns: 1})
	warm(t, c, "/calculator/get_value")
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.Call(ctx, "/calculator/get_value", nil); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 1.0)
}

// BenchmarkGatewayCall measures one call at a time to the calculator
// through the gateway: a round trip over loopback TCP. allocs/op counts the
// whole process, gateway included.
func BenchmarkGatewayCall(b *testing.B) {
	addr := serve(b, gateway.Config{}, gatewaytest.Calculator(b))
	c := dial(b, addr, &Config{Conns: 1})
	warm(b, c, "/calculator/get_value")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, "/calculator/get_value", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGatewayCallParallel measures calls from many goroutines sharing
// one client, over one connection and over a pool of four.
func BenchmarkGatewayCallParallel(b *testing.B) {
	addr := serve(b, gateway.Config{}, gatewaytest.Calculator(b))
	for _, conns := range []int{1, 4} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			c := dial(b, addr, &Config{Conns: conns})
			warm(b, c, "/calculator/get_value")
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer() // RunParallel, unlike b.Loop, does not leave the setup out
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Call(ctx, "/calculator/get_value", nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
