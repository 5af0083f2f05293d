//go:build linux

package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/repe-gw/repe-gw/gateway"
	"github.com/repe-gw/repe-gw/isolate"
	"github.com/repe-gw/repe-gw/pluginhost"
	"github.com/repe-gw/repe-gw/repe"
)

// checkCallTimeout bounds the call check makes through isolate's worker,
// and checkStepTimeout each check-worker process, so that a plugin that
// hangs is a finding, not a check that never ends.
const (
	checkCallTimeout = 30 * time.Second
	checkStepTimeout = 2 * time.Minute
)

// checkIDBase is the id of a check's first request. Ids past 2^32 catch a
// plugin that keeps the id in 32 bits, which small ids would not.
const checkIDBase = 1<<32 + 1

// unknownSegment is the last segment of the path the unknown path check
// asks for under the plugin's root.
const unknownSegment = "/repe-gw-check-no-such-path"

// requiredSymbols and optionalSymbols are the plugin ABI's functions
// (REPE.md §5.1).
var (
	requiredSymbols = []string{"repe_plugin_interface_version", "repe_plugin_info", "repe_plugin_call"}
	optionalSymbols = []string{"repe_plugin_init", "repe_plugin_shutdown"}
)

// checker runs the checks of one plugin.
type checker struct {
	file    string // absolute, so that every process opens the same one
	threads int
	// crashes describes each call that ended its process, for the
	// exceptions check.
	crashes []string
}

// runChecks checks the plugin o.plugin with calls (nil: a read of its
// root), and returns a finding per check, in the report's order.
func runChecks(ctx context.Context, o checkOptions, calls []checkCall) ([]finding, error) {
	file, err := filepath.Abs(o.plugin)
	if err != nil {
		return nil, err
	}
	c := &checker{file: file, threads: o.threads}
	symbols, exported := checkELFSymbols(file)

	// The plugin is loaded the way the gateway's isolated mode loads it,
	// and refused for the same reasons.
	p, err := isolate.Start(ctx, isolate.Config{File: file, WorkerArgs: []string{workerCommand}})
	if err != nil {
		return append(c.refused(ctx, symbols, err), skipAfterLoad("the plugin did not load")...), nil
	}
	found := []finding{symbols, pass(checkVersion, "%d", pluginhost.InterfaceVersion), c.checkInfo(ctx)}
	if exported["repe_plugin_init"] {
		found = append(found, pass(checkInit, "repe_plugin_init returned REPE_OK"))
	} else {
		found = append(found, pass(checkInit, "no repe_plugin_init: it is optional, and nothing ran"))
	}
	found = append(found, c.checkUnknownPath(p))
	closeCtx, cancel := context.WithTimeout(ctx, checkCallTimeout)
	defer cancel()
	// An error means the worker was killed for taking too long; the
	// shutdown check, below, finds a shutdown that hangs and says so.
	_ = p.Close(closeCtx)

	root := p.Root()
	if calls == nil {
		calls = []checkCall{{Query: root}}
	}
	unknown := checkCall{Query: root + unknownSegment}
	notifies := append([]checkCall{{Query: root}, unknown}, calls...)
	notify := c.runStep(ctx, stepNotify, requestFrames(notifies, true))
	replies := c.runStep(ctx, stepReplies, requestFrames(calls, false))
	threads := c.runStep(ctx, stepThreads, nil, "--threads", strconv.Itoa(c.threads), "--root", root)
	for _, r := range []stepResult{notify, replies, threads} {
		if r.crashed {
			c.crashes = append(c.crashes, r.died)
		}
	}
	found = append(found, notify.finding(checkNotify), replies.finding(checkReplies), threads.finding(checkThreads),
		timePerCall(append(replies.timings(), threads.timings()...)), c.exceptions())
	// The shutdown step makes no call: a crash there is the shutdown's.
	shutdown := c.runStep(ctx, stepShutdown, nil).finding(checkShutdown)
	if !exported["repe_plugin_shutdown"] && shutdown.Status == statusPass {
		shutdown = pass(checkShutdown, "no repe_plugin_shutdown: it is optional, and nothing ran")
	}
	return append(found, shutdown), nil
}

