package pluginhost

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/repe-gw/repe-gw/repe"
)

// InterfaceVersion is the plugin ABI version this package implements
// (REPE_PLUGIN_INTERFACE_VERSION in plugins/include/repe_plugin.h).
const InterfaceVersion = 3

// DefaultMaxReplySize is the largest reply a plugin may return unless
// Config.MaxReplySize says otherwise: 1 GiB.
const DefaultMaxReplySize = 1 << 30

// maxCString bounds the strings read from a plugin's info, so that a string
// without its NUL is an error rather than a read through memory.
const maxCString = 4096

// The ABI's symbols (REPE.md §5.1).
const (
	symInterfaceVersion = "repe_plugin_interface_version"
	symInfo             = "repe_plugin_info"
	symCall             = "repe_plugin_call"
	symInit             = "repe_plugin_init"
	symShutdown         = "repe_plugin_shutdown"
)

// Config tunes how plugins are opened and called. The zero value is ready to
// use; Open and Load use it.
type Config struct {
	// MaxReplySize is the largest reply, in bytes, that Call copies from a
	// plugin; a larger one is answered with a REPE error instead of an
	// allocation of whatever size the plugin claims. 0 means
	// DefaultMaxReplySize.
	MaxReplySize int

	// DataDir is where plugins that take a context (repe_plugin_init_ex,
	// repe_gateway_hooks_init) get their data directories:
	// <DataDir>/<plugin name>, created with mode 0700 when the plugin
	// loads. Default DefaultDataDir(). Other plugins get none.
	DataDir string

	// Logger receives what plugins log through their context, each message
	// with the plugin's name. Default: none.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxReplySize <= 0 {
		c.MaxReplySize = DefaultMaxReplySize
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Plugin is one loaded plugin. Its methods are safe for concurrent use.
type Plugin struct {
	file, name, version, root string

	callFn, initFn, shutdownFn uintptr
	maxReply                   uintptr

	// The extensions of plugins/include/repe_gateway.h: initExFn is called
	// instead of initFn when exported, hooksFn makes the file a hook
	// plugin. ctx is the context both get, nil when neither is exported;
	// hooks is set once hooksFn has run.
	initExFn, hooksFn uintptr
	ctx               *hostContext
	hooks             *Hooks
	cfg               Config

	// state counts the calls in flight; closingBit is set once shutdown has
	// begun, after which no call starts (see lifecycle.go).
	state        atomic.Int64
	idle         chan struct{} // closed when closing and no call is in flight
	idleOnce     sync.Once
	shutdownOnce sync.Once
	dropped      atomic.Uint64

	// Kept in -race builds only (race.go), to check what state promises:
	// the calls inside repe_plugin_call, and whether repe_plugin_shutdown
	// has run.
	inPlugin atomic.Int32
	shutDown atomic.Bool

	errPrefix   string      // names the plugin in call errors
	errShutdown *repe.Error // returned by Call after shutdown; made once, not per call
}

// Open loads one plugin with the zero Config: every step of the package
// documentation up to init. A refusal is a *LoadError.
func Open(path string) (*Plugin, error) { return Config{}.Open(path) }

// Open loads one plugin with this configuration. A refusal is a *LoadError.
func (c Config) Open(path string) (*Plugin, error) {
	p, err := c.open(path)
	if err != nil {
		return nil, err
	}
	if p.callFn == 0 {
		return nil, &LoadError{File: p.file, Err: fmt.Errorf("%w %s", ErrMissingSymbol, symCall)}
	}
	// Hooks need a Host, which destroys them; Open loads the REPE part.
	p.hooksFn = 0
	if err := p.initialize(nil); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the plugin's name from its info.
func (p *Plugin) Name() string { return p.name }

// Version returns the plugin's version from its info, "" when it gave none.
func (p *Plugin) Version() string { return p.version }

// Root returns the normalised root path: "" for the catch-all (the plugin
// said "" or "/"), otherwise a path that starts with "/" and does not end
// with one.
func (p *Plugin) Root() string { return p.root }

// File returns the absolute path the plugin was loaded from.
func (p *Plugin) File() string { return p.file }

// open runs steps 1-4 of the lifecycle: everything before init. A file
// that exports repe_gateway_hooks_init and not repe_plugin_call is a hook
// plugin only: the REPE symbols are optional for it, and it is named after
// its info when it has one, else after its file.
func (c Config) open(path string) (*Plugin, error) {
	c = c.withDefaults()
	file, err := filepath.Abs(path)
	if err != nil {
		return nil, &LoadError{File: path, Err: fmt.Errorf("%w: %v", ErrOpen, err)}
	}
	fail := func(err error) (*Plugin, error) { return nil, &LoadError{File: file, Err: err} }

	// dlerror is per thread: keep dlopen/dlsym and the dlerror that purego
	// reads after them on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// An absolute path, so that dlopen never searches the library path.
	handle, err := purego.Dlopen(file, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrOpen, err))
	}
	// The handle is never closed: see the package documentation.
	sym := func(name string, required bool) (uintptr, error) {
		addr, err := purego.Dlsym(handle, name)
		if (err != nil || addr == 0) && required {
			return 0, fmt.Errorf("%w %s", ErrMissingSymbol, name)
		}
		return addr, nil
	}
	hooksFn, _ := sym(symHooksInit, false)
	callFn, _ := sym(symCall, false)
	hooksOnly := hooksFn != 0 && callFn == 0
	versionFn, err := sym(symInterfaceVersion, !hooksOnly)
	if err != nil {
		return fail(err)
	}
	infoFn, err := sym(symInfo, !hooksOnly)
	if err != nil {
		return fail(err)
	}
	p := &Plugin{file: file, maxReply: uintptr(c.MaxReplySize), idle: make(chan struct{}), cfg: c}
	if p.callFn, err = sym(symCall, !hooksOnly); err != nil {
		return fail(err)
	}
	p.hooksFn = hooksFn
	p.initExFn, _ = sym(symInitEx, false)
	if !hooksOnly {
		p.initFn, _ = sym(symInit, false)
		p.shutdownFn, _ = sym(symShutdown, false)
	}
	if hooksOnly && (versionFn == 0 || infoFn == 0) {
		p.name = strings.TrimPrefix(strings.TrimSuffix(filepath.Base(file), ".so"), "lib")
		p.errPrefix = "plugin " + strconv.Quote(p.name) + ": "
		p.errShutdown = &repe.Error{Code: repe.MethodNotFound, Message: p.errPrefix + "shut down"}
		return p, nil
	}

	// The version first: the layout of everything else depends on it.
	r1, _ := ccall(versionFn, 0, 0)
	if v := uint32(r1); v != InterfaceVersion {
		return fail(fmt.Errorf("%w: the plugin implements version %d, this host implements version %d",
			ErrInterfaceVersion, v, InterfaceVersion))
	}
	info, _ := ccall(infoFn, 0, 0)
	if info == 0 {
		return fail(fmt.Errorf("%w: %s returned NULL", ErrInfo, symInfo))
	}
	// repe_plugin_data: name @0, version @8, root_path @16.
	fields := *(*[3]uintptr)(cPointer(info))
	if fields[0] == 0 {
		return fail(fmt.Errorf("%w: name is NULL", ErrInfo))
	}
	if fields[2] == 0 {
		return fail(fmt.Errorf("%w: root_path is NULL", ErrInfo))
	}
	var ok bool
	if p.name, ok = cString(fields[0]); !ok {
		return fail(fmt.Errorf("%w: name has no NUL within %d bytes", ErrInfo, maxCString))
	}
	if fields[1] != 0 {
		if p.version, ok = cString(fields[1]); !ok {
			return fail(fmt.Errorf("%w: version has no NUL within %d bytes", ErrInfo, maxCString))
		}
	}
	root, ok := cString(fields[2])
	if !ok {
		return fail(fmt.Errorf("%w: root_path has no NUL within %d bytes", ErrInfo, maxCString))
	}
	if p.root, err = normalizeRoot(root); err != nil {
		return fail(err)
	}
	p.errPrefix = "plugin " + strconv.Quote(p.name) + ": "
	p.errShutdown = &repe.Error{Code: repe.MethodNotFound, Message: p.errPrefix + "shut down"}
	return p, nil
}

