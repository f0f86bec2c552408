"""GGUF transformers run: the tiny Wan 2.2 A14B with its experts as ComfyUI-GGUF files (Q8_0 quantised
by gguf; Q6_K, Q4_K_M and Q3_K_M as random blocks) and the tiny UMT5 and VAE single files, through
LoadI2VModelFiles; what the pack builds from a GGUF file computes what diffusers' from_single_file
builds, from the file's own pages; bad files are refused before anything loads."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from i2v_nodes.errors import I2VError, InputError
from i2v_nodes.families.toolkit.file_headers import read_file_header
from i2v_nodes.families.toolkit.gguf_header import BLOCKS
from i2v_nodes.families.toolkit.gguf_writing import quantised, random_blocks, write_gguf
from i2v_nodes.families.wan.configs import TINY
from i2v_nodes.families.wan.keys import transformer_to_original
from i2v_nodes.families.wan.write import gguf_tensor_types
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading import models

CPU = torch.device("cpu")
KINDS = {"Q6_K": {"Q6_K"}, "Q4_K_M": {"Q4_K", "Q6_K"}, "Q3_K_M": {"Q3_K", "Q4_K", "Q5_K"}}
NAME = "tiny-wan2.2-i2v-a14b"
NODE = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"]
# Q8_0 against the unquantised weights: the largest difference of a frame value (0..1) measured on the
# tiny models is 5.2e-6 (A14B), 3.5e-5 (Wan 2.1) and 5.6e-4 (TI2V-5B); allowed 2e-3 (fp8_scaled files
# are allowed 0.05).
Q8_0_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def gguf_files(session_dirs) -> dict[str, str]:
    """Loader slot -> file name: the tiny A14B's experts as Q8_0 GGUF files, UMT5 and VAE as fp32."""
    paths = models.tiny_single_files(NAME, session_dirs["models"], "gguf-Q8_0")
    return {slot: path.name for slot, path in paths.items()}


def settings(**changes):
    base = sampling.SampleSettings(prompt="a boat on a lake", negative_prompt="blurry", width=64, height=48,
                                   num_frames=5, steps=2, guidance_scale=5.0, seed=11, batch_size=1,
                                   target_fps=16)
    return dataclasses.replace(base, **changes)


def load_node(files, **options):
    widgets = {"diffusion_model_2": "none", "clip_vision": "none", "precision": "auto",
               "vae_precision": "auto", "device": "cpu", "offload": "none", "allow_download": False,
               **files, **options}
    (handle,) = NODE().load(unique_id="7", **widgets)
    return handle


def run(handle, image, cache, **changes):
    return sampling.sample(handle, image, settings(**changes), services.standalone(), cache=cache)


def mapped_files() -> list[tuple[int, int, str]]:
    """This process's file mappings: (start, end, path)."""
    out = []
    with open("/proc/self/maps", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split(maxsplit=5)
            if len(fields) == 6:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                out.append((start, end, fields[5].strip()))
    return out


def test_q8_0_experts_run_close_to_the_unquantised_model_and_stay_quantised(
        gguf_files, model_dirs, still_image, fresh_cache):
    assert gguf_files["diffusion_model"].endswith("-HighNoise-Q8_0.gguf")
    handle = load_node(gguf_files, weights="fp8")
    assert handle.weights == "default"  # GGUF files stay as stored: no fp8 laid over them
    assert {handle.files.parts[r].format for r in ("transformer", "transformer_2")} == {"gguf-Q8_0"}
    ours = run(handle, still_image, fresh_cache)
    pipe = fresh_cache.peek(handle.cache_key).pipeline
    from diffusers.quantizers.gguf.utils import GGUFLinear

    layer = pipe.transformer_2.blocks[0].ffn.net[0].proj
    assert isinstance(layer, GGUFLinear) and layer.weight.dtype == torch.uint8  # quantised blocks
    assert pipe.transformer.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32
    if os.path.exists("/proc/self/maps"):  # used where it lies in the file's pages: nothing copied
        path = str(handle.files.parts["transformer_2"].path)
        pointer = layer.weight.data_ptr()
        assert any(start <= pointer < end and name == path for start, end, name in mapped_files())
    folder = models.open_model(NAME, models.LoadOptions(device="cpu"), model_dirs, CPU)
    theirs = run(folder, still_image, fresh_cache)
    assert torch.isfinite(ours.frames).all()
    assert 0 < (ours.frames - theirs.frames).abs().max() < Q8_0_TOLERANCE
    again = run(load_node(gguf_files), still_image, fresh_cache)
    assert fresh_cache.loads == 2 and torch.equal(again.frames, ours.frames)  # the GGUF pipeline, cached


def test_the_pack_builds_what_diffusers_from_single_file_builds(gguf_files, session_dirs, model_dirs):
    from diffusers import GGUFQuantizationConfig, WanTransformer3DModel

    from i2v_nodes.runtime.loading.describe import describe_files

    folders = {"diffusion_model": "unet", "diffusion_model_2": "unet", "text_encoder": "text_encoders",
               "vae": "vae"}
    paths = {slot: session_dirs["models"] / folder / gguf_files[slot] for slot, folder in folders.items()}
    part = describe_files(paths)[1].parts["transformer"]
    from i2v_nodes.families.wan.load import load_transformer

    ours = load_transformer(part, torch.float32)
    folder = models.tiny_model_folder(NAME, model_dirs[0])
    theirs = WanTransformer3DModel.from_single_file(
        str(part.path), config=str(folder), subfolder="transformer", torch_dtype=torch.float32,
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32))
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 36, 2, 8, 8, generator=generator)
    text = torch.randn(1, 8, 32, generator=generator)
    with torch.no_grad():
        a = ours(latents, torch.tensor([500.0]), text, return_dict=False)[0]
        b = theirs(latents, torch.tensor([500.0]), text, return_dict=False)[0]
    assert torch.equal(a, b)


