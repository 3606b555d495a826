package flocker

// Hostile policy modules for the limit and ABI tests. wazero cannot read
// the text format and this module must not depend on a wat tool, so the
// tests assemble the binary format themselves with the few encoders below
// (WebAssembly core spec, section 5 "Binary format"). Each module has the
// full ABI surface, so it passes NewFromBytes's checks, and its decide
// exports misbehave on request: an input starting with 'L' loops forever,
// one starting with 'G' asks for 128 MiB more memory and traps when that is
// refused (as Rust's allocator aborts); anything else gets a small valid
// result. So one Policy shows a call failing and the next one working.

import "encoding/binary"

func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func sleb(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func vec(items ...[]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func section(id byte, body []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
}

func name(s string) []byte { return append(uleb(uint64(len(s))), s...) }

const (
	i32 = 0x7f
	i64 = 0x7e
)

func functype(params, results []byte) []byte {
	return append(append([]byte{0x60}, vec(bytesOf(params)...)...), vec(bytesOf(results)...)...)
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = []byte{b[i]}
	}
	return out
}

// hostileModule builds the module; abi is what flocker_abi_version returns.
func hostileModule(abi int32) []byte {
	const infoAt, handleAt, appliedAt, snapAt = 1024, 1200, 1300, 1400
	info := `{"name":"hostile","version":"0.0.1","abi":1,"engine":"none"}`
	handle := `{"handle":1}`
	applied := `{"applied":1}`
	snap := `{"inventory":[],"routes":{"containers":{},"volumes":{}}}`
	packed := func(at, n int) []byte {
		return append([]byte{0x42}, sleb(int64(at)<<32|int64(n))...) // i64.const
	}
	// misbehave(ptrLocal): the 'L' and 'G' cases, then falls through.
	misbehave := func(ptr byte) []byte {
		b := []byte{0x20, ptr, 0x2d, 0x00, 0x00, 0x41}   // local.get; i32.load8_u; i32.const
		b = append(b, sleb('L')...)                      //
		b = append(b, 0x46, 0x04, 0x40)                  // i32.eq; if
		b = append(b, 0x03, 0x40, 0x0c, 0x00, 0x0b)      // loop; br 0; end
		b = append(b, 0x0b)                              // end if
		b = append(b, 0x20, ptr, 0x2d, 0x00, 0x00, 0x41) // local.get; load8_u; i32.const
		b = append(b, sleb('G')...)                      //
		b = append(b, 0x46, 0x04, 0x40)                  // i32.eq; if
		b = append(b, 0x41)                              // i32.const 2048 (pages)
		b = append(b, sleb(2048)...)                     //
		b = append(b, 0x40, 0x00, 0x1a, 0x00, 0x0b)      // memory.grow; drop; unreachable; end
		return b
	}
	body := func(code ...[]byte) []byte {
		var b []byte
		for _, c := range code {
			b = append(b, c...)
		}
		b = append(append([]byte{0x00}, b...), 0x0b) // no locals ... end
		return append(uleb(uint64(len(b))), b...)
	}
	i32c := func(v int64) []byte { return append([]byte{0x41}, sleb(v)...) }
	types := vec(
		functype(nil, []byte{i32}),                   // 0: () -> i32
		functype([]byte{i32}, []byte{i32}),           // 1: (i32) -> i32
		functype([]byte{i32, i32}, []byte{i32}),      // 2: (i32, i32) -> i32
		functype(nil, []byte{i64}),                   // 3: () -> i64
		functype([]byte{i32, i32}, []byte{i64}),      // 4: (ptr, len) -> i64
		functype([]byte{i32, i32, i32}, []byte{i64}), // 5: (h, ptr, len) -> i64
		functype([]byte{i32}, []byte{i64}),           // 6: (h) -> i64
	)
	type fn struct {
		name string
		typ  byte
		code []byte
	}
	fns := []fn{
		{"flocker_abi_version", 0, body(i32c(int64(abi)))},
		{"flocker_alloc", 1, body(i32c(4096))}, // every input goes to 4096
		{"flocker_free", 2, body(i32c(0))},
		{"flocker_info", 3, body(packed(infoAt, len(info)))},
		{"flocker_decide", 4, body(misbehave(0), packed(infoAt, len(info)))},
		{"flocker_snapshot_load", 4, body(packed(handleAt, len(handle)))},
		{"flocker_snapshot_apply", 5, body(packed(appliedAt, len(applied)))},
		{"flocker_snapshot_decide", 5, body(misbehave(1), packed(infoAt, len(info)))},
		{"flocker_snapshot_export", 6, body(packed(snapAt, len(snap)))},
		{"flocker_snapshot_drop", 6, body(packed(appliedAt, len(applied)))},
	}
	var funcs, exps, codes [][]byte
	exps = append(exps, append(name("memory"), 0x02, 0x00))
	for i, f := range fns {
		funcs = append(funcs, []byte{f.typ})
		exps = append(exps, append(append(name(f.name), 0x00), uleb(uint64(i))...))
		codes = append(codes, f.code)
	}
	seg := func(at int, s string) []byte {
		b := append([]byte{0x00}, i32c(int64(at))...)
		return append(append(b, 0x0b), name(s)...)
	}
	mod := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	mod = append(mod, section(1, types)...)
	mod = append(mod, section(3, vec(funcs...))...)
	mod = append(mod, section(5, vec([]byte{0x00, 0x01}))...) // memory min 1 page, no max
	mod = append(mod, section(7, vec(exps...))...)
	mod = append(mod, section(10, vec(codes...))...)
	mod = append(mod, section(11, vec(seg(infoAt, info), seg(handleAt, handle), seg(appliedAt, applied), seg(snapAt, snap)))...)
	return mod
}
