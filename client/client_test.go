package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client/repetest"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// The servers below are real TCP servers with small handlers; they stand in
// for repe-gw and Glaze, whose behaviour they follow where it matters here:
// ids echoed, replies on one connection in order (unless Concurrent), error
// replies with a UTF-8 message.

const textNotFound = "No plugin registered for path"

// route answers by query: /missing is method_not_found, /inspect describes
// the request, /slow/<ms> waits, /drop closes the connection, anything
// else echoes.
func route(dst []byte, req repe.Message) ([]byte, error) {
	if req.Notify() {
		return dst, nil
	}
	q := string(req.Query())
	switch {
	case q == "/missing":
		return repe.AppendError(dst, req.ID(), repe.MethodNotFound, textNotFound), nil
	case q == "/inspect":
		desc := fmt.Sprintf("id=%d qf=%d bf=%d body=%s", req.ID(), req.QueryFormat(), req.BodyFormat(), req.Body())
		return repe.AppendResponse(dst, req.ID(), repe.OK, repe.BodyUTF8, []byte(desc)), nil
	case strings.HasPrefix(q, "/slow/"):
		ms, _ := strconv.Atoi(strings.TrimPrefix(q, "/slow/"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return repe.AppendResponse(dst, req.ID(), repe.OK, repe.BodyUTF8, []byte(q)), nil
	case q == "/drop":
		return dst, errors.New("drop")
	}
	return repetest.Echo(dst, req)
}

func dial(t testing.TB, addr string, cfg *Config) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCall(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	tests := []struct {
		name  string
		query string
		body  string
		opts  []CallOption
		want  string
		bf    repe.BodyFormat
	}{
		{"echo JSON", "/echo", `{"a":1}`, nil, `{"a":1}`, repe.BodyJSON},
		{"empty body", "/echo", ``, nil, ``, repe.BodyRaw},
		{"defaults", "/inspect", `[1]`, nil, `id=3 qf=1 bf=2 body=[1]`, repe.BodyUTF8},
		{"no body is raw", "/inspect", ``, nil, `id=4 qf=1 bf=0 body=`, repe.BodyUTF8},
		{"options", "/inspect", "\x09\x05", []CallOption{WithBodyFormat(repe.BodyBEVE), WithQueryFormat(repe.QueryRaw), WithID(77)},
			"id=77 qf=0 bf=1 body=\x09\x05", repe.BodyUTF8},
		{"ids continue", "/inspect", ``, nil, `id=5 qf=1 bf=0 body=`, repe.BodyUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			reply, err := c.Call(ctxTimeout(t, 5*time.Second), tt.query, body, tt.opts...)
			require.NoError(t, err)
			assert.Equal(t, repe.OK, reply.EC)
			assert.Equal(t, tt.bf, reply.BodyFormat)
			assert.Equal(t, tt.want, string(reply.Body))
		})
	}
}

func TestCallServerError(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, nil)
	reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/missing", nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, repe.MethodNotFound)
	assert.NotErrorIs(t, err, repe.Timeout)

	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.True(t, ce.Remote)
	assert.Equal(t, "/missing", ce.Query)
	assert.NoError(t, ce.Cause)

	var re *repe.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, repe.MethodNotFound, re.Code)
	assert.Equal(t, textNotFound, re.Message)
	assert.Equal(t, "client: /missing: method_not_found: "+textNotFound, err.Error())

	assert.Equal(t, repe.MethodNotFound, reply.EC, "the error reply comes back too")
	assert.Equal(t, repe.BodyUTF8, reply.BodyFormat)
	assert.Equal(t, textNotFound, string(reply.Body))
}

