#!/bin/sh
# azd postdeploy hook of service mcp: `azd deploy` updates the container app only; give
# the sync and rotate-key jobs the image the app now runs, so they never lag behind.
# (`azd provision` does the same from SERVICE_MCP_IMAGE_NAME.) Needs `az login`.
set -eu

: "${AZURE_RESOURCE_GROUP:?run azd provision first}"
: "${AZURE_CONTAINER_APP_NAME:?run azd provision first}"

if ! command -v az >/dev/null 2>&1; then
  echo "postdeploy: az is not installed; the jobs keep their image until the next 'azd provision'" >&2
  exit 0
fi

image="$(az containerapp show -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_CONTAINER_APP_NAME" \
  --query 'properties.template.containers[0].image' -o tsv)"
if [ -z "$image" ]; then
  echo "postdeploy: cannot read the image of $AZURE_CONTAINER_APP_NAME" >&2
  exit 1
fi

for job in ${SYNC_JOB_NAME:-} ${ALERT_JOB_NAME:-} ${ROTATE_KEY_JOB_NAME:-}; do
  az containerapp job update -g "$AZURE_RESOURCE_GROUP" -n "$job" --image "$image" -o none
  echo "postdeploy: $job -> $image"
done
