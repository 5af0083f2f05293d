package pluginhost

import (
	"debug/elf"
	"errors"
)

// HookExports reports whether the shared object at path exports
// repe_gateway_hooks_init, which makes it a hook plugin, and whether it
// exports repe_plugin_call, which makes it a REPE plugin too. It reads the
// file's dynamic symbol table and runs none of its code, so that a caller
// can decide how to load the file (a hook plugin runs in-process only)
// before loading it.
func HookExports(path string) (hooks, serves bool, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return false, false, err
	}
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		switch s.Name {
		case symHooksInit:
			hooks = true
		case symCall:
			serves = true
		}
	}
	return hooks, serves, nil
}