// TestManyGoroutinesOneConnection sends many calls at once over a single
// connection to a server that answers in order, and checks each caller gets
// its own reply.
func TestManyGoroutinesOneConnection(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	const goroutines, calls = 50, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				want := fmt.Sprintf(`{"g":%d,"i":%d}`, g, i)
				reply, err := c.Call(context.Background(), "/echo", []byte(want))
				if err != nil {
					errs <- err
					return
				}
				if string(reply.Body) != want {
					errs <- fmt.Errorf("goroutine %d got %s, want %s", g, reply.Body, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Equal(t, 1, srv.Accepted())
}

// hold holds the requests for one path: the server answers them only once
// the test calls open, and arrived receives each one's id as the server
// reads it. Tests order events with it, never by sleeping.
type hold struct {
	path    string
	arrived chan uint64
	release chan struct{}
	once    sync.Once
}

func newHold(path string) *hold {
	return &hold{path: path, arrived: make(chan uint64, 16), release: make(chan struct{})}
}

// wrap returns a handler that holds h's path and passes the rest to next.
func (h *hold) wrap(next repetest.Handler) repetest.Handler {
	return func(dst []byte, req repe.Message) ([]byte, error) {
		if string(req.Query()) != h.path {
			return next(dst, req)
		}
		h.arrived <- req.ID()
		<-h.release
		return repe.AppendResponse(dst, req.ID(), repe.OK, repe.BodyUTF8, []byte(h.path)), nil
	}
}

// next returns the id of the next request the server reads.
func (h *hold) next(t *testing.T) uint64 {
	t.Helper()
	select {
	case id := <-h.arrived:
		return id
	case <-time.After(gatewaytest.Timeout):
		t.Fatalf("no request for %s reached the server", h.path)
		return 0
	}
}

// open answers the requests held and any later ones. It may be called more
// than once.
func (h *hold) open() { h.once.Do(func() { close(h.release) }) }

// TestOutOfOrder checks replies are matched by id when the server answers
// in whatever order its handlers finish.
func TestOutOfOrder(t *testing.T) {
	held := newHold("/held")
	srv := repetest.Start(t, held.wrap(route), repetest.Config{Concurrent: true})
	defer held.open() // before the server's cleanup waits for its handlers
	c := dial(t, srv.Addr, &Config{Conns: 1})

	t.Run("a fast call overtakes a held one", func(t *testing.T) {
		slow := make(chan error, 1)
		go func() {
			reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/held", nil)
			if err == nil && string(reply.Body) != "/held" {
				err = fmt.Errorf("held call got %q", reply.Body)
			}
			slow <- err
		}()
		held.next(t) // the held request is on the wire first
		reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", []byte(`"fast"`))
		require.NoError(t, err)
		assert.Equal(t, `"fast"`, string(reply.Body))
		select {
		case err := <-slow:
			t.Fatalf("the held call finished first: %v", err)
		default:
		}
		held.open()
		require.NoError(t, <-slow)
	})

	t.Run("many callers, random delays", func(t *testing.T) {
		const goroutines, calls = 32, 20
		var wg sync.WaitGroup
		var bad atomic.Int64
		for g := range goroutines {
			wg.Go(func() {
				for i := range calls {
					q := fmt.Sprintf("/slow/%d", (g*7+i*13)%5)
					reply, err := c.Call(ctxTimeout(t, 10*time.Second), q, nil)
					if err != nil || string(reply.Body) != q {
						t.Errorf("call %s: body %q, err %v", q, reply.Body, err)
						bad.Add(1)
					}
				}
			})
		}
		wg.Wait()
		assert.Zero(t, bad.Load())
	})
	assert.Equal(t, 1, srv.Accepted())
}

// within runs call, and fails the test if it has not returned well after
// the deadline it was given: a call that missed its deadline, held by a
// server until the test ends, would otherwise hang the test.
func within(t *testing.T, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(gatewaytest.Timeout):
		t.Fatal("the call did not return at its deadline")
		return nil
	}
}

// TestTimeoutKeepsConnection checks a call whose deadline passes while the
// server holds it reports ec 7 and leaves the connection usable: the late
// reply is discarded and the next call on the same connection gets its
// own reply.
func TestTimeoutKeepsConnection(t *testing.T) {
	var log logBuffer
	late, cancelled := newHold("/late"), newHold("/cancelled")
	srv := repetest.Start(t, late.wrap(cancelled.wrap(route)), repetest.Config{})
	defer late.open() // before the server's cleanup waits for its handlers
	defer cancelled.open()
	c := dial(t, srv.Addr, &Config{Conns: 1, Logger: log.logger()})

	// The server holds the call until after it returns: it can only have
	// returned at its deadline.
	err := within(t, func() error {
		_, err := c.Call(ctxTimeout(t, 500*time.Millisecond), "/late", nil)
		return err
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, repe.Timeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var ce *Error
	require.ErrorAs(t, err, &ce)
	assert.False(t, ce.Remote)
	assert.Equal(t, uint64(1), late.next(t), "the request was sent whole")

	// In order: this reply comes after the late one, which must not be
	// taken for it.
	late.open()
	reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", []byte(`"next"`))
	require.NoError(t, err)
	assert.Equal(t, `"next"`, string(reply.Body))
	assert.Contains(t, log.String(), discarded+" remote="+srv.Addr+" id=1 ec=0", "the late reply was read and dropped")
	assert.Equal(t, 1, srv.Accepted(), "the connection was kept")

	t.Run("cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-cancelled.arrived
			cancel()
		}()
		err := within(t, func() error {
			_, err := c.Call(ctx, "/cancelled", nil)
			return err
		})
		assert.ErrorIs(t, err, repe.Timeout)
		assert.ErrorIs(t, err, context.Canceled)
		cancelled.open()
		reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", []byte(`"after"`))
		require.NoError(t, err)
		assert.Equal(t, `"after"`, string(reply.Body))
	})

	t.Run("deadline already passed", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := c.Call(ctx, "/echo", nil)
		assert.ErrorIs(t, err, repe.Timeout)
		reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", []byte(`1`))
		require.NoError(t, err)
		assert.Equal(t, `1`, string(reply.Body))
	})
	assert.Equal(t, 1, srv.Accepted(), "one connection throughout")
}

