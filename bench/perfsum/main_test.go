package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// script is perf script output of the shape perf 6 prints: a header line
// per sample, its frames leaf first, a blank line.
const script = `repe-gw 100 1.000: 333444 cpu-clock:
	ffffffff8225fd19 pvm_irq_enable+0x19 ([kernel.kallsyms])
	ffffffff816d68d0 vfs_write+0x400 ([kernel.kallsyms])
	ffffffff816d6bc3 ksys_write+0xc3 ([kernel.kallsyms])
	ffffffff8225a6c1 do_syscall_64+0x71 ([kernel.kallsyms])
	           1b1b1 internal/runtime/syscall/linux.Syscall6+0xe (/srv/bin/repe-gw)
	           1b2b2 golang.org/x/sys/unix.write+0x4e (/srv/bin/repe-gw)
	           1c1c1 github.com/panjf2000/gnet/v2.(*conn).Write+0x50 (/srv/bin/repe-gw)

repe-gw 100 1.001: 333444 cpu-clock:
	           1b1b1 internal/runtime/syscall/linux.Syscall6+0xe (/srv/bin/repe-gw)
	           1b2b2 golang.org/x/sys/unix.read+0x4e (/srv/bin/repe-gw)

repe-gw 100 1.002: 333444 cpu-clock:
	            1234 repe_plugin_call+0x20 (/srv/plugins/calculator.so)

repe-gw 100 1.003: 333444 cpu-clock:
	            5678 pthread_mutex_lock@@GLIBC_2.2.5+0x10 (/usr/lib/x86_64-linux-gnu/libc.so.6)

repe-gw 100 1.004: 333444 cpu-clock:
	           2a2a2 runtime.reentersyscall+0x80 (/srv/bin/repe-gw)
	           2b2b2 runtime.cgocall+0x40 (/srv/bin/repe-gw)
	           2c2c2 github.com/repe-gw/repe-gw/pluginhost.ccall+0x30 (/srv/bin/repe-gw)

repe-gw 100 1.005: 333444 cpu-clock:
	           3a3a3 runtime.memmove+0x100 (/srv/bin/repe-gw)
	           3b3b3 github.com/repe-gw/repe-gw/pluginhost.(*Plugin).copyReply+0x200 (/srv/bin/repe-gw)
	           3c3c3 github.com/repe-gw/repe-gw/pluginhost.(*Plugin).Call+0x90 (/srv/bin/repe-gw)

repe-gw 100 1.006: 333444 cpu-clock:
	           4a4a4 github.com/repe-gw/repe-gw/pluginhost.(*Plugin).leave+0x10 (/srv/bin/repe-gw)
	           4b4b4 github.com/repe-gw/repe-gw/pluginhost.(*Plugin).Call+0x90 (/srv/bin/repe-gw)

repe-gw 100 1.007: 333444 cpu-clock:
	           5a5a5 runtime.mapaccess1_fast64+0x10 (/srv/bin/repe-gw)
	           5b5b5 github.com/repe-gw/repe-gw/gateway.(*router).route+0x30 (/srv/bin/repe-gw)

repe-gw 101 1.008: 333444 cpu-clock:
	ffffffff8225fd19 pvm_irq_enable+0x19 ([kernel.kallsyms])
	ffffffff82266833 __x64_sys_nanosleep+0x23 ([kernel.kallsyms])
	           6a6a6 runtime.usleep.abi0+0x3d (/srv/bin/repe-gw)
	           6b6b6 runtime.sysmon+0x120 (/srv/bin/repe-gw)

repe-gw 100 1.009: 333444 cpu-clock:
	           7a7a7 github.com/panjf2000/gnet/v2/pkg/netpoll.(*Poller).Polling+0x28f (/srv/bin/repe-gw)
`

func TestPerfsum(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(strings.NewReader(script), &out, 3, 1.0, "µs"))
	md := out.String()
	for _, want := range []string{
		"10 samples.",
		"| " + sysWrite + " | 10.0 % | 0.100 µs |",
		"| " + sysRead + " | 10.0 % | 0.100 µs |",
		"| " + pluginC + " | 20.0 % | 0.200 µs |",
		"| " + cgoTransition + " | 10.0 % | 0.100 µs |",
		"| copy: runtime.memmove ← pluginhost.(*Plugin).copyReply | 10.0 % | 0.100 µs |",
		"| " + pluginhostBook + " | 10.0 % | 0.100 µs |",
		"| " + gatewayBook + " | 10.0 % | 0.100 µs |",
		"| " + sysmon + " | 10.0 % | 0.100 µs |",
		"| " + gnetLoop + " | 10.0 % | 0.100 µs |",
		// The leaf table lists -top entries, ties in name order.
		"| `github.com/panjf2000/gnet/v2/pkg/netpoll.(*Poller).Polling` | " + gnetLoop + " | 10.0 % | 0.100 µs |",
	} {
		assert.True(t, strings.Contains(md, want), "missing %q in\n%s", want, md)
	}
	assert.Equal(t, 3, strings.Count(md, "| `"), "three leaf functions")
}

func TestPerfsumNeedsStacks(t *testing.T) {
	assert.ErrorContains(t, run(strings.NewReader(""), &strings.Builder{}, 3, 0, "µs"), "no samples")
}
