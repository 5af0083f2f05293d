package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/repe-gw/repe-gw/gateway"
)

// ErrNotLoopback is returned by Start for an address that is not loopback,
// when neither Config.Token nor Config.Insecure allows it.
var ErrNotLoopback = errors.New("admin: not a loopback address, and no token is set")

// Config configures a Server. Gateway is required; every other field's
// zero value is valid.
type Config struct {
	// Addr is the TCP address to listen on, HOST:PORT. Default
	// DefaultAddr, loopback.
	Addr string
	// Token, when not empty, must be given as "Authorization: Bearer
	// <Token>" on every path but /healthz and /readyz. ReadToken reads it
	// from a file.
	Token string
	// Insecure lets Start listen on an address that is not loopback
	// without a token: anyone who reaches it then sees the metrics and the
	// plugins' files.
	Insecure bool
	// Pprof serves the runtime profiles under /debug/pprof/. They show the
	// gateway's code and memory, and cost CPU while a profile runs, so they
	// are off by default.
	Pprof bool
	// ReadyWithoutPlugins makes /readyz answer 200 while no plugin is
	// loaded. Default false: a gateway that would answer every request
	// method_not_found is not ready.
	ReadyWithoutPlugins bool

	// Gateway is the server whose counts are shown.
	Gateway *gateway.Server
	// Plugins describes the gateway's plugins, in any order; they are
	// matched with gateway.PluginStats by root. SetPlugins replaces them
	// when the gateway's plugins change.
	Plugins []Plugin
	// Logger receives the listener's logs. Default: none.
	Logger *slog.Logger
	// Reload, when set, is served as POST /reload: it reloads the
	// gateway's plugins and returns a report, answered as JSON, and
	// whether the reload went through. Default nil: no such path.
	Reload func() (report any, ok bool)
}

// DefaultAddr is the default of Config.Addr: loopback, beside the REPE
// port's default of 5099.
const DefaultAddr = "127.0.0.1:9099"

// Server is the admin listener. Create it with New, then Start it; Drain
// turns readiness off, and Shutdown stops it.
type Server struct {
	cfg      Config
	log      *slog.Logger
	http     *http.Server
	addr     net.Addr
	draining atomic.Bool
	started  time.Time
	plugins  atomic.Pointer[[]Plugin] // Config.Plugins, then SetPlugins'
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Gateway == nil {
		return nil, errors.New("admin: no gateway")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, started: time.Now()}
	s.plugins.Store(&cfg.Plugins)

	// A registry of its own, not prometheus.DefaultRegisterer: no state
	// shared with other code in the process, and two servers in one test
	// binary do not clash.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		newCollector(s),
	)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("GET /plugins", s.servePlugins)
	if cfg.Reload != nil {
		mux.HandleFunc("POST /reload", s.serveReload)
	}
	mux.HandleFunc("GET /status.json", s.serveStatus)
	mux.HandleFunc("GET /{$}", serveStatusPage)
	if cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.http = &http.Server{
		Handler: s.authorize(mux),
		// An admin client sends small requests; a slow one must not hold
		// a connection open for ever.
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start listens on Config.Addr and serves in the background. It refuses,
// with ErrNotLoopback and before binding, an address that is not loopback
// unless Config.Token or Config.Insecure allows it: an empty host is every
// interface, and a host name counts as loopback only when every address it
// has is.
func (s *Server) Start() error {
	if s.cfg.Token == "" && !s.cfg.Insecure {
		if err := CheckLoopback(s.cfg.Addr); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	s.addr = ln.Addr()
	go func() {
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "error", err)
		}
	}()
	return nil
}

// CheckLoopback returns an error that is ErrNotLoopback unless addr's host
// is loopback, as Start judges it; callers may check an address before
// they have a Server.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if host != "" {
		if ips, err = net.LookupIP(host); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: %s listens on every interface", ErrNotLoopback, addr)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrNotLoopback, addr)
		}
	}
	return nil
}

// Addr returns the address the listener is bound to, nil before Start.
func (s *Server) Addr() net.Addr { return s.addr }

// Drain turns readiness off for good: /readyz answers 503 from now on, so
// that load balancers stop sending before the gateway stops accepting.
func (s *Server) Drain() { s.draining.Store(true) }

// SetPlugins replaces the description of the gateway's plugins, after a
// reload changed them; it is safe while the listener serves.
func (s *Server) SetPlugins(plugins []Plugin) { s.plugins.Store(&plugins) }

// Shutdown stops the listener, waiting until ctx is done for the requests
// it is serving.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// ready tells whether the gateway is ready for traffic, and if not why.
func (s *Server) ready() (bool, string) {
	if s.draining.Load() {
		return false, "shutting down"
	}
	plugins := *s.plugins.Load()
	if len(plugins) == 0 && !s.cfg.ReadyWithoutPlugins {
		return false, "no plugin loaded"
	}
	for _, p := range plugins {
		if _, failed := p.state(); failed && p.Required {
			return false, "required plugin " + p.Name + " failed"
		}
	}
	return true, "ready"
}

// serveReload answers POST /reload with the reload's report: 200 when it
// went through, 422 when it changed nothing because a plugin file or the
// configuration could not be used.
func (s *Server) serveReload(w http.ResponseWriter, _ *http.Request) {
	report, ok := s.cfg.Reload()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(report) // a client that went away is no error of ours
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.ready()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, why)
}
