// Package flocker runs the flocker placement engine in-process: the
// policy module flocker_policy.wasm (docs/ABI.md, version 1) on wazero,
// with no cgo and no imports.
//
//	p, err := flocker.New(ctx)               // the embedded default module
//	out, err := p.Decide(ctx, input)         // SPEC input -> SPEC output bytes
//	d, err := flocker.ParseResult(out)       // *Decision or *DecisionError
//
// Decide returns exactly the bytes the Rust engine prints for the input:
// a decision or an {"error": ...} object. A Go error from Decide means a
// host failure (deadline, memory cap, trap, unusable module), typed with
// the sentinel errors of this package (errors.Is) and *HostError.
//
// A *Policy is safe for concurrent use: the module is compiled once and
// each concurrent call runs on its own instance from a pool (an instance
// is single-threaded, docs/ABI.md). A call that fails a limit discards its
// instance; the next call gets a fresh one.
//
// For large clusters, keep the cluster state resident with NewSnapshot,
// follow the store's changes with Apply, and decide each request against
// it: the cost then does not grow with the route table.
//
// Limits, mirroring the Rust host (host/src/policy Limits):
//   - deadline: 1 s of wall-clock time per call (WithDeadline). The Rust
//     host counts 100 ms of thread CPU time with a 1 s wall-clock
//     backstop; Go has no cheap per-call CPU clock, so the backstop is
//     the deadline. The caller's context deadline applies too.
//   - memory: 64 MiB of linear memory per one-shot instance
//     (WithMemoryLimit), 1 GiB per Snapshot (WithResidentMemoryLimit).
//
// The deadline stops a running call because wazero's
// WithCloseOnContextDone is on; that makes a decision about 3x slower
// (docs/PERFORMANCE.md). WithoutInterrupt turns it off for a trusted
// module, at the price of a deadline that no longer stops a loop.
package flocker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// ABIVersion is the module ABI version this package speaks (docs/ABI.md).
const ABIVersion = 1

// Defaults of the options.
const (
	DefaultDeadline            = time.Second
	DefaultLoadDeadline        = 10 * time.Second
	DefaultMemoryLimit         = 64 << 20
	DefaultResidentMemoryLimit = 1 << 30
)

const pageSize = 65536

type config struct {
	deadline, loadDeadline time.Duration
	memory, resident       uint64
	instances              int
	interrupt              bool
	cache                  wazero.CompilationCache
}

// Option configures New and NewFromBytes.
type Option func(*config)

// WithDeadline bounds each call's wall-clock time (default 1 s). A call
// past it fails with ErrDeadline and its instance is discarded.
func WithDeadline(d time.Duration) Option { return func(c *config) { c.deadline = d } }

// WithLoadDeadline bounds NewSnapshot's load and a Snapshot's rebuild
// after a failed call (default 10 s: one call parses the whole cluster).
func WithLoadDeadline(d time.Duration) Option { return func(c *config) { c.loadDeadline = d } }

// WithMemoryLimit caps each one-shot instance's linear memory (default
// 64 MiB, which takes inputs up to about 5 MiB: one-shot needs about 13x
// its input). Rounded up to whole 64 KiB pages.
func WithMemoryLimit(bytes uint64) Option { return func(c *config) { c.memory = bytes } }

// WithResidentMemoryLimit caps each Snapshot's instance (default 1 GiB,
// about two million routes at 500 bytes a route).
func WithResidentMemoryLimit(bytes uint64) Option { return func(c *config) { c.resident = bytes } }

// WithInstances sets how many one-shot calls may run at once (default
// GOMAXPROCS); more callers wait for a free instance.
func WithInstances(n int) Option { return func(c *config) { c.instances = n } }

// WithCompilationCache shares compiled code between Policies and, with
// wazero.NewCompilationCacheWithDir, between processes.
func WithCompilationCache(cache wazero.CompilationCache) Option {
	return func(c *config) { c.cache = cache }
}

// WithoutInterrupt turns off wazero's interruption of running guest code
// (WithCloseOnContextDone). Calls are faster (see docs/PERFORMANCE.md)
// but a deadline is then only checked between calls: a module that loops
// is never stopped. Only for a trusted module.
func WithoutInterrupt() Option { return func(c *config) { c.interrupt = false } }

// Policy is a compiled policy module and its pool of instances.
type Policy struct {
	cfg      config
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	info     Info

	pool chan *instance // see get
	mu   sync.Mutex
	done bool
}

