package bridge

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/beve"
	"github.com/repe-gw/repe-gw/repe"
)

// TestWriteBodyBEVE: a BEVE reply is sent as JSON, unless the client
// accepts BEVE, when it is sent as it is.
func TestWriteBodyBEVE(t *testing.T) {
	body, err := beve.AppendBEVE(nil, []byte(`{"value":42.5}`))
	require.NoError(t, err)
	reply := repe.Message(repe.AppendResponse(nil, 1, repe.OK, repe.BodyBEVE, body))

	w := httptest.NewRecorder()
	writeBody(w, httptest.NewRequest(http.MethodGet, "/calculator", nil), reply)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"value":42.5}`, w.Body.String())

	r := httptest.NewRequest(http.MethodGet, "/calculator", nil)
	r.Header.Set("Accept", mediaBEVE)
	w = httptest.NewRecorder()
	writeBody(w, r, reply)
	assert.Equal(t, mediaBEVE, w.Header().Get("Content-Type"))
	assert.Equal(t, body, w.Body.Bytes())
}

func TestReserved(t *testing.T) {
	for root, want := range map[string]bool{
		"/repe": true, "/jsonrpc": true, "/jsonrpc/x": true, "/repe/a/b": true,
		"/repeat": false, "/jsonrpc2": false, "": false, "/calculator": false,
	} {
		assert.Equal(t, want, Reserved(root), root)
	}
}
