package gateway

import (
	"math/rand/v2"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

// The access log and the slow-call log. Both are off by default, and then
// cost the request path one branch on timeCalls: no clock read per call and
// no allocation. On, every call is timed on its own, inline calls too.

// logCall logs the request frame, answered by reply (empty for a notify),
// after a call of ns into plugin l (nil: the gateway answered it), when the
// access log or the slow-call log wants it. A frame the gateway could not
// parse is logged by its id alone.
func (s *Server) logCall(cs *conn, l *lane, frame repe.Message, reply []byte, ns int64) {
	var query []byte
	_, err := repe.Parse(frame)
	if err == nil {
		query = frame.Query()
	}
	ec := -1 // a notify: no reply
	if len(reply) >= repe.HeaderSize {
		ec = int(replyEC(reply))
	}
	if cs.hooks != nil && err == nil {
		// Frames that do not parse never reached on_request.
		hookResponse(cs, frame, ec, ns, reply)
	}
	name := ""
	if l != nil {
		name = l.name
		if s.cfg.SlowCall > 0 && ns > int64(s.cfg.SlowCall) {
			s.slowCallLog.Do(func(suppressed int64) {
				s.log.Warn("slow plugin call", "plugin", name, "query", string(query),
					"took", time.Duration(ns), "threshold", s.cfg.SlowCall, "suppressed", suppressed)
			})
		}
	}
	if !s.cfg.AccessLog || ec <= 0 && s.cfg.AccessLogSample < 1 && rand.Float64() >= s.cfg.AccessLogSample {
		return
	}
	s.log.Info("request", "remote", cs.remote, "id", repe.PeekID(frame), "query", string(query), "plugin", name,
		"ec", ec, "bytes_in", len(frame), "bytes_out", len(reply), "duration", time.Duration(ns))
}

// logReplies logs the requests framed in reqs, answered by the replies in
// order in replies, after calls that took ns in all: a batch answered at
// once by an isolated plugin, or refused.
func (s *Server) logReplies(cs *conn, l *lane, reqs, replies []byte, ns int64) {
	n := countFrames(reqs)
	if n == 0 {
		return
	}
	for len(reqs) >= repe.HeaderSize && repe.Message(reqs).Length() >= repe.HeaderSize {
		frame := repe.Message(reqs[:min(repe.Message(reqs).Length(), uint64(len(reqs)))])
		reqs = reqs[len(frame):]
		var reply []byte
		if !frame.Notify() && len(replies) >= repe.HeaderSize {
			reply = replies[:min(repe.Message(replies).Length(), uint64(len(replies)))]
			replies = replies[len(reply):]
		}
		s.logCall(cs, l, frame, reply, ns/int64(n))
	}
}
