// Package deploy holds the test of the Kubernetes manifests in
// kubernetes/. It is a Go module of its own so that k8s.io/api, which the
// test decodes them into and which is slow to compile under the race
// detector, stays out of the gateway's module; make test runs it without
// -race.
package deploy
