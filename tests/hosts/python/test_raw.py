"""The raw-ABI module through wasmtime from PyPI (examples/hosts/python_raw.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from wasmtime import Engine, Module

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "hosts"))

from python_raw import FlockerError, FlockerPolicy  # noqa: E402

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
MODULE = Path(
    os.environ.get(
        "FLOCKER_POLICY_WASM",
        TARGET / "wasm32-unknown-unknown" / "wasm-release" / "flocker_policy.wasm",
    )
)
EXAMPLES = sorted((ROOT / "examples").glob("*.input.json"))


@pytest.fixture(scope="module")
def policy():
    return FlockerPolicy(MODULE.read_bytes())


def expected(path):
    return json.loads(Path(str(path).replace(".input.json", ".output.json")).read_text())


def split(text):
    value = json.loads(text)
    snapshot = {"inventory": value.pop("inventory"), "routes": value.pop("routes", None)}
    return value, snapshot


def kind(text):
    return json.loads(text)["error"]["kind"]


def test_there_are_examples():
    assert len(EXAMPLES) >= 5


def test_module_imports_nothing():
    assert list(Module(Engine(), MODULE.read_bytes()).imports) == []


def test_info(policy):
    info = policy.info()
    assert info["name"] == "flocker-policy"
    assert info["abi"] == 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name.replace(".input.json", ""))
def test_example_one_shot_and_resident(policy, path):
    text = path.read_text()
    out = policy.decide(text)
    assert json.loads(out) == expected(path)
    # Python dicts keep key order, so the split request decides to the same bytes.
    request, snapshot = split(text)
    handle = policy.load(json.dumps(snapshot))
    assert policy.decide_on(handle, json.dumps(request)) == policy.decide(
        json.dumps({**request, **snapshot})
    )
    policy.drop(handle)


def test_bad_input_is_an_error_result_never_a_trap(policy):
    assert kind(policy.decide(b'{"name": "\xff\xfe", "container": {}, "inventory": []}')) == "invalid_request"
    assert kind(policy.decide('{"name": "web.1", "container": {')) == "invalid_request"
    assert kind(policy.decide(b"")) == "invalid_request"
    size = policy.memory.data_len(policy.store)
    for ptr, length in [(size - 4, 64), (size, 1), (-8, 16)]:
        out = policy._read(policy.x["flocker_decide"](policy.store, ptr, length))
        assert kind(out) == "invalid_request", (ptr, length, out)
    assert kind(policy.decide_on(424242, "{}")) == "unknown_handle"
    _, snapshot = split(EXAMPLES[0].read_text())
    handle = policy.load(json.dumps(snapshot))
    before = policy.export(handle)
    with pytest.raises(FlockerError) as e:
        policy.apply(handle, '[{"op": "remove_server", "hostname": "node1"}, {"op": "upsert_server"}]')
    assert e.value.kind == "invalid_request"
    assert policy.export(handle) == before
    policy.drop(handle)
    with pytest.raises(FlockerError) as e:
        policy.drop(handle)
    assert e.value.kind == "unknown_handle"
    # Still serving afterwards.
    assert json.loads(policy.decide(EXAMPLES[0].read_text())) == expected(EXAMPLES[0])


def test_changes_follow(policy):
    handle = policy.load('{"inventory": [{"hostname": "n1", "address": "10.0.0.1", "containers": 3}]}')
    request = '{"name": "web.1", "container": {"Image": "nginx"}}'
    assert json.loads(policy.decide_on(handle, request))["server"]["hostname"] == "n1"
    assert policy.apply(handle, '{"op": "upsert_server", "server": {"hostname": "n2", "address": "10.0.0.2"}}') == 1
    assert json.loads(policy.decide_on(handle, request))["server"]["hostname"] == "n2"
    policy.drop(handle)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name.replace(".input.json", ""))
def test_example_program(path):
    program = ROOT / "examples" / "hosts" / "python_raw.py"
    r = subprocess.run(
        [sys.executable, str(program), str(MODULE), str(path)], capture_output=True, text=True
    )
    want = expected(path)
    assert json.loads(r.stdout) == want
    assert r.returncode == (1 if "error" in want else 0), r.stderr
