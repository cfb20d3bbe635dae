#!/usr/bin/env bash
# Gatehouse load test, side by side with nginx and a bare reverse proxy.
#
#   bench/run.sh            small responses under wrk, every target in front
#                           of the same nginx upstream (`return 200`, 13
#                           bytes):
#                             direct upstream (nginx return 200)
#                             nginx proxy_pass to it (upstream keepalive)
#                             bare httputil.ReverseProxy (bench/bareproxy)
#                             bare fasthttp proxy (bench/bareproxy
#                               -engine fasthttp: the engine's floor)
#                             Gatehouse, public path
#                             Gatehouse, signed in (warm session cookie)
#                             same, Gatehouse's access log off
#                             nginx auth_request -> Gatehouse
#                               /.gatehouse/auth -> nginx upstream (the
#                               forward-auth deployment, signed in)
#                             nginx auth_request -> nginx "return 200"
#                               (the same config with an auth endpoint
#                               that costs nothing: the most any
#                               forward-auth server can reach)
#   bench/run.sh bodies     1 GiB upload and 1 GiB download through Gatehouse
#                           with curl (to bench/upstream), checking every
#                           byte and the memory
#   bench/run.sh all        both
#
# The figures are for relative comparison on one machine only: wrk, the
# upstream and the proxy under test all share the machine's CPUs (on a
# 2-CPU box wrk -t2 competes with the servers), so absolute requests/s say
# little about a real deployment; the ratios, latency differences and CPU
# time per request are what to read. Rounds are interleaved (each round runs
# every target once, in turn) and the median of ROUNDS is reported, so drift
# in the machine's load hits every target alike.
#
# nginx, as run here (two instances of the system's nginx binary, each with
# its own prefix and config under a temp dir; no system service, no files
# outside the temp dir, `daemon off`, pid and error_log in the temp dir):
#   - worker_processes auto (one per CPU) in both instances: the Go servers
#     use every CPU too (GOMAXPROCS = number of CPUs), so one worker would
#     handicap nginx. NGINX_WORKERS=1 changes it.
#   - the upstream has access_log off; the front (proxy_pass and
#     auth_request) logs every request, as nginx does by default, because
#     Gatehouse's access log stays on as well. nginx's default log is
#     unbuffered; here it is `combined buffer=64k flush=1s`, the usual
#     production setting (NGINX_ACCESS_LOG_OPTS, default "buffer=64k
#     flush=1s"; set it to "" for nginx's unbuffered default). Gatehouse
#     writes one line per request unbuffered.
#   - upstream keepalive 64 with proxy_http_version 1.1 and Connection "",
#     to the app and (forward auth) to Gatehouse; keepalive_requests raised
#     so nginx does not close a connection every 1000 requests, which the Go
#     servers never do.
#   - the forward-auth server block includes examples/nginx/snippets/ as
#     shipped (gatehouse-location.conf, gatehouse-authrequest.conf) and the
#     $gatehouse_app_cookie map from examples/nginx/gatehouse.conf, so it
#     measures the documented config; only the app's proxy_pass goes to the
#     keepalive upstream. Before the load, curl checks that without the
#     cookie nginx answers 401 or 302, that with it the answer is 200 and
#     the upstream saw X-Auth-Request-Email from Gatehouse (not a forged
#     one) and no session cookie.
#
# Everything listens on 127.0.0.1 and runs for a bounded time. Needs go,
# curl, wrk, nginx (with the auth_request module, as Debian's) and
# sha256sum and cmp. Knobs (environment): DURATION (10s), WARMUP (2s), CONNS (64),
# THREADS (2), ROUNDS (3, the median is reported), BODY_BYTES (1073741824),
# NGINX_WORKERS (auto), NGINX_ACCESS_LOG_OPTS ("buffer=64k flush=1s"),
# BENCH_GATEHOUSE_BIN (a prebuilt gatehouse binary instead of building
# ./cmd/gatehouse), KEEP_WORK (set: keep the temp dir with the logs,
# nginx configs and wrk output), PERF (a target name, e.g. auth: after the
# measured rounds, one more run of that target under `perf record`, and the
# symbols where its processes spent their CPU time).
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
NGINX_WORKERS=${NGINX_WORKERS:-auto}
NGINX_ACCESS_LOG_OPTS=${NGINX_ACCESS_LOG_OPTS-buffer=64k flush=1s}

