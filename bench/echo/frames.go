package main

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/repe"
)

// The floor for large bodies. The least a REPE server on gnet must do with
// a large request is to read it from the socket once, into memory of its
// own, and write a reply of the same size once: one copy in and one copy
// out, in the kernel, in reads and writes as large as the socket allows.
// echoFrames does only that: it reads a frame larger than gnet's buffer
// past that buffer, into one buffer kept by the connection, and writes it
// back from there. While the socket is full it waits for room on the event
// loop, which costs no CPU; a real server would serve its other
// connections meanwhile.

// maxFrame bounds the frames echoFrames buffers, so that a stray length
// costs an error rather than the memory it claims.
const maxFrame = 1 << 30

// frameConn is a connection's large frame in progress.
type frameConn struct {
	buf  []byte // the frame so far; kept for the next one
	want int    // its length; 0 when none is in progress
}

var errBadFrame = errors.New("echo: not a REPE frame")

// echoFrames echoes every whole frame buffered on c, in one write, and
// reads a large frame straight from the socket.
func echoFrames(c gnet.Conn) gnet.Action {
	fc, _ := c.Context().(*frameConn)
	if fc == nil {
		fc = new(frameConn)
		c.SetContext(fc)
	}
	for {
		if fc.want > 0 {
			whole, err := fc.readLarge(c)
			if err != nil {
				return gnet.Close
			}
			if !whole {
				return gnet.None
			}
			if err := writeFrame(c, fc.buf); err != nil {
				return gnet.Close
			}
			fc.want = 0
			continue
		}
		// Whole frames in the buffer go back in one write, as without
		// -frames; a large one at the head starts its own read.
		avail := c.InboundBuffered()
		b, _ := c.Peek(avail)
		n := 0
		for len(b)-n >= repe.HeaderSize {
			length := binary.LittleEndian.Uint64(b[n:])
			if repe.CheckHeader(b[n:n+repe.HeaderSize]) != nil || length < repe.HeaderSize || length > maxFrame {
				return gnet.Close
			}
			if length > uint64(len(b)-n) {
				if n == 0 && length > readBufferCap {
					fc.want = int(length)
				}
				break
			}
			n += int(length)
		}
		if n > 0 {
			out, _ := c.Next(n)
			if _, err := c.Write(out); err != nil {
				return gnet.Close
			}
		}
		if fc.want == 0 {
			return gnet.None
		}
		fc.buf = fc.buf[:0]
		if cap(fc.buf) < fc.want {
			fc.buf = make([]byte, 0, fc.want)
		}
	}
}

// readLarge moves what gnet buffered of the large frame into fc.buf, then
// reads the rest straight from the socket until it has no more, and reports
// whether the frame is whole.
func (fc *frameConn) readLarge(c gnet.Conn) (bool, error) {
	if k := min(fc.want-len(fc.buf), c.InboundBuffered()); k > 0 {
		b, _ := c.Next(k)
		fc.buf = append(fc.buf, b...)
	}
	for len(fc.buf) < fc.want {
		n, err := unix.Read(c.Fd(), fc.buf[len(fc.buf):fc.want])
		switch {
		case n > 0:
			fc.buf = fc.buf[:len(fc.buf)+n]
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			return false, nil
		case err == nil:
			return false, errBadFrame // the peer ended inside the frame
		default:
			return false, err
		}
	}
	return true, nil
}

// writeTimeout closes a connection whose socket took nothing for that long.
const writeTimeout = 10 * time.Second

var errStalled = errors.New("echo: the peer stopped reading")

// writeFrame writes b to c's socket, waiting for room whenever it is full.
// It runs on c's event loop, which owns the descriptor. Behind replies still
// in gnet's buffer it goes through that buffer, to keep them in order.
func writeFrame(c gnet.Conn, b []byte) error {
	if c.OutboundBuffered() > 0 {
		_, err := c.Write(b)
		return err
	}
	fd := c.Fd()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case n > 0:
			b = b[n:]
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			k, err := unix.Poll(pfd, int(writeTimeout.Milliseconds()))
			switch {
			case err == unix.EINTR:
			case err != nil:
				return err
			case k == 0:
				return errStalled
			}
		case err == nil:
			return errStalled
		default:
			return err
		}
	}
	return nil
}
