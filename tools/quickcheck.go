package tools

import (
	"encoding/json"
	"math"
	"reflect"
	"unicode/utf8"

	"github.com/flowstudio/mcp/tools/pattern"
)

// quickSchema answers one question fast: do the arguments satisfy the input schema?
// It covers the keywords the catalog's schemas use (type, properties, required,
// additionalProperties, enum, const, pattern, lengths, bounds, items, counts) and
// nothing else: a schema with any other keyword is not compiled, and its calls go to
// the full validator (google/jsonschema-go). A "yes" is final; on a "no" the full
// validator runs to word the error. A fuzz test holds the two to the same answers.
type quickSchema struct {
	types                    []string // empty: any type
	properties               map[string]*quickSchema
	required                 []string
	additional               *quickSchema // nil: any; see noAdditional
	noAdditional             bool
	enum                     []any
	hasConst                 bool
	constVal                 any
	pattern                  func(string) bool // nil: none
	minLength, maxLength     int               // -1: none
	minimum, maximum         *float64
	exclMinimum, exclMaximum *float64
	items                    *quickSchema
	minItems, maxItems       int // -1: none
	minProps, maxProps       int // -1: none
}

// annotations carry no assertion.
var annotations = map[string]bool{"description": true, "title": true, "default": true, "examples": true,
	"$comment": true, "deprecated": true, "readOnly": true, "writeOnly": true}

// compileQuick returns nil when the schema uses anything it does not cover.
func compileQuick(raw json.RawMessage) *quickSchema {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	q := &quickSchema{minLength: -1, maxLength: -1, minItems: -1, maxItems: -1, minProps: -1, maxProps: -1}
	for k, v := range m {
		ok := true
		switch k {
		case "type":
			var one string
			if json.Unmarshal(v, &one) == nil {
				q.types = []string{one}
			} else {
				ok = json.Unmarshal(v, &q.types) == nil && len(q.types) > 0
			}
		case "properties":
			var props map[string]json.RawMessage
			if ok = json.Unmarshal(v, &props) == nil; ok {
				q.properties = map[string]*quickSchema{}
				for name, p := range props {
					if q.properties[name] = compileQuick(p); q.properties[name] == nil {
						return nil
					}
				}
			}
		case "required":
			ok = json.Unmarshal(v, &q.required) == nil
		case "additionalProperties":
			var b bool
			if json.Unmarshal(v, &b) == nil {
				q.noAdditional = !b
			} else {
				q.additional = compileQuick(v)
				ok = q.additional != nil
			}
		case "enum":
			ok = json.Unmarshal(v, &q.enum) == nil && q.enum != nil
		case "const":
			q.hasConst, ok = true, json.Unmarshal(v, &q.constVal) == nil
		case "pattern":
			var p string
			if ok = json.Unmarshal(v, &p) == nil; ok {
				m, err := pattern.Compile(p)
				q.pattern, ok = m, err == nil
			}
		case "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties":
			var n int
			if ok = json.Unmarshal(v, &n) == nil && n >= 0; ok {
				*map[string]*int{"minLength": &q.minLength, "maxLength": &q.maxLength, "minItems": &q.minItems,
					"maxItems": &q.maxItems, "minProperties": &q.minProps, "maxProperties": &q.maxProps}[k] = n
			}
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			f := new(float64)
			if ok = json.Unmarshal(v, f) == nil; ok {
				*map[string]**float64{"minimum": &q.minimum, "maximum": &q.maximum,
					"exclusiveMinimum": &q.exclMinimum, "exclusiveMaximum": &q.exclMaximum}[k] = f
			}
		case "items":
			q.items = compileQuick(v) // an array of schemas (tuple form) does not compile
			ok = q.items != nil
		default:
			ok = annotations[k]
		}
		if !ok {
			return nil
		}
	}
	return q
}

// valid reports whether v (a value as encoding/json decodes into any) satisfies q.
func (q *quickSchema) valid(v any) bool {
	if len(q.types) > 0 && !q.typeOK(v) {
		return false
	}
	if q.enum != nil && !containsJSON(q.enum, v) {
		return false
	}
	if q.hasConst && !reflect.DeepEqual(q.constVal, v) {
		return false
	}
	switch x := v.(type) {
	case string:
		if q.minLength >= 0 || q.maxLength >= 0 {
			n := utf8.RuneCountInString(x)
			if (q.minLength >= 0 && n < q.minLength) || (q.maxLength >= 0 && n > q.maxLength) {
				return false
			}
		}
		if q.pattern != nil && !q.pattern(x) {
			return false
		}
	case float64:
		if (q.minimum != nil && x < *q.minimum) || (q.maximum != nil && x > *q.maximum) ||
			(q.exclMinimum != nil && x <= *q.exclMinimum) || (q.exclMaximum != nil && x >= *q.exclMaximum) {
			return false
		}
	case []any:
		if (q.minItems >= 0 && len(x) < q.minItems) || (q.maxItems >= 0 && len(x) > q.maxItems) {
			return false
		}
		if q.items != nil {
			for _, item := range x {
				if !q.items.valid(item) {
					return false
				}
			}
		}
	case map[string]any:
		if (q.minProps >= 0 && len(x) < q.minProps) || (q.maxProps >= 0 && len(x) > q.maxProps) {
			return false
		}
		for _, name := range q.required {
			if _, ok := x[name]; !ok {
				return false
			}
		}
		for name, val := range x {
			if p, ok := q.properties[name]; ok {
				if !p.valid(val) {
					return false
				}
				continue
			}
			if q.noAdditional || (q.additional != nil && !q.additional.valid(val)) {
				return false
			}
		}
	}
	return true
}

func (q *quickSchema) typeOK(v any) bool {
	for _, t := range q.types {
		switch x := v.(type) {
		case nil:
			if t == "null" {
				return true
			}
		case bool:
			if t == "boolean" {
				return true
			}
		case string:
			if t == "string" {
				return true
			}
		case float64:
			if t == "number" || (t == "integer" && x == math.Trunc(x) && !math.IsInf(x, 0)) {
				return true
			}
		case []any:
			if t == "array" {
				return true
			}
		case map[string]any:
			if t == "object" {
				return true
			}
		}
	}
	return false
}

func containsJSON(set []any, v any) bool {
	for _, e := range set {
		if reflect.DeepEqual(e, v) {
			return true
		}
	}
	return false
}
