#!/usr/bin/env python3
"""Wasm instructions per resident decision in a policy module, counted as
wasmtime fuel (one unit per wasm operator): deterministic for a module,
where wall-clock time on this machine is not. The native counterpart is
scripts/bench-instructions.sh; docs/PERFORMANCE.md gives both.

    scripts/bench-wasm-fuel.py [MODULE.wasm ...]

Default module: target/wasm32-unknown-unknown/wasm-release/flocker_policy.wasm.
Workloads, written from core/src/fixtures.rs by `cargo run -p flocker-core
--example go_corpus`: `typical` (the WASM benchmark's state at 10^3 routes
and its request) and `tag` (issue 12's mixed inventory of 1,000 servers and
its tag request).
Needs `pip install wasmtime`.
"""
import json
import os
import subprocess
import sys
import tempfile

import wasmtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECISIONS = 20


class Module:
    def __init__(self, path):
        config = wasmtime.Config()
        config.consume_fuel = True
        engine = wasmtime.Engine(config)
        self.store = wasmtime.Store(engine)
        self.store.set_fuel(10**15)
        instance = wasmtime.Instance(self.store, wasmtime.Module.from_file(engine, path), [])
        self.exports = instance.exports(self.store)
        self.memory = self.exports["memory"]

    def call(self, export, *head, data):
        alloc, free = self.exports["flocker_alloc"], self.exports["flocker_free"]
        ptr = alloc(self.store, len(data))
        self.memory.write(self.store, data, ptr)
        packed = self.exports[export](self.store, *head, ptr, len(data))
        rptr, rlen = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
        out = bytes(self.memory.read(self.store, rptr, rptr + rlen))
        free(self.store, rptr, rlen)
        free(self.store, ptr, len(data))
        return out

    def fuel_per_decision(self, snapshot, request):
        loaded = json.loads(self.call("flocker_snapshot_load", data=snapshot))
        handle = loaded["handle"]
        first = json.loads(self.call("flocker_snapshot_decide", handle, data=request))
        if "error" in first:
            sys.exit(f"the request was refused: {first['error']}")
        before = self.store.get_fuel()
        for _ in range(DECISIONS):
            self.call("flocker_snapshot_decide", handle, data=request)
        return (before - self.store.get_fuel()) // DECISIONS


def main():
    modules = sys.argv[1:] or [os.path.join(
        ROOT, "target/wasm32-unknown-unknown/wasm-release/flocker_policy.wasm")]
    with tempfile.TemporaryDirectory() as corpus:
        subprocess.run(["cargo", "run", "-q", "--release", "-p", "flocker-core",
                        "--example", "go_corpus", "--", corpus, "1"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

        def read(name):
            with open(os.path.join(corpus, name), "rb") as f:
                return f.read()

        workloads = [("typical", read("bench-snapshot.json"), read("bench-request.json")),
                     ("tag", read("mixed-snapshot.json"), read("tag-request.json"))]
    for path in modules:
        for name, snapshot, request in workloads:
            fuel = Module(path).fuel_per_decision(snapshot, request)
            print(f"fuel/{name:<8} {fuel:>10} per decision  {path}")


if __name__ == "__main__":
    main()