def kquant_expert_pair(models_dir: Path, file_type: str) -> tuple[dict[str, str], dict[str, str]]:
    """A 256-wide tiny A14B expert pair (the K-quants' 256-weight blocks need 256-wide rows) as GGUF
    files of random ``file_type`` blocks, and the same weights, dequantised by diffusers, as fp32
    safetensors: (slot -> GGUF name, slot -> safetensors name)."""
    from diffusers import WanTransformer3DModel
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
    from gguf import GGMLQuantizationType
    from safetensors.torch import save_file

    config = {**TINY[NAME]["transformer"], "num_attention_heads": 2, "ffn_dim": 256}
    metadata = {"config": json.dumps(config)}
    gguf_names, twin_names = {}, {}
    for i, (slot, noise) in enumerate((("diffusion_model", "HighNoise"), ("diffusion_model_2", "LowNoise"))):
        torch.manual_seed(100 + i)
        model = WanTransformer3DModel(**config)
        state = {transformer_to_original(k): v for k, v in model.state_dict().items()}
        tensors = gguf_tensor_types({k: tuple(v.shape) for k, v in state.items()}, file_type)
        rng = np.random.default_rng(200 + i)
        stored = {name: quantised(state[name].numpy(), kind) if kind in ("F32", "F16")
                  else random_blocks(kind, shape, rng) for name, (kind, shape) in tensors.items()}
        stem = f"tiny-256-{file_type}-{noise}"
        write_gguf(models_dir / "unet" / f"{stem}-{file_type}.gguf", tensors, "wan", file_type,
                   lambda name, _kind, _shape, stored=stored: stored[name], metadata)
        twin = {}
        for name, (kind, shape) in tensors.items():
            data = torch.from_numpy(stored[name])
            if kind not in ("F32", "F16"):
                data = dequantize_gguf_tensor(GGUFParameter(data, quant_type=GGMLQuantizationType[kind]))
            twin[name] = data.float().reshape(shape).contiguous()
        (models_dir / "diffusion_models").mkdir(exist_ok=True)
        save_file(twin, str(models_dir / "diffusion_models" / f"{stem}.safetensors"), metadata=metadata)
        gguf_names[slot], twin_names[slot] = f"{stem}-{file_type}.gguf", f"{stem}.safetensors"
    return gguf_names, twin_names


