"""Everything the service imports is declared in pyproject.toml's dependencies.

A module that only the test extras install would pass every test and still break a
plain `pip install .`; this reads the code's imports and checks them against the list.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    found: set[str] = set()
    for folder in ("newsletter", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found - {"newsletter", "workers"} - set(sys.stdlib_module_names)


def test_every_imported_package_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The s3 extra is the one optional part of the service (media in a bucket).
    deps = [*project["dependencies"], *project["optional-dependencies"]["s3"]]
    declared = {_normalise(re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0]) for dep in deps}
    owners = packages_distributions()
    missing = {
        module: owners.get(module, ["?"])
        for module in _imported_modules()
        if not any(_normalise(dist) in declared for dist in owners.get(module, []))
    }
    assert missing == {}
