package main

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// answer builds the reply a test server sends to request m, the n-th request
// of its connection (from 0), or nil for none.
type answer func(m repe.Message, n int) []byte

// startServer runs a small REPE server on loopback that answers each request
// with answer, in order, until the test ends. It stands for a misbehaving
// server; the tool under test runs unchanged against it.
func startServer(t *testing.T, answer answer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serveConn(c, answer) })
		}
	})
	return ln.Addr().String()
}

func serveConn(c net.Conn, answer answer) {
	defer c.Close()
	buf := make([]byte, 0, 64<<10)
	tmp := make([]byte, 64<<10)
	count := 0
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		var out []byte
		for {
			k, err := repe.Split(buf, 0)
			if err != nil || k == 0 {
				break
			}
			out = append(out, answer(repe.Message(buf[:k]), count)...)
			count++
			buf = buf[k:]
		}
		buf = append(tmp[:0:0], buf...)
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

// reply answers like a Glaze registry: same id, the given ec, no reply to a
// notify.
func reply(ec repe.ErrorCode, body string) answer {
	return func(m repe.Message, _ int) []byte {
		if m.Notify() {
			return nil
		}
		if ec != repe.OK {
			return repe.AppendError(nil, m.ID(), ec, body)
		}
		return repe.AppendResponse(nil, m.ID(), ec, repe.BodyJSON, []byte(body))
	}
}

func TestServerErrors(t *testing.T) {
	tests := []struct {
		name   string
		answer answer
		args   []string
		code   int
		check  func(t *testing.T, s summary)
	}{
		{
			name:   "correct replies",
			answer: reply(repe.OK, "42"),
			args:   []string{"-n", "400", "-notify-ratio", "0.25"},
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(300), s.OK)
				assert.Equal(t, int64(100), s.Notifies)
				assert.Zero(t, s.NotifyReplies)
				assert.Zero(t, s.Errors)
			},
		},
		{
			name:   "non-zero ec",
			answer: reply(repe.MethodNotFound, "No plugin registered for path"),
			args:   []string{"-n", "400"},
			code:   1,
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(400), s.Errors)
				assert.Equal(t, []ecCount{{EC: 6, Name: "method_not_found", Count: 400}}, s.ErrorsByEC)
				assert.Zero(t, s.OK)
				assert.Positive(t, s.LatencyUS.P50, "error replies have a latency too")
			},
		},
		{
			name:   "expected ec by number",
			answer: reply(repe.MethodNotFound, "No plugin registered for path"),
			args:   []string{"-n", "400", "-expect-ec", "6"},
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(400), s.OK)
				assert.Zero(t, s.Errors)
			},
		},
		{
			name:   "expected ec by name",
			answer: reply(repe.UnknownKey, "1:2: unknown_key"),
			args:   []string{"-n", "40", "-expect-ec", "unknown_key"},
			check:  func(t *testing.T, s summary) { assert.Equal(t, int64(40), s.OK) },
		},
		{
			name:   "any ec",
			answer: func(m repe.Message, n int) []byte { return repe.AppendError(nil, m.ID(), repe.ErrorCode(n%3), "x") },
			args:   []string{"-n", "300", "-expect-ec", "any"},
			check:  func(t *testing.T, s summary) { assert.Equal(t, int64(300), s.OK) },
		},
		{
			name: "some errors",
			answer: func(m repe.Message, n int) []byte {
				return repe.AppendError(nil, m.ID(), repe.ErrorCode(n%4/3*4097), "x")
			},
			args: []string{"-n", "400"},
			code: 1,
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(300), s.OK)
				assert.Equal(t, []ecCount{{EC: 4097, Name: "ec 4097", Count: 100}}, s.ErrorsByEC)
			},
		},
		{
			name: "wrong id",
			answer: func(m repe.Message, _ int) []byte {
				return repe.AppendResponse(nil, m.ID()+1000, 0, repe.BodyJSON, nil)
			},
			args: []string{"-n", "400"},
			code: 1,
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(400), s.ClientErrors["id_mismatch"])
				assert.Equal(t, int64(400), s.Errors)
				assert.Equal(t, int64(400), s.Requests)
			},
		},
		{
			name: "id zero",
			answer: func(repe.Message, int) []byte {
				return repe.AppendError(nil, 0, repe.ParseError, "Failed to parse request")
			},
			args:  []string{"-n", "50"},
			code:  1,
			check: func(t *testing.T, s summary) { assert.Equal(t, int64(50), s.ClientErrors["id_mismatch"]) },
		},
		{
			name: "replies swapped in pairs",
			answer: func() answer {
				var held []byte
				return func(m repe.Message, n int) []byte {
					r := repe.AppendResponse(nil, m.ID(), 0, repe.BodyJSON, nil)
					if n%2 == 0 {
						held = r
						return nil
					}
					return append(r, held...)
				}
			}(),
			args: []string{"-c", "1", "-P", "2", "-n", "200"},
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(200), s.OK)
				assert.Equal(t, int64(100), s.Reordered)
				assert.Zero(t, s.Errors)
			},
		},
		{
			name:   "no reply",
			answer: func(repe.Message, int) []byte { return nil },
			args:   []string{"-c", "2", "-P", "5", "-n", "10", "-timeout", "200ms"},
			code:   1,
			check:  func(t *testing.T, s summary) { assert.Equal(t, int64(10), s.ClientErrors["timeout"]) },
		},
		{
			name: "bad magic",
			answer: func(m repe.Message, _ int) []byte {
				b := repe.AppendResponse(nil, m.ID(), 0, repe.BodyJSON, nil)
				binary.LittleEndian.PutUint16(b[repe.OffsetSpec:], 0x1234)
				return b
			},
			args:  []string{"-c", "1", "-P", "4", "-n", "20"},
			code:  1,
			check: func(t *testing.T, s summary) { assert.Equal(t, int64(4), s.ClientErrors["invalid_reply"]) },
		},
		{
			name: "length mismatch",
			answer: func(m repe.Message, n int) []byte {
				b := repe.AppendResponse(nil, m.ID(), 0, repe.BodyJSON, []byte("12"))
				if n == 3 {
					binary.LittleEndian.PutUint64(b[repe.OffsetBodyLength:], 1) // still framed by length
				}
				return b
			},
			args: []string{"-c", "1", "-P", "4", "-n", "20"},
			code: 1,
			check: func(t *testing.T, s summary) {
				assert.Equal(t, int64(1), s.ClientErrors["invalid_reply"])
				assert.Equal(t, int64(19), s.OK)
			},
		},
		{
			name: "reply too large",
			answer: func(m repe.Message, _ int) []byte {
				return repe.AppendResponse(nil, m.ID(), 0, repe.BodyJSON, make([]byte, 100))
			},
			args:  []string{"-n", "3", "-max-reply", "100"},
			code:  1,
			check: func(t *testing.T, s summary) { assert.Equal(t, int64(1), s.ClientErrors["invalid_reply"]) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startServer(t, tt.answer)
			start := time.Now()
			r := runBench(t, nil, append([]string{"-addr", addr, "-query", "/q"}, tt.args...)...)
			assert.Less(t, time.Since(start), 3*time.Second)
			require.Equal(t, tt.code, r.code, r.stderr)
			tt.check(t, r.sum)
		})
	}
}

func TestServerCloses(t *testing.T) {
	addr := startClosingServer(t, 10)
	r := runBench(t, nil, "-addr", addr, "-query", "/q", "-c", "1", "-P", "4", "-n", "100")
	require.Equal(t, 1, r.code, r.stderr)
	assert.Equal(t, int64(10), r.sum.OK)
	assert.Positive(t, r.sum.ClientErrors["connection"])
}

// startClosingServer answers the first n requests of a connection, then
// closes it.
func startClosingServer(t *testing.T, n int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				var buf []byte
				tmp := make([]byte, 4096)
				for answered := 0; answered < n; {
					k, err := c.Read(tmp)
					if err != nil {
						return
					}
					buf = append(buf, tmp[:k]...)
					for answered < n {
						l, err := repe.Split(buf, 0)
						if err != nil || l == 0 {
							break
						}
						m := repe.Message(buf[:l])
						if _, err := c.Write(repe.AppendResponse(nil, m.ID(), 0, repe.BodyJSON, nil)); err != nil {
							return
						}
						buf = buf[l:]
						answered++
					}
				}
			})
		}
	})
	return ln.Addr().String()
}
