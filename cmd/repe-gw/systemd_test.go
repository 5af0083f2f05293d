package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/repe-gw/repe-gw/internal/gatewaytest"
	"github.com/repe-gw/repe-gw/internal/plugintest"
	"github.com/repe-gw/repe-gw/repe"
)

// notifySocket listens where a Type=notify service sends its state, as
// systemd does, and returns the socket's path and a function that waits
// for the next datagram.
func notifySocket(t *testing.T) (string, func() string) {
	t.Helper()
	// A socket's path has at most 107 bytes, which t.TempDir can exceed.
	dir, err := os.MkdirTemp("", "notify")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return path, func() string {
		t.Helper()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(gatewaytest.Timeout)))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		require.NoError(t, err, "no notification")
		return string(b[:n])
	}
}

// TestSystemdNotify runs the gateway as systemd runs a Type=notify
// service: READY=1 comes once the REPE port and the admin listener serve,
// and STOPPING=1 on SIGTERM, while the drain has only begun (the listener
// still serves through --shutdown-delay), and nothing after it.
func TestSystemdNotify(t *testing.T) {
	bin := buildGateway(t)
	sock, next := notifySocket(t)
	addr, admin := freeAddr(t), freeAddr(t)
	g := spawn(t, bin, []string{"NOTIFY_SOCKET=" + sock}, addr,
		"--plugin", gatewaytest.Calculator(t), "--addr", addr, "--admin", admin, "--shutdown-delay", "3s")

	require.Equal(t, "READY=1", next())
	call := func() {
		t.Helper()
		c := g.dial(t)
		c.Send(gatewaytest.Request(1, "/calculator/value", ""))
		assert.Equal(t, repe.OK, c.Next().EC())
	}
	call()
	code, body := adminGet(t, admin, "/readyz", "")
	assert.Equal(t, http.StatusOK, code, body)

	require.NoError(t, g.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, "STOPPING=1", next())
	assert.NotContains(t, g.log(), "msg=stopped", "STOPPING=1 comes as the drain starts, not at its end")
	call() // within --shutdown-delay, the listener still serves
	g.waitLog(t, "msg=stopped")
	require.Equal(t, 0, g.waitExit(t))
}

// TestInstall runs make install into a fresh prefix and checks what it
// put there: the commands, the headers, a plugin, the example
// configuration, and a systemd unit that systemd-analyze verify passes,
// with a configuration the installed gateway validates.
func TestInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not found: make install is not tested")
	}
	prefix := filepath.Join(t.TempDir(), "usr")
	cmd := exec.Command("make", "-C", plugintest.RepoPath("."), "--no-print-directory", "install", "PREFIX="+prefix)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, f := range []string{
		"bin/repe-gw", "bin/repe", "bin/repe-bench",
		"include/repe-gw/repe_plugin.h", "include/repe-gw/repe_frame.h",
		"lib/repe-gw/plugins/calculator/calculator.so",
		"share/doc/repe-gw/repe-gw.example.yaml",
		"etc/repe-gw/repe-gw.yaml",
		"lib/systemd/system/repe-gw.service",
	} {
		assert.FileExists(t, filepath.Join(prefix, f))
	}

	unit, err := os.ReadFile(filepath.Join(prefix, "lib/systemd/system/repe-gw.service"))
	require.NoError(t, err)
	lines := strings.Split(string(unit), "\n")
	for _, want := range []string{
		"Type=notify",
		"ExecStart=" + prefix + "/bin/repe-gw --config %d/repe-gw.yaml",
		"LoadCredential=repe-gw.yaml:" + prefix + "/etc/repe-gw/repe-gw.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=repe-gw",
	} {
		assert.Contains(t, lines, want)
	}

	conf := filepath.Join(prefix, "etc/repe-gw/repe-gw.yaml")
	text, err := os.ReadFile(conf)
	require.NoError(t, err)
	assert.Contains(t, string(text), "- path: "+prefix+"/lib/repe-gw/plugins")
	out, err = exec.Command(filepath.Join(prefix, "bin/repe-gw"), "validate", "--config", conf).CombinedOutput()
	assert.NoError(t, err, "the installed configuration: %s", out)

	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not found (Debian: apt-get install systemd): the unit is not verified")
	}
	// verify checks that the unit parses, that its commands exist and that
	// every unit it names is there; it prints nothing when all is well.
	out, err = exec.Command("systemd-analyze", "verify", filepath.Join(prefix, "lib/systemd/system/repe-gw.service")).CombinedOutput()
	assert.NoError(t, err)
	assert.Empty(t, string(out))
}
