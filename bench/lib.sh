# Set-up shared by the benchmarks that compare fpctl with flight_profiler
# (attach.sh, watch.sh, trace.sh); sourced, never run.  The caller sets
# BENCH (its name, for messages) and runs `set -euo pipefail` first.

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
BUILD=$(realpath "${FPD_BUILD:-build}")
PYROOT=$(pyenv root 2>/dev/null || echo /root/.pyenv)

log() { printf '%s\n' "$*" >&2; }

# Root (ptrace of any process, BPF) and a built tree.
bench_check() {
	[ "$(id -u)" = 0 ] || { log "bench/$BENCH: needs root"; exit 1; }
	local f
	for f in fpd fpctl libfpagent.so; do
		[ -e "$BUILD/$f" ] || { log "bench/$BENCH: $BUILD/$f is missing: run make"; exit 1; }
	done
	mkdir -p "$REPO/bench/out"
}

# The first pyenv CPython MINOR (e.g. 3.11) on stdout; nothing if none.
bench_python() {
	local d
	for d in "$PYROOT"/versions/"$1".*; do
		[ -x "$d/bin/python3" ] && { echo "$d/bin/python3"; return; }
	done
}

# A venv of pyenv's CPython MINOR with flight_profiler pip-installed into it
# (its agent imports flight_profiler inside the target, so the target must
# run that venv's interpreter), shared by the benchmarks: bench/out/fp-venv-MINOR.
# Sets VENV_PYTHON (empty without that CPython), FLIGHT (its executable, or
# empty) and FLIGHT_NOTE (why FLIGHT is empty).
bench_flight_venv() {
	local minor=$1 py venv pip_log
	VENV_PYTHON="" FLIGHT="" FLIGHT_NOTE=""
	py=$(bench_python "$minor")
	if [ -z "$py" ]; then
		FLIGHT_NOTE="no pyenv CPython $minor under $PYROOT/versions"
		return
	fi
	venv=$REPO/bench/out/fp-venv-$minor
	if [ ! -x "$venv/bin/python" ] || [ "$(readlink -f "$venv/bin/python")" != "$(readlink -f "$py")" ]; then
		rm -rf "$venv"
		"$py" -m venv "$venv" >&2
	fi
	VENV_PYTHON=$venv/bin/python
	pip_log=$REPO/bench/out/pip-flight_profiler-$minor.log
	if ! "$VENV_PYTHON" -c 'import flight_profiler' 2>/dev/null; then
		log "installing flight_profiler into $venv"
		"$venv/bin/pip" install -q --disable-pip-version-check flight_profiler >"$pip_log" 2>&1 ||
			FLIGHT_NOTE="pip install flight_profiler failed ($pip_log): $(tail -n 1 "$pip_log")"
	fi
	if [ -z "$FLIGHT_NOTE" ]; then
		if [ -x "$venv/bin/flight_profiler" ]; then
			FLIGHT=$venv/bin/flight_profiler
		else
			FLIGHT_NOTE="no flight_profiler executable in $venv/bin"
		fi
	fi
}

# A scratch directory WORK with copies of fpd, fpctl and libfpagent.so in
# WORK/bin (a rebuild meanwhile cannot change what is measured), and fpd
# started once on SOCK.  Everything goes at exit, after the caller's
# bench_cleanup if it defines one.
bench_start_fpd() {
	WORK=$(mktemp -d "/tmp/fpd-${BENCH%.sh}-bench.XXXXXX")
	FPD_PID=""
	trap bench_exit EXIT
	mkdir "$WORK/bin"
	cp "$BUILD/fpd" "$BUILD/fpctl" "$BUILD/libfpagent.so" "$WORK/bin/"
	SOCK=$WORK/fpd.sock
	"$WORK/bin/fpd" --socket "$SOCK" >"$WORK/fpd.log" 2>&1 &
	FPD_PID=$!
	local _
	for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
	[ -S "$SOCK" ] || { log "fpd did not start: $(cat "$WORK/fpd.log")"; exit 1; }
}

bench_exit() {
	if declare -F bench_cleanup >/dev/null; then bench_cleanup || true; fi
	if [ -n "$FPD_PID" ]; then
		kill -TERM "$FPD_PID" 2>/dev/null || true
		wait "$FPD_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
