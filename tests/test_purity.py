"""The pure modules import no Flask and no database: they stay testable and reusable."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "abconv.analysis_settings",
    "abconv.assignment",
    "abconv.experiments",
    "abconv.stats",
    "abconv.vocabulary",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_framework(module: str) -> None:
    script = (
        f"import sys, {module}\n"
        "banned = ('flask', 'sqlmodel', 'sqlalchemy', 'werkzeug')\n"
        "bad = sorted(m for m in banned if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
