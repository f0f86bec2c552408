"""The README's two pictures: they exist, the README shows them, and the tier chart is the planner's.

The chart is drawn from the tier workflows and VRAMGuard's plans (docs/pictures/tier_chart.py), so a
change to a tier or to the estimator must be redrawn into the committed SVG. The redraw runs in this
process and reuses the memory traces other tests made (the planner caches them per process).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "docs" / "pictures" / "tiers.svg"
EDITOR = REPO / "docs" / "pictures" / "editor.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_script(path: Path) -> ModuleType:
    """A script of the repository as a module (docs/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"readme_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_the_readme_shows_both_pictures():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for picture in (EDITOR, CHART):
        relative = picture.relative_to(REPO).as_posix()
        assert picture.is_file(), f"{relative} is missing"
        assert f"]({relative})" in readme, f"README.md does not show {relative}"
    assert EDITOR.read_bytes().startswith(PNG_MAGIC)
    assert EDITOR.stat().st_size < 400 * 1024, "editor.png: keep the screenshot under 400 KB"


def test_the_tier_chart_matches_the_planner():
    chart = load_script(REPO / "docs" / "pictures" / "tier_chart.py")
    drawn = chart.chart_svg()
    committed = CHART.read_text(encoding="utf-8")
    if drawn != committed:
        old, new = committed.splitlines(), drawn.splitlines()
        differ = (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b)
        line = next(differ, min(len(old), len(new)))
        pytest.fail("docs/pictures/tiers.svg no longer matches the tier workflows and the planner: run "
                    f"`python docs/pictures/tier_chart.py`. First difference at line {line + 1}:\n"
                    f"committed: {old[line] if line < len(old) else '(end)'}\n"
                    f"drawn:     {new[line] if line < len(new) else '(end)'}")


def test_the_tier_chart_has_a_cell_per_tier_workflow():
    """Every tier workflow has its cell (a cheap check that needs no planning)."""
    svg = CHART.read_text(encoding="utf-8")
    for path in sorted((REPO / "workflows" / "api").glob("*.json")):
        assert f">{path.stem}</text>" in svg, f"{path.stem} is not in the chart"
