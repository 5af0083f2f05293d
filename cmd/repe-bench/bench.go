package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Buffer sizes per connection. They scale with the pipeline depth and the
// request size, within bounds that keep ten thousand connections affordable
// and a deep pipeline at one write and one read per batch.
const (
	minBatch, maxBatch = 4 << 10, 256 << 10
	minRead, maxRead   = 16 << 10, 256 << 10
	maxShards          = 16
	// maxDirectWindow bounds the bytes of a window the reader may send
	// itself; loopback sockets buffer far more than this.
	maxDirectWindow = 32 << 10
)

// bench runs the load cfg describes with the given requests, showing
// progress on progress when it is not nil, and returns the summary.
func bench(ctx context.Context, cfg *config, templates []template, progress io.Writer) (*summary, error) {
	if !cfg.allowRemote {
		if err := checkLoopback(ctx, cfg.addr); err != nil {
			return nil, err
		}
	}
	if cfg.serverPID > 0 {
		if _, err := procCPU(cfg.serverPID); err != nil {
			return nil, err
		}
	}

	frame := 0
	for _, t := range templates {
		frame = max(frame, len(t.frame))
	}
	small := min(frame, largeFrame)
	p := &plan{
		templates:   templates,
		pipeline:    cfg.pipeline,
		notifyRatio: cfg.notifyRatio,
		timeout:     int64(cfg.timeout),
		expectEC:    cfg.expectEC,
		anyEC:       cfg.anyEC,
		maxReply:    cfg.maxReply,
		maxBatch:    clamp(cfg.pipeline*small, max(minBatch, small), maxBatch),
		readSize:    clamp(2*cfg.pipeline*frame, minRead, maxRead),
		shards:      make([]histShard, min(cfg.conns, maxShards)),
		direct:      cfg.pipeline*frame <= maxDirectWindow,
	}
	for i := range p.shards {
		p.shards[i].h = newHistogram()
	}
	if cfg.rate > 0 {
		p.interval = float64(cfg.conns) / cfg.rate * 1e9
	}

	conns, err := dialAll(ctx, cfg, p)
	if err != nil {
		return nil, err
	}
	if cfg.reconnect {
		dial := dialer(cfg)
		p.redial = func() (net.Conn, error) { return dial(ctx, "tcp", cfg.addr) }
	}

	stop := make(chan struct{})
	p.stop = stop
	cancelStop := context.AfterFunc(ctx, func() { close(stop) })
	defer cancelStop()

	p.base = time.Now()
	p.warmupEnd = int64(cfg.warmup)
	if cfg.duration > 0 {
		p.deadline = int64(cfg.warmup + cfg.duration)
	}
	var before cpuSample
	sampled := cfg.warmup == 0
	if sampled {
		before = sampleCPU(cfg.serverPID)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(c.run)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	var warmup <-chan time.Time
	if cfg.warmup > 0 {
		t := time.NewTimer(cfg.warmup)
		defer t.Stop()
		warmup = t.C
	}
	var tick <-chan time.Time
	prog := progressState{out: progress, conns: conns, base: p.base}
	if progress != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
wait:
	for {
		select {
		case <-done:
			break wait
		case <-warmup:
			before, sampled = sampleCPU(cfg.serverPID), true
		case now := <-tick:
			prog.show(now)
		}
	}
	after := sampleCPU(cfg.serverPID)
	prog.clear()
	if !sampled {
		// Every connection finished before the warm-up did.
		before = after
	}
	return summarize(cfg, p, conns, before, after, ctx.Err() != nil), nil
}

// dialAll opens the connections, all or none.
func dialAll(ctx context.Context, cfg *config, p *plan) ([]*conn, error) {
	dial := dialer(cfg)
	conns := make([]*conn, 0, cfg.conns)
	for i := range cfg.conns {
		nc, err := dial(ctx, "tcp", cfg.addr)
		if err != nil {
			for _, c := range conns {
				c.nc.Close()
			}
			return nil, fmt.Errorf("connection %d of %d: %w", i+1, cfg.conns, err)
		}
		quota := int64(-1)
		if cfg.requests > 0 {
			quota = cfg.requests / int64(cfg.conns)
			if int64(i) < cfg.requests%int64(cfg.conns) {
				quota++
			}
		}
		// Spread the connections' rate schedules over one interval, so
		// that they do not all send at the same instant.
		phase := p.interval * float64(i) / float64(cfg.conns)
		conns = append(conns, newConn(p, nc, quota, phase, &p.shards[i%len(p.shards)]))
	}
	return conns, nil
}

// dialer opens a connection as cfg asks: TCP, or TLS with its handshake
// made in the dial, so that dialAll's come before the clock starts.
func dialer(cfg *config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: cfg.timeout}
	if cfg.tls != nil {
		return (&tls.Dialer{NetDialer: d, Config: cfg.tls}).DialContext
	}
	return d.DialContext
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }
