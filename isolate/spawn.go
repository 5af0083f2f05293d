//go:build linux

package isolate

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// worker is the gateway's side of one worker process.
type worker struct {
	proc     *os.Process
	pid      int
	sock     int      // the gateway's end of the socket pair, non-blocking
	pidfd    int      // readable once the process has exited; -1 if the kernel has none
	lifeline *os.File // write end of the pipe whose EOF tells the worker to exit
	progress progress // the progress page, mapped here too
	started  time.Time

	// seq counts the requests the worker answered in the batches before
	// the current one, so that the counts of the progress page, which run
	// over the worker's life, minus seq are the current batch's. Used by
	// the leader holding Plugin.sem only.
	seq uint64

	// refs counts the holders of sock, pidfd and lifeline: the supervisor,
	// and the batch using the worker. The last release closes them, so that
	// no descriptor number is closed, and perhaps reused, under a batch.
	refs atomic.Int32

	// exited is closed once the process has been reaped; status says how
	// it ended ("signal SIGSEGV", "exited with status 3") and is written
	// before.
	exited chan struct{}
	status string

	// killed says why the gateway killed the process, 0 when it did not.
	killed atomic.Int32
	// piped is set once a pipe was tried for the worker.
	piped atomic.Bool
}

// Why the gateway kills a worker.
const (
	killDeadline int32 = 1 + iota // a batch's deadline passed
	killProtocol                  // it sent what is not a record the gateway expects
	killStart                     // its start failed or took too long
	killClose                     // Close ran out of time
)

// spawn starts a worker process. It must run on the supervisor's locked
// thread: the worker's PR_SET_PDEATHSIG fires when the thread that forked
// it exits, and that thread lives as long as the Plugin.
func (p *Plugin) spawn() (w *worker, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	child := os.NewFile(uintptr(pair[1]), "isolate-socket")
	defer child.Close()
	if err := unix.SetNonblock(pair[0], true); err != nil {
		unix.Close(pair[0])
		return nil, fmt.Errorf("socket: %w", err)
	}
	var opened []*os.File // closed on return: the parent's copies of the child's ends
	defer func() {
		for _, f := range opened {
			f.Close()
		}
		if err != nil {
			unix.Close(pair[0])
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			opened = append(opened, r, w)
		}
		return r, w, err
	}
	lifeR, lifeW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	opened = append(opened, null)
	pr, memfd, err := newProgress()
	if err != nil {
		return nil, err
	}
	opened = append(opened, memfd)

	proc, err := os.StartProcess(p.cfg.Exe, p.argv, &os.ProcAttr{
		Env:   p.env,
		Files: []*os.File{null, outW, errW, child, lifeR, memfd},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		pr.unmap()
		return nil, err
	}
	// Kept: the read ends of the output pipes go to their readers, the
	// write end of the lifeline to the worker struct; the progress page
	// stays mapped without its memfd.
	opened = []*os.File{null, outW, errW, lifeR, memfd}

	w = &worker{
		progress: pr,
		proc:     proc,
		pid:      proc.Pid,
		sock:     pair[0],
		pidfd:    -1,
		lifeline: lifeW,
		started:  time.Now(),
		exited:   make(chan struct{}),
	}
	w.refs.Store(1)
	// The process cannot be reaped before the reaper below runs, so the pid
	// still names it here.
	if fd, err := unix.PidfdOpen(w.pid, 0); err == nil {
		unix.CloseOnExec(fd)
		w.pidfd = fd
	}
	p.outputs.Add(2)
	go p.forward(outR, "stdout", w.pid)
	go p.forward(errR, "stderr", w.pid)
	go w.reap()
	return w, nil
}

// reap waits for the process to end and records how.
func (w *worker) reap() {
	st, err := w.proc.Wait()
	if err != nil {
		w.status = "unknown exit: " + err.Error()
	} else {
		w.status = exitStatus(st)
	}
	close(w.exited)
}

// kill sends SIGKILL and records why, if nothing else killed it first. It is
// safe after the process has exited.
func (w *worker) kill(why int32) {
	w.killed.CompareAndSwap(0, why)
	w.proc.Kill()
}

// acquire takes a reference for a batch; p.mu is held, and w is p.cur, so
// the supervisor still holds its own.
func (w *worker) acquire() { w.refs.Add(1) }

// release drops a reference; the last one closes the descriptors.
func (w *worker) release() {
	if w.refs.Add(-1) != 0 {
		return
	}
	unix.Close(w.sock)
	if w.pidfd >= 0 {
		unix.Close(w.pidfd)
	}
	w.lifeline.Close()
	w.progress.unmap()
}

// isDead reports whether the process is known to have ended.
func (w *worker) isDead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to be reaped after the gateway saw it go
// (the socket's EOF, or its pidfd). A process that closed its socket but
// lives on is killed. It returns how the process ended, or "" when it could
// not be reaped within a few seconds (a process stuck in the kernel).
func (w *worker) waitExit() string {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-w.exited:
		return w.status
	case <-t.C:
	}
	w.kill(killProtocol)
	t.Reset(2 * time.Second)
	select {
	case <-w.exited:
		return w.status
	case <-t.C:
		return ""
	}
}

