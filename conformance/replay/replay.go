package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// Defaults of Options.
const (
	DefaultSilence = 300 * time.Millisecond
	DefaultTimeout = 10 * time.Second
)

// Options tune a replay. The zero value replays with the defaults and no
// expectations.
type Options struct {
	// Expect holds the cases a server deliberately answers otherwise than
	// the recording, by name (see Recording.LoadExpectations).
	Expect map[string]Expectation
	// Silence is how long to wait to be sure that nothing comes back where
	// nothing came back in the recording (DefaultSilence when 0).
	Silence time.Duration
	// Timeout bounds connecting and each wait for a reply or a close
	// (DefaultTimeout when 0).
	Timeout time.Duration
}

// Replay sends case c to the server at addr on a new connection, as it was
// recorded, and compares what comes back with the recording, byte for byte,
// or with opts.Expect[c.Name] when there is one. After it, when the
// recorded connection stayed open and the case has a probe, the probe is
// sent on the same connection and its reply compared too: it shows that the
// stream is still in sync and the server's state matches the recording's.
//
// Cases share the server's state, so replay a recording's cases in order,
// against a server started afresh. Replay returns nil when everything
// matches, and otherwise an error whose text says, field by field, what
// differs.
//
// The request is written as the recorder wrote it: a case named
// split_write in two writes, its first 5 bytes and then the rest 100 ms
// later; a case whose name ends in _close followed by a half-close.
func (r *Recording) Replay(addr string, c Case, opts Options) error {
	if opts.Silence <= 0 {
		opts.Silence = DefaultSilence
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	req, err := r.ReadFile(c.RequestFile)
	if err != nil {
		return err
	}
	nc, err := net.DialTimeout("tcp", addr, opts.Timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	conn := &conn{Conn: nc, timeout: opts.Timeout}
	if err := conn.send(c.Name, req); err != nil {
		return err
	}

	e, deliberate := opts.Expect[c.Name]
	switch {
	case deliberate && e.Mode == "silent":
		if err := conn.expectSilence(opts.Silence); err != nil {
			return fmt.Errorf("expected no reply (%s): %w", e.Why, err)
		}
	case deliberate:
		if err := conn.expectError(e, repe.PeekID(req)); err != nil {
			return err
		}
		if e.Mode == "error-close" {
			if err := conn.expectClosed(); err != nil {
				return fmt.Errorf("expected the server to close (%s): %w", e.Why, err)
			}
		}
		if e.NoProbe {
			return nil
		}
	case !c.answered() && c.Result.ConnectionClosed:
		if err := conn.expectClosed(); err != nil {
			return fmt.Errorf("the recorded server closed without a reply: %w", err)
		}
		return nil
	case !c.answered():
		if err := conn.expectSilence(opts.Silence); err != nil {
			return fmt.Errorf("the recorded server sent no reply: %w", err)
		}
	default:
		if err := r.expectFrames(conn, c.ResponseFile, "reply"); err != nil {
			return err
		}
	}
	if c.Result.ConnectionClosed || !c.probed() {
		return nil
	}
	probe, err := r.ReadFile(c.ProbeRequestFile)
	if err != nil {
		return err
	}
	if err := conn.write(probe); err != nil {
		return err
	}
	return r.expectFrames(conn, c.ProbeResponseFile, "probe reply")
}

// expectFrames reads as many frames as the recorded file holds and compares
// each with its recorded bytes.
func (r *Recording) expectFrames(conn *conn, file, what string) error {
	want, err := r.ReadFile(file)
	if err != nil {
		return err
	}
	for len(want) > 0 {
		n, err := repe.Split(want, 0)
		if n == 0 || err != nil {
			n = len(want) // not a whole frame: compare the bytes that are there
		}
		got, err := conn.next()
		if err != nil {
			return fmt.Errorf("%s: expected %s: %w", what, describe(want[:n]), err)
		}
		if d := Diff(want[:n], got); d != "" {
			return fmt.Errorf("%s differs:\n%s", what, d)
		}
		want = want[n:]
	}
	return nil
}

// conn is a connection to the server under replay, which reads whole
// frames.
type conn struct {
	net.Conn
	timeout time.Duration
	buf     []byte // bytes read past the last frame returned
}

// send writes a case's request as the recorder wrote it.
func (c *conn) send(name string, req []byte) error {
	switch {
	case name == "split_write" && len(req) > 5:
		if err := c.write(req[:5]); err != nil {
			return err
		}
		// Long enough for the server to read the first part on its own.
		time.Sleep(100 * time.Millisecond)
		return c.write(req[5:])
	case strings.HasSuffix(name, "_close"):
		if err := c.write(req); err != nil {
			return err
		}
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			return tc.CloseWrite()
		}
		return nil
	default:
		return c.write(req)
	}
}

func (c *conn) write(b []byte) error {
	if err := c.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	_, err := c.Write(b)
	return err
}

// next reads the next whole frame, waiting at most the timeout.
func (c *conn) next() (repe.Message, error) { return c.nextWithin(c.timeout) }

func (c *conn) nextWithin(d time.Duration) (repe.Message, error) {
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, err
	}
	for {
		n, err := repe.Split(c.buf, 0)
		if n == 0 && err != nil {
			return nil, fmt.Errorf("the server sent bytes that are no REPE frame (%w): %x", err, c.buf)
		}
		if n > 0 {
			m := repe.Message(slices.Clone(c.buf[:n]))
			c.buf = c.buf[n:]
			return m, nil
		}
		var chunk [64 << 10]byte
		k, err := c.Read(chunk[:])
		c.buf = append(c.buf, chunk[:k]...)
		if err != nil {
			if errors.Is(err, io.EOF) && len(c.buf) > 0 {
				return nil, fmt.Errorf("the connection closed within a frame: %w", io.ErrUnexpectedEOF)
			}
			if errors.Is(err, io.EOF) {
				return nil, errors.New("the server closed the connection")
			}
			return nil, err
		}
	}
}

