package tools

import (
	"bytes"
	stdjson "encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var rawJSONSeeds = []string{
	`{}`, `{"a":1}`, `{"a":1,"triggers":{"manual":{"type":"Request","kind":"Button"}}}`,
	`{"triggers":true,"b":[1,{"c":"}"}]}`, `{"x":"a\"triggers\":1","triggers":null}`,
	`{"a":"\\","triggers":[{"t":"\\\""}],"z":-1.5e3}`, `{"a":{"triggers":1},"b":2}`, `[1,2]`, `"s"`,
	`{"a": 1}`, "{\"a\":\"x y\"}", "{\"a\":\"x\\ny\"}", `{"triggers":{"a b":{"type":"T"}}}`,
}

// FuzzRawJSON holds the scanners to encoding/json: soleMember finds what decoding into
// a struct field finds whenever it says it is sure, and is sure whenever no other key
// could be read as the field; isCompact agrees with json.Compact.
func FuzzRawJSON(f *testing.F) {
	for _, s := range rawJSONSeeds {
		f.Add(s, "triggers")
	}
	f.Fuzz(func(t *testing.T, text, key string) {
		raw := []byte(text)
		if !stdjson.Valid(raw) {
			return
		}
		var compact bytes.Buffer
		stdjson.Compact(&compact, raw)
		if got, want := isCompact(raw), bytes.Equal(compact.Bytes(), raw); got != want {
			t.Fatalf("isCompact(%q) = %v, want %v", raw, got, want)
		}
		c := compact.Bytes()
		if !plainKey.MatchString(key) {
			return // a key that can go into a struct tag as it is
		}
		field := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "F", Type: reflect.TypeFor[stdjson.RawMessage](),
			Tag: reflect.StructTag(`json:"` + key + `"`)}}))
		if stdjson.Unmarshal(c, field.Interface()) != nil {
			return // not an object
		}
		want := field.Elem().Field(0).Bytes()
		got, ok := soleMember(c, key)
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("soleMember(%s, %q) = %s, want %s", c, key, got, want)
		}
		if !ok && !ambiguousFor(c, key) {
			t.Fatalf("soleMember(%s, %q) is unsure although no other key reads as the field", c, key)
		}
	})
}

var plainKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,15}$`)

// ambiguousFor: some key of the object other than one plain key spelt as key could be
// read as the field (duplicates, other cases, escapes, non-ASCII).
func ambiguousFor(obj []byte, key string) bool {
	dec := stdjson.NewDecoder(bytes.NewReader(obj))
	dec.Token()
	exact := 0
	for dec.More() {
		k, _ := dec.Token()
		var skip stdjson.RawMessage
		dec.Decode(&skip)
		switch name := k.(string); {
		case name == key:
			exact++
		case strings.EqualFold(name, key) || !plainKey.MatchString(name):
			return true
		}
	}
	return exact > 1 || bytes.IndexByte(obj, '\\') >= 0
}

func TestTriggerSummaryReadsOnlyTriggers(t *testing.T) {
	def := []byte(`{"actions":{"A":{"type":"Compose","inputs":"{\"triggers\":1}"}},"triggers":{"manual":{"type":"Request","kind":"Button","inputs":{}},"Recurrence":{"type":"Recurrence"}},"z":1}`)
	got := triggerSummary(def)
	if len(got) != 2 || got["manual"] != "Request/Button" || got["Recurrence"] != "Recurrence" {
		t.Fatalf("triggerSummary = %v", got)
	}
	if got := triggerSummary(nil); len(got) != 0 {
		t.Fatalf("nil definition: %v", got)
	}
}

// FuzzTriggerSummary holds the scanning triggerSummary to decoding the triggers.
func FuzzTriggerSummary(f *testing.F) {
	f.Add(`{"triggers":{"manual":{"type":"Request","kind":"Button"},"R":{"type":"Recurrence"}}}`)
	f.Add(`{"triggers":{"m\u00e9":{"type":"Req\"uest","kind":""}}}`)
	f.Add(`{"triggers":{"a":{"kind":"K"},"b":{"type":1}}}`)
	f.Add(`{"actions":{},"triggers":[]}`)
	// encoding/json matches keys regardless of case and keeps the last duplicate.
	f.Add(`{"triggers":{"":{"type":"0000","tYpe":""}}}`)
	f.Add(`{"triggers":{"a":{"type":"A"}},"Triggers":{"b":{"type":"B"}}}`)
	f.Add(`{"triggers":{"a":{"type":"A"}},"triggers":{"b":{"type":"B"}}}`)
	f.Add(`{"triggers":{"a":{"type":"A"},"a":{"type":"B"}}}`)
	f.Add(`{"triggers":{"a":{"type":"A","\u212aind":"K"}}}`)
	f.Add(`{"triggers":{"a":{"type":"A","kind":null}},"x":{}}`)
	f.Fuzz(func(t *testing.T, text string) {
		var compact bytes.Buffer
		if stdjson.Compact(&compact, []byte(text)) != nil {
			return
		}
		var root struct {
			Triggers map[string]struct{ Type, Kind string } `json:"triggers"`
		}
		if stdjson.Unmarshal(compact.Bytes(), &root) != nil {
			return
		}
		want := map[string]string{}
		for name, tr := range root.Triggers {
			want[name] = tr.Type
			if tr.Kind != "" {
				want[name] += "/" + tr.Kind
			}
		}
		got := triggerSummary(compact.Bytes())
		if len(got) != len(want) {
			t.Fatalf("triggerSummary(%s) = %v, want %v", compact.Bytes(), got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("triggerSummary(%s) = %v, want %v", compact.Bytes(), got, want)
			}
		}
	})
}
