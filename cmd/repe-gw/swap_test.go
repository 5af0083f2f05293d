package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// callLoad keeps calls in flight through c from many goroutines, so that each
// of c's connections carries several at once, and counts the outcomes.
type callLoad struct {
	ok, failed atomic.Int64
	others     atomic.Int64 // failures for another reason than the connection
	firstErr   atomic.Pointer[error]
	stop       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

// logf logs what the load's calls came to, as "<prefix>, <name>: ...".
func (l *callLoad) logf(t *testing.T, prefix, name string) {
	t.Helper()
	t.Logf("%s, %s: %d succeeded, %d failed; first failure: %v", prefix, name, l.ok.Load(), l.failed.Load(), l.first())
}

// first returns the first failure, or nil.
func (l *callLoad) first() error {
	if p := l.firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

func startLoad(c *client.Client, callers int, opts ...client.CallOption) *callLoad {
	l := &callLoad{stop: make(chan struct{})}
	for range callers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
				_, err := c.Call(ctx, "/calculator/value", nil, opts...)
				cancel()
				if err != nil {
					l.failed.Add(1)
					if !errors.Is(err, repe.ConnectionFailure) {
						l.others.Add(1)
					}
					l.firstErr.CompareAndSwap(nil, &err)
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

// waitFor waits until n more calls have succeeded.
func (l *callLoad) waitFor(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	require.Eventually(t, func() bool { return l.ok.Load() >= want }, gatewaytest.Timeout, time.Millisecond,
		"%d calls succeeded, %d failed", l.ok.Load(), l.failed.Load())
}

func (l *callLoad) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// rawPipeline is a client that does not reconnect: one connection, on
// which it writes requests as fast as it can while it reads the replies,
// until the server closes it. It returns how many requests it wrote whole,
// how many replies came, and how the connection ended.
func rawPipeline(t *testing.T, addr string, started chan<- struct{}) (written, answered int, end error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, gatewaytest.Timeout)
	require.NoError(t, err)
	defer nc.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := gatewaytest.Request(1, "/calculator/value", "")
		for {
			if _, err := nc.Write(req); err != nil {
				return
			}
			written++
			if written == 1 {
				close(started)
			}
		}
	}()
	hdr := make([]byte, repe.HeaderSize)
	for {
		if _, end = io.ReadFull(nc, hdr); end != nil {
			break
		}
		rest := repe.Message(hdr).Length() - repe.HeaderSize
		if _, end = io.CopyN(io.Discard, nc, int64(rest)); end != nil {
			break
		}
		answered++
	}
	nc.Close()
	<-done
	return written, answered, end
}

// migrateReq is the sysctl that decides what becomes of the connections
// in a SO_REUSEPORT listener's accept queue when it closes: reset (0), or
// handed to another listener of the group (1).
const migrateReq = "/proc/sys/net/ipv4/tcp_migrate_req"

// TestReusePortSwap is the upgrade on one host: a second gateway starts
// on the first one's port with --reuse-port, the first gets SIGTERM and
// drains, and pipelined clients go on. Reconnecting clients lose no
// request: the Go client, Idempotent calls or not, and repe-bench
// --reconnect. It runs with each setting of tcp_migrate_req when it may
// change it, restoring it after, and reports what every client saw,
// including one that does not reconnect.
func TestReusePortSwap(t *testing.T) {
	bin := buildGateway(t)
	bench := filepath.Join(t.TempDir(), "repe-bench")
	out, err := exec.Command("go", "build", "-o", bench, "../repe-bench").CombinedOutput()
	require.NoError(t, err, "%s", out)
	calc := gatewaytest.Calculator(t)
	was, err := os.ReadFile(migrateReq)
	if err != nil {
		t.Logf("%s: %v: the swap runs once, as the system is", migrateReq, err)
		swap(t, bin, bench, calc)
		return
	}
	t.Cleanup(func() { _ = os.WriteFile(migrateReq, was, 0o644) })
	for _, v := range []string{"0", "1"} {
		t.Run("tcp_migrate_req="+v, func(t *testing.T) {
			if err := os.WriteFile(migrateReq, []byte(v), 0o644); err != nil {
				t.Skipf("cannot set %s: %v", migrateReq, err)
			}
			swap(t, bin, bench, calc)
		})
	}
}

func swap(t *testing.T, bin, bench, calc string) {
	addr := freeAddr(t)
	args := []string{"--plugin", calc, "--addr", addr, "--reuse-port"}
	admin := freeAddr(t)
	old := spawn(t, bin, nil, addr, append(args, "--admin", admin)...)
	old.waitLog(t, `msg="admin listening"`)

	dial := func() *client.Client {
		c, err := client.Dial(context.Background(), addr, &client.Config{Conns: 4, ResendUnanswered: true})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	// 16 callers on 4 connections: 4 calls in flight on each.
	reads := startLoad(dial(), 16, client.Idempotent())
	defer reads.end()
	calls := startLoad(dial(), 16)
	defer calls.end()
	reads.waitFor(t, 1000)
	calls.waitFor(t, 1000)

	// repe-bench --reconnect, pipelined, until it is interrupted.
	var benchOut bytes.Buffer
	b := exec.Command(bench, "--addr", addr, "--query", "/calculator/value", "-c", "4", "-P", "8",
		"-z", "1h", "--reconnect", "--format", "json")
	b.Stdout = &benchOut
	require.NoError(t, b.Start())
	benched := make(chan error, 1)
	go func() { benched <- b.Wait() }()
	// Every client on the old gateway before the new one listens: the two
	// Go clients' 4 connections each, and repe-bench's 4.
	require.Eventually(t, func() bool {
		return metricValue(t, scrapeMetrics(t, admin), "repe_gw_connections_open", nil) >= 12
	}, gatewaytest.Timeout, time.Millisecond, "the clients did not all connect")

	type rawResult struct {
		written, answered int
		end               error
	}
	raw := make(chan rawResult, 1)
	started := make(chan struct{})
	go func() {
		w, a, end := rawPipeline(t, addr, started)
		raw <- rawResult{w, a, end}
	}()
	<-started

	next := spawn(t, bin, nil, addr, args...)
	next.waitLog(t, "msg=listening")
	t.Cleanup(func() { _ = next.cmd.Process.Signal(syscall.SIGTERM); next.waitExit(t) })
	old.signal(t, syscall.SIGTERM, "shutting down")
	require.Equal(t, 0, old.waitExit(t))
	// Served by the new gateway alone from now on.
	reads.waitFor(t, 1000)
	calls.waitFor(t, 1000)

	var r rawResult
	select {
	case r = <-raw:
	case <-time.After(gatewaytest.Timeout):
		t.Fatal("the old gateway did not close the raw client's connection")
	}
	reads.end()
	calls.end()
	require.NoError(t, b.Process.Signal(os.Interrupt))
	select {
	case err := <-benched:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			require.NoError(t, err)
		}
	case <-time.After(gatewaytest.Timeout):
		t.Fatal("repe-bench did not stop when interrupted")
	}
	var sum struct {
		Requests, OK, Errors, Unfinished, Reconnects, Resent int64
		ClientErrors                                         map[string]int64 `json:"client_errors"`
	}
	require.NoError(t, json.Unmarshal(benchOut.Bytes(), &sum), "%s", benchOut.String())
	t.Logf("repe-bench --reconnect: %d requests, %d ok, %d failed %v, %d unanswered when interrupted, %d connections opened again, %d requests sent again",
		sum.Requests, sum.OK, sum.Errors, sum.ClientErrors, sum.Unfinished, sum.Reconnects, sum.Resent)
	assert.Positive(t, sum.Reconnects, "repe-bench went on over new connections")
	assert.Zero(t, sum.Errors, "repe-bench --reconnect lost no request")
	for _, l := range []struct {
		name string
		*callLoad
	}{{"Idempotent calls", reads}, {"other calls", calls}} {
		l.logf(t, "reconnecting Go client", l.name)
		assert.Zero(t, l.others.Load(), "%s: failures other than a connection that ended: first %v", l.name, l.first())
	}
	assert.Zero(t, reads.failed.Load(), "Idempotent calls through the swap")
	assert.Zero(t, calls.failed.Load(), "other calls through the swap: those the old gateway did not answer did not run, and are sent again")
	t.Logf("a client that does not reconnect: wrote %d requests whole, got %d replies, then its connection ended (%v): %d unanswered, which did not run",
		r.written, r.answered, r.end, r.written-r.answered)
	assert.Positive(t, r.answered)
	assert.ErrorIs(t, r.end, io.EOF, "the old gateway ended the connection cleanly")
}
