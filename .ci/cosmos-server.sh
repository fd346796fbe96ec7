#!/usr/bin/env bash
# Starts @vercel/cosmosdb-server, a Cosmos DB stand-in, for the contract tests
# of package cosmos, and prints what the caller should eval:
#
#   eval "$(.ci/cosmos-server.sh)"   # sets COSMOS_TEST_ENDPOINT and COSMOS_SERVER_PID
#   go test ./cosmos/
#   kill "$COSMOS_SERVER_PID"
#
# The package is installed once into a cache outside the repository. The
# server listens on 127.0.0.1, on a port the system picks, over plain HTTP.
# Only the export lines go to stdout; progress goes to stderr.
set -euo pipefail

version=1.0.1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/flowstudio-ci"
pkg="$cache/node_modules/@vercel/cosmosdb-server"

installed=$(node -p "require('$pkg/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
	echo "cosmos-server: installing @vercel/cosmosdb-server@$version into $cache" >&2
	mkdir -p "$cache"
	npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "@vercel/cosmosdb-server@$version" >&2
fi

log=$(mktemp "${TMPDIR:-/tmp}/cosmosdb-server.XXXXXX.log")
# -p 0: the system picks a free port, which the server prints when ready.
# Its output goes to a file so that $(...) around this script does not wait
# for the server to exit.
node "$pkg/lib/cli.js" --host 127.0.0.1 -p 0 --no-ssl </dev/null >"$log" 2>&1 &
pid=$!

endpoint=
for _ in $(seq 300); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "cosmos-server: the server exited:" >&2
		cat "$log" >&2
		exit 1
	fi
	addr=$(sed -n 's/^Ready to accept HTTP connections at \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$log")
	if [ -n "$addr" ] && node -e "
		require('http').get('http://$addr/', r => process.exit(r.statusCode === 200 ? 0 : 1))
			.on('error', () => process.exit(1))" 2>/dev/null; then
		endpoint="http://$addr"
		break
	fi
	sleep 0.1
done
if [ -z "$endpoint" ]; then
	echo "cosmos-server: no answer within 30 s; log:" >&2
	cat "$log" >&2
	kill "$pid" 2>/dev/null || true
	exit 1
fi

echo "cosmos-server: pid $pid at $endpoint, log $log" >&2
echo "export COSMOS_TEST_ENDPOINT=$endpoint"
echo "export COSMOS_SERVER_PID=$pid"
