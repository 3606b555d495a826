package flocker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireEnv returns $name. Unset, the test skips with the reason, except
// under FLOCKER_CI=1 (scripts/test-go.sh), where a missing input fails:
// CI must never go green by skipping.
func requireEnv(t *testing.T, name, why string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("FLOCKER_CI") == "1" {
			t.Fatalf("%s is unset under FLOCKER_CI=1 (%s)", name, why)
		}
		t.Skipf("%s is unset: %s (scripts/test-go.sh sets it)", name, why)
	}
	return v
}

var (
	sharedOnce   sync.Once
	sharedPolicy *Policy
	sharedErr    error
)

// policy is the default module's Policy, shared by tests that do not
// change limits. The deadline is generous: the tests run on busy machines
// and these tests are about bytes, not time.
func policy(t testing.TB) *Policy {
	t.Helper()
	sharedOnce.Do(func() {
		sharedPolicy, sharedErr = New(context.Background(), WithDeadline(30*time.Second))
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedPolicy
}

func TestEmbeddedModuleIsFresh(t *testing.T) {
	path := requireEnv(t, "FLOCKER_POLICY_WASM", "the freshly built flocker_policy.wasm to compare the embedded copy with")
	fresh, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, DefaultModule) {
		t.Fatalf("the embedded flocker_policy.wasm (%d bytes) differs from %s (%d bytes): run bindings/go/update-module.sh and commit",
			len(DefaultModule), path, len(fresh))
	}
}

func TestInfo(t *testing.T) {
	info := policy(t).Info()
	if info.Name != "flocker-policy" || info.ABI != 1 || info.Version == "" {
		t.Fatalf("info %+v", info)
	}
}

// The examples' outputs are the native engine's, pretty-printed; the
// engine prints compact JSON with the same key order, which json.Compact
// restores without reordering anything.
func TestExamplesMatchNative(t *testing.T) {
	inputs, err := filepath.Glob("../../examples/*.input.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 10 {
		t.Fatalf("only %d examples", len(inputs))
	}
	p := policy(t)
	for _, in := range inputs {
		input, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		pretty, err := os.ReadFile(strings.TrimSuffix(in, ".input.json") + ".output.json")
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, pretty); err != nil {
			t.Fatal(err)
		}
		got, err := p.Decide(context.Background(), input)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want.Bytes())
		}
	}
}

type corpusCase struct {
	Input, Output, Snapshot, Request, Changes string
}

func corpus(t testing.TB) []corpusCase {
	t.Helper()
	var dir string
	if tt, ok := t.(*testing.T); ok {
		dir = requireEnv(tt, "FLOCKER_GO_CORPUS", "the directory core/examples/go_corpus.rs wrote")
	} else {
		dir = os.Getenv("FLOCKER_GO_CORPUS")
	}
	f, err := os.Open(filepath.Join(dir, "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("corpus line %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCorpusMatchesNative(t *testing.T) {
	cases := corpus(t)
	if len(cases) < 1000 {
		t.Fatalf("corpus has %d cases, want at least 1000", len(cases))
	}
	p := policy(t)
	decisions, refusals := 0, 0
	for i, c := range cases {
		got, err := p.Decide(context.Background(), []byte(c.Input))
		if err != nil {
			t.Fatalf("case %d: %v", i+1, err)
		}
		if string(got) != c.Output {
			t.Fatalf("case %d:\ninput %s\n  got %s\n want %s", i+1, c.Input, got, c.Output)
		}
		if IsErrorResult(got) {
			refusals++
		} else {
			decisions++
		}
	}
	// Both kinds of answer must be common, or agreement proves little.
	if decisions < len(cases)/10 || refusals < len(cases)/10 {
		t.Fatalf("%d decisions, %d refusals", decisions, refusals)
	}
}

// Resident state, loaded fresh or built by changes, decides the same bytes
// as one-shot, and the two states export the same bytes.
func TestResidentMatchesOneShot(t *testing.T) {
	cases := corpus(t)
	p := policy(t)
	ctx := context.Background()
	checked := 0
	for i, c := range cases {
		fresh, err := p.NewSnapshot(ctx, []byte(c.Snapshot))
		var de *DecisionError
		if errors.As(err, &de) {
			// A snapshot the engine refuses is refused one-shot too.
			if !IsErrorResult([]byte(c.Output)) || c.Changes != "" {
				t.Fatalf("case %d: snapshot refused (%v) but one-shot decided", i+1, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("case %d: %v", i+1, err)
		}
		got, err := fresh.Decide(ctx, []byte(c.Request))
		if err != nil || string(got) != c.Output {
			t.Fatalf("case %d: resident %s (%v), one-shot %s", i+1, got, err, c.Output)
		}
		built, err := p.NewSnapshot(ctx, []byte(`{"inventory":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := built.Apply(ctx, []byte(c.Changes)); err != nil {
			t.Fatalf("case %d: apply: %v", i+1, err)
		}
		a, err1 := built.Export(ctx)
		b, err2 := fresh.Export(ctx)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("case %d: built exports %s (%v), fresh %s (%v)", i+1, a, err1, b, err2)
		}
		got, err = built.Decide(ctx, []byte(c.Request))
		if err != nil || string(got) != c.Output {
			t.Fatalf("case %d: incremental %s (%v), one-shot %s", i+1, got, err, c.Output)
		}
		fresh.Close()
		built.Close()
		checked++
	}
	if checked < len(cases)/2 {
		t.Fatalf("only %d of %d snapshots loaded", checked, len(cases))
	}
}

// 16 goroutines on one Policy (8 instances, so callers also wait) give
// every case the answer one goroutine gives.
func TestConcurrentCallersAgree(t *testing.T) {
	cases := corpus(t)
	p, err := New(context.Background(), WithInstances(8), WithDeadline(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Each goroutine walks the corpus from its own offset, so the
			// same instance sees many different histories.
			for k := range cases {
				c := cases[(k+g*61)%len(cases)]
				got, err := p.Decide(context.Background(), []byte(c.Input))
				if err != nil {
					errs <- err
					return
				}
				if string(got) != c.Output {
					errs <- errors.New("goroutine answer differs for input " + c.Input)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
