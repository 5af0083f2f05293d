//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// The checks that isolate's worker cannot run run in a process of their own:
// repe-gw check-worker STEP PLUGIN, run again from the same binary, one
// process per step, so that a crash costs one step, not the report.
// isolate's worker does not fit them because
//
//   - it calls the plugin from one thread, a request after another, and the
//     threads check needs many threads at once;
//   - it drops a plugin's reply to a notify, as the gateway must, and the
//     notify check needs to see it;
//   - it validates each reply itself and hands back either a well-formed
//     reply or its own ec 5 error, indistinguishable from a plugin's ec 5,
//     and the replies check must say which fault a reply has;
//   - its protocol carries no outcome of the plugin's shutdown, nor the root
//     path as the plugin spelt it, before normalisation.
//
// The step's requests, when it takes any, are REPE frames on standard
// input; it reports on descriptor 3, a JSON object per line, so that the
// plugin's own output on 1 and 2 cannot garble it. Before each call it
// reports what it is about to do, so that when the plugin kills it, the
// check knows what killed it.
const checkWorkerCommand = "check-worker"

// The steps of check-worker.
const (
	stepInfo     = "info"     // calls repe_plugin_info, and reports its strings as spelt
	stepNotify   = "notify"   // sends the notifies on standard input
	stepReplies  = "replies"  // sends the requests on standard input
	stepThreads  = "threads"  // calls from many threads at once
	stepShutdown = "shutdown" // init, then shutdown, with no call between
)

// checkCallsPerThread is how many calls each thread of the threads check
// makes: enough for a shared reply buffer to be overwritten on a two-core
// machine, few enough to take well under a second for a fast plugin.
const checkCallsPerThread = 200

// fdReport is check-worker's report descriptor (the parent's
// exec.Cmd.ExtraFiles[0]).
const fdReport = 3

// workerLine is one line of check-worker's report.
type workerLine struct {
	// Phase is what the step is about to do, in words that complete "died
	// (signal SIGSEGV) while ...".
	Phase string `json:"phase,omitempty"`
	// Finding is the outcome of one of the step's checks.
	Finding *finding `json:"finding,omitempty"`
	// Info is the plugin's info, as spelt (step info).
	Info *pluginInfo `json:"info,omitempty"`
	// Timing is the time calls took.
	Timing *timing `json:"timing,omitempty"`
	// Error: the step could not run, for this reason.
	Error string `json:"error,omitempty"`
}

// timing is how long calls of one kind took, all together.
type timing struct {
	What  string        `json:"what"`
	Calls int           `json:"calls"`
	Total time.Duration `json:"total"`
}

// serveCheckWorker is repe-gw check-worker: one step of repe-gw check, in a
// process of its own. It returns the exit code.
func serveCheckWorker(args []string) int {
	fs := flag.NewFlagSet(checkWorkerCommand, flag.ContinueOnError)
	threads := fs.Int("threads", defaultCheckThreads, "")
	root := fs.String("root", "", "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "repe-gw check-worker: run by repe-gw check only")
		return exitUsage
	}
	step, file := fs.Arg(0), fs.Arg(1)
	out := json.NewEncoder(os.NewFile(fdReport, "report"))
	report := func(l workerLine) {
		// Unbuffered: each line is out before the next call, which may
		// kill the process.
		_ = out.Encode(l)
	}
	defaultFaultSignals()

	if step == stepInfo {
		report(workerLine{Phase: "calling repe_plugin_info"})
		info, err := rawInfo(file)
		if err != nil {
			report(workerLine{Error: err.Error()})
			return exitFailure
		}
		report(workerLine{Info: &info})
		return exitOK
	}
	report(workerLine{Phase: "loading the plugin"})
	p, err := pluginhost.Open(file)
	if err != nil {
		report(workerLine{Error: err.Error()})
		return exitFailure
	}
	switch step {
	case stepNotify:
		err = checkNotifies(p, report)
	case stepReplies:
		err = checkEachReply(p, report)
	case stepThreads:
		err = checkThreadsAtOnce(p, file, *root, *threads, report)
	case stepShutdown:
		report(workerLine{Phase: "in repe_plugin_shutdown"})
		err = p.Shutdown(context.Background())
		if err == nil {
			report(workerLine{Finding: new(pass(checkShutdown, "repe_plugin_shutdown returned, after init and no call"))})
		}
	default:
		err = fmt.Errorf("no step %q", step)
	}
	if err != nil {
		report(workerLine{Error: err.Error()})
		return exitFailure
	}
	// No shutdown: the process ends, and only the shutdown step checks it.
	return exitOK
}

