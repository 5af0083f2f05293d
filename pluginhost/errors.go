package pluginhost

import "errors"

// Reasons a plugin is refused. Open and Load wrap them in a *LoadError that
// names the file, with the details (symbol, versions, root, result code).
var (
	// ErrOpen: the dynamic loader refused the file (not a shared object,
	// missing dependency, wrong architecture, ...).
	ErrOpen = errors.New("pluginhost: cannot open shared object")
	// ErrMissingSymbol: a required symbol is not exported.
	ErrMissingSymbol = errors.New("pluginhost: missing required symbol")
	// ErrInterfaceVersion: repe_plugin_interface_version is not 3.
	ErrInterfaceVersion = errors.New("pluginhost: unsupported plugin interface version")
	// ErrInfo: repe_plugin_info returned NULL, a NULL name or root path, a
	// string without a terminating NUL, or a root path that does not start
	// with "/".
	ErrInfo = errors.New("pluginhost: invalid plugin info")
	// ErrInit: repe_plugin_init returned a result other than REPE_OK.
	ErrInit = errors.New("pluginhost: plugin init failed")
	// ErrDuplicateRoot: another plugin already serves the same root path.
	ErrDuplicateRoot = errors.New("pluginhost: root path already claimed")
	// ErrContext: the plugin's context could not be made: its name cannot
	// name a directory, its data directory cannot be created, or the
	// system refused memory or a socket.
	ErrContext = errors.New("pluginhost: cannot make the plugin context")
)

// LoadError reports a plugin that was refused: the file and the reason. Err
// wraps one of the Err* reasons of this package.
type LoadError struct {
	File string
	Err  error
}

// Error implements error: the file, then the reason.
func (e *LoadError) Error() string { return e.File + ": " + e.Err.Error() }

// Unwrap returns the reason, for errors.Is and errors.As.
func (e *LoadError) Unwrap() error { return e.Err }
