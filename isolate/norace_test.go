//go:build linux && !race

package isolate

// raceEnabled: see race_test.go.
const raceEnabled = false
