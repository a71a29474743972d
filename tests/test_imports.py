"""The layers of the code base and who may import whom (docs/architecture.md).

Walks every module of ``archive/``, ``ingest/`` and ``datamodel/`` with ``ast`` (every
import statement, also those inside functions) and fails on an import cycle or on an
import that crosses the layers the wrong way.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("archive", "ingest", "datamodel")

#: The layers, lowest first: (name, module prefixes). A module belongs to the layer of
#: its longest matching prefix. A module may import modules of lower layers and of its
#: own layer; the three layers of rank 3 (executor, formats, ADQL) may not import each
#: other: each is given what it needs by the services above.
LAYERS = [
    (0, "data model", ("datamodel",)),
    (1, "base", ("archive.errors", "archive.config", "archive.params", "archive.result",
                 "archive.sky", "archive.sqlite_functions", "archive.progress")),
    (2, "storage and geometry", ("archive.db", "archive.replicas", "archive.spatial")),
    (3, "executor", ("archive.query", "archive.prepared", "archive.columnar")),
    (3, "formats", ("archive.formats",)),
    (3, "ADQL", ("archive.tap.adql",)),
    (4, "services", ("archive.tap", "archive.conesearch", "archive.datalink", "ingest",
                     "archive.cli_context", "archive.lightcurves", "archive.products",
                     "archive.catalogues", "archive.resolver",
                     "archive.crossmatch", "archive.search", "archive.admin", "archive.ops")),
    (5, "HTTP edge", ("archive.http", "archive.body_timeout")),
    (6, "views", ("archive.tap.views", "archive.conesearch.views", "archive.datalink.views",
                  "archive.web", "archive.blueprints", "archive", "archive.lightcurves.views",
                  "archive.products.views", "archive.catalogues.views",
                  "archive.resolver.views", "archive.crossmatch.views",
                  "archive.search.views", "archive.ops.views")),
    (7, "commands", ("archive.tap.cli", "ingest.cli", "archive.cli", "archive.gunicorn_conf",
                    "archive.admin.cli")),
]

#: Modules that may import Flask: the edge, the views, the application factory, and
#: the database's ``get_db``/``init_app`` binding.
FLASK_ALLOWED = ("archive.http", "archive.tap.views", "archive.conesearch.views",
                 "archive.datalink.views", "archive.web", "archive.blueprints", "archive.db",
                 "archive.lightcurves.views", "archive.products.views",
                 "archive.catalogues.views", "archive.resolver.views",
                 "archive.crossmatch.views", "archive.search.views", "archive.ops.views")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules (and ``flask``) that module ``name`` imports."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            top = target.split(".")[0]
            if top in PACKAGES and target != name:
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                out.add(target)
            elif top == "flask":
                out.add("flask")
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> tuple[int, str]:
    best = None
    for rank, label, prefixes in LAYERS:
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), rank, label)
    assert best is not None, f"module {module} is in no layer: add it to LAYERS"
    return best[1], best[2]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _package_links(module: str, target: str) -> bool:
    """A package's own ``__init__`` importing its modules (or a module importing its
    package's public names) is not a dependency between layers."""
    return target.startswith(module + ".") or module.startswith(target + ".")


def test_the_walker_sees_the_known_imports():
    assert "archive.result" in GRAPH["archive.query"]
    assert "archive.tap.adql.parser" in GRAPH["archive.tap.adql.translate"] or any(
        m.startswith("archive.tap.adql.") for m in GRAPH["archive.tap.adql.translate"])
    assert "flask" in GRAPH["archive.http"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = {m: {t for t in targets if t != "flask" and not (
        m.startswith(t + ".") and MODULES[t].name == "__init__.py")}
        for m, targets in GRAPH.items()}
    assert _cycles(graph) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_respect_the_layers(module):
    rank, label = layer_of(module)
    wrong = []
    for target in sorted(GRAPH[module]):
        if target == "flask":
            if not any(module == p or module.startswith(p + ".") for p in FLASK_ALLOWED) \
                    and module != "archive":
                wrong.append("flask (only the HTTP edge and the views import Flask)")
            continue
        if _package_links(module, target):
            continue
        target_rank, target_label = layer_of(target)
        if target_rank > rank or (target_rank == rank and target_label != label):
            wrong.append(f"{target} ({target_label}, rank {target_rank})")
    assert not wrong, (f"{module} ({label}, rank {rank}) imports upwards or sideways: "
                       + "; ".join(wrong))


def test_rules_the_issue_names():
    """Spelled out: storage imports nothing above it; ADQL no Flask, executor or
    database; formats no executor."""
    def imports(prefix):
        return {t for m, ts in GRAPH.items() if m == prefix or m.startswith(prefix + ".")
                for t in ts}
    assert not {t for t in imports("archive.db") if t.startswith("archive.")} - {
        "archive.sqlite_functions", "archive.replicas"}
    assert not {t for t in imports("archive.replicas") if t.startswith("archive.")}
    adql = imports("archive.tap.adql")
    assert not adql & {"flask", "archive.query", "archive.prepared", "archive.columnar",
                       "archive.db"}
    assert not imports("archive.formats") & {"archive.query", "archive.prepared",
                                             "archive.columnar", "archive.db"}