@pytest.mark.parametrize("file_type", ["Q6_K", "Q4_K_M", "Q3_K_M"])
def test_k_quant_experts_give_the_frames_of_their_dequantised_weights(file_type, gguf_files, session_dirs,
                                                                       still_image, fresh_cache):
    """Q6_K, Q5_K, Q4_K and Q3_K blocks dequantised on the CPU as each layer runs: the very frames of
    the same weights dequantised once into a safetensors file."""
    quantised_files, twins = kquant_expert_pair(session_dirs["models"], file_type)
    rest = {slot: gguf_files[slot] for slot in ("text_encoder", "vae")}
    handle = load_node({**rest, **quantised_files})
    assert handle.files.parts["transformer"].format == f"gguf-{file_type}"
    header = read_file_header(handle.files.parts["transformer"].path)
    assert {t.dtype for t in header.tensors.values()} & set(BLOCKS) == KINDS[file_type]
    ours = run(handle, still_image, fresh_cache)
    theirs = run(load_node({**rest, **twins}), still_image, fresh_cache)
    assert torch.isfinite(ours.frames).all() and torch.equal(ours.frames, theirs.frames)


def cut(source: Path, target: Path, keep: int) -> str:
    target.write_bytes(source.read_bytes()[:keep])
    return target.name


