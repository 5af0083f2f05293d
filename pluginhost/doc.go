// Package pluginhost loads REPE plugins, shared libraries that follow Glaze's
// plugin ABI version 3 (REPE.md §5, plugins/include/repe_plugin.h), and calls
// them. It uses purego, so a binary built with CGO_ENABLED=0 loads and calls
// plugins too.
//
// # Lifecycle
//
// Open (and Load, for many files) takes a plugin through these steps, and
// refuses it with a *LoadError naming the file and the reason at the first
// one that fails:
//
//  1. dlopen the file with RTLD_NOW|RTLD_LOCAL: every symbol is resolved now,
//     and none leaks into the next plugin.
//  2. Resolve repe_plugin_interface_version, repe_plugin_info and
//     repe_plugin_call (required; ErrMissingSymbol names the one missing),
//     and repe_plugin_init and repe_plugin_shutdown (optional), with dlsym.
//  3. Call repe_plugin_interface_version before reading anything else, and
//     refuse any version but 3 (ErrInterfaceVersion): the info struct's
//     layout belongs to the version.
//  4. Read the info: NULL info, name or root path is refused (ErrInfo); a
//     NULL version reads as "". The root path is normalised ("" and "/" are
//     the catch-all "", trailing slashes go); one that does not start with
//     "/" is refused.
//  5. Load only: a root path another plugin already serves is refused
//     (ErrDuplicateRoot), before init.
//  6. Call repe_plugin_init_ex with the plugin's context if exported,
//     otherwise repe_plugin_init if exported; a result other than REPE_OK
//     refuses the plugin (ErrInit), after repe_plugin_shutdown is called to
//     undo a partial initialisation, as Glaze's host example does. Then, for
//     a hook plugin loaded by Host.AddFile, repe_gateway_hooks_init; its
//     failure refuses the file too, REPE part included.
//  7. Serve calls: Plugin.Call, and the Hooks methods, from any number of
//     goroutines.
//  8. Shut down: Host.BeginShutdown sets every context's shutting_down and
//     runs on_shutdown once; Plugin.Shutdown or Host.Close stop new calls,
//     wait for the calls in flight, then call repe_plugin_shutdown exactly
//     once; Host.Close then runs each hook plugin's destroy exactly once.
//
// A library is never dlclosed. A C++ plugin's thread_local objects (Glaze's
// reply buffer is one) are destroyed when each thread that used them exits,
// by code inside the library; gateway threads outlive any shutdown, so after
// a dlclose those destructors would jump into unmapped memory and crash the
// host. Static destructors registered with atexit have the same problem. Not
// unloading costs the library's mapping, nothing else.
//
// # Hook plugins and the plugin context
//
// plugins/include/repe_gateway.h extends the ABI, without changing it for a
// plugin that does not use it. A file that exports repe_gateway_hooks_init
// is a hook plugin: Host.AddFile loads it, with or without the REPE
// symbols, and Host.Hooks lists the tables in load order, which is the
// order the gateway calls them in. Hook plugins run in this process only.
//
// A plugin that exports repe_plugin_init_ex or repe_gateway_hooks_init gets
// a context: its name, a data directory <Config.DataDir>/<name> made with
// mode 0700, its configuration as JSON, a log function and a shutting_down
// flag. The context lives in an anonymous mapping, which the garbage
// collector never moves or frees, and is never unmapped, since the plugin
// may keep it for the life of the process (like the library, which stays
// loaded).
//
// The log function is the one piece of this package that C calls, and it
// must not call into Go (see "Calling C without cgo" below): plugins call it
// from threads Go has never seen. It is written in assembly
// (ctxlog_linux_GOARCH.s) and makes one system call: sendmsg of one
// datagram, the level and the message, on a Unix datagram socket, with
// MSG_DONTWAIT|MSG_NOSIGNAL. A datagram is delivered whole or not at all, so
// messages from many threads never interleave; the call never blocks a
// plugin (a full socket drops the message and counts it), and a socket
// whose reader has gone answers an error, never SIGPIPE, which a pipe would
// raise on the plugin's thread. A goroutine reads the other end and logs
// each message through Config.Logger with the plugin's name, with
// "truncated" when it was cut to 4088 bytes and "dropped" when messages
// were lost before it. When the last part of the plugin is shut down, the
// host sends a stop record behind everything sent before and waits for the
// reader to reach it, so that every message logged up to destroy is logged.
//
// Hook calls pass their argument structs in the call's own frame, on the
// goroutine's stack, and a second trampoline (hookcall_GOARCH.s) takes
// their address once the stack is pinned, so a hook call allocates
// nothing.
//
// # Trust
//
// Opening a plugin runs its code with every privilege of the process, so
// whoever can write the file, or a directory on its way, owns the process.
// Trust.Check says whether anyone but root and the process's own user
// could have done so, before the file is opened; Open does not call it,
// since only the caller knows which plugin directory a file was found in.
//
// # Calls
//
// Plugin.Call is "request bytes in, reply bytes appended": nothing about it
// needs the plugin to live in this process, so it could be served by an
// out-of-process worker with the same contract. It validates what the plugin
// returns (REPE.md §5.3-§5.4) and turns a malformed reply into a
// *repe.Error, so a broken plugin never desynchronises a client's stream.
// The package does not log; it returns errors for the caller to log.
//
// # Calling C without cgo
//
// Every call into a plugin goes through runtime.cgocall, as cgo's and
// purego's calls do, with a small assembly trampoline (ccall.go). That
// rests on two assumptions:
//
//   - runtime.cgocall works only in a runtime set up for C: it throws
//     "cgocall unavailable" unless runtime/cgo, or something standing in for
//     it, has set up threads with C stacks and thread-local storage. In a
//     CGO_ENABLED=0 build that is purego's fakecgo, which importing purego
//     links in (runtime/cgo itself when cgo is on); it is what makes plugins
//     load and run without cgo. The CGO_ENABLED=0 pass of make test checks
//     it.
//   - A plugin never calls back into Go. The call's argument frame lives on
//     the goroutine's stack, and the trampoline writes the results through
//     a pointer to it after the C function returns. A callback would run Go
//     code on that goroutine, whose stack could grow and be moved; cgo's
//     generated code finds its moved frame again afterwards
//     (_cgo_topofstack), this package does not. The ABI gives a plugin no
//     Go function to call, and it must not obtain one any other way.
package pluginhost
