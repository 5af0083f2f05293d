package pluginhost

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

func TestCallReplies(t *testing.T) {
	t.Parallel()
	p := openTest(t)
	prefix := []byte("earlier replies|")

	ok := []struct {
		name, query, body string
		want              []byte // nil: no reply
	}{
		{name: "ping", query: "/test/ping", want: repe.AppendResponse(nil, 7, repe.OK, repe.BodyJSON, nil)},
		{name: "echo", query: "/test/echo", body: `{"a":[1,2]}`,
			want: repe.AppendResponse(nil, 7, repe.OK, repe.BodyJSON, []byte(`{"a":[1,2]}`))},
		{name: "no reply", query: "/test/empty"},
		{name: "NULL and size 0 is no reply", query: "/test/null"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			out, err := p.Call(append([]byte(nil), prefix...), request(7, tt.query, tt.body))
			require.NoError(t, err)
			assert.Equal(t, append(append([]byte(nil), prefix...), tt.want...), out)
		})
	}

	bad := []struct {
		name, query, reason string
	}{
		{"NULL with a size", "/test/nullsize", "NULL data with size 64"},
		{"garbage", "/test/garbage", "magic 0xabab"},
		{"shorter than a header", "/test/short", "10 bytes"},
		{"wrong version", "/test/version", "version 2"},
		{"length field is not the size", "/test/length", "length field 48 for 52 bytes"},
		{"length is not the sum of the parts", "/test/parts", "query_length 2 + body_length 4"},
		{"parts that wrap around", "/test/overflow", "query_length 18446744073709551615 + body_length 5"},
		{"another id", "/test/wrongid", "id 8 for request id 7"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			dst := append(make([]byte, 0, 64), prefix...)
			out, err := p.Call(dst, request(7, tt.query, ""))
			var re *repe.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, repe.ParseError, re.Code)
			assert.Contains(t, re.Message, `plugin "testplugin"`)
			assert.Contains(t, re.Message, tt.reason)
			assert.Equal(t, prefix, out, "dst is returned unchanged")
			assert.Equal(t, prefix, dst[:len(prefix)], "nothing was written into dst's spare room either")
		})
	}

	t.Run("request shorter than a header", func(t *testing.T) {
		out, err := p.Call(prefix, make([]byte, 47))
		var re *repe.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, repe.InvalidHeader, re.Code)
		assert.Equal(t, prefix, out)
	})
}

func TestCallMaxReplySize(t *testing.T) {
	t.Parallel()
	file := fresh(t, testPluginSO)

	p, err := Config{MaxReplySize: 4095}.Open(file)
	require.NoError(t, err)
	_, err = p.Call(nil, request(1, "/test/big", ""))
	var re *repe.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, repe.ParseError, re.Code)
	assert.Contains(t, re.Message, "4096 bytes, over the limit of 4095")

	p, err = Config{MaxReplySize: 4096}.Open(file)
	require.NoError(t, err)
	out, err := p.Call(nil, request(1, "/test/big", ""))
	require.NoError(t, err)
	assert.Len(t, out, 4096)
}

func TestCallDropsRepliesToNotify(t *testing.T) {
	t.Parallel()
	p := openTest(t)
	for i, query := range []string{"/test/echo", "/test/garbage", "/test/nullsize"} {
		out, err := p.Call([]byte("x"), notifyRequest(3, query, "body"))
		require.NoError(t, err, query)
		assert.Equal(t, []byte("x"), out, "%s: a notify gets no reply", query)
		assert.Equal(t, uint64(i+1), p.DroppedNotifyReplies())
	}
	out, err := p.Call(nil, notifyRequest(3, "/test/empty", ""))
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, uint64(3), p.DroppedNotifyReplies(), "no reply, nothing dropped")

	// Any non-zero notify byte counts (REPE.md §1.1).
	req := request(4, "/test/echo", "b")
	req[repe.OffsetNotify] = 2
	out, err = p.Call(nil, req)
	require.NoError(t, err)
	assert.Empty(t, out)
	assert.Equal(t, uint64(4), p.DroppedNotifyReplies())
}

func TestCallAllocs(t *testing.T) {
	p := openTest(t)
	req := request(9, "/test/echo", `{"x":1}`)
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() {
		out, err := p.Call(dst[:0], req)
		if err != nil || len(out) != len(req)-len("/test/echo") {
			t.Fatalf("reply %q, %v", out, err)
		}
	})
	assert.Zero(t, allocs)
}

// takeHalf is a ReplySink that takes the first half of each reply it is
// offered, and keeps a copy of what it took.
type takeHalf struct{ offered, took [][]byte }

func (s *takeHalf) TakeReply(reply []byte) []byte {
	s.offered = append(s.offered, append([]byte(nil), reply...))
	s.took = append(s.took, append([]byte(nil), reply[:len(reply)/2]...))
	return reply[len(reply)/2:]
}

// TestCallToOffersLargeValidReplies: CallTo offers the sink a valid reply of
// at least atLeast bytes, appends what the sink leaves, and offers it
// nothing else: no small reply, no invalid one, no reply to a notify.
func TestCallToOffersLargeValidReplies(t *testing.T) {
	t.Parallel()
	p := openTest(t)
	body := `{"a":[1,2,3,4,5,6,7,8]}`
	want := repe.AppendResponse(nil, 7, repe.OK, repe.BodyJSON, []byte(body))

	var sink takeHalf
	out, err := p.CallTo([]byte("x"), request(7, "/test/echo", body), len(want), &sink)
	require.NoError(t, err)
	require.Len(t, sink.offered, 1)
	assert.Equal(t, want, sink.offered[0])
	assert.Equal(t, want, append(sink.took[0], out[1:]...), "the sink's part and the rest make the reply")
	assert.Equal(t, byte('x'), out[0])

	sink = takeHalf{}
	out, err = p.CallTo(nil, request(7, "/test/echo", body), len(want)+1, &sink)
	require.NoError(t, err)
	assert.Equal(t, want, []byte(out), "a smaller reply is appended whole")
	notify := request(7, "/test/echo", body)
	notify[repe.OffsetNotify] = 1
	out, err = p.CallTo(nil, notify, 0, &sink)
	require.NoError(t, err)
	assert.Empty(t, out)
	_, err = p.CallTo(nil, request(7, "/test/wrongid", ""), 0, &sink)
	require.Error(t, err)
	assert.Empty(t, sink.offered, "the sink was offered a reply it should not have been")
}