// readFrames reads the request frames on standard input.
func readFrames() ([]repe.Message, error) {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return nil, err
	}
	var frames []repe.Message
	for len(in) > 0 {
		n, err := repe.Split(in, uint64(len(in)))
		if err != nil || n == 0 {
			return nil, errors.New("standard input is not REPE frames")
		}
		frames = append(frames, repe.Message(in[:n]))
		in = in[n:]
	}
	return frames, nil
}

// checkNotifies sends each notify of standard input, and reports whether
// the plugin answered any: pluginhost drops such a reply, and counts it.
func checkNotifies(p *pluginhost.Plugin, report func(workerLine)) error {
	frames, err := readFrames()
	if err != nil {
		return err
	}
	var answered []string
	for _, f := range frames {
		report(workerLine{Phase: "sending the notify " + strconv.Quote(string(f.Query()))})
		before := p.DroppedNotifyReplies()
		if _, err := p.Call(nil, f); err != nil {
			return err
		}
		if p.DroppedNotifyReplies() != before {
			what := strconv.Quote(string(f.Query()))
			if len(f.Body()) > 0 {
				what += " with the body " + quoteBody(f.Body())
			}
			answered = append(answered, what)
		}
	}
	if len(answered) == 0 {
		report(workerLine{Finding: new(pass(checkNotify, "no reply to %d notifies", len(frames)))})
		return nil
	}
	report(workerLine{Finding: new(fail(checkNotify,
		"the notify of %s got a reply (%d of %d notifies did); a notify must get none (size 0): repe-gw drops "+
			"such a reply, but Glaze's server sends it, and a Glaze client, which matches replies by order, takes it "+
			"for the reply to its next request (a Glaze registry answers a notify whose function throws: catch "+
			"the exception in the function)",
		answered[0], len(answered), len(frames)))})
	return nil
}

// checkEachReply sends each request of standard input, one at a time, and
// reports whether every reply is a well-formed frame with the request's
// id, and how long each call took.
func checkEachReply(p *pluginhost.Plugin, report func(workerLine)) error {
	frames, err := readFrames()
	if err != nil {
		return err
	}
	var bad []string
	var buf []byte
	for _, f := range frames {
		q := strconv.Quote(string(f.Query()))
		report(workerLine{Phase: "calling " + q})
		start := time.Now()
		reply, err := p.Call(buf[:0], f)
		took := time.Since(start)
		buf = reply
		report(workerLine{Timing: &timing{What: string(f.Query()), Calls: 1, Total: took}})
		switch {
		case err != nil:
			// pluginhost's reason: "invalid reply: id 8 for request id 7".
			bad = append(bad, q+": "+repe.AsError(err).Message)
		case len(reply) == 0:
			bad = append(bad, q+": no reply, though the request is no notify")
		}
	}
	if len(bad) == 0 {
		report(workerLine{Finding: new(pass(checkReplies,
			"%d of %d calls answered by one well-formed frame with the request's id", len(frames), len(frames)))})
		return nil
	}
	report(workerLine{Finding: new(fail(checkReplies, "%s (%d of %d calls)", bad[0], len(bad), len(frames)))})
	return nil
}

