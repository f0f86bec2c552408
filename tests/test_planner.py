"""`python -m i2v_nodes plan`: will this run fit, before a download; the same answer as VRAMGuard."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from i2v_nodes import cli
from i2v_nodes.families import registry
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard, planner

REPO = Path(__file__).resolve().parents[1]
A14B = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
GiB = 2**30


@pytest.fixture(scope="module")
def answer_24gb():
    handle = models.describe_published(A14B, device="cuda")
    return planner.answer(handle, memory.RunShape(832, 480, 81), planner.Machine(24, 64))


def test_a14b_in_bf16_without_offload_does_not_fit_a_24gb_card(answer_24gb):
    assert not answer_24gb.fits
    assert answer_24gb.asked.weights == "default" and answer_24gb.asked.options.offload == "none"
    assert answer_24gb.asked.device_peak > 24 * GiB


def test_names_options_that_fit_and_the_ram_each_needs(answer_24gb):
    fitting = [o for o in answer_24gb.options if o.fits]
    assert fitting, "some memory option must make A14B fit a 24 GB card"
    for option in answer_24gb.options:
        assert option.ram_peak > 0 and set(option.ram_phases) == {"load", "run"}
        assert set(option.device_phases) == {"encode", "denoise", "decode"}
    budget = planner.Machine(24, 64).budget()
    for option in fitting:  # the guard agrees with every "fits"
        handle = dataclasses.replace(answer_24gb.handle, weights=option.weights)
        assert guard.fits(handle, answer_24gb.shape, option.options, budget)
        assert option.device_peak <= budget.usable and option.ram_peak <= budget.ram_usable
    # offloading both bf16 experts and keeping them resident holds 57 GB of weights in RAM: more than 64 GB
    # of RAM allows; streamed per phase, RAM holds one of them at a time
    bf16_offloaded = [
        o for o in answer_24gb.options if o.weights == "default" and o.options.offload != "none"
    ]
    resident = [o for o in bf16_offloaded if o.options.residency == "resident"]
    assert resident and not any(o.fits for o in resident)
    assert all(o.ram_peak > 57 * GiB for o in resident)
    streamed = [o for o in bf16_offloaded if o.options.residency == "phase"]
    assert streamed and all(o.fits and o.ram_peak < 32 * GiB for o in streamed)


def test_the_verdict_is_the_guards(answer_24gb):
    handle = answer_24gb.handle
    budget = planner.Machine(24, 64).budget()
    with pytest.raises(Exception, match="DOES NOT FIT"):
        guard.plan_run(handle, answer_24gb.shape, "error", budget)
    fitting = answer_24gb.first_fitting()
    plan = guard.plan_run(
        dataclasses.replace(handle, weights=fitting.weights),
        answer_24gb.shape,
        "off",
        budget,
        start=fitting.options,
    )
    assert plan.fits and plan.estimate.peak == fitting.device_peak


def _way(choice: planner.Choice) -> tuple[str, str, str]:
    return choice.handle.weights, choice.options.offload, choice.options.residency


def test_tier_choice_keeps_everything_resident_where_that_fits_and_streams_only_where_nothing_else_does():
    """Streaming re-reads each expert from its file per clip, so a run that fits resident keeps that (in
    fp8 here, although bf16 streamed would fit too); where no resident way fits the RAM, the choice
    streams with group offload, and VRAMGuard, given only the loader's settings, streams it the same."""
    handle = models.describe_published(A14B, device="cuda")
    shape = memory.RunShape(1280, 720, 81)
    roomy = planner.choose([(handle, shape)], planner.Machine(16, 64))
    assert _way(roomy) == ("fp8", "group", "resident")
    bf16_streamed = dataclasses.replace(roomy.options, residency="phase")
    assert guard.fits(handle, shape, bf16_streamed, planner.Machine(16, 64).budget())
    budget = planner.Machine(16, 32).budget()
    short = planner.choose([(handle, shape)], planner.Machine(16, 32))
    assert _way(short) == ("fp8", "group", "phase")
    resident = dataclasses.replace(short.options, residency="resident")
    assert short.ram_peak <= budget.ram_usable < memory.estimate_ram(short.handle, shape, resident).peak
    loaded = dataclasses.replace(short.handle, offload=short.options.offload)  # the workflow's loader
    plan = guard.plan_run(loaded, shape, "adapt" if short.options.vae_tiling else "error", budget)
    assert (plan.options.residency, plan.options.vae_tiling) == ("phase", short.options.vae_tiling)