// TestWriteDeadline sends to a server that reads nothing: the write stops
// at the call's deadline with ec 7, and the connection, left with half a
// frame, is replaced by the next call.
func TestWriteDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn // never read
	)
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, nc := range conns {
			_ = nc.Close()
		}
	})
	accepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	c := dial(t, ln.Addr().String(), &Config{Conns: 1})

	// Far more than the socket buffers of a reader that never reads hold,
	// with time to encode it (slow under the race detector) and start
	// writing.
	err = within(t, func() error {
		_, err := c.Call(ctxTimeout(t, 5*time.Second), "/big", make([]byte, 16<<20))
		return err
	})
	assert.ErrorIs(t, err, repe.Timeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.True(t, c.slots[0].conn.Load().dead.Load(), "a partly written frame closes the connection")

	// The server never answers: the call ends when the test sees the new
	// connection it dialled, rather than at a deadline that would have to
	// leave time for dialling.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for deadline := time.Now().Add(gatewaytest.Timeout); accepted() < 2 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err = within(t, func() error {
		_, err := c.Call(ctx, "/small", nil)
		return err
	})
	assert.ErrorIs(t, err, repe.Timeout)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 2, accepted(), "the second call went out on a new connection")
}

// TestConnectionClosedMidCall checks every call in flight fails with ec 9
// when the server drops the connection, and that the next call dials again.
func TestConnectionClosedMidCall(t *testing.T) {
	held := newHold("/wait")
	srv := repetest.Start(t, held.wrap(route), repetest.Config{Concurrent: true})
	defer held.open() // before the server's cleanup waits for its handlers
	c := dial(t, srv.Addr, &Config{Conns: 1})

	const waiting = 5
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/wait", nil)
			errs <- err
		}()
	}
	for range waiting {
		held.next(t) // the calls have reached the server
	}
	_, err := c.Call(ctxTimeout(t, 5*time.Second), "/drop", nil)
	assert.ErrorIs(t, err, repe.ConnectionFailure)
	for range waiting {
		err := <-errs
		assert.ErrorIs(t, err, repe.ConnectionFailure)
		var ce *Error
		if assert.ErrorAs(t, err, &ce) {
			assert.False(t, ce.Remote)
			assert.Contains(t, ce.Err.Message, "server closed the connection")
		}
	}

	reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", []byte(`"again"`))
	require.NoError(t, err)
	assert.Equal(t, `"again"`, string(reply.Body))
	assert.Equal(t, 2, srv.Accepted(), "the pool dialled again")
}

// TestRedialAfterIdleClose checks a connection the server closed while
// idle is replaced by the next call.
func TestRedialAfterIdleClose(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	srv.CloseConns()
	require.Eventually(t, func() bool { return c.slots[0].conn.Load().dead.Load() },
		gatewaytest.Timeout, 5*time.Millisecond, "the reader sees the close")
	reply, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/echo", []byte(`2`))
	require.NoError(t, err)
	assert.Equal(t, `2`, string(reply.Body))
	assert.Equal(t, 2, srv.Accepted())
}

