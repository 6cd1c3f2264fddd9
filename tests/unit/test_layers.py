"""Imports run one way, with the flow of a record: a stage may use the stages before it, never those after.

A newcomer reads the package in the order a record travels (ingest, correlate, deliver) and each folder
only leans on what came before; a reverse import would tie an early stage to a later one's changes.
"""

from __future__ import annotations

import ast

from paths import ROOT

PACKAGE = ROOT / "stream"
# Each layer may import its own modules and those of the layers listed before it.
LAYERS = [
    ("foundation", ["stream.settings", "stream.redact", "stream.models", "stream.version", "stream.logs",
                    "stream.metrics", "stream.jsonsafe"]),
    ("kafka", ["stream.kafka"]),
    ("entities", ["stream.entities"]),
    ("policy", ["stream.policy"]),
    ("ingest", ["stream.ingest"]),
    ("correlate", ["stream.correlate"]),
    ("deliver", ["stream.deliver"]),
    ("services", ["stream.worker", "stream.sources", "stream.demo"]),
    ("commands", ["stream.commands"]),
]


def layer_of(module: str) -> int:
    """The index of the layer a dotted module name belongs to (the longest matching prefix wins); the
    package's own ``__init__`` is foundation."""
    if module == "stream":
        return 0
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def stream_imports(path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of each import of a hotpath module in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "stream":
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names if alias.name.split(".")[0] == "stream"]
    return found


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_belongs_to_a_layer():
    assert [module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) < 0] == []


def test_no_stage_imports_a_later_stage():
    backwards = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for line, module, names in stream_imports(path):
            targets = [f"{module}.{name}" for name in names] if module == "stream" else [module]
            for target in targets:
                if layer_of(target) > layer_of(importer):
                    backwards.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert backwards == []


def test_no_module_reaches_into_another_modules_private_names():
    private = [f"{path.relative_to(ROOT)}:{line} imports {module}.{name}"
               for path in sorted(PACKAGE.rglob("*.py")) for line, module, names in stream_imports(path)
               for name in names if name.startswith("_")]
    assert private == []
