package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/internal/lograte"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// readBufferCap is gnet's read buffer: the most one read delivers.
const readBufferCap = 64 << 10

// Server serves REPE requests over TCP and passes each to the plugin whose
// root owns its query. Create it with New, then Start it; Shutdown stops it.
type Server struct {
	cfg    Config
	log    *slog.Logger
	router *router
	lanes  []*lane   // in the order New got the plugins
	epoch  time.Time // now counts from here

	eng    gnet.Engine
	addr   net.Addr
	booted chan struct{}
	done   chan struct{} // closed when gnet.Run returns
	runErr error

	draining atomic.Bool
	clock    atomic.Int64 // coarse now, set by the sweeper
	stop     chan struct{}

	// mu guards the connections, the event loops' state and the per-address
	// counts. draining is set under it too, so that a connection accepted
	// during Shutdown is either refused or seen by it.
	mu    sync.Mutex
	conns map[*conn]struct{}
	loops map[gnet.EventLoop]*loop
	perIP map[string]int

	// stalled holds the connections whose unread replies are over the bound,
	// for the waker (backpressure.go).
	stallMu   sync.Mutex
	stalled   map[*conn]*wakeState
	stallKick chan struct{}

	// wakeMu keeps wakes from reaching event loops that have stopped.
	wakeMu  sync.RWMutex
	stopped bool

	jobs        sync.WaitGroup // requests running on workers or handed over
	jobPool     sync.Pool
	stats       counters
	connsLog    lograte.Limiter
	perIPLog    lograte.Limiter
	overflowLog lograte.Limiter
	slowLog     lograte.Limiter

	// textOverflow answers the first request dropped by a connection that
	// overflowed maxWaiting.
	textOverflow string
}

// New returns a server for plugins, configured by cfg. It fails when cfg is
// invalid or two plugins claim the same root. The server does not own the
// plugins: shut them down after Shutdown returns.
func New(cfg Config, plugins []*pluginhost.Plugin) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		epoch: time.Now(),
		textOverflow: fmt.Sprintf("connection closed: more than %d bytes of requests arrived behind one frame while an earlier request was running; this request and those after it were dropped",
			cfg.MaxPendingInput),
		booted:    make(chan struct{}),
		done:      make(chan struct{}),
		stop:      make(chan struct{}),
		conns:     make(map[*conn]struct{}),
		loops:     make(map[gnet.EventLoop]*loop),
		perIP:     make(map[string]int),
		stalled:   make(map[*conn]*wakeState),
		stallKick: make(chan struct{}, 1),
	}
	all := make([]plugin, 0, len(plugins)+len(cfg.Isolated))
	for _, p := range plugins {
		all = append(all, p)
	}
	for _, p := range cfg.Isolated {
		all = append(all, p)
	}
	lanes := make([]*lane, len(all))
	for i, p := range all {
		pol := cfg.Policies[p.Root()].withDefaults(&s.cfg)
		if err := pol.validate(p.Root()); err != nil {
			return nil, err
		}
		lanes[i] = newLane(s, p, pol)
	}
	r, err := newRouter(lanes)
	if err != nil {
		return nil, err
	}
	s.router, s.lanes = r, lanes
	return s, nil
}

// Start listens on the configured address and serves in the background. It
// returns once the server accepts connections, or with the reason it cannot.
func (s *Server) Start() error {
	opts := []gnet.Option{
		gnet.WithNumEventLoop(s.cfg.EventLoops),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithReadBufferCap(readBufferCap),
		gnet.WithLogger(gnetLogger{s.log}),
	}
	go func() {
		// OnBoot runs on this goroutine, inside Run, so runErr has one writer.
		if err := gnet.Run((*handler)(s), "tcp://"+s.cfg.Addr, opts...); err != nil {
			s.runErr = err
		}
		close(s.done)
	}()
	select {
	case <-s.booted:
	case <-s.done:
		return fmt.Errorf("gateway: listen on %s: %w", s.cfg.Addr, s.runErr)
	}
	every := sweepEvery
	for _, d := range []time.Duration{s.cfg.ReadTimeout, s.cfg.WriteTimeout, s.cfg.IdleTimeout} {
		if d > 0 {
			every = min(every, max(d/4, time.Millisecond))
		}
	}
	go s.sweep(every)
	go s.waker()
	s.log.Info("listening", "addr", s.addr.String())
	return nil
}

