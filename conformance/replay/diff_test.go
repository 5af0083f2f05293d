package replay

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/repe-gw/repe-gw/repe"
)

func TestDiff(t *testing.T) {
	reply := func(id uint64, ec repe.ErrorCode, bf repe.BodyFormat, body string) []byte {
		return repe.AppendResponse(nil, id, ec, bf, []byte(body))
	}
	tests := []struct {
		name      string
		want, got []byte
		diff      string
	}{
		{"equal", reply(1, 0, repe.BodyJSON, "42"), reply(1, 0, repe.BodyJSON, "42"), ""},
		{"body", reply(1, 0, repe.BodyJSON, "42"), reply(1, 0, repe.BodyJSON, "43"),
			`  body: got "43", want "42"`},
		{"an error for a value", reply(1, 0, repe.BodyJSON, "0"), reply(2, repe.MethodNotFound, repe.BodyUTF8, "nope"),
			"  length: got 52, want 49\n  id: got 2, want 1\n  body_format: got 3 (utf8), want 2 (json)\n" +
				"  ec: got 6 (method_not_found), want 0 (none)\n" + `  body: got "nope", want "0"`},
		{"binary bodies", reply(1, 0, repe.BodyBEVE, "\x61\x00"), reply(1, 0, repe.BodyBEVE, "\x61\xff"),
			"  body: got 61ff (hex), want 6100 (hex)"},
		{"no frame", []byte{1, 2, 3}, []byte{1, 2, 4, 5}, "  bytes differ from offset 2: got 4 bytes 01020405, want 3 bytes 010203"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.diff, Diff(tt.want, tt.got))
		})
	}
}