// initialize runs step 6 of the lifecycle, with config, the plugin's
// configuration as JSON, for its context. A plugin whose init fails is shut
// down at once and refused; so is one whose hooks fail to init, after its
// REPE part has been shut down.
func (p *Plugin) initialize(config []byte) error {
	fail := func(err error) error {
		p.beginClose()
		p.shutdownOnce.Do(p.callShutdown)
		if p.hooksFn != 0 {
			p.ctx.release() // the hooks' use of it, which never began
		}
		return &LoadError{File: p.file, Err: err}
	}
	if p.initExFn != 0 || p.hooksFn != 0 {
		refs := int32(0)
		if p.callFn != 0 {
			refs++
		}
		if p.hooksFn != 0 {
			refs++
		}
		ctx, err := newContext(p.name, p.cfg.DataDir, config, p.cfg.Logger, refs)
		if err != nil {
			return &LoadError{File: p.file, Err: err}
		}
		p.ctx = ctx
		if p.callFn == 0 {
			// A hook plugin only: its context is the hooks' alone.
			p.shutdownOnce.Do(func() {})
		}
	}
	if p.callFn != 0 {
		switch {
		case p.initExFn != 0:
			r1, _ := ccall(p.initExFn, p.ctx.ptr(), 0)
			if res := int32(uint32(r1)); res != 0 {
				return fail(fmt.Errorf("%w: %s returned %d (%s)", ErrInit, symInitEx, res, resultName(res)))
			}
		case p.initFn != 0:
			r1, _ := ccall(p.initFn, 0, 0)
			if res := int32(uint32(r1)); res != 0 {
				return fail(fmt.Errorf("%w: %s returned %d (%s)", ErrInit, symInit, res, resultName(res)))
			}
		}
	}
	if p.hooksFn != 0 {
		h, err := initHooks(p.hooksFn, p.name, p.file, p.ctx)
		if err != nil {
			return fail(err)
		}
		p.hooks = h
	}
	return nil
}

