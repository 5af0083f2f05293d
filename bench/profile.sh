#!/bin/sh
# Where the server's CPU goes (make bench measures how much it is): CPU
# profiles of the echo floor and the gateway under the suite's pipelined and
# 16 MiB loads, pinned as bench/run.sh pins them, with perf (Debian's
# linux-perf). For each server and case it records `perf record -g` samples
# of the server and counts its system calls for $SECONDS_ seconds in the
# middle of a repe-bench run, then sums the samples up with bench/perfsum.
# Writes $OUT/<server>.<case>.{json,data,syscalls,md} and prints the tables.
#
# It takes about a minute. Software events only (cpu-clock, syscall
# tracepoints), so it works in virtual machines without a PMU.
set -eu
GO=${GO:-go}
CC=${CC:-cc}
OUT=${OUT:-results/profile}
PROFILE_SECONDS=${PROFILE_SECONDS:-6}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
QUERY=/calculator/get_value

command -v perf >/dev/null || { echo "profile.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
make plugins >/dev/null
$GO build -o bin/ ./cmd/repe-bench ./cmd/repe-gw ./bench/echo ./bench/perfsum
rm -rf "$OUT"
mkdir -p "$OUT/plugins/echo"
$CC -O2 -fPIC -fvisibility=hidden -shared -pthread -Iplugins/include \
	-DGW_NAME='"echo"' -DGW_ROOT='"/echo"' -o "$OUT/plugins/echo/echo.so" gateway/testdata/gwtest.c
head -c 16777216 /dev/urandom >"$OUT/body16m"

port=${PORT:-5290}
for case in pipelined body16m; do
	for server in echo gateway; do
		port=$((port + 1))
		addr=127.0.0.1:$port
		case $server.$case in
		echo.pipelined) taskset -c "$SERVER_CPU" ./bin/echo -addr "$addr" >/dev/null 2>&1 & ;;
		echo.body16m) taskset -c "$SERVER_CPU" ./bin/echo -frames -addr "$addr" >/dev/null 2>&1 & ;;
		gateway.pipelined) taskset -c "$SERVER_CPU" ./bin/repe-gw --plugins ./plugins --addr "$addr" --log-level warn & ;;
		gateway.body16m) taskset -c "$SERVER_CPU" ./bin/repe-gw --plugins "$OUT/plugins" --addr "$addr" --log-level warn & ;;
		esac
		pid=$!
		until ./bin/repe-bench --addr "$addr" --query "$QUERY" -n 1 --expect-ec any >/dev/null 2>&1; do sleep 0.1; done
		case $case in
		pipelined) load="--query $QUERY -c 4 -P 32" ;;
		body16m) load="--query /echo/echo --body-file $OUT/body16m --body-format raw -c 1 -P 1" ;;
		esac
		# The load runs 2 s of warm-up, then the recording, then 2 s more;
		# perf itself runs on the load tool's CPU.
		# shellcheck disable=SC2086
		taskset -c "$CLIENT_CPU" ./bin/repe-bench --addr "$addr" $load --warmup 2s -z "$((PROFILE_SECONDS + 3))s" \
			--server-pid "$pid" --format json >"$OUT/$server.$case.json" &
		bench=$!
		sleep 3
		taskset -c "$CLIENT_CPU" perf stat -x, -p "$pid" -o "$OUT/$server.$case.syscalls" \
			-e syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,syscalls:sys_enter_ppoll,syscalls:sys_enter_fcntl \
			-- sleep "$PROFILE_SECONDS" &
		stat=$!
		taskset -c "$CLIENT_CPU" perf record -q -e cpu-clock -F 2999 -g -p "$pid" -o "$OUT/$server.$case.data" -- sleep "$PROFILE_SECONDS"
		wait "$stat" "$bench"
		kill "$pid"
		wait "$pid" 2>/dev/null || true

		cpu=$(sed -n 's/.*"server_cpu_us_per_request": \([0-9.e+-]*\).*/\1/p' "$OUT/$server.$case.json")
		rps=$(sed -n 's/.*"requests_per_s": \([0-9.e+-]*\).*/\1/p' "$OUT/$server.$case.json")
		unit=µs per=$cpu
		if [ "$case" = body16m ]; then unit=ms per=$(awk -v c="$cpu" 'BEGIN { print c / 1000 }'); fi
		{
			awk -v s="$server" -v c="$case" -v p="$per" -v u="$unit" -v r="$rps" \
				'BEGIN { printf "## %s, %s: %.3f %s of server CPU per request, %.0f requests/s\n", s, c, p, u, r }'
			echo
			echo "Measured under perf; syscall counting adds to each system call's cost."
			echo
			echo "System calls per request (over the recording, at that rate):"
			echo
			awk -F, -v n="$rps" -v s="$PROFILE_SECONDS" '$1 ~ /^[0-9]+$/ && $1 > 0 { sub("syscalls:sys_enter_", "", $3); printf "- %s: %.3f\n", $3, $1 / (n * s) }' "$OUT/$server.$case.syscalls"
			echo
			perf script -i "$OUT/$server.$case.data" 2>/dev/null | ./bin/perfsum --per-request "$per" --unit "$unit"
			echo
		} >"$OUT/$server.$case.md"
		cat "$OUT/$server.$case.md"
	done
done
