package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// summary is the result of a run: the figures of the measured phase (after
// the warm-up), as printed by -format json.
type summary struct {
	Addr         string  `json:"addr"`
	Query        string  `json:"query,omitempty"`
	ReplayFrames int     `json:"replay_frames,omitempty"`
	Connections  int     `json:"connections"`
	Pipeline     int     `json:"pipeline"`
	RateLimit    float64 `json:"rate_limit,omitempty"`
	NotifyRatio  float64 `json:"notify_ratio,omitempty"`
	Interrupted  bool    `json:"interrupted,omitempty"`

	DurationS    float64 `json:"duration_s"`
	Requests     int64   `json:"requests"` // replies + notifies + requests failed without a reply
	RequestsPerS float64 `json:"requests_per_s"`
	Replies      int64   `json:"replies"`
	OK           int64   `json:"ok"`
	Notifies     int64   `json:"notifies"`

	Errors         int64            `json:"errors"`
	ErrorsByEC     []ecCount        `json:"errors_by_ec"`
	ClientErrors   map[string]int64 `json:"client_errors"`
	NotifyReplies  int64            `json:"notify_replies"`
	Reordered      int64            `json:"reordered"`
	Unfinished     int64            `json:"unfinished"`
	Reconnects     int64            `json:"reconnects,omitempty"`
	Resent         int64            `json:"resent,omitempty"`
	WarmupRequests int64            `json:"warmup_requests"`
	WarmupErrors   int64            `json:"warmup_errors"`

	LatencyUS latency `json:"latency_us"`

	BytesSent         int64   `json:"bytes_sent"`
	BytesReceived     int64   `json:"bytes_received"`
	SentBytesPerS     float64 `json:"sent_bytes_per_s"`
	ReceivedBytesPerS float64 `json:"received_bytes_per_s"`

	Writes int64 `json:"writes"` // system calls of the measured phase
	Reads  int64 `json:"reads"`

	// CPU time per request, and busy as a fraction of one CPU over the
	// measured window: a side near 1 is the bottleneck.
	ClientCPUUSPerRequest float64 `json:"client_cpu_us_per_request"`
	ClientCPUBusy         float64 `json:"client_cpu_busy"`
	// ClientBound is set when the tool kept its CPU busy for at least
	// clientSaturated of the window: the requests/s then measure the tool
	// as much as the server, and only the server's CPU per request compares
	// servers.
	ClientBound           bool     `json:"client_bound"`
	ServerPID             int      `json:"server_pid,omitempty"`
	ServerCPUUSPerRequest *float64 `json:"server_cpu_us_per_request,omitempty"`
	ServerCPUBusy         *float64 `json:"server_cpu_busy,omitempty"`
	ServerCPUError        string   `json:"server_cpu_error,omitempty"`
	// Everything else the machine ran over the window, in CPUs (from
	// /proc/stat), and the time the hypervisor stole: on a shared machine,
	// a run where these are not near 0 was disturbed.
	OtherCPUBusy *float64 `json:"other_cpu_busy,omitempty"`
	StealCPU     *float64 `json:"steal_cpu,omitempty"`
}

// disturbed is the share of a CPU that other processes and the hypervisor
// may take before a run's figures are flagged as disturbed.
const disturbed = 0.1

// clientSaturated is the share of one CPU above which the tool counts as
// saturated. The suite pins it to one CPU, where the Go runtime's own
// threads and the kernel's share of its system calls keep it a little under
// 100 % even when it cannot go faster.
const clientSaturated = 0.9

