package tools

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	json "github.com/segmentio/encoding/json"
)

// Helpers over Logic Apps workflow definitions (a flow's properties.definition): walk
// the actions at any depth, resolve a path to a part, find an action by name, compare
// two definitions. Definitions stay json.RawMessage: the tools never rewrite them.

// defAction is one action of a definition, nested ones included.
type defAction struct {
	Name   string
	Parent string   // enclosing action, "" at top level
	Path   []string // from the definition root, e.g. [actions Try actions Process_invoice]
	Raw    json.RawMessage
}

// childContainers are where an action keeps nested actions: Scope, If, Foreach and
// Until use "actions"; If adds "else.actions"; Switch has "cases.<case>.actions" and
// "default.actions".
func childContainers(action map[string]json.RawMessage) [][]string {
	var out [][]string
	if _, ok := action["actions"]; ok {
		out = append(out, []string{"actions"})
	}
	for _, branch := range []string{"else", "default"} {
		var b map[string]json.RawMessage
		if json.Unmarshal(action[branch], &b) == nil {
			if _, ok := b["actions"]; ok {
				out = append(out, []string{branch, "actions"})
			}
		}
	}
	var cases map[string]map[string]json.RawMessage
	if json.Unmarshal(action["cases"], &cases) == nil {
		for _, name := range slices.Sorted(maps.Keys(cases)) {
			if _, ok := cases[name]["actions"]; ok {
				out = append(out, []string{"cases", name, "actions"})
			}
		}
	}
	return out
}

// definitionActions lists every action of a definition, parents before children,
// siblings by name. A definition that is not an object has none.
func definitionActions(def json.RawMessage) []defAction {
	var root map[string]json.RawMessage
	if json.Unmarshal(def, &root) != nil {
		return nil
	}
	var out []defAction
	var walk func(container json.RawMessage, parent string, path []string)
	walk = func(container json.RawMessage, parent string, path []string) {
		var actions map[string]json.RawMessage
		if json.Unmarshal(container, &actions) != nil {
			return
		}
		for _, name := range slices.Sorted(maps.Keys(actions)) {
			p := append(append([]string(nil), path...), name)
			out = append(out, defAction{Name: name, Parent: parent, Path: p, Raw: actions[name]})
			var obj map[string]json.RawMessage
			if json.Unmarshal(actions[name], &obj) != nil {
				continue
			}
			for _, c := range childContainers(obj) {
				walk(jsonAt(obj, c), name, append(append([]string(nil), p...), c...))
			}
		}
	}
	walk(root["actions"], "", []string{"actions"})
	return out
}

// lookup follows object keys from obj.
func jsonAt(obj map[string]json.RawMessage, keys []string) json.RawMessage {
	cur := obj
	for i, k := range keys {
		v := cur[k]
		if i == len(keys)-1 {
			return v
		}
		if json.Unmarshal(v, &cur) != nil {
			return nil
		}
	}
	return nil
}

// definitionTriggers returns the triggers of a definition by name.
func definitionTriggers(def json.RawMessage) map[string]json.RawMessage {
	var root struct {
		Triggers map[string]json.RawMessage `json:"triggers"`
	}
	json.Unmarshal(def, &root)
	return root.Triggers
}

// findAction finds an action anywhere in a definition; names are unique in a
// workflow and compared case-insensitively, as the service does.
func findAction(def json.RawMessage, name string) (defAction, bool) {
	for _, a := range definitionActions(def) {
		if strings.EqualFold(a.Name, name) {
			return a, true
		}
	}
	return defAction{}, false
}

// dottedPath renders path segments the way get_live_flow's path argument takes them.
func dottedPath(segs []string) string { return strings.Join(segs, ".") }

// maxPathSegments bounds how deep a path may go.
const maxPathSegments = 64

// resolvePath returns the part of a definition at path, written either dotted
// ("actions.Try.actions.Process_invoice"; a name containing dots is found by joining
// segments) or as a JSON pointer ("/actions/Try", with ~1 for / and ~0 for ~). Keys
// match exactly, else case-insensitively. It also returns the canonical dotted path.
func resolvePath(def json.RawMessage, path string) (json.RawMessage, string, error) {
	var segs []string
	if strings.HasPrefix(path, "/") {
		for _, s := range strings.Split(path[1:], "/") {
			segs = append(segs, strings.NewReplacer("~1", "/", "~0", "~").Replace(s))
		}
	} else {
		segs = strings.Split(path, ".")
	}
	if len(segs) > maxPathSegments {
		return nil, "", &ToolError{Message: "invalid argument path: more than " + strconv.Itoa(maxPathSegments) + " segments"}
	}
	cur := def
	var done []string
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		if seg == "" {
			continue // tolerate "a..b", a leading "." or a trailing "/"
		}
		trimmed := bytes.TrimSpace(cur)
		switch {
		case len(trimmed) > 0 && trimmed[0] == '{':
			var obj map[string]json.RawMessage
			if json.Unmarshal(cur, &obj) != nil { // the decoder's error quotes the text: never logged
				return nil, "", fmt.Errorf("definition at %q is not valid JSON", dottedPath(done))
			}
			key, n := matchKey(obj, segs[i:], !strings.HasPrefix(path, "/"))
			if key == "" {
				return nil, "", pathError(path, done, seg, slices.Sorted(maps.Keys(obj)))
			}
			cur, done, i = obj[key], append(done, key), i+n-1
		case len(trimmed) > 0 && trimmed[0] == '[':
			var arr []json.RawMessage
			if json.Unmarshal(cur, &arr) != nil {
				return nil, "", fmt.Errorf("definition at %q is not valid JSON", dottedPath(done))
			}
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(arr) {
				return nil, "", &ToolError{Message: "path " + strconv.Quote(path) + ": " + strconv.Quote(seg) +
					" is not an index of the array at " + strconv.Quote(dottedPath(done)) + " (length " + strconv.Itoa(len(arr)) + ")"}
			}
			cur, done = arr[idx], append(done, seg)
		default:
			return nil, "", &ToolError{Message: "path " + strconv.Quote(path) + ": " + strconv.Quote(dottedPath(done)) +
				" is a plain value; nothing is below it"}
		}
	}
	return cur, dottedPath(done), nil
}

