//go:build linux

package isolate

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

func TestStart(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	assert.Equal(t, "crashplugin", p.Name())
	assert.Equal(t, "2.0.0", p.Version())
	assert.Equal(t, "/crash", p.Root())
	assert.Equal(t, crashSO, p.File())
	st := p.Stats()
	assert.Equal(t, StateServing, st.State)
	assert.NotZero(t, st.PID)
	assert.NotEqual(t, unix.Getpid(), st.PID)
	assert.Equal(t, Stats{State: StateServing, PID: st.PID}, st)
}

func TestCallBatch(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	var batch []byte
	batch = append(batch, request(1, "/crash/ping", "")...)
	batch = append(batch, notify(2, "/crash/ping")...)
	batch = append(batch, request(3, "/crash/echo", `{"a":[1,2,3]}`)...)
	batch = append(batch, request(4, "/crash/other", "")...)
	prefix := []byte("kept")
	out, err := p.Call(prefix, batch, time.Time{})
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(out, prefix))
	got := frames(t, out[len(prefix):])
	require.Len(t, got, 3, "no reply to the notify")
	assert.Equal(t, uint64(1), got[0].ID())
	assert.Equal(t, repe.OK, got[0].EC())
	assert.Equal(t, uint64(3), got[1].ID())
	assert.Equal(t, `{"a":[1,2,3]}`, string(got[1].Body()))
	assert.Equal(t, uint64(4), got[2].ID())
	assert.Equal(t, repe.MethodNotFound, got[2].EC(), "the plugin's own errors pass through")

	out, err = p.Call(nil, nil, time.Time{})
	assert.NoError(t, err)
	assert.Empty(t, out)
	out, err = p.Call([]byte("x"), batch[:len(batch)-1], time.Time{})
	assert.ErrorIs(t, err, ErrBatch)
	assert.Equal(t, "x", string(out))
}

// TestCallLarge sends a batch larger than the socket's buffers both ways,
// which needs writing and reading to interleave.
func TestCallLarge(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	body := `"` + string(bytes.Repeat([]byte("x"), 256<<10)) + `"`
	var batch []byte
	for id := range uint64(8) {
		batch = append(batch, request(id, "/crash/echo", body)...)
	}
	out, err := p.Call(nil, batch, deadline(10*time.Second))
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 8)
	for i, m := range got {
		assert.Equal(t, uint64(i), m.ID())
		assert.Equal(t, body, string(m.Body()))
	}
}

func TestCallConcurrent(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var dst []byte
			for i := range 100 {
				id := uint64(g*1000 + i)
				body := strconv.FormatUint(id, 10)
				batch := append(request(id, "/crash/echo", body), request(id+1<<32, "/crash/ping", "")...)
				out, err := p.Call(dst[:0], batch, deadline(10*time.Second))
				if !assert.NoError(t, err) {
					return
				}
				got := frames(t, out)
				if !assert.Len(t, got, 2) || !assert.Equal(t, body, string(got[0].Body())) ||
					!assert.Equal(t, id+1<<32, got[1].ID()) {
					return
				}
				dst = out
			}
		})
	}
	wg.Wait()
}

// failCase is one way a plugin takes its worker down.
type failCase struct {
	name     string
	query    string
	deadline time.Duration // of the failing call; 0 for none
	limit    uint64        // Config.MemoryLimit
	code     repe.ErrorCode
	text     string // in the failing request's error
	log      string // the supervisor's record
}

var failureCases = []failCase{
	{name: "segfault", query: "/crash/segv", code: repe.ConnectionFailure,
		text: "died (signal SIGSEGV) while running this request", log: "plugin worker died"},
	{name: "abort", query: "/crash/abort", code: repe.ConnectionFailure,
		text: "died (signal SIGABRT) while running this request", log: "plugin worker died"},
	{name: "exit", query: "/crash/exit", code: repe.ConnectionFailure,
		text: "died (exited with status 3) while running this request", log: "plugin worker died"},
	{name: "hang", query: "/crash/hang", deadline: 200 * time.Millisecond, code: repe.Timeout,
		text: `timeout: plugin "crashplugin" did not answer within 200ms`, log: "plugin worker killed: a call passed its deadline"},
	// The plugin aborts when malloc fails, unless the Go runtime of its
	// worker runs out first: the status may be either.
	{name: "hog", query: "/crash/hog", limit: 256 << 20, code: repe.ConnectionFailure,
		text: "while running this request", log: "plugin worker died"},
}

