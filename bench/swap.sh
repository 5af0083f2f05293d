#!/bin/sh
# The one-host upgrade (README, "How connections end"): runs
# TestReusePortSwap $ROUNDS times, each swapping two gateways on one port
# (--reuse-port) under pipelined load with tcp_migrate_req 0 and then 1
# (when the test may set it, as root), and prints what every client saw:
# the Go client's Idempotent and other calls, repe-bench --reconnect, and a
# client that does not reconnect. The test fails if a reconnecting client
# loses a request. Run as root to cover both sysctl settings.
#
# It takes about a minute per round.
set -eu
GO=${GO:-go}
ROUNDS=${ROUNDS:-5}
cd "$(dirname "$0")/.."
make plugins >/dev/null
for round in $(seq "$ROUNDS"); do
	echo "round $round"
	"$GO" test -count=1 -run '^TestReusePortSwap$' -v ./cmd/repe-gw/ |
		grep -E 'swap_test.go|^(--- |    --- |ok|FAIL)' |
		sed -e 's/^ *swap_test.go:[0-9]*: /  /'
done
