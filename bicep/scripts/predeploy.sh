#!/bin/sh
# azd predeploy hook of service mcp: the container app is created only once the Key
# Vault secrets exist (FLOWSTUDIO_DEPLOY_APP=true, set by bicep/scripts/bootstrap.sh).
# Until then there is nothing to deploy to; say what to do instead of azd's
# "resource not found".
set -eu

if [ "${FLOWSTUDIO_DEPLOY_APP:-false}" != "true" ]; then
  cat >&2 <<EOF
The infrastructure is provisioned; the container app and the jobs are not created yet.
  1. Register the Entra ID app; its redirect URI is ${CONSENT_REDIRECT_URI:-the CONSENT_REDIRECT_URI output}
     then: azd env set ENTRA_CLIENT_ID <application (client) id>
  2. sh bicep/scripts/bootstrap.sh   (seeds Key Vault secrets, builds the first image)
  3. azd up
EOF
  exit 1
fi
