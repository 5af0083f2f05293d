package config_test

import (
	"errors"
	"fmt"

	"github.com/repe-gw/repe-gw/config"
)

// A command line lays the environment and then its flags over the file.
func Example() {
	env, err := config.FromEnv(func(name string) string {
		return map[string]string{"REPE_GW_MAX_CONNS": "500", "REPE_GW_LOG_LEVEL": "debug"}[name]
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var flags config.Overrides
	if err := flags.Set("log-level", "warn"); err != nil { // --log-level warn
		fmt.Println(err)
		return
	}

	f, err := config.Parse("conf/repe-gw.yaml", []byte(`
limits:
  max_conns: 100
  max_message_size: 1MiB
defaults:
  deadline: 5s
plugins:
  - path: plugins/calculator.so
    deadline: 2s
  - path: /opt/plugins
    mode: isolated
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	f.Apply(env)
	f.Apply(flags)

	cfg := f.Gateway(nil)
	fmt.Println("max_conns:", cfg.MaxConns, "max_message_size:", cfg.MaxMessageSize, "log level:", f.LogLevel())
	for i := range f.Plugins {
		p := &f.Plugins[i]
		policy := f.Effective(p)
		fmt.Println(p.Path, policy.Mode, policy.Deadline)
	}
	// Output:
	// max_conns: 500 max_message_size: 1048576 log level: WARN
	// conf/plugins/calculator.so inprocess 2s
	// /opt/plugins isolated 5s
}

// A validate command prints every problem, each at its place.
func ExampleErrors() {
	_, err := config.Parse("repe-gw.yaml", []byte(`
limits:
  max_conns: -1
  read_timout: 5s
log:
  level: loud
`))
	if errs, ok := errors.AsType[config.Errors](err); ok {
		for _, e := range errs {
			fmt.Println(e)
		}
	}
	// Output:
	// repe-gw.yaml:3:14: limits.max_conns: out of range: want 1 to 2147483647
	// repe-gw.yaml:4:3: limits: unknown key "read_timout": did you mean read_timeout?
	// repe-gw.yaml:6:10: log.level: want debug, info, warn or error
}
