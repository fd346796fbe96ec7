package tools

import "bytes"

// Scans over JSON text that was parsed already (an upstream answer, a caller's
// arguments): they find things without decoding, so a flow read does not parse its
// definition again to learn two facts about it. Callers never pass unparsed input;
// on text that is not JSON the answers are merely unhelpful, never unsafe.

// stringEnd returns the index just past the string that opens at raw[i] (a quote),
// or len(raw) when it does not close. The closing quote is found with IndexByte,
// which is vectorised: strings are most of a definition's bytes.
func stringEnd(raw []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(raw[j:], '"')
		if k < 0 {
			return len(raw)
		}
		j += k
		backslashes := 0
		for p := j - 1; p > i && raw[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return j + 1
		}
		j++
	}
}

// isCompact reports whether JSON text has no whitespace outside its strings.
func isCompact(raw []byte) bool {
	for i := 0; i < len(raw); {
		switch raw[i] {
		case ' ', '\n', '\r', '\t':
			return false
		case '"':
			i = stringEnd(raw, i)
		default:
			i++
		}
	}
	return len(raw) > 0
}

// valueEnd returns the index just past the compact JSON value that starts at raw[i].
func valueEnd(raw []byte, i int) int {
	depth := 0
	for i < len(raw) {
		switch raw[i] {
		case '"':
			i = stringEnd(raw, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object or array
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ':':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

// eachMember calls fn with each key (as written, quotes off) and value of the compact
// JSON object obj until fn returns false; it reports false when obj is not an object.
func eachMember(obj []byte, fn func(key, value []byte) bool) bool {
	if len(obj) < 2 || obj[0] != '{' {
		return false
	}
	if obj[1] == '}' {
		return true
	}
	for i := 1; i < len(obj) && obj[i] == '"'; {
		k := stringEnd(obj, i)
		if k >= len(obj) || obj[k] != ':' {
			return false
		}
		v := valueEnd(obj, k+1)
		if !fn(obj[i+1:k-1], obj[k+1:v]) {
			return true
		}
		if v >= len(obj) || obj[v] != ',' {
			return v < len(obj) && obj[v] == '}'
		}
		i = v + 1
	}
	return false
}

// soleMember returns the value of key in the compact JSON object obj, without decoding
// the other members, as encoding/json would fill a struct field named key. That decoder
// matches keys without regard to case and keeps the last of several, so the value is
// only sure when no other key could decode to the same field (another spelling, an
// escape or a non-ASCII rune that folds). ok is false when obj is not an object or the
// key is ambiguous; then decode instead. A nil value with ok true: no such key.
func soleMember(obj []byte, key string) ([]byte, bool) {
	var found []byte
	ambiguous := false
	whole := eachMember(obj, func(k, v []byte) bool {
		if string(k) == key && found == nil {
			found = v
			return true
		}
		// Escapes and the runes that fold to ASCII (ſ, K) are longer than what they stand for.
		if string(k) == key || len(k) == len(key) && bytes.EqualFold(k, []byte(key)) || len(k) > len(key) && !plainASCII(k) {
			ambiguous = true
			return false
		}
		return true
	})
	return found, whole && !ambiguous
}

// plainString returns the text of a JSON string of printable ASCII without escapes,
// which decodes to itself; anything else is left to the decoder.
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || !plainASCII(raw[1:len(raw)-1]) {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}
