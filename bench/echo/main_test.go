package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

// startEcho runs the server in process until the test ends and returns its
// address.
func startEcho(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err)
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err, "graceful stop")
		case <-time.After(5 * time.Second):
			t.Error("the echo server did not stop")
		}
	})
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	require.True(t, ok, "first line %q", line)
	return addr
}

func TestEchoesEveryByte(t *testing.T) {
	for _, multicore := range []string{"true", "false"} {
		t.Run("multicore="+multicore, func(t *testing.T) {
			addr := startEcho(t, "-multicore="+multicore)
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()

			// Pipelined REPE requests, a notify, a large body and bytes that
			// are no frame at all: all come back unchanged, in order.
			var sent []byte
			for i := range 50 {
				h := repe.Header{ID: uint64(i), Notify: i%7 == 0, QueryFormat: repe.QueryJSONPointer}
				sent = repe.AppendMessage(sent, h, "/calculator/get_value", nil)
			}
			sent = repe.AppendMessage(sent, repe.Header{ID: 99}, "/big", bytes.Repeat([]byte("z"), 1<<20))
			sent = append(sent, "not REPE"...)

			go func() {
				// Written in odd pieces, so frames split across reads.
				for b := sent; len(b) > 0; {
					n := min(len(b), 3001)
					if _, err := c.Write(b[:n]); err != nil {
						return
					}
					b = b[n:]
				}
			}()
			got := make([]byte, len(sent))
			require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(sent, got), "echoed bytes differ")

			// An echoed request is a valid reply to itself.
			m, err := repe.Parse(got)
			require.NoError(t, err)
			assert.Equal(t, uint64(0), m.ID())
			assert.Equal(t, repe.OK, m.EC())
		})
	}
}

func TestManyConnections(t *testing.T) {
	addr := startEcho(t)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			req := repe.AppendMessage(nil, repe.Header{ID: uint64(i)}, "/q", []byte("{}"))
			got := make([]byte, len(req))
			for range 100 {
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(req, got) {
					errs <- io.ErrUnexpectedEOF
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		assert.NoError(t, <-errs)
	}
}

func TestBadFlags(t *testing.T) {
	tests := [][]string{
		{"-nope"},
		{"extra"},
		{"-addr", "not-an-address"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), args, &out, &errb)
			assert.Error(t, err)
			assert.Empty(t, out.String())
		})
	}
}

// TestFramesEchoesLargeFrames: with -frames, pipelined small frames and
// large ones, written in odd pieces, come back unchanged and in order, and
// a stream that is not REPE is closed.
func TestFramesEchoesLargeFrames(t *testing.T) {
	addr := startEcho(t, "-frames")
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()

	var sent []byte
	for i := range 20 {
		body := []byte("small")
		if i%5 == 2 {
			body = bytes.Repeat([]byte{byte(i)}, (i+1)<<18) // up to 5 MiB
		}
		sent = repe.AppendMessage(sent, repe.Header{ID: uint64(i)}, "/echo", body)
	}
	go func() {
		for b := sent; len(b) > 0; {
			n := min(len(b), 70001)
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	got := make([]byte, len(sent))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(sent, got), "echoed bytes differ")

	bad, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer bad.Close()
	_, err = bad.Write([]byte(strings.Repeat("not REPE at all, not even close. ", 4)))
	require.NoError(t, err)
	require.NoError(t, bad.SetReadDeadline(time.Now().Add(20*time.Second)))
	n, err := bad.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err, "a stream that is not REPE is closed")
}
