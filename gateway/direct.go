package gateway

import (
	"sync"
	"time"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// Large replies on the gnet transport are written to the socket by the
// worker that called the plugin, straight from the plugin's thread-local
// buffer while its thread is still locked, instead of being copied into the
// job's reply buffer and then, for what the socket does not take at once,
// into gnet's outbound buffer. At 16 MiB those two copies were about a
// sixth of the gateway's CPU per request (BENCHMARKS.md, "16 MiB echo").
//
// Why it is sound:
//
//   - Order. While a job runs, its connection's event loop writes nothing to
//     it (the core waits for the job), and the worker writes a reply only when
//     nothing is ahead of it: no earlier reply of the job waits in its buffer,
//     and gnet's outbound buffer is empty.
//   - Ownership. gnet owns the descriptor and may close it at any time, and
//     the kernel then gives its number to the next socket opened. The worker therefore never touches
//     gnet's descriptor: the event loop itself, in a callback that runs only
//     while the connection is still open and this one, duplicates it, and
//     the worker writes to its own duplicate, then closes it. When the
//     connection closes meanwhile, its close shuts the socket down through
//     the duplicate, which ends the write at once.
//   - Bounds. The worker waits for room in the socket at most directPatience
//     at a time and directBudget in all (both at most WriteTimeout); then
//     it hands what is left of the reply back to the ordinary path, which
//     copies it and applies the usual slow-consumer rules. A client that
//     stops reading thus holds a worker for directPatience, and its memory
//     stays one reply, as before.
//
// Smaller replies, the stream transport (TLS, half-closed connections),
// plugins with a deadline, and servers that log or observe calls (whose logs
// read the reply) keep the copying path.

// directReply is the size from which a worker writes a reply itself: the
// round trip to the event loop, the duplicate, its close and the smaller
// writes cost more than the copies they save at 256 KiB, and less at 1 MiB
// (BENCHMARKS.md, "16 MiB echo").
const directReply = 1 << 20

// directPatience and directBudget bound how long a worker waits for a
// client to make room for a reply it writes itself. A client on a fast
// link drains a socket buffer in well under directPatience.
const (
	directPatience = 10 * time.Millisecond
	directBudget   = time.Second
)

// directFd is the duplicate of a connection's descriptor that a worker
// writes a reply through, shared with the event loop so that a close can
// end the write.
type directFd struct {
	mu     sync.Mutex
	fd     int
	held   bool
	closed bool // the connection closed: no more duplicates
}

// take duplicates fd, gnet's descriptor of the connection, on its event
// loop; -1 when the connection has closed or the duplicate failed.
func (d *directFd) take(fd int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.held {
		return -1
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	d.fd, d.held = dup, true
	return dup
}

// release closes the duplicate once the worker is done with it.
func (d *directFd) release() {
	d.mu.Lock()
	if d.held {
		_ = unix.Close(d.fd)
		d.held = false
	}
	d.mu.Unlock()
}

// interrupt is called as the connection closes: no duplicate is taken
// from then on, and a write in progress ends.
func (d *directFd) interrupt() {
	d.mu.Lock()
	d.closed = true
	if d.held {
		_ = unix.Shutdown(d.fd, unix.SHUT_RDWR)
	}
	d.mu.Unlock()
}

// abandon closes the duplicate, if one was taken, and takes none again.
func (d *directFd) abandon() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.release()
}

// directSent is what a job's worker wrote itself, for the event loop to
// count when it collects the job.
type directSent struct {
	ecs   []uint32 // the error code of each reply written
	bytes int
	// tail is how many bytes at the start of the job's reply buffer are the
	// rest of a reply begun directly: they are not a frame to count.
	tail int
	ns   int64 // time spent writing, which is not the plugin's
}

// callJob calls the plugin for frame, a request of j, and appends its reply
// to j's reply buffer, unless the reply is large and the worker can write
// it itself.
func (l *lane) callJob(j *job, frame repe.Message) []byte {
	p, ok := l.plugin.(*pluginhost.Plugin)
	if !ok || len(j.reply.B) > 0 || j.cs.timed() || l.srv.cfg.WriteTimeout <= 0 {
		return l.call(j.reply.B, frame, j.cs)
	}
	out, err := p.CallTo(j.reply.B, frame, directReply, j)
	if err != nil {
		return l.callFailed(j.reply.B, frame, j.cs, err)
	}
	return out
}

// TakeReply writes reply to j's connection from the worker (see above) and
// returns what it could not write; it runs on the worker's locked thread,
// inside the plugin call.
func (j *job) TakeReply(reply []byte) []byte {
	cs := j.cs
	gw, ok := cs.wakeRef.Load().w.(*gnetWire)
	if !ok {
		return reply
	}
	fd := gw.dupForReply()
	if fd < 0 {
		return reply
	}
	start := time.Now()
	rest, err := writeDirect(fd, reply, cs.srv.cfg.WriteTimeout)
	cs.direct.release()
	j.direct.ns += int64(time.Since(start))
	if err != nil {
		// The peer is gone or the connection closed: nothing more reaches it.
		cs.srv.log.Debug("connection failed while a reply was written", "remote", cs.remote, "error", err)
		cs.close()
		return nil
	}
	if sent := len(reply) - len(rest); sent > 0 {
		j.direct.ecs = append(j.direct.ecs, replyEC(reply))
		j.direct.bytes += sent
		j.direct.tail = len(rest)
	}
	return rest
}

// dupForReply asks the connection's event loop for a duplicate of its
// descriptor, given only while the connection is open and its outbound
// buffer empty; -1 otherwise.
func (w *gnetWire) dupForReply() int {
	cs := w.cs
	s := cs.srv
	got := make(chan int, 1)
	cb := func(gc gnet.Conn, _ error) error {
		fd := -1
		// gnet reuses a closed connection's slot, and its context is then
		// another's or nil.
		if gc.Context() == cs && gc.OutboundBuffered() == 0 {
			fd = cs.direct.take(gc.Fd())
		}
		got <- fd
		return nil
	}
	s.wakeMu.RLock()
	queued := !s.stopped && w.Wake(cb) == nil
	s.wakeMu.RUnlock()
	if !queued {
		return -1
	}
	select {
	case fd := <-got:
		return fd
	case <-s.stop:
		// The loops may stop before they run cb: take nothing after this,
		// and give back what cb took. The connection itself goes on: a
		// draining server still answers it.
		cs.direct.abandon()
		return -1
	}
}

// writeDirect writes b to fd, a non-blocking socket, and returns what it did
// not write: the rest, once the socket took nothing for directPatience or
// the writing took directBudget (both at most timeout). An error means the
// connection failed or was shut down.
func writeDirect(fd int, b []byte, timeout time.Duration) ([]byte, error) {
	patience := min(directPatience, timeout)
	end := time.Now().Add(min(directBudget, timeout))
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for len(b) > 0 {
		n, err := rawWrite(fd, b)
		switch {
		case n > 0:
			b = b[n:]
			continue
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			if err == nil {
				err = unix.EPIPE // a write of a non-empty b that took nothing
			}
			return b, err
		}
		wait := min(patience, time.Until(end))
		if wait <= 0 {
			return b, nil
		}
		k, err := unix.Poll(pfd, int(max(1, wait.Milliseconds())))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return b, err
		case k == 0:
			return b, nil // no room for the whole wait
		}
	}
	return nil, nil
}

