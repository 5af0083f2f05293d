//go:build linux

package isolate

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// progress is a view of the progress page (see offStarted), mapped in this
// process.
type progress struct {
	mem         []byte
	started     *atomic.Uint64
	pendingBase *atomic.Uint64
	pendingLen  *atomic.Uint64
	area        []byte
}

// mapProgress maps the progress page held by the memfd fd.
func mapProgress(fd int) (progress, error) {
	mem, err := unix.Mmap(fd, 0, progressSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return progress{}, fmt.Errorf("mapping the progress page: %w", err)
	}
	// The page is not Go memory, and mmap aligns it to a page, so the
	// words are aligned for atomic access.
	word := func(off int) *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&mem[off])) }
	return progress{
		mem:         mem,
		started:     word(offStarted),
		pendingBase: word(offPendingBase),
		pendingLen:  word(offPendingLen),
		area:        mem[offArea:],
	}, nil
}

// newProgress creates a progress page and maps it; the worker maps the
// returned memfd.
func newProgress() (progress, *os.File, error) {
	fd, err := unix.MemfdCreate("repe-gw-progress", unix.MFD_CLOEXEC)
	if err != nil {
		return progress{}, nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "repe-gw-progress")
	if err := unix.Ftruncate(fd, progressSize); err != nil {
		f.Close()
		return progress{}, nil, fmt.Errorf("sizing the progress page: %w", err)
	}
	pr, err := mapProgress(fd)
	if err != nil {
		f.Close()
		return progress{}, nil, err
	}
	return pr, f, nil
}

// unmap releases the mapping.
func (pr progress) unmap() {
	if pr.mem != nil {
		unix.Munmap(pr.mem)
	}
}

// begin counts one more request as started, or reports false when the
// gateway has aborted the worker, which must then run nothing more.
func (pr progress) begin() bool {
	for {
		v := pr.started.Load()
		if v&abortBit != 0 {
			return false
		}
		if pr.started.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// abort stops the worker from beginning any other request and returns how
// many it had begun.
func (pr progress) abort() uint64 { return pr.started.Or(abortBit) &^ abortBit }

// pending returns the records in the area and the index of the first, as
// the worker left them; the caller has made sure it no longer changes them
// (it has exited). ok is false when the page is not one the worker can
// have written.
func (pr progress) pending() (recs []byte, base uint64, ok bool) {
	n := pr.pendingLen.Load()
	if n > uint64(len(pr.area)) {
		return nil, 0, false
	}
	return pr.area[:n], pr.pendingBase.Load(), true
}