// TestFailures makes the plugin fail in each way in the middle of a batch
// and checks, for each: the replies before the failure stand, the failing
// request gets the documented error and the ones after it send_error; the
// gateway survives; clients of other plugins, isolated and in-process, see
// no error throughout; and the plugin serves again after its restart, whose
// time is logged.
func TestFailures(t *testing.T) {
	other, _ := startPlugin(t, calculatorSO, nil)
	inProcess, err := pluginhost.Open(calculatorSO)
	require.NoError(t, err)
	t.Cleanup(func() { inProcess.Shutdown(context.Background()) })

	for _, f := range failureCases {
		t.Run(f.name, func(t *testing.T) {
			p, logs := startPlugin(t, crashSO, func(c *Config) { c.MemoryLimit = f.limit })
			firstPID := p.Stats().PID
			bystanders := watchOthers(t, other, inProcess)

			var batch []byte
			batch = append(batch, request(1, "/crash/ping", "")...)
			batch = append(batch, request(2, f.query, "")...)
			batch = append(batch, notify(3, "/crash/ping")...)
			batch = append(batch, request(4, "/crash/echo", "4")...)
			var dl time.Time
			if f.deadline != 0 {
				dl = deadline(f.deadline)
			}
			start := time.Now()
			out, err := p.Call(nil, batch, dl)
			failed := time.Now()
			require.NoError(t, err)
			got := frames(t, out)
			first := got
			require.Len(t, got, 3)
			assert.Equal(t, uint64(1), got[0].ID())
			assert.Equal(t, repe.OK, got[0].EC(), "a reply received before the failure stands")
			assert.Equal(t, uint64(2), got[1].ID())
			assert.Equal(t, f.code, got[1].EC())
			assert.Contains(t, string(got[1].Body()), f.text)
			assert.Equal(t, uint64(4), got[2].ID())
			assert.Equal(t, repe.SendError, got[2].EC())
			assert.Contains(t, string(got[2].Body()), "did not run and is safe to retry")
			if f.deadline != 0 {
				// The plugin never answers: Call returns on its deadline.
				assert.WithinDuration(t, dl, failed, time.Second)
			}

			// The next call waits for the restart.
			out, err = p.Call(nil, request(5, "/crash/pid", ""), deadline(10*time.Second))
			recovered := time.Now()
			require.NoError(t, err)
			got = frames(t, out)
			require.Len(t, got, 1)
			require.Equal(t, repe.OK, got[0].EC(), string(got[0].Body()))
			pid, _ := strconv.Atoi(string(got[0].Body()))
			assert.NotEqual(t, firstPID, pid, "a new worker")
			t.Logf("%s: the failing call returned %v after it began; the plugin served again %v later",
				f.name, failed.Sub(start).Round(time.Microsecond), recovered.Sub(failed).Round(time.Microsecond))

			st := p.Stats()
			assert.Equal(t, StateServing, st.State)
			assert.Equal(t, uint64(1), st.Restarts)
			assert.Equal(t, uint64(1), st.Crashes+st.Timeouts)
			recs := logs.find(f.log)
			if assert.Len(t, recs, 1) {
				assert.Equal(t, "crashplugin", recs[0].attrs["plugin"])
				if f.code == repe.ConnectionFailure {
					assert.Contains(t, string(first[1].Body()), "died ("+recs[0].attrs["status"]+")")
				}
			}
			assert.Len(t, logs.find("plugin worker restarted"), 1)
			assert.Zero(t, bystanders(), "calls to the other plugins failed")
		})
	}
}

// watchOthers calls the calculator, isolated and in-process, until the test
// ends or the returned function is called, which returns how many calls
// failed.
func watchOthers(t *testing.T, isolated *Plugin, inProcess *pluginhost.Plugin) func() int64 {
	var bad, calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	req := request(9, "/calculator/value", "")
	wg.Go(func() {
		var dst []byte
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := isolated.Call(dst[:0], req, deadline(5*time.Second))
			if err != nil || len(out) < repe.HeaderSize || repe.Message(out).EC() != repe.OK {
				bad.Add(1)
			}
			out2, err := inProcess.Call(out[:0], req)
			if err != nil || len(out2) < repe.HeaderSize || repe.Message(out2).EC() != repe.OK {
				bad.Add(1)
			}
			dst = out2
			calls.Add(1)
			time.Sleep(time.Millisecond)
		}
	})
	var once sync.Once
	finish := func() int64 {
		once.Do(func() {
			close(stop)
			wg.Wait()
			t.Logf("meanwhile %d pairs of calls to the calculator, %d failed", calls.Load(), bad.Load())
		})
		return bad.Load()
	}
	t.Cleanup(func() { finish() })
	return finish
}

