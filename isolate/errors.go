//go:build linux

package isolate

import (
	"errors"

	"github.com/repe-gw/repe-gw/pluginhost"
)

var (
	// ErrWorker: the worker process could not be started, died, or did not
	// finish its handshake in time, before it reported on its plugin. Start
	// wraps it in a *pluginhost.LoadError with the details.
	ErrWorker = errors.New("isolate: worker failed")

	// ErrBatch: the requests given to Plugin.Call are not whole REPE frames
	// back to back; nothing was sent.
	ErrBatch = errors.New("isolate: requests do not frame")
)

// loadReasons are the reasons pluginhost refuses a plugin for, numbered for
// the wire (kindRefused), so that a refusal in the worker is the same
// errors.Is-comparable *pluginhost.LoadError in the gateway. Index 0 is a
// reason not listed.
var loadReasons = [...]error{
	nil,
	pluginhost.ErrOpen,
	pluginhost.ErrMissingSymbol,
	pluginhost.ErrInterfaceVersion,
	pluginhost.ErrInfo,
	pluginhost.ErrInit,
	pluginhost.ErrDuplicateRoot,
}

// reasonIndex returns err's index in loadReasons, 0 when none matches.
func reasonIndex(err error) uint32 {
	for i, r := range loadReasons {
		if r != nil && errors.Is(err, r) {
			return uint32(i)
		}
	}
	return 0
}

// remoteError is a load error that happened in a worker: its text as the
// worker wrote it, and the pluginhost reason it wrapped.
type remoteError struct {
	text   string
	reason error // one of loadReasons, or nil
}

func (e *remoteError) Error() string { return e.text }
func (e *remoteError) Unwrap() error { return e.reason }

// refusal rebuilds the error of a kindRefused record.
func refusal(index uint32, text string) error {
	var reason error
	if int(index) < len(loadReasons) {
		reason = loadReasons[index]
	}
	return &remoteError{text: text, reason: reason}
}
