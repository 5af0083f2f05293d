package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: Linux reports them
// in USER_HZ ticks, which is 100 on every architecture Go supports (it is
// part of the user-space ABI, unlike the kernel's HZ).
const userHZ = 100

// procCPU returns the user plus system CPU time that process pid has used,
// all threads included, from /proc/PID/stat (fields 14 and 15, proc(5)),
// with that of its child processes: those it has waited for (fields 16 and
// 17) and, recursively, those still running, so that a gateway's isolated
// plugins' worker processes count as the server's. Its resolution is 10 ms:
// measure windows of seconds.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("--server-pid: %w", err)
	}
	total, err := parseProcStat(b)
	if err != nil {
		return 0, err
	}
	for _, child := range children(pid) {
		if t, err := procCPU(child); err == nil { // a child may end meanwhile
			total += t
		}
	}
	return total, nil
}

// children returns the running child processes of pid, from the children
// file of each of its threads (proc(5)).
func children(pid int) []int {
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	var out []int
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// parseProcStat reads utime and stime, and cutime and cstime (the CPU time
// of the children the process has waited for), from the contents of
// /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces or
// parentheses itself, so fields are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("--server-pid: unexpected /proc stat %q", b)
	}
	// After ") " come field 3 (state) and on: utime is field 14, stime 15,
	// cutime 16 and cstime 17.
	f := bytes.Fields(b[i+1:])
	if len(f) < 15 {
		return 0, fmt.Errorf("--server-pid: unexpected /proc stat %q", b)
	}
	var ticks uint64
	for _, field := range f[11:15] {
		n, err := strconv.ParseUint(string(field), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("--server-pid: unexpected /proc stat %q", b)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// selfCPU returns the user plus system CPU time this process has used, with
// microsecond resolution.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU returns the CPU time all processes have used on all CPUs and
// the time stolen by the hypervisor, from the first line of /proc/stat. Busy
// time is user, nice, system, irq and softirq: without IRQ time accounting,
// the kernel charges softirq time to the interrupted task as well, as
// /proc/PID/stat shows it.
func machineCPU() (busy, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineStat(b)
}

func parseMachineStat(b []byte) (busy, steal time.Duration, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat %q", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(string(f[i+1]), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("unexpected /proc/stat %q", line)
		}
	}
	tick := time.Second / userHZ
	return time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * tick, time.Duration(v[7]) * tick, nil
}

// cpuSample is the CPU time of this process, of the server when one is
// watched, and of the whole machine, at one moment.
type cpuSample struct {
	self, server   time.Duration
	serverErr      error
	machine, steal time.Duration
	machineErr     error
}

func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{self: selfCPU()}
	if serverPID > 0 {
		s.server, s.serverErr = procCPU(serverPID)
	}
	s.machine, s.steal, s.machineErr = machineCPU()
	return s
}
