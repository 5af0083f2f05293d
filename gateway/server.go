package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/repe-gw/repe-gw/internal/lograte"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// Server serves REPE requests and passes each to the plugin whose root owns
// its query. Create it with New, then Start it to listen on its TCP address
// (gnet), and Serve other listeners if need be; Shutdown stops it.
type Server struct {
	cfg   Config
	log   *slog.Logger
	epoch time.Time // now counts from here

	// routes is loaded once per batch; Swap replaces it whole. own is the
	// gateway's own root, routed in every generation.
	routes atomic.Pointer[router]
	own    *lane
	// swapMu keeps swaps one at a time; reloads counts them.
	swapMu  sync.Mutex
	reloads reloadCounts

	// cli runs gnet's event loops; accepting counts the accept loop that
	// enrolls connections in them (listen.go).
	cli       *gnet.Client
	addr      net.Addr
	accepting sync.WaitGroup
	stopOnce  sync.Once
	done      chan struct{} // closed when the event loops have stopped
	runErr    error

	draining atomic.Bool
	clock    atomic.Int64 // coarse now, set by the sweeper
	stop     chan struct{}

	// mu guards the connections, the event loops' state, the per-address
	// counts and the listeners, the gateway's own and those given to
	// Serve. draining is set under it too, so that a connection accepted
	// during Shutdown is either refused or seen by it, and a listener is
	// either closed by it or not opened.
	mu        sync.Mutex
	conns     map[*conn]struct{}
	loops     map[gnet.EventLoop]*loop
	perIP     map[string]int
	listeners map[net.Listener]struct{}

	housekeeping sync.Once

	// stalled holds the connections whose unread replies are over the bound,
	// for the waker (backpressure.go).
	stallMu   sync.Mutex
	stalled   map[*conn]*wakeState
	stallKick chan struct{}

	// wakeMu keeps wakes from reaching event loops that have stopped.
	wakeMu  sync.RWMutex
	stopped bool
	// enrolling counts the workers' sockets being given to the loops
	// (pipe.go), which stop only once none is.
	enrolling sync.WaitGroup

	jobs    sync.WaitGroup // requests running on workers or handed over
	jobPool sync.Pool
	// oneshotLoops recycles the loops of Do's calls (oneshot.go).
	oneshotLoops sync.Pool
	stats        counters
	timeCalls    bool // the access log or the slow-call log is on
	slowCallLog  lograte.Limiter
	// streamTallies count the stream connections of each transport; gnet
	// loops keep their own.
	streamTallies [numTransports]*tally
	handshakes    atomic.Int64 // TLS handshakes in ServeConn, before admission
	// gwTally counts the replies no plugin made, and the gateway's own
	// root's, one slot per event loop as a lane's (tally.go).
	gwTally     []laneTally
	connsLog    lograte.Limiter
	enrollLog   lograte.Limiter
	perIPLog    lograte.Limiter
	overflowLog lograte.Limiter
	slowLog     lograte.Limiter

	// hooks are the hook plugins, nil when there are none; Swap replaces
	// them (hooks.go).
	hooks      atomic.Pointer[hookChain]
	hookCounts hookCounts

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
		done:      make(chan struct{}),
		stop:      make(chan struct{}),
		conns:     make(map[*conn]struct{}),
		loops:     make(map[gnet.EventLoop]*loop),
		perIP:     make(map[string]int),
		listeners: make(map[net.Listener]struct{}),
		stalled:   make(map[*conn]*wakeState),
		stallKick: make(chan struct{}, 1),
	}
	s.gwTally = s.newLaneTallies()
	// The gateway's own root is routed as a plugin's, and its replies are
	// counted as the gateway's.
	s.own = newLane(s, introspection{s}, Policy{}.withDefaults(&s.cfg))
	s.own.tally = s.gwTally
	r, _, err := s.build(Routes{Plugins: plugins, Isolated: cfg.Isolated, Policies: cfg.Policies, Hashes: cfg.Hashes}, nil)
	if err != nil {
		return nil, err
	}
	s.routes.Store(r)
	s.hooks.Store(newHookChain(cfg.Hooks, nil))
	s.timeCalls = cfg.AccessLog || cfg.SlowCall > 0
	for t := range s.streamTallies {
		s.streamTallies[t] = newTally(s.streamSlot(), Transport(t))
	}
	return s, nil
}

// Start listens on the configured address and serves in the background. It
// returns once the server accepts connections, or with the reason it cannot.
func (s *Server) Start() error {
	if err := s.startGnet(); err != nil {
		return err
	}
	s.startHousekeeping()
	s.log.Info("listening", "addr", s.addr.String())
	return nil
}

// startHousekeeping starts the sweeper and the waker, once, for whichever
// of Start and Serve comes first.
func (s *Server) startHousekeeping() {
	s.housekeeping.Do(func() {
		every := sweepEvery
		for _, d := range []time.Duration{s.cfg.ReadTimeout, s.cfg.WriteTimeout, s.cfg.IdleTimeout} {
			if d > 0 {
				every = min(every, max(d/4, time.Millisecond))
			}
		}
		s.clock.Store(s.now())
		go s.sweep(every)
		go s.waker()
	})
}

// Addr returns the address the server listens on, with the port the system
// chose when the configured one was 0. It is nil before Start.
func (s *Server) Addr() net.Addr { return s.addr }