// countDirect counts, on the event loop, the replies j's worker wrote
// itself and what they sent, and returns the part of j's reply buffer that
// holds whole frames to count.
func (j *job) countDirect(t *tally) []byte {
	d := &j.direct
	if d.bytes == 0 {
		return j.reply.B
	}
	lt := &j.lane.tally[t.slot]
	for _, ec := range d.ecs {
		t.reply(lt, ec)
	}
	t.bytesOut.Add(uint64(d.bytes))
	t.bytesDirect.Add(uint64(d.bytes))
	frames := j.reply.B[d.tail:]
	d.ecs, d.bytes, d.tail = d.ecs[:0], 0, 0
	return frames
}

// elapsed is the time since start that the call of j took, without the time
// its worker spent writing the reply.
func (j *job) elapsed(start time.Time) int64 {
	ns := int64(time.Since(start)) - j.direct.ns
	j.direct.ns = 0
	return ns
}

// rawWrite is write(2) on a non-blocking socket, made without telling the
// scheduler. It does not block, and a system call the scheduler knows of
// lets it hand this thread's P to another thread while the kernel copies,
// which the locked worker thread must then wait to get back: on a loaded
// core, a wait per write. The cost is that the P is held for the copy of at
// most one socket buffer, as the event loop's own writes hold it.
func rawWrite(fd int, b []byte) (int, error) {
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
