"""ComfyUI's single files, loaded: the tiny Wan models written in ComfyUI's layout (original key names,
the tokenizer embedded, fp8_scaled too) give the tiny diffusers folders' frames, through the
LoadI2VModelFiles node."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from i2v_nodes.errors import InputError
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading import models

CPU = torch.device("cpu")
NODE = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"]
VARIANTS = {  # tiny model -> (width, height)
    "tiny-wan2.1-i2v": (64, 48),
    "tiny-wan2.2-i2v-a14b": (64, 48),
    "tiny-wan2.2-ti2v-5b": (64, 64),
}


@pytest.fixture(scope="module")
def files_root(session_dirs):
    return session_dirs["models"]


@pytest.fixture(scope="module")
def comfy_files(files_root):
    """name -> format -> loader slot -> file name as ComfyUI's combos show it."""
    written = {}
    for name in VARIANTS:
        for fmt in ("fp32", "fp8_scaled") if name == "tiny-wan2.2-i2v-a14b" else ("fp32",):
            paths = models.tiny_single_files(name, files_root, fmt)
            written.setdefault(name, {})[fmt] = {slot: path.name for slot, path in paths.items()}
    return written


def settings(name, **changes):
    width, height = VARIANTS[name]
    base = sampling.SampleSettings(
        prompt="a boat on a lake",
        negative_prompt="blurry",
        width=width,
        height=height,
        num_frames=5,
        steps=2,
        guidance_scale=5.0,
        seed=11,
        batch_size=1,
        target_fps=16,
    )
    return dataclasses.replace(base, **changes)


def load_node(files, unique_id="4", **options):
    widgets = {
        "diffusion_model_2": "none",
        "clip_vision": "none",
        "precision": "auto",
        "vae_precision": "auto",
        "device": "cpu",
        "offload": "none",
        "allow_download": False,
        **files,
        **options,
    }
    (handle,) = NODE().load(unique_id=unique_id, **widgets)
    return handle


def run(handle, image, s, cache):
    return sampling.sample(handle, image, s, services.standalone(), cache=cache)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_single_files_give_the_frames_of_the_diffusers_folder(
    name, comfy_files, model_dirs, still_image, fresh_cache
):
    handle = load_node(comfy_files[name]["fp32"])
    assert handle.variant == name.removeprefix("tiny-") and handle.weights == "default"
    ours = run(handle, still_image, settings(name), fresh_cache)
    folder = models.open_model(name, models.LoadOptions(device="cpu"), model_dirs, CPU)
    theirs = run(folder, still_image, settings(name), fresh_cache)
    assert torch.equal(ours.frames, theirs.frames)
    assert "tokenizer: the tokenizer embedded in the text encoder file" in ours.report


def test_a_second_run_loads_nothing_and_seeds_reproduce(comfy_files, still_image, fresh_cache):
    name = "tiny-wan2.2-i2v-a14b"
    first = run(load_node(comfy_files[name]["fp32"]), still_image, settings(name, batch_size=2), fresh_cache)
    again = run(
        load_node(comfy_files[name]["fp32"], unique_id="9"), still_image, settings(name, seed=12), fresh_cache
    )
    assert fresh_cache.loads == 1  # a new node call, the same files: the same cached pipeline
    assert torch.equal(first.frames[5:], again.frames)  # clip 1 of seed 11 is seed 12


def test_fp8_scaled_files_stay_float8_in_memory_and_stay_close(
    comfy_files, model_dirs, still_image, fresh_cache
):
    name = "tiny-wan2.2-i2v-a14b"
    handle = load_node(comfy_files[name]["fp8_scaled"], weights="default")
    assert handle.weights == "fp8" and handle.fp8_roles == {"transformer", "transformer_2", "text_encoder"}
    ours = run(handle, still_image, settings(name), fresh_cache)
    pipe = fresh_cache.peek(handle.cache_key).pipeline
    blocks = pipe.transformer_2.blocks[0]
    assert blocks.attn1.to_q.weight.dtype == torch.float8_e4m3fn  # never expanded to the compute dtype
    assert pipe.transformer.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
    folder = models.open_model(name, models.LoadOptions(device="cpu"), model_dirs, CPU)
    theirs = run(folder, still_image, settings(name), fresh_cache)
    assert torch.isfinite(ours.frames).all()
    assert 0 < (ours.frames - theirs.frames).abs().max() < 0.05  # fp8 rounding, nothing worse


