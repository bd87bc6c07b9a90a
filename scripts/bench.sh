#!/usr/bin/env bash
# Measures what docs/performance.md reports for the wrapper: startup overhead,
# output throughput against cat, and peak RSS for large outputs.
#
#   scripts/bench.sh                 # all three
#   RUNS=50 SIZES="1G 4G" scripts/bench.sh
#
# Targets: overhead < 15 ms, throughput >= 90% of cat, RSS < 40 MiB and flat.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}          # startup samples
TRIES=${TRIES:-3}         # throughput samples (best is kept)
SIZES=${SIZES:-"1G 4G"}   # outputs for the RSS measurement
BYTES=${BYTES:-1G}        # output for the throughput measurement

go build -o bin/sacred ./cmd/sacred
sacred=$PWD/bin/sacred

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sacred-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The wrapper's spool goes to TMPDIR; keep it with the rest.
export TMPDIR=$tmp

now_ns() { date +%s%N; }

# to_bytes 1G -> 1073741824 (head -c suffixes: K, M, G are powers of 1024)
to_bytes() {
	local n=${1%[KMG]} s=${1##*[0-9]}
	case $s in
	K) echo $((n << 10)) ;; M) echo $((n << 20)) ;; G) echo $((n << 30)) ;; *) echo "$n" ;;
	esac
}

# best_ns CMD...: the fastest of TRIES runs of CMD (a shell snippet), in ns.
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

echo "== machine: $(nproc) cores, $(uname -sr), load: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"

echo
echo "== (1) startup overhead: sacred run -F DIR -- true  vs  true"
if command -v hyperfine >/dev/null; then
	hyperfine -N --warmup 3 --runs "$RUNS" \
		--command-name 'true' 'true' \
		--command-name 'sacred run -F' "$sacred run -F $tmp/runs -- true" \
		--command-name 'sacred run -u' "$sacred run -u -- true"
else
	for cmd in "true" "$sacred run -F $tmp/runs -- true" "$sacred run -u -- true"; do
		t0=$(now_ns)
		for _ in $(seq "$RUNS"); do $cmd >/dev/null; done
		t1=$(now_ns)
		echo "$cmd: $(((t1 - t0) / RUNS / 1000)) us per run (mean of $RUNS)"
	done
fi

echo
bytes=$(to_bytes "$BYTES")
echo "== (2) throughput: the child writes $BYTES ($bytes bytes) of zeros; best of $TRIES"
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

echo
echo "== (3) peak RSS of the wrapper (/usr/bin/time -v, Maximum resident set size)"
if [ ! -x /usr/bin/time ]; then
	echo "/usr/bin/time missing: apt-get install -y time" >&2
	exit 1
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
