package server

import (
	"fmt"
	"net"
	"strconv"
)

// FLOWSTUDIO_METRICS_ADDR names the internal metrics listener, which package
// telemetry/otelexport serves; this is only its check against the public address.

// checkMetricsAddr accepts FLOWSTUDIO_METRICS_ADDR as HOST:PORT (any host: Container
// Apps scrapes from inside its environment), but never the public listener's own
// address: /metrics must not be reachable where /mcp is.
func checkMetricsAddr(metrics, public string) error {
	if metrics == "" {
		return nil
	}
	mHost, mPort, err := net.SplitHostPort(metrics)
	if err != nil {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR must be HOST:PORT, such as 127.0.0.1:9090 (got %q)", metrics)
	}
	if _, err := strconv.ParseUint(mPort, 10, 16); err != nil {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR must be HOST:PORT with a numeric port, such as 127.0.0.1:9090 (got %q)", metrics)
	}
	pHost, pPort, err := net.SplitHostPort(public)
	if err != nil || mPort == "0" || mPort != pPort {
		return nil // port 0 is a fresh port each time; a bad FLOWSTUDIO_ADDR fails at listen
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	if mHost == pHost || wildcard(mHost) || wildcard(pHost) {
		return fmt.Errorf("FLOWSTUDIO_METRICS_ADDR (%s) is the public listen address FLOWSTUDIO_ADDR (%s): "+
			"the metrics listener is internal and needs a port of its own, such as 127.0.0.1:9090", metrics, public)
	}
	return nil
}
