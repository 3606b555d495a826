package flocker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The WASM section of docs/PERFORMANCE.md: 1,000 servers, 10^3 routes,
// the typical request (2 links, 1 named volume, 2 exposed ports), resident
// state loaded once. The state and request are written by
// core/examples/go_corpus.rs into $FLOCKER_GO_CORPUS, from the same
// records as tests/benches/wasm.rs.
func benchInputs(b *testing.B) (snapshot, request []byte) {
	dir := os.Getenv("FLOCKER_GO_CORPUS")
	if dir == "" {
		b.Skip("FLOCKER_GO_CORPUS is unset: run core/examples/go_corpus.rs (scripts/test-go.sh does)")
	}
	var err error
	if snapshot, err = os.ReadFile(filepath.Join(dir, "bench-snapshot.json")); err != nil {
		b.Fatal(err)
	}
	if request, err = os.ReadFile(filepath.Join(dir, "bench-request.json")); err != nil {
		b.Fatal(err)
	}
	return snapshot, request
}

func benchResident(b *testing.B, opts ...Option) {
	snapshot, request := benchInputs(b)
	ctx := context.Background()
	p, err := New(ctx, append([]Option{WithLoadDeadline(time.Minute)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	s, err := p.NewSnapshot(ctx, snapshot)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	out, err := s.Decide(ctx, request)
	if err != nil || IsErrorResult(out) {
		b.Fatalf("the request must decide: %s %v", out, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Decide(ctx, request); err != nil {
			b.Fatal(err)
		}
	}
}

// Interrupt on (the default: WithCloseOnContextDone) and off.
func BenchmarkResidentDecide(b *testing.B)            { benchResident(b) }
func BenchmarkResidentDecideNoInterrupt(b *testing.B) { benchResident(b, WithoutInterrupt()) }

// The fixed cost of a one-shot call: an input the engine refuses at once.
func benchOverhead(b *testing.B, opts ...Option) {
	ctx := context.Background()
	p, err := New(ctx, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	in := []byte(`{}`)
	for i := 0; i < b.N; i++ {
		if _, err := p.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCallOverhead(b *testing.B)            { benchOverhead(b) }
func BenchmarkCallOverheadNoInterrupt(b *testing.B) { benchOverhead(b, WithoutInterrupt()) }

// One-shot at 10^3 routes: the whole cluster parsed per call.
func BenchmarkOneShotDecide(b *testing.B) {
	snapshot, request := benchInputs(b)
	input := append(append(append([]byte{}, request[:len(request)-1]...), ','), snapshot[1:]...)
	ctx := context.Background()
	p, err := New(ctx, WithDeadline(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	if out, err := p.Decide(ctx, input); err != nil || IsErrorResult(out) {
		b.Fatalf("the input must decide: %.300s %v", out, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Decide(ctx, input); err != nil {
			b.Fatal(err)
		}
	}
}

// A new instance per call, the alternative to pooling.
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	p, err := New(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	for i := 0; i < b.N; i++ {
		in, err := p.instantiate(ctx, p.cfg.memory, true)
		if err != nil {
			b.Fatal(err)
		}
		in.close()
	}
}
