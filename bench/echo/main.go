// Command echo is the floor of the REPE benchmarks: a gnet server that writes
// back every byte it reads, with no parsing, no routing and no plugin.
//
// A REPE request echoed is a valid reply to itself (same id, ec 0), so
// repe-bench drives it like any REPE server, and no REPE server on the same
// machine and gnet options can answer faster. It uses the options the
// gateway serves with: level-triggered I/O, a 64 KiB read buffer, TCP_NODELAY,
// one event loop per CPU with -multicore.
//
// It echoes notify requests too, which a REPE server must not answer;
// repe-bench counts those replies apart and does not fail on them.
//
// With -frames it is the floor for large bodies (frames.go): it echoes
// whole REPE frames, and reads a frame larger than the read buffer straight
// from the socket into one buffer and writes it back in as few writes as
// the socket allows. Without it, a 16 MiB body would go through gnet's
// 64 KiB buffer, one read, one write and one wake-up per 64 KiB, which
// costs more than a server that frames its input needs to spend.
//
// It prints "listening on ADDR" once it accepts connections, and stops on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// readBufferCap is gnet's per-event-loop read buffer, as the gateway sets it.
const readBufferCap = 64 << 10

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:5098", "TCP address to listen on (port 0: any free port)")
	multicore := fs.Bool("multicore", true, "one event loop per CPU (GOMAXPROCS) instead of one in all")
	frames := fs.Bool("frames", false, "echo whole REPE frames, reading large ones past gnet's buffer (the floor for large bodies)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := &server{booted: make(chan struct{}), stdout: stdout, frames: *frames}
	done := make(chan error, 1)
	go func() {
		done <- gnet.Run(s, "tcp://"+*addr,
			gnet.WithMulticore(*multicore),
			gnet.WithEdgeTriggeredIO(false),
			gnet.WithReadBufferCap(readBufferCap),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithReuseAddr(true),
			gnet.WithLogger(gnetLogger{log}),
		)
	}()
	select {
	case err := <-done:
		return err
	case <-s.booted:
	}
	if s.bootErr != nil {
		<-done
		return s.bootErr
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.eng.Stop(stopCtx); err != nil {
		return err
	}
	return <-done
}

// server echoes. Its fields are set in OnBoot, before booted is closed.
type server struct {
	gnet.BuiltinEventEngine
	eng     gnet.Engine
	stdout  io.Writer
	booted  chan struct{}
	bootErr error
	frames  bool
}

// OnBoot learns the bound address (the port may have been 0) and prints it.
func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	defer close(s.booted)
	s.eng = eng
	addr, err := listenAddr(eng)
	if err != nil {
		s.bootErr = err
		return gnet.Shutdown
	}
	fmt.Fprintf(s.stdout, "listening on %s\n", addr)
	return gnet.None
}

// OnTraffic writes back all the bytes buffered, in one write. The bytes of
// Next are valid until the callback returns, and Write copies what the
// socket does not take at once, so nothing is kept.
func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	if s.frames {
		return echoFrames(c)
	}
	b, _ := c.Next(-1)
	if _, err := c.Write(b); err != nil {
		return gnet.Close
	}
	return gnet.None
}

// listenAddr asks the kernel which address the engine's listener is bound to.
func listenAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("listener address: %w", err)
	}
	defer unix.Close(fd)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("listener address: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, fmt.Errorf("listener address: unexpected socket address %T", sa)
}

// gnetLogger passes gnet's logs to slog, instead of gnet's global default
// logger.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) { g.l.Debug(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Infof(format string, args ...any)  { g.l.Info(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.l.Warn(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error(fmt.Sprintf(format, args...))
	os.Exit(1)
}