// skipAfterLoad returns the findings of the checks that need the plugin
// loaded, not run for why.
func skipAfterLoad(why string) []finding {
	var out []finding
	for _, name := range []string{checkUnknown, checkNotify, checkReplies, checkThreads, checkTime, checkExceptions, checkShutdown} {
		out = append(out, skip(name, "not run: "+why))
	}
	return out
}

// checkELFSymbols reads the functions the shared object exports from its
// dynamic symbol table, without running any of its code, and returns the
// symbols finding and the ABI functions it found.
func checkELFSymbols(file string) (finding, map[string]bool) {
	exported := map[string]bool{}
	f, err := elf.Open(file)
	if err != nil {
		return fail(checkSymbols, "not an ELF shared object: %v", err), exported
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		return fail(checkSymbols, "not a shared object: ELF type %v", f.Type), exported
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return fail(checkSymbols, "no dynamic symbol table: %v", err), exported
	}
	for _, s := range syms {
		bind := elf.ST_BIND(s.Info)
		if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC && (bind == elf.STB_GLOBAL || bind == elf.STB_WEAK) {
			exported[s.Name] = true
		}
	}
	var missing, absent, present []string
	for _, name := range requiredSymbols {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	for _, name := range optionalSymbols {
		if exported[name] {
			present = append(present, name)
		} else {
			absent = append(absent, name)
		}
	}
	if len(missing) > 0 {
		return fail(checkSymbols, "%s not exported, and required: defined without including repe_plugin.h, whose "+
			"declarations export them under -fvisibility=hidden, or in C++ without extern \"C\"?",
			strings.Join(missing, ", ")), exported
	}
	detail := "the three required functions"
	if len(present) > 0 {
		detail += ", and " + strings.Join(present, " and ")
	}
	if len(absent) > 0 {
		detail += "; no " + strings.Join(absent, " or ") + " (optional)"
	}
	return pass(checkSymbols, "%s", detail), exported
}

// refused returns the findings of a plugin that isolate.Start refused,
// placing the refusal at the step of pluginhost's lifecycle that failed.
func (c *checker) refused(ctx context.Context, symbols finding, err error) []finding {
	reason := err.Error()
	if le, ok := errors.AsType[*pluginhost.LoadError](err); ok {
		reason = le.Err.Error()
	}
	notRun := "not run: the plugin was refused before"
	version, info, init := skip(checkVersion, notRun), skip(checkInfo, notRun), skip(checkInit, notRun)
	switch {
	case errors.Is(err, pluginhost.ErrOpen), errors.Is(err, pluginhost.ErrMissingSymbol):
		if symbols.Status == statusPass {
			symbols = fail(checkSymbols, "%s", reason)
		}
	case errors.Is(err, pluginhost.ErrInterfaceVersion):
		version = fail(checkVersion, "%s", reason)
	case errors.Is(err, pluginhost.ErrInfo):
		version = pass(checkVersion, "%d", pluginhost.InterfaceVersion)
		info = fail(checkInfo, "%s", reason)
	case errors.Is(err, pluginhost.ErrInit):
		version = pass(checkVersion, "%d", pluginhost.InterfaceVersion)
		info = c.checkInfo(ctx)
		init = fail(checkInit, "%s", reason)
	default:
		// The worker died or hung while it loaded the plugin: in a static
		// constructor, the version or info function, or init.
		init = fail(checkInit, "loading the plugin failed: %s", reason)
	}
	return []finding{symbols, version, info, init}
}

// checkInfo checks the plugin's info as it spells it: a name, and a root in
// normal form, as the gateway routes by it: "" or "/" for the catch-all,
// otherwise no trailing "/" (pluginhost.Plugin.Root). pluginhost refuses a
// root that does not start with "/" before this runs.
func (c *checker) checkInfo(ctx context.Context) finding {
	res := c.runStep(ctx, stepInfo, nil)
	var info *pluginInfo
	for _, l := range res.lines {
		if l.Info != nil {
			info = l.Info
		}
	}
	if info == nil {
		return res.finding(checkInfo)
	}
	shown := fmt.Sprintf("name %q, version %q, root %q", info.Name, info.Version, info.Root)
	switch {
	case info.Name == "":
		return fail(checkInfo, "%s: the name is empty, and the gateway names plugins by it in logs and errors", shown)
	case info.Root != "/" && strings.HasSuffix(info.Root, "/"):
		normal := strings.TrimRight(info.Root, "/")
		return fail(checkInfo, "%s: the root is not in normal form; the gateway serves it as %q, but a host that matches "+
			"roots as plain prefixes, as Glaze's example host does, would not route %q to it: declare %q",
			shown, normal, normal, normal)
	}
	return pass(checkInfo, "%s", shown)
}

// checkUnknownPath asks the plugin, through its isolated worker, for a path
// under its root that it does not serve, and expects what a Glaze registry
// answers (REPE.md §3.1): ec 6, "invalid_query: " and the path.
func (c *checker) checkUnknownPath(p *isolate.Plugin) finding {
	q := p.Root() + unknownSegment
	h := repe.Header{ID: checkIDBase, QueryFormat: repe.QueryJSONPointer}
	reply, err := p.Call(nil, repe.AppendMessage(nil, h, q, nil), time.Now().Add(checkCallTimeout))
	if err != nil {
		return fail(checkUnknown, "%v", err)
	}
	if len(reply) == 0 {
		return fail(checkUnknown, "%q got no reply; a Glaze registry answers ec 6 (method_not_found)", q)
	}
	m := repe.Message(reply)
	want := "invalid_query: " + q
	switch {
	case m.EC() == repe.ConnectionFailure:
		// isolate's answer when the worker died running the request.
		c.crashes = append(c.crashes, fmt.Sprintf("asked for %q: %s", q, m.Body()))
		return fail(checkUnknown, "%q: %s", q, m.Body())
	case m.EC() == repe.MethodNotFound && string(m.Body()) == want:
		return pass(checkUnknown, "ec 6 (method_not_found) %q, as a Glaze registry answers", want)
	}
	return fail(checkUnknown, "%q got ec %d (%s) %s; a Glaze registry answers ec 6 (method_not_found) %q",
		q, uint32(m.EC()), m.EC().String(), quoteBody(m.Body()), want)
}

// requestFrames encodes calls as REPE requests, back to back, with ids from
// checkIDBase, as notifies when notify is set.
func requestFrames(calls []checkCall, notify bool) []byte {
	var b []byte
	for i, call := range calls {
		h := repe.Header{ID: checkIDBase + uint64(i), Notify: notify, QueryFormat: repe.QueryJSONPointer}
		if call.Body != nil {
			h.BodyFormat = repe.BodyJSON
		}
		b = repe.AppendMessage(b, h, call.Query, call.Body)
	}
	return b
}

// stepResult is what one check-worker process reported, and how it ended.
type stepResult struct {
	lines []workerLine
	// died says how the process ended when it did not finish its step
	// ("died (signal SIGSEGV) while calling "/x"; its last output: ..."),
	// "" when it did.
	died string
	// crashed: it died by a signal or an exit of its own, not for taking
	// too long.
	crashed bool
}

// runStep runs a check-worker process for step, with stdin as its standard
// input and args before the step.
func (c *checker) runStep(ctx context.Context, step string, stdin []byte, args ...string) stepResult {
	ctx, cancel := context.WithTimeout(ctx, checkStepTimeout)
	defer cancel()
	// The running binary, even if an upgrade has replaced the file since,
	// as isolate does.
	cmd := exec.CommandContext(ctx, "/proc/self/exe", append(append([]string{checkWorkerCommand}, args...), step, c.file)...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin = bytes.NewReader(stdin)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	r, w, err := os.Pipe()
	if err != nil {
		return stepResult{died: "could not start: " + err.Error()}
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return stepResult{died: "could not start: " + err.Error()}
	}
	var res stepResult
	dec := json.NewDecoder(r)
	for {
		var l workerLine
		if dec.Decode(&l) != nil {
			break
		}
		res.lines = append(res.lines, l)
	}
	err = cmd.Wait()
	if err == nil || res.errorText() != "" {
		return res
	}
	how := "exited with status " + strconv.Itoa(cmd.ProcessState.ExitCode())
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		how = "died (signal " + unix.SignalName(ws.Signal()) + ")"
	}
	if ctx.Err() != nil {
		how = "did not finish within " + checkStepTimeout.String()
	}
	for _, l := range res.lines {
		if l.Phase != "" {
			res.died = how + " while " + l.Phase
		}
	}
	if res.died == "" {
		res.died = how
	}
	if last := lastLine(output.String()); last != "" {
		res.died += "; its last output: " + strconv.Quote(last)
	}
	res.crashed = ctx.Err() == nil
	return res
}

// lastLine returns the last non-empty line of s, cut to 200 bytes.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// errorText returns the error the step reported, "" when none.
func (r stepResult) errorText() string {
	for _, l := range r.lines {
		if l.Error != "" {
			return l.Error
		}
	}
	return ""
}

// finding returns the step's finding for check: the one it reported, or a
// failure saying why there is none.
func (r stepResult) finding(check string) finding {
	for _, l := range r.lines {
		if l.Finding != nil && l.Finding.Check == check {
			return *l.Finding
		}
	}
	switch {
	case r.died != "":
		return fail(check, "the process %s", r.died)
	case r.errorText() != "":
		return fail(check, "%s", r.errorText())
	}
	return fail(check, "the check reported nothing")
}

func (r stepResult) timings() []timing {
	var out []timing
	for _, l := range r.lines {
		if l.Timing != nil {
			out = append(out, *l.Timing)
		}
	}
	return out
}

// timePerCall reports how long the plugin's calls took, in the process
// that made them: each call of the replies check, and the average of the
// threads check's calls from one thread. It is for information, and fails
// only when there is nothing to report.
func timePerCall(ts []timing) finding {
	var parts []string
	var calls []timing
	for _, t := range ts {
		if t.Calls == 1 {
			calls = append(calls, t)
		}
	}
	switch len(calls) {
	case 0:
	case 1:
		parts = append(parts, fmt.Sprintf("%q took %v", calls[0].What, roundDuration(calls[0].Total)))
	default:
		var sum, slowest time.Duration
		for _, t := range calls {
			sum += t.Total
			slowest = max(slowest, t.Total)
		}
		parts = append(parts, fmt.Sprintf("%d calls took %v on average, %v at most",
			len(calls), roundDuration(sum/time.Duration(len(calls))), roundDuration(slowest)))
	}
	// Only averages say whether calls are slow: a single call may be the
	// plugin's first on its thread, and pay for setting the thread up.
	var slow bool
	for _, t := range ts {
		if t.Calls > 1 {
			avg := t.Total / time.Duration(t.Calls)
			slow = slow || avg > gateway.DefaultInlineBudget
			parts = append(parts, fmt.Sprintf("%s %v on average over %d calls", t.What, roundDuration(avg), t.Calls))
		}
	}
	if len(parts) == 0 {
		return skip(checkTime, "not measured: no call returned")
	}
	detail := strings.Join(parts, "; ")
	if slow {
		detail += fmt.Sprintf(" (over the gateway's default --inline-budget of %v: such calls run on worker goroutines, "+
			"not on the event loop)", gateway.DefaultInlineBudget)
	}
	return pass(checkTime, "%s", detail)
}

// roundDuration keeps three or four significant digits of d.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}

// exceptions reports whether any call ended its process. A C++ exception
// that escapes repe_plugin_call reaches std::terminate, which aborts, so an
// escaping exception shows as a crash, as does a fault.
func (c *checker) exceptions() finding {
	if len(c.crashes) == 0 {
		return pass(checkExceptions, "no call ended its process")
	}
	return fail(checkExceptions, "%d calls ended their process, the first %s: an exception that escapes repe_plugin_call "+
		"aborts the process, as a fault does; catch every exception and answer with an error reply", len(c.crashes), c.crashes[0])
}
