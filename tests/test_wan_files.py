"""ComfyUI's Wan single files: recognised from synthetic headers of the published shapes (no weights),
checked for fit, sized by the planner; key names survive the trip to the original layout and back."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import torch

from i2v_nodes.runtime import memory, models, planner
from i2v_nodes.runtime.errors import InputError
from i2v_nodes.runtime.families import WAN, wan_keys
from i2v_nodes.runtime.families.base import CLIP_VISION_H14, config_json
from i2v_nodes.runtime.families.wan_configs import PUBLISHED, TINY
from i2v_nodes.runtime.safetensors_header import DTYPE_BYTES

A14B_HUB, TI2V_HUB, WAN21_HUB = (
    "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
)
SPIECE_BYTES = 4_548_313  # about the size of UMT5's sentencepiece model


def write_header(
    path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]], metadata: dict | None = None
) -> Path:
    """A safetensors file with this header and no tensor data: enough for everything that reads headers."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def stored(names: dict[str, tuple[int, ...]], fmt: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensors as a file of this format stores them: matrices in the format's dtype (with ComfyUI's
    scales for fp8_scaled), the rest in bf16."""
    dtype = {"bf16": "BF16", "fp16": "F16", "fp8_e4m3fn": "F8_E4M3", "fp8_scaled": "F8_E4M3"}[fmt]
    out = {}
    for name, shape in names.items():
        matrix = len(shape) == 2 and name.endswith(".weight") and "embed" not in name
        out[name] = (dtype if matrix else "BF16", shape)
        if matrix and fmt == "fp8_scaled":
            out[name.removesuffix(".weight") + ".scale_weight"] = ("F32", ())
    if fmt == "fp8_scaled":
        out["scaled_fp8"] = ("F8_E4M3", ())
    return out


def meta(role: str, config: dict) -> torch.nn.Module:
    return WAN.meta_component(role, config_json(config), torch.float32)


def transformer_file(tmp_path: Path, name: str, config: dict, fmt: str) -> Path:
    original = {
        wan_keys.transformer_to_original(k): v for k, v in shapes(meta("transformer", config)).items()
    }
    return write_header(tmp_path / name, stored(original, fmt))


def umt5_file(tmp_path: Path, name: str = "umt5_xxl_fp8_e4m3fn_scaled.safetensors") -> Path:
    tensors = stored(shapes(meta("text_encoder", PUBLISHED[A14B_HUB]["text_encoder"])), "fp8_scaled")
    tensors["spiece_model"] = ("U8", (SPIECE_BYTES,))
    return write_header(tmp_path / name, tensors)


def vae_file(tmp_path: Path, name: str, config: dict, to_original) -> Path:
    original = {to_original(k): v for k, v in shapes(meta("vae", config)).items()}
    return write_header(tmp_path / name, {k: ("BF16", v) for k, v in original.items()})


def clip_file(tmp_path: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_VISION_H14))
    return write_header(
        tmp_path / "clip_vision_h.safetensors", {k: ("F16", v) for k, v in shapes(model).items()}
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """Synthetic headers of the files ComfyUI's Wan templates download, at the published shapes."""
    folder = tmp_path_factory.mktemp("comfy-files")
    a14b = PUBLISHED[A14B_HUB]["transformer"]
    return {
        "high": transformer_file(
            folder, "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", a14b, "fp8_scaled"
        ),
        "low": transformer_file(
            folder, "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", a14b, "fp8_scaled"
        ),
        "5b": transformer_file(
            folder, "wan2.2_ti2v_5B_fp16.safetensors", PUBLISHED[TI2V_HUB]["transformer"], "fp16"
        ),
        "2.1": transformer_file(
            folder, "wan2.1_i2v_480p_14B_fp16.safetensors", PUBLISHED[WAN21_HUB]["transformer"], "fp16"
        ),
        "t2v": transformer_file(
            folder,
            "wan2.1_t2v_1.3B_fp16.safetensors",
            {**a14b, "in_channels": 16, "num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30},
            "fp16",
        ),
        "umt5": umt5_file(folder),
        "vae21": vae_file(
            folder, "wan_2.1_vae.safetensors", PUBLISHED[A14B_HUB]["vae"], wan_keys.vae21_to_original
        ),
        "vae22": vae_file(
            folder, "wan2.2_vae.safetensors", PUBLISHED[TI2V_HUB]["vae"], wan_keys.vae22_to_original
        ),
        "clip": clip_file(folder),
    }


def test_each_published_file_is_recognised_from_its_header(published):
    from i2v_nodes.runtime.safetensors_header import read_header

    seen = {key: WAN.identify_file(read_header(path)) for key, path in published.items() if key != "t2v"}
    assert {k: (p.kind, p.variant, p.format) for k, p in seen.items()} == {
        "high": ("denoiser", "wan2.2-i2v-a14b", "fp8_scaled"),
        "low": ("denoiser", "wan2.2-i2v-a14b", "fp8_scaled"),
        "5b": ("denoiser", "wan2.2-ti2v-5b", "fp16"),
        "2.1": ("denoiser", "wan2.1-i2v", "fp16"),
        "umt5": ("text_encoder", "umt5", "fp8_scaled"),
        "vae21": ("vae", "wan-vae-2.1", "bf16"),
        "vae22": ("vae", "wan-vae-2.2", "bf16"),
        "clip": ("image_encoder", "clip-vision", "fp16"),
    }
    assert (seen["high"].hint, seen["low"].hint) == ("high", "low")
    assert seen["umt5"].tokenizer  # ComfyUI's text encoders carry their sentencepiece model
    # read off the shapes: the published layouts, and their parameter counts without the fp8 scales
    for key, hub in (("high", A14B_HUB), ("5b", TI2V_HUB), ("2.1", WAN21_HUB)):
        expected = dict(meta("transformer", PUBLISHED[hub]["transformer"]).config)
        got = seen[key].config
        assert {k: got[k] for k in PUBLISHED[hub]["transformer"]} == {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in expected.items()
            if k in PUBLISHED[hub]["transformer"]
        }
    counts = dict(models.describe_published(A14B_HUB).params)
    assert seen["high"].params == counts["transformer"] and seen["umt5"].params == counts["text_encoder"]
    assert seen["clip"].config["hidden_size"] == 1280 and seen["clip"].config["image_size"] == 224


@pytest.mark.parametrize(
    "slots, variant",
    [
        (
            {"diffusion_model": "high", "diffusion_model_2": "low", "text_encoder": "umt5", "vae": "vae21"},
            "wan2.2-i2v-a14b",
        ),
        ({"diffusion_model": "5b", "text_encoder": "umt5", "vae": "vae22"}, "wan2.2-ti2v-5b"),
        (
            {"diffusion_model": "2.1", "text_encoder": "umt5", "vae": "vae21", "clip_vision": "clip"},
            "wan2.1-i2v",
        ),
    ],
)
def test_the_template_file_sets_make_their_model_and_the_planner_sizes_it(published, slots, variant):
    handle = models.handle_for_files({slot: published[key] for slot, key in slots.items()})
    assert handle.family == "wan" and handle.variant == variant
    if variant == "wan2.2-i2v-a14b":  # the fp8_scaled experts are sized at one byte a weight, as stored
        assert (
            handle.weights == "fp8" and {"transformer", "transformer_2", "text_encoder"} <= handle.fp8_roles
        )
        sizes = memory.weight_bytes(handle)
        assert sizes["transformer"] == dict(handle.params)["transformer"]
    answer = planner.answer(handle, memory.RunShape(832, 480, 81), planner.Machine(24, 64), search=False)
    assert answer.asked.device_peak > 0 and answer.first_fitting() is not None


@pytest.mark.parametrize(
    "slots, slot, message",
    [
        (
            {"diffusion_model": "5b", "text_encoder": "umt5", "vae": "vae21"},
            "vae",
            "wan_2.1_vae.safetensors is the Wan 2.1 VAE; Wan 2.2 TI2V-5B needs the Wan 2.2 VAE",
        ),
        (
            {"diffusion_model": "low", "diffusion_model_2": "high", "text_encoder": "umt5", "vae": "vae21"},
            "diffusion_model",
            "the experts are swapped",
        ),
        (
            {"diffusion_model": "t2v", "text_encoder": "umt5", "vae": "vae21"},
            "diffusion_model",
            "text-to-video model .* image-to-video needs an I2V file",
        ),
        (
            {"diffusion_model": "high", "text_encoder": "umt5", "vae": "vae21"},
            "diffusion_model_2",
            "one of Wan 2.2 A14B's two experts",
        ),
        (
            {"diffusion_model": "2.1", "text_encoder": "umt5", "vae": "vae21"},
            "clip_vision",
            "Wan 2.1 I2V, which also needs its CLIP vision model",
        ),
        (
            {"diffusion_model": "5b", "text_encoder": "umt5", "vae": "vae22", "clip_vision": "clip"},
            "clip_vision",
            "uses no CLIP vision model",
        ),
        (
            {"diffusion_model": "umt5", "text_encoder": "umt5", "vae": "vae22"},
            "diffusion_model",
            "is a text encoder .*, not a diffusion model",
        ),
    ],
)
def test_files_that_do_not_fit_are_refused_naming_the_files(published, slots, slot, message):
    with pytest.raises(InputError, match=f"input '{slot}': .*{message}"):
        models.handle_for_files({s: published[k] for s, k in slots.items()})


def test_an_unreadable_format_is_named(tmp_path):
    original = {
        wan_keys.transformer_to_original(k): s
        for k, s in shapes(meta("transformer", TINY["tiny-wan2.2-i2v-a14b"]["transformer"])).items()
    }
    bf16 = stored(original, "bf16")
    e5m2 = write_header(
        tmp_path / "wan_e5m2.safetensors",
        {
            k: ("F8_E5M2" if dtype != "BF16" else dtype, shape)
            for k, (dtype, shape) in stored(original, "fp8_e4m3fn").items()
        },
    )
    with pytest.raises(
        InputError,
        match="input 'diffusion_model': wan_e5m2.safetensors stores its weights as "
        "F8_E5M2, a format this pack cannot read",
    ):
        models.handle_for_files({"diffusion_model": e5m2})
    good = write_header(tmp_path / "wan_bf16.safetensors", bf16)
    (tmp_path / "not.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(InputError, match="input 'vae': .*not a safetensors file"):
        models.handle_for_files({"diffusion_model": good, "vae": tmp_path / "not.safetensors"})


# --- key names, both ways --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        PUBLISHED[A14B_HUB]["transformer"],
        PUBLISHED[WAN21_HUB]["transformer"],
        TINY["tiny-wan2.1-i2v"]["transformer"],
    ],
)
def test_transformer_names_survive_the_original_layout(config):
    names = shapes(meta("transformer", config))
    original = {wan_keys.transformer_to_original(k): v for k, v in names.items()}
    assert len(original) == len(names)
    assert wan_keys.transformer_to_diffusers(original) == names  # diffusers' own converter brings them back


