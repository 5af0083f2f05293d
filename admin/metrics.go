package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/repe-gw/repe-gw/gateway"
)

// The tables below turn the fields of gateway.Stats and PluginStats into
// metrics. A field the gateway adds becomes a metric with one line in
// one of them.

// closeReasons are the values of repe_gw_connections_closed_total's
// reason label, with the count of each.
var closeReasons = []struct {
	reason string
	count  func(*gateway.Stats) uint64
}{
	{"client", func(s *gateway.Stats) uint64 { return s.ClientCloses }},
	{"bad_frame", func(s *gateway.Stats) uint64 { return s.BadFrames }},
	{"slow_consumer", func(s *gateway.Stats) uint64 { return s.SlowConsumers }},
	{"flood", func(s *gateway.Stats) uint64 { return s.Floods }},
	{"read_timeout", func(s *gateway.Stats) uint64 { return s.ReadTimeouts }},
	{"idle_timeout", func(s *gateway.Stats) uint64 { return s.IdleTimeouts }},
	{"shutdown", func(s *gateway.Stats) uint64 { return s.ShutdownCloses }},
	{"failed_call", func(s *gateway.Stats) uint64 { return s.FailedCalls }},
	{"panic", func(s *gateway.Stats) uint64 { return s.Panics }},
	{"max_conns", func(s *gateway.Stats) uint64 { return s.MaxConnsRefused }},
	{"max_conns_per_ip", func(s *gateway.Stats) uint64 { return s.PerIPRefused }},
}

// metric is a metric with one series, or one per plugin labelled plugin.
type metric[T any] struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*T) float64
}

var gatewayMetrics = []metric[gateway.Stats]{
	{"repe_gw_connections_open", "Connections open now.",
		prometheus.GaugeValue, func(s *gateway.Stats) float64 { return float64(s.Open) }},
	{"repe_gw_connections_accepted_total", "Connections admitted.",
		prometheus.CounterValue, func(s *gateway.Stats) float64 { return float64(s.Accepted) }},
	{"repe_gw_received_bytes_total", "Bytes of requests read from every connection.",
		prometheus.CounterValue, func(s *gateway.Stats) float64 { return float64(s.BytesIn) }},
	{"repe_gw_sent_bytes_total", "Bytes of replies written to every connection.",
		prometheus.CounterValue, func(s *gateway.Stats) float64 { return float64(s.BytesOut) }},
}

// transportMetrics are labelled transport: tcp, tls, websocket, http or
// jsonrpc (gateway.Transport).
var transportMetrics = []metric[gateway.TransportStats]{
	{"repe_gw_transport_connections_open", "Connections open now, by transport; for http and jsonrpc, calls in progress.",
		prometheus.GaugeValue, func(t *gateway.TransportStats) float64 { return float64(t.Open) }},
	{"repe_gw_transport_connections_accepted_total", "Connections admitted, by transport; for http and jsonrpc, one per call.",
		prometheus.CounterValue, func(t *gateway.TransportStats) float64 { return float64(t.Accepted) }},
	{"repe_gw_transport_connections_closed_total", "Connections closed, by transport.",
		prometheus.CounterValue, func(t *gateway.TransportStats) float64 { return float64(t.Closed) }},
	{"repe_gw_transport_notifies_total", "Notify requests, which get no reply, by transport.",
		prometheus.CounterValue, func(t *gateway.TransportStats) float64 { return float64(t.Notifies) }},
	{"repe_gw_transport_received_bytes_total", "Bytes of REPE requests read, by transport.",
		prometheus.CounterValue, func(t *gateway.TransportStats) float64 { return float64(t.BytesIn) }},
	{"repe_gw_transport_sent_bytes_total", "Bytes of REPE replies written, by transport.",
		prometheus.CounterValue, func(t *gateway.TransportStats) float64 { return float64(t.BytesOut) }},
}