// expectClosed returns nil when the server closes the connection, sending
// nothing more, within the timeout.
func (c *conn) expectClosed() error {
	m, err := c.next()
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("got a frame: %s", describe(m))
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("still open after %v", c.timeout)
	case len(c.buf) > 0:
		return fmt.Errorf("%d stray bytes before the close", len(c.buf))
	}
	return nil // EOF or a reset
}

// expectSilence returns nil when nothing arrives within d and the
// connection stays open.
func (c *conn) expectSilence(d time.Duration) error {
	m, err := c.nextWithin(d)
	var ne net.Error
	switch {
	case err == nil:
		return fmt.Errorf("got a frame: %s", describe(m))
	case !errors.As(err, &ne) || !ne.Timeout():
		return err
	case len(c.buf) > 0:
		return fmt.Errorf("got %d bytes of a frame", len(c.buf))
	}
	return nil
}

// expectError checks one error reply against an expectation: an ec from its
// list, a body with its prefix, the request's id, laid out as Glaze's
// response builder lays out errors.
func (c *conn) expectError(e Expectation, id uint64) error {
	m, err := c.next()
	if err != nil {
		return fmt.Errorf("expected an error reply (%s): %w", e.Why, err)
	}
	var problems []string
	if len(e.EC) > 0 && !slices.Contains(e.EC, uint32(m.EC())) {
		problems = append(problems, fmt.Sprintf("ec %d (%s), want one of %v", m.EC(), m.EC().String(), e.EC))
	}
	if !bytes.HasPrefix(m.Body(), []byte(e.BodyPrefix)) {
		problems = append(problems, fmt.Sprintf("body %s does not start with %q", show(m.Body()), e.BodyPrefix))
	}
	if m.ID() != id {
		problems = append(problems, fmt.Sprintf("id %d, want %d", m.ID(), id))
	}
	if m.BodyFormat() != repe.BodyUTF8 {
		problems = append(problems, fmt.Sprintf("body_format %d, want %d (UTF-8)", m.BodyFormat(), repe.BodyUTF8))
	}
	if m.QueryLength() != 0 {
		problems = append(problems, fmt.Sprintf("query_length %d, want 0", m.QueryLength()))
	}
	if len(problems) > 0 {
		return fmt.Errorf("error reply differs from the expectation (%s):\n  %s", e.Why, strings.Join(problems, "\n  "))
	}
	return nil
}
