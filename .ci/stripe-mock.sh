#!/usr/bin/env bash
# Starts stripe-mock, the official Stripe API stand-in, for the billing tests,
# and prints what the caller should eval:
#
#   eval "$(bash .ci/stripe-mock.sh)"   # sets STRIPE_MOCK_URL and STRIPE_MOCK_PID
#   go test ./server/
#   kill "$STRIPE_MOCK_PID"
#
# It is installed once (go install, pinned) into a cache outside the repository,
# and listens on 127.0.0.1 only, on ports the system picks. Only the export
# lines go to stdout; progress goes to stderr. A failed start exits non-zero.
set -euo pipefail

version=v0.197.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/flowstudio-ci/stripe-mock-$version"
bin="$cache/stripe-mock"
if [ ! -x "$bin" ]; then
	echo "stripe-mock: installing github.com/stripe/stripe-mock@$version into $cache" >&2
	mkdir -p "$cache"
	GOBIN="$cache" go install "github.com/stripe/stripe-mock@$version" >&2
fi

log=$(mktemp "${TMPDIR:-/tmp}/stripe-mock.XXXXXX.log")
# Port 0 for both listeners: the system picks free ports, which it prints.
"$bin" -http-addr 127.0.0.1:0 -https-addr 127.0.0.1:0 </dev/null >"$log" 2>&1 &
pid=$!

url=
for _ in $(seq 300); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "stripe-mock: exited:" >&2
		cat "$log" >&2
		exit 1
	fi
	addr=$(sed -n 's/^Listening for HTTP at address: \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$log")
	if [ -n "$addr" ] && curl -fsS -o /dev/null -u sk_test_ci: "http://$addr/v1/customers/cus_ci" 2>/dev/null; then
		url="http://$addr"
		break
	fi
	sleep 0.1
done
if [ -z "$url" ]; then
	echo "stripe-mock: no answer within 30 s; log:" >&2
	cat "$log" >&2
	kill "$pid" 2>/dev/null || true
	exit 1
fi

echo "stripe-mock: pid $pid at $url, log $log" >&2
echo "export STRIPE_MOCK_URL=$url"
echo "export STRIPE_MOCK_PID=$pid"