// Info is the module's policy info (flocker_info).
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	ABI     int    `json:"abi"`
	Engine  string `json:"engine"`
}

// New loads the default module embedded in this package (DefaultModule).
func New(ctx context.Context, opts ...Option) (*Policy, error) {
	return NewFromBytes(ctx, DefaultModule, opts...)
}

// signatures of the exports docs/ABI.md lists; i32 = api.ValueTypeI32.
var exports = map[string][2][]api.ValueType{
	"flocker_abi_version":     {nil, {api.ValueTypeI32}},
	"flocker_alloc":           {{api.ValueTypeI32}, {api.ValueTypeI32}},
	"flocker_free":            {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI32}},
	"flocker_info":            {nil, {api.ValueTypeI64}},
	"flocker_decide":          {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	"flocker_snapshot_load":   {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	"flocker_snapshot_apply":  {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	"flocker_snapshot_decide": {{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	"flocker_snapshot_export": {{api.ValueTypeI32}, {api.ValueTypeI64}},
	"flocker_snapshot_drop":   {{api.ValueTypeI32}, {api.ValueTypeI64}},
}

// NewFromBytes compiles a policy module (for example one pushed by an
// operator) and checks it before it takes traffic: no imports, every
// export of docs/ABI.md with its signature, ABI version 1, and policy
// info that agrees. A module that fails is refused with ErrBadModule
// (ErrABIVersion for a version this package does not speak).
func NewFromBytes(ctx context.Context, wasm []byte, opts ...Option) (*Policy, error) {
	cfg := config{
		deadline:     DefaultDeadline,
		loadDeadline: DefaultLoadDeadline,
		memory:       DefaultMemoryLimit,
		resident:     DefaultResidentMemoryLimit,
		instances:    runtime.GOMAXPROCS(0),
		interrupt:    true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.instances < 1 {
		cfg.instances = 1
	}
	// The memory caps are enforced by capMemory (memory.go), which refuses
	// a growth past the cap and remembers it, so that the failed call is
	// reported as ErrMemoryLimit rather than as an anonymous trap. The
	// runtime's own page limit stays at wazero's 4 GiB maximum: if it were
	// the cap, wazero would refuse those growths before capMemory saw them.
	rc := wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(cfg.interrupt)
	if !platformCompiles() {
		rc = wazero.NewRuntimeConfigInterpreter().WithCloseOnContextDone(cfg.interrupt)
	}
	if cfg.cache != nil {
		rc = rc.WithCompilationCache(cfg.cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	p := &Policy{cfg: cfg, rt: rt, pool: make(chan *instance, cfg.instances)}
	for i := 1; i < cfg.instances; i++ {
		p.pool <- nil
	}
	if err := p.compile(ctx, wasm); err != nil {
		_ = rt.Close(ctx)
		return nil, err
	}
	return p, nil
}

func (p *Policy) compile(ctx context.Context, wasm []byte) error {
	compiled, err := p.rt.CompileModule(ctx, wasm)
	if err != nil {
		return hostErr(ErrBadModule, "compile", err)
	}
	p.compiled = compiled
	if imp := compiled.ImportedFunctions(); len(imp) > 0 {
		m, n, _ := imp[0].Import()
		return hostErr(ErrBadModule, "imports", fmt.Errorf("the module imports %s.%s; a policy module imports nothing", m, n))
	}
	if len(compiled.ImportedMemories()) > 0 {
		return hostErr(ErrBadModule, "imports", errors.New("the module imports a memory; a policy module imports nothing"))
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		return hostErr(ErrBadModule, "exports", errors.New("no exported memory named memory"))
	}
	fns := compiled.ExportedFunctions()
	// The version first: a module of another ABI may lack today's exports,
	// and "wrong version" is the clearer refusal.
	if def, ok := fns["flocker_abi_version"]; !ok || !sameTypes(def.ParamTypes(), nil) || !sameTypes(def.ResultTypes(), []api.ValueType{api.ValueTypeI32}) {
		return hostErr(ErrBadModule, "exports", errors.New("no export flocker_abi_version () -> i32"))
	}
	// Instantiate before checking the other exports, to ask the version.
	in, err := p.instantiate(ctx, p.cfg.memory, false)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.deadline)
	res, err := in.mod.ExportedFunction("flocker_abi_version").Call(cctx)
	cancel()
	if err != nil {
		in.close()
		return in.classify("flocker_abi_version", err)
	}
	if v := uint32(res[0]); v != ABIVersion {
		in.close()
		return &HostError{Kind: ErrABIVersion, Op: "flocker_abi_version", Err: abiError{got: v}}
	}
	for name, sig := range exports {
		def, ok := fns[name]
		if !ok {
			in.close()
			return hostErr(ErrBadModule, "exports", fmt.Errorf("no export %s", name))
		}
		if !sameTypes(def.ParamTypes(), sig[0]) || !sameTypes(def.ResultTypes(), sig[1]) {
			in.close()
			return hostErr(ErrBadModule, "exports", fmt.Errorf("export %s has the wrong signature", name))
		}
	}
	in.bind()
	out, err := in.call(ctx, p.cfg.deadline, "flocker_info", in.info, nil, nil)
	if err != nil {
		in.close()
		return err
	}
	if err := json.Unmarshal(out, &p.info); err != nil || p.info.Name == "" || p.info.Version == "" || p.info.ABI != ABIVersion {
		in.close()
		return hostErr(ErrBadModule, "flocker_info", fmt.Errorf("bad policy info %q", out))
	}
	// The checked instance is the pool's first one.
	p.put(in)
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Info is the module's policy info.
func (p *Policy) Info() Info { return p.info }

// Decide decides one SPEC input (section 2) and returns the SPEC output
// bytes: a decision, or an {"error": ...} object for input the engine
// refuses (exactly what `flocker decide` prints). The error is a host
// failure only; the next call works either way.
func (p *Policy) Decide(ctx context.Context, input []byte) ([]byte, error) {
	in, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	out, err := in.call(ctx, p.cfg.deadline, "flocker_decide", in.decide, nil, input)
	p.put(in)
	return out, err
}

// get takes an instance from the pool, waiting while all are in use. The
// pool is a channel holding, per slot, an idle instance or nil for a slot
// whose instance does not exist yet (or was discarded): a nil is made into
// a fresh instance by whoever takes it.
func (p *Policy) get(ctx context.Context) (*instance, error) {
	var in *instance
	select {
	case in = <-p.pool:
	default:
		select {
		case in = <-p.pool:
		case <-ctx.Done():
			return nil, hostErr(ErrDeadline, "waiting for an instance", ctx.Err())
		}
	}
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done {
		p.pool <- in
		return nil, hostErr(ErrClosed, "decide", nil)
	}
	if in != nil {
		return in, nil
	}
	in, err := p.instantiate(ctx, p.cfg.memory, true)
	if err != nil {
		p.pool <- nil
		return nil, err
	}
	return in, nil
}

// put returns an instance to the pool, or its empty slot when the
// instance broke (a trap or deadline leaves it unusable).
func (p *Policy) put(in *instance) {
	if in.broken {
		in.close()
		in = nil
	}
	p.pool <- in
}

// Close frees every instance and the compiled module. Calls after Close
// fail with ErrClosed.
func (p *Policy) Close(ctx context.Context) error {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	// Closing the runtime closes every instance, idle or in a call (which
	// then fails).
	return p.rt.Close(ctx)
}

// instantiate makes an anonymous instance (any number may exist) with its
// memory capped at limit bytes.
func (p *Policy) instantiate(ctx context.Context, limit uint64, bind bool) (*instance, error) {
	mem := &capMemory{limit: (limit + pageSize - 1) / pageSize * pageSize}
	ictx := experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(mem.allocate))
	mod, err := p.rt.InstantiateModule(ictx, p.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		if mem.refused {
			return nil, hostErr(ErrMemoryLimit, "instantiate", err)
		}
		return nil, hostErr(ErrBadModule, "instantiate", err)
	}
	in := &instance{mod: mod, mem: mem}
	if bind {
		in.bind()
	}
	return in, nil
}

// instance is one module instance and its exports, looked up once:
// ExportedFunction builds a new call engine each time it is asked.
type instance struct {
	mod    api.Module
	mem    *capMemory
	broken bool

	alloc, free, info, decide             api.Function
	load, apply, snapDecide, export, drop api.Function
	stack                                 [3]uint64
}

func (in *instance) bind() {
	f := in.mod.ExportedFunction
	in.alloc, in.free, in.info, in.decide = f("flocker_alloc"), f("flocker_free"), f("flocker_info"), f("flocker_decide")
	in.load, in.apply, in.snapDecide = f("flocker_snapshot_load"), f("flocker_snapshot_apply"), f("flocker_snapshot_decide")
	in.export, in.drop = f("flocker_snapshot_export"), f("flocker_snapshot_drop")
}

func (in *instance) close() {
	in.broken = true
	_ = in.mod.Close(context.Background())
}

// classify turns a failed wazero call into a host error and marks the
// instance broken: after a trap or an interrupt it must not be used again.
func (in *instance) classify(op string, err error) error {
	in.broken = true
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return hostErr(ErrDeadline, op, context.DeadlineExceeded)
		case sys.ExitCodeContextCanceled:
			return hostErr(ErrDeadline, op, context.Canceled)
		}
	}
	if in.mem.refused {
		return hostErr(ErrMemoryLimit, op, fmt.Errorf("memory growth to %d bytes refused (cap %d): %w", in.mem.asked, in.mem.limit, err))
	}
	return hostErr(ErrTrap, op, err)
}

// call runs one data export: copies input into a block from flocker_alloc,
// calls fn(handle..., ptr, len), copies the result out and frees both
// blocks. handle is nil for exports without one; input nil for exports
// without input (flocker_info, export, drop).
func (in *instance) call(ctx context.Context, deadline time.Duration, op string, fn api.Function, handle *uint32, input []byte) ([]byte, error) {
	if in.broken {
		return nil, hostErr(ErrTrap, op, errors.New("instance was discarded"))
	}
	// A context per call: its deadline is what WithCloseOnContextDone
	// watches. Checked before any work, so an expired caller's context
	// costs nothing.
	cctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	if err := cctx.Err(); err != nil {
		return nil, hostErr(ErrDeadline, op, err)
	}
	stack := in.stack[:]
	var ptr, n uint32
	if len(input) > 0 {
		if uint64(len(input)) > 1<<32-1 {
			return nil, hostErr(ErrMemoryLimit, op, errors.New("input over 4 GiB"))
		}
		n = uint32(len(input))
		stack[0] = api.EncodeU32(n)
		if err := in.alloc.CallWithStack(cctx, stack); err != nil {
			return nil, in.classify("flocker_alloc", err)
		}
		ptr = api.DecodeU32(stack[0])
		if ptr == 0 {
			// flocker_alloc returns 0 when the module cannot get the memory.
			in.broken = true
			return nil, hostErr(ErrMemoryLimit, "flocker_alloc", fmt.Errorf("no block of %d bytes under the cap of %d", n, in.mem.limit))
		}
		if !in.mod.Memory().Write(ptr, input) {
			in.broken = true
			return nil, hostErr(ErrTrap, op, errors.New("flocker_alloc returned a block outside memory"))
		}
	}
	i := 0
	if handle != nil {
		stack[0] = api.EncodeU32(*handle)
		i = 1
	}
	if fn.Definition().ParamTypes() != nil && len(fn.Definition().ParamTypes()) > i {
		stack[i], stack[i+1] = api.EncodeU32(ptr), api.EncodeU32(n)
	}
	if err := fn.CallWithStack(cctx, stack); err != nil {
		return nil, in.classify(op, err)
	}
	packed := stack[0]
	outPtr, outLen := uint32(packed>>32), uint32(packed)
	view, ok := in.mod.Memory().Read(outPtr, outLen)
	if !ok || outLen == 0 {
		in.broken = true
		return nil, hostErr(ErrBadModule, op, fmt.Errorf("result block %d+%d is not in memory", outPtr, outLen))
	}
	// Read returns a view of memory, which the next call may move: copy.
	out := make([]byte, outLen)
	copy(out, view)
	// Frees cannot fail in a way that matters (1 = not a live block), but
	// they can trap or hit the deadline like any call.
	stack[0], stack[1] = api.EncodeU32(outPtr), api.EncodeU32(outLen)
	if err := in.free.CallWithStack(cctx, stack); err != nil {
		return nil, in.classify("flocker_free", err)
	}
	if n > 0 {
		stack[0], stack[1] = api.EncodeU32(ptr), api.EncodeU32(n)
		if err := in.free.CallWithStack(cctx, stack); err != nil {
			return nil, in.classify("flocker_free", err)
		}
	}
	return out, nil
}
