"""Speed settings (I2VSpeedOptions): CFG truncation skips exactly the unconditional calls after its
cut-off, and families that cannot take a setting refuse it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from host_stub import Host
from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.output import video
from tests.test_lora import LAYERS, write_lora

REPO = Path(__file__).resolve().parents[1]

CPU = torch.device("cpu")


def speed(**values):
    (options,) = NODE_CLASS_MAPPINGS["I2VSpeedOptions"]().build(**values)
    return options


@pytest.fixture(scope="module")
def settings():
    return sampling.SampleSettings(prompt="waves", negative_prompt="blurry", width=64, height=48,
                                   num_frames=9, steps=4, guidance_scale=5.0, seed=3, batch_size=1,
                                   target_fps=16)


def run_counting(handle, image, s, cache):
    """Frames, and one entry per denoiser call."""
    sampling.sample(handle, image, s, services.standalone(), cache=cache)  # loaded before hooking
    transformer = cache.peek(handle.cache_key).pipeline.transformer
    calls = []
    hook = transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        frames = sampling.sample(handle, image, s, services.standalone(), cache=cache).frames
    finally:
        hook.remove()
    return frames, len(calls)


def with_speed(settings, **values):
    return dataclasses.replace(settings, options=speed(**values))


def test_cfg_truncation_skips_exactly_the_unconditional_calls_after_its_cut_off(wan, still_image, settings,
                                                                               fresh_cache):
    plain, plain_calls = run_counting(wan, still_image, settings, fresh_cache)
    assert plain_calls == 8  # 4 steps, a conditional and an unconditional call each
    same, same_calls = run_counting(wan, still_image, with_speed(settings, guidance_until=1.0), fresh_cache)
    assert torch.equal(same, plain) and same_calls == plain_calls  # 1 = off
    half, half_calls = run_counting(wan, still_image, with_speed(settings, guidance_until=0.5), fresh_cache)
    assert half_calls == 2 * 2 + 2  # guided for 2 steps, then the conditional call alone
    assert not torch.equal(half, plain) and torch.isfinite(half).all()
    _, first_only = run_counting(wan, still_image, with_speed(settings, guidance_until=0.05), fresh_cache)
    assert first_only == 2 + 3  # at least one guided step


def test_a_family_without_cfg_truncation_refuses_it_naming_the_input(model_dirs, still_image, settings):
    ltx = models.open_model("tiny-ltx-video", models.LoadOptions(), model_dirs, CPU)
    s = dataclasses.replace(with_speed(settings, guidance_until=0.5), width=64, height=64, num_frames=9)
    with pytest.raises(InputError, match=r"input 'guidance_until': CFG truncation works on Wan models"):
        sampling.sample(ltx, still_image, s, services.standalone())
    with pytest.raises(InputError, match="input 'guidance_until': expected a share of the steps"):
        sampling.sample(ltx, still_image, with_speed(s, guidance_until=0.0), services.standalone())


def test_speed_options_chain_with_a_family_option_node(wan, still_image, settings, fresh_cache):
    (wan_options,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0,
                                                               flow_shift=4.0)
    (both,) = NODE_CLASS_MAPPINGS["I2VSpeedOptions"]().build(guidance_until=0.5, options=wan_options)
    frames, calls = run_counting(wan, still_image, dataclasses.replace(settings, options=both), fresh_cache)
    assert calls == 6 and torch.isfinite(frames).all()


def test_a_graph_with_a_lora_and_a_speed_setting_runs_in_the_stub(wan, session_dirs, fresh_cache):
    transformer = registry.tiny_builders()["tiny-wan2.1-i2v"][1]().transformer
    layers = dict(transformer.named_modules())
    shapes = {f"blocks.{i}.{name}": (layers[f"blocks.{i}.{name}"].in_features,
                                     layers[f"blocks.{i}.{name}"].out_features)
              for i in range(len(transformer.blocks)) for name, _ in LAYERS}
    write_lora(session_dirs["models"] / "loras" / "speed-test.safetensors", shapes, seed=4)
    shutil.copy(REPO / "examples" / "i2v-example.png", session_dirs["input"])
    folders = {f"{kind}_dir": str(session_dirs[kind]) for kind in ("input", "output", "models")}
    host = Host(packs=[str(REPO)], **folders)
    model = {"model": "tiny-wan2.1-i2v", "precision": "fp32", "vae_precision": "auto", "device": "auto",
             "offload": "none", "allow_download": False, "weights": "default"}
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "i2v-example.png"}},
        "2": {"class_type": "LoadI2VModel", "inputs": model},
        "3": {"class_type": "I2VLoRA", "inputs": {"model": ["2", 0], "lora_name": "speed-test.safetensors",
                                                  "strength": 1.0, "target": "both"}},
        "4": {"class_type": "VRAMGuard", "inputs": {"model": ["3", 0], "width": 64, "height": 48,
                                                    "num_frames": 9, "batch_size": 1, "policy": "error",
                                                    "headroom": 0.1}},
        "5": {"class_type": "I2VSpeedOptions", "inputs": {"guidance_until": 0.5,
                                                          "step_cache": "first_block"}},
        "6": {"class_type": "I2VSample", "inputs": {
            "model": ["4", 0], "image": ["1", 0], "prompt": "waves", "negative_prompt": "blurry",
            "width": ["4", 1], "height": ["4", 2], "num_frames": ["4", 3], "steps": 4,
            "guidance_scale": 5.0, "seed": 3, "batch_size": ["4", 4], "target_fps": 16,
            "decode_chunk_size": 0, "options": ["5", 0]}},
        "7": {"class_type": "EncodeVideo", "inputs": {
            "frames": ["6", 0], "fps": ["6", 1], "frames_per_clip": ["6", 2], "format": "mp4-h264", "crf": 19,
            "filename_prefix": "speed/lora", "loop_count": 0, "pingpong": False, "save_output": True,
            "save_metadata": True}},
    }
    result = host.run(prompt)
    assert result.status == "success", result.error
    (path,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
    info = video.probe_video(path)
    assert (info.frame_count, info.width, info.height) == (9, 64, 48)