def test_truncated_files_are_refused_at_the_node_naming_them(gguf_files, session_dirs, fresh_cache):
    root = session_dirs["models"]
    expert, vae = root / "unet" / gguf_files["diffusion_model"], root / "vae" / gguf_files["vae"]
    bad = {"diffusion_model": cut(expert, root / "unet" / "cut-Q8_0.gguf", expert.stat().st_size // 2),
           "vae": cut(vae, root / "vae" / "cut_vae.safetensors", vae.stat().st_size - 100)}
    for slot, name in bad.items():
        with pytest.raises(InputError, match=rf"^LoadI2VModelFiles \(node 7\): input '{slot}': .*{name} is "
                                             r"truncated"):
            load_node({**gguf_files, slot: name})


@pytest.mark.parametrize("slot, folder", [("diffusion_model", "unet"), ("vae", "vae")])
def test_a_file_cut_after_its_node_ran_loads_nothing_and_leaves_the_cache_clean(
        slot, folder, gguf_files, session_dirs, still_image, fresh_cache):
    """The file is cut between LoadI2VModelFiles and I2VSample: the load fails naming it, nothing stays
    in the cache, and once the file is whole again the next run works."""
    source = session_dirs["models"] / folder / gguf_files[slot]
    copy = source.with_name("later-cut-" + source.name.replace("HighNoise", "high_noise"))
    whole = source.read_bytes()
    copy.write_bytes(whole)
    handle = load_node({**gguf_files, slot: copy.name})
    copy.write_bytes(whole[: len(whole) - 100])
    with pytest.raises(I2VError, match=copy.name):
        run(handle, still_image, fresh_cache)
    assert fresh_cache.stats().entries == 0 and fresh_cache.loads == 0
    copy.write_bytes(whole)
    result = run(load_node({**gguf_files, slot: copy.name}), still_image, fresh_cache)
    assert torch.isfinite(result.frames).all() and fresh_cache.stats().entries == 1


@pytest.mark.parametrize("name, width, height",
                         [("tiny-wan2.1-i2v", 64, 48), ("tiny-wan2.2-ti2v-5b", 64, 64)])
def test_the_other_wan_variants_run_from_a_q8_0_gguf(name, width, height, session_dirs, model_dirs,
                                                     still_image, fresh_cache):
    files = {slot: path.name for slot, path in models.tiny_single_files(name, session_dirs["models"],
                                                                          "gguf-Q8_0").items()}
    handle = load_node(files)
    assert handle.variant == name.removeprefix("tiny-") and handle.files.parts["transformer"].gguf
    ours = run(handle, still_image, fresh_cache, width=width, height=height)
    folder = models.open_model(name, models.LoadOptions(device="cpu"), model_dirs, CPU)
    theirs = run(folder, still_image, fresh_cache, width=width, height=height)
    assert torch.isfinite(ours.frames).all()
    assert 0 < (ours.frames - theirs.frames).abs().max() < Q8_0_TOLERANCE


def test_loras_apply_to_gguf_experts_and_come_off_exactly(gguf_files, session_dirs, still_image, fresh_cache):
    """lightx2v's LoRA layout on both experts: peft wraps the GGUF layers as it wraps Linear ones."""
    from i2v_nodes.families.wan import stand_ins

    loras = stand_ins.write_lightx2v_loras(session_dirs["models"], TINY[NAME]["transformer"], rank=8, seed=11)
    lora = NODE_CLASS_MAPPINGS["I2VLoRA"]()
    base = load_node(gguf_files)
    (high,) = lora.apply(base, loras["high_noise"].name, 1.0, "high_noise")
    (both,) = lora.apply(high, loras["low_noise"].name, 1.0, "low_noise")
    before = run(base, still_image, fresh_cache)
    with_loras = run(both, still_image, fresh_cache)
    after = run(base, still_image, fresh_cache)
    assert fresh_cache.loads == 1 and torch.isfinite(with_loras.frames).all()
    assert (with_loras.frames - before.frames).abs().max() > 1e-3 and torch.equal(after.frames, before.frames)


def ltx_transformer_pair(models_dir: Path) -> tuple[str, str]:
    """A 32-wide tiny LTX-Video transformer (rows of whole Q8_0 blocks) as a Q8_0 GGUF file, and the
    same weights dequantised by diffusers as a transformer-only safetensors file: their names."""
    from diffusers import LTXVideoTransformer3DModel
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
    from gguf import GGMLQuantizationType
    from safetensors.torch import save_file

    from i2v_nodes.families.ltx_video.configs import TINY as LTX_TINY
    from i2v_nodes.families.ltx_video.files import transformer_to_original as ltx_original
    from i2v_nodes.families.ltx_video.write import GGUF_HIGH_PRECISION, GGUF_UNQUANTISED
    from i2v_nodes.families.toolkit.file_headers import CONFIG_KEY
    from i2v_nodes.families.toolkit.gguf_writing import tensor_types

    config = {**LTX_TINY["tiny-ltx-video"]["transformer"], "attention_head_dim": 16,
              "cross_attention_dim": 32}
    torch.manual_seed(5)
    model = LTXVideoTransformer3DModel(**config)
    state = {ltx_original(k): v for k, v in model.state_dict().items()}
    tensors = tensor_types({k: tuple(v.shape) for k, v in state.items()}, "Q8_0", GGUF_UNQUANTISED,
                           GGUF_HIGH_PRECISION)
    stored = {name: quantised(state[name].numpy(), kind) for name, (kind, _shape) in tensors.items()}
    metadata = {CONFIG_KEY: json.dumps({"transformer": config})}
    write_gguf(models_dir / "unet" / "tiny-ltx-32-Q8_0.gguf", tensors, "ltxv", "Q8_0",
               lambda name, _kind, _shape: stored[name], metadata)
    twin = {}
    for name, (kind, shape) in tensors.items():
        data = torch.from_numpy(stored[name])
        if kind not in ("F32", "F16"):
            data = dequantize_gguf_tensor(GGUFParameter(data, quant_type=GGMLQuantizationType[kind]))
        twin[name] = data.float().reshape(shape).contiguous()
    save_file(twin, str(models_dir / "diffusion_models" / "tiny-ltx-32.safetensors"), metadata=metadata)
    assert {kind for kind, _shape in tensors.values()} >= {"Q8_0"}
    return "tiny-ltx-32-Q8_0.gguf", "tiny-ltx-32.safetensors"


def test_an_ltx_video_gguf_transformer_gives_the_frames_of_its_dequantised_weights(
        session_dirs, still_image, fresh_cache):
    written = models.tiny_single_files("tiny-ltx-video", session_dirs["models"], "gguf-Q8_0")
    files = {slot: path.name for slot, path in written.items()}
    assert files["diffusion_model"].endswith(".gguf") and files["vae"].endswith("_vae.safetensors")
    (session_dirs["models"] / "diffusion_models").mkdir(exist_ok=True)
    gguf_name, twin_name = ltx_transformer_pair(session_dirs["models"])
    ltx = {"width": 64, "height": 64, "num_frames": 9, "guidance_scale": 3.0}
    handle = load_node({**files, "diffusion_model": gguf_name})
    assert handle.variant == "ltx-video" and handle.files.parts["transformer"].format == "gguf-Q8_0"
    ours = run(handle, still_image, fresh_cache, **ltx)
    theirs = run(load_node({**files, "diffusion_model": twin_name}), still_image, fresh_cache, **ltx)
    assert torch.isfinite(ours.frames).all() and torch.equal(ours.frames, theirs.frames)
    tiny = run(load_node(files), still_image, fresh_cache, **ltx)  # the tiny model's own GGUF file runs too
    assert torch.isfinite(tiny.frames).all()
