package flocker

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The Go form of the SPEC's decision output (section 4). These types are
// shared by the in-process Policy and the HTTP client of `flocker serve`
// (package serveclient), so a proxy can switch between the two without
// changing how it reads answers.

// ServerRef is the chosen server.
type ServerRef struct {
	Hostname string `json:"hostname"`
	Address  string `json:"address"`
	Docker   string `json:"docker"`
}

// Route is what a decision saves for a named container.
type Route struct {
	Name    string            `json:"name"`
	Service string            `json:"service"`
	Server  string            `json:"server"`
	Address string            `json:"address"`
	Ports   map[string]uint16 `json:"ports"`
	// HostPorts is every host port the container binds, ascending.
	HostPorts []uint16 `json:"host_ports"`
	Env       []string `json:"env"`
	Volumes   []string `json:"volumes"`
	State     string   `json:"state"`
}

// Explain says why servers were not chosen.
type Explain struct {
	Summary  string            `json:"summary"`
	Rejected map[string]string `json:"rejected"`
}

// Decision is a successful answer: where to send the create request and
// the rewritten body to send.
type Decision struct {
	Server ServerRef `json:"server"`
	// Container is the rewritten create body, to forward as is.
	Container json.RawMessage `json:"container"`
	LinksEnv  []string        `json:"links_env"`
	// Route is nil for an unnamed container.
	Route   *Route  `json:"route"`
	Explain Explain `json:"explain"`
	// Retries is how many times a save lost to another writer
	// (serveclient's Place only; always 0 in-process).
	Retries int `json:"-"`
}

// DecisionError is the engine's refusal: the SPEC's {"error": {...}}
// object. It is an answer, not a host failure: the same input always gets
// it. Kind is one of the SPEC kinds (invalid_request, invalid_name,
// name_in_use, unknown_server, unknown_container, unknown_link,
// conflicting_pins, pinned_server_unavailable, no_eligible_server), the
// ABI's unknown_handle, or, from `flocker serve`, one of its host kinds
// (store_unavailable, save_conflict, policy_failed, invalid_body).
type DecisionError struct {
	// Status is the HTTP status when the answer came from `flocker serve`
	// (422 for an engine error); 0 in-process.
	Status  int             `json:"-"`
	Kind    string          `json:"kind"`
	Message string          `json:"message"`
	Explain json.RawMessage `json:"explain,omitempty"`
	// Pins lists each pin and its server for conflicting_pins.
	Pins json.RawMessage `json:"pins,omitempty"`
}

func (e *DecisionError) Error() string {
	return fmt.Sprintf("flocker: %s: %s", e.Kind, e.Message)
}

// ParseResult reads the bytes Decide returns: a *Decision, or a
// *DecisionError (as the error) when the engine refused. Any other error
// means the bytes are not a SPEC output at all.
func ParseResult(out []byte) (*Decision, error) {
	var probe struct {
		Error *DecisionError `json:"error"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return nil, fmt.Errorf("flocker: not a decision output: %w", err)
	}
	if probe.Error != nil {
		return nil, probe.Error
	}
	var d Decision
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, fmt.Errorf("flocker: not a decision output: %w", err)
	}
	return &d, nil
}

// IsErrorResult reports whether out, as Decide returned it, is an
// {"error": ...} object. The ABI's rule is that a result is an error if
// and only if its top-level object has the key "error"; the engine always
// renders that key first, so this reads only the prefix (FuzzDecide checks
// the two agree). For bytes from elsewhere use ParseResult.
func IsErrorResult(out []byte) bool {
	return bytes.HasPrefix(out, []byte(`{"error":`))
}
