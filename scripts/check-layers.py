#!/usr/bin/env python3
"""Fails when an import in host/src points up the layers or across peers.

The layers of the flocker host library, bottom first (host/src/lib.rs says
why). A module may use the modules in layers below its own, never one above
and never a peer in its own layer; within `store`, the embedded store and
etcd know nothing of each other. The CLI lives in the binary (main.rs): the
library may not name it at all.

Reads every `crate::<module>` path outside comments, in `use` lines and
inline paths alike.
"""
import pathlib
import re
import sys

LAYERS = [
    ["metrics", "net", "policy", "store"],
    ["engine"],
    ["rollout"],
    ["place"],
    ["app"],
    ["bench", "proxy", "serve"],
]
# Inside a top-level module: submodules that must not use each other.
PEERS = {"store": [["file", "etcd"]]}

root = pathlib.Path(__file__).resolve().parent.parent / "host" / "src"
layer_of = {m: i for i, ms in enumerate(LAYERS) for m in ms}
path_re = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)(?:::([a-z_][a-z0-9_]*))?")
brace_re = re.compile(r"\bcrate::\{([^}]*)\}")
problems = []


def code_lines(path):
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("//"):
            continue
        yield n, line.split("//")[0] if "\"" not in line else line


def used(line):
    for m in path_re.finditer(line):
        yield m.group(1), m.group(2)
    for m in brace_re.finditer(line):
        for part in m.group(1).split(","):
            part = part.strip().split("::")
            if part and part[0]:
                yield part[0], part[1] if len(part) > 1 else None


for path in sorted(root.rglob("*.rs")):
    rel = path.relative_to(root)
    if rel.parts[0] in ("cli", "main.rs"):
        continue  # the binary: may use anything in the library
    own = rel.parts[0].removesuffix(".rs")
    if own == "lib":
        continue
    if own not in layer_of:
        problems.append(f"{rel}: module `{own}` is in no layer of scripts/check-layers.py")
        continue
    sub = rel.parts[1].removesuffix(".rs") if len(rel.parts) > 1 else None
    for n, line in code_lines(path):
        for target, target_sub in used(line):
            if target in ("self", "super"):
                continue
            where = f"{rel}:{n}: {own} uses crate::{target}"
            if target == "cli":
                problems.append(f"{where}: the library may not use the CLI")
            elif target == own:
                for group in PEERS.get(own, []):
                    if sub in group and target_sub in group and sub != target_sub:
                        problems.append(f"{where}::{target_sub}: peers inside {own}")
            elif target not in layer_of:
                problems.append(f"{where}: unknown module")
            elif layer_of[target] > layer_of[own]:
                problems.append(f"{where}: points up the layers")
            elif layer_of[target] == layer_of[own]:
                problems.append(f"{where}: peers in one layer")

# The library must not declare the CLI.
lib = (root / "lib.rs").read_text()
if re.search(r"^\s*(pub\s+)?mod\s+cli\b", lib, re.M):
    problems.append("lib.rs declares `cli`: the command line belongs to main.rs")

for p in problems:
    print(p)
if problems:
    sys.exit(1)
print(f"check-layers: {sum(1 for _ in root.rglob('*.rs'))} files, every import points down")
