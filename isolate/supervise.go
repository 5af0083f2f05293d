//go:build linux

package isolate

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/pluginhost"
)

// supervise runs the plugin's workers, one after another, from Start to
// Close: it starts the first and reports on first, then restarts each one
// that ends, with backoff, until Close.
//
// It runs locked to its OS thread, and never unlocks it. Every worker is
// forked from this thread, and PR_SET_PDEATHSIG (SIGKILL), which the kernel
// delivers when the thread that forked a process exits rather than when
// the whole process does, must not fire while the gateway lives: an
// unlocked goroutine would fork from whatever thread runs it, and a thread
// can exit under the gateway (when a goroutine locked to it returns). This
// thread exits when this goroutine returns, after the last worker is gone.
func (p *Plugin) supervise(first chan<- error) {
	runtime.LockOSThread()
	defer close(p.done)

	w, err := p.start(true)
	if err != nil {
		first <- err
		return
	}
	if !p.publish(w) {
		// Start gave up as the worker came up.
		first <- nil
		p.stopWorker(w)
		return
	}
	first <- nil
	go p.attach(w)
	var fails failures
	for {
		select {
		case <-w.exited:
		case <-p.stop:
			p.stopWorker(w)
			return
		}
		p.retire(w)
		down := time.Now()
		if p.closing() {
			// Close killed it, having run out of time.
			w.release()
			return
		}
		n := fails.add(down, p.cfg.FailureWindow, p.cfg.MaxFailures)
		failed := n >= p.cfg.MaxFailures
		delay := p.backoff(n)
		log := p.logger()
		attrs := []any{"pid", w.pid, "status", w.status, "uptime", down.Sub(w.started).Round(time.Millisecond), "failures", n}
		if !failed {
			attrs = append(attrs, "restart_in", delay)
		}
		switch w.killed.Load() {
		case killDeadline:
			p.timeouts.Add(1)
			log.Error("plugin worker killed: a call passed its deadline", attrs...)
		case killProtocol:
			p.crashes.Add(1)
			log.Error("plugin worker killed: it broke the worker protocol", attrs...)
		default:
			p.crashes.Add(1)
			log.Error("plugin worker died", attrs...)
		}
		w.release()
		if failed {
			p.fail(n)
			return
		}

		for {
			if !p.sleep(delay) {
				return
			}
			if w, err = p.start(false); err == nil {
				break
			}
			if p.closing() {
				return
			}
			n = fails.add(time.Now(), p.cfg.FailureWindow, p.cfg.MaxFailures)
			if n >= p.cfg.MaxFailures {
				log.Error("plugin worker failed to start", "error", err, "failures", n)
				p.fail(n)
				return
			}
			delay = p.backoff(n)
			log.Error("plugin worker failed to start", "error", err, "failures", n, "retry_in", delay)
		}
		if !p.publish(w) {
			p.stopWorker(w)
			return
		}
		p.restarts.Add(1)
		go p.attach(w)
		log.Info("plugin worker restarted", "pid", w.pid, "down", time.Since(down).Round(time.Millisecond), "restarts", p.restarts.Load())
	}
}

// fail moves the plugin to StateFailed after n failures within the window,
// and logs it. No worker is started again: a plugin that keeps failing is
// down until the gateway restarts, and its calls fail fast meanwhile.
func (p *Plugin) fail(n int) {
	text := fmt.Sprintf("send_error: plugin %q has failed (%d worker failures within %v) and is not restarted; the request was not sent",
		p.name, n, p.cfg.FailureWindow)
	p.mu.Lock()
	p.failText = text
	p.setLocked(StateFailed)
	p.mu.Unlock()
	p.logger().Error("plugin failed: its circuit is open; it is not restarted, and its calls fail fast",
		"failures", n, "window", p.cfg.FailureWindow)
}

// backoff is the wait before a restart after the nth failure within the
// window: BackoffMin, doubled for each earlier failure, up to BackoffMax.
func (p *Plugin) backoff(n int) time.Duration {
	d := p.cfg.BackoffMin
	for i := 1; i < n && d < p.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.cfg.BackoffMax)
}

// sleep waits d, or reports false when Close stops the plugin first.
func (p *Plugin) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !p.closing()
	case <-p.stop:
		return false
	}
}

// start starts a worker and completes its handshake. A later worker must
// report the name and root of the first: the gateway routes by them.
func (p *Plugin) start(first bool) (*worker, error) {
	fail := func(err error) (*worker, error) { return nil, &pluginhost.LoadError{File: p.file, Err: err} }
	w, err := p.spawn()
	if err != nil {
		return fail(fmt.Errorf("%w: cannot start %s: %w", ErrWorker, p.cfg.Exe, err))
	}
	p.mu.Lock()
	p.pending = w
	if p.state == StateClosed {
		w.kill(killStart)
	}
	p.mu.Unlock()

	h, err := w.handshake(p.cfg.StartTimeout)
	if err == nil && !first && (h.name != p.name || h.root != p.root) {
		err = fmt.Errorf("%w: the plugin now reports name %q and root %q, not %q and %q", ErrWorker, h.name, h.root, p.name, p.root)
	}
	p.mu.Lock()
	p.pending = nil
	p.mu.Unlock()
	if err != nil {
		w.kill(killStart)
		<-w.exited
		w.release()
		return fail(err)
	}
	if first {
		p.identify(h)
	}
	p.logger().Debug("plugin worker started", "pid", w.pid, "took", time.Since(w.started).Round(time.Millisecond))
	return w, nil
}

// stopWorker stops w gracefully: with its socket closed for writing, the
// worker reads EOF, shuts the plugin down and exits. Close's running out of
// time kills it instead.
func (p *Plugin) stopWorker(w *worker) {
	unix.Shutdown(w.sock, unix.SHUT_WR)
	select {
	case <-w.exited:
	case <-p.kill:
		w.kill(killClose)
		<-w.exited
	}
	p.retire(w)
	if w.killed.Load() == 0 && w.status != "exited with status 0" {
		p.logger().Warn("plugin worker did not stop cleanly", "pid", w.pid, "status", w.status)
	} else {
		p.logger().Debug("plugin worker stopped", "pid", w.pid, "status", w.status)
	}
	w.release()
}

// failures remembers the times of the latest failures.
type failures struct {
	at []time.Time
}

// add records a failure at now and returns how many, at most max, fall
// within window before now.
func (f *failures) add(now time.Time, window time.Duration, max int) int {
	keep := f.at[:0]
	for _, t := range f.at {
		if now.Sub(t) < window {
			keep = append(keep, t)
		}
	}
	f.at = append(keep, now)
	if len(f.at) > max {
		f.at = f.at[len(f.at)-max:]
	}
	return len(f.at)
}
