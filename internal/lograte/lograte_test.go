package lograte

import "testing"

// TestDoLetsOneThroughAndCounts: within an interval only the first call
// logs; the next that logs is told how many were skipped.
func TestDoLetsOneThroughAndCounts(t *testing.T) {
	var r Limiter
	var logged []int64
	for range 5 {
		r.Do(func(s int64) { logged = append(logged, s) })
	}
	if len(logged) != 1 || logged[0] != 0 {
		t.Fatalf("logged %v, want one call with 0 skipped", logged)
	}
	r.next.Store(0) // the interval has passed
	r.Do(func(s int64) { logged = append(logged, s) })
	if len(logged) != 2 || logged[1] != 4 {
		t.Fatalf("logged %v, want the second call told of 4 skipped", logged)
	}
}
