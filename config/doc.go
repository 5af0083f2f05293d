// Package config reads repe-gw's configuration file, and the environment
// variables and flags that override it.
//
// # The file
//
// A configuration is one YAML document with seven sections: listen (the
// address), limits, log, admin (the admin listener of package admin),
// security (what the gateway accepts that it would otherwise refuse),
// defaults (the policy every plugin starts from) and
// plugins (a list of plugin files or directories, each with an optional
// policy of its own, and a config mapping handed to the plugin as JSON).
// repe-gw.example.yaml, at the root of the repository, shows and explains
// every key with its default; a test keeps it complete.
//
// Reading is strict, because a typo in a limit that is silently ignored is
// a limit that is not there: an unknown key, a repeated key, a value of the
// wrong type or out of its range, and keys that contradict each other
// (memory_limit on a plugin that is not isolated, a required plugin that is
// disabled, two entries for one path) are errors. [Load] reports all of
// them at once, as [Errors], each as file:line:column: message. A syntax
// error comes alone: past it, the parser cannot tell what anything means.
//
// Values:
//
//   - durations are Go durations: 500ms, 30s, 1m30s. A bare 0 is read too.
//   - sizes are a number of bytes (1048576), or a whole number with B, KiB,
//     MiB, GiB or TiB (64MiB). Decimal units (MB) are refused: readers
//     disagree on what they mean. [ParseSize] reads them, for flags too.
//   - a timeout of 0 means never; a key left out means the default.
//   - relative paths, of plugins and of admin.token_file, are relative to
//     the file's directory.
//
// # Precedence
//
// Flags, then the environment, then the file, then the defaults. Every
// field of [File] and [Overrides] that can be unset is a pointer, so that
// each layer replaces only what it sets. Each of repe-gw's flags but
// --plugin and --version has a variable ([EnvVars]): REPE_GW_ and the
// flag's name in capitals, with _ for -, such as REPE_GW_CONFIG,
// REPE_GW_PLUGINS (a list, separated as in PATH), REPE_GW_ADDR,
// REPE_GW_MAX_CONNS, REPE_GW_DEADLINE and REPE_GW_LOG_LEVEL. An empty
// variable is unset. [Overrides.Set] reads a flag's or a variable's value
// exactly as the file's. Plugins named by --plugins or REPE_GW_PLUGINS
// replace the file's list, and take the file's defaults.
//
// # Use
//
// A command line reads the environment, records each flag given with
// [Overrides.Set], loads the file that either names, and lays the two over
// it:
//
//	env, err := config.FromEnv(os.Getenv)
//	if err != nil {
//		return err // one line per bad variable
//	}
//	var flags config.Overrides
//	// for each flag given: err := flags.Set(name, value)
//	f := new(config.File) // no file: every default
//	if path := cmp.Or(flags.Config, env.Config); path != "" {
//		if f, err = config.Load(path); err != nil {
//			return err // config.Errors: one line per problem
//		}
//	}
//	f.Apply(env)
//	f.Apply(flags)
//	// --plugin FILE adds to the plugins in effect, with f's defaults:
//	// f.Plugins = append(f.Plugins, config.Plugin{Path: file, Enabled: true})
//	cfg := f.Gateway(logger) // the gateway.Config of listen and limits
//	for i := range f.Plugins {
//		p := &f.Plugins[i]
//		if p.Enabled {
//			policy := f.Effective(p) // mode, deadline, restart, ... with defaults
//			// load p.Path with policy, pinned to p.SHA256, handing it p.Config;
//			// cfg.Policies[root] = gateway.Policy{Deadline: policy.Deadline, ...}
//		}
//	}
//
// A validate command lists every problem:
//
//	_, err := config.Load(path)
//	if errs, ok := errors.AsType[config.Errors](err); ok {
//		for _, e := range errs {
//			fmt.Fprintln(os.Stderr, e) // repe-gw.yaml:7:14: limits.max_conns: ...
//		}
//	}
package config
