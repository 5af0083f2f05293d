#!/bin/sh
# Why an isolated plugin costs more than an in-process one: records the
# context switches (sched:sched_switch, with call graphs) of the gateway
# and its worker for $SECONDS_ seconds while repe-bench loads the
# calculator isolated (-c $C -P $P), pinned as bench/isolated.sh pins
# them, and counts them per request by what the switching thread was
# doing. Needs perf (Debian's linux-perf); software events only.
set -eu
GO=${GO:-go}
C=${C:-4}
P=${P:-32}
SECONDS_=${SECONDS_:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5195}

command -v perf >/dev/null || { echo "isolated-switches.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
make plugins >/dev/null
$GO build -o bin/ ./cmd/repe-bench ./cmd/repe-gw
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'plugins:\n  - path: %s\n    mode: isolated\n' "$(pwd)/plugins/calculator/calculator.so" >"$tmp/isolated.yaml"
taskset -c "$SERVER_CPU" ./bin/repe-gw --config "$tmp/isolated.yaml" --addr 127.0.0.1:$PORT --log-level error &
pid=$!
sleep 1
worker=$(pgrep -P $pid)
taskset -c "$CLIENT_CPU" ./bin/repe-bench --addr 127.0.0.1:$PORT --query /calculator/get_value -c "$C" -P "$P" \
	-z $((SECONDS_ + 3))s >"$tmp/bench.txt" &
bench=$!
sleep 1
perf record -q -e sched:sched_switch -g -p "$pid,$worker" -o "$tmp/perf.data" -- sleep "$SECONDS_" 2>/dev/null
wait $bench
kill $pid
wait $pid || true
rps=$(awk '/^  requests/ { for (i = 1; i < NF; i++) if ($(i + 1) == "req/s") print $i }' "$tmp/bench.txt")
# Each switch is named by the first frame of the switching thread's stack
# that says what it waited for.
perf script -i "$tmp/perf.data" -F pid,ip,sym 2>/dev/null | awk -v gw="$pid" -v rps="$rps" -v secs="$SECONDS_" '
	/^ *[0-9]+ *$/ { proc = ($1 == gw) ? "gateway" : "worker"; what = ""; next }
	NF == 0 { if (proc != "") n[proc " " (what == "" ? "other" : what)]++; proc = ""; next }
	what == "" && /runtime\.sysmon/ { what = "sysmon (the Go runtime'"'"'s monitor thread)" }
	what == "" && /isolate\.serve/ { what = "waiting for a batch" }
	what == "" && /isolate\.\(\*Plugin\)\.exchange/ { what = "exchange with the worker" }
	what == "" && /isolate\.poll/ { what = "exchange with the worker" }
	what == "" && /netpoll\.\(\*Poller\)\.Polling/ { what = "event loop" }
	what == "" && /runtime\.(stopm|findRunnable|stoplockedm|startlockedm|handoffp|startm)/ { what = "Go scheduler hand-off" }
	END {
		for (k in n) printf "%8.4f switches/request  %s\n", n[k] / (rps * secs), k
	}' | sort -k3,3 -k1,1nr
