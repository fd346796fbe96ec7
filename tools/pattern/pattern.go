// Package pattern matches anchored runs of ASCII character classes (a GUID, an
// environment name, cus_[A-Za-z0-9]{1,200}) with a table walk instead of regexp.
package pattern

import (
	"regexp"
	"strconv"
	"strings"
)

// Two costs of regexp that identifiers do not need: its matcher, on every tool call
// that carries a schema pattern (environment and flow names, run names), and its
// compiler, at start-up for every package-level pattern: a bounded repeat such as
// {1,200} compiles to hundreds of instructions, and a handful of them took a third of
// the server's package initialisation. Compile turns the patterns that are anchored
// runs of ASCII classes into a table and leaves every other pattern to regexp;
// FuzzClassPattern (package tools, over the catalog's patterns) holds the two to the
// same answers.

// classRun is one [class]{min,max} of an anchored pattern; max < 0 is unbounded.
type classRun struct {
	set      [2]uint64 // bit c set: ASCII byte c is in the class
	min, max int
}

func (r *classRun) has(c byte) bool { return c < 128 && r.set[c>>6]&(1<<(c&63)) != 0 }

// Class matches ^run run …$ greedily. ParseClass accepts only patterns
// where greedy matching is exact: a run of variable length is followed by the end or by
// a run with no byte in common, so there is never anything to backtrack.
type Class []classRun

// Match reports whether s matches the whole pattern.
func (p Class) Match(s string) bool {
	i := 0
	for _, r := range p {
		n := 0
		for i < len(s) && (r.max < 0 || n < r.max) && r.has(s[i]) {
			i++
			n++
		}
		if n < r.min {
			return false
		}
	}
	return i == len(s)
}

// Compile returns a matcher for an ECMA-262 (JSON Schema) pattern: a table walk when
// the pattern is a Class, else regexp.
func Compile(p string) (func(string) bool, error) {
	if cp, ok := ParseClass(p); ok {
		return cp.Match, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	return re.MatchString, nil
}

// MustClass is ParseClass for a pattern written in the code: it panics unless p is a
// Class, so that a package-level identifier check never costs a regexp compilation.
func MustClass(p string) Class {
	cp, ok := ParseClass(p)
	if !ok {
		panic("pattern: not a class pattern: " + p)
	}
	return cp
}

// ParseClass parses ^(atom quantifier?)*$ where an atom is a bracket class of
// ASCII letters, digits, ranges and plain punctuation, or one such literal character.
func ParseClass(p string) (Class, bool) {
	if len(p) < 2 || p[0] != '^' || p[len(p)-1] != '$' {
		return nil, false
	}
	body := p[1 : len(p)-1]
	var out Class
	for i := 0; i < len(body); {
		var r classRun
		switch c := body[i]; {
		case c == '[':
			n := strings.IndexByte(body[i:], ']')
			if n < 0 || !r.addClass(body[i+1:i+n]) {
				return nil, false
			}
			i += n + 1
		case plainLiteral(c):
			r.add(c)
			i++
		default:
			return nil, false
		}
		r.min, r.max = 1, 1
		if i < len(body) {
			switch body[i] {
			case '*':
				r.min, r.max = 0, -1
				i++
			case '+':
				r.min, r.max = 1, -1
				i++
			case '?':
				r.min, r.max = 0, 1
				i++
			case '{':
				n := strings.IndexByte(body[i:], '}')
				if n < 0 || !r.parseCount(body[i+1:i+n]) {
					return nil, false
				}
				i += n + 1
			}
		}
		out = append(out, r)
	}
	// A run of variable length must share no byte with any run that can come right
	// after it: the next one, and past runs that may be empty, the ones after those.
	for k := range out {
		if out[k].min == out[k].max {
			continue
		}
		for j := k + 1; j < len(out); j++ {
			if out[k].set[0]&out[j].set[0]|out[k].set[1]&out[j].set[1] != 0 {
				return nil, false
			}
			if out[j].min > 0 {
				break
			}
		}
	}
	return out, len(out) > 0
}

func (r *classRun) add(c byte) { r.set[c>>6] |= 1 << (c & 63) }

// addClass reads the inside of [...]: ranges a-z and plain characters; a '-' is
// literal only at the end. Negation, escapes and non-ASCII fall back to regexp.
func (r *classRun) addClass(s string) bool {
	if s == "" || s[0] == '^' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' || c == '[' || c >= 128 {
			return false
		}
		if i+2 < len(s) && s[i+1] == '-' {
			hi := s[i+2]
			if hi < c || hi == '\\' || hi >= 128 {
				return false
			}
			for x := c; x <= hi; x++ {
				r.add(x)
			}
			i += 2
			continue
		}
		if c == '-' && i != len(s)-1 {
			return false
		}
		r.add(c)
	}
	return true
}

// parseCount reads n or n,m of a {…} quantifier.
func (r *classRun) parseCount(s string) bool {
	lo, hi := s, s
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			lo, hi = s[:i], s[i+1:]
		}
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a < 0 || b < a || b > 1000 { // regexp refuses larger counts
		return false
	}
	r.min, r.max = a, b
	return true
}

// plainLiteral is an ASCII character that means itself outside a class.
func plainLiteral(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '~' || c == ':' || c == '@' || c == '/' || c == ','
}