cd "$(dirname "$0")/.."
for tool in go curl sha256sum cmp; do
	command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [[ $mode != bodies ]]; then
	for tool in wrk nginx; do
		command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install $tool)" >&2; exit 1; }
	done
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -n ${KEEP_WORK:-} ]]; then echo "kept $work (logs, configs, wrk output)" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building into $work/bin" >&2
if [[ -n ${BENCH_GATEHOUSE_BIN:-} ]]; then
	go build -o "$work/bin/" ./bench/upstream ./bench/bareproxy
	cp "$BENCH_GATEHOUSE_BIN" "$work/bin/gatehouse"
else
	go build -o "$work/bin/" ./cmd/gatehouse ./bench/upstream ./bench/bareproxy
fi

# free_port VAR sets VAR to a port no socket uses and no earlier call
# handed out (not in a $(...) subshell, which would lose next_port). The
# ports start below the kernel's ephemeral range, so other work's outgoing
# connections do not take them between the check and the bind.
ephemeral_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
next_port=$((10000 + RANDOM % (ephemeral_low > 12000 ? ephemeral_low - 12000 : 20000)))
free_port() {
	while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null ||
		[[ -n $(ss -Htan "( sport = :$next_port )" 2>/dev/null) ]]; do
		next_port=$((next_port + 1))
	done
	printf -v "$1" %s "$next_port"
	next_port=$((next_port + 1))
}

# wait_http URL [LOG] waits until URL answers at all (any status); if it
# never does, it prints LOG (the server's stderr) and fails the run.
wait_http() {
	for _ in $(seq 100); do
		if curl -s -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "no answer from $1" >&2
	[[ -n ${2:-} && -f $2 ]] && tail -20 "$2" >&2
	exit 1
}

die() {
	echo "$*" >&2
	exit 1
}

# start_upstream starts bench/upstream (the Go app with /big and /sink the
# bodies test needs) and sets upstream.
start_upstream() {
	local port
	free_port port
	"$work/bin/upstream" -listen "127.0.0.1:$port" 2>"$work/upstream.log" &
	pids+=($!)
	upstream="http://127.0.0.1:$port"
	wait_http "$upstream/" "$work/upstream.log"
}

# start_nginx NAME writes nothing itself: it starts nginx on the config in
# $work/nginx/NAME/nginx.conf (prefix $work/nginx/NAME/), after `nginx -t`,
# and sets ngx_pid to the master's pid. The config must say `daemon off`.
start_nginx() {
	local dir=$work/nginx/$1
	mkdir -p "$dir/tmp"
	nginx -t -q -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" ||
		die "nginx $1: config test failed: $(cat "$dir/error.log" 2>/dev/null)"
	nginx -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" 2>>"$dir/error.log" &
	ngx_pid=$!
	pids+=("$ngx_pid")
}

# nginx_main NAME prints the main-context and http-context lines both
# nginx instances share.
nginx_main() {
	local dir=$work/nginx/$1
	# As root the master starts workers as "nobody", which cannot enter the
	# temp dir; keep them as the invoking user.
	[[ $EUID == 0 ]] && echo "user root root;"
	cat <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_http_common() {
	local dir=$work/nginx/$1
	cat <<EOF
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
EOF
}

# nginx_children PID prints PID and its children (nginx's master and
# workers), whose CPU time a row counts.
nginx_procs() { echo "$1" $(ps -o pid= --ppid "$1"); }

# start_nginx_upstream starts the nginx that answers 200 with 13 bytes on
# every path (access log off) and sets nginx_up (URL) and nginx_up_port.
# X-Seen-Email and X-Seen-Session echo what the proxies passed on, for the
# forward-auth check.
start_nginx_upstream() {
	local dir=$work/nginx/up
	free_port nginx_up_port
	mkdir -p "$dir"
	{
		nginx_main up
		echo "http {"
		nginx_http_common up
		cat <<EOF
    access_log off;
    server {
        listen 127.0.0.1:$nginx_up_port;
        # The auth endpoint of the forward-auth floor: allows everything,
        # with an empty answer (what Gatehouse's 200 is too).
        location = /.gatehouse/auth {
            return 200;
        }
        location / {
            default_type text/plain;
            add_header X-Seen-Email \$http_x_auth_request_email;
            add_header X-Seen-Session \$cookie_gatehouse_session;
            return 200 "hello, world\n";
        }
    }
}
EOF
	} >"$dir/nginx.conf"
	start_nginx up
	nginx_up_pid=$ngx_pid
	nginx_up="http://127.0.0.1:$nginx_up_port"
	wait_http "$nginx_up/" "$work/nginx/up/error.log"
}

