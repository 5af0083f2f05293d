//go:build !race

package client

// raceEnabled skips allocation budgets, which the race detector inflates.
const raceEnabled = false
