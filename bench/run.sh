#!/usr/bin/env bash
# Gatehouse load test, side by side with a bare reverse proxy.
#
#   bench/run.sh            small responses under wrk: direct upstream, bare
#                           httputil.ReverseProxy, Gatehouse public path,
#                           Gatehouse authenticated path (warm session)
#   bench/run.sh bodies     1 GiB upload and 1 GiB download through Gatehouse
#                           with curl, checking every byte and the memory
#   bench/run.sh all        both
#
# Everything listens on 127.0.0.1 and runs for a bounded time. Needs go,
# curl, wrk and sha256sum. Knobs (environment): DURATION (10s), WARMUP (2s),
# CONNS (64), THREADS (2), ROUNDS (3, the median is reported), BODY_BYTES
# (1073741824).
set -euo pipefail

mode=${1:-load}
case "$mode" in load | bodies | all) ;; *)
	echo "usage: $0 [load|bodies|all]" >&2
	exit 2
	;;
esac
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BODY_BYTES=${BODY_BYTES:-1073741824}

cd "$(dirname "$0")/.."
for tool in go curl sha256sum; do
	command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [[ $mode != bodies ]] && ! command -v wrk >/dev/null; then
	echo "missing: wrk (apt-get install wrk)" >&2
	exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "building into $work/bin" >&2
go build -o "$work/bin/" ./cmd/gatehouse ./bench/upstream ./bench/bareproxy

# free_port prints a port nobody listens on.
next_port=$((20000 + RANDOM % 20000))
free_port() {
	while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null; do
		next_port=$((next_port + 1))
	done
	echo "$next_port"
	next_port=$((next_port + 1))
}

# wait_http URL waits until URL answers at all (any status).
wait_http() {
	for _ in $(seq 100); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "no answer from $1" >&2
	exit 1
}

upstream_port=$(free_port)
"$work/bin/upstream" -listen "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
upstream_pid=$!
pids+=("$upstream_pid")
upstream="http://127.0.0.1:$upstream_port"
wait_http "$upstream/"

# start_gatehouse NAME [LOG_LEVEL] starts a Gatehouse with its own SQLite
# database and sets gh_pid and gh_url.
start_gatehouse() {
	local name=$1 level=${2:-info} port
	port=$(free_port)
	GATEHOUSE_SERVER_LISTEN="127.0.0.1:$port" \
		GATEHOUSE_SERVER_PUBLIC_URL="http://127.0.0.1:$port" \
		GATEHOUSE_UPSTREAM_URL="$upstream" \
		GATEHOUSE_DATABASE_DRIVER=sqlite \
		GATEHOUSE_DATABASE_DSN="$work/$name.db" \
		GATEHOUSE_MAIL_DRIVER=log \
		GATEHOUSE_LOG_LEVEL="$level" \
		GATEHOUSE_ACCESS_RULES='[{"paths":["/public/**"],"policy":"public"}]' \
		"$work/bin/gatehouse" serve --config config.yaml >"$work/$name.out" 2>"$work/$name.log" &
	gh_pid=$!
	pids+=("$gh_pid")
	gh_url="http://127.0.0.1:$port"
	wait_http "$gh_url/.gatehouse/healthz"
}

