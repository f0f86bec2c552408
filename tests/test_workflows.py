"""The shipped tier workflows: they validate, convert, run in the stub and fit their cards."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from host_stub import Host
from i2v_nodes.families import registry
from i2v_nodes.families.wan import stand_ins as stand_ins
from i2v_nodes.families.wan.configs import TINY as TINY_CONFIGS
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.output import video
from tests.test_audio import probe_audio
from workflows import tier_plan
from workflows.tier_plan import HUB_OF_TEMPLATE, MACHINES

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
WAN = registry.get("wan")
# Each published model's tiny twin (same variant), at a small size that keeps its family's rules.
TINY = {"ali-vilab/i2vgen-xl": ("tiny-i2vgen-xl", 64, 48, 8),
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers": ("tiny-wan2.2-i2v-a14b", 64, 48, 9),
        "Wan-AI/Wan2.2-TI2V-5B-Diffusers": ("tiny-wan2.2-ti2v-5b", 64, 64, 9),
        "Lightricks/LTX-Video-0.9.7-dev": ("tiny-ltx-video", 64, 64, 9),
        "Lightricks/LTX-Video-0.9.5": ("tiny-ltx-video", 64, 64, 9),
        "Lightricks/LTX-2": ("tiny-ltx2", 64, 64, 17),
        "stabilityai/stable-video-diffusion-img2vid-xt-1-1": ("tiny-svd", 64, 48, 8),
        "stabilityai/stable-video-diffusion-img2vid": ("tiny-svd", 64, 48, 8),
        "openmmlab/PIA-condition-adapter": ("tiny-animatediff-i2v", 64, 64, 8)}


# The tiny models' GGUF files: Q8_0, as K-quants (Q4_K_M's) need rows of 256 that tiny layers lack
TINY_GGUF = "gguf-Q8_0"


def scaled_down(api: dict) -> tuple[list[str], tuple[int, int, int]]:
    """--set overrides that run a tier on its model's tiny twin on a CPU, and the expected video size.
    A tier on ComfyUI's files runs on the tiny twin's single files (see the host fixture), GGUF ones
    on the tiny twin's GGUF files."""
    loader = next(n for n in api.values() if n["class_type"].startswith("LoadI2VModel"))
    kind = loader["class_type"]
    hub = loader["inputs"].get("model") or HUB_OF_TEMPLATE[loader["inputs"]["diffusion_model"]]
    name, width, height, frames = TINY[hub]
    if kind == "LoadI2VModel":
        model = [f"LoadI2VModel.model={name}"]
    else:
        fmt = TINY_GGUF if loader["inputs"]["diffusion_model"].endswith(".gguf") else "fp32"
        files = models.tiny_single_files(name, Path(os.environ["I2V_MODELS_DIR"]), fmt)
        model = [f"{kind}.{slot}={path.name}" for slot, path in files.items()]
    overrides = [*model, f"{kind}.offload=none", f"{kind}.weights=default", f"VRAMGuard.width={width}",
                 f"VRAMGuard.height={height}", f"VRAMGuard.num_frames={frames}", "I2VSample.steps=2"]
    return overrides, (frames, width, height)


@pytest.fixture(scope="module")
def host(session_dirs) -> Host:
    """The stub, with header-only stand-ins of ComfyUI's template files and of the other files tiers
    name (GGUF experts) in its model folders (so the -files tiers validate and plan), the tiny Wan
    models' single files, and tiny LoRAs in the lightx2v layout for the tiny A14B under the names the
    -lightx2v tiers use."""
    for picture in ("i2v-example.png", "i2v-example-end.png"):  # the start image, and the end image
        shutil.copy(REPO / "examples" / picture, session_dirs["input"])
    for variant in stand_ins.TEMPLATE_FILES:
        stand_ins.write_template_files(session_dirs["models"], variant)
    for file_set in WAN.tiers.file_tiers:
        file_set.stand_ins(session_dirs["models"])
    write_tiny_lightx2v_loras(session_dirs["models"])
    folders = {f"{name}_dir": str(session_dirs[name]) for name in ("input", "output", "models")}
    return Host(packs=[str(REPO)], **folders)


def write_tiny_lightx2v_loras(models_dir: Path) -> dict[str, Path]:
    """lightx2v's two LoRAs (target -> path) under their ComfyUI names, sized for the tiny A14B."""
    config = TINY_CONFIGS["tiny-wan2.2-i2v-a14b"]["transformer"]
    return stand_ins.write_lightx2v_loras(models_dir, config, rank=8, seed=11)