// waitKilled waits, briefly, for a process the gateway has killed to be
// reaped, and reports whether it was.
func (w *worker) waitKilled() bool {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-w.exited:
		return true
	case <-t.C:
		return false
	}
}

// exitStatus describes how a process ended: "signal SIGSEGV" or "exited
// with status 3".
func exitStatus(st *os.ProcessState) string {
	ws, ok := st.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return st.String()
	case ws.Signaled():
		s := "signal " + unix.SignalName(ws.Signal())
		if ws.CoreDump() {
			s += ", core dumped"
		}
		return s
	case ws.Exited():
		return "exited with status " + strconv.Itoa(ws.ExitStatus())
	}
	return st.String()
}

// handshake reads the worker's first record: its plugin's identity, or why
// the plugin was refused.
func (w *worker) handshake(timeout time.Duration) (hello, error) {
	deadline := time.Now().Add(timeout)
	var buf []byte
	var pfd [2]unix.PollFd
	var ts unix.Timespec
	gone := false
	for {
		if len(buf) >= recordHeaderSize {
			kind := binary.LittleEndian.Uint32(buf[offRecordKind:])
			size := binary.LittleEndian.Uint32(buf[offRecordLength:])
			if (kind != kindHello && kind != kindRefused) || size > 1<<20 {
				w.kill(killProtocol)
				return hello{}, fmt.Errorf("%w: the worker's first record is not a handshake (kind %d, %d bytes); do Config.Exe and WorkerArgs run isolate.ServeWorker?",
					ErrWorker, kind, size)
			}
			if uint64(len(buf)) >= recordHeaderSize+uint64(size) {
				return parseFirst(kind, buf[recordHeaderSize:recordHeaderSize+size])
			}
		}
		if cap(buf)-len(buf) < 4096 {
			buf = append(buf, make([]byte, 4096)...)[:len(buf)]
		}
		k, err := unix.Read(w.sock, buf[len(buf):cap(buf)])
		switch {
		case k > 0:
			buf = buf[:len(buf)+k]
			continue
		case k == 0 && err == nil, err != nil && err != unix.EAGAIN && err != unix.EINTR:
			return hello{}, w.diedStarting()
		case gone:
			return hello{}, w.diedStarting()
		}
		switch poll(&pfd, &ts, w, false, deadline) {
		case pollTimeout:
			w.kill(killStart)
			return hello{}, fmt.Errorf("%w: the worker did not load the plugin within %v (Config.StartTimeout)", ErrWorker, timeout)
		case pollExited:
			gone = true
		}
	}
}

func (w *worker) diedStarting() error {
	status := w.waitExit()
	if status == "" {
		status = "closed its socket"
	}
	return fmt.Errorf("%w: the worker died (%s) while loading the plugin", ErrWorker, status)
}

// parseFirst reads a handshake record's payload.
func parseFirst(kind uint32, b []byte) (hello, error) {
	if kind == kindRefused {
		if len(b) < 4 {
			return hello{}, fmt.Errorf("%w: a refusal without its reason", ErrWorker)
		}
		return hello{}, refusal(binary.LittleEndian.Uint32(b), string(b[4:]))
	}
	h, version, ok := parseHello(b)
	if version != protocolVersion {
		return hello{}, fmt.Errorf("%w: the worker speaks protocol version %d, this gateway version %d", ErrWorker, version, protocolVersion)
	}
	if !ok {
		return hello{}, fmt.Errorf("%w: a malformed hello", ErrWorker)
	}
	return h, nil
}

// What poll saw.
const (
	pollReady   = iota // the socket can be read or written, or poll was interrupted
	pollTimeout        // the deadline passed
	pollExited         // the process has exited
)

// poll waits until w's socket is readable (or writable, with write), the
// process exits, or deadline passes (never, when it is zero). pfd and ts
// are the caller's, so that a batch's wait allocates nothing.
func poll(pfd *[2]unix.PollFd, ts *unix.Timespec, w *worker, write bool, deadline time.Time) int {
	events := int16(unix.POLLIN)
	if write {
		events |= unix.POLLOUT
	}
	pfd[0] = unix.PollFd{Fd: int32(w.sock), Events: events}
	n := 1
	if w.pidfd >= 0 {
		pfd[1] = unix.PollFd{Fd: int32(w.pidfd), Events: unix.POLLIN}
		n = 2
	}
	var timeout *unix.Timespec
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return pollTimeout
		}
		*ts = unix.NsecToTimespec(int64(d))
		timeout = ts
	}
	k, err := unix.Ppoll(pfd[:n], timeout, nil)
	switch {
	case err != nil:
		// EINTR: the caller tries again, with the time left.
		return pollReady
	case k == 0:
		if time.Now().Before(deadline) {
			return pollReady
		}
		return pollTimeout
	case n == 2 && pfd[1].Revents != 0:
		return pollExited
	}
	return pollReady
}
