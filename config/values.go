package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// The checks below hold each value to its range with the same words
// whether it comes from the file, a flag or the environment; callers add
// where it came from.

// parseCount reads a whole number in [lo, hi].
func parseCount(s string, lo, hi int, note string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("out of range: " + wantCount(lo, hi, note))
	case err != nil:
		return 0, errors.New("not a whole number: " + wantCount(lo, hi, note))
	}
	return checkCount(n, lo, hi, note)
}

// checkCount checks that n lies in [lo, hi]; note says what lo means when
// it means something special.
func checkCount(n int64, lo, hi int, note string) (int, error) {
	if n < int64(lo) || n > int64(hi) {
		return 0, errors.New("out of range: " + wantCount(lo, hi, note))
	}
	return int(n), nil
}

func wantCount(lo, hi int, note string) string {
	return fmt.Sprintf("want %d%s to %d", lo, note, hi)
}

// A durationCheck holds a duration to its range, saying what it wants.
type durationCheck func(time.Duration) error

// atLeastZero allows 0, which means what zero says ("never", "none").
func atLeastZero(zero string) durationCheck {
	return func(d time.Duration) error {
		if d < 0 {
			return errors.New("out of range: want 0 (" + zero + ") or more")
		}
		return nil
	}
}

// positive allows only durations above 0: an unset key is how to ask for
// none.
func positive(d time.Duration) error {
	if d <= 0 {
		return errors.New("out of range: want more than 0")
	}
	return nil
}

// inlineBudget allows (0, MaxInlineBudget] or negative. 0 would be a
// budget no call meets, which is better said with a negative one.
func inlineBudget(d time.Duration) error {
	if d == 0 || d > MaxInlineBudget {
		return errors.New("out of range: want more than 0 and at most " + MaxInlineBudget.String() + ", or negative (never)")
	}
	return nil
}

// parseDuration reads a Go duration such as 30s or 500ms and checks it.
func parseDuration(s string, check durationCheck) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration such as 30s or 500ms")
	}
	return d, check(d)
}

// checkAddr checks a listen address.
func checkAddr(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return errors.New("not an address HOST:PORT, such as 127.0.0.1:5099 or :5099")
	}
	return nil
}

// parseFraction reads a number from 0 to 1.
func parseFraction(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f > 1 || f != f {
		return 0, errors.New("want a number from 0 to 1")
	}
	return f, nil
}

// parseLevel reads one of the four level names, in any case.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, errors.New("want debug, info, warn or error")
}

// checkFormat checks a log format.
func checkFormat(s string) error {
	if s != "text" && s != "json" {
		return errors.New("want text or json")
	}
	return nil
}

// parseMode reads a plugin mode.
func parseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeInProcess, ModeIsolated:
		return m, nil
	}
	return "", errors.New("want inprocess or isolated")
}

// parseSHA256 reads a SHA-256 digest in hexadecimal, in either case, and
// returns it in lower case.
func parseSHA256(s string) (string, error) {
	if len(s) != 64 {
		return "", fmt.Errorf("want 64 hexadecimal digits, got %d characters", len(s))
	}
	for i := range len(s) {
		if !strings.ContainsRune("0123456789abcdefABCDEF", rune(s[i])) {
			return "", fmt.Errorf("want 64 hexadecimal digits, got %q at %d", s[i], i+1)
		}
	}
	return strings.ToLower(s), nil
}

// parseBool reads true or false, as strconv.ParseBool does (1, t, TRUE,
// ...), so that REPE_GW_ADMIN_PPROF=1 works as it does for most programs.
func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// checkedFile refuses an empty file name: leaving the key out is how to
// name none.
func checkedFile(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty: want a file")
	}
	return s, nil
}