@pytest.fixture(scope="module")
def stand_in_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stand-ins")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_one_workflow_per_tier():
    assert sorted(p.stem for p in WORKFLOWS) == sorted(MACHINES)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_validates_against_current_nodes(host, path):
    check = host.validate(host.convert(load(path)))
    assert check.ok, json.dumps(check.response(), indent=2)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_api_copy_is_what_the_converter_makes(host, path):
    api = load(REPO / "workflows" / "api" / path.name)
    assert api == host.convert(load(path))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_end_to_end_scaled_down(host, path, session_dirs):
    api = load(REPO / "workflows" / "api" / path.name)
    overrides, expected = scaled_down(api)
    result = host.run(load(path), overrides=overrides)
    assert result.status == "success", result.error
    (video_file,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
    info = video.probe_video(video_file)
    fps = next(n["inputs"]["target_fps"] for n in api.values() if n["class_type"] == "I2VSample")
    assert (info.frame_count, info.width, info.height) == expected
    assert info.fps == pytest.approx(fps)
    encode = next(n["inputs"] for n in api.values() if n["class_type"] == "EncodeVideo")
    if "audio" in encode:  # a model with sound: the clip's sound, as long as the video
        _codec, rate, _channels, samples = probe_audio(video_file)
        assert abs(samples / rate - expected[0] / fps) <= 1024 / rate
    workflow = json.loads(video.read_video_metadata(video_file)["workflow"])
    assert {n["type"] for n in workflow["nodes"]} >= {"VRAMGuard", "I2VSample", "EncodeVideo"}
    assert {n["type"] for n in workflow["nodes"]} & {"LoadI2VModel", "LoadI2VModelFiles"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_tier_fits_its_card_at_full_settings(path, stand_in_dir):
    """VRAMGuard's plan for the published model, at the workflow's own settings, on the tier's card."""
    api = load(REPO / "workflows" / "api" / path.name)
    settings = next(n["inputs"] for n in api.values() if n["class_type"] == "VRAMGuard")
    plan = tier_plan.plan_tier(api, path.stem, stand_in_dir)  # raises if it does not fit
    assert settings["policy"] in ("error", "adapt") and plan.fits
    # adapt only adds what the Note says; streaming per phase is the guard's own choice, in every policy
    streamed = {change for change in plan.changes if change.startswith(guard.STREAMED)}
    assert set(plan.changes) - streamed <= {"VAE tiling on"}
    assert bool(streamed) == (plan.options.residency == "phase")
    note = next(n for n in load(path)["nodes"] if n["type"] == "Note")["widgets_values"][0]
    assert ("streamed per phase" in note) == bool(streamed)


def test_the_8gb_gguf_tier_streams_a14b_in_16gb_of_ram_and_its_note_gives_ram_and_swap_time(stand_in_dir):
    """Wan 2.2 A14B on QuantStack's Q4_K_M experts, for an 8 GB card with 16 GB of RAM: VRAMGuard streams
    it per phase there (everything resident needs more RAM than the machine has) within the card and
    the RAM, and the Note gives the RAM peak as anonymous + file-backed and the swap time as one
    expert's file over the two disk speeds it names."""
    name = "wan-8gb-files-gguf"
    api = load(REPO / "workflows" / "api" / f"{name}.json")
    loader = tier_plan.nodes_of(api, "LoadI2VModelFiles")[0]["inputs"]
    assert [loader[slot] for slot in ("diffusion_model", "diffusion_model_2", "text_encoder", "vae")] == [
        "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf", "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf",
        "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors"]
    settings = tier_plan.nodes_of(api, "VRAMGuard")[0]["inputs"]
    assert (settings["width"], settings["height"], settings["num_frames"]) == (832, 480, 81)
    plan = tier_plan.plan_tier(api, name, stand_in_dir)
    assert MACHINES[name] == (8, 16) and plan.options.residency == "phase" and plan.options.offload == "group"
    assert plan.estimate.peak <= 0.9 * 8 * GiB and plan.ram.peak <= 0.9 * 16 * GiB
    handle = tier_plan.tier_handle(api, stand_in_dir)
    expert = max(memory.weight_bytes(handle)[role] for role in handle.roles.denoisers)  # a swap reads it back
    assert expert == pytest.approx(9.66e9, rel=0.01)  # QuantStack's Q4_K_M expert is 9.65 GB
    for role in handle.roles.denoisers:  # the expert's file, mapped where it lies
        assert handle.files.parts[role].path.stat().st_size == pytest.approx(expert, rel=0.01)
    note = next(n for n in load(REPO / "workflows" / f"{name}.json")["nodes"] if n["type"] == "Note")
    text = note["widgets_values"][0]
    peak, backed = plan.ram.peak / GiB, plan.ram.file_backed / GiB
    split = f"({peak - backed:.1f} GiB anonymous + {backed:.1f} GiB file-backed"
    assert backed > 8 and f"a peak of {peak:.1f} GiB {split}" in text
    assert "the two experts swap once per clip (the high-noise steps, then the low-noise ones)" in text
    seconds = [round(expert / (speed * 1e9)) for speed in (2.0, 0.5)]
    assert (f"{expert / GiB:.1f} GiB: about {seconds[0]} s from an NVMe SSD at 2 GB/s or {seconds[1]} s from "
            "a SATA SSD at 0.5 GB/s") in text


@pytest.mark.parametrize("name", ["i2v-preview", "i2v-12gb"])
def test_workflows_saved_by_the_first_release_still_run(host, name, session_dirs):
    """A workflow saved before the optional inputs (weights, options) existed loads and runs unchanged,
    in both formats."""
    for saved in (REPO / "tests" / "data" / "saved-0.1" / f"{name}.json",
                  REPO / "tests" / "data" / "saved-0.1" / f"{name}.api.json"):
        overrides, expected = scaled_down(load(saved) if saved.name.endswith(".api.json") else
                                          load(REPO / "tests" / "data" / "saved-0.1" / f"{name}.api.json"))
        result = host.run(load(saved), overrides=overrides)
        assert result.status == "success", result.error
        (video_file,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
        info = video.probe_video(video_file)
        assert (info.frame_count, info.width, info.height) == expected


def test_notes_and_api_copies_are_up_to_date(session_dirs):
    """The Notes and the tier table in docs/tiers.md quote the estimator; a change to it (or to a node)
    must be rebuilt into the files (``python workflows/build.py``). Run in this process, so it shares
    the memory traces the tests above already made."""
    spec = importlib.util.spec_from_file_location("workflows_build", REPO / "workflows" / "build.py")
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(build)
        files = build.build()
    finally:
        sys.modules.pop(spec.name, None)
    stale = [str(path.relative_to(REPO)) for path, text in files.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"out of date (run python workflows/build.py): {stale}"


@pytest.mark.parametrize("tiny", ["tiny-wan2.1-i2v", "tiny-wan2.2-i2v-a14b", "tiny-wan2.2-ti2v-5b"])
def test_every_tiny_wan_model_runs_the_whole_graph_in_the_stub(host, tiny, session_dirs):
    """The Wan tier graph (with its WanOptions node) on each tiny Wan model: the video has the asked
    frames and size, a seed gives the same frames again, and runs after the first load nothing."""
    from i2v_nodes.runtime import sampling

    graph = load(REPO / "workflows" / "wan-16gb.json")
    side = (64, 64) if tiny.endswith("5b") else (64, 48)
    base = [f"LoadI2VModel.model={tiny}", "LoadI2VModel.offload=none", "LoadI2VModel.weights=default",
            f"VRAMGuard.width={side[0]}", f"VRAMGuard.height={side[1]}", "VRAMGuard.num_frames=9",
            "I2VSample.steps=2", "WanOptions.guidance_scale_2=0", f"EncodeVideo.filename_prefix=stub/{tiny}"]
    videos, loads = [], None
    for seed in (1, 2, 1):
        result = host.run(graph, overrides=[*base, f"I2VSample.seed={seed}"])
        assert result.status == "success", result.error
        (path,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
        info = video.probe_video(path)
        assert (info.frame_count, info.width, info.height) == (9, *side)
        videos.append(_decoded(path))
        loads = sampling.default_cache().loads if loads is None else loads
    assert videos[0] == videos[2] and videos[0] != videos[1]
    assert sampling.default_cache().loads == loads


def _decoded(path: Path) -> list[bytes]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # metadata
    return [bytes(frame) for frame in reader]
