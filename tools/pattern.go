package tools

import (
	"regexp"
	"strconv"
)

// A schema pattern is matched on every call that carries the property (environment
// and flow names, run names), and regexp's matcher costs more than the rest of the
// quick check. Most of the catalog's patterns are anchored runs of ASCII character
// classes (a GUID, [A-Za-z0-9~][A-Za-z0-9-]*); compilePattern turns those into a
// table walk and leaves every other pattern to regexp. FuzzQuickSchema holds the two
// to the same answers.

// classRun is one [class]{min,max} of an anchored pattern; max < 0 is unbounded.
type classRun struct {
	set      [2]uint64 // bit c set: ASCII byte c is in the class
	min, max int
}

func (r *classRun) has(c byte) bool { return c < 128 && r.set[c>>6]&(1<<(c&63)) != 0 }

// classPattern matches ^run run …$ greedily. compileClassPattern accepts only patterns
// where greedy matching is exact: a run of variable length is followed by the end or by
// a run with no byte in common, so there is never anything to backtrack.
type classPattern []classRun

func (p classPattern) match(s string) bool {
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

// compilePattern returns a matcher for an ECMA-262 schema pattern.
func compilePattern(p string) (func(string) bool, error) {
	if cp, ok := compileClassPattern(p); ok {
		return cp.match, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	return re.MatchString, nil
}

// compileClassPattern parses ^(atom quantifier?)*$ where an atom is a bracket class of
// ASCII letters, digits, ranges and plain punctuation, or one such literal character.
func compileClassPattern(p string) (classPattern, bool) {
	if len(p) < 2 || p[0] != '^' || p[len(p)-1] != '$' {
		return nil, false
	}
	body := p[1 : len(p)-1]
	var out classPattern
	for i := 0; i < len(body); {
		var r classRun
		switch c := body[i]; {
		case c == '[':
			end := i + 1
			for end < len(body) && body[end] != ']' {
				end++
			}
			if end == len(body) || !r.addClass(body[i+1:end]) {
				return nil, false
			}
			i = end + 1
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
				end := i + 1
				for end < len(body) && body[end] != '}' {
					end++
				}
				if end == len(body) || !r.parseCount(body[i+1:end]) {
					return nil, false
				}
				i = end + 1
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
