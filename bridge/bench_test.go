package bridge

import (
	"net/http"
	"testing"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/internal/gatewaytest"
)

// discard is a ResponseWriter that keeps nothing but its header map, as
// net/http's reuses none either: the benchmark measures the handler.
type discard struct {
	h      http.Header
	status int
	n      int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(status int)      { d.status = status }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// BenchmarkRESTGet measures the bridge's handler for GET
// /calculator/value, the request of bench/transports.sh, beside the bare
// handler of bench/httpfloor that answers the same bytes: their
// difference is what the bridge adds to net/http's own cost.
func BenchmarkRESTGet(b *testing.B) {
	srv, _ := gatewaytest.Serve(b, gateway.Config{}, gatewaytest.Calculator(b))
	body := []byte("0")
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"bridge", New(srv, Config{})},
		{"floor", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req, err := http.NewRequest(http.MethodGet, "http://gw/calculator/value", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.RemoteAddr = "127.0.0.1:40000"
			b.ReportAllocs()
			for b.Loop() {
				w := &discard{h: http.Header{}}
				tc.h.ServeHTTP(w, req)
				if w.status > http.StatusOK || w.n != 1 {
					b.Fatalf("status %d, %d bytes", w.status, w.n)
				}
			}
		})
	}
}