def test_wan21_vae_names_agree_with_diffusers_converter_for_the_published_layout():
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    names = shapes(meta("vae", PUBLISHED[A14B_HUB]["vae"]))
    original = {wan_keys.vae21_to_original(k): v for k, v in names.items()}
    assert convert_wan_vae_to_diffusers(dict(original)) == names


@pytest.mark.parametrize(
    "config, to_original",
    [
        (PUBLISHED[A14B_HUB]["vae"], wan_keys.vae21_to_original),
        (TINY["tiny-wan2.1-i2v"]["vae"], wan_keys.vae21_to_original),
        (PUBLISHED[TI2V_HUB]["vae"], wan_keys.vae22_to_original),
        (TINY["tiny-wan2.2-ti2v-5b"]["vae"], wan_keys.vae22_to_original),
    ],
)
def test_vae_names_survive_the_original_layout(config, to_original):
    names = shapes(meta("vae", config))
    original = {to_original(k): v for k, v in names.items()}
    assert len(original) == len(names)
    assert wan_keys.vae_to_diffusers(original, names, to_original) == names
    with pytest.raises(KeyError, match="tensors the VAE does not have"):
        wan_keys.vae_to_diffusers({**original, "decoder.extra.weight": (1,)}, names, to_original)


def test_the_planner_command_sizes_a_run_from_the_files_headers(published, capsys):
    from i2v_nodes import cli

    rc = cli.main(
        [
            "plan",
            "--diffusion-model",
            str(published["high"]),
            "--diffusion-model-2",
            str(published["low"]),
            "--text-encoder",
            str(published["umt5"]),
            "--vae",
            str(published["vae21"]),
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
            "--no-search",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert data["variant"] == "wan2.2-i2v-a14b" and data["fits"] is (rc == 0)
    weights = data["options"][0]["device_gib"]
    assert all(value > 0 for value in weights.values())
