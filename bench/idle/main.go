// Command idle measures what idle connections cost a REPE server: it reads
// the server's resident memory from /proc, opens -n connections that each
// make one request (so that the server has set them up completely) and then
// stay idle, reads the memory again and reports the difference per
// connection. With -partial each connection then leaves half a request
// buffered, as a slow or stalled client does.
//
//	idle -addr 127.0.0.1:5099 -pid $(pidof repe-gw) -n 10000
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/repe-gw/repe-gw/repe"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idle:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:5099", "server `HOST:PORT`")
	pid := fs.Int("pid", 0, "the server's process id, to read its memory")
	n := fs.Int("n", 10000, "idle connections to open")
	query := fs.String("query", "/calculator/value", "query of each connection's one request")
	settle := fs.Duration("settle", time.Second, "wait before each memory reading")
	partial := fs.Bool("partial", false, "leave half a request buffered on each connection after its reply")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 {
		return errors.New("-pid is required")
	}

	time.Sleep(*settle)
	before, err := rss(*pid)
	if err != nil {
		return err
	}
	req := repe.AppendMessage(nil, repe.Header{ID: 1, QueryFormat: repe.QueryJSONPointer}, *query, nil)
	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	reply := make([]byte, 64<<10)
	for range *n {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			return fmt.Errorf("after %d connections: %w", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := c.Write(req); err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		if _, err := io.ReadAtLeast(c, reply, repe.HeaderSize); err != nil {
			return fmt.Errorf("connection %d got no reply: %w", len(conns), err)
		}
		if *partial {
			if _, err := c.Write(req[:len(req)/2]); err != nil {
				return err
			}
		}
	}
	time.Sleep(*settle)
	after, err := rss(*pid)
	if err != nil {
		return err
	}
	per := float64(after-before) / float64(*n) / 1024
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"connections": *n, "partial": *partial,
			"rss_before_kib": before >> 10, "rss_after_kib": after >> 10, "kib_per_conn": per,
		})
	}
	fmt.Fprintf(stdout, "connections %d\nrss before  %d KiB\nrss after   %d KiB\nper conn    %.2f KiB\n",
		*n, before>>10, after>>10, per)
	return nil
}

// rss returns the resident memory of process pid in bytes.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}
