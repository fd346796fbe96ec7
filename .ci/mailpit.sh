#!/usr/bin/env bash
# Starts Mailpit, a real SMTP server with an API to read what arrived, for the alert
# email tests (package tools/alerts), and prints what the caller should eval:
#
#   eval "$(bash .ci/mailpit.sh)"   # sets MAILPIT_SMTP (host:port), MAILPIT_API (URL), MAILPIT_PID
#   go test ./tools/alerts/
#   kill "$MAILPIT_PID"
#
# Installs the pinned version with `go install` when missing. Listens on 127.0.0.1 on
# free ports. Only the export lines go to stdout; progress goes to stderr. Exits
# non-zero when the server does not start: CI must not go on without it.
set -euo pipefail
source "$(dirname "$0")/standin.sh"
version=v1.33.1
bin="$(go env GOPATH)/bin/mailpit"
if [ ! -x "$bin" ] || ! go version -m "$bin" 2>/dev/null | grep -Eq "^\s+mod\s+github.com/axllent/mailpit\s+${version}\s"; then
	echo "mailpit: installing github.com/axllent/mailpit@$version" >&2
	go install "github.com/axllent/mailpit@$version" >&2
fi

# A random high port nobody answers on (Mailpit cannot report a port the system picked).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
}
ready() { curl -fsS "http://127.0.0.1:$http_port/api/v1/info" >/dev/null 2>&1 && echo "http://127.0.0.1:$http_port"; }
# Another program may take a port between free_port and the start: try three times.
for _ in 1 2 3; do
	smtp_port=$(free_port); http_port=$(free_port)
	standin_start mailpit "$bin" --listen "127.0.0.1:$http_port" --smtp "127.0.0.1:$smtp_port" --smtp-auth-accept-any \
		--smtp-auth-allow-insecure --smtp-disable-rdns --disable-version-check --quiet
	if standin_wait mailpit 10 ready; then
		echo "export MAILPIT_SMTP=127.0.0.1:$smtp_port"
		echo "export MAILPIT_API=$url"
		echo "export MAILPIT_PID=$pid"
		exit 0
	fi
done
exit 1
