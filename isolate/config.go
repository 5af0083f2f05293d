//go:build linux

package isolate

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Defaults of Config.
const (
	DefaultBackoffMin    = 100 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultMaxFailures   = 5
	DefaultFailureWindow = time.Minute
	DefaultStartTimeout  = 30 * time.Second
)

// selfExe runs the running program's own binary: the kernel resolves it to
// the file this process was started from, even after an upgrade has
// replaced or removed that path, so a worker always speaks this gateway's
// protocol.
const selfExe = "/proc/self/exe"

// Config says which plugin a Plugin runs and how its workers are run and
// restarted. Only File is required; every other field's zero value means
// its default.
type Config struct {
	// File is the plugin's shared object.
	File string

	// Exe is the program that runs the worker. "" runs the gateway's own
	// binary again (/proc/self/exe, the file this process started from,
	// even if an upgrade has since replaced it on disk).
	Exe string

	// WorkerArgs are the arguments that make Exe call ServeWorker, such as
	// []string{"worker"}; the worker's own flags follow them. Exe's
	// argv[0] is the gateway's.
	WorkerArgs []string

	// Env holds extra environment variables, "KEY=value", for the worker,
	// added to the gateway's own environment.
	Env []string

	// MemoryLimit caps, in bytes, the address space the plugin may add to
	// its worker's: before loading the plugin, the worker sets RLIMIT_AS
	// to its own size plus MemoryLimit, and an allocation beyond it fails
	// in the worker instead of growing the machine's memory. (The worker's
	// Go runtime alone has reserved about 1.5 GiB by then, mostly never
	// touched, which an absolute limit would have to allow for.) It is
	// address space, not resident memory: every thread's stack counts, and
	// glibc reserves 64 MiB for each of its malloc arenas. 0 means no
	// limit.
	MemoryLimit uint64

	// StartTimeout bounds the start of each worker, from its exec to its
	// handshake, which includes loading the plugin and its init; a worker
	// that takes longer is killed, and the start counts as a failure.
	// 0 means DefaultStartTimeout.
	StartTimeout time.Duration

	// BackoffMin is the wait before the first restart after a failure;
	// each failure within FailureWindow doubles it, up to BackoffMax.
	// 0 means DefaultBackoffMin (100 ms) and DefaultBackoffMax (30 s).
	BackoffMin, BackoffMax time.Duration

	// MaxFailures failures (a worker that died, was killed for a deadline,
	// or failed to start) within FailureWindow mark the plugin failed: it
	// is not restarted again, and its calls fail fast. 0 means
	// DefaultMaxFailures (5) and DefaultFailureWindow (one minute).
	MaxFailures   int
	FailureWindow time.Duration

	// Logger receives the events of the plugin's workers (starts, deaths,
	// restarts, the failed state) and their standard output and error, one
	// record per line. nil discards them.
	Logger *slog.Logger
}

// withDefaults fills in the defaults and checks what is left.
func (c Config) withDefaults() (Config, error) {
	if c.File == "" {
		return c, errors.New("isolate: Config.File is empty")
	}
	abs, err := filepath.Abs(c.File)
	if err != nil {
		return c, fmt.Errorf("isolate: %s: %w", c.File, err)
	}
	c.File = abs
	if c.Exe == "" {
		c.Exe = selfExe
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffMin {
		return c, fmt.Errorf("isolate: BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.FailureWindow <= 0 {
		c.FailureWindow = DefaultFailureWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
