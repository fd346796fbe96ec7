package powerautomate

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Identifier validation runs before any request is built: every client
// method checks its ids first and fails with *InvalidIDError without I/O, so
// that an agent-supplied value can never reshape a URL (path traversal,
// extra query, another host) even though URLs are escaped as well.

const (
	maxNameLen       = 128 // action/trigger (Logic Apps caps at 80), connection, connector names
	maxRunNameLen    = 64  // real run names are 33 characters
	maxIDPreviewRune = 40
)

// The checks below run on every call, so they are loops over bytes rather than
// regular expressions (ids_test.go holds them to the expressions they replace).

// isGUID: [0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isRunName: [0-9A-Za-z]+.
func isRunName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return s != ""
}

// isConnectionName: [0-9A-Za-z][0-9A-Za-z_-]*.
func isConnectionName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// isConnectorName: shared_ then a connection-name-like rest.
func isConnectorName(s string) bool {
	return strings.HasPrefix(s, "shared_") && isConnectionName(s[len("shared_"):])
}

// ValidateEnvironmentName accepts a GUID, "Default-<tenant GUID>" or the
// "~default" alias.
func ValidateEnvironmentName(name string) error {
	if err := basicCheck("environment", name, 64); err != nil {
		return err
	}
	if name == "~default" || isGUID(name) ||
		(len(name) > 8 && strings.EqualFold(name[:8], "Default-") && isGUID(name[8:])) {
		return nil
	}
	return invalid("environment", name, "want a GUID, Default-<GUID> or ~default")
}

// ValidateFlowName accepts a flow GUID (the flow's "name", not its display name).
func ValidateFlowName(name string) error {
	return checkName("flow", name, 36, isGUID, "want the flow GUID")
}

// ValidateRunName accepts run names like 08586653536760200319026785874CU62.
func ValidateRunName(name string) error {
	return checkName("run", name, maxRunNameLen, isRunName, "want letters and digits only")
}

// ValidateActionName accepts Logic Apps action names: letters, digits and
// _ - ( ) . but never "..".
func ValidateActionName(name string) error { return validateWorkflowName("action", name) }

// ValidateTriggerName accepts trigger names with the rules of action names.
func ValidateTriggerName(name string) error { return validateWorkflowName("trigger", name) }

func validateWorkflowName(field, name string) error {
	if err := basicCheck(field, name, maxNameLen); err != nil {
		return err
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-().", r) {
			return invalid(field, name, "character "+strconv.QuoteRune(r)+" not allowed")
		}
	}
	return nil
}

// ValidateConnectionName accepts connection names such as
// shared-office365-19528cc4-… or 32 hex characters.
func ValidateConnectionName(name string) error {
	return checkName("connection", name, maxNameLen, isConnectionName, "want letters, digits, '-' and '_'")
}

// ValidateConnectorName accepts connector names such as shared_office365.
func ValidateConnectorName(name string) error {
	return checkName("connector", name, maxNameLen, isConnectorName, "want shared_<name>")
}

// ConnectorNameFromAPIID returns the connector name at the end of an apiId
// such as /providers/Microsoft.PowerApps/apis/shared_office365.
func ConnectorNameFromAPIID(apiID string) string {
	return apiID[strings.LastIndex(apiID, "/")+1:]
}

// checkName is basicCheck, then the identifier's own rule ok: a name ok refuses is
// invalid, and want says what it should be.
func checkName(field, name string, maxLen int, ok func(string) bool, want string) error {
	if err := basicCheck(field, name, maxLen); err != nil {
		return err
	}
	if !ok(name) {
		return invalid(field, name, want)
	}
	return nil
}

// basicCheck rejects what no identifier may contain, with a precise reason.
func basicCheck(field, v string, maxLen int) error {
	switch {
	case v == "":
		return invalid(field, v, "empty")
	case len(v) > maxLen:
		return invalid(field, v, "longer than "+strconv.Itoa(maxLen)+" bytes")
	case !utf8.ValidString(v):
		return invalid(field, v, "not valid UTF-8")
	case strings.Contains(v, ".."):
		return invalid(field, v, `contains ".."`)
	}
	for _, r := range v {
		switch {
		case r == '/' || r == '\\' || r == '?' || r == '#' || r == '%':
			return invalid(field, v, "character "+strconv.QuoteRune(r)+" not allowed")
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return invalid(field, v, "whitespace or control character")
		}
	}
	return nil
}

func invalid(field, v, reason string) *InvalidIDError {
	if utf8.RuneCountInString(v) > maxIDPreviewRune {
		v = string([]rune(v)[:maxIDPreviewRune]) + "…"
	}
	return &InvalidIDError{Field: field, Value: strconv.QuoteToASCII(v), Reason: reason}
}
