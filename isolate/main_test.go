//go:build linux

package isolate

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// The test binary is also the workers' program, as repe-gw is the
// gateway's: testConfig runs it with envRole=worker and the argument
// workerArg, and TestMain hands such a run to ServeWorker. envRole=parent
// makes it a gateway that tests kill (orphan_test.go), envRole=liar a worker
// that breaks the protocol (call_test.go).
const (
	envRole   = "ISOLATE_TEST_ROLE"
	workerArg = "isolate-worker"
)

// Built once by TestMain.
var crashSO, calculatorSO string

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "worker":
		// The crash tests would leave a core file of the test binary each.
		unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
		os.Exit(ServeWorker(os.Args[2:]))
	case "parent":
		os.Exit(orphanParent())
	case "liar":
		os.Exit(liar(os.Args[2:]))
	}
	dir, err := os.MkdirTemp("", "isolate-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	crashSO, err = plugintest.BuildTo(dir, "testdata/crashplugin.c", "-Wpedantic", "-Werror")
	if err == nil {
		calculatorSO, err = plugintest.BuildTo(dir, plugintest.RepoPath("plugins/calculator/calculator.c"))
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else if code = m.Run(); code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines of isolate outlived the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// leakedGoroutines returns the stacks of the package's goroutines still
// running, after giving them a few seconds to end, as net/http's tests do.
func leakedGoroutines() string {
	var leaked []string
	for range 500 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "isolate.") && !strings.Contains(g, "isolate.TestMain") &&
				!strings.Contains(g, "isolate.leakedGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		time.Sleep(10 * time.Millisecond)
	}
	return strings.Join(leaked, "\n\n")
}

// testConfig runs file in a worker that is this test binary.
func testConfig(file string, logs *recorder) Config {
	return Config{
		File:       file,
		WorkerArgs: []string{workerArg},
		// Under -race, a process sleeps a second before it exits
		// (atexit_sleep_ms), and every test stops a worker or two.
		Env:    []string{envRole + "=worker", "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"},
		Logger: slog.New(logs),
	}
}

// startPlugin starts file with testConfig, changed by edit if not nil, and
// closes it at cleanup, failing the test if Close fails. On failure the
// test's log shows the plugin's.
func startPlugin(t testing.TB, file string, edit func(*Config)) (*Plugin, *recorder) {
	t.Helper()
	logs := newRecorder()
	cfg := testConfig(file, logs)
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("the plugin's log:\n%s", logs)
		}
	})
	return p, logs
}

// request encodes one request frame; a body is sent as JSON.
func request(id uint64, query, body string) []byte {
	return repe.AppendMessage(nil, repe.Header{ID: id, QueryFormat: repe.QueryJSONPointer, BodyFormat: repe.BodyJSON}, query, []byte(body))
}

// notify encodes a notify request.
func notify(id uint64, query string) []byte {
	return repe.AppendMessage(nil, repe.Header{ID: id, Notify: true, QueryFormat: repe.QueryJSONPointer}, query, nil)
}

// frames splits replies into frames, failing the test if they do not frame.
func frames(t testing.TB, b []byte) []repe.Message {
	t.Helper()
	var out []repe.Message
	for len(b) > 0 {
		m, err := repe.Parse(b)
		require.NoError(t, err)
		out = append(out, m)
		b = b[m.Length():]
	}
	return out
}

// deadline is a deadline d from now.
func deadline(d time.Duration) time.Time { return time.Now().Add(d) }

// recorder is a slog.Handler that keeps the records, for tests to search.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]logged
	attrs []slog.Attr
}

type logged struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), recs: new([]logged)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := logged{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	for _, a := range r.attrs {
		l.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	*r.recs = append(*r.recs, l)
	r.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clip(r.attrs), attrs...)
	return &c
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

// find returns the records with message msg.
func (r *recorder) find(msg string) []logged {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []logged
	for _, l := range *r.recs {
		if l.msg == msg {
			out = append(out, l)
		}
	}
	return out
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range *r.recs {
		fmt.Fprintf(&b, "  %s %s %v\n", l.level, l.msg, l.attrs)
	}
	return b.String()
}
