#!/usr/bin/env bash
# Runs the README's curl example exactly as written (the sh block between the
# curl-example marker comments) against the real binary on embedded defaults, with a
# key from its dev-key, and checks the answer: a README example that rots fails CI.
# The example names port 8080; on a shared machine that port may be taken, so the
# run happens in a network namespace of its own (a loopback of its own) when the
# kernel allows one, and on the host's loopback otherwise.
# Usage: bash .ci/curl-example.sh path/to/flowstudio
set -euo pipefail
bin=$(realpath "$1")
cd "$(dirname "$0")/.."

if [ "${CURL_EXAMPLE_NETNS:-}" != 1 ] && command -v ip >/dev/null && unshare -rn true 2>/dev/null; then
  CURL_EXAMPLE_NETNS=1 exec unshare -rn bash "$0" "$bin"
fi
if [ "${CURL_EXAMPLE_NETNS:-}" = 1 ]; then
  ip link set lo up
fi

example=$(sed -n '/^<!-- curl-example/,/^<!-- \/curl-example -->/p' README.md | sed -n '/^```sh$/,/^```$/p' | sed '/^```/d')
if ! grep -q '^curl ' <<<"$example"; then
  echo "FAIL: README.md has no curl command between the curl-example markers" >&2
  exit 1
fi

data=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$data"' EXIT
FLOWSTUDIO_DATA_DIR="$data" FLOWSTUDIO_ADDR=127.0.0.1:8080 "$bin" serve >"$data/serve.log" 2>&1 &
pid=$!
for _ in $(seq 120); do
  curl -sf http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: the server did not start:" >&2
    cat "$data/serve.log" >&2
    exit 1
  fi
  sleep 0.5
done

# KEY is what the README's line before the example sets (there with `go run . dev-key`).
KEY=$("$bin" dev-key --email you@contoso.com --data-dir "$data")
export KEY
answer=$(bash -euo pipefail -c "$example")

# The answer: a JSON-RPC result for id 1, not an error, whose typed result lists the
# simulated tenant's environments, its default one among them. Node (which CI needs
# anyway) reads the JSON.
if ! names=$(node -e '
  const a = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const envs = a.result && a.result.structuredContent && a.result.structuredContent.environments;
  if (a.id !== 1 || !a.result || a.result.isError !== false || !Array.isArray(envs) || !envs.some(e => e.isDefault === true)) process.exit(1);
  console.log(envs.map(e => e.displayName).join(", "));
' <<<"$answer"); then
  echo "FAIL: the README's curl example got an unexpected answer:" >&2
  head -c 2000 <<<"$answer" >&2
  echo >&2
  exit 1
fi
if grep -qF "$KEY" "$data/serve.log"; then
  echo "FAIL: the API key appeared in the server's log" >&2
  exit 1
fi
echo "the README's curl example answered: $names"
