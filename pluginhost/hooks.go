package pluginhost

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/repe-gw/repe-gw/repe"
)

// GatewayABIVersion is the version of the hook ABI this package implements
// (REPE_GATEWAY_ABI_VERSION in plugins/include/repe_gateway.h), passed to
// repe_gateway_hooks_init.
const GatewayABIVersion = 1

// The hook ABI's results.
const (
	hookContinue = 0
	hookReject   = 1
)

// The extension symbols (plugins/include/repe_gateway.h).
const (
	symHooksInit = "repe_gateway_hooks_init"
	symInitEx    = "repe_plugin_init_ex"
)

// Hooks is one hook plugin's table of callbacks: the plugin authorises,
// limits or watches every connection and request the gateway serves. Its
// methods call the plugin's callback, or do nothing when the plugin left it
// NULL. They are safe for concurrent use, allocate nothing, and must not be
// called after Destroy.
type Hooks struct {
	name, file string
	t          cHooks // the table as init filled it
	ctx        *hostContext

	shutdownOnce, destroyOnce sync.Once
	destroyed                 atomic.Bool // kept in -race builds only, to check that no call follows destroy

	// textRejected answers a rejection without an error_message.
	textRejected string
}

// Name returns the plugin's name: its repe_plugin_info name, or the file's
// base name without "lib" and ".so" when it has no info.
func (h *Hooks) Name() string { return h.name }

// File returns the absolute path the plugin was loaded from.
func (h *Hooks) File() string { return h.file }

// Observes reports whether the plugin has an on_response callback: without
// one, a caller need not time calls for it.
func (h *Hooks) Observes() bool { return h.t.onResponse != 0 }

// Screens reports whether the plugin has an on_request callback: without
// one, a caller need not hold requests back for it.
func (h *Hooks) Screens() bool { return h.t.onRequest != 0 }

// initHooks calls repe_gateway_hooks_init with a zeroed table and the
// context, and keeps what it filled in. A result other than 0 refuses the
// plugin.
func initHooks(fn uintptr, name, file string, ctx *hostContext) (*Hooks, error) {
	t := new(cHooks) // on the heap, which does not move, while C fills it
	t.size = uint32(unsafe.Sizeof(cHooks{}))
	r1, _, _ := purego.SyscallN(fn, GatewayABIVersion, uintptr(unsafe.Pointer(t)), ctx.ptr())
	if res := int32(uint32(r1)); res != 0 {
		return nil, fmt.Errorf("%w: %s returned %d", ErrInit, symHooksInit, res)
	}
	h := &Hooks{name: name, file: file, t: *t, ctx: ctx,
		textRejected: "request rejected by " + strconv.Quote(name)}
	// The size is the host's to say; a plugin that wrote another cannot
	// change which fields the host reads.
	h.t.size = t.size
	return h, nil
}

// Connect calls on_connect for a new connection, and reports whether the
// plugin let it in.
func (h *Hooks) Connect(connID uint64, remote, tlsIdentity string) bool {
	if h.t.onConnect == 0 {
		return true
	}
	h.check()
	f := hookFrame[cConnInfo]{fn: h.t.onConnect, ud: h.t.userData, info: connInfo(connID, remote, tlsIdentity)}
	r := callHook(&f)
	runtime.KeepAlive(remote)
	runtime.KeepAlive(tlsIdentity)
	return int32(uint32(r)) == hookContinue
}

// Close calls on_close for a connection that Connect let in.
func (h *Hooks) Close(connID uint64, remote, tlsIdentity string) {
	if h.t.onClose == 0 {
		return
	}
	h.check()
	f := hookFrame[cConnInfo]{fn: h.t.onClose, ud: h.t.userData, info: connInfo(connID, remote, tlsIdentity)}
	callHook(&f)
	runtime.KeepAlive(remote)
	runtime.KeepAlive(tlsIdentity)
}

func connInfo(connID uint64, remote, tlsIdentity string) cConnInfo {
	return cConnInfo{
		size:           uint32(unsafe.Sizeof(cConnInfo{})),
		connID:         connID,
		remote:         stringData(remote),
		remoteLen:      uintptr(len(remote)),
		tlsIdentity:    stringData(tlsIdentity),
		tlsIdentityLen: uintptr(len(tlsIdentity)),
	}
}

