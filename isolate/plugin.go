//go:build linux

package isolate

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/internal/lograte"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// State is where a Plugin is in its life.
type State int32

// States of a Plugin.
const (
	// StateServing: a worker is up and takes calls.
	StateServing State = iota
	// StateRestarting: the last worker ended; a new one starts after the
	// backoff. Calls wait for it until their deadline.
	StateRestarting
	// StateFailed: Config.MaxFailures failures within
	// Config.FailureWindow. The circuit is open: no worker is started
	// again, and calls fail fast with send_error until Close.
	StateFailed
	// StateClosed: Close has begun. Calls fail fast with send_error.
	StateClosed
)

// String returns the state's name: "serving", "restarting", "failed" or
// "closed".
func (s State) String() string {
	switch s {
	case StateServing:
		return "serving"
	case StateRestarting:
		return "restarting"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Stats is a snapshot of a Plugin's state and counters.
type Stats struct {
	State State
	// PID is the serving worker's process id, 0 when none serves.
	PID int
	// Restarts counts the workers started after the first.
	Restarts uint64
	// Crashes counts the workers that ended without being asked to: a
	// signal, an exit, a broken protocol.
	Crashes uint64
	// Timeouts counts the workers killed because a call passed its
	// deadline.
	Timeouts uint64
	// Pipe is true while an event loop carries the calls (UseLoop).
	Pipe bool
}

// Plugin is one plugin served by a worker process. Its methods are safe for
// concurrent use.
type Plugin struct {
	cfg  Config
	argv []string
	env  []string
	log  atomic.Pointer[slog.Logger] // tagged with the plugin's name once known

	// From the first worker's handshake; fixed once Start returns.
	file, name, version, root string

	// sem is held by the leader while it runs an exchange, and by Close
	// while it waits for the exchange in flight.
	sem chan struct{}

	// The calls waiting for the next exchange, and whether a caller leads
	// (queue.go).
	qmu    sync.Mutex
	queue  []*call
	leader bool
	calls  sync.Pool // of *call

	// The pipe that carries the calls, if any (pipe.go), and how to attach
	// one to a worker. pipeChanged is closed and replaced, under qmu,
	// whenever pipe changes. stopping is set by Close.
	pipe        atomic.Pointer[Pipe]
	pipeChanged chan struct{}
	enroll      atomic.Pointer[Enroll]
	stopping    atomic.Bool

	mu       sync.Mutex
	state    State
	cur      *worker       // the serving worker, nil when none
	pending  *worker       // a worker being started, for Close to kill
	changed  chan struct{} // closed and replaced on every change of state
	failText string        // the send_error message while failed

	restarts, crashes, timeouts atomic.Uint64

	// Used only by the leader that holds sem, so that a call allocates
	// nothing.
	group group
	rbuf  []byte
	// Rounds before the next yield, and the current backoff (maybeYield).
	yieldSkip, yieldBackoff int
	pfd                     [2]unix.PollFd
	ts                      unix.Timespec

	stop    chan struct{} // closed by Close: stop the worker, start no other
	kill    chan struct{} // closed by Close when its context ends
	done    chan struct{} // closed when the supervisor has returned
	outputs sync.WaitGroup

	closeMu  sync.Mutex
	closed   bool
	closeErr error

	lines  lineLimiter
	errLog lograte.Limiter

	// Messages of the errors answered without the worker, made once.
	msgLate, msgBusy, msgRestarting, msgClosed string
}

// Start starts the plugin's first worker and waits for its handshake, which
// includes loading the plugin and running its init, or until ctx ends. A
// plugin that does not load is a *pluginhost.LoadError naming the file and
// the reason, with the same Err reasons as pluginhost.Open; a worker that
// cannot be started, dies or takes longer than Config.StartTimeout is one
// whose Err wraps ErrWorker. Later workers, after a failure, are started in
// the background; see the package documentation.
func Start(ctx context.Context, cfg Config) (*Plugin, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		cfg:     cfg,
		file:    cfg.File,
		sem:     make(chan struct{}, 1),
		calls:   sync.Pool{New: newCall},
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
		kill:    make(chan struct{}),
		done:    make(chan struct{}),

		pipeChanged: make(chan struct{}),
	}
	p.argv = append(append([]string{os.Args[0]}, cfg.WorkerArgs...), "--plugin", cfg.File)
	if cfg.MemoryLimit != 0 {
		p.argv = append(p.argv, "--memory-limit", strconv.FormatUint(cfg.MemoryLimit, 10))
	}
	p.env = mergeEnv(os.Environ(), cfg.Env)
	p.log.Store(cfg.Logger.With("file", cfg.File))

	first := make(chan error, 1)
	go p.supervise(first)
	select {
	case err := <-first:
		if err != nil {
			<-p.done
			p.outputs.Wait()
			return nil, err
		}
		return p, nil
	case <-ctx.Done():
		p.mu.Lock()
		p.setLocked(StateClosed)
		p.killLocked(killStart)
		p.mu.Unlock()
		close(p.stop)
		<-p.done
		p.outputs.Wait()
		return nil, &pluginhost.LoadError{File: cfg.File, Err: fmt.Errorf("%w: %w", ErrWorker, context.Cause(ctx))}
	}
}

// mergeEnv returns base with the variables of extra added, each replacing
// any earlier variable of the same name: a Go worker's os.Getenv would see
// the first of two.
func mergeEnv(base, extra []string) []string {
	all := append(slices.Clip(base), extra...)
	seen := make(map[string]bool, len(all))
	env := make([]string, 0, len(all))
	for _, kv := range slices.Backward(all) {
		name, _, _ := strings.Cut(kv, "=")
		if !seen[name] {
			seen[name] = true
			env = append(env, kv)
		}
	}
	slices.Reverse(env)
	return env
}

// identify records the first worker's report and names the plugin in logs
// and messages.
func (p *Plugin) identify(h hello) {
	p.file, p.name, p.version, p.root = h.file, h.name, h.version, h.root
	p.log.Store(p.cfg.Logger.With("plugin", h.name, "file", h.file))
	q := strconv.Quote(h.name)
	p.msgLate = "send_error: the request's deadline passed before it could be sent to plugin " + q +
		"; it was not sent and is safe to retry"
	p.msgBusy = "send_error: plugin " + q + " was busy with other requests until the request's deadline" +
		"; it was not sent and is safe to retry"
	p.msgRestarting = "send_error: plugin " + q + " is restarting and was not ready before the request's deadline" +
		"; it was not sent and is safe to retry"
	p.msgClosed = "send_error: plugin " + q + " is shut down; the request was not sent"
}

func (p *Plugin) logger() *slog.Logger { return p.log.Load() }

// Name returns the plugin's name, as the first worker reported it.
func (p *Plugin) Name() string { return p.name }

// Version returns the plugin's version, as the first worker reported it.
func (p *Plugin) Version() string { return p.version }

// Root returns the plugin's normalised root path, as pluginhost.Plugin.Root
// does.
func (p *Plugin) Root() string { return p.root }

// File returns the absolute path of the plugin's shared object.
func (p *Plugin) File() string { return p.file }

// State returns the plugin's state.
func (p *Plugin) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Stats returns the plugin's state and counters.
func (p *Plugin) Stats() Stats {
	p.mu.Lock()
	s := Stats{State: p.state}
	if p.cur != nil {
		s.PID = p.cur.pid
	}
	p.mu.Unlock()
	s.Restarts = p.restarts.Load()
	s.Crashes = p.crashes.Load()
	s.Timeouts = p.timeouts.Load()
	s.Pipe = p.pipe.Load() != nil
	return s
}

// setLocked moves to state s, unless Close has begun, and wakes the calls
// waiting for a change. p.mu is held.
func (p *Plugin) setLocked(s State) {
	if p.state == StateClosed {
		return
	}
	p.state = s
	close(p.changed)
	p.changed = make(chan struct{})
}

// publish makes w the serving worker, or reports false when Close has
// begun.
func (p *Plugin) publish(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == StateClosed {
		return false
	}
	p.cur = w
	p.setLocked(StateServing)
	return true
}

// retire stops serving calls with w, which has ended or is being killed.
func (p *Plugin) retire(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == w {
		p.cur = nil
		p.setLocked(StateRestarting)
	}
}

// closing reports whether Close has begun.
func (p *Plugin) closing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state == StateClosed
}

