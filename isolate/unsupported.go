//go:build !linux

package isolate

// Workers rest on Linux: PR_SET_PDEATHSIG, pidfds, ppoll and RLIMIT_AS.
// This undefined name makes a build for another system fail here, saying
// why.
var _ = isolateSupportsOnlyLinux
