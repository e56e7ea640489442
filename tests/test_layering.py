"""The package's imports follow the layering table of docs/design.md: no import cycle between
modules, no import from a lower layer to a higher one (imports inside functions count too), no
private name imported from another module, and no module over 800 lines outside the
from-scratch model maths."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "biasprobe"
DESIGN = REPO / "docs" / "design.md"
MAX_LINES = 800
#: The from-scratch model maths (network definitions), exempt from the size limit.
MATHS = {"biasprobe.sentiment.rnn", "biasprobe.sentiment.transformer"}


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def layer_table() -> list[tuple[int, str, list[str]]]:
    """(layer number, name, module patterns) from the table under '## Layers'."""
    text = DESIGN.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"\|\s*(\d+)\s+([^|]+?)\s*\|(.+)\|\s*$", line)
        if m:
            patterns = re.findall(r"`([^`]+)`", m.group(3))
            rows.append((int(m.group(1)), m.group(2), patterns))
    assert rows, "docs/design.md has no layering table under '## Layers'"
    return rows


def layer_of(module: str, table) -> int | None:
    """The layer of the most specific pattern matching ``module``."""
    best: tuple[int, int] | None = None
    for number, _, patterns in table:
        for pat in patterns:
            if fnmatch.fnmatchcase(module, pat):
                score = len(pat.replace("*", ""))
                if best is None or score > best[0]:
                    best = (score, number)
    return None if best is None else best[1]


def imports(mods: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every biasprobe import."""
    out = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "biasprobe":
                        out.append((mod, a.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "biasprobe":
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in mods:
                        out.append((mod, sub, None, node.lineno))
                    else:
                        out.append((mod, target, a.name, node.lineno))
    return out


def test_every_module_has_a_layer():
    table = layer_table()
    missing = [m for m in modules() if layer_of(m, table) is None]
    assert not missing, f"modules missing from the layering table of docs/design.md: {missing}"


def test_no_import_goes_up_a_layer():
    table = layer_table()
    mods = modules()
    bad = []
    for mod, target, _, line in imports(mods):
        a, b = layer_of(mod, table), layer_of(target, table)
        if a is not None and b is not None and b > a:
            bad.append(
                f"{mods[mod].relative_to(REPO)}:{line}: {mod} (layer {a}) imports {target} (layer {b})"
            )
    assert not bad, "imports from a lower layer to a higher one:\n" + "\n".join(bad)


def test_no_private_name_is_imported_from_another_module():
    mods = modules()
    bad = [
        f"{mods[mod].relative_to(REPO)}:{line}: {mod} imports {target}.{name}"
        for mod, target, name, line in imports(mods)
        if name
        and name.startswith("_")
        and not (name.startswith("__") and name.endswith("__"))
        and target != mod
    ]
    bad += [
        f"{mods[mod].relative_to(REPO)}:{line}: {mod} imports private module {target}"
        for mod, target, _, line in imports(mods)
        if any(p.startswith("_") and not p.startswith("__") for p in target.split("."))
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_no_import_cycle():
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, target, _, _ in imports(mods):
        if target in mods and target != mod:
            graph[mod].add(target)
    # A package's __init__ re-exporting its own submodules is not a cycle of concepts.
    for mod in graph:
        if mods[mod].name == "__init__.py":
            graph[mod] = {t for t in graph[mod] if not t.startswith(mod + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_over_800_lines():
    big = {
        m: n
        for m, p in modules().items()
        if m not in MATHS and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_checker_sees_what_it_should(tmp_path):
    """Guard: the parser resolves relative and in-function imports and the table is found."""
    table = layer_table()
    assert layer_of("biasprobe.errors", table) == 0
    assert layer_of("biasprobe.cli", table) > layer_of("biasprobe.report.html", table)
    found = imports(
        {
            "biasprobe.x.y": _write(
                tmp_path, "def f():\n    from ..errors import _z\n    from . import w\n"
            )
        }
    )
    assert ("biasprobe.x.y", "biasprobe.errors", "_z", 2) in found
    assert ("biasprobe.x.y", "biasprobe.x", "w", 3) in found


def _write(folder: Path, text: str) -> Path:
    p = folder / "y.py"
    p.write_text(text, encoding="utf-8")
    return p