// resultName names a repe_result.
func resultName(r int32) string {
	switch r {
	case 0:
		return "REPE_OK"
	case 1:
		return "REPE_ERROR_INIT_FAILED"
	case 2:
		return "REPE_ERROR_ALREADY_INITIALIZED"
	}
	return "unknown result"
}

// normalizeRoot maps "" and "/" to the catch-all "" and strips trailing
// slashes, so that routing compares one spelling per root.
func normalizeRoot(root string) (string, error) {
	if root == "" {
		return "", nil
	}
	if root[0] != '/' {
		return "", fmt.Errorf("%w: root_path %s does not start with \"/\"", ErrInfo, strconv.Quote(root))
	}
	return strings.TrimRight(root, "/"), nil
}

// cPointer turns an address returned by C into a pointer. The memory is not
// Go's, so the garbage collector neither moves nor frees it; the indirection
// keeps vet's uintptr check quiet about a conversion that is valid here.
func cPointer(addr uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&addr)) }

// cString copies the NUL-terminated string at addr, or reports false when
// there is no NUL within maxCString bytes.
func cString(addr uintptr) (string, bool) {
	base := cPointer(addr)
	for n := range maxCString {
		if *(*byte)(unsafe.Add(base, n)) == 0 {
			return string(unsafe.Slice((*byte)(base), n)), true
		}
	}
	return "", false
}
