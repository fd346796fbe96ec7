# Sourced by the stand-ins' start scripts (cosmos-server.sh, stripe-mock.sh, mailpit.sh,
# server/testdata/oidc-mock/start.sh): one way to start a server in the background and
# wait until it answers. Progress and failures go to stderr; stdout stays for the
# export lines the caller evals.

# standin_start NAME COMMAND...: starts COMMAND with its output in a log file (so that
# $(...) around the start script does not wait for the server to exit); sets pid and
# log.
standin_start() {
	local name=$1
	shift
	log=$(mktemp "${TMPDIR:-/tmp}/$name.XXXXXX.log")
	"$@" </dev/null >"$log" 2>&1 &
	pid=$!
}

# standin_wait NAME SECONDS READY: runs READY (a function of the script, which may
# read $log) every 0.1 s until it succeeds and prints the stand-in's address, and sets
# url to that. Fails, with the log, when the process exits or SECONDS pass first; the
# process is then stopped.
standin_wait() {
	local name=$1 seconds=$2 ready=$3 out
	url=
	for _ in $(seq $((seconds * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name: exited before it answered; log:" >&2
			cat "$log" >&2
			return 1
		fi
		if out=$("$ready") && [ -n "$out" ]; then
			url=$out
			echo "$name: pid $pid at $url, log $log" >&2
			return 0
		fi
		sleep 0.1
	done
	echo "$name: no answer within $seconds s; log:" >&2
	cat "$log" >&2
	kill "$pid" 2>/dev/null || true
	return 1
}
