"""Dependencies point one way (../shared/STYLE.md 23): the rules, checked on the real import
graph, and shown to catch a wrong import added to that graph.

- no module imports another app's ``views`` (tests may import the views they test);
- ``registry`` imports nothing from ``imports``, ``api``, ``serving`` or ``webhooks`` (webhooks
  hear the audit trail through a signal);
- ``aegis_catalog.lib`` imports nothing from the apps (only other ``lib`` modules);
- product code (the apps, ``devservers``, ``bench``) never imports ``tests``;
- no import cycle, counting imports inside functions too (imports under ``TYPE_CHECKING`` only
  name types for the checker and run nothing: they count for the rules above, not for cycles).

grimp (the graph library behind import-linter) parses every import statement of the packages.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("aegis_catalog", "imports", "registry", "api", "serving", "webhooks")
PRODUCT = (*APPS, "devservers", "bench")
PACKAGES = tuple(name for name in (*PRODUCT, "tests") if (ROOT / name / "__init__.py").exists())


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _views_app(module: str) -> str | None:
    """The app whose views module (or package) ``module`` is, if any."""
    parts = module.split(".")
    return parts[0] if len(parts) > 1 and parts[1] == "views" else None


def _rule_broken(importer: str, imported: str) -> str | None:
    """Which rule ``importer`` importing ``imported`` breaks, if any."""
    importer_top, imported_top = _top(importer), _top(imported)
    views_app = _views_app(imported)
    if views_app is not None and importer_top not in (views_app, "tests"):
        return "imports another app's views"
    if importer_top == "registry" and imported_top in ("imports", "api", "serving", "webhooks"):
        return "registry imports imports, api, serving or webhooks"
    if importer.startswith("aegis_catalog.lib") and not imported.startswith("aegis_catalog.lib"):
        return "aegis_catalog.lib imports outside lib"
    if importer_top in PRODUCT and imported_top == "tests":
        return "product code imports tests"
    return None


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Each import that some chain of imports leads back from, as the loop it closes."""
    loops = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                start = min(back)  # one name per loop, whichever import it was found from
                turn = back.index(start)
                loops.add((*back[turn:], *back[:turn], start))
    return sorted(loops)


def layering_violations(graph: grimp.ImportGraph, runtime: grimp.ImportGraph) -> list[str]:
    """Every import that breaks a rule, and every cycle of ``runtime`` imports, in words."""
    problems = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            rule = _rule_broken(importer, imported)
            if rule is not None:
                problems.append(f"{importer} -> {imported}: {rule}")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in _cycles(runtime)]
    return problems


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=False)


@pytest.fixture(scope="module")
def runtime() -> grimp.ImportGraph:
    return grimp.build_graph(
        *PACKAGES, include_external_packages=False, exclude_type_checking_imports=True
    )


def test_the_dependencies_point_one_way(graph, runtime):
    assert layering_violations(graph, runtime) == []


@pytest.mark.parametrize(
    ("importer", "imported", "rule"),
    [
        ("imports.actions", "registry.views", "imports another app's views"),
        ("api.routers", "imports.views", "imports another app's views"),
        ("registry.models", "imports.models", "registry imports imports, api, serving or webhooks"),
        ("registry.verify", "api", "registry imports imports, api, serving or webhooks"),
        (
            "registry.actions",
            "serving.models",
            "registry imports imports, api, serving or webhooks",
        ),
        ("aegis_catalog.lib.storage", "registry.models", "aegis_catalog.lib imports outside lib"),
        ("aegis_catalog.devstack", "tests.conftest", "product code imports tests"),
        ("registry.models", "registry.actions", "import cycle"),
    ],
)
def test_it_fails_on_a_wrong_import(graph, runtime, importer, imported, rule):
    """The same check, on the real graphs with one wrong import added, names that import."""
    for each in (graph, runtime):
        for module in (importer, imported):
            if module not in each.modules:
                each.add_module(module)
        each.add_import(importer=importer, imported=imported)
    try:
        problems = layering_violations(graph, runtime)
    finally:
        for each in (graph, runtime):
            each.remove_import(importer=importer, imported=imported)
    assert any(rule in problem and importer in problem for problem in problems), problems