// TestDeadlineSlowCall: a call that would take 2 s returns on its deadline
// of 100 ms, well before the plugin would have answered.
func TestDeadlineSlowCall(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	start := time.Now()
	dl := start.Add(100 * time.Millisecond)
	out, err := p.Call(nil, request(1, "/crash/nap", ""), dl)
	took := time.Since(start)
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.Timeout, got[0].EC())
	assert.Less(t, took, 2*time.Second)
	t.Logf("returned %v after the deadline", time.Since(dl).Round(time.Microsecond))
}

// TestWaitForRestart: during a restart, a call waits for the new worker
// until its deadline, and is refused, unsent, past it.
func TestWaitForRestart(t *testing.T) {
	p, _ := startPlugin(t, crashSO, func(c *Config) { c.BackoffMin = time.Second })
	_, err := p.Call(nil, request(1, "/crash/segv", ""), time.Time{})
	require.NoError(t, err)

	out, err := p.Call(nil, request(2, "/crash/ping", ""), deadline(50*time.Millisecond))
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.SendError, got[0].EC())
	assert.Contains(t, string(got[0].Body()), "is restarting and was not ready")
	assert.Equal(t, StateRestarting, p.State())

	out, err = p.Call(nil, request(3, "/crash/ping", ""), deadline(10*time.Second))
	require.NoError(t, err)
	got = frames(t, out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.OK, got[0].EC())
}

// TestIdleDeath: a worker that dies between batches costs the next batch a
// wait for the restart, not an error.
func TestIdleDeath(t *testing.T) {
	p, _ := startPlugin(t, crashSO, nil)
	pid := p.Stats().PID
	require.NoError(t, unix.Kill(pid, unix.SIGKILL))
	// Dead, not dying: a batch sent to a worker in its last moments may
	// have reached it, and is answered connection_failure. (A zombie
	// leader's other threads may still hold its socket.)
	require.Eventually(t, func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return err != nil
	}, 10*time.Second, time.Millisecond)
	out, err := p.Call(nil, request(1, "/crash/ping", ""), deadline(10*time.Second))
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.OK, got[0].EC(), string(got[0].Body()))
	assert.NotEqual(t, pid, p.Stats().PID)
	assert.Equal(t, uint64(1), p.Stats().Crashes)
}

// TestCircuit: MaxFailures failures within the window open the circuit:
// calls fail fast, and no worker starts again.
func TestCircuit(t *testing.T) {
	p, logs := startPlugin(t, crashSO, func(c *Config) {
		c.MaxFailures = 3
		c.BackoffMin = 10 * time.Millisecond
	})
	for i := range 3 {
		out, err := p.Call(nil, request(uint64(i), "/crash/abort", ""), deadline(10*time.Second))
		require.NoError(t, err)
		require.Equal(t, repe.ConnectionFailure, frames(t, out)[0].EC())
	}
	// The supervisor sees the third death as the call does, not before.
	require.Eventually(t, func() bool { return p.State() == StateFailed }, 10*time.Second, time.Millisecond)
	start := time.Now()
	out, err := p.Call(nil, append(request(9, "/crash/ping", ""), notify(10, "/crash/ping")...), deadline(10*time.Second))
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 1)
	assert.Equal(t, repe.SendError, got[0].EC())
	assert.Equal(t, `send_error: plugin "crashplugin" has failed (3 worker failures within 1m0s) and is not restarted; the request was not sent`,
		string(got[0].Body()))
	assert.Less(t, time.Since(start), time.Second, "fails fast, well before its deadline")
	if recs := logs.find("plugin failed: its circuit is open; it is not restarted, and its calls fail fast"); assert.Len(t, recs, 1) {
		assert.Equal(t, "3", recs[0].attrs["failures"])
		assert.Equal(t, "crashplugin", recs[0].attrs["plugin"])
	}
	time.Sleep(100 * time.Millisecond) // ten backoffs
	assert.Equal(t, Stats{State: StateFailed, Restarts: 2, Crashes: 3}, p.Stats())
}