@pytest.mark.parametrize("fmt, tolerance", [("bf16", 1e-3), ("fp16", 1e-4), ("fp8_e4m3fn", 0.02)])
def test_every_format_people_have_loads_and_runs(fmt, tolerance, files_root, model_dirs, still_image,
                                                 fresh_cache):
    """bf16 and fp16 (cast to the compute dtype), fp8_e4m3fn (float8 kept, no scale)."""
    name = "tiny-wan2.2-i2v-a14b"
    paths = models.tiny_single_files(name, files_root, fmt)
    handle = load_node({slot: path.name for slot, path in paths.items()})
    assert {part.format for role, part in handle.files.parts.items() if role != "vae"} == {fmt}
    ours = run(handle, still_image, settings(name), fresh_cache)
    pipe = fresh_cache.peek(handle.cache_key).pipeline
    expected = torch.float8_e4m3fn if fmt == "fp8_e4m3fn" else torch.float32
    assert pipe.transformer.blocks[0].ffn.net[2].weight.dtype == expected
    folder = models.open_model(name, models.LoadOptions(device="cpu"), model_dirs, CPU)
    theirs = run(folder, still_image, settings(name), fresh_cache)
    assert torch.isfinite(ours.frames).all()
    assert 0 < (ours.frames - theirs.frames).abs().max() < tolerance


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_half_encoder_files_stay_half_in_an_fp32_run_as_the_guard_counts_them(fmt, files_root, still_image,
                                                                              fresh_cache):
    """The encoders of a bf16 / fp16 set keep their matrices as stored in an fp32 run (cast as each layer
    runs), so they hold half the bytes of fp32; the guard's weight figures are those bytes."""
    from i2v_nodes.runtime import memory

    name = "tiny-wan2.1-i2v"
    paths = models.tiny_single_files(name, files_root, fmt)
    handle = load_node({slot: path.name for slot, path in paths.items()})
    run(handle, still_image, settings(name), fresh_cache)
    pipe = fresh_cache.peek(handle.cache_key).pipeline
    stored = getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[fmt])
    counted = memory.weight_bytes(handle)
    for role in ("text_encoder", "image_encoder"):
        module = getattr(pipe, role)
        matrices = [m.weight for m in module.modules() if isinstance(m, torch.nn.Linear)]
        assert matrices and all(w.dtype == stored for w in matrices)
        tensors = {p.data_ptr(): p for p in module.parameters()}  # a tied table is held once
        held = sum(p.numel() * p.element_size() for p in tensors.values())
        assert held == pytest.approx(counted[role], rel=0.01), role
        assert held < 0.6 * sum(p.numel() for p in tensors.values()) * 4


def test_the_node_lists_comfyuis_folders_with_none_where_a_file_is_optional(comfy_files):
    required = NODE.INPUT_TYPES()["required"]
    a14b = comfy_files["tiny-wan2.2-i2v-a14b"]["fp32"]
    assert a14b["diffusion_model"] in required["diffusion_model"][0]
    assert (
        required["diffusion_model_2"][0][0] == "none"
        and a14b["diffusion_model_2"] in required["diffusion_model_2"][0]
    )
    assert a14b["text_encoder"] in required["text_encoder"][0] and a14b["vae"] in required["vae"][0]
    assert required["clip_vision"][0][0] == "none"
    assert "tiny-wan2.1-i2v_clip_vision.safetensors" in required["clip_vision"][0]
    assert all(
        tip[1].get("tooltip")
        for group in NODE.INPUT_TYPES().values()
        for tip in group.values()
        if isinstance(tip, tuple)
    )


def test_files_that_do_not_fit_are_refused_naming_node_input_and_files(comfy_files, fresh_cache):
    a14b = comfy_files["tiny-wan2.2-i2v-a14b"]["fp32"]
    ti2v = comfy_files["tiny-wan2.2-ti2v-5b"]["fp32"]
    with pytest.raises(
        InputError, match=r"^LoadI2VModelFiles \(node 4\): input 'vae': .*2\.2 VAE.*Wan 2\.1 VAE"
    ):
        load_node({**a14b, "vae": ti2v["vae"]})
    with pytest.raises(
        InputError,
        match=r"input 'diffusion_model': no file 'gone.safetensors' in ComfyUI's "
        r"diffusion_models folder",
    ):
        load_node({**a14b, "diffusion_model": "gone.safetensors"})
    with pytest.raises(InputError, match="input 'diffusion_model': .*(?i:low).*noise"):
        load_node(
            {
                **a14b,
                "diffusion_model": a14b["diffusion_model_2"],
                "diffusion_model_2": a14b["diffusion_model"],
            }
        )
    assert fresh_cache.loads == 0


def test_a_text_encoder_without_its_tokenizer_says_where_to_put_one(
    comfy_files, files_root, still_image, fresh_cache
):
    name = "tiny-wan2.2-ti2v-5b"
    files = comfy_files[name]["fp32"]
    source = files_root / "text_encoders" / files["text_encoder"]
    bare = source.with_name("bare_umt5.safetensors")
    with safe_open(str(source), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys() if key != "spiece_model"}  # noqa: SIM118
    save_file(tensors, str(bare), metadata=safe_open(str(source), "pt").metadata())
    folder = files_root / "text_encoders" / "umt5-xxl"
    with pytest.raises(
        InputError,
        match=rf"input 'text_encoder': .*carries no tokenizer.*tokenizer\.json .*"
        rf"in {folder}.*allow_download",
    ):
        load_node({**files, "text_encoder": bare.name})
    assert fresh_cache.loads == 0

    tokenizer = models.open_model(name, models.LoadOptions(device="cpu"), [files_root / "i2v"], CPU)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(os.path.join(tokenizer.source, "tokenizer")).save_pretrained(folder)
    result = run(load_node({**files, "text_encoder": bare.name}), still_image, settings(name), fresh_cache)
    embedded = run(load_node(files), still_image, settings(name), fresh_cache)
    assert f"tokenizer: the tokenizer in {folder}" in result.report
    assert torch.equal(result.frames, embedded.frames)


def test_a_changed_file_is_a_new_cache_entry(comfy_files, files_root):
    files = comfy_files["tiny-wan2.2-ti2v-5b"]["fp32"]
    before = load_node(files).cache_key
    vae = files_root / "vae" / files["vae"]
    stat = vae.stat()
    os.utime(vae, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        assert load_node(files).cache_key != before
    finally:
        os.utime(vae, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_node(files).cache_key == before
