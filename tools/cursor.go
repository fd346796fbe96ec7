package tools

import "encoding/base64"

// Upstream paging: a tool's cursor wraps the upstream nextLink so that agents hold an
// opaque token. The client still checks that a decoded link points at the configured
// host before following it, so a forged cursor cannot send the token elsewhere.
func linkCursor(nextLink string) string {
	if nextLink == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(nextLink))
}

func linkFromCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) == 0 {
		return "", &ToolError{Message: "invalid argument cursor: not a cursor returned by this tool",
			Next: "call again without cursor to start from the first page"}
	}
	return string(b), nil
}
