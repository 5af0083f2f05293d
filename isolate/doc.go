// Package isolate runs a REPE plugin in a worker process of its own, so that
// a plugin that crashes, hangs or allocates without bound takes its worker
// down, never the gateway: the gateway answers the requests it had in
// flight with errors, restarts the worker, and every other plugin serves on
// undisturbed. It is the gateway's isolated mode (Linux only).
//
// # Workers
//
// Start runs Config.Exe, by default the gateway's own binary again, with
// Config.WorkerArgs, which make it call ServeWorker. The worker loads the
// plugin with pluginhost, which runs its init, and reports the plugin's
// name, version and root over a unix socket pair (or why the plugin was
// refused: Start returns that as the same *pluginhost.LoadError
// pluginhost.Open would). Then it answers batches: the gateway writes a
// client's pipelined requests in one write, the worker runs them one after
// another, in order, on one thread, and writes their replies back in one
// write. A pipelined client costs one round trip per batch, not one per
// request. A worker runs one exchange at a time, and the calls that arrive
// meanwhile share the next: their batches go to the worker in one write,
// in the order they came, and their replies come back in one, each call
// getting its own. Many clients with a request each cost one round trip
// between them, not one each. (A plugin that must run several requests at
// once could get a pool of workers; one is what exists.)
//
// # Event loops
//
// A gateway with event loops gives one of them the serving worker's socket
// (UseLoop), and the calls go through a pipe: Post sends a batch without
// waiting, and the loop hands each batch its replies as they arrive (Call,
// meanwhile, posts its batch and waits). The batches posted on that loop
// wait for it to write them in one write once it is done with what it
// read; one posted elsewhere is written at once, unless batches before it
// still wait to be written. The worker does not care where one
// write ends: it answers a stream of requests in order. Compared with an
// exchange, this saves the thread that waits for the worker and the
// wake-up of the loop that takes its replies: a round trip to the worker
// costs the loop one wait for readiness, which it makes anyway for its
// clients. Order, deadlines and failures are the same either way: a pipe
// that sees its worker fail settles the failure as an exchange does, and a
// new pipe is attached once the next worker serves. Without a pipe (before
// UseLoop, while the worker restarts, once the loops have stopped), calls
// go as exchanges.
//
// The worker keeps count of the requests it begins, and the replies it has
// made but not yet written, in a page of memory it shares with the gateway
// (wire.go describes it). When a worker dies, the gateway therefore knows
// exactly which request was running, which requests were never begun, and
// every reply made before the failure, sent or not.
//
// # Failures
//
// A worker that dies (a signal such as SIGSEGV or SIGABRT, or an exit),
// whose batch passes its deadline, or that breaks the worker protocol,
// fails its batch. Call answers each request of the batch with the
// plugin's reply if the plugin made one, and otherwise, with the request's
// id, body format UTF-8 and ec from 1 to 9 only (Glaze clients look error
// names up without a bounds check):
//
//	ec 9 connection_failure  the request was running when its worker died:
//	                         it may have run. "connection_failure: the worker
//	                         of plugin "calc" died (signal SIGSEGV) while
//	                         running this request"; "died (exited with
//	                         status 3)" for an exit.
//	ec 7 timeout             the request was running when the batch's
//	                         deadline passed; the worker was killed.
//	                         "timeout: plugin "calc" did not answer within
//	                         100ms; its worker was killed and restarts"
//	ec 8 send_error          the request did not run, and retrying it is
//	                         safe: the worker had not begun it when it
//	                         failed, or the plugin is failed, closed,
//	                         restarting or busy with other batches until the
//	                         deadline. The message says which.
//
// Other calls that shared the failing exchange keep the replies their
// requests got; a call none of whose requests the worker had begun waits
// for the next worker, as a call that came during the restart does.
//
// The gateway kills a worker that may still live (SIGKILL), logs its end
// with its status, and starts a new one in the background after a backoff:
// Config.BackoffMin (100 ms) after the first failure, doubled for each
// further failure within Config.FailureWindow (one minute), up to
// Config.BackoffMax (30 s). Calls that arrive meanwhile wait for the new
// worker until their deadline. A worker that dies while idle costs the next
// batch that wait, not an error.
//
// Config.MaxFailures (5) failures within the window, restarts that fail
// included, mark the plugin failed: it is logged, State returns
// StateFailed, and calls fail fast with send_error: the circuit is open,
// and stays open, with no worker, until Close. A plugin that keeps failing
// is down until the gateway restarts.
//
// # Limits
//
// Config.MemoryLimit caps the address space the plugin may add to its
// worker (RLIMIT_AS, relative to the worker's size before it loads the
// plugin; none by default). A plugin past it sees malloc fail, and usually
// dies of it; the machine does not run out of memory.
//
// # Output
//
// The worker's standard output and error go to Config.Logger, a record per
// line ("plugin output", with the attributes plugin, file, stream, pid and
// line), at most 100 lines a second per plugin; the lines beyond are
// counted and the count logged.
//
// # No orphans
//
// Workers die with the gateway, however it dies. Each worker watches a
// pipe whose write end only the gateway holds, and exits when it reads EOF,
// whatever the plugin is doing on its other thread. As a backstop, the
// kernel kills the worker (PR_SET_PDEATHSIG, SIGKILL) when the thread that
// forked it exits; that is the thread of the plugin's supervisor goroutine,
// which stays locked to it for the Plugin's whole life, since any other
// thread may exit under a running gateway. Workers ignore SIGINT and
// SIGTERM: a Ctrl-C in a terminal or a stop signal sent to the whole
// service group reaches the gateway, which stops them after the requests in
// flight.
//
// # Lifecycle
//
// The plugin's init runs once per worker start, in the worker. Its shutdown
// runs once, on a graceful stop: Close waits for the batch in flight, then
// closes the worker's socket, and the worker calls shutdown and exits. A
// worker that crashed or was killed runs no shutdown. The worker gives the
// signals of a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) their
// default action, so that a plugin's fault kills it by that signal, which
// the gateway reports, instead of the Go runtime's exiting with status 2.
//
// # Wiring
//
// The program named by Config.Exe must hand its worker mode to ServeWorker
// before anything else, for example in repe-gw:
//
//	if len(args) > 0 && args[0] == "worker" {
//		os.Exit(isolate.ServeWorker(args[1:]))
//	}
//
// with Config.WorkerArgs = []string{"worker"}.
package isolate
