// Package conformance proves that repe-gw speaks REPE as Glaze does, by
// replaying frames recorded from a real Glaze host and plugin against a real
// gateway over TCP. It holds tests only; README.md explains the suite.
package conformance
