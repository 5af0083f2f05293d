package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/pluginhost"
)

// keepAlive is the idle time before TCP keep-alive probes start.
const keepAlive = time.Minute

// readBufferCap is gnet's read buffer: the most one read delivers.
const readBufferCap = 64 << 10

// Server serves REPE requests over TCP and passes each to the plugin whose
// root owns its query. Create it with New, then Start it; Shutdown stops it.
type Server struct {
	cfg    Config
	log    *slog.Logger
	router *router

	// maxWaiting bounds what a connection may buffer while its previous
	// request runs on a worker: memory grows only with bytes actually sent,
	// and only so far.
	maxWaiting int

	eng    gnet.Engine
	addr   net.Addr
	booted chan struct{}
	done   chan struct{} // closed when gnet.Run returns
	runErr error

	draining atomic.Bool
	clock    atomic.Int64 // coarse nanotime, set by the sweeper
	stop     chan struct{}

	mu    sync.Mutex
	conns map[*conn]struct{}
	loops map[gnet.EventLoop]*loop

	jobs        sync.WaitGroup // requests running on workers
	jobPool     sync.Pool
	connsLog    rateLimited
	overflowLog rateLimited

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
	lanes := make([]*lane, len(plugins))
	for i, p := range plugins {
		lanes[i] = newLane(p, &cfg)
	}
	r, err := newRouter(lanes)
	if err != nil {
		return nil, err
	}
	maxWaiting := int(max(2*cfg.MaxMessageSize, 1<<20))
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		router:     r,
		maxWaiting: maxWaiting,
		textOverflow: fmt.Sprintf("connection closed: more than %d bytes of requests arrived while an earlier request was running; this request and those after it were dropped",
			maxWaiting),
		booted: make(chan struct{}),
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
		conns:  make(map[*conn]struct{}),
		loops:  make(map[gnet.EventLoop]*loop),
	}, nil
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
	if s.cfg.ReadTimeout > 0 {
		go s.sweep(min(s.cfg.ReadTimeout/4, time.Second))
	}
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
	if s.draining.Swap(true) {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("gateway: event loops still busy at the shutdown deadline: %w", ctx.Err())
		}
	}
	close(s.stop)
	// Wake every connection: idle ones close at once, busy ones after their
	// last reply.
	s.mu.Lock()
	for cs := range s.conns {
		_ = cs.gc.Wake(nil)
	}
	s.mu.Unlock()

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.connCount() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
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

// sweep advances the coarse clock and closes connections that stalled inside
// a frame for longer than the read timeout.
func (s *Server) sweep(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var stale []*conn
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := nanotime()
		s.clock.Store(now)
		// partialSince was read from the clock as it stood, up to one tick
		// before the bytes arrived: allow that tick, so that no connection
		// is closed before ReadTimeout has really passed.
		deadline := now - int64(s.cfg.ReadTimeout) - int64(every)
		stale = stale[:0]
		s.mu.Lock()
		for cs := range s.conns {
			if p := cs.partialSince.Load(); p != 0 && p < deadline {
				stale = append(stale, cs)
			}
		}
		s.mu.Unlock()
		for _, cs := range stale {
			s.log.Debug("closing connection stalled inside a frame", "remote", cs.gc.RemoteAddr(), "timeout", s.cfg.ReadTimeout)
			_ = cs.gc.Close()
		}
	}
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
	s.clock.Store(nanotime())
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
	if s.draining.Load() {
		return nil, gnet.Close
	}
	cs := &conn{srv: s, gc: gc}
	s.mu.Lock()
	full := len(s.conns) >= s.cfg.MaxConns
	if !full {
		cs.loop = s.loopLocked(gc.EventLoop())
		s.conns[cs] = struct{}{}
	}
	s.mu.Unlock()
	if full {
		s.connsLog.do(func(suppressed int64) {
			s.log.Warn("connection limit reached; closing new connections", "limit", s.cfg.MaxConns, "remote", gc.RemoteAddr(), "suppressed", suppressed)
		})
		return nil, gnet.Close
	}
	gc.SetContext(cs)
	// Keep-alive probes find peers that vanished without closing. It is set
	// here rather than with gnet.WithTCPKeepAlive, which on the listener
	// hides a failed bind behind "setsockopt: bad file descriptor".
	if err := gc.SetKeepAlivePeriod(keepAlive); err != nil {
		s.log.Debug("keep-alive not set", "remote", gc.RemoteAddr(), "error", err)
	}
	s.log.Debug("connection opened", "remote", gc.RemoteAddr())
	return nil, gnet.None
}

func (h *handler) OnClose(gc gnet.Conn, err error) gnet.Action {
	s := (*Server)(h)
	cs, _ := gc.Context().(*conn)
	if cs == nil {
		return gnet.None
	}
	if cs.job != nil {
		cs.job.orphan()
		cs.job = nil
	}
	if cs.intake != nil {
		cs.intake.free() // never handed to a worker
		cs.intake = nil
	}
	s.mu.Lock()
	delete(s.conns, cs)
	s.mu.Unlock()
	s.log.Debug("connection closed", "remote", gc.RemoteAddr(), "error", err)
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
			s.log.Error("panic while serving a connection; closing it",
				"remote", gc.RemoteAddr(), "panic", r, "stack", string(debug.Stack()))
			action = gnet.Close
		}
	}()
	out, action := cs.serve(cs.loop.out[:0])
	if len(out) > 0 {
		// One write per batch of replies; gnet keeps what the socket does
		// not take. On error gnet closes the connection itself.
		_, _ = gc.Write(out)
	}
	if cap(out) > maxKeptOut {
		out = nil
	}
	cs.loop.out = out
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