// Request calls on_request for frame, a request framed and validated
// (repe.Split), that plugin (its name, "" for none) would serve. It reports
// whether the plugin rejected it, and then why: the plugin's error_message,
// or a generic text. Any result but REPE_HOOK_CONTINUE is a rejection.
func (h *Hooks) Request(connID uint64, frame repe.Message, plugin string) (reason string, rejected bool) {
	if h.t.onRequest == 0 {
		return "", false
	}
	h.check()
	query, body := frame.Query(), frame.Body()
	f := hookFrame[cRequestInfo]{fn: h.t.onRequest, ud: h.t.userData, info: cRequestInfo{
		size:       uint32(unsafe.Sizeof(cRequestInfo{})),
		connID:     connID,
		id:         frame.ID(),
		query:      bytesData(query),
		queryLen:   uintptr(len(query)),
		body:       bytesData(body),
		bodyLen:    uintptr(len(body)),
		bodyFormat: uint16(frame.BodyFormat()),
		plugin:     stringData(plugin),
		pluginLen:  uintptr(len(plugin)),
	}}
	if frame.Notify() {
		f.info.notify = 1
	}
	if h.t.errorMessage != 0 {
		// error_message may keep its text per thread: ask on the thread
		// that rejected.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	r := callHook(&f)
	runtime.KeepAlive(frame)
	runtime.KeepAlive(plugin)
	if int32(uint32(r)) == hookContinue {
		return "", false
	}
	return h.errorMessage(), true
}

// errorMessage asks the plugin why it rejected, on the thread it rejected on.
func (h *Hooks) errorMessage() string {
	if h.t.errorMessage == 0 {
		return h.textRejected
	}
	p, _ := ccall(h.t.errorMessage, h.t.userData, 0)
	if p == 0 {
		return h.textRejected
	}
	s, ok := cString(p)
	if !ok || s == "" {
		return h.textRejected
	}
	return s
}

// Response calls on_response for frame, a request that was answered with
// ec (0 for a notify served) in ns nanoseconds of plugin time with
// replyBytes bytes of reply.
func (h *Hooks) Response(connID uint64, frame repe.Message, ec uint32, ns int64, replyBytes int) {
	if h.t.onResponse == 0 {
		return
	}
	h.check()
	query := frame.Query()
	f := hookFrame[cResponseInfo]{fn: h.t.onResponse, ud: h.t.userData, info: cResponseInfo{
		size:       uint32(unsafe.Sizeof(cResponseInfo{})),
		connID:     connID,
		id:         frame.ID(),
		query:      bytesData(query),
		queryLen:   uintptr(len(query)),
		ec:         ec,
		durationNs: uint64(max(ns, 0)),
		replyBytes: uint64(replyBytes),
	}}
	callHook(&f)
	runtime.KeepAlive(frame)
}

// Shutdown tells the plugin that shutdown has begun: shutting_down becomes
// 1, then on_shutdown runs, once however often Shutdown is called. Hook
// calls may still follow it, for what is in flight.
func (h *Hooks) Shutdown() {
	h.shutdownOnce.Do(func() {
		h.ctx.shuttingDown().Store(1)
		if h.t.onShutdown != 0 {
			ccall(h.t.onShutdown, h.t.userData, 0)
		}
	})
}

// Destroy runs on_shutdown if Shutdown has not, then destroy, exactly once
// however often it is called. The caller must have made its last hook call:
// after the gateway's Shutdown has returned. The plugin's log messages are
// all logged by the time Destroy returns.
func (h *Hooks) Destroy() {
	h.Shutdown()
	h.destroyOnce.Do(func() {
		if raceEnabled {
			h.destroyed.Store(true)
		}
		if h.t.destroy != 0 {
			ccall(h.t.destroy, h.t.userData, 0)
		}
		h.ctx.release()
	})
}

// check, in -race builds, panics when a hook is called after destroy.
func (h *Hooks) check() {
	if raceEnabled && h.destroyed.Load() {
		panic("pluginhost: hook call after destroy in " + h.file)
	}
}