// latency holds reply latencies in microseconds.
type latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ecCount is the number of replies that carried one unexpected ec.
type ecCount struct {
	EC    uint32 `json:"ec"`
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// failed reports whether any request failed, warm-up included.
func (s *summary) failed() bool { return s.Errors+s.WarmupErrors > 0 }

// summarize adds up the connections' counts once they have all finished.
func summarize(cfg *config, p *plan, conns []*conn, before, after cpuSample, interrupted bool) *summary {
	s := &summary{
		Addr:         cfg.addr,
		Query:        cfg.query,
		Connections:  cfg.conns,
		Pipeline:     cfg.pipeline,
		RateLimit:    cfg.rate,
		NotifyRatio:  cfg.notifyRatio,
		Interrupted:  interrupted,
		ClientErrors: map[string]int64{},
	}
	if cfg.replayDir != "" {
		s.ReplayFrames = len(p.templates)
	}
	byEC := map[repe.ErrorCode]int64{}
	var maxLat, last int64
	for _, c := range conns {
		for _, st := range []*connStats{&c.w.st, &c.r.st} {
			s.Replies += st.replies
			s.OK += st.ok
			s.Notifies += st.notifies
			s.NotifyReplies += st.notifyReplies
			s.Reordered += st.reordered
			s.Unfinished += st.unfinished
			s.Reconnects += st.reconnects
			s.Resent += st.resent
			s.WarmupRequests += st.warmupRequests
			s.WarmupErrors += st.warmupErrors
			s.BytesSent += st.bytesSent
			s.BytesReceived += st.bytesRecv
			s.Writes += st.writes
			s.Reads += st.reads
			for ec, n := range st.byEC {
				byEC[ec] += n
			}
			for k, n := range st.client {
				s.ClientErrors[errKind(k).String()] += n
				s.Requests += n
				s.Errors += n
			}
			maxLat = max(maxLat, st.maxLatency)
			last = max(last, st.last)
		}
	}
	for k := range numErrKinds {
		s.ClientErrors[k.String()] += 0
	}
	s.Requests += s.Replies + s.Notifies
	s.ErrorsByEC = []ecCount{}
	for ec, n := range byEC {
		s.ErrorsByEC = append(s.ErrorsByEC, ecCount{EC: uint32(ec), Name: ec.String(), Count: n})
		s.Errors += n
	}
	sort.Slice(s.ErrorsByEC, func(i, j int) bool { return s.ErrorsByEC[i].EC < s.ErrorsByEC[j].EC })

	// The measured window runs from the end of the warm-up to the last
	// completion.
	window := time.Duration(last - p.warmupEnd)
	if window <= 0 {
		window = time.Since(p.base) - time.Duration(p.warmupEnd)
	}
	if window > 0 {
		s.DurationS = window.Seconds()
		s.RequestsPerS = float64(s.Requests) / s.DurationS
		s.SentBytesPerS = float64(s.BytesSent) / s.DurationS
		s.ReceivedBytesPerS = float64(s.BytesReceived) / s.DurationS
	}

	h := newHistogram()
	for i := range p.shards {
		h.Merge(p.shards[i].h)
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	if h.TotalCount() > 0 {
		s.LatencyUS = latency{
			P50:  us(h.ValueAtQuantile(50)),
			P90:  us(h.ValueAtQuantile(90)),
			P99:  us(h.ValueAtQuantile(99)),
			P999: us(h.ValueAtQuantile(99.9)),
			Max:  us(maxLat),
			Mean: h.Mean() / 1e3,
		}
	}

	if s.Requests > 0 {
		s.ClientCPUUSPerRequest = float64(after.self-before.self) / 1e3 / float64(s.Requests)
	}
	if window > 0 {
		s.ClientCPUBusy = float64(after.self-before.self) / float64(window)
		s.ClientBound = s.ClientCPUBusy >= clientSaturated
	}
	if cfg.serverPID > 0 {
		s.ServerPID = cfg.serverPID
		switch {
		case before.serverErr != nil:
			s.ServerCPUError = before.serverErr.Error()
		case after.serverErr != nil:
			s.ServerCPUError = after.serverErr.Error()
		case s.Requests > 0 && window > 0:
			perReq := float64(after.server-before.server) / 1e3 / float64(s.Requests)
			busy := float64(after.server-before.server) / float64(window)
			s.ServerCPUUSPerRequest, s.ServerCPUBusy = &perReq, &busy
		}
	}
	if before.machineErr == nil && after.machineErr == nil && window > 0 {
		other := after.machine - before.machine - (after.self - before.self)
		if s.ServerCPUUSPerRequest != nil {
			other -= after.server - before.server
		}
		o := max(float64(other)/float64(window), 0)
		st := float64(after.steal-before.steal) / float64(window)
		s.OtherCPUBusy, s.StealCPU = &o, &st
	}
	return s
}

// writeJSON prints s as one JSON object.
func (s *summary) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// writeText prints s for a reader.
func (s *summary) writeText(w io.Writer) error {
	var b strings.Builder
	what := s.Query
	if s.ReplayFrames > 0 {
		what = fmt.Sprintf("%d replayed frames", s.ReplayFrames)
	}
	fmt.Fprintf(&b, "repe-bench %s %s: %d connections, %d in flight each", s.Addr, what, s.Connections, s.Pipeline)
	if s.RateLimit > 0 {
		fmt.Fprintf(&b, ", limited to %.0f req/s", s.RateLimit)
	}
	if s.Interrupted {
		b.WriteString(" (interrupted)")
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "  requests   %d in %.3fs: %.0f req/s (replies %d, notifies %d)\n",
		s.Requests, s.DurationS, s.RequestsPerS, s.Replies, s.Notifies)
	fmt.Fprintf(&b, "  errors     %d\n", s.Errors)
	for _, e := range s.ErrorsByEC {
		fmt.Fprintf(&b, "    ec %-5d %-28s %d\n", e.EC, e.Name, e.Count)
	}
	for k := range numErrKinds {
		if n := s.ClientErrors[k.String()]; n > 0 {
			fmt.Fprintf(&b, "    %-37s %d\n", k.String(), n)
		}
	}
	if s.Replies > 0 {
		l := s.LatencyUS
		fmt.Fprintf(&b, "  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
			fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.P999), fmtUS(l.Max), fmtUS(l.Mean))
	}
	fmt.Fprintf(&b, "  sent       %s (%s/s)\n", fmtBytes(float64(s.BytesSent)), fmtBytes(s.SentBytesPerS))
	fmt.Fprintf(&b, "  received   %s (%s/s)\n", fmtBytes(float64(s.BytesReceived)), fmtBytes(s.ReceivedBytesPerS))
	fmt.Fprintf(&b, "  client cpu %.3f µs/request, %.0f%% busy", s.ClientCPUUSPerRequest, 100*s.ClientCPUBusy)
	if s.ClientBound {
		b.WriteString(": client-bound, the req/s measure repe-bench; compare the server's cpu/request")
	}
	b.WriteByte('\n')
	switch {
	case s.ServerCPUUSPerRequest != nil:
		fmt.Fprintf(&b, "  server cpu %.3f µs/request, %.0f%% busy (pid %d, /proc/%d/stat)\n",
			*s.ServerCPUUSPerRequest, 100**s.ServerCPUBusy, s.ServerPID, s.ServerPID)
	case s.ServerCPUError != "":
		fmt.Fprintf(&b, "  server cpu unknown: %s\n", s.ServerCPUError)
	}
	if s.OtherCPUBusy != nil {
		others := "other processes"
		if s.ServerPID == 0 {
			others = "the server and other processes"
		}
		fmt.Fprintf(&b, "  machine    %s %.0f%% of a CPU, steal %.0f%%", others, 100**s.OtherCPUBusy, 100**s.StealCPU)
		if s.ServerPID != 0 && *s.OtherCPUBusy+*s.StealCPU > disturbed {
			b.WriteString(": figures disturbed, run again")
		}
		b.WriteByte('\n')
	}
	for _, note := range []struct {
		n    int64
		text string
	}{
		{s.NotifyReplies, "replies to notifies (a REPE server sends none; the echo floor does)"},
		{s.Reordered, "replies out of order"},
		{s.Unfinished, "requests unanswered when interrupted"},
		{s.Reconnects, "connections opened again after the server closed one (--reconnect)"},
		{s.Resent, "requests sent again: the server ended their connection cleanly before reading them (--reconnect)"},
		{s.WarmupRequests, "warm-up requests"},
		{s.WarmupErrors, "warm-up errors"},
	} {
		if note.n > 0 {
			fmt.Fprintf(&b, "  note       %d %s\n", note.n, note.text)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtUS prints a duration given in microseconds with three significant
// digits and a fitting unit.
func fmtUS(v float64) string {
	switch {
	case v < 1000:
		return fmt.Sprintf("%.3gµs", v)
	case v < 1e6:
		return fmt.Sprintf("%.3gms", v/1e3)
	}
	return fmt.Sprintf("%.3gs", v/1e6)
}

// fmtBytes prints a byte count in binary units.
func fmtBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// progressState prints a line a second while the run goes on.
type progressState struct {
	out     io.Writer
	conns   []*conn
	base    time.Time
	last    int64
	lastAt  time.Time
	printed bool
}

func (p *progressState) show(now time.Time) {
	var done, errs int64
	for _, c := range p.conns {
		done += c.progReplies.Load() + c.progNotifies.Load()
		errs += c.progErrors.Load()
	}
	since := p.lastAt
	if since.IsZero() {
		since = p.base
	}
	rate := float64(done-p.last) / now.Sub(since).Seconds()
	p.last, p.lastAt = done, now
	fmt.Fprintf(p.out, "\r\033[K%4.0fs  %10.0f req/s  %12d requests  %d errors",
		now.Sub(p.base).Seconds(), rate, done, errs)
	p.printed = true
}

// clear erases the progress line before the summary.
func (p *progressState) clear() {
	if p.printed {
		fmt.Fprint(p.out, "\r\033[K")
	}
}