// Addr returns the address the server listens on, with the port the system
// chose when the configured one was 0. It is nil before Start.
func (s *Server) Addr() net.Addr { return s.addr }

// Done is closed when the server has stopped, after Shutdown or a failure of
// its event loops; Err then says why.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns the error that stopped the server, once Done is closed.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.runErr
	default:
		return nil
	}
}

// Shutdown stops the server gracefully: new connections are closed as soon
// as they are accepted, every connection finishes the requests it has sent
// and is closed, then the event loops stop. It waits at most until ctx is
// done and then stops regardless; calls still running in plugins are then
// reported in the error, and their plugins must not be shut down. A second
// call waits for the event loops to stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	again := s.draining.Swap(true)
	var conns []*conn
	if !again {
		conns = make([]*conn, 0, len(s.conns))
		for cs := range s.conns {
			conns = append(conns, cs)
		}
	}
	s.mu.Unlock()
	if again {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("gateway: event loops still busy at the shutdown deadline: %w", ctx.Err())
		}
	}
	close(s.stop)
	// Wake every connection: idle ones close at once, busy ones after their
	// last reply. OnOpen refuses connections from now on, under the same
	// lock, so none is missed.
	for _, cs := range conns {
		s.wake(cs.gc, nil)
	}

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.connCount() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	s.wakeMu.Lock()
	s.stopped = true
	s.wakeMu.Unlock()
	stopErr := s.eng.Stop(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("gateway: event loops still busy at the shutdown deadline: %w", ctx.Err())
	}

	jobsDone := make(chan struct{})
	go func() { s.jobs.Wait(); close(jobsDone) }()
	select {
	case <-jobsDone:
	case <-ctx.Done():
		return fmt.Errorf("gateway: plugin calls still running at the shutdown deadline: %w", ctx.Err())
	}
	if stopErr != nil && !errors.Is(stopErr, context.DeadlineExceeded) {
		return fmt.Errorf("gateway: stop: %w", stopErr)
	}
	return nil
}

// wake asks gc's event loop to serve it again, unless the event loops have
// stopped.
func (s *Server) wake(gc gnet.Conn, cb gnet.AsyncCallback) {
	s.wakeMu.RLock()
	if !s.stopped {
		_ = gc.Wake(cb)
	}
	s.wakeMu.RUnlock()
}

