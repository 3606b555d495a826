package flocker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// Snapshot is cluster state kept resident in a module instance of its own
// (docs/ABI.md "Resident state"): loaded once, kept current with Apply,
// decided against with Decide. Safe for concurrent use; calls on one
// Snapshot run one at a time (its instance is single-threaded).
//
// A call that fails a limit loses the instance and with it the state. The
// Snapshot keeps what it needs to rebuild it (the last loaded or exported
// state plus the changes applied since) and rebuilds on the next call, so
// only the failed call fails. The change log is folded into the base
// state (one export) once it outgrows it, which bounds its memory.
type Snapshot struct {
	p  *Policy
	mu sync.Mutex

	in     *instance // nil after a failure, until the next call rebuilds
	handle uint32
	base   []byte   // a snapshot the state was loaded from
	log    [][]byte // changes applied since base, in order
	logLen int
	closed bool
}

// foldAt is the smallest change log folded into the base: below it the
// export costs more than the bytes it saves.
const foldAt = 1 << 20

// NewSnapshot loads {"inventory": [...], "routes": {...}} (other keys
// ignored) into a new instance. An engine refusal of the snapshot is a
// *DecisionError; a host failure a *HostError.
func (p *Policy) NewSnapshot(ctx context.Context, snapshot []byte) (*Snapshot, error) {
	s := &Snapshot{p: p, base: append([]byte(nil), snapshot...)}
	if err := s.rebuild(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// rebuild makes a new instance and loads base and log into it.
func (s *Snapshot) rebuild(ctx context.Context) error {
	p := s.p
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done {
		return hostErr(ErrClosed, "snapshot", nil)
	}
	in, err := p.instantiate(ctx, p.cfg.resident, true)
	if err != nil {
		return err
	}
	out, err := in.call(ctx, p.cfg.loadDeadline, "flocker_snapshot_load", in.load, nil, s.base)
	if err != nil {
		in.close()
		return err
	}
	if err := refusal(out); err != nil {
		in.close()
		return err
	}
	var h struct {
		Handle uint32 `json:"handle"`
	}
	if err := json.Unmarshal(out, &h); err != nil || h.Handle == 0 {
		in.close()
		return hostErr(ErrBadModule, "flocker_snapshot_load", fmt.Errorf("bad result %q", out))
	}
	for _, c := range s.log {
		out, err := in.call(ctx, p.cfg.loadDeadline, "flocker_snapshot_apply", in.apply, &h.Handle, c)
		if err == nil {
			err = refusal(out)
		}
		if err != nil {
			in.close()
			return err
		}
	}
	s.in, s.handle = in, h.Handle
	return nil
}

// refusal is the engine's {"error"} result as a *DecisionError, else nil.
func refusal(out []byte) error {
	if !IsErrorResult(out) {
		return nil
	}
	var e struct {
		Error *DecisionError `json:"error"`
	}
	if err := json.Unmarshal(out, &e); err != nil || e.Error == nil {
		return hostErr(ErrBadModule, "result", fmt.Errorf("bad error result %q", out))
	}
	return e.Error
}

// ready returns the live instance, rebuilding it after a failed call.
func (s *Snapshot) ready(ctx context.Context) (*instance, error) {
	if s.closed {
		return nil, hostErr(ErrClosed, "snapshot", nil)
	}
	if s.in == nil || s.in.broken {
		s.in = nil
		if err := s.rebuild(ctx); err != nil {
			return nil, err
		}
	}
	return s.in, nil
}

// Apply applies one change record or a JSON array of them, all or nothing
// (docs/ABI.md lists the ops). A record of the wrong shape is a
// *DecisionError and changes nothing.
func (s *Snapshot) Apply(ctx context.Context, changes []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.ready(ctx)
	if err != nil {
		return err
	}
	out, err := in.call(ctx, s.p.cfg.deadline, "flocker_snapshot_apply", in.apply, &s.handle, changes)
	if err != nil {
		s.lose()
		return err
	}
	if err := refusal(out); err != nil {
		return err
	}
	s.log = append(s.log, append([]byte(nil), changes...))
	s.logLen += len(changes)
	if s.logLen > foldAt && s.logLen > len(s.base) {
		s.fold(ctx)
	}
	return nil
}

// fold replaces base and log by an export of the state. A failure only
// loses the fold (the log is kept), never the applied change.
func (s *Snapshot) fold(ctx context.Context) {
	out, err := s.in.call(ctx, s.p.cfg.loadDeadline, "flocker_snapshot_export", s.in.export, &s.handle, nil)
	if err != nil {
		s.lose()
		return
	}
	if refusal(out) != nil {
		return
	}
	s.base, s.log, s.logLen = out, nil, 0
}

// lose forgets a broken instance; the next call rebuilds.
func (s *Snapshot) lose() {
	if s.in != nil {
		s.in.close()
		s.in = nil
	}
}

// Decide decides {"name", "container", "image"} against the state (any
// inventory or routes keys in it are ignored). The bytes equal
// Policy.Decide on the request merged with the state. Deciding does not
// change the state: apply the save_route / claim_volume changes of a
// saved decision with Apply.
func (s *Snapshot) Decide(ctx context.Context, request []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.ready(ctx)
	if err != nil {
		return nil, err
	}
	out, err := in.call(ctx, s.p.cfg.deadline, "flocker_snapshot_decide", in.snapDecide, &s.handle, request)
	if err != nil {
		s.lose()
		return nil, err
	}
	return out, nil
}

// Export returns the state as a snapshot {"inventory", "routes"}.
func (s *Snapshot) Export(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.ready(ctx)
	if err != nil {
		return nil, err
	}
	out, err := in.call(ctx, s.p.cfg.loadDeadline, "flocker_snapshot_export", in.export, &s.handle, nil)
	if err != nil {
		s.lose()
		return nil, err
	}
	if err := refusal(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Close frees the Snapshot's instance. Calls after Close fail with
// ErrClosed.
func (s *Snapshot) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.lose()
	return nil
}
