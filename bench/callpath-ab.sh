#!/bin/sh
# The in-process request path of this tree against revision $REV (main by
# default), side by side: BenchmarkRequestPath of both, alternating, for
# $ROUNDS rounds; then repe-bench against both gateways, pinned as
# bench/isolated.sh pins them, pipelined (-c 4 -P 32) and not (-c 64 -P
# 1), with the calculator inline (the default) and with a deadline, which
# keeps its calls on the gateway's workers. Which side runs first
# alternates by round. GOBENCH=0 skips the go test benchmarks. Prints
# one line per run.
#
# It takes about three minutes with the defaults.
set -eu
GO=${GO:-go}
REV=${REV:-main}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-3s}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5180}

make plugins >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/a" "$tmp/b"
git archive "$REV" | tar -x -C "$tmp/a"
(cd "$tmp/a" && $GO test -c -o "$tmp/a/gateway.test" ./gateway && $GO build -o "$tmp/a/" ./cmd/repe-gw)
$GO test -c -o "$tmp/b/gateway.test" ./gateway
$GO build -o "$tmp/b/" ./cmd/repe-gw ./cmd/repe-bench
so=$(pwd)/plugins/calculator/calculator.so
printf 'plugins:\n  - path: %s\n' "$so" >"$tmp/inline.yaml"
printf 'plugins:\n  - path: %s\n    deadline: 1s\n' "$so" >"$tmp/worker.yaml"

sides="a b"
for round in $(seq "$ROUNDS"); do
	[ "${GOBENCH:-1}" = 1 ] || break
	for side in $sides; do
		label=$REV
		[ $side = b ] && label=tree
		(cd gateway && "$tmp/$side/gateway.test" -test.run '^$' -test.bench BenchmarkRequestPath -test.benchtime 2s) |
			awk -v l="$label" '/^BenchmarkRequestPath/ { printf "go-bench %-6s %s\n", l, $0 }'
	done
	sides=$(echo $sides | awk '{ print $2, $1 }')
done

for round in $(seq "$ROUNDS"); do
	for c in "pipelined 4 32" "unpipelined 64 1"; do
		set -- $c
		for cfg in inline worker; do
			for side in $sides; do
				label=$REV
				[ $side = b ] && label=tree
				taskset -c "$SERVER_CPU" "$tmp/$side/repe-gw" --config "$tmp/$cfg.yaml" --addr 127.0.0.1:$PORT --log-level error &
				pid=$!
				sleep 1
				bench="taskset -c $CLIENT_CPU $tmp/b/repe-bench --addr 127.0.0.1:$PORT --query /calculator/get_value -c $2 -P $3"
				$bench -z 1s >/dev/null
				$bench -z "$DUR" --server-pid $pid | awk -v l="$label" -v c="$1 $cfg" '
					/^  latency/ { p50 = $3 }
					/^  server cpu/ { cpu = $3 }
					/^  machine/ { sub(/^  machine +/, ""); d = $0 }
					END { printf "%-20s %-6s server cpu %7s µs/request  p50 %8s  %s\n", c, l, cpu, p50, d }'
				kill $pid
				wait $pid || true
				PORT=$((PORT + 1))
			done
		done
	done
	sides=$(echo $sides | awk '{ print $2, $1 }')
done
