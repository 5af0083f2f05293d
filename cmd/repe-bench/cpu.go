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
		return 0, fmt.Errorf("-server-pid: %w", err)
	}
	return parseProcStat(b)
}

// parseProcStat reads utime and stime from the contents of /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces or
// parentheses itself, so fields are counted from the last ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("-server-pid: unexpected /proc stat %q", b)
	}
	// After ") " come field 3 (state) and on: utime is field 14, stime 15.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("-server-pid: unexpected /proc stat %q", b)
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("-server-pid: unexpected /proc stat %q", b)
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

// cpuSample is the CPU time of this process and, when one is watched, of the
// server at one moment.
type cpuSample struct {
	self, server time.Duration
	serverErr    error
}

func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{self: selfCPU()}
	if serverPID > 0 {
		s.server, s.serverErr = procCPU(serverPID)
	}
	return s
}
