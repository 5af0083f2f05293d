package pluginhost

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The plugin context (repe_host_context in plugins/include/repe_gateway.h):
// what a plugin that exports repe_plugin_init_ex or repe_gateway_hooks_init
// gets at init. See "The plugin context" in doc.go.

// maxLogMessage is the longest message ctx->log sends whole; a longer one is
// cut to it and logged with truncated=true. One log record is one datagram
// of a header and the message; the assembly (ctxlog_linux_GOARCH.s) holds
// the same number.
const maxLogMessage = 4096 - logHeaderSize

// A log record's header: level int32, then flags uint32.
const (
	logHeaderSize = 8
	logTruncated  = 1 // the message was cut to maxLogMessage
	logStop       = 2 // sent by the host, last: the reader stops
)

// The context block's layout. It is mmap'd, so that the garbage collector
// neither moves nor frees it, and never unmapped: a plugin may keep the
// context and its strings for the life of the process.
const (
	ctxOffContext  = 0  // repe_host_context, 64 bytes
	ctxOffSink     = 64 // logSink, 16 bytes: the log function's host
	ctxOffShutdown = 80 // uint32 shutting_down
	ctxOffStrings  = 96 // name, data_dir and config_json, each NUL-terminated
)

// logSink is what ctx->host points at: the socket the log function sends
// to, and a count of the messages it could not send.
type logSink struct {
	fd      int64
	dropped uint64
}

// hostContext is one plugin's context, shared by its REPE part and its
// hooks when a file has both.
type hostContext struct {
	mem     []byte // the mmap'd block
	name    string
	dataDir string
	log     *slog.Logger
	sink    *logSink
	rd      *os.File      // the receiving end of the log socket
	done    chan struct{} // closed when the reader has stopped
	refs    atomic.Int32  // parts that use the context; the last release stops the reader
	stop    sync.Once
}

// DefaultDataDir returns the directory under which plugins get their data
// directories when Config.DataDir is empty: $STATE_DIRECTORY, which
// systemd sets for a unit with StateDirectory= (deploy/systemd), else
// $XDG_STATE_HOME/repe-gw, else $HOME/.local/state/repe-gw, else
// repe-gw-data in the working directory.
func DefaultDataDir() string {
	// systemd lists one directory per StateDirectory= entry, separated by
	// colons; the first is the unit's own.
	if d, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); filepath.IsAbs(d) {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "repe-gw")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "repe-gw")
	}
	return "repe-gw-data"
}

// newContext makes the context of the plugin called name: it creates
// <root>/<name> with mode 0700, lays the context out in C-visible memory,
// and starts the goroutine that passes the plugin's log messages to log.
// config is the plugin's configuration as JSON; empty means "{}". refs is
// the number of parts that will release it.
func newContext(name, root string, config []byte, log *slog.Logger, refs int32) (*hostContext, error) {
	if name == "" || name != filepath.Base(name) || !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%w: name %q cannot name a data directory", ErrContext, name)
	}
	if len(config) == 0 {
		config = []byte("{}")
	}
	dir, err := filepath.Abs(filepath.Join(root, name))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrContext, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: data directory: %v", ErrContext, err)
	}
	size := ctxOffStrings + len(name) + 1 + len(dir) + 1 + len(config) + 1
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("%w: mmap: %v", ErrContext, err)
	}
	fds, err := logSocket()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrContext, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("%w: %v", ErrContext, err)
	}
	c := &hostContext{
		mem:     mem,
		name:    name,
		dataDir: dir,
		log:     log.With("plugin", name),
		// Non-blocking, so the runtime's poller serves the reader.
		rd:   os.NewFile(uintptr(fds[0]), "log of plugin "+name),
		done: make(chan struct{}),
	}
	c.refs.Store(refs)
	base := uintptr(unsafe.Pointer(&mem[0]))
	put := func(off int, s []byte) uintptr {
		copy(mem[off:], s) // the NUL is the mapping's zero
		return base + uintptr(off)
	}
	off := ctxOffStrings
	namePtr := put(off, []byte(name))
	off += len(name) + 1
	dirPtr := put(off, []byte(dir))
	off += len(dir) + 1
	configPtr := put(off, config)

	c.sink = (*logSink)(unsafe.Pointer(&mem[ctxOffSink]))
	c.sink.fd = int64(fds[1])
	*(*cContext)(unsafe.Pointer(&mem[ctxOffContext])) = cContext{
		size:          uint32(unsafe.Sizeof(cContext{})),
		name:          namePtr,
		dataDir:       dirPtr,
		configJSON:    configPtr,
		configJSONLen: uintptr(len(config)),
		host:          base + ctxOffSink,
		log:           ctxLogABI0,
		shuttingDown:  base + ctxOffShutdown,
	}
	go c.read()
	return c, nil
}

// ptr returns the address of the repe_host_context.
func (c *hostContext) ptr() uintptr { return uintptr(unsafe.Pointer(&c.mem[ctxOffContext])) }

// shuttingDown returns the flag the plugin reads.
func (c *hostContext) shuttingDown() *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&c.mem[ctxOffShutdown]))
}

// read passes each message the plugin logs to slog, until the host's stop
// record, which comes after every message sent before it.
func (c *hostContext) read() {
	defer close(c.done)
	buf := make([]byte, logHeaderSize+maxLogMessage)
	var seen uint64
	for {
		n, err := c.rd.Read(buf)
		if err != nil {
			return
		}
		if n < logHeaderSize {
			continue
		}
		level := int32(binary.NativeEndian.Uint32(buf))
		flags := binary.NativeEndian.Uint32(buf[4:])
		if flags&logStop != 0 {
			return
		}
		var attrs []any
		if flags&logTruncated != 0 {
			attrs = append(attrs, "truncated", true)
		}
		// The messages the plugin could not send are told with the next
		// one that it could.
		if d := atomic.LoadUint64(&c.sink.dropped); d != seen {
			attrs = append(attrs, "dropped", d-seen)
			seen = d
		}
		c.log.Log(context.Background(), slog.Level(level), string(buf[logHeaderSize:n]), attrs...)
	}
}

// release lets go of one part's use of c; the last one stops the reader
// once it has logged everything sent before. The sending socket stays open,
// as the library stays loaded: a plugin thread that logs later finds its
// datagrams refused and counted, never another file behind a reused
// descriptor.
func (c *hostContext) release() {
	if c.refs.Add(-1) != 0 {
		return
	}
	c.stop.Do(func() {
		var rec [logHeaderSize]byte
		binary.NativeEndian.PutUint32(rec[4:], logStop)
		if _, err := unix.Write(int(c.sink.fd), rec[:]); err != nil {
			// No room for the stop record: what is queued is lost anyway.
			_ = c.rd.Close()
		}
		<-c.done
		_ = c.rd.Close()
	})
}
