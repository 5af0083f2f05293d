//go:build !linux

package main

// isolatedState is never called where isolated plugins cannot start.
func isolatedState(*isolatedPlugin) func() (string, bool) { return nil }
