//go:build linux

package isolate

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// Exit codes of ServeWorker.
const (
	workerOK     = 0 // the gateway closed the socket; the plugin is shut down
	workerFailed = 1 // the plugin did not load, the socket failed, or the gateway gave up
	workerUsage  = 2 // bad flags, or not started by a gateway
)

// maxRequestSize bounds a request frame the worker accepts: the gateway
// refuses larger ones first (its --max-message-size is at most 4 GiB), so a
// larger length means the stream is corrupt.
const maxRequestSize = 4<<30 + repe.HeaderSize

// keptBufferSize: after a call, a buffer grown beyond this is dropped, so
// that one huge request or reply does not pin its memory for the worker's
// life.
const keptBufferSize = 4 << 20

// ServeWorker is the worker's side: the whole life of a worker process that
// Start ran. The program named by Config.Exe calls it when it sees
// Config.WorkerArgs, with the arguments that follow them, and exits with
// the code it returns:
//
//	if len(args) > 0 && args[0] == "worker" {
//		os.Exit(isolate.ServeWorker(args[1:]))
//	}
//
// It loads the plugin with pluginhost (which runs its init), reports the
// plugin's name, version and root (or why it was refused) on the socket it
// inherits as file descriptor 3, then answers requests one at a time, in
// order, keeping count of them and of their replies on the progress page
// it inherits as descriptor 5, and writing the replies in batches. When the
// gateway closes the socket it shuts the plugin down and returns 0. When the
// gateway dies it exits at once, whatever the plugin is doing.
//
// Run by hand, without the gateway's socket, it returns 2.
func ServeWorker(args []string) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	file := fs.String("plugin", "", "the plugin's shared object")
	limit := fs.Uint64("memory-limit", 0, "bytes of address space the plugin may add (RLIMIT_AS); 0 for none")
	if err := fs.Parse(args); err != nil {
		return workerUsage
	}
	if *file == "" || fs.NArg() != 0 {
		say("isolate: worker: usage: --plugin FILE [--memory-limit BYTES]")
		return workerUsage
	}
	if _, err := unix.GetsockoptInt(fdSocket, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		say("isolate: worker: file descriptor 3 is not a socket; a worker is started by the gateway, not by hand")
		return workerUsage
	}
	// Grandchildren a plugin may start must not hold the gateway's socket
	// or the lifeline open.
	unix.CloseOnExec(fdSocket)
	unix.CloseOnExec(fdLifeline)
	unix.CloseOnExec(fdProgress)
	watchLifeline()
	pr, err := mapProgress(fdProgress)
	if err != nil {
		say("isolate: worker: " + err.Error())
		return workerFailed
	}

	// The gateway stops its workers itself, after the requests in flight:
	// a Ctrl-C in a terminal, or a stop signal sent to the whole service,
	// must not kill them first.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	defaultFaultSignals()

	// One thread runs every call: the plugin's thread-local state, and
	// glibc's malloc arena for it, exist once.
	runtime.LockOSThread()
	// A second P, so that the runtime leaves this thread's P alone while
	// it waits in read for the next batch: with one P (a worker pinned to
	// one CPU, as it inherits the gateway's affinity), the runtime takes
	// the P back from every read that blocks, and wakes another thread to
	// hold it, which costs a context switch or two per batch.
	runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	if *limit != 0 {
		if err := limitMemory(*limit); err != nil {
			say("isolate: worker: " + err.Error())
			return workerFailed
		}
	}

	p, err := pluginhost.Open(*file)
	if err != nil {
		text := err.Error()
		if le, ok := errors.AsType[*pluginhost.LoadError](err); ok {
			text = le.Err.Error()
		}
		rec := appendRecordHeader(nil, kindRefused, 0)
		rec = binary.LittleEndian.AppendUint32(rec, reasonIndex(err))
		rec = append(rec, text...)
		putRecordHeader(rec, kindRefused)
		if err := writeAll(fdSocket, rec); err != nil {
			say("isolate: worker: " + err.Error())
		}
		return workerFailed
	}
	rec := appendHello(nil, hello{file: p.File(), name: p.Name(), version: p.Version(), root: p.Root()})
	if err := writeAll(fdSocket, rec); err != nil {
		say("isolate: worker: " + err.Error())
		return workerFailed
	}
	err = serve(p, pr)
	if errors.Is(err, errAborted) {
		return workerFailed
	}
	// Every call has returned: serve runs them one at a time.
	p.Shutdown(context.Background())
	if err != nil {
		say("isolate: worker: " + err.Error())
		return workerFailed
	}
	return workerOK
}

