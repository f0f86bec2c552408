"""`python -m i2v_nodes`: a command line it cannot use exits 2 with one line, never a traceback and
never 1, which means "does not fit"."""

from __future__ import annotations

import pytest

from i2v_nodes import cli

A14B = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
PLAN = ["plan", A14B, "--width", "832", "--height", "480", "--frames", "81"]


def exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        return exc.code


@pytest.mark.parametrize("flags", [
    ["--vram", "nan"], ["--vram", "inf"], ["--vram", "1e308"], ["--vram", "-1"], ["--vram", "0"],
    ["--vram", "x"], ["--vram", "24", "--ram", "nan"], ["--vram", "24", "--ram", "0"],
    ["--vram", "24", "--ram", "-8"], ["--vram", "24", "--headroom", "nan"],
    ["--vram", "24", "--headroom", "-1"], ["--vram", "24", "--headroom", "0.95"],
], ids=" ".join)
def test_memory_figures_that_are_no_machine_are_refused(flags, capsys):
    assert exit_code([*PLAN, *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("expected" in err or "invalid" in err)


def test_neither_a_model_nor_files_is_a_usage_error(capsys):
    assert exit_code(["plan", "--width", "832", "--height", "480", "--frames", "81", "--vram", "24"]) == 2
    assert "give a MODEL" in capsys.readouterr().err


def test_bad_sizes_are_usage_errors_and_a_run_that_does_not_fit_is_1(capsys):
    assert exit_code([*PLAN[:-1], "80", "--vram", "24", "--no-search"]) == 2  # 80 is not 4k+1
    assert "num_frames" in capsys.readouterr().err
    assert exit_code([*PLAN, "--vram", "4", "--ram", "8", "--no-search"]) == 1
    assert exit_code([*PLAN, "--vram", "80", "--ram", "256", "--offload", "model", "--no-search"]) == 0


def test_plan_searches_a_tiny_wan_model_up_to_the_most_frames_it_takes(model_dirs, capsys):
    """The search for the most frames traces up to the variant's limit (161 for Wan 2.1): the tiny
    configs' rope covers them (a rope of 32 positions ended the search, and the command, in a traceback)."""
    argv = ["plan", "tiny-wan2.1-i2v", "--width", "64", "--height", "64", "--frames", "9", "--vram", "8",
            "--ram", "16"]
    assert exit_code(argv) == 0
    assert "largest frames here 161 (of up to 162)" in capsys.readouterr().out