// TestProtocol: a worker that answers with another request's id is killed,
// its caller gets connection_failure, and the next worker serves.
func TestProtocol(t *testing.T) {
	p, logs := startPlugin(t, crashSO, func(c *Config) {
		c.Env = append(c.Env, envRole+"=liar")
		c.BackoffMin = 10 * time.Millisecond
	})
	batch := append(request(1, "/crash/ping", ""), request(2, "/crash/ping", "")...)
	out, err := p.Call(nil, batch, deadline(10*time.Second))
	require.NoError(t, err)
	got := frames(t, out)
	require.Len(t, got, 2)
	assert.Equal(t, repe.OK, got[0].EC())
	assert.Equal(t, repe.ConnectionFailure, got[1].EC())
	assert.Contains(t, string(got[1].Body()), "was killed for breaking the worker protocol while running this request")
	assert.Eventually(t, func() bool { return len(logs.find("plugin worker killed: it broke the worker protocol")) == 1 }, 10*time.Second, 10*time.Millisecond)
	out, err = p.Call(nil, request(3, "/crash/ping", ""), deadline(10*time.Second))
	require.NoError(t, err)
	assert.Equal(t, repe.OK, frames(t, out)[0].EC())
}

// liar is a worker that answers its first request right and every other
// with the id plus one, for TestProtocol.
func liar(args []string) int {
	file := ""
	for i, a := range args {
		if a == "--plugin" && i+1 < len(args) {
			file = args[i+1]
		}
	}
	writeAll(fdSocket, appendHello(nil, hello{file: file, name: "crashplugin", version: "2.0.0", root: "/crash"}))
	in := make([]byte, 1<<16)
	have, calls := 0, 0
	for {
		k, err := unix.Read(fdSocket, in[have:])
		if k <= 0 || err != nil {
			return 0
		}
		have += k
		for have >= repe.HeaderSize && uint64(have) >= repe.Message(in).Length() {
			m := repe.Message(in)
			id := m.ID()
			if calls++; calls > 1 {
				id++
			}
			rec := appendRecordHeader(nil, kindReply, 0)
			rec = repe.AppendResponse(rec, id, repe.OK, repe.BodyJSON, nil)
			putRecordHeader(rec, kindReply)
			writeAll(fdSocket, rec)
			n := int(m.Length())
			have = copy(in, in[n:have])
		}
	}
}

// TestCallAllocs: a call to a serving plugin allocates nothing.
func TestCallAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p, _ := startPlugin(t, calculatorSO, nil)
	batch := calculatorBatch(32)
	dst := make([]byte, 0, 64<<10)
	allocs := testing.AllocsPerRun(100, func() {
		out, err := p.Call(dst[:0], batch, deadline(10*time.Second))
		if err != nil || len(out) == 0 {
			t.Fatal(out, err)
		}
	})
	assert.Zero(t, allocs)
}

// calculatorBatch is n pipelined reads of the calculator's value.
func calculatorBatch(n int) []byte {
	var batch []byte
	for id := range uint64(n) {
		batch = append(batch, request(id, "/calculator/value", "")...)
	}
	return batch
}

func TestWire(t *testing.T) {
	h := hello{file: "/p.so", name: "n", version: "", root: "/r"}
	rec := appendHello(nil, h)
	require.Equal(t, kindHello, binary.LittleEndian.Uint32(rec))
	require.Equal(t, uint32(len(rec)-recordHeaderSize), binary.LittleEndian.Uint32(rec[4:]))
	got, version, ok := parseHello(rec[recordHeaderSize:])
	assert.True(t, ok)
	assert.Equal(t, uint32(protocolVersion), version)
	assert.Equal(t, h, got)
	for n := range len(rec) - recordHeaderSize {
		if _, _, ok := parseHello(rec[recordHeaderSize : recordHeaderSize+n]); ok {
			t.Errorf("a hello cut to %d bytes parses", n)
		}
	}

	reply := repe.AppendResponse(nil, 7, repe.OK, repe.BodyJSON, []byte("1"))
	assert.Empty(t, checkReply(reply, 7))
	assert.NotEmpty(t, checkReply(reply, 8))
	assert.NotEmpty(t, checkReply(reply[:47], 7))
	assert.NotEmpty(t, checkReply(append(reply, 0), 7))
	bad := bytes.Clone(reply)
	bad[repe.OffsetSpec] = 0
	assert.NotEmpty(t, checkReply(bad, 7))
}