def test_ways_to_run_stream_only_where_the_guard_would_after_every_resident_way():
    handle, shape = models.describe_published(A14B, device="cuda"), memory.RunShape(832, 480, 81)
    ways = [(weights, o.offload, o.residency) for weights, o in planner.ways_to_run(handle, shape)]
    first_streamed = next(i for i, way in enumerate(ways) if way[2] == "phase")
    assert all(way[2] == "resident" for way in ways[:first_streamed])
    streamed = {way for way in ways if way[2] == "phase"}
    assert streamed == {("default", "group", "phase"), ("fp8", "group", "phase")}
    on_cpu = dataclasses.replace(handle, device="cpu")
    cpu_ways = [(o.offload, o.residency) for _weights, o in planner.ways_to_run(on_cpu, shape)]
    assert list(dict.fromkeys(cpu_ways)) == [("none", "resident"), ("none", "phase")]


def test_cli_text_and_json(capsys):
    # with 32 GB of RAM bf16 experts fit only kept on disk (streamed one at a time they need 31 GiB); the
    # guard's ladder comes before fp8 storage, which changes the output
    rc = cli.main(
        ["plan", A14B, "--width", "832", "--height", "480", "--frames", "81", "--vram", "24", "--ram", "32"]
    )
    text = capsys.readouterr().out
    assert rc == 1
    assert "as asked (weights default, offload none" in text and "DOES NOT FIT" in text
    assert ("verdict: does not fit as asked; it fits with weights default, offload group, VAE tiling on, "
            "offloaded to disk") in text
    assert "RAM per phase: load" in text
    rc = cli.main(
        ["plan", A14B, "--width", "832", "--height", "480", "--frames", "81", "--vram", "24", "--ram", "64",
         "--no-search"]
    )
    assert rc == 1 and ("verdict: does not fit as asked; it fits with weights default, offload group, VAE "
                        "tiling on, streamed per phase") in capsys.readouterr().out
    rc = cli.main(
        [
            "plan",
            A14B,
            "--width",
            "832",
            "--height",
            "480",
            "--frames",
            "81",
            "--vram",
            "24",
            "--ram",
            "64",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["fits"] is False and data["fitting_options"]["fits"] is True
    assert {"device_gib", "ram_gib", "largest_frames", "largest_size"} <= set(data["options"][0])
    rc = cli.main(
        [
            "plan",
            A14B,
            "--width",
            "832",
            "--height",
            "480",
            "--frames",
            "81",
            "--vram",
            "80",
            "--ram",
            "128",
            "--weights",
            "fp8",
            "--json",
        ]
    )
    assert rc == 0 and json.loads(capsys.readouterr().out)["fits"] is True


def test_cli_refuses_what_the_model_cannot_take(capsys):
    rc = cli.main(["plan", A14B, "--width", "832", "--height", "480", "--frames", "80", "--vram", "24"])
    assert rc == 2 and "nearest valid: 77 or 81" in capsys.readouterr().err


def test_cli_runs_as_a_module_with_no_weights_on_disk(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "i2v_nodes",
            "plan",
            "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            "--width",
            "1280",
            "--height",
            "704",
            "--frames",
            "121",
            "--vram",
            "12",
            "--ram",
            "32",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={"I2V_MODELS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    data = json.loads(done.stdout)
    assert done.returncode == 1 and data["fits"] is False and data["fitting_options"] is not None
    assert not list(tmp_path.iterdir())  # nothing downloaded or built


def test_tiers_lists_each_family(capsys):
    assert cli.main(["tiers", str(REPO / "workflows" / "api")]) == 0
    text = capsys.readouterr().out
    assert "- i2vgen-xl:" in text and "- wan:" in text


def test_tiny_files_writes_every_family_that_has_single_files_and_skips_formats_it_lacks(tmp_path, capsys):
    assert cli.main(["tiny-files", "--models-dir", str(tmp_path), "--format", "fp8_scaled"]) == 0
    out = capsys.readouterr().out
    written = {line.split()[0] for line in out.splitlines() if line.rstrip().endswith(".safetensors")}
    builders = registry.tiny_builders()
    readers = {name for name, (family, _build) in builders.items() if family.files is not None}
    skipped = {name for name in readers if "fp8_scaled" not in builders[name][0].files.formats}
    assert written == readers - skipped and written and skipped  # AnimateDiff has no fp8 files
    assert "(no fp8_scaled files" in out
    assert all(Path(line.split()[-1]).is_file() for line in out.splitlines() if line.endswith(".safetensors"))