var pluginMetrics = []metric[gateway.PluginStats]{
	{"repe_gw_calls_in_flight", "Calls in the plugin now, stuck ones included.",
		prometheus.GaugeValue, func(p *gateway.PluginStats) float64 { return float64(p.InFlight) }},
	{"repe_gw_requests_queued", "Requests waiting for one of the plugin's concurrency slots.",
		prometheus.GaugeValue, func(p *gateway.PluginStats) float64 { return float64(p.Queued) }},
	{"repe_gw_invalid_replies_total", "Replies the plugin made that were not valid REPE replies, answered ec 5 instead.",
		prometheus.CounterValue, func(p *gateway.PluginStats) float64 { return float64(p.InvalidReplies) }},
	{"repe_gw_call_timeouts_total", "Calls answered ec 7 (timeout) at their deadline.",
		prometheus.CounterValue, func(p *gateway.PluginStats) float64 { return float64(p.Timeouts) }},
	{"repe_gw_calls_stuck", "Calls past their deadline that are still in the plugin.",
		prometheus.GaugeValue, func(p *gateway.PluginStats) float64 { return float64(p.Stuck) }},
	{"repe_gw_late_replies_total", "Calls that returned after their deadline, their replies discarded.",
		prometheus.CounterValue, func(p *gateway.PluginStats) float64 { return float64(p.Late) }},
	{"repe_gw_calls_refused_total", "Requests answered ec 8 without calling the plugin: queue full, circuit open, every slot stuck.",
		prometheus.CounterValue, func(p *gateway.PluginStats) float64 { return float64(p.Refused) }},
	{"repe_gw_circuit_open", "1 while the plugin's circuit breaker is open.",
		prometheus.GaugeValue, func(p *gateway.PluginStats) float64 { return bit(p.CircuitOpen) }},
	{"repe_gw_circuit_opened_total", "Times the plugin's circuit breaker opened.",
		prometheus.CounterValue, func(p *gateway.PluginStats) float64 { return float64(p.CircuitOpened) }},
	{"repe_gw_dropped_notify_replies_total", "Replies the plugin returned to notify requests, which are never sent.",
		prometheus.CounterValue, func(p *gateway.PluginStats) float64 { return float64(p.DroppedNotifyReplies) }},
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collector reads the gateway's counters at each scrape: counting stays
// in the gateway, per event loop, where it costs the request path no lock
// and no shared write, and a scrape pays for the sums.
type collector struct {
	s                *Server
	closed           *prometheus.Desc
	requests         *prometheus.Desc
	notifies         *prometheus.Desc
	calls            *prometheus.Desc
	duration         *prometheus.Desc
	info             *prometheus.Desc
	ready            *prometheus.Desc
	reloads          *prometheus.Desc
	lastReload       *prometheus.Desc
	transportReplies *prometheus.Desc
	restarts         *prometheus.Desc
	gateway, plugins []*prometheus.Desc // one per gatewayMetrics and pluginMetrics entry
	transports       []*prometheus.Desc // one per transportMetrics entry
}

func newCollector(s *Server) *collector {
	c := &collector{
		s: s,
		closed: prometheus.NewDesc("repe_gw_connections_closed_total",
			"Connections closed, by reason.", []string{"reason"}, nil),
		requests: prometheus.NewDesc("repe_gw_requests_total",
			`Replies, by plugin and ec; plugin is "" for those the gateway made with no plugin chosen (paths no plugin owns, bad frames).`,
			[]string{"plugin", "ec"}, nil),
		notifies: prometheus.NewDesc("repe_gw_notifies_total",
			`Notify requests, which get no reply, by plugin; "" for paths no plugin owns.`, []string{"plugin"}, nil),
		calls: prometheus.NewDesc("repe_gw_calls_total",
			"Calls into the plugin, by where they ran: inline on an event loop, or on a worker.", []string{"plugin", "where"}, nil),
		duration: prometheus.NewDesc("repe_gw_request_duration_seconds",
			"How long the plugin's calls took; calls run inline are timed as the average of their run.", []string{"plugin"}, nil),
		info: prometheus.NewDesc("repe_gw_plugin_info",
			"1 for each plugin loaded, labelled with who it is.", []string{"name", "version", "root", "sha256"}, nil),
		ready: prometheus.NewDesc("repe_gw_ready",
			"1 while /readyz answers 200.", nil, nil),
		reloads: prometheus.NewDesc("repe_gw_reloads_total",
			"Reloads of the plugins, by result: ok, or failed (nothing changed).", []string{"result"}, nil),
		lastReload: prometheus.NewDesc("repe_gw_last_reload_timestamp_seconds",
			"When the last reload ended, ok or failed, in Unix seconds; 0 before the first.", nil, nil),
		restarts: prometheus.NewDesc("repe_gw_worker_restarts_total",
			"Times an isolated plugin's worker process was started again after the first; only isolated plugins have it.",
			[]string{"plugin"}, nil),
		transportReplies: prometheus.NewDesc("repe_gw_transport_requests_total",
			"Replies, by transport and ec, whoever made them.", []string{"transport", "ec"}, nil),
	}
	for _, m := range transportMetrics {
		c.transports = append(c.transports, prometheus.NewDesc(m.name, m.help, []string{"transport"}, nil))
	}
	for _, m := range gatewayMetrics {
		c.gateway = append(c.gateway, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	for _, m := range pluginMetrics {
		c.plugins = append(c.plugins, prometheus.NewDesc(m.name, m.help, []string{"plugin"}, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.closed, c.requests, c.notifies, c.calls, c.duration, c.info, c.ready, c.reloads, c.lastReload, c.transportReplies, c.restarts} {
		ch <- d
	}
	for _, d := range c.gateway {
		ch <- d
	}
	for _, d := range c.transports {
		ch <- d
	}
	for _, d := range c.plugins {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	stats := c.s.cfg.Gateway.Stats()
	for i, m := range gatewayMetrics {
		ch <- prometheus.MustNewConstMetric(c.gateway[i], m.kind, m.value(&stats))
	}
	for _, r := range closeReasons {
		ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, float64(r.count(&stats)), r.reason)
	}
	c.replies(ch, "", stats.Replies, stats.Notifies)
	for _, ts := range stats.Transports {
		name := ts.Transport.String()
		for i, m := range transportMetrics {
			ch <- prometheus.MustNewConstMetric(c.transports[i], m.kind, m.value(&ts), name)
		}
		for _, r := range ts.Replies {
			ch <- prometheus.MustNewConstMetric(c.transportReplies, prometheus.CounterValue, float64(r.Count), name, strconv.FormatUint(uint64(r.EC), 10))
		}
	}

	for _, ps := range c.s.cfg.Gateway.PluginStats() {
		for i, m := range pluginMetrics {
			ch <- prometheus.MustNewConstMetric(c.plugins[i], m.kind, m.value(&ps), ps.Name)
		}
		c.replies(ch, ps.Name, ps.Replies, ps.Notifies)
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(ps.InlineCalls), ps.Name, "inline")
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(ps.WorkerCalls), ps.Name, "worker")
		ch <- c.histogram(ps.Name, ps.Duration)
		p := c.s.plugin(ps.Root)
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, ps.Name, p.Version, ps.Root, p.SHA256)
		if p.Restarts != nil {
			ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(p.Restarts()), ps.Name)
		}
	}
	ok, _ := c.s.ready()
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, bit(ok))
	rs := c.s.cfg.Gateway.Reloads()
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(rs.OK), "ok")
	ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(rs.Failed), "failed")
	var last float64
	if !rs.Last.IsZero() {
		last = float64(rs.Last.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.lastReload, prometheus.GaugeValue, last)
}

// replies sends the requests and notifies of one plugin, or of none.
func (c *collector) replies(ch chan<- prometheus.Metric, plugin string, replies []gateway.ECCount, notifies uint64) {
	for _, r := range replies {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(r.Count), plugin, strconv.FormatUint(uint64(r.EC), 10))
	}
	ch <- prometheus.MustNewConstMetric(c.notifies, prometheus.CounterValue, float64(notifies), plugin)
}

// histogram turns the gateway's buckets, each counted on its own, into
// Prometheus's, each counting every call up to its bound.
func (c *collector) histogram(plugin string, h gateway.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var sum uint64
	for i, b := range h.Bounds {
		sum += h.Counts[i]
		buckets[b.Seconds()] = sum
	}
	return prometheus.MustNewConstHistogram(c.duration, h.Count(), h.Sum.Seconds(), buckets, plugin)
}
