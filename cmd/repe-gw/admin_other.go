//go:build !linux

package main

// isolatedState is never called where isolated plugins cannot start.
func isolatedState(*isolatedPlugin) func() (string, bool) { return nil }

// isolatedRestarts is never called where isolated plugins cannot start.
func isolatedRestarts(*isolatedPlugin) func() uint64 { return nil }
