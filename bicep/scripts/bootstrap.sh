#!/bin/sh
# One-time set-up of an azd environment, between the first `azd provision` (which
# creates everything but the container app and the jobs) and `azd up`:
#
#   1. seeds the Key Vault secrets that do not exist yet: token-secret (TOKEN_SECRET)
#      and refresh-token-key (the refresh-token sealing key), from openssl random
#      bytes; a value lives only in a mode-600 temporary file and is never printed;
#   2. makes sure the secrets the app references are there: entra-client-secret
#      (unless ENTRA_CLIENT_SECRET_NAME is none) and stripe-webhook-secret (unless
#      STRIPE_WEBHOOK_SECRET_NAME is none), prompting for them (hidden) on a terminal;
#   3. checks ENTRA_CLIENT_ID is set;
#   4. builds the first image in the registry (az acr build) and records it as
#      SERVICE_MCP_IMAGE_NAME, so the app is created with the real image;
#   5. sets FLOWSTUDIO_DEPLOY_APP=true.
#
# Existing secrets are never overwritten. Needs azd, az (logged in to the same tenant,
# with the containerapp commands) and openssl. Run from anywhere:
#   sh bicep/scripts/bootstrap.sh
# SKIP_IMAGE_BUILD=1 skips step 4; SEED_REFRESH_TOKEN_KEY=0 skips refresh-token-key.
set -eu

cd "$(dirname "$0")/../.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "bootstrap: '$1' is required" >&2; exit 1; }; }
need azd
need az
need openssl

val() { azd env get-value "$1" 2>/dev/null || true; }

kv="$(val KEY_VAULT_NAME)"
if [ -z "$kv" ]; then
  echo "bootstrap: KEY_VAULT_NAME is not in the azd environment; run 'azd provision' first" >&2
  exit 1
fi

tmp=""
cleanup() {
  if [ -n "$tmp" ]; then rm -f "$tmp"; fi
  if [ -t 0 ]; then stty echo 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# Names of the secrets in the vault (names only, never values). Retries while the
# operator's Key Vault Secrets Officer role assignment propagates.
list_names() {
  i=0
  while :; do
    if names="$(az keyvault secret list --vault-name "$kv" --query '[].name' -o tsv 2>/tmp/bootstrap.err.$$)"; then
      rm -f /tmp/bootstrap.err.$$
      printf '%s\n' "$names"
      return 0
    fi
    i=$((i + 1))
    if [ "$i" -ge 20 ]; then
      cat /tmp/bootstrap.err.$$ >&2
      rm -f /tmp/bootstrap.err.$$
      echo "bootstrap: cannot list secrets of $kv (needs Key Vault Secrets Officer: set AZURE_PRINCIPAL_ID and re-provision, or grant it)" >&2
      return 1
    fi
    echo "bootstrap: waiting for Key Vault access ($i/20)..." >&2
    sleep 15
  done
}

names="$(list_names)"
has() { printf '%s\n' "$names" | grep -qx "$1"; }

# put NAME CONTENT-TYPE: the value comes from $tmp.
put() {
  az keyvault secret set --vault-name "$kv" --name "$1" --file "$tmp" --encoding utf-8 --content-type "$2" -o none
  rm -f "$tmp"
  tmp=""
}

# seed NAME BYTES CONTENT-TYPE: a random base64 value, only when NAME does not exist.
seed() {
  if has "$1"; then
    echo "bootstrap: $1 exists, kept"
    return 0
  fi
  tmp="$(umask 077 && mktemp)"
  openssl rand -base64 "$2" | tr -d '\n' >"$tmp"
  put "$1" "$3"
  echo "bootstrap: $1 created"
}

# require NAME WHAT: a secret the operator supplies; prompts (hidden) on a terminal.
missing=0
require() {
  [ -z "$1" ] || [ "$1" = none ] && return 0
  if has "$1"; then
    echo "bootstrap: $1 exists"
    return 0
  fi
  if [ -t 0 ]; then
    printf 'bootstrap: paste %s for Key Vault secret %s (hidden; empty to skip): ' "$2" "$1"
    stty -echo
    IFS= read -r value || value=""
    stty echo
    echo
    if [ -n "$value" ]; then
      tmp="$(umask 077 && mktemp)"
      printf '%s' "$value" >"$tmp"
      value=""
      put "$1" "text/plain"
      echo "bootstrap: $1 created"
      return 0
    fi
  fi
  echo "bootstrap: Key Vault secret $1 ($2) is missing:" >&2
  echo "  az keyvault secret set --vault-name $kv --name $1 --file /dev/stdin -o none   (paste, then Ctrl-D)" >&2
  missing=1
}

# 1. Generated secrets. TOKEN_SECRET must be at least 32 characters (64 here).
seed token-secret 48 "text/plain"
# 32 random bytes, base64: the AES-256 sealing key. `flowstudio rotate-key` adds versions.
# SEED_REFRESH_TOKEN_KEY=0 leaves the first version to `flowstudio rotate-key`.
if [ "${SEED_REFRESH_TOKEN_KEY:-1}" = "1" ]; then
  seed refresh-token-key 32 "application/octet-stream;base64"
fi

# 2. Secrets from elsewhere. The names follow main.bicepparam's defaults.
entra_name="$(azd env get-value ENTRA_CLIENT_SECRET_NAME 2>/dev/null || echo entra-client-secret)"
stripe_name="$(azd env get-value STRIPE_WEBHOOK_SECRET_NAME 2>/dev/null || echo stripe-webhook-secret)"
require "$entra_name" "the Entra ID client secret (or: azd env set ENTRA_CLIENT_SECRET_NAME none to use a federated credential)"
require "$stripe_name" "the Stripe webhook signing secret whsec_... (or: azd env set STRIPE_WEBHOOK_SECRET_NAME none to run without billing webhooks)"

# 3. The Entra ID application.
if [ -z "$(val ENTRA_CLIENT_ID)" ]; then
  echo "bootstrap: ENTRA_CLIENT_ID is not set: register the app (redirect URI $(val CONSENT_REDIRECT_URI)), then: azd env set ENTRA_CLIENT_ID <application id>" >&2
  missing=1
fi

if [ "$missing" -ne 0 ]; then
  echo "bootstrap: not done; fix the above and run it again (existing secrets are kept)" >&2
  exit 1
fi

# 4. The first image, so the app is created with it rather than a placeholder.
if [ "${SKIP_IMAGE_BUILD:-0}" != "1" ] && [ -z "$(val SERVICE_MCP_IMAGE_NAME)" ]; then
  registry="$(val AZURE_CONTAINER_REGISTRY_NAME)"
  endpoint="$(val AZURE_CONTAINER_REGISTRY_ENDPOINT)"
  repo="flowstudio-mcp/mcp-$(val AZURE_ENV_NAME)"
  tag="bootstrap-$(date -u +%Y%m%d%H%M%S)"
  az acr build --registry "$registry" --image "$repo:$tag" --file Dockerfile . -o none
  azd env set SERVICE_MCP_IMAGE_NAME "$endpoint/$repo:$tag"
  echo "bootstrap: image $endpoint/$repo:$tag"
fi

# 5. Let the next provision create the app and the jobs.
azd env set FLOWSTUDIO_DEPLOY_APP true
echo "bootstrap: done; now run: azd up"
