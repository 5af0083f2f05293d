#!/bin/sh
# bench/ab-gateway.sh REV [ROUNDS]: the gateway package's request-path
# benchmarks at REV (say main) and in the working tree, side by side: each
# round runs BenchmarkRequestPath and BenchmarkHookCost of one build, then
# of the other, so that drift in the machine's speed hits both alike, and
# which goes first alternates by round. Lines are prefixed "base" or
# "head"; compare medians across the rounds.
set -eu
rev=${1:?usage: bench/ab-gateway.sh REV [ROUNDS]}
rounds=${2:-5}
root=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git -C "$root" archive "$rev" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go test -c -o "$tmp/base.test" ./gateway)
(cd "$root" && go test -c -o "$tmp/head.test" ./gateway)
echo "base $(git -C "$root" rev-parse --short "$rev"), head $(git -C "$root" describe --always --dirty)"
echo "machine, before:"
ps aux --sort=-%cpu | head -6
for i in $(seq "$rounds"); do
	order="base head"
	[ $((i % 2)) = 0 ] && order="head base"
	for v in $order; do
		dir="$root/gateway"
		[ "$v" = base ] && dir="$tmp/base/gateway"
		(cd "$dir" &&
			"$tmp/$v.test" -test.run '^$' -test.bench 'BenchmarkRequestPath' -test.benchtime 2s -test.benchmem &&
			"$tmp/$v.test" -test.run '^$' -test.bench 'BenchmarkHookCost' -test.benchtime 5x) |
			grep '^Benchmark' | sed "s/^/$v round $i: /"
	done
done
echo "machine, after:"
ps aux --sort=-%cpu | head -6
