"""Every import in src/steelinspect points down: a package never imports one above it or beside it, and no two
packages import each other (the map is ARCHITECTURE.md's). Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "steelinspect"

# Lowest first. A unit may import its own modules and units of a lower layer only; units of one layer are
# independent of each other.
LAYERS = [
    ("constants", "errors"),
    ("io",),  # raises errors.RunError for a refused torch file
    ("rle", "device"),
    ("data", "models", "metrics"),
    ("runs", "postprocess", "draw"),
    ("infer", "train", "eda"),
    ("tuning", "inspect_log", "pseudo"),  # inspect_log stores what infer returns; pseudo: infer labels for train
    ("serve",),
    ("demo",),
    ("cli",),
    ("__main__",),
]
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def _module_of(path: Path, root: Path = SRC) -> list[str]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, module) of every steelinspect import in a file, `from steelinspect import rle` as steelinspect.rle."""
    module = _module_of(path, root)
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target == "steelinspect":  # `from steelinspect import rle`: the names are modules
                found += [(node.lineno, f"steelinspect.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.split(".")[0] == "steelinspect"]


def unit_of(module: str) -> str | None:
    """The layered unit of a dotted module name: its top-level package or module under steelinspect."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # the bare package (its __version__) sits below everything


def edges(root: Path = SRC) -> list[tuple[str, str, str]]:
    """(where, importing unit, imported unit) for every import between two different units."""
    found = []
    for path in sorted(root.rglob("*.py")):
        source = unit_of(".".join(_module_of(path, root)))
        for line, name in imports(path, root):
            target = unit_of(name)
            if source and target and target != source:
                found.append((f"{path.relative_to(root.parent)}:{line}", source, target))
    return found


def upward(root: Path = SRC) -> list[str]:
    """One line per import of a unit above or beside the importer: where, who, what."""
    return [f"{where}: {source} imports {target}, which is "
            f"{'above it' if LEVEL[target] > LEVEL[source] else 'beside it'}"
            for where, source, target in edges(root) if LEVEL[target] >= LEVEL[source]]


def test_every_unit_has_a_layer():
    units = {unit_of(".".join(_module_of(p))) for p in SRC.rglob("*.py")} - {None}
    assert units <= set(LEVEL), f"give these a layer in tests/test_layering.py: {sorted(units - set(LEVEL))}"


def test_imports_point_down():
    wrong = upward()
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for _, source, target in edges():
        graph.setdefault(source, set()).add(target)

    def cycle_from(start: str, node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return path + [nxt]
            if nxt not in path:
                found = cycle_from(start, nxt, path + [nxt])
                if found:
                    return found
        return None

    cycles = [" -> ".join(c) for unit in sorted(graph) if (c := cycle_from(unit, unit, [unit]))]
    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)


def test_the_check_names_an_upward_import_even_inside_a_function(tmp_path):
    root = tmp_path / "steelinspect"
    (root / "infer").mkdir(parents=True)
    (root / "infer" / "engines.py").write_text(
        "from steelinspect.runs.store import load_run\n\n\ndef f():\n    from steelinspect.train import loop\n")
    assert upward(root) == ["steelinspect/infer/engines.py:5: infer imports train, which is beside it"]
    (root / "runs").mkdir()
    (root / "runs" / "store.py").write_text("from steelinspect import tuning\n")
    assert "steelinspect/runs/store.py:1: runs imports tuning, which is above it" in upward(root)
