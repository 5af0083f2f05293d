package bridge

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
)

// serveHTTP serves the calculator, gwtest at /gw and the misbehaving test
// plugin at /tp through a Bridge, and returns its http:// URL.
func serveHTTP(t *testing.T, cfg gateway.Config) string {
	t.Helper()
	bad := plugintest.Build(t, plugintest.RepoPath("pluginhost/testdata/testplugin.c"), fmt.Sprintf("-DTP_ROOT=%q", "/tp"))
	srv, _ := gatewaytest.Serve(t, cfg, gatewaytest.Calculator(t), gatewaytest.TestPlugin(t, "/gw"), bad)
	hs := httptest.NewServer(New(srv, Config{MaxMessageSize: cfg.MaxMessageSize}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func do(t *testing.T, method, url, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

// TestREST: Glaze's REST mapping through the core, and the status of each
// kind of error, the gateway's and the plugins'.
func TestREST(t *testing.T) {
	url := serveHTTP(t, gateway.Config{Deadline: time.Second, MaxMessageSize: 4096})
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		reply                    string
	}{
		{"write", "PUT", "/calculator/value", "41.5", 204, ""},
		{"read", "GET", "/calculator/value", "", 200, "41.5"},
		{"call without parameters", "GET", "/calculator/increment", "", 200, "42.5"},
		{"call with parameters", "POST", "/calculator/set_value", "2", 200, "null"},
		{"whole object", "GET", "/calculator", "", 200, `{"value":2}`},
		{"no plugin", "GET", "/nothing", "", 404,
			`{"ec":6,"name":"method_not_found","message":"No plugin registered for path"}` + "\n"},
		{"the plugin's unknown path", "GET", "/calculator/nope", "", 404,
			`{"ec":6,"name":"method_not_found","message":"invalid_query: /calculator/nope"}` + "\n"},
		{"the plugin's parse error", "PUT", "/calculator/value", `"ten"`, 400, ""},
		{"an invalid plugin reply", "GET", "/tp/garbage", "", 502, ""},
		{"a deadline", "POST", "/gw/nap", "3000", 504, ""},
		{"a body over the maximum", "PUT", "/calculator/value", strings.Repeat("1", 5000), 413, ""},
		{"another method", "DELETE", "/calculator/value", "", 405, ""},
		{"JSON-RPC takes POST only", "GET", "/jsonrpc", "", 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, reply, h := do(t, tc.method, url+tc.path, tc.body)
			assert.Equal(t, tc.status, status, reply)
			if tc.reply != "" {
				assert.Equal(t, tc.reply, reply)
			}
			if status >= 400 {
				assert.Equal(t, "application/json", h.Get("Content-Type"))
				assert.Regexp(t, `^\{"ec":\d+,"name":"[a-z_]*","message":`, reply)
			}
		})
	}
}

// TestJSONRPC: single calls, a batch, notifications and the -32600 cases
// Glaze rejects.
func TestJSONRPC(t *testing.T) {
	url := serveHTTP(t, gateway.Config{}) + "/jsonrpc"
	rpc := func(body string) (int, string) {
		status, reply, _ := do(t, "POST", url, body, "Content-Type", "application/json")
		return status, strings.TrimSuffix(reply, "\n")
	}
	for _, tc := range []struct {
		name, req string
		status    int
		resp      string
	}{
		{"call", `{"jsonrpc":"2.0","method":"calculator/set_value","params":10,"id":1}`, 200,
			`{"jsonrpc":"2.0","result":null,"id":1}`},
		{"no params", `{"jsonrpc":"2.0","method":"calculator/increment","id":"a"}`, 200,
			`{"jsonrpc":"2.0","result":11,"id":"a"}`},
		{"notification", `{"jsonrpc":"2.0","method":"calculator/increment"}`, 204, ""},
		{"notification, null id", `{"jsonrpc":"2.0","method":"calculator/increment","id":null}`, 204, ""},
		{"read", `{"jsonrpc":"2.0","method":"calculator/value","id":2}`, 200,
			`{"jsonrpc":"2.0","result":13,"id":2}`},
		{"no method", `{"jsonrpc":"2.0","id":3}`, 200,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"Missing 'method' member"},"id":3}`},
		{"no jsonrpc", `{"method":"calculator/value","id":4}`, 200,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"Missing 'jsonrpc' member"},"id":4}`},
		{"wrong version", `{"jsonrpc":"1.0","method":"calculator/value","id":5}`, 200,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"Unsupported 'jsonrpc' version: \"1.0\""},"id":5}`},
		{"not JSON", `{"jsonrpc":`, 200,
			`{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":"the request is not valid JSON"},"id":null}`},
		{"empty batch", `[]`, 200,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"an empty batch"},"id":null}`},
		{"no plugin", `{"jsonrpc":"2.0","method":"nothing","id":6}`, 200,
			`{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":"No plugin registered for path"},"id":6}`},
		{"invalid plugin reply", `{"jsonrpc":"2.0","method":"tp/garbage","id":7}`, 200, ""},
		{"batch", `[{"jsonrpc":"2.0","method":"calculator/set_value","params":1,"id":1},` +
			`{"jsonrpc":"2.0","method":"calculator/increment"},` +
			`{"jsonrpc":"2.0","method":"calculator/value","id":2},` +
			`{"jsonrpc":"2.0","id":3},` +
			`5]`, 200,
			`[{"jsonrpc":"2.0","result":null,"id":1},{"jsonrpc":"2.0","result":2,"id":2},` +
				`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"Missing 'method' member"},"id":3},` +
				`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"not a JSON-RPC request object"},"id":null}]`},
		{"batch of notifications", `[{"jsonrpc":"2.0","method":"calculator/increment"}]`, 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := rpc(tc.req)
			assert.Equal(t, tc.status, status, resp)
			if tc.resp != "" {
				assert.Equal(t, tc.resp, resp)
			}
		})
	}
	_, resp := rpc(`{"jsonrpc":"2.0","method":"tp/garbage","id":7}`)
	assert.Contains(t, resp, `"code":-32700`, "Glaze maps ec 5 to a parse error, whoever made it")

	// A batch of the most calls the gateway takes runs them all, in
	// order; one more call and none runs.
	batch := func(n int) string {
		calls := make([]string, n)
		for i := range calls {
			calls[i] = fmt.Sprintf(`{"jsonrpc":"2.0","method":"calculator/increment","id":%d}`, i)
		}
		return "[" + strings.Join(calls, ",") + "]"
	}
	rpc(`{"jsonrpc":"2.0","method":"calculator/set_value","params":0}`)
	status, resp := rpc(batch(1000))
	require.Equal(t, 200, status)
	var replies []struct {
		Result int
		ID     int
	}
	require.NoError(t, json.Unmarshal([]byte(resp), &replies))
	require.Len(t, replies, 1000)
	for i, r := range replies {
		require.Equal(t, i, r.ID)
		require.Equal(t, i+1, r.Result)
	}
	status, resp = rpc(batch(1001))
	assert.Equal(t, 200, status)
	assert.Equal(t, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request","data":"a batch of more than 1000 calls, the most the gateway takes"},"id":null}`, resp)
	_, resp = rpc(`{"jsonrpc":"2.0","method":"calculator/value","id":1}`)
	assert.Equal(t, `{"jsonrpc":"2.0","result":1000,"id":1}`, resp, "the batch over the limit ran nothing")
}

// TestMalformedChunkedBody: a body whose chunked encoding is broken is
// answered 400 and never reaches the plugin, on REST and JSON-RPC alike,
// rather than an empty 200 that looks like success.
func TestMalformedChunkedBody(t *testing.T) {
	url := serveHTTP(t, gateway.Config{})
	status, _, _ := do(t, "PUT", url+"/calculator/value", "7")
	require.Equal(t, http.StatusNoContent, status)
	for _, path := range []string{"/calculator/set_value", "/jsonrpc"} {
		nc, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		require.NoError(t, err)
		defer nc.Close()
		require.NoError(t, nc.SetDeadline(time.Now().Add(gatewaytest.Timeout)))
		_, err = io.WriteString(nc, "POST "+path+" HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n8\r\n0\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, path)
		assert.Contains(t, string(body), `"ec":4`, path)
	}
	_, value, _ := do(t, "GET", url+"/calculator/value", "")
	assert.Equal(t, "7", value, "the plugin never saw the broken body")
}