// checkThreadsAtOnce checks the plugin's reply buffer under concurrent
// calls. Each of n threads sends checkCallsPerThread requests of its own: a
// path under root that the plugin does not serve, unique to the thread and
// the call (.../repe-gw-check/thread-3/call-17), with a unique id. A Glaze
// registry echoes that path in its error, so each reply is one no other
// request gets. Every request is first sent alone, from one thread, for the
// reply it should get; then all threads send theirs at once, and each reply
// must be that one, byte for byte.
//
// A host copies a reply as soon as the call returns, so a reply buffer
// shared between threads is overwritten only when another thread's call
// lands in that moment: on a machine with few cores, rarely. So the
// threads call repe_plugin_call directly, not through pluginhost, and each
// waits holdReply before it copies its reply, as a host thread preempted
// there would: the other threads' calls land in that wait, and a shared
// buffer shows as another request's id or body on nearly every call.
func checkThreadsAtOnce(p *pluginhost.Plugin, file, root string, n int, report func(workerLine)) error {
	callFn, err := dlsym(file, "repe_plugin_call")
	if err != nil {
		return err
	}
	frames := make([][]repe.Message, n)
	want := make([][][]byte, n)
	for i := range n {
		for j := range checkCallsPerThread {
			q := root + "/repe-gw-check/thread-" + strconv.Itoa(i) + "/call-" + strconv.Itoa(j)
			h := repe.Header{ID: checkIDBase + uint64(i*checkCallsPerThread+j), QueryFormat: repe.QueryJSONPointer}
			frames[i] = append(frames[i], repe.AppendMessage(nil, h, q, nil))
		}
	}

	report(workerLine{Phase: "calling from one thread"})
	start := time.Now()
	for i := range n {
		for _, f := range frames[i] {
			reply, err := p.Call(nil, f)
			if err != nil {
				report(workerLine{Finding: new(fail(checkThreads,
					"not run: %s, called from one thread, got no valid reply: %s",
					strconv.Quote(string(f.Query())), repe.AsError(err).Message))})
				return nil
			}
			want[i] = append(want[i], reply)
		}
	}
	report(workerLine{Timing: &timing{What: "an unknown path", Calls: n * checkCallsPerThread, Total: time.Since(start)}})

	report(workerLine{Phase: "calling from " + strconv.Itoa(n) + " threads at once"})
	type mismatch struct {
		thread, call int
		why          string
	}
	var (
		mu    sync.Mutex
		first *mismatch
		wrong int
		wg    sync.WaitGroup
		ready sync.WaitGroup
		begin = make(chan struct{})
	)
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			// A thread of its own for the whole run: the check is about
			// threads, not goroutines. It ends with the goroutine.
			runtime.LockOSThread()
			// Every thread is up before any calls, so that their calls
			// overlap from the first.
			ready.Done()
			<-begin
			for j, f := range frames[i] {
				why := heldReply(callFn, f, want[i][j])
				if why == "" {
					continue
				}
				mu.Lock()
				wrong++
				if first == nil {
					first = &mismatch{i, j, why}
				}
				mu.Unlock()
			}
		})
	}
	ready.Wait()
	close(begin)
	wg.Wait()
	if first == nil {
		report(workerLine{Finding: new(pass(checkThreads,
			"%d threads × %d calls at once: every reply carried its own request's id and body", n, checkCallsPerThread))})
		return nil
	}
	report(workerLine{Finding: new(fail(checkThreads,
		"%d of %d replies from %d threads at once were not their request's; thread %d's call %d (id %d) got %s: "+
			"a reply buffer shared between threads? Keep it thread_local: the host copies it before the thread's next call",
		wrong, n*checkCallsPerThread, n, first.thread, first.call, frames[first.thread][first.call].ID(), first.why))})
	return nil
}

// holdReply is how long each call of the threads check leaves its reply in
// the plugin's buffer before copying it.
const holdReply = 50 * time.Microsecond

