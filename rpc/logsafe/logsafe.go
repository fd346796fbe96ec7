// Package logsafe renders errors and panics for the operational log without
// what must never be logged: tool arguments, upstream text, URLs with their
// paths and queries (which carry environment, flow and run names and search
// terms), tokens and keys. An operator still sees what failed and where.
package logsafe

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"strings"

	"go.uber.org/zap"
)

// Log keys shared by the operational log lines.
const (
	KeyRequestID = "request_id"
	KeyError     = "error"
	KeyPanic     = "panic"
)

// maxLen bounds a rendered error: a long message is more likely to quote data.
const maxLen = 300

var (
	// anyURL finds absolute URLs; each is cut to scheme://host.
	anyURL = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"<>` + "`" + `]+`)
	// quoted finds quoted strings, where errors put the values they refuse.
	quoted      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'|` + "`[^`]*`")
	scrubbedURL = regexp.MustCompile(`^["'` + "`" + `][a-zA-Z][a-zA-Z0-9+.-]*://[^/\s"'` + "`" + `]+/‹path›["'` + "`" + `]$`)
	// jwtLike finds bearer tokens and API keys (three base64url parts).
	jwtLike = regexp.MustCompile(`[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)
)

// Error is the "error" field for err: its message with every URL cut to its
// host, every quoted value and token-like string replaced, and every string in
// redact (say, the call's argument values) removed, then shortened. nil gives
// a skipped field.
func Error(err error, redact ...string) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String(KeyError, Message(err, redact...))
}

// Message renders err as Error does.
func Message(err error, redact ...string) string {
	return Scrub(err.Error(), redact...)
}

// Scrub applies Error's rules to a message.
func Scrub(msg string, redact ...string) string {
	for _, r := range redact {
		if len(r) >= 3 {
			msg = strings.ReplaceAll(msg, r, "‹redacted›")
		}
	}
	msg = anyURL.ReplaceAllStringFunc(msg, func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "‹url›"
		}
		return u.Scheme + "://" + u.Host + "/‹path›"
	})
	msg = jwtLike.ReplaceAllString(msg, "‹token›")
	msg = quoted.ReplaceAllStringFunc(msg, func(q string) string {
		if scrubbedURL.MatchString(q) {
			return q // a URL already cut to its host
		}
		return `"‹value›"`
	})
	if len(msg) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8Start(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Panic is the "panic" field for a recovered value: the runtime's own message
// for runtime errors (index out of range, nil dereference), else only the
// value's type, since a panic value built by code may quote anything.
func Panic(p any) zap.Field {
	var re runtime.Error
	if err, ok := p.(error); ok && errors.As(err, &re) {
		return zap.String(KeyPanic, Scrub(re.Error()))
	}
	return zap.String(KeyPanic, fmt.Sprintf("panic with a %T value", p))
}
