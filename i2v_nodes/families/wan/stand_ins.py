"""Header-only stand-ins for the files ComfyUI's Wan templates download: the published shapes,
dtypes and key names, and no tensor data.

Everything the pack decides before loading (what a file is, whether files fit together, how much
memory a run needs) reads only headers, so a stand-in answers exactly as the real 14 GB file
would. The tier workflows' Notes are sized from them, and the tests recognise them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from i2v_nodes.families.contract.files import FILE_FOLDERS, GGUF_FOLDER
from i2v_nodes.families.toolkit.file_writing import save_atomically
from i2v_nodes.families.toolkit.gguf_writing import write_gguf
from i2v_nodes.families.toolkit.meta import CLIP_VISION_H14, config_json
from i2v_nodes.families.toolkit.stand_ins import stored, write_header
from i2v_nodes.families.wan.components import meta_component
from i2v_nodes.families.wan.configs import FLF2V_HUB, PUBLISHED
from i2v_nodes.families.wan.keys import transformer_to_original, vae21_to_original, vae22_to_original
from i2v_nodes.families.wan.spec import A14B, FLF2V, TI2V, WAN21
from i2v_nodes.families.wan.write import gguf_tensor_types
from i2v_nodes.lazy import torch

A14B_HUB = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
TI2V_HUB = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
WAN21_HUB = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
SPIECE_BYTES = 4_548_313  # about the size of UMT5's sentencepiece model, which ComfyUI embeds
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"

# What ComfyUI's own templates download, by the model they make: loader slot -> file name.
TEMPLATE_FILES: dict[str, dict[str, str]] = {
    A14B: {
        "diffusion_model": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "diffusion_model_2": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "text_encoder": UMT5,
        "vae": "wan_2.1_vae.safetensors",
    },
    TI2V: {
        "diffusion_model": "wan2.2_ti2v_5B_fp16.safetensors",
        "text_encoder": UMT5,
        "vae": "wan2.2_vae.safetensors",
    },
    WAN21: {
        "diffusion_model": "wan2.1_i2v_480p_14B_fp16.safetensors",
        "text_encoder": UMT5,
        "vae": "wan_2.1_vae.safetensors",
        "clip_vision": "clip_vision_h.safetensors",
    },
    # ComfyUI's Wan 2.1 first-last-frame template (Comfy-Org's Wan_2.1_ComfyUI_repackaged; an fp8_e4m3fn
    # copy of the transformer sits beside it)
    FLF2V: {
        "diffusion_model": "wan2.1_flf2v_720p_14B_fp16.safetensors",
        "text_encoder": UMT5,
        "vae": "wan_2.1_vae.safetensors",
        "clip_vision": "clip_vision_h.safetensors",
    },
}
HUB_OF_VARIANT = {A14B: A14B_HUB, TI2V: TI2V_HUB, WAN21: WAN21_HUB, FLF2V: FLF2V_HUB}


def _shapes(
    role: str, config: dict[str, Any], rename: Callable[[str], str] = str
) -> dict[str, tuple[int, ...]]:
    module = meta_component(role, config_json(config), torch.float32)
    return {rename(name): tuple(t.shape) for name, t in module.state_dict().items()}


def transformer_file(path: Path, config: dict[str, Any], fmt: str) -> Path:
    return write_header(path, stored(_shapes("transformer", config, transformer_to_original), fmt))


def gguf_transformer_file(path: Path, config: dict[str, Any], file_type: str) -> Path:
    """A stand-in of a published Wan GGUF transformer of ``file_type`` ("Q4_K_M"): the types city96's
    tools give each tensor (from an fp16 source), the data a sparse hole."""
    shapes = _shapes("transformer", config, transformer_to_original)
    return write_gguf(path, gguf_tensor_types(shapes, file_type), "wan", file_type)


# QuantStack's names for the Wan 2.2 I2V A14B experts as GGUF files (ComfyUI-GGUF's unet folder)
GGUF_EXPERTS = {"diffusion_model": "Wan2.2-I2V-A14B-HighNoise-{}.gguf",
                "diffusion_model_2": "Wan2.2-I2V-A14B-LowNoise-{}.gguf"}


def write_gguf_experts(models_dir: Path, file_type: str) -> dict[str, Path]:
    """Stand-ins of both A14B experts as GGUF files of ``file_type`` (loader slot -> path), kept where
    a file is already there."""
    return {slot: gguf_transformer_file(Path(models_dir) / GGUF_FOLDER / name.format(file_type),
                                        PUBLISHED[A14B_HUB]["transformer"], file_type)
            for slot, name in GGUF_EXPERTS.items()}


def gguf_files(file_type: str) -> dict[str, str]:
    """The A14B set a ComfyUI-GGUF user has (loader slot -> file name): QuantStack's two experts of
    ``file_type``, and the text encoder and VAE of ComfyUI's own template."""
    template = TEMPLATE_FILES[A14B]
    return {**{slot: name.format(file_type) for slot, name in GGUF_EXPERTS.items()},
            "text_encoder": template["text_encoder"], "vae": template["vae"]}


def write_gguf_files(models_dir: Path, file_type: str) -> dict[str, Path]:
    """Stand-ins of that set in ComfyUI's folders under ``models_dir`` (loader slot -> path), the
    experts in ComfyUI-GGUF's; a file already there is kept (it may be the real one)."""
    paths = write_gguf_experts(models_dir, file_type)
    for slot in ("text_encoder", "vae"):
        paths[slot] = path = Path(models_dir) / FILE_FOLDERS[slot] / TEMPLATE_FILES[A14B][slot]
        if path.exists():
            continue
        if slot == "text_encoder":
            umt5_file(path)
        else:
            vae_file(path, A14B_HUB)
    return paths