// errAborted: the gateway has given up on this worker (a deadline passed);
// it exits at once, without the plugin's shutdown.
var errAborted = errors.New("aborted by the gateway")

// yieldEvery: the worker's one goroutine yields its thread at most this
// often, between batches. The runtime's monitor takes the P of a thread
// that has run one goroutine for 10 ms without a yield whenever it finds
// it in a system call, and the worker's goroutine, locked to its thread,
// otherwise never yields: every read that waits for the next batch then
// loses its P, and the monitor, woken to take it, polls every 20 µs
// instead of sleeping, at a context switch each time. A yield costs two.
const yieldEvery = 8 * time.Millisecond

// serve answers the requests on the socket until the gateway closes it.
func serve(p *pluginhost.Plugin, pr progress) error {
	out := outbox{progress: pr}
	in := make([]byte, 0, 64<<10)
	rec := make([]byte, 0, 64<<10)
	lastYield := time.Now()
	for {
		if now := time.Now(); now.Sub(lastYield) >= yieldEvery {
			// Tell the runtime that this thread's goroutine is scheduled
			// (see yieldEvery), at a moment when nothing waits for it.
			runtime.Gosched()
			lastYield = now
		}
		k, err := unix.Read(fdSocket, in[len(in):cap(in)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case k == 0:
			if len(in) != 0 {
				return errors.New("the gateway closed the socket in the middle of a request")
			}
			return nil
		}
		in = in[:len(in)+k]
		off := 0
		for len(in)-off >= repe.HeaderSize {
			n := repe.Message(in[off:]).Length()
			if n < repe.HeaderSize || n > maxRequestSize {
				return errors.New("a request frame of length " + strconv.FormatUint(n, 10) + " from the gateway")
			}
			if uint64(len(in)-off) < n {
				break
			}
			if !pr.begin() {
				return errAborted
			}
			rec = answer(p, rec[:0], in[off:off+int(n)])
			if err := out.add(rec); err != nil {
				return err
			}
			off += int(n)
		}
		// Every request read so far is answered: send the replies before
		// waiting for more.
		if err := out.flush(); err != nil {
			return err
		}
		rest := copy(in, in[off:])
		in = in[:rest]
		// Room for the whole next frame, so that it arrives in as few reads
		// as the kernel allows.
		need := 64 << 10
		if len(in) >= repe.HeaderSize {
			need = max(need, int(repe.Message(in).Length()))
		}
		if cap(in) > keptBufferSize && need <= keptBufferSize {
			in = append(make([]byte, 0, 64<<10), in...)
		} else if need > cap(in) {
			in = append(make([]byte, 0, need), in...)
		}
		if cap(rec) > keptBufferSize {
			rec = make([]byte, 0, 64<<10)
		}
	}
}

// answer calls the plugin for one request and returns its record, built in
// rec.
func answer(p *pluginhost.Plugin, rec, req []byte) []byte {
	rec = append(rec[:0], make([]byte, recordHeaderSize)...)
	rec, err := p.Call(rec, req)
	kind := kindReply
	switch {
	case err != nil:
		e := repe.AsError(err)
		rec = binary.LittleEndian.AppendUint32(rec[:recordHeaderSize], uint32(e.Code))
		rec = append(rec, e.Message...)
		kind = kindError
	case len(rec) == recordHeaderSize:
		kind = kindEmpty
	}
	putRecordHeader(rec, kind)
	return rec
}

// outbox keeps the records not yet written in the area of the progress
// page, where the gateway finds them if the worker dies before it writes
// them (see offPendingBase for the order of the stores).
type outbox struct {
	progress
	n        int    // bytes of records in the area
	answered uint64 // records stored, in the area or on the socket, over the worker's life
}

// add stores a record before the next request begins.
func (o *outbox) add(rec []byte) error {
	if len(rec) > len(o.area)-o.n {
		if err := o.flush(); err != nil {
			return err
		}
	}
	if len(rec) > len(o.area) {
		// Too large for the area: written before anything else runs.
		if err := writeAll(fdSocket, rec); err != nil {
			return err
		}
		o.answered++
		o.pendingBase.Store(o.answered)
		return nil
	}
	copy(o.area[o.n:], rec)
	o.n += len(rec)
	o.answered++
	o.pendingLen.Store(uint64(o.n))
	return nil
}

// flush writes the records in the area to the socket and empties it. The
// length is cleared before the base moves on, so that the gateway never
// sees old records under a new index.
func (o *outbox) flush() error {
	if o.n == 0 {
		return nil
	}
	if err := writeAll(fdSocket, o.area[:o.n]); err != nil {
		return err
	}
	o.n = 0
	o.pendingLen.Store(0)
	o.pendingBase.Store(o.answered)
	return nil
}

// writeAll writes b to the blocking file descriptor fd.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		k, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// watchLifeline exits the process once the gateway is gone: the lifeline's
// write end is held by the gateway alone, so its read end sees EOF when the
// gateway exits, however it exits, and whatever the plugin is doing on the
// worker's other threads. (PR_SET_PDEATHSIG, set at fork, is the kernel's
// own backstop for the same.)
func watchLifeline() {
	go func() {
		var b [1]byte
		for {
			k, err := unix.Read(fdLifeline, b[:])
			switch {
			case err == unix.EINTR || k > 0:
				continue
			case err != nil:
				// A plugin closed the descriptor: PR_SET_PDEATHSIG is left.
				say("isolate: worker: lifeline: " + err.Error())
				return
			}
			os.Exit(workerFailed)
		}
	}()
}

// defaultFaultSignals gives the signals of a crash their default action, so
// that a plugin that faults or aborts kills the worker by that signal, which
// the gateway reports ("signal SIGSEGV"). The Go runtime would otherwise
// catch them, print a traceback of the Go side and exit with status 2,
// hiding which signal it was. The worker's own Go code does not rely on
// turning faults into panics.
//
// os/signal cannot restore SIG_DFL (Reset restores the Go runtime's
// handler), so this calls rt_sigaction itself, with an all-zero struct
// sigaction: handler SIG_DFL, no flags, an empty mask, on every layout.
func defaultFaultSignals() {
	var act [4]uintptr
	for _, sig := range [...]syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGABRT} {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
			uintptr(unsafe.Pointer(&act)), 0, unsafe.Sizeof(uint64(0)), 0, 0)
		if errno != 0 {
			say("isolate: worker: rt_sigaction(" + unix.SignalName(sig) + "): " + errno.Error())
		}
	}
}

// limitMemory lets the process grow its address space by at most extra
// bytes from now on (RLIMIT_AS). The limit is relative because a Go process
// starts with about 1.5 GiB of address space reserved, mostly never
// touched, and the race detector with terabytes: an absolute limit would
// measure the runtime, not the plugin.
func limitMemory(extra uint64) error {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return fmt.Errorf("reading the address space's size: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return errors.New("reading the address space's size: /proc/self/statm is empty")
	}
	pages, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return fmt.Errorf("reading the address space's size: %w", err)
	}
	limit := pages*uint64(os.Getpagesize()) + extra
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		return fmt.Errorf("setting RLIMIT_AS to %d bytes: %w", limit, err)
	}
	return nil
}

// say writes one line to standard error, which the gateway logs with the
// plugin's name.
func say(line string) {
	os.Stderr.WriteString(line + "\n")
}
