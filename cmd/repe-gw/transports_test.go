package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/bridge"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/repe"
)

// everyListener is a gateway with every listener on: TCP, TLS, HTTP (REST,
// JSON-RPC, WebSocket) and admin, serving the calculator and gwtest at /gw.
type everyListener struct {
	*tlsGateway
	httpAddr, admin string
	roots           *x509.CertPool // trusts the TLS listener
}

func startEveryListener(t *testing.T, args ...string) *everyListener {
	t.Helper()
	e := &everyListener{httpAddr: freeAddr(t), admin: freeAddr(t)}
	e.tlsGateway = startTLSGateway(t, buildGateway(t), append([]string{"--plugin", gatewaytest.TestPlugin(t, "/gw"),
		"--http-addr", e.httpAddr, "--admin", e.admin}, args...)...)
	e.waitLog(t, `msg="listening for HTTP" addr=`+e.httpAddr)
	e.waitLog(t, `msg="admin listening" addr=`+e.admin)
	e.roots = e.pool(t)
	return e
}

// call makes one REPE call of query with body through transport, on a
// connection of its own, and returns the reply's ec and body; a failure to
// call is ec 9 with the error. It is safe to call from any goroutine.
func (e *everyListener) call(transport, query, body string) (repe.ErrorCode, string) {
	ec, reply, err := e.try(transport, query, body)
	if err != nil {
		return repe.ConnectionFailure, transport + ": " + err.Error()
	}
	return ec, reply
}

func (e *everyListener) try(transport, query, body string) (repe.ErrorCode, string, error) {
	post := func(path, body string, ok func(status int, reply string) bool) (repe.ErrorCode, string, error) {
		resp, err := http.Post("http://"+e.httpAddr+path, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || !ok(resp.StatusCode, string(b)) {
			return repe.ConnectionFailure, string(b), err
		}
		return repe.OK, string(b), nil
	}
	switch transport {
	case "http":
		return post(query, body, func(status int, _ string) bool {
			return status == http.StatusOK || status == http.StatusNoContent
		})
	case "jsonrpc":
		req := `{"jsonrpc":"2.0","id":1,"method":"` + strings.TrimPrefix(query, "/") + `","params":` + body + `}`
		return post("/jsonrpc", req, func(_ int, reply string) bool { return strings.Contains(reply, `"result"`) })
	}
	var nc net.Conn
	var err error
	switch transport {
	case "tcp":
		nc, err = net.Dial("tcp", e.addr)
	case "tls":
		nc, err = tls.Dial("tcp", e.tlsAddr, &tls.Config{RootCAs: e.roots})
	case "websocket":
		ctx, cancel := context.WithTimeout(context.Background(), gatewaytest.Timeout)
		defer cancel()
		nc, err = bridge.DialWebSocket(ctx, "ws://"+e.httpAddr+"/repe", 0)
	}
	if err != nil {
		return 0, "", err
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(gatewaytest.Timeout)); err != nil {
		return 0, "", err
	}
	if _, err := nc.Write(gatewaytest.Request(1, query, body)); err != nil {
		return 0, "", err
	}
	head := make([]byte, repe.HeaderSize)
	if _, err := io.ReadFull(nc, head); err != nil {
		return 0, "", err
	}
	rest := make([]byte, repe.Message(head).Length()-repe.HeaderSize)
	if _, err := io.ReadFull(nc, rest); err != nil {
		return 0, "", err
	}
	m := repe.Message(append(head, rest...))
	return m.EC(), string(m.Body()), nil
}

var transports = []string{"tcp", "tls", "websocket", "http", "jsonrpc"}

// TestEveryTransportCounted makes one call through each transport, and
// finds it in /metrics under that transport alone.
func TestEveryTransportCounted(t *testing.T) {
	e := startEveryListener(t)
	for _, tr := range transports {
		ec, body := e.call(tr, "/calculator/set_value", "2")
		require.Equal(t, repe.OK, ec, "%s: %s", tr, body)
	}
	ec, _ := e.call("tcp", "/nowhere", "")
	assert.Equal(t, repe.MethodNotFound, ec)

	// Two connections over TCP, one over each other transport.
	conns := func(tr string) float64 { return map[bool]float64{true: 2, false: 1}[tr == "tcp"] }
	m := scrapeMetrics(t, e.admin)
	for _, tr := range transports {
		of := map[string]string{"transport": tr}
		assert.Equal(t, 1.0, metricValue(t, m, "repe_gw_transport_requests_total", map[string]string{"transport": tr, "ec": "0"}), tr)
		assert.Equal(t, conns(tr), metricValue(t, m, "repe_gw_transport_connections_accepted_total", of), tr)
		assert.Positive(t, metricValue(t, m, "repe_gw_transport_received_bytes_total", of), tr)
		assert.Positive(t, metricValue(t, m, "repe_gw_transport_sent_bytes_total", of), tr)
	}
	assert.Equal(t, 1.0, metricValue(t, m, "repe_gw_transport_requests_total", map[string]string{"transport": "tcp", "ec": "6"}))
	// The scrape may come before the gateway has seen a client's close.
	require.Eventually(t, func() bool {
		m := scrapeMetrics(t, e.admin)
		for _, tr := range transports {
			of := map[string]string{"transport": tr}
			if metricValue(t, m, "repe_gw_transport_connections_open", of) != 0 ||
				metricValue(t, m, "repe_gw_transport_connections_closed_total", of) != conns(tr) {
				return false
			}
		}
		return true
	}, gatewaytest.Timeout, 5*time.Millisecond, "every connection closed, and counted as its transport's")
	assert.Equal(t, 6.0, metricValue(t, m, "repe_gw_connections_accepted_total", nil), "the totals are the transports' sums")
}

// TestEveryTransportDrains: a call in flight on each transport when
// SIGTERM comes is answered in full, and the gateway then exits 0.
func TestEveryTransportDrains(t *testing.T) {
	e := startEveryListener(t, "--plugin-concurrency", "8")
	var wg sync.WaitGroup
	results := make([]string, len(transports))
	for i, tr := range transports {
		wg.Go(func() {
			ec, body := e.call(tr, "/gw/nap", "3000")
			results[i] = tr + ": " + ec.String() + " " + body
		})
	}
	require.Eventually(t, func() bool {
		return metricValue(t, scrapeMetrics(t, e.admin), "repe_gw_calls_in_flight", map[string]string{"plugin": "gw"}) == float64(len(transports))
	}, gatewaytest.Timeout, time.Millisecond, "a call in flight on every transport")
	e.signal(t, syscall.SIGTERM, `msg="shutting down"`)
	wg.Wait()
	for i, tr := range transports {
		assert.True(t, strings.HasPrefix(results[i], tr+": "+repe.OK.String()), results[i])
	}
	assert.Equal(t, exitOK, e.waitExit(t), e.log())
}
