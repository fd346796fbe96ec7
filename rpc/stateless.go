package rpc

import (
	"encoding/json"
	"net/http"
)

// checkStatelessEnvelope enforces the 2026-07-28 rules: the MCP-Protocol-Version,
// Mcp-Method and (for named calls) Mcp-Name headers must match the body, and the
// version must also travel in params._meta.
func checkStatelessEnvelope(r *http.Request, msg *Message, headerVersion string) *httpError {
	mismatch := func(what string) *httpError {
		return &httpError{status: http.StatusBadRequest, id: msg.RawID,
			err: NewError(CodeHeaderMismatch, "Header mismatch: "+what, nil)}
	}
	if headerVersion != Version20260728 {
		return mismatch("MCP-Protocol-Version must be " + Version20260728 + " when Mcp-Method is sent")
	}
	if r.Header.Get("Mcp-Method") != msg.Method {
		return mismatch("Mcp-Method does not match the request's method")
	}
	var p Params
	if msg.Head != nil {
		p = *msg.Head
	}
	switch msg.Method {
	case "tools/call", "prompts/get":
		if r.Header.Get("Mcp-Name") != p.Name {
			return mismatch("Mcp-Name does not match params.name")
		}
	case "resources/read":
		if r.Header.Get("Mcp-Name") != p.URI {
			return mismatch("Mcp-Name does not match params.uri")
		}
	}
	var metaVersion string
	if raw := p.Meta.ProtocolVersion; len(raw) > 0 {
		_ = json.Unmarshal(raw, &metaVersion)
	}
	switch {
	case metaVersion == "":
		return &httpError{status: http.StatusBadRequest, id: msg.RawID,
			err: NewError(CodeInvalidParams, "Invalid params: _meta."+metaProtocolVersion+" is required", nil)}
	case !isSupported(metaVersion):
		return &httpError{status: http.StatusBadRequest, id: msg.RawID,
			err: NewError(CodeUnsupportedProtocolVersion, "Unsupported protocol version",
				map[string]any{"supported": SupportedVersions, "requested": truncate(metaVersion, 64)})}
	case metaVersion != headerVersion:
		return mismatch("_meta protocol version does not match MCP-Protocol-Version")
	}
	return nil
}