// heldReply calls the plugin's repe_plugin_call with req, waits holdReply,
// then copies the reply, and returns how it differs from want, "" when it
// does not.
func heldReply(callFn uintptr, req repe.Message, want []byte) string {
	// repe_buffer {data, size} comes back in two registers, RAX:RDX on
	// amd64 and X0:X1 on arm64, purego's r1 and r2 (REPE.md §5.2). req is
	// on the heap, which does not move.
	data, size, _ := purego.SyscallN(callFn, uintptr(unsafe.Pointer(unsafe.SliceData(req))), uintptr(len(req)))
	time.Sleep(holdReply)
	switch {
	case size == 0:
		return "no reply"
	case data == 0:
		return "NULL data with size " + strconv.FormatUint(uint64(size), 10)
	case size != uintptr(len(want)):
		return strconv.FormatUint(uint64(size), 10) + " bytes, where alone it got " + strconv.Itoa(len(want))
	}
	got := unsafe.Slice((*byte)(cMemory(data)), size)
	switch {
	case bytes.Equal(got, want):
		return ""
	case repe.Message(got).ID() != repe.Message(want).ID():
		return "the reply with id " + strconv.FormatUint(repe.Message(got).ID(), 10) + ", another request's"
	}
	return "the body " + quoteBody(repe.Message(got).Body()) + ", where alone it got " + quoteBody(repe.Message(want).Body())
}

// dlsym returns the address of the plugin's function name, opening the
// library, or taking the handle of the one pluginhost loaded. Like
// pluginhost, it never closes the handle: the process ends instead.
func dlsym(file, name string) (uintptr, error) {
	// dlerror is per thread: dlopen, dlsym and the dlerror purego reads
	// after them stay on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := purego.Dlopen(file, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return 0, err
	}
	return purego.Dlsym(h, name)
}

// pluginInfo is a plugin's info as repe_plugin_info gives it.
type pluginInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"` // "" also when NULL
	Root    string `json:"root"`    // as spelt: pluginhost keeps only its normal form
}

// rawInfo calls the plugin's repe_plugin_info and copies what it returns.
// isolate has loaded the plugin before this runs, so the library opens, its
// interface version is 3, and its info, name and root are not NULL and end
// within pluginhost's bound. The library is not loaded yet: dlopen runs its
// constructors, and nothing else of it runs before repe_plugin_info.
func rawInfo(file string) (pluginInfo, error) {
	fn, err := dlsym(file, "repe_plugin_info")
	if err != nil {
		return pluginInfo{}, err
	}
	info, _, _ := purego.SyscallN(fn)
	if info == 0 {
		return pluginInfo{}, errors.New("repe_plugin_info returned NULL")
	}
	// repe_plugin_data: name @0, version @8, root_path @16 (REPE.md §5.2).
	fields := *(*[3]uintptr)(cMemory(info))
	return pluginInfo{Name: cString(fields[0]), Version: cString(fields[1]), Root: cString(fields[2])}, nil
}

// cString copies the NUL-terminated string at addr, "" for NULL.
func cString(addr uintptr) string {
	var s []byte
	for p := addr; p != 0 && *(*byte)(cMemory(p)) != 0; p++ {
		s = append(s, *(*byte)(cMemory(p)))
	}
	return string(s)
}

// cMemory turns an address in C memory into a pointer: the garbage
// collector neither moves nor frees that memory, and the indirection keeps
// vet's uintptr check quiet about a conversion that is valid here.
func cMemory(addr uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

// defaultFaultSignals gives the signals of a crash their default action, as
// isolate's worker does, so that a plugin that faults or aborts kills the
// process by that signal, which the check names, instead of the Go runtime
// catching it and exiting with status 2. os/signal cannot restore SIG_DFL,
// so this calls rt_sigaction with an all-zero struct sigaction.
func defaultFaultSignals() {
	var act [4]uintptr
	for _, sig := range [...]syscall.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGABRT} {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
			uintptr(unsafe.Pointer(&act)), 0, unsafe.Sizeof(uint64(0)), 0, 0)
		if errno != 0 {
			fmt.Fprintf(os.Stderr, "repe-gw check-worker: rt_sigaction(%s): %v\n", unix.SignalName(sig), errno)
		}
	}
}