def umt5_file(path: Path) -> Path:
    shapes = _shapes("text_encoder", PUBLISHED[A14B_HUB]["text_encoder"])
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight: stored once
    tensors = stored(shapes, "fp8_scaled")
    tensors["spiece_model"] = ("U8", (SPIECE_BYTES,))
    return write_header(path, tensors)


def vae_file(path: Path, hub: str) -> Path:
    config = PUBLISHED[hub]["vae"]
    layout = vae22_to_original if config.get("z_dim") == 48 else vae21_to_original
    num_res_blocks = config.get("num_res_blocks", 2)
    shapes = _shapes("vae", config, lambda name: layout(name, num_res_blocks=num_res_blocks))
    return write_header(path, {name: ("BF16", shape) for name, shape in shapes.items()})


def clip_vision_file(path: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_VISION_H14))
    shapes = {
        "vision_model." + name.removeprefix("vision_model.") if "projection" not in name else name: tuple(
            t.shape
        )
        for name, t in model.state_dict().items()
    }
    return write_header(path, {name: ("F16", shape) for name, shape in shapes.items()})


def write_template_files(models_dir: Path, variant: str) -> dict[str, Path]:
    """Stand-ins for one template's files, in ComfyUI's folders under ``models_dir`` (loader slot
    -> path). A file already there is kept: it may be the real one."""
    hub = HUB_OF_VARIANT[variant]
    paths = {}
    for slot, name in TEMPLATE_FILES[variant].items():
        path = Path(models_dir) / FILE_FOLDERS[slot] / name
        paths[slot] = path
        if path.exists():
            continue
        if slot.startswith("diffusion_model"):
            fmt = "fp16" if name.endswith("_fp16.safetensors") else "fp8_scaled"
            transformer_file(path, PUBLISHED[hub]["transformer"], fmt)
        elif slot == "text_encoder":
            umt5_file(path)
        elif slot == "vae":
            vae_file(path, hub)
        else:
            clip_vision_file(path)
    return paths


# ComfyUI's Wan 2.2 14B image-to-video template runs its "4 steps" mode with lightx2v's step-distill
# LoRAs, one per expert, from Comfy-Org's Wan_2.2_ComfyUI_Repackaged (models/loras/): expert -> file.
LIGHTX2V_LORAS = {
    "high_noise": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
    "low_noise": "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors",
}
# Their layout (lightx2v's Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1, renamed): kohya-style keys on
# the original Wan layer names, `diffusion_model.blocks.N.<layer>.{lora_down.weight, lora_up.weight,
# alpha}`, fp32, rank 64 and alpha 8 (scale 1/8), on every attention and FFN matrix of every block and
# nothing else (no diff / diff_b deltas, embeddings or head). diffusers converts these keys itself.
LIGHTX2V_LAYERS = (*(f"{attn}.{p}" for attn in ("self_attn", "cross_attn") for p in "qkvo"), "ffn.0", "ffn.2")
LIGHTX2V_RANK, LIGHTX2V_ALPHA = 64, 8.0


def lightx2v_lora_shapes(config: dict[str, Any], rank: int = LIGHTX2V_RANK) -> dict[str, tuple[int, ...]]:
    """The lightx2v LoRA's tensors for a Wan transformer of this config: key -> shape."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in _shapes("transformer", config, transformer_to_original).items():
        parts = name.removesuffix(".weight").split(".", 2)  # blocks, N, layer
        if parts[0] == "blocks" and len(parts) == 3 and parts[2] in LIGHTX2V_LAYERS and len(shape) == 2:
            stem = f"diffusion_model.{name.removesuffix('.weight')}"
            out |= {f"{stem}.lora_down.weight": (rank, shape[1]), f"{stem}.lora_up.weight": (shape[0], rank),
                    f"{stem}.alpha": ()}
    return out


def lightx2v_lora_file(path: Path, config: dict[str, Any], rank: int = LIGHTX2V_RANK,
                       seed: int | None = None) -> Path:
    """A lightx2v-layout LoRA for this transformer config, alpha/rank as published. Without a seed a
    header-only stand-in (planning reads headers only); with one, small random weights that run."""
    shapes = lightx2v_lora_shapes(config, rank)
    if seed is None:
        return write_header(path, {name: ("F32", shape) for name, shape in shapes.items()})
    generator = torch.Generator().manual_seed(seed)
    alpha = LIGHTX2V_ALPHA * rank / LIGHTX2V_RANK
    state = {name: torch.tensor(alpha) if not shape else torch.randn(shape, generator=generator) * 0.5
             for name, shape in shapes.items()}
    return save_atomically(path, state, {})  # whole or not there: a sweep's other processes may read it


def write_lightx2v_loras(models_dir: Path, config: dict[str, Any] | None = None, rank: int = LIGHTX2V_RANK,
                         seed: int | None = None) -> dict[str, Path]:
    """Both lightx2v LoRAs under their ComfyUI names in ``models_dir/loras`` (target -> path); the
    published A14B expert's layout unless ``config`` says otherwise. A file already there is kept."""
    config = config or PUBLISHED[A14B_HUB]["transformer"]
    paths = {target: Path(models_dir) / "loras" / name for target, name in LIGHTX2V_LORAS.items()}
    for i, path in enumerate(paths.values()):
        if not path.exists():
            lightx2v_lora_file(path, config, rank, None if seed is None else seed + i)
    return paths
