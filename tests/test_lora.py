"""LoRAs as a node: applied on the cached pipeline, never reloading the base, removable bit for bit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import lora, models
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.sampling.loaded import Loaded

CPU = torch.device("cpu")
RANK = 2
# (diffusers layer, ComfyUI/kohya layer) pairs the test LoRAs touch in every block
LAYERS = [("attn1.to_q", "self_attn.q"), ("attn1.to_v", "self_attn.v"), ("attn2.to_k", "cross_attn.k"),
          ("ffn.net.0.proj", "ffn.0")]


@pytest.fixture(scope="module")
def settings():
    return sampling.SampleSettings(prompt="waves", negative_prompt="blurry", width=32, height=32,
                                   num_frames=5, steps=2, guidance_scale=5.0, seed=11, batch_size=1,
                                   target_fps=16)


def _open(name, model_dirs):
    return models.open_model(name, models.LoadOptions(precision="fp32"), model_dirs, CPU)


@pytest.fixture(scope="module")
def wan(model_dirs):
    return _open("tiny-wan2.1-i2v", model_dirs)


@pytest.fixture(scope="module")
def a14b(model_dirs):
    return _open("tiny-wan2.2-i2v-a14b", model_dirs)


def run(handle, image, settings, cache) -> torch.Tensor:
    return sampling.sample(handle, image, settings, services.standalone(), cache=cache).frames


def loaded(handle, cache) -> Loaded:
    return cache.peek(handle.cache_key)


def _shapes(handle, cache) -> dict[str, tuple[int, int]]:
    """(in, out) features of each layer the test LoRAs touch, read from the loaded base model."""
    transformer = getattr(loaded(handle, cache).pipeline, handle.roles.denoisers[0])
    layers = dict(transformer.named_modules())
    return {f"blocks.{i}.{name}": (layers[f"blocks.{i}.{name}"].in_features,
                                   layers[f"blocks.{i}.{name}"].out_features)
            for i in range(len(transformer.blocks)) for name, _ in LAYERS}


def write_lora(path: Path, shapes: dict[str, tuple[int, int]], seed: int, kohya: bool = False) -> Path:
    """Random small LoRA matrices, in diffusers' PEFT keys or ComfyUI/kohya-style keys."""
    generator = torch.Generator().manual_seed(seed)
    kohya_names = dict(LAYERS)
    tensors = {}
    for layer, (fan_in, fan_out) in shapes.items():
        down = torch.randn(RANK, fan_in, generator=generator) * 0.3
        up = torch.randn(fan_out, RANK, generator=generator) * 0.3
        if kohya:
            block, name = layer.split(".", 2)[1], layer.split(".", 2)[2]
            stem = f"diffusion_model.blocks.{block}.{kohya_names[name]}"
            tensors |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up,
                        f"{stem}.alpha": torch.tensor(float(RANK))}
        else:
            tensors |= {f"transformer.{layer}.lora_A.weight": down, f"transformer.{layer}.lora_B.weight": up}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def spec(path: Path, strength: float = 1.0, target: str = "both") -> lora.LoraSpec:
    return lora.LoraSpec(str(path), strength, target, lora.check_file(path).identity)


@pytest.fixture(scope="module")
def wan_base(wan, still_image, settings, cache):
    return run(wan, still_image, settings, cache)


