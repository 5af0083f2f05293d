package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: Linux reports them
// in USER_HZ ticks, which is 100 on every architecture Go supports (it is
// part of the user-space ABI, unlike the kernel's HZ).
const userHZ = 100

// procCPU returns the user plus system CPU time that process pid has used,
// all threads included, from /proc/PID/stat (fields 14 and 15, proc(5)).
// Its resolution is 10 ms: measure windows of seconds.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("--server-pid: %w", err)
	}
	return parseProcStat(b)
}

// parseProcStat reads utime and stime from the contents of /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces or
// parentheses itself, so fields are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("--server-pid: unexpected /proc stat %q", b)
	}
	// After ") " come field 3 (state) and on: utime is field 14, stime 15.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("--server-pid: unexpected /proc stat %q", b)
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("--server-pid: unexpected /proc stat %q", b)
	}
	return time.Duration(utime+stime) * (time.Second / userHZ), nil
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
