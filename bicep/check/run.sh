#!/usr/bin/env bash
# Checks of the Bicep templates that need no Azure and no Bicep compiler: every
# .bicep/.bicepparam file is parsed with tree-sitter-bicep (prebuilt, no compiler) and
# the rules in lib/rules.js run over the parse trees (test/*.test.js, node --test).
#
#   bash bicep/check/run.sh        # from anywhere; exits non-zero when a check fails
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v node >/dev/null 2>&1; then
  echo "bicep/check: node (>= 20) and npm are required" >&2
  exit 1
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
  echo "bicep/check: node >= 20 is required (found $(node --version))" >&2
  exit 1
fi

# Install the pinned parser unless node_modules already holds exactly it. Install
# scripts are skipped: both packages ship prebuilt N-API binaries (linux, darwin,
# win32; x64 and arm64) that node-gyp-build picks at require time.
installed() {
  node -e '
    const want = require("./package.json").dependencies;
    for (const [name, version] of Object.entries(want)) {
      if (require(name + "/package.json").version !== version) process.exit(1);
      require(name);
    }' >/dev/null 2>&1
}
if ! installed; then
  echo "bicep/check: installing $(node -p 'Object.entries(require("./package.json").dependencies).map(([n, v]) => n + "@" + v).join(" ")')"
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  if ! installed; then
    echo "bicep/check: tree-sitter did not load after install; no prebuilt binary for $(node -p 'process.platform + "-" + process.arch') / node $(node --version)?" >&2
    node -e 'require("tree-sitter"); require("tree-sitter-bicep")' || true
    exit 1
  fi
fi

echo "bicep/check: node $(node --version), tree-sitter $(node -p 'require("tree-sitter/package.json").version'), tree-sitter-bicep $(node -p 'require("tree-sitter-bicep/package.json").version')"
exec node --test test/*.test.js
