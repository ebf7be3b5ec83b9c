"""The one-way dependency rule: web/, commands/ and workers/ call the domain; the domain
never imports a web framework, the CLI, Celery or those adapters.

Checked on the source (every import statement, also those inside functions), so a lazy
import cannot hide a dependency the wrong way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "newsletter"
ADAPTERS = ("web", "commands")
ADAPTER_FILES = ("cli.py", "__main__.py")
FORBIDDEN = (
    "fastapi",
    "starlette",
    "click",
    "celery",
    "kombu",
    "uvicorn",
    "workers",
    "newsletter.web",
    "newsletter.commands",
    "newsletter.cli",
)


def domain_modules() -> list[Path]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in ADAPTERS or rel.parts[0] == "migrations" or str(rel) in ADAPTER_FILES:
            continue
        found.append(path)
    return found


def imported(path: Path) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
    return names


def test_the_domain_is_found() -> None:
    rels = {str(p.relative_to(PACKAGE)) for p in domain_modules()}
    assert {"sending/batch.py", "subscriptions/consent.py", "digests/compose.py"} <= rels
    assert not any(r.startswith(("web/", "commands/")) for r in rels)


@pytest.mark.parametrize("path", domain_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_domain_module_imports_no_adapter(path: Path) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for line, name in imported(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not wrong, "the domain must not depend on an adapter:\n" + "\n".join(wrong)


def test_the_check_catches_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from workers.tasks import send_batch\n    import click\n")
    assert [n for _, n in imported(bad)] == ["workers.tasks", "click"]
