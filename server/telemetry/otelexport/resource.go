package otelexport

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/flowstudio/mcp/server/telemetry/otelexport/metricdata"
)

// ServiceName is the service.name resource attribute unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const ServiceName = "flowstudio-mcp"

// SchemaURL names the semantic conventions the metric and attribute names follow.
const SchemaURL = "https://opentelemetry.io/schemas/1.43.0"

// SDKName is telemetry.sdk.name: this package, which produces the telemetry
// (the specification reserves "opentelemetry" for the official SDKs).
const SDKName = "github.com/flowstudio/mcp/server/telemetry/otelexport"

// resource is who reports, sorted by key: OTEL_RESOURCE_ATTRIBUTES, then
// service.name (OTEL_SERVICE_NAME first, then the attribute, then ServiceName),
// service.version and service.instance.id (the replica), and telemetry.sdk.*.
func resource(getenv func(string) string, version string) ([]metricdata.Attr, error) {
	byKey := map[string]string{}
	if raw := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); raw != "" {
		for i, pair := range strings.Split(raw, ",") {
			k, v, ok := strings.Cut(pair, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: entry %d is not key=value", i+1)
			}
			decoded, err := url.PathUnescape(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: the value of %s is not valid percent-encoding", k)
			}
			byKey[k] = decoded
		}
	}
	if s := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); s != "" {
		byKey["service.name"] = s
	} else if byKey["service.name"] == "" {
		byKey["service.name"] = ServiceName
	}
	byKey["service.version"] = version
	byKey["service.instance.id"] = instanceID(getenv)
	byKey["telemetry.sdk.name"] = SDKName
	byKey["telemetry.sdk.language"] = "go"
	byKey["telemetry.sdk.version"] = version
	out := make([]metricdata.Attr, 0, len(byKey))
	for k, v := range byKey {
		out = append(out, metricdata.Attr{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b metricdata.Attr) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// instanceID tells replicas apart: Container Apps names each replica in
// CONTAINER_APP_REPLICA_NAME; elsewhere the host name.
func instanceID(getenv func(string) string) string {
	if s := getenv("CONTAINER_APP_REPLICA_NAME"); s != "" {
		return s
	}
	h, _ := os.Hostname()
	return h
}
