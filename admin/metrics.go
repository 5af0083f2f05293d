package admin

import (
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
	{"slow_consumer", func(s *gateway.Stats) uint64 { return s.SlowConsumers }},
	{"flood", func(s *gateway.Stats) uint64 { return s.Floods }},
	{"read_timeout", func(s *gateway.Stats) uint64 { return s.ReadTimeouts }},
	{"idle_timeout", func(s *gateway.Stats) uint64 { return s.IdleTimeouts }},
	{"max_conns", func(s *gateway.Stats) uint64 { return s.MaxConnsRefused }},
	{"max_conns_per_ip", func(s *gateway.Stats) uint64 { return s.PerIPRefused }},
}

// pluginMetric is a metric with one series per plugin, labelled plugin.
type pluginMetric struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*gateway.PluginStats) float64
}

var pluginMetrics = []pluginMetric{
	{"repe_gw_calls_in_flight", "Calls in the plugin now, stuck ones included.",
		prometheus.GaugeValue, func(p *gateway.PluginStats) float64 { return float64(p.InFlight) }},
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
// in the gateway, where it costs the request path no lock, and a scrape
// pays for the sums.
type collector struct {
	s       *Server
	closed  *prometheus.Desc
	info    *prometheus.Desc
	ready   *prometheus.Desc
	plugins []*prometheus.Desc // one per pluginMetrics entry
}

func newCollector(s *Server) *collector {
	c := &collector{
		s: s,
		closed: prometheus.NewDesc("repe_gw_connections_closed_total",
			"Connections the gateway closed, by reason.", []string{"reason"}, nil),
		info: prometheus.NewDesc("repe_gw_plugin_info",
			"1 for each plugin loaded, labelled with who it is.", []string{"name", "version", "root", "sha256"}, nil),
		ready: prometheus.NewDesc("repe_gw_ready",
			"1 while /readyz answers 200.", nil, nil),
	}
	for _, m := range pluginMetrics {
		c.plugins = append(c.plugins, prometheus.NewDesc(m.name, m.help, []string{"plugin"}, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.closed
	ch <- c.info
	ch <- c.ready
	for _, d := range c.plugins {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	stats := c.s.cfg.Gateway.Stats()
	for _, r := range closeReasons {
		ch <- prometheus.MustNewConstMetric(c.closed, prometheus.CounterValue, float64(r.count(&stats)), r.reason)
	}
	for _, ps := range c.s.cfg.Gateway.PluginStats() {
		for i, m := range pluginMetrics {
			ch <- prometheus.MustNewConstMetric(c.plugins[i], m.kind, m.value(&ps), ps.Name)
		}
		p := c.s.plugin(ps.Root)
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, ps.Name, p.Version, ps.Root, p.SHA256)
	}
	ok, _ := c.s.ready()
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, bit(ok))
}
