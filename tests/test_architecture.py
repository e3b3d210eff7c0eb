"""Dependencies point one way: adapters -> moa + storage; bot wires everything; moa knows no platform or SQL."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{file} imports {name}"
        for file, names in imports_of(package).items()
        for name in sorted(names)
        if name.split(".")[0] in forbidden or name in forbidden
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("moa", ("bot", "adapters", "storage", "sqlite3", "aiosqlite", "slack_bolt", "slack_sdk", "discord")),
        ("storage", ("bot", "adapters", "together", "moa.prompts", "moa.orchestrator", "moa.answering")),
        ("adapters", ("bot",)),
    ],
)
def test_layering(package: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(package, forbidden) == []


def test_adapters_do_not_import_each_other() -> None:
    for file, names in imports_of("adapters").items():
        for platform in ("slack", "discord"):
            if f"adapters/{platform}" in file:
                other = "discord" if platform == "slack" else "slack"
                assert not any(n.startswith(f"adapters.{other}") for n in names), file