# sign_in LOG URL signs in through the JSON API, reading the code the log
# mail driver prints, and prints the session cookie as NAME=VALUE.
sign_in() {
	local log=$1 url=$2 email=bench@example.com code="" cookie
	curl -sS -f -o /dev/null -X POST -H 'Content-Type: application/json' \
		-d "{\"email\":\"$email\"}" "$url/.gatehouse/api/otp/send"
	for _ in $(seq 50); do
		code=$(grep -E '^ {4}[0-9]{6}$' "$log" | tail -1 | tr -d ' ' || true)
		[[ -n $code ]] && break
		sleep 0.1
	done
	[[ -n $code ]] || { echo "no sign-in code in $log" >&2; exit 1; }
	cookie=$(curl -sS -f -D - -o /dev/null -X POST -H 'Content-Type: application/json' \
		-d "{\"email\":\"$email\",\"code\":\"$code\"}" "$url/.gatehouse/api/otp/verify" |
		tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | grep -E '^(__Host-)?gatehouse_session=' | head -1)
	[[ -n $cookie ]] || { echo "sign-in gave no session cookie" >&2; exit 1; }
	# The session must reach the upstream, not the sign-in page.
	[[ $(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$url/app") == 200 ]] ||
		{ echo "session cookie does not open /app" >&2; exit 1; }
	echo "$cookie"
}

kib() { awk '/^'"$2"':/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

# ticks prints the CPU time (user + system, in clock ticks) process PID
# has used.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_wrk NAME URL PID [HEADER] prints "rps p50_ms p99_ms cpu_us" for one
# run, where cpu_us is the CPU time process PID spent per request: unlike
# requests/s it hardly moves when other work shares the machine.
run_wrk() {
	local name=$1 url=$2 pid=$3 header=${4:-} out t0 t1
	local args=(-t"$THREADS" -c"$CONNS" --latency)
	[[ -n $header ]] && args+=(-H "$header")
	wrk "${args[@]}" -d"$WARMUP" "$url" >/dev/null
	t0=$(ticks "$pid")
	out=$(wrk "${args[@]}" -d"$DURATION" "$url")
	t1=$(ticks "$pid")
	echo "$out" >>"$work/wrk-$name.txt"
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "$name: wrk saw non-2xx answers:" >&2
		echo "$out" >&2
		exit 1
	fi
	awk -v ticks=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '
		function ms(v) {
			if (v ~ /us$/) return substr(v, 1, length(v)-2) / 1000
			if (v ~ /ms$/) return substr(v, 1, length(v)-2) + 0
			if (v ~ /s$/) return substr(v, 1, length(v)-1) * 1000
			return v
		}
		$1 == "50%" { p50 = ms($2) }
		$1 == "99%" { p99 = ms($2) }
		$1 == "Requests/sec:" { rps = $2 }
		$2 == "requests" && $3 == "in" { n = $1 }
		END { printf "%.0f %.3f %.3f %.1f\n", rps, p50, p99, ticks / hz * 1e6 / n }' <<<"$out"
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

load_test() {
	local bare_port cookie gh_rss_idle target
	bare_port=$(free_port)
	"$work/bin/bareproxy" -listen "127.0.0.1:$bare_port" -upstream "$upstream" 2>"$work/bareproxy.log" &
	pids+=($!)
	local bare_pid=$!
	wait_http "http://127.0.0.1:$bare_port/"
	# A second Gatehouse without the access log shows what the log costs.
	start_gatehouse nolog warn
	local nolog_url=$gh_url nolog_pid=$gh_pid nolog_cookie
	nolog_cookie=$(sign_in "$work/nolog.log" "$gh_url")
	start_gatehouse load
	cookie=$(sign_in "$work/load.log" "$gh_url")
	gh_rss_idle=$(kib "$gh_pid" VmRSS)

	declare -A url header pid
	pid=([direct]=$upstream_pid [bare]=$bare_pid [public]=$gh_pid [auth]=$gh_pid [nolog]=$nolog_pid)
	url[direct]="$upstream/"
	url[bare]="http://127.0.0.1:$bare_port/"
	url[public]="$gh_url/public/x"
	url[auth]="$gh_url/app"
	header[auth]="Cookie: $cookie"
	url[nolog]="$nolog_url/app"
	header[nolog]="Cookie: $nolog_cookie"
	local targets=(direct bare public auth nolog)
	for round in $(seq "$ROUNDS"); do
		for target in "${targets[@]}"; do
			echo "round $round/$ROUNDS: $target" >&2
			run_wrk "$target" "${url[$target]}" "${pid[$target]}" "${header[$target]:-}" >>"$work/res-$target"
		done
	done

	declare -A rps p50 p99 cpu
	for target in "${targets[@]}"; do
		rps[$target]=$(awk '{print $1}' "$work/res-$target" | median)
		p50[$target]=$(awk '{print $2}' "$work/res-$target" | median)
		p99[$target]=$(awk '{print $3}' "$work/res-$target" | median)
		cpu[$target]=$(awk '{print $4}' "$work/res-$target" | median)
	done
	local -A names=([direct]="direct upstream" [bare]="bare ReverseProxy" [public]="Gatehouse, public path" [auth]="Gatehouse, signed in" [nolog]="same, access log off")
	echo
	echo "wrk -t$THREADS -c$CONNS -d$DURATION, median of $ROUNDS rounds, $(nproc) CPUs, $(go env GOVERSION)"
	echo
	printf '| %-24s | %9s | %8s | %8s | %9s | %14s | %12s |\n' target "req/s" "p50 ms" "p99 ms" "vs bare" "p99 vs bare" "CPU µs/req"
	printf '|%s|%s|%s|%s|%s|%s|%s|\n' "--------------------------" "----------:" "---------:" "---------:" "----------:" "---------------:" "-------------:"
	for target in "${targets[@]}"; do
		printf '| %-24s | %9s | %8s | %8s | %8sx | %+11.3f ms | %12s |\n' "${names[$target]}" "${rps[$target]}" "${p50[$target]}" "${p99[$target]}" \
			"$(awk -v a="${rps[$target]}" -v b="${rps[bare]}" 'BEGIN {printf "%.2f", a/b}')" \
			"$(awk -v a="${p99[$target]}" -v b="${p99[bare]}" 'BEGIN {print a-b}')" "${cpu[$target]}"
	done
	echo
	echo "CPU µs/req: CPU time of the process that answers (the upstream for the direct row, else the proxy) per request."
	echo
	echo "Gatehouse memory: resident $(mib "$gh_rss_idle") MiB when idle after start, $(mib "$(kib "$gh_pid" VmRSS)") MiB after the load, peak (VmHWM) $(mib "$(kib "$gh_pid" VmHWM)") MiB"
	echo "Gatehouse access log: $(grep -c 'msg=request' "$work/load.log") lines"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b-a}'; }

# bodies_test streams BODY_BYTES up and down through a fresh, signed-in
# Gatehouse, checks the SHA-256 of what arrived, and reports the
# throughput and Gatehouse's resident memory peak (VmHWM).
bodies_test() {
	local cookie before want got t0 secs
	start_gatehouse bodies
	cookie=$(sign_in "$work/bodies.log" "$gh_url")
	echo "hashing $BODY_BYTES zero bytes for the expected SHA-256" >&2
	want=$(head -c "$BODY_BYTES" /dev/zero | sha256sum | cut -d' ' -f1)
	before=$(kib "$gh_pid" VmRSS)
	echo
	echo "$(mib $((BODY_BYTES / 1024))) MiB through Gatehouse (signed in), $(nproc) CPUs"
	echo
	printf '| %-28s | %7s | %9s | %15s |\n' transfer seconds "MiB/s" "RSS peak (MiB)"
	printf '|%s|%s|%s|%s|\n' "------------------------------" "--------:" "----------:" "----------------:"
	report() {
		printf '| %-28s | %7.1f | %9.0f | %15s |\n' "$1" "$2" "$(awk -v b="$BODY_BYTES" -v s="$2" 'BEGIN {print b/1048576/s}')" "$(mib "$(kib "$gh_pid" VmHWM)")"
	}

	echo "upload (chunked)" >&2
	t0=$(now)
	head -c "$BODY_BYTES" /dev/zero | curl -sS -f -T - -H "Cookie: $cookie" "$gh_url/sink" >"$work/sink.txt"
	secs=$(since "$t0")
	got=$(cat "$work/sink.txt")
	[[ $got == "$BODY_BYTES $want" ]] || { echo "upload arrived as: $got" >&2; exit 1; }
	report "upload 1 request, chunked" "$secs"

	for length in 1 0; do
		local label="download, chunked"
		[[ $length == 1 ]] && label="download, Content-Length"
		echo "$label" >&2
		t0=$(now)
		curl -sS -f -H "Cookie: $cookie" "$gh_url/big?bytes=$BODY_BYTES&length=$length" | sha256sum >"$work/down.txt"
		secs=$(since "$t0")
		got=$(cut -d' ' -f1 "$work/down.txt")
		[[ $got == "$want" ]] || { echo "download arrived with SHA-256 $got" >&2; exit 1; }
		report "$label" "$secs"
	done
	echo
	echo "Gatehouse resident memory before: $(mib "$before") MiB; peak during the transfers: $(mib "$(kib "$gh_pid" VmHWM)") MiB; growth $(mib $(($(kib "$gh_pid" VmHWM) - before))) MiB"
}

if [[ $mode == load || $mode == all ]]; then load_test; fi
if [[ $mode == bodies || $mode == all ]]; then bodies_test; fi
