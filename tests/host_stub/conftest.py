"""Fixtures for the host_stub tests: hosts built on the small test packs under ``packs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from host_stub import Host

PACKS = Path(__file__).parent / "packs"


def api_node(class_type: str, title: str | None = None, **inputs: Any) -> dict[str, Any]:
    """One API-format node."""
    entry: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
    if title is not None:
        entry["_meta"] = {"title": title}
    return entry


@pytest.fixture
def node():
    """The API-node builder (a fixture, since test modules cannot import each other here)."""
    return api_node


@pytest.fixture
def make_host(tmp_path: Path):
    def make(*packs: str, **kwargs: Any) -> Host:
        folders = {
            "input_dir": tmp_path / "input",
            "output_dir": tmp_path / "output",
            "models_dir": tmp_path / "models",
        }
        (tmp_path / "input").mkdir(exist_ok=True)
        return Host(packs=[PACKS / name for name in packs], **{**folders, **kwargs})

    return make


@pytest.fixture
def host(make_host) -> Host:
    return make_host("arith", "features")


@pytest.fixture
def chain() -> dict[str, Any]:
    """IntConst(5) -> Add(+3) -> Show."""
    return {
        "1": api_node("IntConst", value=5),
        "2": api_node("Add", a=["1", 0], b=3),
        "3": api_node("Show", value=["2", 0]),
    }