// matchKey finds the key for segs[0] in obj, exact first, then case-insensitive; in
// dotted paths it also tries segs[0].segs[1]… for names that contain dots. It returns
// the key and how many segments it used.
func matchKey(obj map[string]json.RawMessage, segs []string, dotted bool) (string, int) {
	limit := 1
	if dotted {
		limit = len(segs)
	}
	for n := 1; n <= limit; n++ {
		want := strings.Join(segs[:n], ".")
		if _, ok := obj[want]; ok {
			return want, n
		}
		for k := range obj {
			if strings.EqualFold(k, want) {
				return k, n
			}
		}
	}
	return "", 0
}

func pathError(path string, done []string, seg string, keys []string) *ToolError {
	where := "the definition root"
	if len(done) > 0 {
		where = strconv.Quote(dottedPath(done))
	}
	const show = 25
	more := ""
	if len(keys) > show {
		keys, more = keys[:show], ", …"
	}
	return &ToolError{
		Message: "path " + strconv.Quote(path) + ": no key " + strconv.Quote(seg) + " under " + where +
			"; keys there: " + strings.Join(keys, ", ") + more,
		Next: "pick one of those keys, or pass actionName to find an action at any depth",
	}
}

// ownJSON is an action without its nested actions, decoded for comparison: a change
// deep inside a scope is reported on the inner action only.
func ownJSON(raw json.RawMessage) any {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return decodeJSONValue(raw)
	}
	for _, c := range childContainers(obj) {
		switch len(c) {
		case 1:
			delete(obj, "actions")
		default:
			obj[c[0]] = withoutPath(obj[c[0]], c[1:])
		}
	}
	out := map[string]any{}
	for k, v := range obj {
		out[k] = decodeJSONValue(v)
	}
	return out
}

// withoutPath removes the key at keys (one or two levels) from a JSON object.
func withoutPath(raw json.RawMessage, keys []string) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	if len(keys) == 1 {
		delete(obj, keys[0])
	} else {
		obj[keys[0]] = withoutPath(obj[keys[0]], keys[1:])
	}
	out, _ := json.Marshal(obj)
	return out
}

func decodeJSONValue(raw json.RawMessage) any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	return v
}

// nameChanges lists added, removed and changed names between two sets of items.
type nameChanges struct {
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
}

func (c *nameChanges) empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0
}

func diffNamed(before, after map[string]any) *nameChanges {
	c := &nameChanges{}
	for _, name := range slices.Sorted(maps.Keys(after)) {
		old, ok := before[name]
		switch {
		case !ok:
			c.Added = append(c.Added, name)
		case !reflect.DeepEqual(old, after[name]):
			c.Changed = append(c.Changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[name]; !ok {
			c.Removed = append(c.Removed, name)
		}
	}
	if c.empty() {
		return nil
	}
	return c
}

// actionIndex maps action names to what a change report compares: the action without
// its children, and where it sits.
func actionIndex(def json.RawMessage) map[string]any {
	out := map[string]any{}
	for _, a := range definitionActions(def) {
		out[a.Name] = []any{a.Parent, ownJSON(a.Raw)}
	}
	return out
}

func triggerIndex(def json.RawMessage) map[string]any {
	out := map[string]any{}
	for name, raw := range definitionTriggers(def) {
		out[name] = decodeJSONValue(raw)
	}
	return out
}

// otherDefinitionChanges names the top-level keys besides triggers and actions
// (parameters, outputs, …) that differ.
func otherDefinitionChanges(before, after json.RawMessage) []string {
	var b, a map[string]json.RawMessage
	json.Unmarshal(before, &b)
	json.Unmarshal(after, &a)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if k == "triggers" || k == "actions" {
			continue
		}
		if !reflect.DeepEqual(decodeJSONValue(b[k]), decodeJSONValue(a[k])) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// jsonContains reports whether got holds everything want holds: equal scalars, equal
// arrays element by element, and for objects every key of want (got may have more,
// such as defaults the service adds on save).
func jsonContains(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok || !jsonContains(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !jsonContains(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

// sameNames reports whether two maps have the same keys.
func sameNames[A, B any](a map[string]A, b map[string]B) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}
