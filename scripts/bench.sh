#!/usr/bin/env bash
# Measures what docs/performance.md reports for the wrapper, every row of a
# table side by side in one run:
#
#   startup     `true` vs `sacred run -u/-F DIR -- true`, `sacred --version`,
#               an empty Go binary, `sacred log metric` per call inside a run,
#               and the time from launching the wrapper to the child's start
#   instr       instruction counts under callgrind (repeatable whatever the
#               load): the same commands, the part before the child starts,
#               and what each heavy dependency's package initialisers cost
#   python      issue 8 item 37: a Python program printing 200 MB of 100-byte
#               lines through tee and through sacred (pipe and pty capture,
#               with and without --unbuffered)
#   throughput  the child writes BYTES of zeros: sacred against cat
#   rss         the wrapper's peak RSS for outputs of SIZES
#
#   scripts/bench.sh                      # all of them
#   scripts/bench.sh startup instr        # some
#   RUNS=100 TRIES=5 scripts/bench.sh startup
#   SACRED_BENCH_BASE=/path/to/other/sacred scripts/bench.sh startup instr
#                                         # another build in the same tables
#
# hyperfine (apt-get install -y hyperfine) times the commands when present,
# else plain loops do; valgrind gives the instruction counts. Targets (issue 8
# item 38): `sacred run -F DIR -- true` within 4 ms of `true`, `sacred log
# metric` under 2 ms a call; throughput >= 90% of cat; RSS < 40 MiB and flat.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
RUNS=${RUNS:-60}          # startup samples
TRIES=${TRIES:-3}         # samples of the long measurements (best is kept)
SIZES=${SIZES:-"1G 4G"}   # outputs for the RSS measurement
BYTES=${BYTES:-1G}        # output for the throughput measurement
LINES=${LINES:-2000000}   # 100-byte lines the Python program prints
sections=${*:-startup instr python throughput rss}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sacred-bench.XXXXXX")
trap 'rm -rf "$tmp" "$root"/_probe.*' EXIT
# The wrapper's spool and temporary directories go to TMPDIR; keep them with
# the rest.
export TMPDIR=$tmp

# The binary as `make build` makes it, and an unstripped one for callgrind's
# function names.
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/sacred" ./cmd/sacred
CGO_ENABLED=0 go build -trimpath -o "$tmp/sacred-sym" ./cmd/sacred
sacred=$tmp/sacred
base=${SACRED_BENCH_BASE:-}

# An empty Go program: what any Go binary costs to start.
mkdir -p "$tmp/emptygo"
printf 'package main\n\nfunc main() {}\n' >"$tmp/emptygo/main.go"
printf 'module emptygo\n\ngo 1.21\n' >"$tmp/emptygo/go.mod"
(cd "$tmp/emptygo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/empty-go" .)

work=$tmp/work # a directory outside any git repository
mkdir -p "$work"

now_ns() { date +%s%N; }

have() { command -v "$1" >/dev/null; }

# to_bytes 1G -> 1073741824 (head -c suffixes: K, M, G are powers of 1024)
to_bytes() {
	local n=${1%[KMG]} s=${1##*[0-9]}
	case $s in
	K) echo $((n << 10)) ;; M) echo $((n << 20)) ;; G) echo $((n << 30)) ;; *) echo "$n" ;;
	esac
}

# best_ns CMD: the fastest of TRIES runs of CMD (a shell snippet), in ns.
best_ns() {
	local best=0 t0 t1 d
	for _ in $(seq "$TRIES"); do
		t0=$(now_ns)
		bash -c "$1"
		t1=$(now_ns)
		d=$((t1 - t0))
		if [ "$best" -eq 0 ] || [ "$d" -lt "$best" ]; then best=$d; fi
	done
	echo "$best"
}

