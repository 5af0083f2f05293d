package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/client/repetest"
	"github.com/repe-gw/repe-gw/repe"
)

// TestErrorText checks the text of real failures, one per way a field of
// Error can be empty: no field shows up as an empty ": :" slot.
func TestErrorText(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = Dial(ctxTimeout(t, 5*time.Second), closed, nil)
	assert.EqualError(t, err, "client: connection_failure: dial tcp "+closed+": connect: connection refused", "Dial has no query")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Dial(ctx, closed, nil)
	assert.EqualError(t, err, "client: timeout: context canceled")

	h := func(dst []byte, req repe.Message) ([]byte, error) {
		if string(req.Query()) == "/silent" {
			return repe.AppendError(dst, req.ID(), repe.MethodNotFound, ""), nil
		}
		return route(dst, req)
	}
	srv := repetest.Start(t, h, repetest.Config{})
	c := dial(t, srv.Addr, &Config{Conns: 1})
	_, err = c.Call(ctxTimeout(t, 5*time.Second), "/silent", nil)
	assert.EqualError(t, err, "client: /silent: method_not_found", "an error reply without a message")
	_, err = c.Call(ctxTimeout(t, 5*time.Second), "", nil)
	assert.NoError(t, err, "route echoes the empty query")
	_, err = c.Call(ctxTimeout(t, 5*time.Second), "", make([]byte, 64<<20))
	assert.EqualError(t, err, "client: send_error: request of 67108912 bytes exceeds the maximum message size of 67108864",
		"a call to the empty query, the whole document in JSON pointer terms")

	assert.EqualError(t, &Error{Query: "/x", Cause: errors.New("cause")}, "client: /x: cause", "no Err")
	assert.EqualError(t, &Error{}, "client: error")
}