// TestUnknownIDDiscarded checks a reply whose id matches no call is skipped.
func TestUnknownIDDiscarded(t *testing.T) {
	h := func(dst []byte, req repe.Message) ([]byte, error) {
		dst = repe.AppendResponse(dst, req.ID()+1000, repe.OK, repe.BodyUTF8, []byte("stray"))
		dst = repe.AppendResponse(dst, 0, repe.ParseError, repe.BodyUTF8, []byte("Failed to parse request"))
		return repe.AppendResponse(dst, req.ID(), repe.OK, repe.BodyUTF8, []byte("mine")), nil
	}
	srv := repetest.Start(t, h, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	for range 3 {
		reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/x", nil)
		require.NoError(t, err)
		assert.Equal(t, "mine", string(reply.Body))
	}
	assert.Equal(t, 1, srv.Accepted())
}

// TestBadReplies checks replies the client cannot trust close the
// connection and fail the call with ec 9, without allocating what a header
// claims.
func TestBadReplies(t *testing.T) {
	header := func(dst []byte, id uint64, length uint64) []byte {
		dst = repe.AppendHeader(dst, repe.Header{ID: id}, 0, int(length-repe.HeaderSize))
		return dst
	}
	tests := []struct {
		name    string
		maxSize uint64
		reply   func(dst []byte, id uint64) []byte
		msg     string
	}{
		{"over the default limit", 0, func(dst []byte, id uint64) []byte { return header(dst, id, 1<<40) },
			"exceeds maximum allowed size: length 1099511627776, limit 67108864"},
		{"over a configured limit", 1 << 20, func(dst []byte, id uint64) []byte { return header(dst, id, 1<<30) },
			"exceeds maximum allowed size: length 1073741824, limit 1048576"},
		{"bad magic", 0, func(dst []byte, id uint64) []byte {
			dst = repe.AppendResponse(dst, id, repe.OK, repe.BodyRaw, nil)
			dst[repe.OffsetSpec] = 0
			return dst
		}, "magic number mismatch"},
		{"bad version", 0, func(dst []byte, id uint64) []byte {
			dst = repe.AppendResponse(dst, id, repe.OK, repe.BodyRaw, nil)
			dst[repe.OffsetVersion] = 2
			return dst
		}, "version mismatch"},
		{"length mismatch", 0, func(dst []byte, id uint64) []byte {
			dst = repe.AppendResponse(dst, id, repe.OK, repe.BodyRaw, []byte("abcd"))
			dst[repe.OffsetBodyLength] = 3
			return dst
		}, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := func(dst []byte, req repe.Message) ([]byte, error) { return tt.reply(dst, req.ID()), nil }
			srv := repetest.Start(t, h, repetest.Config{})
			c := dial(t, srv.Addr, &Config{Conns: 1, MaxMessageSize: tt.maxSize})

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Call(ctxTimeout(t, 5*time.Second), "/x", nil)
			runtime.ReadMemStats(&after)
			assert.ErrorIs(t, err, repe.ConnectionFailure)
			assert.ErrorContains(t, err, tt.msg)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "bytes allocated by the call")
		})
	}
}

func TestRequestTooLarge(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{MaxMessageSize: 1024})
	reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", make([]byte, 1024-repe.HeaderSize-5))
	require.NoError(t, err)
	assert.Len(t, reply.Body, 1024-repe.HeaderSize-5)

	_, err = c.Call(ctxTimeout(t, 5*time.Second), "/echo", make([]byte, 1024))
	assert.ErrorIs(t, err, repe.SendError)
	assert.ErrorContains(t, err, "request of 1077 bytes exceeds the maximum message size of 1024")
	err = c.Notify(ctxTimeout(t, 5*time.Second), "/echo", make([]byte, 1024))
	assert.ErrorIs(t, err, repe.SendError)
}

func TestNotify(t *testing.T) {
	got := make(chan string, 1)
	h := func(dst []byte, req repe.Message) ([]byte, error) {
		if req.Notify() {
			got <- fmt.Sprintf("%s %s id=%d", req.Query(), req.Body(), req.ID())
		}
		return route(dst, req)
	}
	srv := repetest.Start(t, h, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	require.NoError(t, c.Notify(ctxTimeout(t, 5*time.Second), "/log", []byte(`"hello"`)))
	select {
	case s := <-got:
		assert.Equal(t, `/log "hello" id=1`, s)
	case <-time.After(5 * time.Second):
		t.Fatal("the server got no notify")
	}
	require.NoError(t, c.Notify(ctxTimeout(t, 5*time.Second), "/log", nil, WithID(9)))
	assert.Equal(t, `/log  id=9`, <-got)

	reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/inspect", nil)
	require.NoError(t, err)
	assert.Equal(t, "id=2 qf=1 bf=0 body=", string(reply.Body), "ids go on after notifies")
}

func TestWithIDInUse(t *testing.T) {
	first, second := newHold("/first"), newHold("/second")
	srv := repetest.Start(t, first.wrap(second.wrap(route)), repetest.Config{Concurrent: true})
	defer first.open() // before the server's cleanup waits for its handlers
	defer second.open()
	c := dial(t, srv.Addr, &Config{Conns: 1})
	held := make(chan error, 1)
	go func() {
		_, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/first", nil, WithID(5))
		held <- err
	}()
	assert.Equal(t, uint64(5), first.next(t))
	_, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", nil, WithID(5))
	assert.ErrorIs(t, err, repe.SendError)
	assert.ErrorContains(t, err, "id 5 is in flight")
	first.open()
	require.NoError(t, <-held)

	// Ids the client picks skip one held by WithID.
	reply, err := c.Call(ctxTimeout(t, 5*time.Second), "/inspect", nil)
	require.NoError(t, err)
	assert.Equal(t, "id=1 qf=1 bf=0 body=", string(reply.Body))
	go func() {
		_, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/second", nil, WithID(2))
		held <- err
	}()
	assert.Equal(t, uint64(2), second.next(t))
	reply, err = c.Call(ctxTimeout(t, 5*time.Second), "/inspect", nil)
	require.NoError(t, err)
	assert.Equal(t, "id=3 qf=1 bf=0 body=", string(reply.Body))
	second.open()
	require.NoError(t, <-held)
}

func TestDialFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = Dial(ctxTimeout(t, 5*time.Second), addr, nil)
	assert.ErrorIs(t, err, repe.ConnectionFailure)
	assert.ErrorContains(t, err, "connection refused")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Dial(ctx, addr, nil)
	assert.ErrorIs(t, err, repe.Timeout)
	assert.ErrorIs(t, err, context.Canceled)

	_, err = Dial(context.Background(), addr, &Config{Conns: -1})
	assert.ErrorContains(t, err, "Conns is negative")
	_, err = Dial(context.Background(), addr, &Config{MaxMessageSize: 47})
	assert.ErrorContains(t, err, "smaller than a REPE header")
	_, err = Dial(context.Background(), addr, &Config{DialTimeout: -1})
	assert.ErrorContains(t, err, "DialTimeout is negative")
}

