package flocker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func hostile(t *testing.T, opts ...Option) *Policy {
	t.Helper()
	p, err := NewFromBytes(context.Background(), hostileModule(1), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func TestDeadlineFailsOneCall(t *testing.T) {
	p := hostile(t, WithDeadline(50*time.Millisecond), WithInstances(1))
	ctx := context.Background()
	start := time.Now()
	_, err := p.Decide(ctx, []byte("L"))
	if !errors.Is(err, ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("looping call: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the 50 ms deadline stopped the loop after %v", d)
	}
	// Same pool of one: the next call gets a fresh instance.
	out, err := p.Decide(ctx, []byte("{}"))
	if err != nil || !strings.Contains(string(out), "hostile") {
		t.Fatalf("call after the deadline: %s, %v", out, err)
	}
	// The caller's own context bounds a call too.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Decide(cctx, []byte("L")); !errors.Is(err, ErrDeadline) {
		t.Fatalf("looping call under the caller's deadline: %v", err)
	}
}

func TestMemoryCapFailsOneCall(t *testing.T) {
	p := hostile(t, WithMemoryLimit(4<<20), WithInstances(1))
	ctx := context.Background()
	_, err := p.Decide(ctx, []byte("G"))
	var he *HostError
	if !errors.Is(err, ErrMemoryLimit) || !errors.As(err, &he) || he.Op != "flocker_decide" {
		t.Fatalf("growing call: %v", err)
	}
	out, err := p.Decide(ctx, []byte("{}"))
	if err != nil || !strings.Contains(string(out), "hostile") {
		t.Fatalf("call after the memory cap: %s, %v", out, err)
	}
}

// The real module under a small cap: a large input makes the engine grow
// memory past it (one-shot needs about 13x its input), which fails that
// call with ErrMemoryLimit; a small input then decides.
func TestRealModuleMemoryCap(t *testing.T) {
	p, err := New(context.Background(), WithMemoryLimit(8<<20), WithInstances(1), WithDeadline(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var b strings.Builder
	b.WriteString(`{"name":"web.1","container":{"Image":"x"},"inventory":[`)
	for i := 0; i < 20000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"hostname":"node` + itoa(i) + `","address":"10.0.0.1","tags":["ssd","eu"]}`)
	}
	b.WriteString(`]}`)
	_, err = p.Decide(context.Background(), []byte(b.String()))
	if !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("a %d-byte input under an 8 MiB cap: %v", b.Len(), err)
	}
	out, err := p.Decide(context.Background(), []byte(`{"name":"web.1","container":{"Image":"x"},"inventory":[{"hostname":"n1","address":"10.0.0.1"}]}`))
	if err != nil || !strings.Contains(string(out), `"hostname":"n1"`) {
		t.Fatalf("after the cap: %s, %v", out, err)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

// A Snapshot whose call fails a limit rebuilds its state for the next call.
func TestSnapshotSurvivesAFailedCall(t *testing.T) {
	p := hostile(t, WithDeadline(50*time.Millisecond))
	ctx := context.Background()
	s, err := p.NewSnapshot(ctx, []byte(`{"inventory":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(ctx, []byte(`{"op":"remove_server","hostname":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Decide(ctx, []byte("L")); !errors.Is(err, ErrDeadline) {
		t.Fatalf("looping resident call: %v", err)
	}
	if s.in != nil {
		t.Fatal("the broken instance was kept")
	}
	out, err := s.Decide(ctx, []byte("{}"))
	if err != nil || !strings.Contains(string(out), "hostile") {
		t.Fatalf("after the deadline: %s, %v", out, err)
	}
}

// The real module: the rebuilt state is the state before the failure,
// changes included.
func TestSnapshotRebuildKeepsChanges(t *testing.T) {
	p := policy(t)
	ctx := context.Background()
	s, err := p.NewSnapshot(ctx, []byte(`{"inventory":[{"hostname":"n1","address":"10.0.0.1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(ctx, []byte(`[{"op":"upsert_server","server":{"hostname":"n2","address":"10.0.0.2"}},{"op":"claim_volume","volume":"pg","server":"n2"}]`)); err != nil {
		t.Fatal(err)
	}
	before, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.lose() // as a failed call does
	s.mu.Unlock()
	after, err := s.Export(ctx)
	if err != nil || string(after) != string(before) {
		t.Fatalf("rebuilt %s (%v), was %s", after, err, before)
	}
	// A change of the wrong shape is an engine refusal and is not logged.
	var de *DecisionError
	if err := s.Apply(ctx, []byte(`[{"op":"claim_volume"}]`)); !errors.As(err, &de) || de.Kind != "invalid_request" {
		t.Fatalf("bad change: %v", err)
	}
	if len(s.log) != 1 {
		t.Fatalf("log holds %d changes", len(s.log))
	}
}

func TestWrongABIVersionIsRefused(t *testing.T) {
	_, err := NewFromBytes(context.Background(), hostileModule(2))
	if !errors.Is(err, ErrABIVersion) || !errors.Is(err, ErrBadModule) {
		t.Fatalf("ABI 2: %v", err)
	}
	if !strings.Contains(err.Error(), "ABI version 2") {
		t.Fatalf("unclear refusal: %v", err)
	}
	if _, err := NewFromBytes(context.Background(), []byte("not wasm")); !errors.Is(err, ErrBadModule) {
		t.Fatalf("not wasm: %v", err)
	}
	// A module without the resident exports is refused by name.
	bad := hostileModule(1)
	i := strings.Index(string(bad), "flocker_snapshot_drop")
	copy(bad[i:], "flocker_snapshot_dxop")
	if _, err := NewFromBytes(context.Background(), bad); !errors.Is(err, ErrBadModule) || !strings.Contains(err.Error(), "flocker_snapshot_drop") {
		t.Fatalf("missing export: %v", err)
	}
}

func TestClosedPolicy(t *testing.T) {
	p := hostile(t)
	p.Close(context.Background())
	if _, err := p.Decide(context.Background(), []byte("{}")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
