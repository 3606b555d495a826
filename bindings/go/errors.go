package flocker

import (
	"errors"
	"fmt"
)

// Host failures: a call that did not produce an answer. Test for them with
// errors.Is; the concrete type is *HostError. An engine refusal is never
// one of these: it is answer bytes ({"error": ...}) from Decide, or a
// *DecisionError from NewSnapshot and Apply.
var (
	// ErrDeadline: the call ran past its deadline (the Policy's WithDeadline
	// or the caller's context, whichever ends first). errors.Is also
	// matches context.DeadlineExceeded or context.Canceled, as the case is.
	ErrDeadline = errors.New("flocker: policy call stopped at its deadline")
	// ErrMemoryLimit: the module asked for more linear memory than the cap
	// (WithMemoryLimit, WithResidentMemoryLimit).
	ErrMemoryLimit = errors.New("flocker: policy module hit its memory cap")
	// ErrTrap: the module trapped for another reason.
	ErrTrap = errors.New("flocker: policy module trapped")
	// ErrBadModule: the bytes are not a usable policy module (not wasm,
	// imports, missing or mistyped exports, bad info, bad result).
	ErrBadModule = errors.New("flocker: not a usable policy module")
	// ErrABIVersion: the module's flocker_abi_version is not one this
	// package speaks (ABIVersion). errors.Is also matches ErrBadModule.
	ErrABIVersion = errors.New("flocker: unsupported policy ABI version")
	// ErrClosed: the Policy or Snapshot was closed.
	ErrClosed = errors.New("flocker: closed")
)

// HostError is a host failure of one call. Kind is one of the sentinel
// errors above; Err, when set, is the underlying cause (wazero's error).
type HostError struct {
	Kind error
	// Op is the export or step that failed, e.g. "flocker_decide".
	Op  string
	Err error
}

func (e *HostError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%v (%s)", e.Kind, e.Op)
	}
	return fmt.Sprintf("%v (%s): %v", e.Kind, e.Op, e.Err)
}

// Unwrap lets errors.Is match both the kind and the cause.
func (e *HostError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func hostErr(kind error, op string, err error) error {
	return &HostError{Kind: kind, Op: op, Err: err}
}

// abiError wraps ErrABIVersion so errors.Is(err, ErrBadModule) holds too.
type abiError struct{ got uint32 }

func (e abiError) Error() string {
	return fmt.Sprintf("flocker: module speaks ABI version %d, this package speaks %d", e.got, ABIVersion)
}
func (e abiError) Unwrap() []error { return []error{ErrABIVersion, ErrBadModule} }