// TestServerDown checks calls fail with ec 9 while the server is gone and
// succeed again once it is back on the same address.
func TestServerDown(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 2})
	srv.Close()
	for range 4 {
		_, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", nil)
		assert.ErrorIs(t, err, repe.ConnectionFailure)
	}
}

func TestClose(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	pending := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), "/slow/2000", nil)
		pending <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.Close())
	err := <-pending
	assert.ErrorIs(t, err, repe.ConnectionFailure)
	assert.ErrorIs(t, err, ErrClosed)

	_, err = c.Call(context.Background(), "/echo", nil)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, c.Notify(context.Background(), "/echo", nil), ErrClosed)
	require.NoError(t, c.Close(), "Close twice")
}

func TestPoolSpreadsCalls(t *testing.T) {
	srv := repetest.Start(t, route, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 3})
	require.Eventually(t, func() bool { return srv.Accepted() == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, 1, srv.Accepted(), "Dial opens one connection; calls open the others")
	for range 9 {
		_, err := c.Call(ctxTimeout(t, 5*time.Second), "/echo", nil)
		require.NoError(t, err)
	}
	assert.Equal(t, 3, srv.Accepted())
}

// TestCallAllocs holds a call to its budget: one allocation, the reply body.
func TestCallAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	srv := repetest.Start(t, repetest.Echo, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	body := []byte(`{"x":1,"y":2}`)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Call(ctx, "/echo", body); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 1.0)
}

func BenchmarkCall(b *testing.B) {
	srv := repetest.Start(b, repetest.Echo, repetest.Config{})
	c := dial(b, srv.Addr, &Config{Conns: 1})
	body := []byte(`{"x":1,"y":2}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, "/echo", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallParallel(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			srv := repetest.Start(b, repetest.Echo, repetest.Config{})
			c := dial(b, srv.Addr, &Config{Conns: conns})
			body := []byte(`{"x":1,"y":2}`)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer() // RunParallel, unlike b.Loop, does not leave the setup out
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Call(ctx, "/echo", body); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestResendUnanswered: with Config.ResendUnanswered, calls whose
// connection the server ended cleanly before their replies are sent again
// on a new connection, Idempotent or not, and succeed there.
func TestResendUnanswered(t *testing.T) {
	held := newHold("/wait")
	srv := repetest.Start(t, held.wrap(route), repetest.Config{Concurrent: true})
	defer held.open() // before the server's cleanup waits for its handlers
	c := dial(t, srv.Addr, &Config{Conns: 1, ResendUnanswered: true})

	const waiting = 3
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, err := c.Call(ctxTimeout(t, gatewaytest.Timeout), "/wait", nil)
			errs <- err
		}()
	}
	for range waiting {
		held.next(t)
	}
	srv.CloseConns() // a clean end: the server had read every request
	for range waiting {
		held.next(t) // each sent again, on a new connection
	}
	held.open()
	for range waiting {
		assert.NoError(t, <-errs)
	}
	assert.Equal(t, 2, srv.Accepted())
}
