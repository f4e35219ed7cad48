"""The layering of docs/ARCHITECTURE.md: no lib/ module imports from a layer above its own (function-level imports
included), and lib/ never imports the scripts (core/, ui/)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lib package or module -> layer; a module may import its own layer and the ones below
LAYERS = {
    0: ("config", "errors", "results", "shipped", "data", "split", "prompt", "metrics", "utils", "render", "review"),
    1: ("models", "modeling", "generation", "perf", "synth", "reader", "quickstart_data", "analysis"),
    2: ("train", "evaluation", "merge"),
    3: ("search",),
    4: ("ui",),
}
LAYER_OF = {name: level for level, names in LAYERS.items() for name in names}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lib":
                yield from (f"lib.{a.name}" for a in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_no_lib_module_imports_from_a_layer_above():
    wrong, unplaced = [], set()
    for path in sorted((ROOT / "lib").rglob("*.py")):
        rel = path.relative_to(ROOT / "lib")
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        own = rel.parts[0].removesuffix(".py")
        if own not in LAYER_OF:
            unplaced.add(own)
            continue
        for name in _imports(path):
            top = name.split(".")
            if top[0] in ("core", "ui"):
                wrong.append(f"lib/{rel} imports the script module {name}")
            elif top[0] == "lib" and len(top) > 1 and top[1] in LAYER_OF and LAYER_OF[top[1]] > LAYER_OF[own]:
                wrong.append(f"lib/{rel} (layer {LAYER_OF[own]}) imports {name} (layer {LAYER_OF[top[1]]})")
    assert not unplaced, f"place {sorted(unplaced)} in LAYERS here and in docs/ARCHITECTURE.md"
    assert not wrong, "\n".join(wrong)
