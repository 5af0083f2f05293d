// Command perfsum sums up a CPU profile of a REPE server recorded by
// `perf record -g` into where its time goes: each sample is put in one
// bucket by its call stack (the kernel by system call, the plugin, the cgo
// transition, pluginhost, the gateway, gnet, the Go runtime), and every
// copy the user side makes (memmove, memclr) is named by the function that
// asked for it, since copies are what large bodies cost.
//
//	perf script -i perf.data | perfsum [-top N]
//
// It prints two Markdown tables: the buckets, and the top leaf functions
// with the bucket each counts in. bench/profile.sh records the profiles and
// runs it.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

func main() {
	fs := flag.NewFlagSet("perfsum", flag.ContinueOnError)
	top := fs.Int("top", 25, "leaf functions to list")
	perReq := fs.Float64("per-request", 0, "the server's CPU time per request, in `UNIT`s: adds a column of each share's cost per request")
	unit := fs.String("unit", "µs", "the unit of --per-request")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := run(os.Stdin, os.Stdout, *top, *perReq, *unit); err != nil {
		fmt.Fprintln(os.Stderr, "perfsum:", err)
		os.Exit(1)
	}
}

// frame is one entry of a sample's call stack: a function and the object it
// is in.
type frame struct {
	sym string // without the +0x offset
	dso string // the file's base name, or [kernel.kallsyms]
}

func run(r io.Reader, w io.Writer, top int, perReq float64, unit string) error {
	buckets := map[string]int{}
	leaves := map[[2]string]int{} // leaf function, bucket
	total := 0
	err := samples(r, func(stack []frame) {
		b := classify(stack)
		buckets[b]++
		leaves[[2]string{stack[0].sym, b}]++
		total++
	})
	if err != nil {
		return err
	}
	if total == 0 {
		return errors.New("no samples with call stacks: record with perf record -g")
	}
	pct := func(n int) string {
		share := float64(n) / float64(total)
		if perReq > 0 {
			return fmt.Sprintf("%.1f %% | %.3f %s", 100*share, share*perReq, unit)
		}
		return fmt.Sprintf("%.1f %%", 100*share)
	}
	head := "share of server CPU |\n|---|---:|"
	if perReq > 0 {
		head = "share of server CPU | per request |\n|---|---:|---:|"
	}
	fmt.Fprintf(w, "%d samples.\n\n| where | %s\n", total, head)
	for _, b := range byCount(buckets) {
		fmt.Fprintf(w, "| %s | %s |\n", b, pct(buckets[b]))
	}
	fmt.Fprintf(w, "\n| leaf function | counted in | %s\n", strings.Replace(head, "|---|", "|---|---|", 1))
	for i, l := range byCount(leaves) {
		if i == top {
			break
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", l[0], l[1], pct(leaves[l]))
	}
	return nil
}

// byCount returns m's keys, most counted first.
func byCount[K cmp.Ordered | [2]string](m map[K]int) []K {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b K) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	return keys
}

// samples calls f with the call stack, leaf first, of every sample in the
// text of perf script: a header line, then one indented line per frame,
// "ADDR SYMBOL+OFFSET (DSO)", then a blank line.
func samples(r io.Reader, f func([]frame)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	var stack []frame
	flush := func() {
		if len(stack) > 0 {
			f(stack)
		}
		stack = nil
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] != '\t' && line[0] != ' ' {
			flush() // a header
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			continue
		}
		sym := strings.Join(fields[1:len(fields)-1], " ")
		if i := strings.LastIndex(sym, "+0x"); i > 0 {
			sym = sym[:i]
		}
		dso := strings.Trim(fields[len(fields)-1], "()")
		if i := strings.LastIndexByte(dso, '/'); i >= 0 {
			dso = dso[i+1:]
		}
		stack = append(stack, frame{sym, dso})
	}
	flush()
	return sc.Err()
}

