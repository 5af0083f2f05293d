#!/bin/sh
# The REPE benchmark suite (make bench); bench/README.md explains it. In each
# of $ROUNDS rounds, for every case, the echo floor and the gateway run one
# after the other (which first alternates by round), each pinned to CPU
# $SERVER_CPU and loaded by repe-bench pinned to CPU $CLIENT_CPU, so that
# their figures compare within a round; callfloor then prices the plugin call
# from C on the server's CPU. The cases: the calculator's get_value pipelined
# (-c 4 -P 32) and not (-c 64 -P 1), and a 16 MiB body through an echo
# plugin (-c 1 -P 1), whose floor is bench/echo -frames. Idle connections and the in-process Go benchmarks are
# measured once. Raw results go to $OUT/raw/, the tables to $OUT/bench.md.
#
# With the defaults it takes about five minutes on a quiet machine; on a
# busy one each round may first wait up to $QUIET_WAIT seconds for quiet.
set -eu
GO=${GO:-go}
CC=${CC:-cc}
OUT=${OUT:-results}
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
CALL_SECONDS=${CALL_SECONDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
GOBENCH=${GOBENCH:-1}
QUIET_WAIT=${QUIET_WAIT:-60}
QUERY=/calculator/get_value

make plugins >/dev/null
$GO build -o bin/ ./cmd/repe-bench ./cmd/repe-gw ./bench/echo ./bench/idle ./bench/report
$CC -O2 -Wall -Wextra -std=c11 -Iplugins/include -o bin/callfloor bench/callfloor/callfloor.c -ldl
rm -rf "$OUT/raw"
mkdir -p "$OUT/raw" "$OUT/plugins/echo"
# The echo-style plugin of the gateway's tests, at root /echo.
$CC -O2 -fPIC -fvisibility=hidden -shared -pthread -Iplugins/include \
	-DGW_NAME='"echo"' -DGW_ROOT='"/echo"' -o "$OUT/plugins/echo/echo.so" gateway/testdata/gwtest.c
head -c 16777216 /dev/urandom >"$OUT/body16m"

# busy_ticks: the CPU ticks (1/100 s) every process has used so far, on
# all CPUs (user, nice, system, irq, softirq, steal: /proc/stat).
busy_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# wait_quiet: on a shared machine, waits up to $QUIET_WAIT seconds for a
# second in which other processes used under 10 % of a CPU, so that a round
# does not start in the middle of someone else's build. Runs disturbed all
# the same are marked by the report.
wait_quiet() {
	waited=0
	while [ "$waited" -lt "$QUIET_WAIT" ]; do
		b0=$(busy_ticks)
		sleep 1
		b1=$(busy_ticks)
		[ $((b1 - b0)) -ge 10 ] || return 0
		waited=$((waited + 1))
	done
	echo "bench: the machine is busy with other work; measuring anyway (see the disturbance column)" >&2
}

# start NAME ADDR: runs server NAME pinned to $SERVER_CPU, sets PID, waits
# until it answers.
start() {
	case $1 in
	echo) taskset -c "$SERVER_CPU" ./bin/echo -addr "$2" >/dev/null 2>&1 & ;;
	echo-frames) taskset -c "$SERVER_CPU" ./bin/echo -frames -addr "$2" >/dev/null 2>&1 & ;;
	gateway) taskset -c "$SERVER_CPU" ./bin/repe-gw --plugins ./plugins --addr "$2" --max-conns 20000 --log-level warn & ;;
	gateway-echo) taskset -c "$SERVER_CPU" ./bin/repe-gw --plugins "$OUT/plugins" --addr "$2" --log-level warn & ;;
	esac
	PID=$!
	i=0
	until ./bin/repe-bench --addr "$2" --query "$QUERY" -n 1 --expect-ec any >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "$1 did not start" >&2; kill "$PID"; exit 1; }
		sleep 0.1
	done
}

stop() {
	kill "$PID"
	wait "$PID" 2>/dev/null || true
}

# load NAME ROUND ADDR CASE FLAGS...: one repe-bench run, saved as JSON.
load() {
	name=$1 round=$2 addr=$3 case=$4
	shift 4
	taskset -c "$CLIENT_CPU" ./bin/repe-bench --addr "$addr" -z "$DUR" --warmup "$WARMUP" \
		--server-pid "$PID" --format json "$@" >"$OUT/raw/$round.$name.$case.json"
}

# callfloor ROUND NAME PLUGIN QUERY [BODYFILE]: the plugin call from C,
# on the server's CPU.
callfloor() {
	taskset -c "$SERVER_CPU" ./bin/callfloor "$3" "$4" "${5:-}" "$CALL_SECONDS" >"$OUT/raw/$1.plugin.$2.json"
}

port=${PORT:-5190}
round=1
while [ "$round" -le "$ROUNDS" ]; do
	# Which server goes first alternates, so that a drift of the machine
	# over a round does not always favour the same one.
	if [ $((round % 2)) -eq 1 ]; then order="echo gateway"; else order="gateway echo"; fi
	wait_quiet
	for server in $order; do
		port=$((port + 1))
		start "$server" "127.0.0.1:$port"
		load "$server" "$round" "127.0.0.1:$port" pipelined --query "$QUERY" -c 4 -P 32
		load "$server" "$round" "127.0.0.1:$port" single --query "$QUERY" -c 64 -P 1
		stop
	done
	callfloor "$round" get_value plugins/calculator/calculator.so "$QUERY"
	for server in $order; do
		port=$((port + 1))
		# The large body's floor reads and writes whole frames (bench/echo -frames).
		[ "$server" = gateway ] && kind=gateway-echo || kind=echo-frames
		start "$kind" "127.0.0.1:$port"
		load "$server" "$round" "127.0.0.1:$port" body16m --query /echo/echo --body-file "$OUT/body16m" --body-format raw -c 1 -P 1
		stop
	done
	callfloor "$round" echo16m "$OUT/plugins/echo/echo.so" /echo/echo "$OUT/body16m"
	round=$((round + 1))
done

for server in echo gateway; do
	port=$((port + 1))
	start "$server" "127.0.0.1:$port"
	./bin/idle -addr "127.0.0.1:$port" -pid "$PID" -n "$IDLE_CONNS" -json >"$OUT/raw/idle.$server.json"
	stop
done

if [ "$GOBENCH" = 1 ]; then
	$GO test -run '^$' -bench . -benchtime 1s ./repe/ ./pluginhost/ ./gateway/ >"$OUT/raw/gobench.txt"
fi
./bin/report "$OUT/raw" >"$OUT/bench.md"
cat "$OUT/bench.md"
