// Package admin serves the gateway's admin listener: an HTTP server, apart
// from the REPE port, for operators and their tools.
//
//	GET /metrics        Prometheus metrics, repe_gw_* and the process and Go collectors
//	GET /healthz        200 while the process runs
//	GET /readyz         200 while serving; 503 once shutdown begins, while no
//	                    plugin is loaded, or while a required plugin has failed
//	GET /plugins        every plugin as JSON: who it is, where it runs, its counts
//	GET /               a live status page, fed once a second by /status.json
//	GET /debug/pprof/   the runtime profiles, only with Config.Pprof
//
// # Reading the gateway
//
// Nothing here runs on the request path. Every figure is read from the
// gateway when it is asked for: a scrape of /metrics calls
// gateway.Server.Stats and PluginStats once, and a custom collector turns
// those snapshots into metrics. The gateway keeps its counters per event
// loop or per plugin and sums them on read, so counting costs requests no
// lock and no allocation. A new counter in gateway.Stats or PluginStats
// becomes a metric with one line in metrics.go.
//
// # Who may ask
//
// The listener binds where Config.Addr says, loopback unless told
// otherwise: Start refuses an address that is not loopback unless a token is
// set or Config.Insecure says so, as Redis's protected mode does. With a
// token, every path but /healthz and /readyz, which probes must reach
// without secrets, requires "Authorization: Bearer <token>".
package admin