// killLocked kills the serving worker and the one starting, if any. p.mu is
// held.
func (p *Plugin) killLocked(why int32) {
	for _, w := range [...]*worker{p.cur, p.pending} {
		if w != nil {
			w.kill(why)
		}
	}
}

// Close stops the plugin: calls fail fast from now on; the batch in flight,
// if any, is answered; then the worker's socket is closed, and the worker
// calls the plugin's shutdown, once, and exits. If ctx ends first, the
// worker is killed, without its shutdown (a batch still running gets
// connection_failure), and the error wraps ctx.Err(). Close waits for the
// last of the worker's output to be logged. Later calls return the first
// one's result.
func (p *Plugin) Close(ctx context.Context) error {
	p.closeMu.Lock()
	defer p.closeMu.Unlock()
	if p.closed {
		return p.closeErr
	}
	p.mu.Lock()
	p.setLocked(StateClosed)
	p.mu.Unlock()
	// A pipe lets go of the worker once its calls are answered.
	p.stopping.Store(true)
	if pp := p.pipe.Load(); pp != nil {
		pp.wake()
	}

	var err error
	killed := func() {
		if err == nil {
			err = fmt.Errorf("isolate: plugin %q: its worker was killed, without its shutdown: %w", p.name, context.Cause(ctx))
		}
		p.mu.Lock()
		p.killLocked(killClose)
		p.mu.Unlock()
	}
	// Wait for the batch in flight, so that the worker is not stopped under
	// it.
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		killed()
		p.sem <- struct{}{} // the batch returns once its worker has died
	}
	close(p.stop)
	<-p.sem
	select {
	case <-p.done:
	case <-ctx.Done():
		close(p.kill)
		killed()
		<-p.done
	}
	outputs := make(chan struct{})
	go func() {
		p.outputs.Wait()
		close(outputs)
	}()
	select {
	case <-outputs:
	case <-ctx.Done():
		// A process the plugin started holds the worker's output open; its
		// readers end when it does.
	}
	p.closed, p.closeErr = true, err
	return err
}
