package config

import (
	"errors"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes ParseSize reads and FormatSize writes, largest
// first. Only binary units: "MB" means 10^6 bytes to some readers and 2^20
// to others, and a limit must not depend on which.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// decimalUnits are refused with a hint rather than read one way or the
// other.
var decimalUnits = []string{"KB", "MB", "GB", "TB", "kB", "K", "M", "G", "T"}

// ParseSize reads a byte count: a whole number of bytes (1048576), or one
// followed by B, KiB, MiB, GiB or TiB (48B, 512KiB, 64MiB, 1GiB), with or
// without a space before the unit. Decimal units (KB, MB, GB) are refused,
// since readers disagree on what they mean. It checks no range: callers
// bound the value for what it limits.
//
// It reads what the size flags of repe-gw read, and TiB, so that a size
// means the same in a flag, the environment and the file.
func ParseSize(s string) (uint64, error) {
	num, shift := s, uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && n > (1<<64-1)>>shift:
		return 0, errors.New("too large")
	case err != nil:
		for _, d := range decimalUnits {
			if strings.HasSuffix(s, d) {
				return 0, errors.New("not a size: decimal units such as " + d + " are not read; use KiB, MiB, GiB or TiB")
			}
		}
		return 0, errors.New("not a size: want bytes, or a whole number with KiB, MiB, GiB or TiB")
	}
	return n << shift, nil
}

// FormatSize writes n in the largest unit that divides it: 64MiB, 48B. Its
// output reads back with ParseSize.
func FormatSize(n uint64) string {
	for _, u := range sizeUnits {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatUint(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// checkSize checks that n lies in [lo, hi].
func checkSize(n, lo, hi uint64) error {
	switch {
	case n > hi:
		return errors.New("too large: want " + FormatSize(lo) + " to " + FormatSize(hi))
	case n < lo:
		return errors.New("too small: want " + FormatSize(lo) + " to " + FormatSize(hi))
	}
	return nil
}

// parseSizeIn reads a size in [lo, hi], for flags and the environment.
func parseSizeIn(s string, lo, hi uint64) (uint64, error) {
	n, err := ParseSize(s)
	if err != nil {
		return 0, errors.New(err.Error() + ": want " + FormatSize(lo) + " to " + FormatSize(hi))
	}
	return n, checkSize(n, lo, hi)
}
