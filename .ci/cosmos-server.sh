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
source "$(dirname "$0")/standin.sh"

version=1.0.1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/flowstudio-ci"
pkg="$cache/node_modules/@vercel/cosmosdb-server"

installed=$(node -p "require('$pkg/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ]; then
	echo "cosmos-server: installing @vercel/cosmosdb-server@$version into $cache" >&2
	mkdir -p "$cache"
	npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "@vercel/cosmosdb-server@$version" >&2
fi

# -p 0: the system picks a free port, which the server prints when ready.
standin_start cosmosdb-server node "$pkg/lib/cli.js" --host 127.0.0.1 -p 0 --no-ssl
ready() {
	local addr
	addr=$(sed -n 's/^Ready to accept HTTP connections at \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$log")
	[ -n "$addr" ] && node -e "
		require('http').get('http://$addr/', r => process.exit(r.statusCode === 200 ? 0 : 1))
			.on('error', () => process.exit(1))" 2>/dev/null && echo "http://$addr"
}
standin_wait cosmos-server 30 ready

echo "export COSMOS_TEST_ENDPOINT=$url"
echo "export COSMOS_SERVER_PID=$pid"