// Done is closed when the server has stopped, after Shutdown or a failure of
// its listener; Err then says why.
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

// Shutdown stops the server gracefully: its listener and those given to
// Serve close at once, so that new connections are refused (or, with
// ReusePort, go to another process on the port); a connection accepted
// just before is half-closed as soon as it is admitted; every connection
// answers the requests it had received, half-closes and is closed once its
// client has closed too or gone quiet (drain.go); then the event loops
// stop. It waits at most until ctx is done and then stops regardless;
// calls still running in plugins are then reported in the error, and their
// plugins must not be shut down. A second call waits for the event loops
// to stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	again := s.draining.Swap(true)
	var conns []*conn
	if !again {
		conns = make([]*conn, 0, len(s.conns))
		for cs := range s.conns {
			conns = append(conns, cs)
		}
		for ln := range s.listeners {
			_ = ln.Close()
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
	// last reply. admit refuses connections from now on, under the same
	// lock, so none is missed.
	for _, cs := range conns {
		cs.wake(nil)
	}

	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	lastWake := time.Now()
	for s.connCount() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case now := <-tick.C:
			rewake := now.Sub(lastWake) >= drainRewake
			if rewake {
				lastWake = now
			}
			s.drainTick(rewake, false)
		}
	}
	if ctx.Err() != nil {
		s.drainTick(false, true) // a stream connection would linger on
	}
	s.stopLoops()
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
	return s.runErr // what stopped the server before, if anything did
}

// now reads the monotonic clock: time.Since of a time with a monotonic
// reading makes one clock read, as cheap as the runtime's own.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// loopLocked returns the state of gnet's event loop el; s.mu is held.
func (s *Server) loopLocked(el gnet.EventLoop) *loop {
	l := s.loops[el]
	if l == nil {
		// gnet runs EventLoops loops, each with a slot of its own; should it
		// run more, the extra ones share the stream connections' slot,
		// which is only slower.
		l = newLoop(newTally(min(len(s.loops), s.streamSlot()), TransportTCP))
		s.loops[el] = l
	}
	return l
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// newConn returns the core's state for a connection from remote.
func (s *Server) newConn(remote net.Addr) *conn {
	cs := &conn{}
	s.initConn(cs, remote)
	return cs
}

// initConn makes the zero cs the state of a connection from remote.
func (s *Server) initConn(cs *conn, remote net.Addr) {
	cs.srv, cs.remote = s, addrString(remote)
	if s.cfg.MaxConnsPerIP > 0 {
		cs.ip = ipString(remote)
	}
}

// admit counts cs among the server's connections, or refuses it: while
// draining and over MaxConns or MaxConnsPerIP. loop gives the state of the
// goroutine that will serve cs; it is called under s.mu. A refused
// connection is to be closed at once.
func (s *Server) admit(cs *conn, loop func() *loop) bool {
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
		cs.loop = loop()
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
		return false
	case "max_conns_per_ip":
		s.stats.perIPRefused.Add(1)
		s.perIPLog.Do(func(suppressed int64) {
			s.log.Warn("per-address connection limit reached; closing new connections from it", "limit", s.cfg.MaxConnsPerIP, "remote", cs.remote, "suppressed", suppressed)
		})
		return false
	default:
		return false
	}
	if s.hooks.Load() != nil && !s.hookConnect(cs) {
		return false
	}
	if s.cfg.IdleTimeout > 0 {
		cs.idleSince.Store(s.clock.Load())
	}
	s.stats.accepted[cs.loop.tally.transport].Add(1)
	if s.debug() {
		s.log.Debug("connection opened", "remote", cs.remote)
	}
	return true
}

// closed lets go of a connection that closed with err: its running job, its
// unfinished read-ahead and its place among the server's connections.
func (s *Server) closed(cs *conn, err error) {
	cs.direct.interrupt()
	jobRuns := false
	if cs.job != nil {
		jobRuns = cs.job.orphan()
		cs.job = nil
	}
	if cs.hooks != nil {
		s.hookClose(cs, jobRuns)
	}
	if cs.stalled {
		cs.unstall()
	}
	if cs.intake != nil {
		cs.intake.free() // never handed to a worker
		cs.intake = nil
	}
	s.stats.closedBy[cs.loop.tally.transport][cs.why.Load()].Add(1)
	s.mu.Lock()
	delete(s.conns, cs)
	if cs.ip != "" {
		if s.perIP[cs.ip]--; s.perIP[cs.ip] <= 0 {
			delete(s.perIP, cs.ip)
		}
	}
	s.mu.Unlock()
	switch {
	case !s.debug():
	case err != nil && !errors.Is(err, io.EOF):
		s.log.Debug("connection closed", "remote", cs.remote, "error", err)
	default:
		s.log.Debug("connection closed", "remote", cs.remote)
	}
}

// debug reports whether debug logs are on: a connection's open and close
// are logged only then, since making the arguments of a log call costs
// an allocation each, which a one-shot call (Do) pays per request.
func (s *Server) debug() bool { return s.log.Enabled(context.Background(), slog.LevelDebug) }

// addrString formats a peer's address for logs; nil (a peer already gone)
// gives "".
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// ipString returns the IP address of a, the key of the per-address limit:
// the host of an address that is HOST:PORT, or the whole address.
func ipString(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	s := addrString(a)
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}
