"""`python -m i2v_nodes plan` answers a published model cold without importing torch (1.1-1.7 s of a
cold answer on a small machine): the planner's modules take torch lazily (``i2v_nodes.lazy``), the
families build their traces' builders on first use, and the shipped table has the figures. The nodes,
which run on a host's worker threads, still import torch when they are imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

QUESTIONS = {
    "a14b": ["Wan-AI/Wan2.2-I2V-A14B-Diffusers", "--width", "832", "--height", "480", "--frames", "81",
             "--vram", "8", "--ram", "16"],
    "ltx2": ["Lightricks/LTX-2", "--width", "1280", "--height", "704", "--frames", "121", "--vram", "16",
             "--ram", "32"],
    "svd": ["stabilityai/stable-video-diffusion-img2vid-xt", "--width", "1024", "--height", "576", "--frames",
            "25", "--vram", "8", "--ram", "16", "--json"],
}


def run_python(code: str, tmp_path) -> str:
    env = {**os.environ, "I2V_TRACE_CACHE": str(tmp_path)}  # an empty trace cache: a fresh machine
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("name", QUESTIONS)
def test_plan_answers_a_published_model_without_importing_torch(name, tmp_path, capsys):
    code = ("import sys\nfrom i2v_nodes import cli\n"
            f"code = cli.main(['plan', *{QUESTIONS[name]!r}])\n"
            "print('exit', code, type(sys.modules['torch']).__name__)")
    answer, _, last = run_python(code, tmp_path).rstrip().rpartition("\n")
    assert last.split()[2] == "_LazyModule"  # torch never loaded
    # the very answer of a process where torch is loaded (here: the nodes and the tests import it)
    from i2v_nodes import cli

    assert last.split()[1] == str(cli.main(["plan", *QUESTIONS[name]]))
    assert answer.rstrip() == capsys.readouterr().out.rstrip() and len(answer) > 200


def test_importing_the_nodes_imports_torch(tmp_path):
    """A lazy module's first touch is not thread-safe in Python 3.11: the nodes load torch on import."""
    code = "import sys, i2v_nodes.nodes\nprint(type(sys.modules['torch']).__name__)"
    assert run_python(code, tmp_path).split() == ["module"]


def test_each_family_declares_the_source_of_its_traces():
    """The declared file is what keys a family's figures in the shipped table: it must be the source of
    the traces the family builds (else the table would answer for code it was not made by)."""
    import inspect
    from pathlib import Path

    from i2v_nodes.families import registry

    for family in registry.REGISTERED:
        assert family.traces_file == Path(inspect.getsourcefile(type(family.traces))), family.name
