package flocker

import "github.com/tetratelabs/wazero/experimental"

// capMemory backs one instance's linear memory and enforces its cap.
// wazero's WithMemoryLimitPages would cap memory too, but a growth it
// refuses is invisible to the host: the module traps (Rust's allocator
// aborts on a failed memory.grow) exactly as it would for a bug. When
// the module grows memory past the cap, Reallocate refuses (memory.grow
// returns -1 to the module) and records it. The Rust allocator then aborts,
// which traps; classify reads refused to report ErrMemoryLimit for that
// trap. Only the instance's own goroutine touches it (one call at a time).
type capMemory struct {
	limit   uint64
	buf     []byte
	refused bool
	asked   uint64
}

// allocate ignores wazero's suggested capacity: memory starts at the
// module's minimum (Reallocate is called next) and doubles from there, so
// an instance capped at 1 GiB does not reserve 1 GiB up front.
func (m *capMemory) allocate(_, _ uint64) experimental.LinearMemory {
	return m
}

// Reallocate grows to size bytes, doubling the backing array so a module
// growing page by page does not copy its memory at every page.
func (m *capMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.refused, m.asked = true, size
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		// Bytes past len were zeroed by make and never exposed (wasm
		// memory never shrinks), so fresh pages read as zero.
		m.buf = m.buf[:size]
		return m.buf
	}
	c := 2 * uint64(cap(m.buf))
	if c < size {
		c = size
	}
	if c > m.limit {
		c = m.limit
	}
	nb := make([]byte, size, c)
	copy(nb, m.buf)
	m.buf = nb
	return nb
}

func (m *capMemory) Free() { m.buf = nil }
