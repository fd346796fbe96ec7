package rpc

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzAppendString holds AppendString to encoding/json without HTML escaping.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `{"a":"b\"c\\d"}`, "tab\tnew\nline\r\x00\x1f", "\u2028\u2029", "é€😀", "\xff\xfe bad", "<&>", "\b\f\v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want.Bytes())
		}
	})
}

func BenchmarkAppendStringJSON(b *testing.B) {
	text, err := os.ReadFile("testdata/result.json") // a get_live_flow answer from the simulator
	if err != nil {
		b.Fatal(err)
	}
	s := string(text)
	buf := make([]byte, 0, 2*len(s))
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
