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
source "$(dirname "$0")/standin.sh"

version=v0.197.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/flowstudio-ci/stripe-mock-$version"
bin="$cache/stripe-mock"
if [ ! -x "$bin" ]; then
	echo "stripe-mock: installing github.com/stripe/stripe-mock@$version into $cache" >&2
	mkdir -p "$cache"
	GOBIN="$cache" go install "github.com/stripe/stripe-mock@$version" >&2
fi

# Port 0 for both listeners: the system picks free ports, which it prints.
standin_start stripe-mock "$bin" -http-addr 127.0.0.1:0 -https-addr 127.0.0.1:0
ready() {
	local addr
	addr=$(sed -n 's/^Listening for HTTP at address: \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$log")
	[ -n "$addr" ] && curl -fsS -o /dev/null -u sk_test_ci: "http://$addr/v1/customers/cus_ci" 2>/dev/null && echo "http://$addr"
}
standin_wait stripe-mock 30 ready

echo "export STRIPE_MOCK_URL=$url"
echo "export STRIPE_MOCK_PID=$pid"