@pytest.fixture(scope="module")
def files(wan, wan_base, cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    shapes = _shapes(wan, cache)
    return {"one": write_lora(folder / "one.safetensors", shapes, 1),
            "two": write_lora(folder / "two.safetensors", shapes, 2),
            "kohya": write_lora(folder / "kohya.safetensors", shapes, 1, kohya=True)}


def test_switching_loras_and_strengths_never_reloads_and_removal_is_bit_identical(
        wan, wan_base, files, still_image, settings, cache):
    loads = cache.loads
    one = run(wan.with_lora(spec(files["one"])), still_image, settings, cache)
    two = run(wan.with_lora(spec(files["two"])), still_image, settings, cache)
    half = run(wan.with_lora(spec(files["one"], 0.5)), still_image, settings, cache)
    both = run(wan.with_lora(spec(files["one"])).with_lora(spec(files["two"])), still_image, settings, cache)
    again = run(wan, still_image, settings, cache)
    assert cache.loads == loads  # the base loaded once, before these runs
    for frames in (one, two, half, both):
        assert not torch.equal(frames, wan_base)
    assert not torch.equal(one, two) and not torch.equal(one, half) and not torch.equal(both, one)
    assert torch.equal(again, wan_base)
    assert loaded(wan, cache).loras.adapters == {}


def test_strength_zero_is_no_lora_and_larger_strength_moves_further(
        wan, wan_base, files, still_image, settings, cache):
    zero = run(wan.with_lora(spec(files["one"], 0.0)), still_image, settings, cache)
    assert torch.equal(zero, wan_base)
    assert loaded(wan, cache).loras.adapters == {}  # nothing was even loaded
    outputs = [run(wan.with_lora(spec(files["one"], strength)), still_image, settings, cache)
               for strength in (0.25, 1.0, 3.0)]
    distances = [(frames - wan_base).abs().mean() for frames in outputs]
    assert distances[0] < distances[1] < distances[2]


def test_comfyui_kohya_keys_equal_the_same_lora_in_diffusers_keys(
        wan, files, still_image, settings, cache):
    kohya = run(wan.with_lora(spec(files["kohya"])), still_image, settings, cache)
    peft = run(wan.with_lora(spec(files["one"])), still_image, settings, cache)
    torch.testing.assert_close(kohya, peft, rtol=0, atol=1e-6)


def test_a14b_targets_one_expert_or_both(a14b, still_image, settings, cache, tmp_path):
    base = run(a14b, still_image, settings, cache)
    path = write_lora(tmp_path / "expert.safetensors", _shapes(a14b, cache), 3)
    pipe = loaded(a14b, cache).pipeline
    high, low = a14b.roles.denoisers  # the first expert runs the high-noise steps
    expected = {"both": {high, low}, "high_noise": {high}, "low_noise": {low}}
    outputs = {}
    for target in lora.TARGETS:
        outputs[target] = run(a14b.with_lora(spec(path, 1.0, target)), still_image, settings, cache)
        carrying = {role for role in (high, low) if getattr(getattr(pipe, role), "peft_config", None)}
        assert carrying == expected[target], target
    assert len({o.sum().item() for o in (base, *outputs.values())}) == 4  # each target its own output
    assert torch.equal(run(a14b, still_image, settings, cache), base)


def test_one_denoiser_models_refuse_an_expert_target(wan):
    lora.check_request(wan.roles.denoisers, 1.0, "both")
    with pytest.raises(InputError, match="one denoiser: use 'both'"):
        lora.check_request(wan.roles.denoisers, 1.0, "high_noise")
    for bad in (4.5, float("nan"), True):
        with pytest.raises(InputError, match="strength"):
            lora.check_request(wan.roles.denoisers, bad, "both")


def test_a_lora_matching_nothing_is_refused_naming_file_and_keys_and_leaves_the_base(
        wan, wan_base, still_image, settings, cache, tmp_path):
    path = tmp_path / "other_model.safetensors"
    save_file({"transformer.down_blocks.0.resnets.0.conv1.lora_A.weight": torch.ones(2, 4),
               "transformer.down_blocks.0.resnets.0.conv1.lora_B.weight": torch.ones(4, 2)}, str(path))
    with pytest.raises(lora.LoraError, match=r"other_model\.safetensors matches no layer.*down_blocks\.0"):
        run(wan.with_lora(spec(path)), still_image, settings, cache)
    assert torch.equal(run(wan, still_image, settings, cache), wan_base)


def test_pickles_and_truncated_files_are_refused_naming_the_file(files, tmp_path):
    pickle = tmp_path / "style.ckpt"
    pickle.write_bytes(b"not read")
    with pytest.raises(InputError, match=r"style\.ckpt is a pickle"):
        lora.check_file(pickle)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(files["one"].read_bytes()[:-100])
    with pytest.raises(InputError, match=r"cut\.safetensors is truncated"):
        lora.check_file(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(InputError, match=r"junk\.safetensors is not a readable LoRA"):
        lora.check_file(junk)


def test_node_is_registered_with_tooltips_and_chains(wan, files, session_dirs):
    cls = NODE_CLASS_MAPPINGS["I2VLoRA"]
    assert NODE_DISPLAY_NAME_MAPPINGS["I2VLoRA"] == "Image-to-Video LoRA"
    folder = host.models_root() / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "one.safetensors").write_bytes(files["one"].read_bytes())
    inputs = cls.INPUT_TYPES()["required"]
    assert list(inputs) == ["model", "lora_name", "strength", "target"]
    assert all(options.get("tooltip") for _type, options in inputs.values())
    assert "one.safetensors" in inputs["lora_name"][0]
    assert (inputs["strength"][1]["min"], inputs["strength"][1]["max"]) == (-4.0, 4.0)
    (first,) = cls().apply(wan, "one.safetensors", 1.0, "both")
    (second,) = cls().apply(first, "one.safetensors", -0.5, "both", unique_id="7")
    assert [s.strength for s in second.loras] == [1.0, -0.5]
    assert second.cache_key == wan.cache_key and second != wan
    changed = cls.IS_CHANGED(model=None, lora_name="one.safetensors", strength=1.0, target="both")
    (folder / "one.safetensors").write_bytes(files["two"].read_bytes())
    os.utime(folder / "one.safetensors", ns=(1, 1))
    assert cls.IS_CHANGED(model=None, lora_name="one.safetensors", strength=1.0, target="both") != changed
    with pytest.raises(InputError, match=r"I2VLoRA \(node 7\).*target"):
        cls().apply(wan, "one.safetensors", 1.0, "low_noise", unique_id="7")
    with pytest.raises(InputError, match="no LoRA named"):
        cls().apply(wan, "missing.safetensors", 1.0, "both")


def test_lora_weights_count_in_the_estimate_on_the_experts_they_target(a14b, tmp_path):
    path = tmp_path / "counted.safetensors"
    save_file({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 100),
               "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(100, 2)}, str(path))
    high, low = a14b.roles.denoisers
    base = memory.weight_bytes(a14b)
    added = memory.weight_bytes(a14b.with_lora(spec(path, 1.0, "low_noise")))
    assert added[low] - base[low] == 400 * 4 and added[high] == base[high]  # fp32: 4 bytes per weight
    assert memory.weight_bytes(a14b.with_lora(spec(path, 0.0))) == base  # strength 0 loads nothing


def test_the_nodes_run_a_lora_through_guard_and_sample(model_dirs, files, still_image, session_dirs):
    folder = host.models_root() / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "graph.safetensors").write_bytes(files["one"].read_bytes())
    loader = NODE_CLASS_MAPPINGS["LoadI2VModel"]()
    (model,) = loader.load("tiny-wan2.1-i2v", "fp32", "auto", "cpu", "none", False)
    sample = NODE_CLASS_MAPPINGS["I2VSample"]()
    clips = []
    for strength in (0.0, 1.0):
        (with_lora,) = NODE_CLASS_MAPPINGS["I2VLoRA"]().apply(model, "graph.safetensors", strength, "both")
        guarded, *_ = NODE_CLASS_MAPPINGS["VRAMGuard"]().guard(with_lora, 32, 32, 5, 1, "error", 0.10)
        frames, *_ = sample.sample(guarded, still_image, "waves", "", 32, 32, 5, 2, 5.0, 11, 1, 16, 0)
        clips.append(frames)
    (plain,) = sample.sample(model, still_image, "waves", "", 32, 32, 5, 2, 5.0, 11, 1, 16, 0)[:1]
    assert torch.equal(clips[0], plain) and not torch.equal(clips[1], plain)


def test_a_lora_on_fp8_stored_weights_stays_in_the_compute_dtype(model_dirs, files, still_image, settings):
    """Weights fp8 keeps the denoiser's matrices float8; the LoRA's own matrices are made in the
    compute dtype (not quantized to float8, whose matrix multiplies do not run), and removing it
    gives back the fp8 base exactly."""
    options = models.LoadOptions(precision="fp32", weights="fp8")
    fp8 = models.open_model("tiny-wan2.1-i2v", options, model_dirs, CPU)
    cache = ModelCache(lambda device: 2**40)
    try:
        base = run(fp8, still_image, settings, cache)
        with_one = run(fp8.with_lora(spec(files["one"])), still_image, settings, cache)
        transformer = loaded(fp8, cache).pipeline.transformer
        adapters = [p for n, p in transformer.named_parameters() if ".lora_" in n]
        assert adapters and {p.dtype for p in adapters} == {torch.float32}
        assert transformer.blocks[0].attn1.to_q.base_layer.weight.dtype == torch.float8_e4m3fn
        assert torch.isfinite(with_one).all() and not torch.equal(with_one, base)
        assert torch.equal(run(fp8, still_image, settings, cache), base)
    finally:
        cache.unload()


def test_a_switch_replaces_the_adapter_in_place_and_equals_a_fresh_load(
        wan, files, still_image, settings, cache):
    """Switching A -> B on a denoiser copies B into A's LoRA layers (diffusers' hotswap); the result
    is the same as B loaded on a model that never had A."""
    run(wan.with_lora(spec(files["one"])), still_image, settings, cache)
    name = next(iter(loaded(wan, cache).loras.adapters.values()))
    switched = run(wan.with_lora(spec(files["two"], 0.7)), still_image, settings, cache)
    assert list(loaded(wan, cache).loras.adapters.values()) == [name]  # the same adapter, new weights
    fresh_cache = ModelCache(lambda device: 2**40)
    try:
        fresh = run(wan.with_lora(spec(files["two"], 0.7)), still_image, settings, fresh_cache)
    finally:
        fresh_cache.unload()
    assert torch.allclose(switched, fresh, atol=1e-6)
    run(wan, still_image, settings, cache)
