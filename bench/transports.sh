#!/usr/bin/env bash
# Server CPU per request of the gateway's other transports, side by side in
# one run, against what they are measured against:
#   - pipelined REPE over TLS against plain TCP (repe-bench -c 4 -P 32, a
#     read of the C calculator's value), the same gateway process serving
#     both;
#   - the HTTP bridge's GET /calculator/value against a bare net/http
#     handler that answers the same bytes (bench/httpfloor), both loaded by
#     Debian's wrk with the same settings.
# The servers run on CPU 0 with GOMAXPROCS=1 and the load tools on CPU 1.
# Each round runs every pair, the order within a pair alternating by round;
# ratios are the medians of the per-round ratios. "other" is the CPU that
# neither side used during the window (other processes), in CPUs.
#
# With BASE=REV, a gateway built from git revision REV serves HTTP too, and
# each round loads it beside the others: the bridge's ratio before and
# after a change, measured side by side in one run.
#
#   bench/transports.sh            # ROUNDS=5 SECS=5 by default
#   BASE=main bench/transports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
secs=${SECS:-5}

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$tmp/repe-gw" ./cmd/repe-gw
go build -o "$tmp/repe-bench" ./cmd/repe-bench
go build -o "$tmp/httpfloor" ./bench/httpfloor
make -s plugins >/dev/null
# A folder of the gateway's own, which its plugin trust check accepts
# whatever the umask of the checkout.
mkdir -m 0755 "$tmp/plugins"
install -m 0755 plugins/calculator/calculator.so "$tmp/plugins/"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tcp=127.0.0.1:$(free_port) tls=127.0.0.1:$(free_port) http=127.0.0.1:$(free_port) floor=127.0.0.1:$(free_port)

taskset -c 0 env GOMAXPROCS=1 "$tmp/repe-gw" --plugin "$tmp/plugins/calculator.so" --addr "$tcp" \
	--tls-addr "$tls" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --http-addr "$http" \
	--log-level warn 2>"$tmp/gw.log" &
gw=$!
pids+=("$gw")
taskset -c 0 env GOMAXPROCS=1 "$tmp/httpfloor" -addr "$floor" >/dev/null &
fl=$!
pids+=("$fl")
for _ in $(seq 100); do
	curl -sf "http://$http/calculator/value" >/dev/null && curl -sf "http://$floor/" >/dev/null && break
	sleep 0.1
done
if [[ -n ${BASE:-} ]]; then
	mkdir "$tmp/base"
	git archive "$BASE" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && CGO_ENABLED=0 go build -o "$tmp/repe-gw-base" ./cmd/repe-gw)
	basehttp=127.0.0.1:$(free_port)
	taskset -c 0 env GOMAXPROCS=1 "$tmp/repe-gw-base" --plugin "$tmp/plugins/calculator.so" \
		--addr 127.0.0.1:$(free_port) --http-addr "$basehttp" --log-level warn 2>"$tmp/base.log" &
	gwb=$!
	pids+=("$gwb")
	for _ in $(seq 100); do
		curl -sf "http://$basehttp/calculator/value" >/dev/null && break
		sleep 0.1
	done
fi

# repe prints: server µs/request, requests/s, other CPUs, errors.
repe() {
	taskset -c 1 "$tmp/repe-bench" --addr "$1" "${@:2}" --query /calculator/value -c 4 -P 32 \
		-z "${secs}s" --warmup 1s --server-pid "$gw" --format json |
		jq -r '[(.server_cpu_us_per_request*1000|round/1000), (.requests_per_s|round), (.other_cpu_busy*100|round/100), .errors] | @tsv'
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# http prints the same for wrk against URL served by PID.
http() {
	local url=$1 pid=$2
	taskset -c 1 wrk -t1 -c32 -d1s "$url" >/dev/null # warm-up
	local c0 b0 w0 out c1 b1 reqs bad
	c0=$(ticks "$pid") b0=$(busy)
	out=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" "$url")
	c1=$(ticks "$pid") b1=$(busy)
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	bad=$(awk '/Non-2xx/{print $NF}' <<<"$out")
	# Ticks are 10 ms. The load tool keeps its CPU busy: other = all the
	# busy CPU but the server's and one CPU for wrk, which is an upper
	# bound on wrk's share and so a lower bound on the disturbance.
	awk -v c="$((c1 - c0))" -v b="$((b1 - b0))" -v n="$reqs" -v s="$secs" -v bad="${bad:-0}" \
		'BEGIN { o = (b - c) / (100 * s) - 1; if (o < 0) o = 0; printf "%.3f\t%d\t%.2f\t%d\n", c * 10000 / n, n / s, o, bad }'
}

printf 'round\tcase\tserver_us_per_req\treq_per_s\tother_cpus\terrors\n'
declare -a tlsratio httpratio baseratio
for r in $(seq "$rounds"); do
	if ((r % 2)); then
		a=$(repe "$tcp") b=$(repe "$tls" --tls --cacert "$tmp/cert.pem")
	else
		b=$(repe "$tls" --tls --cacert "$tmp/cert.pem") a=$(repe "$tcp")
	fi
	printf '%d\tREPE TCP\t%s\n%d\tREPE TLS\t%s\n' "$r" "$a" "$r" "$b"
	tlsratio+=("$(awk -v a="${a%%$'\t'*}" -v b="${b%%$'\t'*}" 'BEGIN{printf "%.3f", b / a}')")
	if ((r % 2)); then
		a=$(http "http://$floor/calculator/value" "$fl") b=$(http "http://$http/calculator/value" "$gw")
	else
		b=$(http "http://$http/calculator/value" "$gw") a=$(http "http://$floor/calculator/value" "$fl")
	fi
	printf '%d\tnet/http floor\t%s\n%d\tHTTP bridge GET\t%s\n' "$r" "$a" "$r" "$b"
	httpratio+=("$(awk -v a="${a%%$'\t'*}" -v b="${b%%$'\t'*}" 'BEGIN{printf "%.3f", b / a}')")
	if [[ -n ${BASE:-} ]]; then
		c=$(http "http://$basehttp/calculator/value" "$gwb")
		printf '%d\tHTTP bridge GET, %s\t%s\n' "$r" "$BASE" "$c"
		baseratio+=("$(awk -v a="${a%%$'\t'*}" -v c="${c%%$'\t'*}" 'BEGIN{printf "%.3f", c / a}')")
	fi
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END{printf "%s (range %s to %s)", v[int((NR+1)/2)], v[1], v[NR]}'; }
echo
echo "TLS / TCP, server CPU per request: $(median "${tlsratio[@]}")"
echo "HTTP bridge / net/http, server CPU per request: $(median "${httpratio[@]}")"
if [[ -n ${BASE:-} ]]; then
	echo "HTTP bridge at $BASE / net/http, server CPU per request: $(median "${baseratio[@]}")"
fi
