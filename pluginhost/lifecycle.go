package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// ErrBusy: a shutdown gave up waiting for calls still running in the plugin,
// and did not call repe_plugin_shutdown. A later Shutdown or Close may finish
// the job once they return.
var ErrBusy = errors.New("pluginhost: calls still running; plugin not shut down")

// closingBit is set in Plugin.state once shutdown has begun; the bits below
// it count calls in flight. One atomic word for both makes "no call starts
// after shutdown began, and shutdown waits for every call that did start"
// hold without a lock on the call path.
const closingBit = 1 << 62

// enter registers a call, or reports false once shutdown has begun.
func (p *Plugin) enter() bool {
	if p.state.Add(1)&closingBit != 0 {
		p.leave()
		return false
	}
	return true
}

// checkEntered, in -race builds, counts a call that entered as inside the
// plugin, until Call's deferred decrement, and panics if
// repe_plugin_shutdown has already run.
func (p *Plugin) checkEntered() {
	p.inPlugin.Add(1)
	if p.shutDown.Load() {
		panic("pluginhost: repe_plugin_call after repe_plugin_shutdown in " + p.file)
	}
}

// leave ends a call; the last one out after shutdown began wakes Shutdown.
func (p *Plugin) leave() {
	if p.state.Add(-1) == closingBit {
		p.idleOnce.Do(p.closeIdle)
	}
}

func (p *Plugin) closeIdle() { close(p.idle) }

// beginClose refuses new calls from now on. It is idempotent.
func (p *Plugin) beginClose() {
	if p.state.Or(closingBit) == 0 {
		p.idleOnce.Do(p.closeIdle)
	}
}

// Shutdown stops new calls (they get a *repe.Error), waits until every call
// in flight has returned, then calls repe_plugin_shutdown, exactly once over
// the plugin's life however often and from wherever Shutdown is called. If
// ctx is done first, the plugin is not shut down and the error wraps ErrBusy
// and ctx.Err(). Calls stay refused either way.
func (p *Plugin) Shutdown(ctx context.Context) error {
	p.beginClose()
	select {
	case <-p.idle:
	default:
		// Checked apart from ctx so that an idle plugin is shut down even
		// when ctx is already done.
		select {
		case <-p.idle:
		case <-ctx.Done():
			return fmt.Errorf("%w: plugin %q (%s), %d calls in flight: %w",
				ErrBusy, p.name, p.file, p.state.Load()&^closingBit, ctx.Err())
		}
	}
	p.shutdownOnce.Do(p.callShutdown)
	return nil
}

// callShutdown runs under shutdownOnce.
func (p *Plugin) callShutdown() {
	if raceEnabled {
		if n := p.inPlugin.Load(); n != 0 {
			panic("pluginhost: repe_plugin_shutdown with " + strconv.Itoa(int(n)) + " calls still in " + p.file)
		}
		p.shutDown.Store(true)
	}
	if p.shutdownFn != 0 {
		ccall(p.shutdownFn, 0, 0)
	}
	if p.ctx != nil {
		p.ctx.release()
	}
}
