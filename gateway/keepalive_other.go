//go:build !linux

package gateway

import "time"

// keepAliveInherited: elsewhere, keep-alive is set on each accepted
// connection.
const keepAliveInherited = false

func setKeepAlive(int, time.Duration) error { return nil }
