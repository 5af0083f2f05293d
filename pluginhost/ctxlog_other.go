//go:build !linux

package pluginhost

import "errors"

// ctxLogABI0 would be the context's log function, which makes Linux system
// calls; logSocket refuses the context elsewhere, so it is never used.
var ctxLogABI0 uintptr

func logSocket() ([2]int, error) {
	return [2]int{}, errors.New("the plugin context is implemented on Linux only")
}
