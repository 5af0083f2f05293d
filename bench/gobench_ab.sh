#!/usr/bin/env bash
# A Go benchmark of the working tree against the same benchmark at git
# revision BASE, side by side: both test binaries are built first, then run
# in alternating order, ROUNDS rounds of COUNT runs each, and the medians
# (and ranges) of ns/op per benchmark are printed with the allocations.
# Both run from this checkout, so they load the same plugins' sources.
# COPY names test files of the working tree to put into BASE's tree first,
# for a benchmark BASE does not have.
#
#   BASE=main bench/gobench_ab.sh ./gateway BenchmarkRequestPath
#   BASE=main COPY=bridge/bench_test.go bench/gobench_ab.sh ./bridge BenchmarkRESTGet
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=${1:?package, such as ./gateway}
bench=${2:?benchmark regexp}
base=${BASE:?BASE=REV}
rounds=${ROUNDS:-5}
benchtime=${BENCHTIME:-200000x}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$base" | tar -x -C "$tmp/base"
for f in ${COPY:-}; do cp "$f" "$tmp/base/$f"; done
(cd "$tmp/base" && go test -c -o "$tmp/base.test" "$pkg")
go test -c -o "$tmp/head.test" "$pkg"

run() { (cd "$pkg" && "$tmp/$1.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime" -test.benchmem) |
	awk -v side="$1" '/^Benchmark/ { print side "\t" $1 "\t" $3 "\t" $(NF-1) }' >>"$tmp/results"; }
for r in $(seq "$rounds"); do
	if ((r % 2)); then run base; run head; else run head; run base; fi
done
printf 'benchmark\tside\tns/op median (range)\tallocs/op\n'
sort -k2,2 -k1,1 -k3,3n "$tmp/results" | awk -F'\t' '
	{ k = $2 "\t" $1; v[k, ++n[k]] = $3; a[k] = $4; if (!(k in seen)) { seen[k]; order[++m] = k } }
	END { for (i = 1; i <= m; i++) { k = order[i]; c = n[k]
		printf "%s\t%s (%s to %s)\t%s\n", k, v[k, int((c + 1) / 2)], v[k, 1], v[k, c], a[k] } }'
echo
ps aux --sort=-%cpu | head -6 | cut -c1-150
