#!/bin/sh
# Isolated plugins against in-process ones (BENCHMARKS.md, "Isolated
# plugins"): the calculator's get_value served by the gateway with the
# plugin in-process and isolated with the default concurrency, and, if
# $CONCURRENCY is set, isolated with `concurrency: $CONCURRENCY`, one after
# the other in each of $ROUNDS rounds (which first rotates by round),
# pipelined (-c 4 -P 32) and not (-c 64 -P 1).
# Each server is pinned to CPU $SERVER_CPU, repe-bench to CPU
# $CLIENT_CPU. Prints one line per run: server CPU per request (gateway
# and worker together: --server-pid counts children), p50, context
# switches per request of the server's processes, and the disturbance.
# Each round then prints the floor of a round trip to a worker process:
# bench/ipcfloor, two processes on the server's CPU passing a byte back
# and forth, its wall and CPU time per round trip.
#
# It takes about a minute with the defaults.
set -eu
GO=${GO:-go}
CC=${CC:-cc}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-3s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5190}
# name:connections:depth, as repe-bench's -c and -P; unloaded:1:1 adds
# the round trip of one request at a time.
CASES=${CASES:-pipelined:4:32 unpipelined:64:1}

make plugins >/dev/null
$GO build -o bin/ ./cmd/repe-bench ./cmd/repe-gw
$CC -O2 -Wall -Wextra -std=c11 -o bin/ipcfloor bench/ipcfloor/ipcfloor.c
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
so=$(pwd)/plugins/calculator/calculator.so
printf 'plugins:\n  - path: %s\n' "$so" >"$tmp/inprocess.yaml"
printf 'plugins:\n  - path: %s\n    mode: isolated\n' "$so" >"$tmp/isolated.yaml"
servers="inprocess isolated"
if [ -n "$CONCURRENCY" ]; then
	printf 'plugins:\n  - path: %s\n    mode: isolated\n    concurrency: %s\n' "$so" "$CONCURRENCY" >"$tmp/isolated-c$CONCURRENCY.yaml"
	servers="$servers isolated-c$CONCURRENCY"
fi

# switches prints the context switches of process $1 and its children so
# far, over all their threads.
switches() {
	for p in $1 $(pgrep -P "$1"); do
		cat /proc/"$p"/task/*/status 2>/dev/null
	done | awk '/ctxt_switches/ { n += $2 } END { print n }'
}

run() { # server case c P
	taskset -c "$SERVER_CPU" ./bin/repe-gw --config "$tmp/$1.yaml" --addr 127.0.0.1:$PORT --log-level warn &
	pid=$!
	sleep 1
	bench="taskset -c $CLIENT_CPU ./bin/repe-bench --addr 127.0.0.1:$PORT --query /calculator/get_value -c $3 -P $4"
	$bench -z "$WARMUP" >/dev/null
	before=$(switches $pid)
	out=$($bench -z "$DUR" --server-pid $pid)
	after=$(switches $pid)
	kill $pid
	wait $pid || true
	echo "$out" | awk -v server="$1" -v case="$2" -v sw=$((after - before)) '
		/^  requests/ { n = $2 }
		/^  latency/ { p50 = $3 }
		/^  server cpu/ { cpu = $3 }
		/^  machine/ { sub(/^  machine +/, ""); dist = $0 }
		END { printf "%-10s %-13s server cpu %7s µs/request  p50 %8s  switches %.3f/request  %s\n",
			case, server, cpu, p50, sw / n, dist }'
	PORT=$((PORT + 1))
}

for round in $(seq "$ROUNDS"); do
	echo "round $round"
	for c in $CASES; do
		set -- $(echo "$c" | tr : ' ')
		for s in $servers; do
			run "$s" "$1" "$2" "$3"
		done
	done
	taskset -c "$SERVER_CPU" ./bin/ipcfloor 2 | awk -F'[:,} ]+' '
		{ printf "floor      ipcfloor      round trip %s µs wall, %s µs CPU\n", $4, $6 }'
	# Rotate the order, so that no server always runs first.
	servers="$(echo $servers | cut -d' ' -f2-) $(echo $servers | cut -d' ' -f1)"
done
