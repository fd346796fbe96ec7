package tools

import (
	"encoding"
	"fmt"
	json "github.com/segmentio/encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
)

// A call's arguments are parsed once, into the generic value (map[string]any,
// float64, …) that the input schema is validated on; the handler's typed input
// is then filled from that same value by decodeArgs, not by parsing the JSON
// again. The one exception keeps the caller's bytes exact: a top-level argument
// whose type holds raw JSON (a flow definition, a trigger body) is cut out of
// the original text, so numbers and key order reach the upstream untouched.

// decodeArgs fills *dst (a struct) from the parsed arguments. raw returns the
// arguments' members as raw JSON, parsed only when a field asks for it.
func decodeArgs(dst any, args map[string]any, raw func() map[string]json.RawMessage) error {
	v := reflect.ValueOf(dst).Elem()
	plan := planFor(v.Type())
	for name, val := range args {
		f, ok := plan.lookup(name)
		if !ok {
			continue // not a field of the input: the schema allowed it, the handler ignores it
		}
		fv := fieldByIndex(v, f.index)
		var err error
		if f.raw {
			member, ok := raw()[name] // name as the caller spelled it
			if !ok {
				return fmt.Errorf("argument %s: not found in the arguments' text", name)
			}
			err = json.Unmarshal(member, fv.Addr().Interface())
		} else {
			err = assign(fv, val)
		}
		if err != nil {
			return fmt.Errorf("argument %s: %w", name, err)
		}
	}
	return nil
}

// argsPlan maps argument names to struct fields, as encoding/json would (json
// tags, promoted fields of embedded structs).
type argsPlan struct {
	fields map[string]argField
}

type argField struct {
	index []int
	raw   bool // the type holds raw JSON or decodes itself: take the member's text
}

// lookup finds the field for a member name: the exact name, else one equal under
// case folding, as encoding/json matches.
func (p *argsPlan) lookup(name string) (argField, bool) {
	if f, ok := p.fields[name]; ok {
		return f, true
	}
	for n, f := range p.fields {
		if strings.EqualFold(n, name) {
			return f, true
		}
	}
	return argField{}, false
}

var plans sync.Map // reflect.Type → *argsPlan

func planFor(t reflect.Type) *argsPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*argsPlan)
	}
	p := &argsPlan{fields: map[string]argField{}}
	addFields(p, t, nil)
	plans.Store(t, p)
	return p
}

func addFields(p *argsPlan, t reflect.Type, prefix []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		index := append(append([]int(nil), prefix...), i)
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			addFields(p, sf.Type, index)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, taken := p.fields[name]; taken && len(prefix) > 0 {
			continue // the outer struct's field wins, as in encoding/json
		}
		p.fields[name] = argField{index: index, raw: holdsRawJSON(sf.Type)}
	}
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// holdsRawJSON reports whether a value of t keeps JSON text or decodes itself,
// anywhere inside: such values are filled from the JSON, not the parsed value.
func holdsRawJSON(t reflect.Type) bool {
	if t == rawMessageType || reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return holdsRawJSON(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if holdsRawJSON(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// assign stores a parsed JSON value in dst with encoding/json's rules.
func assign(dst reflect.Value, val any) error {
	if val == nil { // null leaves the zero value, as encoding/json does
		dst.SetZero()
		return nil
	}
	if dst.Kind() == reflect.Pointer {
		if dst.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
		}
		return assign(dst.Elem(), val)
	}
	if holdsRawJSON(dst.Type()) { // nested raw JSON: encode the parsed value back
		b, err := json.Marshal(val)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, dst.Addr().Interface())
	}
	switch dst.Kind() {
	case reflect.Interface:
		if dst.NumMethod() != 0 {
			return fmt.Errorf("cannot hold a value in %s", dst.Type())
		}
		dst.Set(reflect.ValueOf(val))
		return nil
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			return mismatch(val, dst)
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			return mismatch(val, dst)
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f, ok := val.(float64)
		if !ok || f != math.Trunc(f) || dst.OverflowInt(int64(f)) || math.Abs(f) > 1<<53 {
			return mismatch(val, dst)
		}
		dst.SetInt(int64(f))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f, ok := val.(float64)
		if !ok || f < 0 || f != math.Trunc(f) || dst.OverflowUint(uint64(f)) || f > 1<<53 {
			return mismatch(val, dst)
		}
		dst.SetUint(uint64(f))
	case reflect.Float32, reflect.Float64:
		f, ok := val.(float64)
		if !ok || dst.OverflowFloat(f) {
			return mismatch(val, dst)
		}
		dst.SetFloat(f)
	case reflect.Slice:
		items, ok := val.([]any)
		if !ok {
			return mismatch(val, dst)
		}
		s := reflect.MakeSlice(dst.Type(), len(items), len(items))
		for i, item := range items {
			if err := assign(s.Index(i), item); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Map:
		obj, ok := val.(map[string]any)
		if !ok || dst.Type().Key().Kind() != reflect.String {
			return mismatch(val, dst)
		}
		m := reflect.MakeMapWithSize(dst.Type(), len(obj))
		for k, item := range obj {
			ev := reflect.New(dst.Type().Elem()).Elem()
			if err := assign(ev, item); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), ev)
		}
		dst.Set(m)
	case reflect.Struct:
		obj, ok := val.(map[string]any)
		if !ok {
			return mismatch(val, dst)
		}
		plan := planFor(dst.Type())
		for name, item := range obj {
			if f, ok := plan.lookup(name); ok {
				if err := assign(fieldByIndex(dst, f.index), item); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("cannot decode into %s", dst.Type())
	}
	return nil
}

func mismatch(val any, dst reflect.Value) error {
	return fmt.Errorf("cannot use %T as %s", val, dst.Type())
}
