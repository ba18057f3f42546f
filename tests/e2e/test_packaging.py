"""What `pip install -e '.[dev]'` (the README's development install) brings is enough for the
README's checks: ruff, and mypy on the package, which reads every module the package imports
(uvloop's stubs included)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalized (`enricher[test]` -> `enricher`)."""
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found is not None, requirement
    return re.sub(r"[-_.]+", "-", found.group()).lower()


def _extras(requirement: str) -> list[str]:
    found = re.search(r"\[([^\]]+)\]", requirement.split(";")[0])
    return [e.strip() for e in found.group(1).split(",")] if found else []


def _installed_by(project: dict[str, object], extra: str) -> set[str]:
    """The distributions the project and `extra` bring (extras of the project followed)."""
    deps = project["dependencies"]
    optional = project["optional-dependencies"]
    assert isinstance(deps, list) and isinstance(optional, dict)
    names = {_name(d) for d in deps}
    todo, seen = [extra], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for requirement in optional[current]:
            if _name(requirement) == "enricher":
                todo.extend(_extras(requirement))
            else:
                names.add(_name(requirement))
    return names


def _imported_modules() -> set[str]:
    """The top-level modules outside the standard library that the package imports."""
    found = set()
    for path in (ROOT / "enricher").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "enricher"}


def test_the_dev_extra_holds_what_the_checks_need() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = _installed_by(project, "dev")
    assert {"ruff", "mypy"} <= dev
    distributions = metadata.packages_distributions()
    for module in _imported_modules():
        names = {_name(d) for d in distributions.get(module, [module])}
        assert names & dev, f"{module} is imported by the package but not installed by [dev]"
