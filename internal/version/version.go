// Package version tells which build of repe-gw is running, from the build
// information the Go toolchain records in every binary, so that no release
// step has to stamp it with -ldflags.
package version

import (
	"runtime/debug"
	"time"
)

// String returns the version of the running binary:
//
//   - the main module's version, when the toolchain recorded a real one: a
//     tag such as v1.2.0, or a pseudo-version such as
//     v0.0.0-20250601100000-0123456789ab+dirty, as go build writes from
//     the repository since Go 1.24, and go install module@version writes
//     from the module proxy;
//   - otherwise the commit the binary was built from, 12 hex digits, with
//     "+dirty" when the working tree had uncommitted changes, and the
//     commit's time: 0123456789ab+dirty (2025-06-01T10:00:00Z);
//   - otherwise "(devel)", Go's word for a build with neither (go run, or
//     -buildvcs=false outside a tagged module);
//   - "unknown" only when the binary carries no build information at all.
func String() string {
	return fromBuildInfo(debug.ReadBuildInfo())
}

// fromBuildInfo is String for a given debug.ReadBuildInfo result, so that
// tests can give it every kind of build.
func fromBuildInfo(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, when string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "(devel)"
	}
	const shortRevision = 12 // as in pseudo-versions
	if len(rev) > shortRevision {
		rev = rev[:shortRevision]
	}
	if dirty {
		rev += "+dirty"
	}
	if t, err := time.Parse(time.RFC3339Nano, when); err == nil {
		rev += " (" + t.UTC().Format(time.RFC3339) + ")"
	}
	return rev
}
