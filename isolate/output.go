//go:build linux

package isolate

import (
	"bufio"
	"bytes"
	"os"
	"sync"
	"time"
)

// maxLineSize bounds a logged line of a worker's output; a longer line is
// logged in pieces of this size.
const maxLineSize = 4096

// maxLinesPerSecond bounds the output lines logged per plugin and second,
// so that a plugin that floods its output cannot flood the gateway's log;
// the lines beyond are counted, and the count is logged.
const maxLinesPerSecond = 100

// forward logs what the worker writes to one of its output pipes, a record
// per line, with the plugin's name, until the pipe closes. It keeps reading
// when lines are suppressed, so that a worker never blocks on its output.
func (p *Plugin) forward(r *os.File, stream string, pid int) {
	defer p.outputs.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLineSize)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			ok, suppressed := p.lines.allow(time.Now())
			if suppressed > 0 {
				p.logger().Warn("plugin output suppressed", "lines", suppressed)
			}
			if ok {
				line = bytes.TrimRight(line, "\r\n")
				p.logger().Info("plugin output", "stream", stream, "pid", pid, "line", string(line))
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			break
		}
	}
	if suppressed := p.lines.flush(); suppressed > 0 {
		p.logger().Warn("plugin output suppressed", "lines", suppressed)
	}
}

// lineLimiter allows maxLinesPerSecond lines per second.
type lineLimiter struct {
	mu         sync.Mutex
	start      time.Time // of the current second
	n          int       // lines allowed in it
	suppressed int       // lines refused since the last report
}

// allow reports whether a line may be logged now, and how many were
// suppressed before, to be reported first.
func (l *lineLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Second {
		l.start, l.n = now, 0
		suppressed, l.suppressed = l.suppressed, 0
	}
	if l.n < maxLinesPerSecond {
		l.n++
		return true, suppressed
	}
	l.suppressed++
	return false, suppressed
}

// flush returns the count of suppressed lines not yet reported.
func (l *lineLimiter) flush() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}
