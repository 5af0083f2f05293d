package gateway_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestStatsCountEveryReplyOnce sends a known mix of requests over both
// transports (calls inline and on workers, paths no plugin owns, notifies,
// frames the gateway refuses) and finds exactly those counts.
func TestStatsCountEveryReplyOnce(t *testing.T) {
	srv, _ := gatewaytest.Serve(t, gateway.Config{}, gatewaytest.TestPlugin(t, "/gw"), gatewaytest.TestPlugin(t, "/slow"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()

	// /gw is promoted to inline calls by its first run of fast calls;
	// /slow sleeps, so it stays on workers.
	const good, unknown, notifies, badLengths = 300, 7, 5, 3
	var script []byte
	for i := range good {
		script = append(script, gatewaytest.Request(uint64(i), "/gw/ping", "")...)
	}
	for i := range unknown {
		script = append(script, gatewaytest.Request(uint64(i), "/nowhere", "")...)
	}
	for range notifies {
		script = append(script, gatewaytest.Notify("/gw/ping", "")...)
		script = append(script, gatewaytest.Notify("/nowhere", "")...)
	}
	for i := range badLengths {
		script = append(script, badLength(uint64(i))...)
	}
	script = append(script, gatewaytest.Request(1, "/gw/nope", "")...) // the plugin's own ec 6
	script = append(script, gatewaytest.Request(1, "/slow/sleep", "")...)
	badMagic := gatewaytest.Request(99, "/gw/ping", "")
	badMagic[8] = 0
	script = append(script, badMagic...)

	replies, bytesOut := 0, 0
	for _, addr := range []net.Addr{srv.Addr(), ln.Addr()} {
		got := readAll(t, addr, script)
		bytesOut += len(got)
		for b := got; len(b) > 0; replies++ {
			n, _ := repe.Split(b, 0)
			require.NotZero(t, n)
			b = b[n:]
		}
	}
	const perRun = good + unknown + badLengths + 1 + 1 + 1
	require.Equal(t, 2*perRun, replies)

	// The connections close after the bad magic, from the gateway's side:
	// wait until both are counted.
	require.Eventually(t, func() bool { return srv.Stats().Open == 0 }, gatewaytest.Timeout, time.Millisecond)
	st := srv.Stats()
	assert.Equal(t, uint64(2), st.Accepted)
	assert.Equal(t, uint64(2), st.BadFrames, "connections closed after the bad magic")
	assert.Equal(t, uint64(2*len(script)), st.BytesIn)
	assert.Equal(t, uint64(bytesOut), st.BytesOut)
	byEC := map[uint32]uint64{}
	var gatewayReplies uint64
	for _, c := range st.Replies {
		byEC[c.EC] = c.Count
		gatewayReplies += c.Count
	}
	assert.Equal(t, uint64(2*unknown), byEC[uint32(repe.MethodNotFound)])
	assert.Equal(t, uint64(2*(unknown+badLengths+1)), gatewayReplies, "the gateway's replies: %v", st.Replies)
	assert.Equal(t, uint64(2*notifies), st.Notifies)

	ps := srv.PluginStats()
	gw, slow := ps[0], ps[1]
	require.Equal(t, "gw", gw.Name)
	assert.Equal(t, []gateway.ECCount{{EC: 0, Count: 2 * good}, {EC: uint32(repe.MethodNotFound), Count: 2}}, gw.Replies)
	assert.Equal(t, uint64(2*notifies), gw.Notifies)
	assert.Equal(t, uint64(2*(good+notifies+1)), gw.InlineCalls+gw.WorkerCalls, "every call counted once, wherever it ran")
	assert.Equal(t, gw.InlineCalls+gw.WorkerCalls, gw.Duration.Count(), "every call timed")
	assert.NotZero(t, gw.InlineCalls, "the fast plugin ran inline")
	assert.Equal(t, []gateway.ECCount{{EC: 0, Count: 2}}, slow.Replies)
	assert.Equal(t, uint64(2), slow.WorkerCalls)
	assert.Zero(t, slow.InlineCalls)
	assert.Equal(t, uint64(2), slow.Duration.Count())
}
