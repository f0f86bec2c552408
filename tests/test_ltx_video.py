"""LTX-Video specifics beyond the family contract: which release a folder holds, the distilled
schedule, the options node, and the published sizes."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
import torch

from host_stub import Host
from i2v_nodes.errors import InputError
from i2v_nodes.families.ltx_video.spec import DISTILLED_TIMESTEPS
from i2v_nodes.families.registry import LTX_VIDEO
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.output import video

CPU = torch.device("cpu")


def open_named(name, model_dirs):
    return models.open_model(name, models.LoadOptions(), model_dirs, CPU)


@pytest.fixture(scope="module")
def dev(model_dirs):
    return open_named("tiny-ltx-video", model_dirs)


@pytest.fixture(scope="module")
def settings():
    return sampling.SampleSettings(prompt="a boat at sea", negative_prompt="blurry", width=64, height=64,
                                   num_frames=9, steps=2, guidance_scale=3.0, seed=5, batch_size=1,
                                   target_fps=24)


def run(handle, image, s, cache=None):
    return sampling.sample(handle, image, s, services.standalone(), cache=cache)


def ltx_options(**values):
    defaults = {name: -1.0 for name in LTX_VIDEO.spec.option_inputs}
    (options,) = NODE_CLASS_MAPPINGS["LTXVideoOptions"]().build(**{**defaults, **values})
    return options


# --- which release a folder holds ------------------------------------------------------------------


def test_each_tiny_model_is_its_release(model_dirs):
    variants = {name: open_named(name, model_dirs) for name in LTX_VIDEO.tiny_models}
    assert {name: h.variant for name, h in variants.items()} == {
        "tiny-ltx-video": "ltx-video", "tiny-ltx-video-distilled": "ltx-video-distilled",
        "tiny-ltx-video-0.9.1": "ltx-video-0.9.1"}
    assert variants["tiny-ltx-video-distilled"].rules.default_steps == 8
    assert variants["tiny-ltx-video-distilled"].rules.default_guidance == 1.0
    assert LTX_VIDEO.pipeline_class("ltx-video-0.9.1").__name__ == "LTXImageToVideoPipeline"
    assert LTX_VIDEO.pipeline_class("ltx-video").__name__ == "LTXConditionPipeline"


def test_a_saved_ltx_pipeline_folder_is_image_to_video_and_distilled_by_its_name(tmp_path, dev):
    # Lightricks save 0.9.5 as LTXPipeline (text-to-video): the same weights run image-to-video
    folder = tmp_path / "i2v" / "LTX-Video-0.9.7-distilled"
    shutil.copytree(dev.source, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "LTXPipeline"}))
    handle = open_named(folder.name, [tmp_path / "i2v"])
    assert (handle.family.name, handle.variant) == ("ltx-video", "ltx-video-distilled")


# --- the distilled schedule ------------------------------------------------------------------------


def test_the_distilled_model_runs_its_own_timesteps_at_8_steps(model_dirs, still_image, settings):
    distilled = open_named("tiny-ltx-video-distilled", model_dirs)
    run(distilled, still_image, dataclasses.replace(settings, steps=8, guidance_scale=1.0))
    pipe = sampling.default_cache().peek(dataclasses.replace(distilled.cache_key, offload="none")).pipeline
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda _m, _a, kwargs: seen.append(float(kwargs["timestep"].max())), with_kwargs=True)
    try:
        run(distilled, still_image, dataclasses.replace(settings, steps=8, guidance_scale=1.0))
    finally:
        hook.remove()
    assert seen == pytest.approx([float(t) for t in DISTILLED_TIMESTEPS], abs=1e-3)


# --- the options node -------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{"decode_timestep": 0.2}, {"decode_noise_scale": 0.3},
                                    {"guidance_rescale": 0.7}, {"image_noise_scale": 0.5},
                                    {"image_strength": 0.5}])
def test_each_option_changes_the_output_and_matches_the_stock_pipeline(dev, still_image, settings, values):
    plain = run(dev, still_image, settings).frames
    s = dataclasses.replace(settings, options=ltx_options(**values))
    ours = run(dev, still_image, s).frames
    assert not torch.equal(ours, plain)
    stock = LTX_VIDEO.pipeline_class(dev.variant).from_pretrained(dev.source)
    stock.set_progress_bar_config(disable=True)
    assert torch.equal(ours, sampling.stock_reference(dev, stock, still_image, s).frames)


def test_the_models_own_values_equal_no_options(dev, still_image, settings):
    own = ltx_options(decode_timestep=0.05, decode_noise_scale=0.025, guidance_rescale=0.0,
                      image_noise_scale=0.15, image_strength=1.0)
    plain = run(dev, still_image, settings).frames
    assert torch.equal(run(dev, still_image, dataclasses.replace(settings, options=own)).frames, plain)


def test_bad_options_are_refused_naming_the_input(model_dirs, still_image, settings):
    with pytest.raises(InputError, match="input 'image_strength': expected -1 .* or a number from 0 to 1"):
        ltx_options(image_strength=1.5)
    legacy = open_named("tiny-ltx-video-0.9.1", model_dirs)
    s = dataclasses.replace(settings, options=ltx_options(image_noise_scale=0.2))
    with pytest.raises(InputError, match="image_noise_scale condition the image the way LTX-Video 0.9.5"):
        run(legacy, still_image, s)
    (wan,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0,
                                                       flow_shift=4.0)
    with pytest.raises(InputError, match="WanOptions"):
        run(legacy, still_image, dataclasses.replace(settings, options=wan))


# --- published sizes --------------------------------------------------------------------------------


def test_published_releases_and_sizes():
    counts = {hub: dict(models.describe_published(hub).params) for hub in LTX_VIDEO.hub_ids}
    assert 12.9e9 < counts["Lightricks/LTX-Video-0.9.7-dev"]["transformer"] < 13.2e9
    assert 1.8e9 < counts["Lightricks/LTX-Video-0.9.5"]["transformer"] < 2.0e9
    assert all(4.7e9 < c["text_encoder"] < 4.8e9 for c in counts.values())  # T5 v1.1 XXL's encoder
    variants = {hub: models.describe_published(hub).variant for hub in LTX_VIDEO.hub_ids}
    assert variants["Lightricks/LTX-Video-0.9.7-distilled"] == "ltx-video-distilled"
    assert set(variants.values()) == {"ltx-video-0.9.1", "ltx-video", "ltx-video-distilled"}


# --- the whole graph in the stub ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-ltx-video-distilled", "tiny-ltx-video-0.9.1"])
def test_the_tier_graph_runs_in_the_stub_reproducibly_without_reloading(name, session_dirs):
    """(tiny-ltx-video runs the same graph in tests/test_workflows.py.)"""
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "examples" / "i2v-example.png", session_dirs["input"])
    folders = {f"{kind}_dir": str(session_dirs[kind]) for kind in ("input", "output", "models")}
    host = Host(packs=[str(repo)], **folders)
    workflow = json.loads((repo / "workflows" / "ltx-video-24gb.json").read_text())
    base = [f"LoadI2VModel.model={name}", "LoadI2VModel.offload=none", "LoadI2VModel.weights=default",
            "VRAMGuard.width=64", "VRAMGuard.height=96", "VRAMGuard.num_frames=17", "I2VSample.steps=2"]
    loads, videos = sampling.default_cache().loads, []
    for run_index, seed in enumerate((1, 2, 1)):  # seed 1 again after 2: sampled anew, not cached
        result = host.run(workflow, overrides=[*base, f"I2VSample.seed={seed}",
                                               f"EncodeVideo.filename_prefix=ltx/{name}-{run_index}"])
        assert result.status == "success", result.error
        (path,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
        info = video.probe_video(path)
        assert (info.frame_count, info.width, info.height) == (17, 64, 96)
        videos.append(decoded(path))
    assert sampling.default_cache().loads - loads <= 1  # loaded once (or already warm)
    assert videos[0] == videos[2] and videos[0] != videos[1]


def decoded(path: Path) -> bytes:
    """The video's decoded RGB frames."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    command = [ffmpeg, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    return subprocess.run(command, capture_output=True, check=True).stdout
