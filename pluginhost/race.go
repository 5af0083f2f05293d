//go:build race

package pluginhost

// raceEnabled turns on invariant checks that are too costly, or too
// paranoid, for production builds; the race detector's test runs enable
// them.
const raceEnabled = true
