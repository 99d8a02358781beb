"""The package's arrows point one way, and no module grows past a size one can read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kwaflux_ofx"
# What each part must never import (the parts above it).
FORBIDDEN = {
    "settings.py": ("kwaflux_ofx",),
    "errors.py": ("kwaflux_ofx",),
    "engine": ("kwaflux_ofx.media", "kwaflux_ofx.conform", "kwaflux_ofx.hosts", "kwaflux_ofx.cli"),
    "models": ("kwaflux_ofx.conform", "kwaflux_ofx.hosts", "kwaflux_ofx.cli"),
    "media": ("kwaflux_ofx.conform", "kwaflux_ofx.hosts", "kwaflux_ofx.cli"),
    "conform": ("kwaflux_ofx.hosts", "kwaflux_ofx.cli"),
    "hosts": ("kwaflux_ofx.cli",),
}


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_arrows_point_one_way(part):
    files = [PACKAGE / part] if part.endswith(".py") else sorted((PACKAGE / part).rglob("*.py"))
    for f in files:
        bad = [
            name
            for name in imports(f)
            for prefix in FORBIDDEN[part]
            if name == prefix or name.startswith(prefix + ".")
        ]
        assert not bad, f"{f.relative_to(PACKAGE)} imports {bad}"


def test_no_module_past_500_lines():
    long = {
        str(f.relative_to(PACKAGE)): n
        for f in PACKAGE.rglob("*.py")
        if (n := len(f.read_text().splitlines())) > 500
    }
    assert not long
