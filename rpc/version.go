package rpc

// Protocol revisions this server speaks, oldest first.
const (
	Version20250326 = "2025-03-26"
	Version20250618 = "2025-06-18"
	Version20251125 = "2025-11-25"
	// Version20260728 is the stateless revision: no initialize, server/discover,
	// Mcp-Method/Mcp-Name headers, version in every request's _meta.
	Version20260728 = "2026-07-28"
)

// SupportedVersions lists every revision accepted, oldest first.
var SupportedVersions = []string{Version20250326, Version20250618, Version20251125, Version20260728}

// LatestHandshakeVersion is offered at initialize when the client asks for a revision we
// do not speak.
const LatestHandshakeVersion = Version20251125

// Keys of the 2026-07-28 envelope in _meta.
const (
	metaProtocolVersion = "io.modelcontextprotocol/protocolVersion"
	// metaServerInfo names the server in a result's _meta.
	metaServerInfo = "io.modelcontextprotocol/serverInfo"
)

func isSupported(v string) bool {
	for _, s := range SupportedVersions {
		if s == v {
			return true
		}
	}
	return false
}

// batchesAllowed reports whether a JSON array body is legal: only 2025-03-26 has batches.
func batchesAllowed(v string) bool { return v == Version20250326 }

// isStateless reports whether the revision has no handshake and no sessions.
func isStateless(v string) bool { return v == Version20260728 }
