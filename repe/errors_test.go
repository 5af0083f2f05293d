package repe_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/repe"
)

func TestErrorText(t *testing.T) {
	assert.Equal(t, "repe: invalid_header: Invalid header",
		(&repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"}).Error())
	assert.Equal(t, "repe: timeout", (&repe.Error{Code: repe.Timeout}).Error())
	assert.Equal(t, "repe: ec 5000: busy", (&repe.Error{Code: 5000, Message: "busy"}).Error())
}

func TestErrorIsAndAs(t *testing.T) {
	_, err := repe.Parse(make([]byte, 10))
	wrapped := fmt.Errorf("conn 3: %w", err)

	assert.ErrorIs(t, wrapped, repe.InvalidHeader)
	assert.NotErrorIs(t, wrapped, repe.VersionMismatch)
	assert.ErrorIs(t, wrapped, &repe.Error{Code: repe.InvalidHeader})
	assert.ErrorIs(t, wrapped, &repe.Error{Code: repe.InvalidHeader, Message: "Invalid header"})
	assert.NotErrorIs(t, wrapped, &repe.Error{Code: repe.InvalidHeader, Message: "other"})

	var e *repe.Error
	require.ErrorAs(t, wrapped, &e)
	assert.Equal(t, repe.InvalidHeader, e.Code)
	var c repe.ErrorCode
	assert.False(t, errors.As(wrapped, &c), "an *Error is not an ErrorCode")
}

func TestAsError(t *testing.T) {
	typed := &repe.Error{Code: repe.MethodNotFound, Message: "invalid_query: /x"}
	tests := []struct {
		name string
		err  error
		want *repe.Error
	}{
		{"nil", nil, nil},
		{"itself", typed, typed},
		{"wrapped", fmt.Errorf("route: %w", typed), typed},
		{"bare code", repe.Timeout, &repe.Error{Code: repe.Timeout}},
		{"wrapped code", fmt.Errorf("call: %w", repe.SendError), &repe.Error{Code: repe.SendError}},
		{"foreign", io.ErrUnexpectedEOF, &repe.Error{Code: repe.ParseError, Message: "unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, repe.AsError(tt.err))
		})
	}
}
