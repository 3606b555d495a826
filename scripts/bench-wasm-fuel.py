#!/usr/bin/env python3
"""Wasm instructions per resident decision in a policy module, counted as
wasmtime fuel (one unit per wasm operator): deterministic for a module,
where wall-clock time on this machine is not. The native counterpart is
scripts/bench-instructions.sh; docs/PERFORMANCE.md gives both.

    scripts/bench-wasm-fuel.py [MODULE.wasm ...]

Default module: target/wasm32-unknown-unknown/wasm-release/flocker_policy.wasm.
Workloads: `typical` (the WASM benchmark's state at 10^3 routes and its
request, written by `cargo run -p flocker-core --example go_corpus`) and
`tag` (issue 12's mixed inventory of 1,000 servers and its tag request).
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


def mixed_snapshot(servers=1000):
    """core/src/fixtures.rs mixed_cluster, as a snapshot."""
    inventory = [{
        "hostname": f"node{i:05}",
        "address": f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
        "tags": ["ssd", "eu"] if i % 3 == 0 else ["hdd"],
        "reserved": i % 17 == 0, "full": i % 23 == 0,
        "max_containers": 100, "containers": (i * 7919) % 97,
    } for i in range(servers)]
    return json.dumps({"inventory": inventory}).encode()


TAG_REQUEST = json.dumps({"name": "myapp.1", "container": {
    "Image": "acme/app", "Env": ["A=1", "VIKING_TAGS=ssd, eu"]}}).encode()


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
        with open(os.path.join(corpus, "bench-snapshot.json"), "rb") as f:
            typical_snapshot = f.read()
        with open(os.path.join(corpus, "bench-request.json"), "rb") as f:
            typical_request = f.read()
    workloads = [("typical", typical_snapshot, typical_request),
                 ("tag", mixed_snapshot(), TAG_REQUEST)]
    for path in modules:
        for name, snapshot, request in workloads:
            fuel = Module(path).fuel_per_decision(snapshot, request)
            print(f"fuel/{name:<8} {fuel:>10} per decision  {path}")


if __name__ == "__main__":
    main()
