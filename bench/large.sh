#!/bin/sh
# Large bodies, side by side (BENCHMARKS.md, "16 MiB echo"): server CPU per
# 16 MiB echo request (-c 1 -P 1) of the gateway, of the floor for large
# bodies (bench/echo -frames), and of the plain 64 KiB echo, and with
# BASE=/path/to/an/older/repe-gw the same for that binary, plus the pipelined
# get_value case (-c 4 -P 32) for both gateways, to check that small
# requests did not pay for it. Each of $ROUNDS rounds runs every server once,
# in an order that rotates by round, pinned as bench/run.sh pins them.
# Prints one line per run and the medians.
set -eu
GO=${GO:-go}
CC=${CC:-cc}
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-6150}
BASE=${BASE:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

make plugins >/dev/null
$GO build -o bin/ ./cmd/repe-bench ./cmd/repe-gw ./bench/echo
mkdir -p "$TMP/plugins/echo"
$CC -O2 -fPIC -fvisibility=hidden -shared -pthread -Iplugins/include \
	-DGW_NAME='"echo"' -DGW_ROOT='"/echo"' -o "$TMP/plugins/echo/echo.so" gateway/testdata/gwtest.c
head -c 16777216 /dev/urandom >"$TMP/body16m"

# start KIND ADDR PLUGINS: runs a server pinned to $SERVER_CPU, sets PID.
start() {
	case $1 in
	echo) taskset -c "$SERVER_CPU" ./bin/echo -addr "$2" >/dev/null 2>&1 & ;;
	frames) taskset -c "$SERVER_CPU" ./bin/echo -frames -addr "$2" >/dev/null 2>&1 & ;;
	gateway) taskset -c "$SERVER_CPU" ./bin/repe-gw --plugins "$3" --addr "$2" --log-level warn & ;;
	base) taskset -c "$SERVER_CPU" "$BASE" --plugins "$3" --addr "$2" --log-level warn & ;;
	esac
	PID=$!
	i=0
	until ./bin/repe-bench --addr "$2" --query /x -n 1 --expect-ec any >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "$1 did not start" >&2; kill "$PID"; exit 1; }
		sleep 0.1
	done
}

# run CASE KIND: one measured run; prints CASE KIND µs/request other-CPU
# requests p99-latency-µs (a run with few requests was stalled by other
# work).
run() {
	port=$((PORT + n % 40))
	n=$((n + 1))
	if [ "$1" = body16m ]; then
		start "$2" "127.0.0.1:$port" "$TMP/plugins"
		set -- "$1" "$2" --query /echo/echo --body-file "$TMP/body16m" --body-format raw -c 1 -P 1
	else
		start "$2" "127.0.0.1:$port" ./plugins
		set -- "$1" "$2" --query /calculator/get_value -c 4 -P 32
	fi
	c=$1 k=$2
	shift 2
	taskset -c "$CLIENT_CPU" ./bin/repe-bench --addr "127.0.0.1:$port" -z "$DUR" --warmup "$WARMUP" \
		--server-pid "$PID" --format json "$@" >"$TMP/out.json"
	kill "$PID"
	wait "$PID" 2>/dev/null || true
	awk -v c="$c" -v k="$k" -F'[:,]' '
		/"server_cpu_us_per_request"/ { cpu = $2 }
		/"other_cpu_busy"/ { other = $2 }
		/"requests"/ { reqs = $2 }
		/"p99"/ { p99 = $2 }
		END { printf "%s %s %.1f %.2f %d %.0f\n", c, k, cpu, other, reqs, p99 }' "$TMP/out.json" | tee -a "$TMP/all"
}

large="frames gateway echo"
small=""
if [ -n "$BASE" ]; then
	large="frames gateway base echo"
	small="gateway base"
fi
n=0
round=1
echo "case server server-cpu-us/request other-cpu-busy requests p99-us"
while [ "$round" -le "$ROUNDS" ]; do
	# Rotate the order by round.
	order=$large
	i=1
	while [ "$i" -lt "$round" ]; do
		first=${order%% *}
		order="${order#* } $first"
		i=$((i + 1))
	done
	for k in $order; do run body16m "$k"; done
	if [ -n "$small" ]; then
		[ $((round % 2)) -eq 1 ] && order=$small || order="base gateway"
		for k in $order; do run pipelined "$k"; done
	fi
	round=$((round + 1))
done

echo "medians (range):"
sort -k1,1 -k2,2 -k3,3n "$TMP/all" | awk '
	function flush() {
		if (cnt) printf "%s %s: %.1f (%.1f-%.1f) over %d runs (other CPU in the median run: %.2f)\n",
			key1, key2, v[int((cnt + 1) / 2)], v[1], v[cnt], cnt, o[int((cnt + 1) / 2)]
	}
	$1 " " $2 != key { flush(); key = $1 " " $2; key1 = $1; key2 = $2; cnt = 0 }
	{ cnt++; v[cnt] = $3; o[cnt] = $4 }
	END { flush() }' | sort
