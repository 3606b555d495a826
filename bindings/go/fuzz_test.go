package flocker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecide: any bytes get an answer, never a host failure or a panic:
// valid JSON that is an {"error": {"kind", "message"}} object or a
// decision naming its server.
func FuzzDecide(f *testing.F) {
	inputs, _ := filepath.Glob("../../examples/*.input.json")
	for _, in := range inputs {
		if b, err := os.ReadFile(in); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(""))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`{"container":{},"inventory":[{"hostname":"a","address":"b"}]}`))
	p := policy(f)
	f.Fuzz(func(t *testing.T, input []byte) {
		out, err := p.Decide(context.Background(), input)
		if err != nil {
			t.Fatalf("host failure on %q: %v", input, err)
		}
		if !json.Valid(out) {
			t.Fatalf("not JSON: %q", out)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatalf("not an object: %q", out)
		}
		if _, isErr := top["error"]; isErr != IsErrorResult(out) {
			t.Fatalf("IsErrorResult disagrees with the keys of %q", out)
		}
		d, err := ParseResult(out)
		if de, ok := err.(*DecisionError); ok {
			if de.Kind == "" || de.Message == "" {
				t.Fatalf("error without kind or message: %q", out)
			}
			return
		}
		if err != nil || d.Server.Hostname == "" {
			t.Fatalf("neither a decision nor an error: %q (%v)", out, err)
		}
	})
}
