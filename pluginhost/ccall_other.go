//go:build !amd64 && !arm64

package pluginhost

// The call trampoline exists for amd64 and arm64 only (ccall_GOARCH.s); this
// undefined name makes a build for another architecture fail here, saying
// why, rather than at a missing symbol.
var _ = pluginhostSupportsOnlyAmd64AndArm64