# app_proxy prints the lines that pass a request on to the app over the
# keepalive upstream, the same in every front server block.
app_proxy() {
	cat <<'EOF'
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
EOF
}

# fa_server PORT LOCATION_DIR prints a forward-auth server block: the auth
# location from LOCATION_DIR/gatehouse-location.conf, the app behind
# snippets/gatehouse-authrequest.conf.
fa_server() {
	cat <<EOF
    server {
        listen 127.0.0.1:$1;
        include $2/gatehouse-location.conf;
        location / {
            include snippets/gatehouse-authrequest.conf;
$(app_proxy)
        }
    }
EOF
}

# start_nginx_front GATEHOUSE_PORT starts the nginx in front: a
# proxy_pass server block (nginx_px) and the forward-auth one (nginx_fa)
# built from examples/nginx/.
start_nginx_front() {
	local gh_port=$1 dir=$work/nginx/front px_port fa_port floor_port
	free_port px_port
	free_port fa_port
	free_port floor_port
	mkdir -p "$dir"
	cp -r examples/nginx/snippets "$dir/snippets"
	# The floor asks the upstream nginx instead of Gatehouse.
	mkdir -p "$dir/snippets-floor"
	sed 's|proxy_pass http://gatehouse;|proxy_pass http://app;|' examples/nginx/snippets/gatehouse-location.conf >"$dir/snippets-floor/gatehouse-location.conf"
	{
		nginx_main front
		echo "http {"
		nginx_http_common front
		cat <<EOF
    access_log $dir/access.log combined $NGINX_ACCESS_LOG_OPTS;
    upstream app {
        server 127.0.0.1:$nginx_up_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    upstream gatehouse {
        server 127.0.0.1:$gh_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
EOF
		sed -n '/^map /,/^}/p' examples/nginx/gatehouse.conf
		cat <<EOF
    # nginx proxy_pass, nothing else.
    server {
        listen 127.0.0.1:$px_port;
        location / {
$(app_proxy)
        }
    }
EOF
		# Forward auth, as examples/nginx/gatehouse.conf's app server block.
		fa_server "$fa_port" snippets
		# The same forward auth against an auth endpoint that costs nothing
		# (the upstream nginx's "return 200"): the most any forward-auth
		# server can reach behind this nginx.
		fa_server "$floor_port" snippets-floor
		cat <<EOF
}
EOF
	} >"$dir/nginx.conf"
	grep -q 'gatehouse_app_cookie' "$dir/nginx.conf" || die "no \$gatehouse_app_cookie map in examples/nginx/gatehouse.conf"
	start_nginx front
	nginx_front_pid=$ngx_pid
	nginx_px="http://127.0.0.1:$px_port"
	nginx_fa="http://127.0.0.1:$fa_port"
	nginx_floor="http://127.0.0.1:$floor_port"
	wait_http "$nginx_px/" "$work/nginx/front/error.log"
	wait_http "$nginx_fa/" "$work/nginx/front/error.log"
	wait_http "$nginx_floor/" "$work/nginx/front/error.log"
}

# start_gatehouse NAME UPSTREAM [LOG_LEVEL] starts a Gatehouse with its own
# SQLite database, nginx on 127.0.0.1 as trusted proxy, and sets gh_pid,
# gh_port and gh_url.
start_gatehouse() {
	local name=$1 up=$2 level=${3:-info}
	free_port gh_port
	GATEHOUSE_SERVER_LISTEN="127.0.0.1:$gh_port" \
		GATEHOUSE_SERVER_PUBLIC_URL="http://127.0.0.1:$gh_port" \
		GATEHOUSE_SERVER_TRUSTED_PROXIES=127.0.0.1/32 \
		GATEHOUSE_UPSTREAM_URL="$up" \
		GATEHOUSE_DATABASE_DRIVER=sqlite \
		GATEHOUSE_DATABASE_DSN="$work/$name.db" \
		GATEHOUSE_MAIL_DRIVER=log \
		GATEHOUSE_LOG_LEVEL="$level" \
		GATEHOUSE_ACCESS_RULES='[{"paths":["/public/**"],"policy":"public"}]' \
		"$work/bin/gatehouse" serve --config config.yaml >"$work/$name.out" 2>"$work/$name.log" &
	gh_pid=$!
	pids+=("$gh_pid")
	gh_url="http://127.0.0.1:$gh_port"
	wait_http "$gh_url/.gatehouse/healthz" "$work/$name.log"
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

# check_forward_auth URL COOKIE fails the run unless nginx's auth_request
# really asks Gatehouse: no cookie (even with a forged identity header) is
# refused, the cookie passes, and the upstream sees Gatehouse's identity
# and not the session cookie.
check_forward_auth() {
	local url=$1 cookie=$2 code hdrs seen
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url/app")
	[[ $code == 401 || $code == 302 ]] || die "forward auth: no cookie gave $code, want 401 or 302"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: text/html' "$url/app")
	[[ $code == 401 || $code == 302 ]] || die "forward auth: no cookie (browser) gave $code, want 401 or 302"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Auth-Request-Email: forged@example.com' "$url/app")
	[[ $code == 401 || $code == 302 ]] || die "forward auth: forged identity without cookie gave $code"
	hdrs=$(curl -s -o /dev/null -D - -H "Cookie: $cookie" -H 'X-Auth-Request-Email: forged@example.com' "$url/app" | tr -d '\r')
	code=$(awk 'NR == 1 {print $2}' <<<"$hdrs")
	[[ $code == 200 ]] || die "forward auth: with the session cookie nginx answered $code, want 200"
	seen=$(sed -n 's/^[Xx]-[Ss]een-[Ee]mail: //p' <<<"$hdrs")
	[[ $seen == bench@example.com ]] || die "forward auth: upstream saw X-Auth-Request-Email '$seen', want bench@example.com"
	grep -qi '^x-seen-session:' <<<"$hdrs" && die "forward auth: upstream saw the session cookie"
	echo "forward auth checked: 401/302 without the cookie, 200 with it, upstream saw $seen" >&2
}

kib() { awk '/^'"$2"':/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

# ticks PID... prints the CPU time (user + system, in clock ticks) the
# processes have used.
ticks() {
	local t=0 p
	for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
	echo "$t"
}

# run_wrk NAME URL "PIDS" "SUBPIDS" [HEADER] prints "rps p50_ms p99_ms cpu_us
# sub_cpu_us rss_kib" for one run, where cpu_us is the CPU time processes
# PIDS spent per request (unlike requests/s it hardly moves when other work
# shares the machine), sub_cpu_us the same for SUBPIDS (a part of them),
# and rss_kib the highest VmRSS of Gatehouse ($gh_pid) sampled during it.
run_wrk() {
	local name=$1 url=$2 procs=$3 sub=$4 header=${5:-} out t0 t1 s0 s1 wpid rss=0 r
	local args=(-t"$THREADS" -c"$CONNS" --latency)
	[[ -n $header ]] && args+=(-H "$header")
	wrk "${args[@]}" -d"$WARMUP" "$url" >/dev/null
	# shellcheck disable=SC2086
	t0=$(ticks $procs)
	# shellcheck disable=SC2086
	s0=$(ticks $sub)
	wrk "${args[@]}" -d"$DURATION" "$url" >"$work/wrk.out" &
	wpid=$!
	while kill -0 "$wpid" 2>/dev/null; do
		r=$(kib "$gh_pid" VmRSS)
		((r > rss)) && rss=$r
		sleep 0.2
	done
	wait "$wpid" || die "$name: wrk failed: $(cat "$work/wrk.out")"
	# shellcheck disable=SC2086
	t1=$(ticks $procs)
	# shellcheck disable=SC2086
	s1=$(ticks $sub)
	out=$(cat "$work/wrk.out")
	echo "$out" >>"$work/wrk-$name.txt"
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "$name: wrk saw non-2xx answers:" >&2
		echo "$out" >&2
		exit 1
	fi
	awk -v ticks=$((t1 - t0)) -v sticks=$((s1 - s0)) -v rss="$rss" -v hz="$(getconf CLK_TCK)" '
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
		END {
			if (n == 0) { print "wrk counted no requests" > "/dev/stderr"; exit 1 }
			printf "%.0f %.3f %.3f %.1f %.1f %d\n", rps, p50, p99, ticks / hz * 1e6 / n, sticks / hz * 1e6 / n, rss
		}' <<<"$out"
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
col() { awk -v c="$2" '{print $c}' "$work/res-$1" | median; }

load_test() {
	local bare_port cookie gh_rss_idle target nolog_url nolog_pid nolog_cookie
	start_nginx_upstream
	free_port bare_port
	"$work/bin/bareproxy" -listen "127.0.0.1:$bare_port" -upstream "$nginx_up" 2>"$work/bareproxy.log" &
	pids+=($!)
	local bare_pid=$!
	wait_http "http://127.0.0.1:$bare_port/" "$work/bareproxy.log"
	local fast_port
	free_port fast_port
	"$work/bin/bareproxy" -engine fasthttp -listen "127.0.0.1:$fast_port" -upstream "$nginx_up" 2>"$work/fastproxy.log" &
	pids+=($!)
	local fast_pid=$!
	wait_http "http://127.0.0.1:$fast_port/" "$work/fastproxy.log"
	# A second Gatehouse without the access log shows what the log costs.
	start_gatehouse nolog "$nginx_up" warn
	nolog_url=$gh_url nolog_pid=$gh_pid
	nolog_cookie=$(sign_in "$work/nolog.log" "$gh_url")
	# The Gatehouse for the public, signed-in and forward-auth rows.
	start_gatehouse load "$nginx_up"
	cookie=$(sign_in "$work/load.log" "$gh_url")
	start_nginx_front "$gh_port"
	check_forward_auth "$nginx_fa" "$cookie"
	gh_rss_idle=$(kib "$gh_pid" VmRSS)

	local up_procs front_procs
	up_procs=$(nginx_procs "$nginx_up_pid")
	front_procs=$(nginx_procs "$nginx_front_pid")
	declare -A url header procs
	procs=([direct]=$up_procs [nginx]=$front_procs [bare]=$bare_pid [fast]=$fast_pid [public]=$gh_pid [auth]=$gh_pid [nolog]=$nolog_pid [fa]="$front_procs $gh_pid" [floor]=$front_procs)
	url[direct]="$nginx_up/"
	url[nginx]="$nginx_px/"
	url[bare]="http://127.0.0.1:$bare_port/"
	url[fast]="http://127.0.0.1:$fast_port/"
	url[public]="$gh_url/public/x"
	url[auth]="$gh_url/app"
	header[auth]="Cookie: $cookie"
	url[nolog]="$nolog_url/app"
	header[nolog]="Cookie: $nolog_cookie"
	url[fa]="$nginx_fa/app"
	url[floor]="$nginx_floor/app"
	header[fa]="Cookie: $cookie"
	local targets=(direct nginx bare fast public auth nolog fa floor)
	for target in "${targets[@]}"; do
		[[ $(curl -s -o /dev/null -w '%{http_code}' ${header[$target]:+-H "${header[$target]}"} "${url[$target]}") == 200 ]] ||
			die "$target: ${url[$target]} does not answer 200"
	done
	for round in $(seq "$ROUNDS"); do
		for target in "${targets[@]}"; do
			echo "round $round/$ROUNDS: $target" >&2
			run_wrk "$target" "${url[$target]}" "${procs[$target]}" "$gh_pid" "${header[$target]:-}" >>"$work/res-$target"
		done
	done

	if [[ -n ${PERF:-} ]]; then
		# One extra, unmeasured run of target $PERF under perf, for where
		# its CPU time goes (the measured rounds above ran without it).
		[[ -n ${url[$PERF]:-} ]] || die "PERF=$PERF: no such target (${targets[*]})"
		command -v perf >/dev/null || die "PERF is set but perf is not installed"
		local perf_pids=${procs[$PERF]}
		wrk -t"$THREADS" -c"$CONNS" ${header[$PERF]:+-H "${header[$PERF]}"} -d"$DURATION" "${url[$PERF]}" >/dev/null &
		local perf_wrk=$!
		perf record -q -F 999 -g -o "$work/perf.data" -p "${perf_pids// /,}" -- sleep "${DURATION%s}" 2>/dev/null || true
		wait "$perf_wrk" || true
		perf report -i "$work/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.7 -g none 2>/dev/null |
			grep -v '^$' | head -60 >"$work/perf-$PERF.txt" || true
		echo "perf, target $PERF (self time by symbol):" >&2
		cat "$work/perf-$PERF.txt" >&2
	fi

	declare -A rps p50 p99 cpu
	for target in "${targets[@]}"; do
		rps[$target]=$(col "$target" 1)
		p50[$target]=$(col "$target" 2)
		p99[$target]=$(col "$target" 3)
		cpu[$target]=$(col "$target" 4)
	done
	local fa_gh_cpu rss_load
	fa_gh_cpu=$(col fa 5)
	rss_load=$(cat "$work/res-public" "$work/res-auth" "$work/res-fa" | awk '{print $6}' | sort -g | tail -1)
	local -A names=(
		[direct]="direct upstream (nginx)"
		[nginx]="nginx proxy_pass"
		[bare]="bare ReverseProxy"
		[fast]="bare fasthttp proxy"
		[public]="Gatehouse, public path"
		[auth]="Gatehouse, signed in"
		[nolog]="same, access log off"
		[fa]="nginx auth_request + Gatehouse"
		[floor]="nginx auth_request, no-op auth"
	)
	echo
	echo "wrk -t$THREADS -c$CONNS -d$DURATION, median of $ROUNDS interleaved rounds, $(nproc) CPUs shared by wrk and the servers, $(go env GOVERSION), $(nginx -v 2>&1 | sed 's/.*: //'), nginx worker_processes $NGINX_WORKERS"
	echo
	printf '| %-31s | %9s | %8s | %8s | %9s | %14s | %8s | %10s |\n' target "req/s" "p50 ms" "p99 ms" "vs nginx" "p99 vs nginx" "vs bare" "CPU µs/req"
	printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "---------------------------------" "----------:" "---------:" "---------:" "----------:" "---------------:" "---------:" "-----------:"
	for target in "${targets[@]}"; do
		printf '| %-31s | %9s | %8s | %8s | %8sx | %+11.3f ms | %7sx | %10s |\n' "${names[$target]}" "${rps[$target]}" "${p50[$target]}" "${p99[$target]}" \
			"$(awk -v a="${rps[$target]}" -v b="${rps[nginx]}" 'BEGIN {printf "%.2f", a/b}')" \
			"$(awk -v a="${p99[$target]}" -v b="${p99[nginx]}" 'BEGIN {print a-b}')" \
			"$(awk -v a="${rps[$target]}" -v b="${rps[bare]}" 'BEGIN {printf "%.2f", a/b}')" "${cpu[$target]}"
	done
	echo
	echo "vs nginx / p99 vs nginx: req/s ratio and p99 difference to the nginx proxy_pass row; vs bare: req/s ratio to the bare ReverseProxy."
	echo "CPU µs/req: CPU time per request of what answers: the upstream nginx (master and workers) for the direct row, the front nginx for proxy_pass,"
	echo "the proxy process otherwise; for auth_request the front nginx plus Gatehouse, of which Gatehouse ${fa_gh_cpu} µs."
	echo
	echo "Gatehouse memory: resident $(mib "$gh_rss_idle") MiB idle after start, $(mib "$rss_load") MiB under load (highest VmRSS sampled during its runs), $(mib "$(kib "$gh_pid" VmRSS)") MiB after the load, peak (VmHWM) $(mib "$(kib "$gh_pid" VmHWM)") MiB"
	echo "Gatehouse access log: $(grep -c 'msg=request' "$work/load.log") lines"
	# Connections to Gatehouse closed in the last minute (TIME-WAIT lasts
	# 60 s): nginx reuses its keepalive connections to Gatehouse only while
	# Gatehouse's answers let it.
	echo "TCP connections to Gatehouse closed in the last 60 s: $(ss -Htan state time-wait "( dport = :$gh_port or sport = :$gh_port )" 2>/dev/null | wc -l)"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b-a}'; }

# bodies_test streams BODY_BYTES up and down through a fresh, signed-in
# Gatehouse, checks the SHA-256 of what arrived, and reports the
# throughput and Gatehouse's resident memory peak (VmHWM).
bodies_test() {
	local cookie before want got t0 secs
	start_upstream
	start_gatehouse bodies "$upstream"
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
		# The body is zeros: cmp against /dev/zero checks every byte and,
		# by where the download ends, its length, at memory speed (sha256sum
		# alone needs about 7 s per GiB on a machine without SHA
		# instructions, which would be all this row measured).
		got=$(curl -sS -f -H "Cookie: $cookie" "$gh_url/big?bytes=$BODY_BYTES&length=$length" | cmp - /dev/zero 2>&1 || true)
		secs=$(since "$t0")
		[[ $got == "cmp: EOF on - after byte $BODY_BYTES"* ]] || { echo "download did not arrive as $BODY_BYTES zero bytes: $got" >&2; exit 1; }
		report "$label" "$secs"
	done
	echo
	echo "Gatehouse resident memory before: $(mib "$before") MiB; peak during the transfers: $(mib "$(kib "$gh_pid" VmHWM)") MiB; growth $(mib $(($(kib "$gh_pid" VmHWM) - before))) MiB"
}

if [[ $mode == load || $mode == all ]]; then load_test; fi
if [[ $mode == bodies || $mode == all ]]; then bodies_test; fi
