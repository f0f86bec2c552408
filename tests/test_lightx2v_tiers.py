"""ComfyUI's own Wan 2.2 A14B 4-step setup as tier workflows (``wan-*-files-lightx2v``): lightx2v's
two LoRAs, one per expert, in the published key layout, 4 steps without CFG, run in the stub."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from host_stub import Host
from i2v_nodes.families.toolkit.safetensors_header import read_header
from i2v_nodes.families.wan import stand_ins as stand_ins
from i2v_nodes.runtime import memory, sampling
from i2v_nodes.runtime.loading import lora, models
from i2v_nodes.runtime.output import video
from tests.test_workflows import write_tiny_lightx2v_loras

REPO = Path(__file__).resolve().parents[1]
TIER = REPO / "workflows" / "wan-24gb-files-lightx2v.json"
TINY = "tiny-wan2.2-i2v-a14b"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def host(session_dirs) -> Host:
    shutil.copy(REPO / "examples" / "i2v-example.png", session_dirs["input"])
    write_tiny_lightx2v_loras(session_dirs["models"])
    folders = {f"{name}_dir": str(session_dirs[name]) for name in ("input", "output", "models")}
    return Host(packs=[str(REPO)], **folders)


@pytest.fixture(scope="module")
def overrides(session_dirs) -> list[str]:
    """The tier on the tiny A14B's single files, small; its own steps, guidance, options and LoRAs."""
    files = models.tiny_single_files(TINY, session_dirs["models"])
    return [*(f"LoadI2VModelFiles.{slot}={path.name}" for slot, path in files.items()),
            "LoadI2VModelFiles.offload=none", "LoadI2VModelFiles.weights=default", "VRAMGuard.width=64",
            "VRAMGuard.height=48", "VRAMGuard.num_frames=9", "EncodeVideo.filename_prefix=stub/lightx2v"]


def without(graph: dict, *targets: str) -> dict:
    """The graph with the LoRA nodes for these experts bypassed (the model passes straight through)."""
    graph = copy.deepcopy(graph)
    for node in graph["nodes"]:
        if node["type"] == "I2VLoRA" and node["widgets_values"][2] in targets:
            node["mode"] = 4
    return graph


class Steps:
    """Progress reporter: the last (value, total) I2VSample reported."""

    def __init__(self, sample_id: str):
        self.sample_id, self.last = sample_id, None

    def node_started(self, node_id, class_type, title):
        pass

    def node_progress(self, node_id, value, total):
        if node_id == self.sample_id:
            self.last = (value, total)

    def node_finished(self, node_id, status, seconds):
        pass


def node_id(api: dict, class_type: str) -> str:
    (found,) = [key for key, node in api.items() if node["class_type"] == class_type]
    return found


def test_lightx2v_tiers_are_the_a14b_files_tiers_with_comfyuis_4_step_settings():
    for files_tier in sorted((REPO / "workflows" / "api").glob("wan-*gb-files.json")):
        base = load(files_tier)
        loader = base[node_id(base, "LoadI2VModelFiles")]["inputs"]
        variant = REPO / "workflows" / "api" / files_tier.name.replace(".json", "-lightx2v.json")
        assert variant.is_file() == (loader["diffusion_model_2"] != "none"), variant.name  # A14B only
        if not variant.is_file():
            continue
        api = load(variant)
        # the same files and memory choices, but an offload up where the LoRAs' weights tip the card over
        lora_loader = api[node_id(api, "LoadI2VModelFiles")]["inputs"]
        assert {**lora_loader, "offload": loader["offload"]} == loader
        offloads = ("none", "model", "group", "sequential")
        assert offloads.index(lora_loader["offload"]) >= offloads.index(loader["offload"])
        assert api[node_id(api, "VRAMGuard")]["inputs"]["policy"] == base[node_id(base, "VRAMGuard")][
            "inputs"]["policy"]
        sample = api[node_id(api, "I2VSample")]["inputs"]
        assert (sample["steps"], sample["guidance_scale"]) == (4, 1.0)
        # euler on ComfyUI's simple schedule, chained into WanOptions: what the LoRAs were distilled for
        chosen = node_id(api, "I2VSamplerOptions")
        assert api[chosen]["inputs"] == {"sampler": "euler"}
        assert api[node_id(api, "WanOptions")]["inputs"] == {"guidance_scale_2": 1.0, "boundary_ratio": 0.9,
                                                            "flow_shift": 5.0, "options": [chosen, 0]}
        assert sample["options"] == [node_id(api, "WanOptions"), 0]
        loras = {n["inputs"]["target"]: key for key, n in api.items() if n["class_type"] == "I2VLoRA"}
        assert {t: (api[key]["inputs"]["lora_name"], api[key]["inputs"]["strength"])
                for t, key in loras.items()} == {
            "high_noise": ("wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors", 1.0),
            "low_noise": ("wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors", 1.0)}
        high, low = loras["high_noise"], loras["low_noise"]  # loader -> high -> low -> guard
        assert api[high]["inputs"]["model"] == [node_id(api, "LoadI2VModelFiles"), 0]
        assert api[low]["inputs"]["model"] == [high, 0]
        assert api[node_id(api, "VRAMGuard")]["inputs"]["model"] == [low, 0]