// now reads the monotonic clock: time.Since of a time with a monotonic
// reading makes one clock read, as cheap as the runtime's own.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// loopLocked returns the state of gnet's event loop el; s.mu is held.
func (s *Server) loopLocked(el gnet.EventLoop) *loop {
	l := s.loops[el]
	if l == nil {
		l = new(loop)
		s.loops[el] = l
	}
	return l
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// handler is Server's gnet.EventHandler, kept apart so that the callbacks
// are not part of Server's API.
type handler Server

func (h *handler) OnBoot(eng gnet.Engine) gnet.Action {
	s := (*Server)(h)
	s.eng = eng
	addr, err := listenAddr(eng)
	if err != nil {
		s.runErr = err
		return gnet.Shutdown
	}
	s.addr = addr
	s.clock.Store(s.now())
	close(s.booted)
	return gnet.None
}

// listenAddr asks the kernel which address the engine's listener is bound to.
func listenAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("gateway: listener address: %w", err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("gateway: listener address: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, fmt.Errorf("gateway: listener address: unexpected socket address %T", sa)
}

func (h *handler) OnShutdown(gnet.Engine) {}

func (h *handler) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := (*Server)(h)
	cs := &conn{srv: s, gc: gc, remote: addrString(gc.RemoteAddr())}
	if s.cfg.MaxConnsPerIP > 0 {
		cs.ip = ipString(gc.RemoteAddr())
	}
	var refused string
	s.mu.Lock()
	switch {
	case s.draining.Load():
		refused = "draining"
	case len(s.conns) >= s.cfg.MaxConns:
		refused = "max_conns"
	case s.cfg.MaxConnsPerIP > 0 && s.perIP[cs.ip] >= s.cfg.MaxConnsPerIP:
		refused = "max_conns_per_ip"
	default:
		cs.loop = s.loopLocked(gc.EventLoop())
		s.conns[cs] = struct{}{}
		if s.cfg.MaxConnsPerIP > 0 {
			s.perIP[cs.ip]++
		}
	}
	s.mu.Unlock()
	switch refused {
	case "":
	case "max_conns":
		s.stats.maxConnsRefused.Add(1)
		s.connsLog.Do(func(suppressed int64) {
			s.log.Warn("connection limit reached; closing new connections", "limit", s.cfg.MaxConns, "remote", cs.remote, "suppressed", suppressed)
		})
		return nil, gnet.Close
	case "max_conns_per_ip":
		s.stats.perIPRefused.Add(1)
		s.perIPLog.Do(func(suppressed int64) {
			s.log.Warn("per-address connection limit reached; closing new connections from it", "limit", s.cfg.MaxConnsPerIP, "remote", cs.remote, "suppressed", suppressed)
		})
		return nil, gnet.Close
	default:
		return nil, gnet.Close
	}
	gc.SetContext(cs)
	if s.cfg.IdleTimeout > 0 {
		cs.idleSince.Store(s.clock.Load())
	}
	// Keep-alive probes find peers that vanished without closing. It is set
	// here rather than with gnet.WithTCPKeepAlive, which on the listener
	// hides a failed bind behind "setsockopt: bad file descriptor".
	if s.cfg.KeepAlive > 0 {
		if err := gc.SetKeepAlivePeriod(s.cfg.KeepAlive); err != nil {
			s.log.Debug("keep-alive not set", "remote", cs.remote, "error", err)
		}
	}
	s.log.Debug("connection opened", "remote", cs.remote)
	return nil, gnet.None
}

// addrString formats a peer's address for logs; nil (a peer already gone)
// gives "".
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// ipString returns the IP address of a, the key of the per-address limit.
func ipString(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	return addrString(a)
}

func (h *handler) OnClose(gc gnet.Conn, err error) gnet.Action {
	s := (*Server)(h)
	cs, _ := gc.Context().(*conn)
	if cs == nil {
		return gnet.None
	}
	if cs.stalled {
		cs.unstall()
	}
	// The peer ended its stream: answer what it sent before that.
	if !errors.Is(err, io.EOF) || !cs.handOver() {
		if cs.job != nil {
			cs.job.orphan()
			cs.job = nil
		}
	}
	if cs.intake != nil {
		cs.intake.free() // never handed to a worker
		cs.intake = nil
	}
	s.mu.Lock()
	delete(s.conns, cs)
	if cs.ip != "" {
		if s.perIP[cs.ip]--; s.perIP[cs.ip] <= 0 {
			delete(s.perIP, cs.ip)
		}
	}
	s.mu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) {
		s.log.Debug("connection closed", "remote", cs.remote, "error", err)
	} else {
		s.log.Debug("connection closed", "remote", cs.remote)
	}
	return gnet.None
}

func (h *handler) OnTraffic(gc gnet.Conn) (action gnet.Action) {
	s := (*Server)(h)
	cs, _ := gc.Context().(*conn)
	if cs == nil {
		return gnet.Close
	}
	defer func() {
		// A bug must cost one connection, not the server (as net/http does).
		if r := recover(); r != nil {
			cs.loop.run.abandon()
			s.log.Error("panic while serving a connection; closing it",
				"remote", cs.remote, "panic", r, "stack", string(debug.Stack()))
			action = gnet.Close
		}
	}()
	out, action, more := cs.serve(cs.loop.out[:0])
	if len(out) > 0 {
		// One write per batch of replies; gnet keeps what the socket does
		// not take. On error gnet closes the connection itself.
		_, _ = gc.Write(out)
	}
	if cap(out) > maxKeptOut {
		out = nil
	}
	cs.loop.out = out
	if action == gnet.None && (more || cs.parked) {
		action = cs.afterWrite()
	}
	return action
}

func (h *handler) OnTick() (time.Duration, gnet.Action) { return 0, gnet.None }

// gnetLogger passes gnet's own logs to slog. gnet's informational chatter is
// logged at debug level so that the gateway's log stays its own.
type gnetLogger struct{ log *slog.Logger }

func (l gnetLogger) Debugf(format string, args ...any) {
	l.log.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Infof(format string, args ...any) {
	l.log.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Warnf(format string, args ...any) {
	l.log.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Errorf(format string, args ...any) {
	l.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (l gnetLogger) Fatalf(format string, args ...any) {
	l.log.Error("gnet: " + fmt.Sprintf(format, args...))
}
