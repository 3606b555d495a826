package flocker

import "runtime"

// platformCompiles reports whether wazero's compiler supports this
// platform (amd64 and arm64); elsewhere the interpreter runs the module,
// about ten times slower.
func platformCompiles() bool {
	return runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64"
}