def test_the_tier_notes_count_the_lora_weights_and_say_where_the_files_go():
    def note(path: Path) -> tuple[float, str]:
        text = next(n for n in load(path)["nodes"] if n["type"] == "Note")["widgets_values"][0]
        return float(re.search(r"The weights are ([\d.]+) GiB", text).group(1)), text

    base, _ = note(REPO / "workflows" / "wan-24gb-files.json")
    with_loras, text = note(TIER)
    assert with_loras > base + 1.0  # two LoRAs of about 0.57 GiB each (bf16 adapters)
    assert "loras/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors" in text
    assert "models/loras/" in text and "20x fewer" in text and "without guidance" in text


def test_the_published_layout_stand_in_and_its_bytes_in_the_plan(tmp_path):
    """The full-size stand-in has the published file's keys and shapes; its bytes count in the plan,
    on the expert each LoRA targets."""
    paths = stand_ins.write_lightx2v_loras(tmp_path)
    header = read_header(paths["high_noise"])
    assert len(header.tensors) == 40 * 10 * 3  # 40 blocks x 10 matrices x (down, up, alpha)
    assert all(k.startswith("diffusion_model.blocks.") for k in header.tensors)
    assert header.shape("diffusion_model.blocks.0.self_attn.q.lora_down.weight") == (64, 5120)
    assert header.shape("diffusion_model.blocks.39.ffn.0.lora_up.weight") == (13824, 64)
    assert header.shape("diffusion_model.blocks.7.cross_attn.o.alpha") == ()
    handle = models.handle_for_files(stand_ins.write_template_files(tmp_path, "wan2.2-i2v-a14b"),
                                     device="cuda", weights="fp8")
    high, low = handle.roles.denoisers
    added = handle
    for target, path in paths.items():
        added = added.with_lora(lora.LoraSpec(str(path), 1.0, target))
    base, more = memory.weight_bytes(handle), memory.weight_bytes(added)
    assert more[high] - base[high] == more[low] - base[low] == header.numel * 2  # bf16 adapters


def test_lightx2v_tier_runs_4_steps_without_cfg_each_expert_with_its_own_lora(host, overrides, session_dirs):
    graph = load(TIER)
    api = host.convert(graph)
    sample_id, loader_id = node_id(api, "I2VSample"), node_id(api, "LoadI2VModelFiles")

    base = host.run(without(graph, "high_noise", "low_noise"), overrides=overrides)  # loads the model
    assert base.status == "success", base.error
    handle = base.output(loader_id)
    loaded = sampling.default_cache().peek(handle.cache_key)
    pipe = loaded.pipeline
    calls = {"transformer": 0, "transformer_2": 0}
    hooks = [getattr(pipe, role).register_forward_pre_hook(
        lambda *_args, role=role: calls.__setitem__(role, calls[role] + 1)) for role in calls]
    steps = Steps(sample_id)
    try:
        full = host.run(graph, overrides=overrides, progress=steps)
    finally:
        for hook in hooks:
            hook.remove()
    assert full.status == "success", full.error
    assert steps.last == (4 + 1, 4 + 1)  # I2VSample's progress: 4 steps, then the clip's decode
    assert calls == {"transformer": 2, "transformer_2": 2}  # 4 steps split 2 + 2, one call each: no CFG
    on = {role: Path(identity[0]).name for identity, role in loaded.loras.adapters}
    assert on == {"transformer": stand_ins.LIGHTX2V_LORAS["high_noise"],
                  "transformer_2": stand_ins.LIGHTX2V_LORAS["low_noise"]}

    (path,) = [Path(f) for f in full.files if str(f).endswith(".mp4")]
    info = video.probe_video(path)
    assert (info.frame_count, info.width, info.height) == (9, 64, 48)

    frames = {"both": full.output(sample_id), "none": base.output(sample_id)}
    for name, graph_without in (("high only", without(graph, "low_noise")),
                                ("low only", without(graph, "high_noise"))):
        result = host.run(graph_without, overrides=overrides)
        assert result.status == "success", result.error
        frames[name] = result.output(sample_id)
    assert all(torch.isfinite(f).all() for f in frames.values())
    values = list(frames.values())
    assert all(not torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1:])


def test_lightx2v_tier_on_fp8_files_as_shipped(host, session_dirs):
    """The tier's own weight storage (fp8 files, fp8 weights) with its LoRAs, on the tiny A14B."""
    files = models.tiny_single_files(TINY, session_dirs["models"], fmt="fp8_scaled")
    overrides = [*(f"LoadI2VModelFiles.{slot}={path.name}" for slot, path in files.items()),
                 "LoadI2VModelFiles.offload=none", "VRAMGuard.width=64", "VRAMGuard.height=48",
                 "VRAMGuard.num_frames=9", "EncodeVideo.filename_prefix=stub/lightx2v-fp8"]
    result = host.run(load(TIER), overrides=overrides)
    assert result.status == "success", (result.error or {}).get("exception_message")
