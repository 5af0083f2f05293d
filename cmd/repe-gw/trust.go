package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/repe-gw/repe-gw/config"
	"github.com/repe-gw/repe-gw/pluginhost"
)

// pluginTrust is what a plugin file must pass before the gateway opens it
// (SECURITY.md): whoever can write a plugin, or a directory on its way,
// runs code as the gateway.
type pluginTrust struct {
	pluginhost.Trust
	// insecure loads files whose only problems are who owns them or may
	// write them, with a warning at every load:
	// security.insecure_plugin_permissions.
	insecure bool
}

// newTrust returns the checks for the files of entries: the gateway's own
// user is trusted besides root, and a link in a plugin directory may lead
// into the directory of any enabled entry.
func newTrust(f *config.File, entries []*entry) pluginTrust {
	t := pluginTrust{Trust: pluginhost.Trust{UID: os.Geteuid()}, insecure: f.InsecurePluginPermissions()}
	for _, e := range entries {
		if !e.Enabled {
			continue
		}
		dir := e.Path
		if info, err := os.Stat(e.Path); err != nil || !info.IsDir() {
			dir = filepath.Dir(e.Path)
		}
		t.Dirs = append(t.Dirs, dir)
	}
	return t
}

// check returns why f must not be loaded, or nil. A file that may be loaded
// only because of security.insecure_plugin_permissions is logged as a
// warning, each time it loads.
func (t pluginTrust) check(log *slog.Logger, f *pluginFile) error {
	problems := t.Check(f.path, f.top, f.named)
	if len(problems) == 0 {
		return nil
	}
	accept := t.insecure
	msgs := make([]string, len(problems))
	for i, p := range problems {
		accept = accept && p.Permissions()
		msgs[i] = p.Error()
		if errors.Is(p, pluginhost.ErrOutside) {
			msgs[i] += ": name it with --plugin to load it"
		}
	}
	if accept {
		log.Warn("plugin untrusted, loaded anyway: security.insecure_plugin_permissions is set",
			"file", f.path, "reason", strings.Join(msgs, "; "))
		return nil
	}
	return fmt.Errorf("untrusted: %s", strings.Join(msgs, "; "))
}

// warnRoot warns that the gateway runs as root: every plugin then runs as
// root too, and can do anything on the machine.
func warnRoot(log *slog.Logger) {
	if os.Geteuid() == 0 {
		log.Warn("running as root: every plugin can do anything on this machine; " +
			"run repe-gw as a user of its own (SECURITY.md)")
	}
}

// checkConfigFile refuses a configuration file that group or others can
// write: it says which plugins run, so whoever writes it runs code as the
// gateway.
func checkConfigFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Mode&0o022 == 0 {
		return nil
	}
	return fmt.Errorf("writable by group or others (mode %04o, owner uid %d), who could choose the plugins it runs: chmod go-w %s",
		st.Mode&0o7777, st.Uid, path)
}
