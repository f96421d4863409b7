#!/usr/bin/env python3
"""The crate's module graph: every `crate::` import between top-level modules of src/, outside
tests. Fails on a cycle, or on an edge that points up the layering of docs/architecture.md.

Usage: python3 .ci/modgraph.py [src]   (prints the edges; exit 1 on a violation)
"""
import collections
import os
import re
import sys

# Lower numbers are lower layers: a module may import from its own layer (without a cycle) or
# from a lower one, never from a higher one. Keep in step with docs/architecture.md.
LAYERS = {
    "clock": 1, "deadline": 1, "escape": 1, "error": 1, "telemetry": 1,
    "config": 2,
    "session": 3,
    "token": 4,
    "store": 5, "rate_limit": 5,
    "revocation": 6, "manager": 6,
    "guard": 7, "json_body": 7, "response": 7,
    "layer": 9, "require_role": 9, "require_recent_auth": 9, "cookie": 9, "routes": 9, "login": 9, "extract": 9,
}

root = sys.argv[1] if len(sys.argv) > 1 else "src"
lib = open(os.path.join(root, "lib.rs")).read()
mods = set(re.findall(r"^\s*(?:pub(?:\(crate\))? )?mod ([a-z_]+)", lib, re.M))
# Names re-exported at the root resolve to the module they come from.
root_names = {}
for mod, names in re.findall(r"pub use ([a-z_]+)::\{?([^;]*?)\}?;", lib, re.S):
    for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names):
        root_names[name] = mod

edges = collections.defaultdict(set)
for directory, _, files in os.walk(root):
    for file in files:
        if not file.endswith(".rs") or file in ("tests.rs", "suite.rs", "lib.rs"):
            continue
        path = os.path.join(directory, file)
        module = os.path.relpath(path, root)[:-3].split("/")[0]
        text = re.sub(r"//[^\n]*", "", open(path).read())
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        used = re.findall(r"crate::([A-Za-z_]+)", text)
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            used += re.findall(r"([A-Za-z_]+)", group)
        for name in used:
            target = root_names.get(name, name)
            if target in mods and target != module:
                edges[module].add(target)

problems = []
for module in sorted(mods):
    if module not in LAYERS:
        problems.append(f"module `{module}` has no layer in .ci/modgraph.py")
for module in sorted(edges):
    print(f"{module} -> {', '.join(sorted(edges[module]))}")
    for target in edges[module]:
        if LAYERS.get(target, 0) > LAYERS.get(module, 0):
            problems.append(f"`{module}` (layer {LAYERS.get(module)}) imports `{target}` (layer {LAYERS.get(target)})")

# Cycles: strongly connected components of more than one module.
index, low, stack, on_stack, cycles = {}, {}, [], set(), []
def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v); on_stack.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop(); on_stack.discard(w); component.append(w)
            if w == v:
                break
        if len(component) > 1:
            cycles.append(sorted(component))
for v in list(edges):
    if v not in index:
        visit(v)
problems += [f"cycle: {' ↔ '.join(c)}" for c in cycles]

for problem in problems:
    print("error:", problem, file=sys.stderr)
sys.exit(1 if problems else 0)
