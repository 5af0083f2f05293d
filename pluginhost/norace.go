//go:build !race

package pluginhost

// raceEnabled turns on invariant checks in -race builds; see race.go.
const raceEnabled = false
