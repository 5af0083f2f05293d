//go:build linux

package isolate

// Status names the plugin's state as the gateway shows it to operators.
func (p *Plugin) Status() string { return p.State().String() }
