"""A Python host for the raw-ABI module flocker_policy.wasm (docs/ABI.md),
with wasmtime from PyPI: no bindings, no imports to provide.

    python3 examples/hosts/python_raw.py flocker_policy.wasm [INPUT.json]

prints the decision for a SPEC input read from INPUT.json or stdin.
"""
import json
import sys

from wasmtime import Engine, Instance, Module, Store


class FlockerError(Exception):
    def __init__(self, error):
        super().__init__(f"{error['kind']}: {error['message']}")
        self.kind = error["kind"]
        self.error = error


class FlockerPolicy:
    def __init__(self, wasm: bytes):
        self.store = Store(Engine())
        instance = Instance(self.store, Module(self.store.engine, wasm), [])
        self.x = instance.exports(self.store)
        self.memory = self.x["memory"]
        version = self.x["flocker_abi_version"](self.store)
        if version != 1:
            raise ValueError(f"unsupported ABI version {version}")

    def _write(self, data: bytes):
        if not data:
            return 0, 0
        ptr = self.x["flocker_alloc"](self.store, len(data))
        if ptr == 0:
            raise MemoryError(f"the module could not allocate {len(data)} bytes")
        self.memory.write(self.store, data, ptr)
        return ptr, len(data)

    def _read(self, packed: int) -> str:
        packed &= 0xFFFF_FFFF_FFFF_FFFF  # wasmtime-py gives i64 results signed
        ptr, length = packed >> 32, packed & 0xFFFF_FFFF
        data = bytes(self.memory.read(self.store, ptr, ptr + length))
        self.x["flocker_free"](self.store, ptr, length)
        return data.decode("utf-8")

    def _call(self, name, data, *handle):
        ptr, length = self._write(data if isinstance(data, bytes) else data.encode("utf-8"))
        try:
            return self._read(self.x[name](self.store, *handle, ptr, length))
        finally:
            self.x["flocker_free"](self.store, ptr, length)

    @staticmethod
    def _check(text):
        value = json.loads(text)
        if "error" in value:
            raise FlockerError(value["error"])
        return value

    def info(self) -> dict:
        return json.loads(self._read(self.x["flocker_info"](self.store)))

    def decide(self, input_json) -> str:
        """SPEC input JSON (str or bytes) -> SPEC output JSON text."""
        return self._call("flocker_decide", input_json)

    def load(self, snapshot_json) -> int:
        return self._check(self._call("flocker_snapshot_load", snapshot_json))["handle"]

    def apply(self, handle: int, changes_json) -> int:
        return self._check(self._call("flocker_snapshot_apply", changes_json, handle))["applied"]

    def decide_on(self, handle: int, request_json) -> str:
        return self._call("flocker_snapshot_decide", request_json, handle)

    def export(self, handle: int) -> dict:
        return self._check(self._read(self.x["flocker_snapshot_export"](self.store, handle)))

    def drop(self, handle: int) -> None:
        self._check(self._read(self.x["flocker_snapshot_drop"](self.store, handle)))


def main(argv):
    if len(argv) < 2:
        print("usage: python_raw.py flocker_policy.wasm [INPUT.json]", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        policy = FlockerPolicy(f.read())
    data = open(argv[2], "rb").read() if len(argv) > 2 else sys.stdin.buffer.read()
    output = policy.decide(data)
    print(output)
    return 1 if "error" in json.loads(output) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