# median: the median of the numbers on stdin.
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# time_cmds NAME=CMD...: mean and spread of each command's wall time.
time_cmds() {
	if have hyperfine; then
		local args=()
		for nc in "$@"; do args+=(--command-name "${nc%%=*}" "${nc#*=}"); done
		hyperfine -N --warmup 5 --runs "$RUNS" --prepare "rm -rf $work/runs" "${args[@]}" 2>&1 |
			grep -E '^Benchmark|Time \(mean|Range'
		return
	fi
	local nc t0 t1
	for nc in "$@"; do
		t0=$(now_ns)
		for _ in $(seq "$RUNS"); do rm -rf "$work/runs"; ${nc#*=} >/dev/null 2>&1; done
		t1=$(now_ns)
		printf '%-34s %8.2f ms per run (mean of %d, loop)\n' "${nc%%=*}" "$(awk -v d=$((t1 - t0)) -v n="$RUNS" 'BEGIN { print d / n / 1e6 }')" "$RUNS"
	done
}

# cpu_rows NAME=CMD...: the median task-clock and page faults of each
# command, the commands taking turns, so that the machine's load weighs on
# each alike (the children's are included: `true` is the reference).
cpu_rows() {
	local nc i
	for i in $(seq "$RUNS"); do
		for nc in "$@"; do
			rm -rf "$work/runs"
			# shellcheck disable=SC2086
			perf stat -x, -e task-clock,page-faults ${nc#*=} 2>&1 >/dev/null |
				awk -F, -v n="${nc%%=*}" '$3 == "task-clock" || $3 == "page-faults" { print n "\t" $3 "\t" $1 }'
		done
	done | awk -F'\t' '
		{ v[$1, $2, ++c[$1, $2]] = $3; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
		function med(name, ev,   k, m, a, i, j, t) {
			m = c[name, ev]
			for (i = 1; i <= m; i++) a[i] = v[name, ev, i]
			for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return a[int((m + 1) / 2)]
		}
		END { for (k = 1; k <= n; k++) printf "%-34s %7.2f ms CPU  %6d page faults\n", order[k], med(order[k], "task-clock"), med(order[k], "page-faults") }'
}

# to_child PREFIX...: the median time from launching PREFIX to the start of
# the command it runs (date, which prints the clock), in ms.
to_child() {
	local t0 t1
	for _ in $(seq "$RUNS"); do
		rm -rf "$work/runs"
		t0=$(now_ns)
		t1=$("$@" date +%s%N 2>/dev/null | tail -1)
		echo $((t1 - t0))
	done | median | awk '{ printf "%.2f", $1 / 1e6 }'
}

machine() {
	echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)"
	echo "   sacred: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(du -h "$sacred" | cut -f1) stripped${base:+; base: $base}"
}

startup() {
	echo
	echo "== startup: wall time, $RUNS runs each after 5 warm-ups, one command after the other; in $work (no git repository)"
	local cmds=("true=true" "empty Go binary=$tmp/empty-go" "sacred --version=$sacred --version"
		"sacred run -u -- true=$sacred run -u -- true" "sacred run -F DIR -- true=$sacred run -F $work/runs -- true")
	if [ -n "$base" ]; then
		cmds+=("base --version=$base --version" "base run -u -- true=$base run -u -- true"
			"base run -F DIR -- true=$base run -F $work/runs -- true")
	fi
	(cd "$work" && time_cmds "${cmds[@]}")

	if have perf; then
		echo
		echo "== CPU time (task-clock) and page faults, the commands interleaved round by round (perf stat, median of $RUNS)"
		(cd "$work" && cpu_rows "${cmds[@]}")
	fi

	echo
	echo "== startup in a git repository (this checkout: the repository is read before the child starts)"
	time_cmds "sacred run -F DIR -- true=$sacred run -F $work/runs -- true" ${base:+"base run -F DIR -- true=$base run -F $work/runs -- true"}

	echo
	echo "== from launching the wrapper to the child's start (median of $RUNS; the child is date; env is the reference)"
	(
		cd "$work"
		printf '%-34s %6s ms\n' "env date" "$(to_child env)"
		printf '%-34s %6s ms\n' "sacred run -u -- date" "$(to_child "$sacred" run -u --)"
		printf '%-34s %6s ms\n' "sacred run -F DIR -- date" "$(to_child "$sacred" run -F "$work/runs" --)"
		if [ -n "$base" ]; then
			printf '%-34s %6s ms\n' "base run -u -- date" "$(to_child "$base" run -u --)"
			printf '%-34s %6s ms\n' "base run -F DIR -- date" "$(to_child "$base" run -F "$work/runs" --)"
		fi
	)

	echo
	echo "== sacred log metric, one process per call, inside a run (sacred run -u)"
	local logcmds=("true=true" "sacred log metric=$sacred log metric loss 0.5")
	[ -n "$base" ] && logcmds+=("base log metric=$base log metric loss 0.5")
	# time_cmds runs inside the run, so that the calls find its socket.
	local quoted
	quoted=$(printf '%q ' "${logcmds[@]}")
	(cd "$work" && "$sacred" run -u -- bash -c "$(declare -f time_cmds have now_ns); RUNS=$RUNS work=$work; time_cmds $quoted")
}

# instructions OUT CMD...: instructions of one run of CMD under callgrind,
# in all and before the first child is started; the smallest of 3 runs.
# Callgrind often trips over the child's SIGCHLD (an assertion in its
# signal tracking): such a run still tells the part before the child, and
# the run is tried again for the total (up to 20 times; "?" when none
# finished).
instructions() {
	local out=$1 best_all="" best_pre="" ok=0 all pre
	shift
	for _ in $(seq 20); do
		rm -rf "$work/runs" "$out" "$out".*
		all=$(cd "$work" && GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --dump-before=syscall.forkExec \
			--callgrind-out-file="$out" "$@" 2>&1 >/dev/null | awk '/Collected/ { print $NF }')
		pre=$all
		[ -f "$out.1" ] && pre=$(awk '/^summary:/ { print $2 }' "$out.1")
		if [ -n "$pre" ] && { [ -z "$best_pre" ] || [ "$pre" -lt "$best_pre" ]; }; then best_pre=$pre; fi
		[ -n "$all" ] || continue
		if [ -z "$best_all" ] || [ "$all" -lt "$best_all" ]; then best_all=$all; fi
		ok=$((ok + 1))
		[ "$ok" -ge 3 ] && break
	done
	rm -f "$out" "$out".*
	echo "${best_all:-?} ${best_pre:-?}"
}

instr_row() { # NAME CMD...
	local name=$1 r
	shift
	r=$(instructions "$tmp/cg.out" "$@")
	awk -v n="$name" -v a="${r% *}" -v p="${r#* }" 'function m(x) { return x == "?" ? "     ?" : sprintf("%6.2f", x / 1e6) }
		BEGIN { printf "%-34s %s M in all, %s M before the child\n", n, m(a), m(p) }'
}

instr() {
	echo
	if ! have valgrind; then
		echo "== instructions: valgrind is not installed (apt-get install -y valgrind): skipped"
		return
	fi
	echo "== instructions (callgrind, GODEBUG=asyncpreemptoff=1, smallest of 3; the unstripped binary, whose"
	echo "   symbols tell where the child is started: syscall.forkExec)"
	local sym=$tmp/sacred-sym
	instr_row "true" true
	instr_row "empty Go binary" "$tmp/empty-go"
	instr_row "sacred --version" "$sym" --version
	instr_row "sacred run -u -- true" "$sym" run -u -- true
	instr_row "sacred run -F DIR -- true" "$sym" run -F "$work/runs" -- true
	if [ -n "$base" ]; then
		echo "(base: a stripped binary shows its total twice)"
		instr_row "base --version" "$base" --version
		instr_row "base run -u -- true" "$base" run -u -- true
		instr_row "base run -F DIR -- true" "$base" run -F "$work/runs" -- true
	fi
	# sacred log metric needs a run: measure it inside one.
	local r
	r=$(cd "$work" && "$sacred" run -u -- bash -c "$(declare -f instructions); work=$work; instructions $tmp/cg.log $sym log metric loss 0.5")
	awk -v a="${r% *}" 'BEGIN { printf "%-34s %6.2f M\n", "sacred log metric (in a run)", a / 1e6 }'

	echo
	echo "== package initialisers: a program that only imports the package, less the empty program"
	local empty probe pkg dir
	empty=$(instructions "$tmp/cg.out" "$tmp/empty-go")
	empty=${empty% *}
	for pkg in \
		go.mongodb.org/mongo-driver/v2/mongo \
		github.com/aws/aws-sdk-go-v2/config \
		github.com/aws/aws-sdk-go-v2/service/s3 \
		cloud.google.com/go/auth/credentials \
		github.com/jackc/pgx/v5/stdlib \
		github.com/go-sql-driver/mysql \
		modernc.org/sqlite \
		gopkg.in/yaml.v3 \
		github.com/spf13/cobra \
		html/template \
		github.com/sacred-go/sacred/internal/collect \
		github.com/sacred-go/sacred/internal/runner \
		github.com/sacred-go/sacred/pkg/observer/mongo \
		github.com/sacred-go/sacred/pkg/observer/s3 \
		github.com/sacred-go/sacred/pkg/observer/gcs \
		github.com/sacred-go/sacred/internal/cli; do
		dir=$(mktemp -d "$root/_probe.XXXX")
		printf 'package main\n\nimport _ "%s"\n\nfunc main() {}\n' "$pkg" >"$dir/main.go"
		if ! CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/probe" "./$(basename "$dir")" 2>/dev/null; then
			printf '%-52s (not in this build)\n' "$pkg"
			rm -rf "$dir"
			continue
		fi
		rm -rf "$dir"
		probe=$(instructions "$tmp/cg.out" "$tmp/probe")
		awk -v n="$pkg" -v p="${probe% *}" -v e="$empty" 'BEGIN { printf "%-52s %+6.2f M\n", n, (p - e) / 1e6 }'
	done
	echo "(packages share dependencies: the rows overlap and do not add up to the binary's total)"
}

python() {
	echo
	if ! have python3; then
		echo "== python: python3 is not installed: skipped"
		return
	fi
	local mb=$((LINES * 100 / 1000000))
	# The rows say when Python is unbuffered: not through the environment
	# this script was started with.
	if [ -n "${PYTHONUNBUFFERED:-}" ]; then
		echo "(PYTHONUNBUFFERED=$PYTHONUNBUFFERED was set in this environment: unset for these rows)"
		unset PYTHONUNBUFFERED
	fi
	echo "== issue 8 item 37: a Python program prints $mb MB of 100-byte lines ($(python3 --version)); best of $TRIES; wrapper stdout to /dev/null"
	cat >"$tmp/print.py" <<-EOF
		import sys
		line = "x" * 99 + "\n"
		write = sys.stdout.write
		for _ in range($LINES):
		    write(line)
	EOF
	local p="python3 $tmp/print.py"
	local names=() snippets=()
	add() { names+=("$1"); snippets+=("$2"); }
	add "python3 print.py >/dev/null" "$p >/dev/null"
	add "python3 print.py | tee out.txt >/dev/null" "$p | tee $tmp/tee.txt >/dev/null"
	add "PYTHONUNBUFFERED=1 python3 print.py | tee out.txt" "PYTHONUNBUFFERED=1 $p | tee $tmp/tee.txt >/dev/null"
	add "sacred run -F DIR -C pipe -- python3 print.py" "$sacred run -F $work/runs -C pipe -- $p >/dev/null 2>&1"
	add "sacred run -F DIR -C pipe --unbuffered -- python3 print.py" "$sacred run -F $work/runs -C pipe --unbuffered -- $p >/dev/null 2>&1"
	add "sacred run -F DIR -C pty -- python3 print.py" "$sacred run -F $work/runs -C pty -- $p >/dev/null 2>&1"
	add "sacred run -F DIR -C pty --unbuffered -- python3 print.py" "$sacred run -F $work/runs -C pty --unbuffered -- $p >/dev/null 2>&1"
	if [ -n "$base" ]; then
		add "base run -F DIR -C pipe -- python3 print.py" "$base run -F $work/runs -C pipe -- $p >/dev/null 2>&1"
	fi
	if python3 -c 'import sacred' 2>/dev/null; then
		cat >"$tmp/pysacred.py" <<-EOF
			import sys
			from sacred import Experiment
			from sacred.observers import FileStorageObserver
			ex = Experiment("print")
			ex.observers.append(FileStorageObserver("$work/runs"))
			@ex.main
			def main():
			    line = "x" * 99 + "\n"
			    write = sys.stdout.write
			    for _ in range($LINES):
			        write(line)
			ex.run()
		EOF
		add "Python Sacred (FileStorageObserver)" "python3 $tmp/pysacred.py >/dev/null 2>&1"
	fi
	# Round robin, so that a change of load hits every row alike.
	local best=() i t0 t1
	for _ in $(seq "$TRIES"); do
		for i in "${!snippets[@]}"; do
			rm -rf "$work/runs"
			t0=$(now_ns)
			(cd "$work" && bash -c "${snippets[$i]}")
			t1=$(now_ns)
			if [ -z "${best[$i]:-}" ] || [ $((t1 - t0)) -lt "${best[$i]}" ]; then best[$i]=$((t1 - t0)); fi
		done
	done
	for i in "${!snippets[@]}"; do
		awk -v n="${names[$i]}" -v ns="${best[$i]}" 'BEGIN { printf "%-58s %6.2f s\n", n, ns / 1e9 }'
	done
	if ! python3 -c 'import sacred' 2>/dev/null; then
		echo "Python Sacred: not installed (no PyPI on this machine): not measured"
	fi
	rm -f "$tmp/tee.txt"
}

throughput() {
	echo
	local bytes cat_ns pipe_ns file_ns spool_ns
	bytes=$(to_bytes "$BYTES")
	echo "== throughput: the child writes $BYTES ($bytes bytes) of zeros; best of $TRIES"
	cat_ns=$(best_ns "head -c $BYTES /dev/zero | cat >/dev/null")
	pipe_ns=$(best_ns "$sacred run -u -C pipe -- head -c $BYTES /dev/zero >/dev/null 2>>$tmp/sacred.log")
	file_ns=$(best_ns "$sacred run -F $tmp/runs -C pipe -- head -c $BYTES /dev/zero >/dev/null 2>>$tmp/sacred.log; rm -rf $tmp/runs")
	spool_ns=$(best_ns "head -c $BYTES /dev/zero >$tmp/plain-file; rm -f $tmp/plain-file")
	report() { # name ns
		awk -v n="$1" -v ns="$2" -v b="$bytes" -v c="$cat_ns" \
			'BEGIN { printf "%-42s %7.3f s  %7.0f MiB/s  %5.1f%% of cat\n", n, ns/1e9, b/1048576/(ns/1e9), 100*c/ns }'
	}
	report "head | cat >/dev/null" "$cat_ns"
	report "head >file (page-cache write bound)" "$spool_ns"
	report "sacred run -u -C pipe (capture only)" "$pipe_ns"
	report "sacred run -F -C pipe (capture + cout.txt)" "$file_ns"
}

rss() {
	echo
	echo "== peak RSS of the wrapper (/usr/bin/time -v, Maximum resident set size)"
	if [ ! -x /usr/bin/time ]; then
		echo "/usr/bin/time missing: apt-get install -y time" >&2
		return 1
	fi
	for size in $SIZES; do
		for mode in "-u" "-F $tmp/runs"; do
			/usr/bin/time -v -o "$tmp/time.txt" \
				"$sacred" run $mode -C pipe -- head -c "$size" /dev/zero >/dev/null 2>>"$tmp/sacred.log"
			rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/time.txt")
			printf "%-5s sacred run %-8s peak RSS %6d KiB (%.1f MiB)\n" "$size" "${mode%% *}" "$rss" "$(awk -v k="$rss" 'BEGIN{print k/1024}')"
			rm -rf "$tmp/runs"
		done
	done
}

machine
for s in $sections; do
	case $s in
	startup | instr | python | throughput | rss) "$s" ;;
	*)
		echo "unknown section $s: give startup, instr, python, throughput or rss" >&2
		exit 2
		;;
	esac
done
echo
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
