package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"48B", 48, ""},
		{"512KiB", 512 << 10, ""},
		{"64MiB", 64 << 20, ""},
		{"64 MiB", 64 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{"16777215TiB", 16777215 << 40, ""},
		{"16777216TiB", 0, "too large"},
		{"18446744073709551616", 0, "too large"},
		{"", 0, "not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB"},
		{"MiB", 0, "not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB"},
		{"-1", 0, "not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB"},
		{"1.5MiB", 0, "not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB"},
		{"64mib", 0, "not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB"},
		{"64MB", 0, "not a size: decimal units such as MB are not read; use KiB, MiB, GiB or TiB"},
		{"4kB", 0, "not a size: decimal units such as kB are not read; use KiB, MiB, GiB or TiB"},
		{"1G", 0, "not a size: decimal units such as G are not read; use KiB, MiB, GiB or TiB"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0B", 48: "48B", 1536: "1536B" /* no whole KiB */, 2048: "2KiB", 1 << 20: "1MiB",
		64 << 20: "64MiB", 4 << 30: "4GiB", 1 << 40: "1TiB", 1<<40 + 1: "1099511627777B",
	} {
		assert.Equal(t, want, FormatSize(n))
		back, err := ParseSize(want)
		assert.NoError(t, err)
		assert.Equal(t, n, back, "FormatSize's output reads back")
	}
}