// Buckets. A system call's bucket holds the kernel's work in it and Go's
// entry to and exit from it, where sampling in a virtual machine puts much
// of the cost (the sample lands when interrupts are enabled again).
const (
	sysWrite       = "write(2) of the replies: TCP send, loopback delivery to the client"
	sysRead        = "read(2) of the requests"
	sysEpoll       = "epoll_wait(2): waiting and waking"
	sysFutex       = "futex(2): waking goroutines and threads"
	sysOther       = "other system calls"
	kernelIRQ      = "kernel: interrupts and preemption"
	sysmon         = "Go runtime: sysmon (watches system calls and cgo calls)"
	pluginC        = "plugin code, in C (its own work, libc)"
	cgoTransition  = "Go→C call transition (runtime.cgocall, entersyscall/exitsyscall)"
	pluginhostBook = "pluginhost: Call bookkeeping (enter/leave, thread lock, reply checks)"
	gatewayBook    = "gateway: framing, routing, batch and run bookkeeping"
	gnetLoop       = "gnet: event loop, buffers, write path"
	goRuntime      = "Go runtime: scheduler, GC, timers"
	other          = "other"
)

// classify puts one sample, leaf first, in a bucket.
func classify(stack []frame) string {
	leaf := stack[0]
	has := func(subs ...string) bool {
		for _, fr := range stack {
			for _, s := range subs {
				if strings.Contains(fr.sym, s) {
					return true
				}
			}
		}
		return false
	}
	inKernel := leaf.dso == "[kernel.kallsyms]"
	switch {
	case strings.HasSuffix(leaf.dso, ".so") || strings.Contains(leaf.dso, ".so."):
		// A shared object, where the server is a static Go executable:
		// the plugin, or libc and the dynamic loader on its behalf (Go
		// code calls no libc).
		return pluginC
	case has("runtime.sysmon"):
		return sysmon
	case isCopy(leaf.sym):
		return "copy: " + shortName(leaf.sym) + " ← " + shortName(owner(stack))
	case has("pluginhost.ccall", "runtime.cgocall", "runtime.asmcgocall"):
		if inKernel {
			return kernelIRQ // an interrupt while in C
		}
		return cgoTransition
	}
	if inKernel || isSyscallEdge(leaf.sym) {
		switch {
		case has("ksys_write", "sys_writev", "sock_write_iter", "x/sys/unix.write"):
			return sysWrite
		case has("ksys_read", "sys_readv", "sock_read_iter", "x/sys/unix.read"):
			return sysRead
		case has("do_epoll_wait", "unix.EpollWait"):
			return sysEpoll
		case has("do_futex", "runtime.futex"):
			return sysFutex
		case has("do_syscall_64", "Syscall"):
			return sysOther
		}
		return kernelIRQ
	}
	if has("pluginhost.") {
		return pluginhostBook
	}
	switch o := owner(stack); {
	case strings.Contains(o, "/gnet/"):
		return gnetLoop
	case strings.Contains(o, "repe-gw/gateway.") || strings.Contains(o, "repe-gw/repe."):
		return gatewayBook
	case o == "" && strings.HasPrefix(leaf.sym, "runtime."):
		return goRuntime
	}
	return other
}

// isSyscallEdge reports whether sym is where Go enters or leaves a system
// call.
func isSyscallEdge(sym string) bool {
	switch sym {
	case "internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.Syscall", "syscall.Syscall6",
		"runtime.entersyscall", "runtime.reentersyscall", "runtime.exitsyscall", "runtime.exitsyscallfast",
		"runtime.futex.abi0", "runtime.usleep.abi0":
		return true
	}
	return false
}

// isCopy reports whether sym is one of the runtime's copy or clear loops.
func isCopy(sym string) bool {
	return sym == "runtime.memmove" || sym == "runtime.memclrNoHeapPointers"
}

// owner returns the innermost function of stack that is neither the
// runtime's nor a system call wrapper: the code on whose behalf the leaf
// runs.
func owner(stack []frame) string {
	for _, fr := range stack {
		s := fr.sym
		if strings.HasPrefix(s, "runtime.") || strings.HasPrefix(s, "internal/") || strings.HasPrefix(s, "syscall.") ||
			strings.HasPrefix(s, "golang.org/x/sys/") || s == "memeqbody" || fr.dso == "[kernel.kallsyms]" {
			continue
		}
		return s
	}
	return ""
}

// shortName drops the module path of a Go symbol:
// github.com/repe-gw/repe-gw/gateway.(*conn).serve is gateway.(*conn).serve.
func shortName(sym string) string {
	if i := strings.LastIndexByte(sym, '/'); i >= 0 {
		return sym[i+1:]
	}
	return sym
}
