package tools

import (
	"encoding/json"
	"reflect"
	"testing"
)

// decodeLikeCatalog decodes arguments the way a tools/call does: one parse into the
// generic value, then the typed input filled from it.
func decodeLikeCatalog[T any](t testing.TB, raw string) (T, error) {
	var in T
	var args map[string]any
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatalf("test input %s: %v", raw, err)
	}
	err := decodeArgs(&in, args, func() map[string]json.RawMessage {
		var m map[string]json.RawMessage
		json.Unmarshal([]byte(raw), &m)
		return m
	})
	return in, err
}

// sameAsEncodingJSON checks that decodeArgs fills In exactly as json.Unmarshal would.
func sameAsEncodingJSON[T any](t *testing.T, raw string) {
	t.Helper()
	var want T
	if err := json.Unmarshal([]byte(raw), &want); err != nil {
		t.Fatalf("json.Unmarshal %s: %v", raw, err)
	}
	got, err := decodeLikeCatalog[T](t, raw)
	if err != nil {
		t.Fatalf("decodeArgs %s: %v", raw, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeArgs %s:\n got %#v\nwant %#v", raw, got, want)
	}
}

// nested exercises what tool inputs use, and more: embedded structs, pointers,
// slices, maps, raw JSON at the top and deeper, any.
type nested struct {
	flowArgs
	Top      int                           `json:"top"`
	Ratio    float64                       `json:"ratio"`
	On       *bool                         `json:"on"`
	Rep      *int                          `json:"rep"`
	Tags     []string                      `json:"tags"`
	Counts   map[string]int                `json:"counts"`
	Raw      json.RawMessage               `json:"raw"`
	Params   map[string]json.RawMessage    `json:"params"`
	Any      any                           `json:"any"`
	Inner    struct{ A []struct{ B int } } `json:"inner"`
	DeepRaw  struct{ R json.RawMessage }   `json:"deepRaw"`
	Untagged string
	skipped  string
}

func TestDecodeArgsMatchesEncodingJSON(t *testing.T) {
	sameAsEncodingJSON[nested](t, `{"environmentName":"Default-1","flowName":"f","top":50,"ratio":0.25,"on":false,"rep":0,
		"tags":["a","b"],"counts":{"x":1},"raw":{"b":1, "a":[1.50,12345678901234567890]},"params":{"p":"v","q":{"n":1e3}},
		"any":{"k":[1,"2",null,true]},"inner":{"A":[{"B":3}]},"deepRaw":{"R":{"z":1}},"Untagged":"u"}`)
	sameAsEncodingJSON[nested](t, `{"on":null,"tags":null,"raw":null,"any":null}`)
	sameAsEncodingJSON[nested](t, `{}`)
	// The tool inputs with raw JSON, embedded structs and pointers.
	sameAsEncodingJSON[triggerIn](t, `{"environmentName":"e","flowName":"f","triggerName":"manual","body":{"amount":1.0,"big":12345678901234567890}}`)
	sameAsEncodingJSON[dynamicIn](t, `{"environmentName":"e","connectorName":"shared_sql","operationId":"op","parameter":"p","parameters":{"server":"s","n":2}}`)
	sameAsEncodingJSON[updateFlowIn](t, `{"environmentName":"e","flowName":"f","definition":{"triggers":{},"actions":{"A":{"type":"Compose","inputs":1e2}}},"connectionReferences":{}}`)
	sameAsEncodingJSON[actionOutputsIn](t, `{"environmentName":"e","flowName":"f","runName":"r","actionName":"a","repetition":3,"maxBytes":4096}`)
}

// TestDecodeArgsKeepsRawText: raw JSON arguments reach the handler byte for byte
// (numbers and key order as the caller wrote them).
func TestDecodeArgsKeepsRawText(t *testing.T) {
	in, err := decodeLikeCatalog[triggerIn](t, `{"environmentName":"e","flowName":"f","body":{"z":1.50,"a":12345678901234567890}}`)
	if err != nil {
		t.Fatal(err)
	}
	if string(in.Body) != `{"z":1.50,"a":12345678901234567890}` {
		t.Fatalf("body %s", in.Body)
	}
}

func TestDecodeArgsRefusesWrongTypes(t *testing.T) {
	for _, raw := range []string{`{"top":"5"}`, `{"top":1.5}`, `{"top":1e300}`, `{"tags":"a"}`, `{"on":1}`, `{"counts":[1]}`} {
		if _, err := decodeLikeCatalog[nested](t, raw); err == nil {
			t.Errorf("%s decoded without error", raw)
		}
	}
}

func FuzzDecodeArgs(f *testing.F) {
	f.Add(`{"environmentName":"e","top":3,"tags":["x"],"raw":[1,2],"any":{"a":null}}`)
	f.Add(`{"counts":{"a":-1},"on":true,"rep":null,"inner":{"A":[]}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var args map[string]any
		if json.Unmarshal([]byte(raw), &args) != nil {
			return
		}
		var want nested
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, err := decodeLikeCatalog[nested](t, raw)
		if wantErr == nil && err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %#v\nwant %#v", raw, got, want)
		}
		if wantErr == nil && err != nil {
			// Only where the schema would have refused first: a number that is not
			// an exact integer below 2^53 for an int field.
			if _, ok := args["top"]; !ok {
				if _, ok := args["counts"]; !ok {
					if _, ok := args["rep"]; !ok {
						if _, ok := args["inner"]; !ok {
							t.Fatalf("%s: decodeArgs refused what encoding/json accepts: %v", raw, err)
						}
					}
				}
			}
		}
	})
}

func TestCompactJSONKeepsCompactTextAndCompactsTheRest(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":"x y","b":[1,2]}`:            `{"a":"x y","b":[1,2]}`,
		`{"a": "x\" y",` + "\n" + `"b":1}`: `{"a":"x\" y","b":1}`,
		` [1, 2] `:                         `[1,2]`,
		`"a\\"`:                            `"a\\"`,
	} {
		if got := string(compactJSON(json.RawMessage(in))); got != want {
			t.Errorf("compactJSON(%q) = %q, want %q", in, got, want)
		}
	}
}
