//go:build linux && race

package isolate

// raceEnabled skips allocation budgets, which the race detector inflates.
// (Config.MemoryLimit is relative to the worker's address space at start,
// so the race detector's shadow reservations do not count against it, and
// the hog test runs under -race too.)
const raceEnabled = true
