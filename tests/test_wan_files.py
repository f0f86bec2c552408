"""ComfyUI's Wan single files: recognised from synthetic headers of the published shapes (no weights),
checked for fit, sized by the planner; key names survive the trip to the original layout and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from i2v_nodes.errors import InputError
from i2v_nodes.families.registry import WAN
from i2v_nodes.families.toolkit.meta import config_json
from i2v_nodes.families.wan import keys as wan_keys
from i2v_nodes.families.wan import stand_ins as stand_ins
from i2v_nodes.families.wan.configs import PUBLISHED, TINY
from i2v_nodes.families.wan.stand_ins import A14B_HUB, TI2V_HUB, WAN21_HUB, stored, write_header
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import planner


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def meta(role: str, config: dict) -> torch.nn.Module:
    return WAN.traces.meta_component(role, config_json(config), torch.float32)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """Synthetic headers of the files ComfyUI's Wan templates download, at the published shapes."""
    folder = tmp_path_factory.mktemp("comfy-files")
    files = {
        key: path
        for variant, keys in (
            ("wan2.2-i2v-a14b",
             {"diffusion_model": "high", "diffusion_model_2": "low", "text_encoder": "umt5", "vae": "vae21"}),
            ("wan2.2-ti2v-5b", {"diffusion_model": "5b", "vae": "vae22"}),
            ("wan2.1-i2v", {"diffusion_model": "2.1", "clip_vision": "clip"}),
        )
        for slot, path in stand_ins.write_template_files(folder, variant).items()
        if (key := keys.get(slot))
    }
    t2v = {**PUBLISHED[A14B_HUB]["transformer"], "in_channels": 16, "num_attention_heads": 12,
           "ffn_dim": 8960, "num_layers": 30}
    files["t2v"] = stand_ins.transformer_file(folder / "wan2.1_t2v_1.3B_fp16.safetensors", t2v, "fp16")
    return files


def test_each_published_file_is_recognised_from_its_header(published):
    from i2v_nodes.families.toolkit.safetensors_header import read_header

    seen = {key: WAN.files.identify(read_header(path)) for key, path in published.items() if key != "t2v"}
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
    assert handle.family.name == "wan" and handle.variant == variant
    if variant == "wan2.2-i2v-a14b":  # the fp8_scaled experts are sized at one byte a weight, as stored
        assert (
            handle.weights == "fp8" and {"transformer", "transformer_2", "text_encoder"} <= handle.fp8_roles
        )
        # float8 matrices at one byte; the rest (norms, biases, the fp32-kept time embedder) in bf16
        sizes, params = memory.weight_bytes(handle), dict(handle.params)
        kept = handle.files.parts["transformer"].float8_params
        assert 0.99 * params["transformer"] < kept < params["transformer"]
        assert sizes["transformer"] == kept + (params["transformer"] - kept) * 2
        # every UMT5 matrix stays float8 (its fp32-kept feed-forward output too); the token embedding
        # (a fifth of it) stays in its stored bf16
        text = handle.files.parts["text_encoder"]
        assert 0.15 * params["text_encoder"] < text.half_params < 0.25 * params["text_encoder"]
        assert 0.99 * params["text_encoder"] < text.float8_params + text.half_params <= params["text_encoder"]
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


def test_a_wan21_720p_file_gets_the_720p_flow_shift(published, tmp_path):
    from i2v_nodes.families.wan.stand_ins import transformer_file

    slots = {"text_encoder": published["umt5"], "vae": published["vae21"], "clip_vision": published["clip"]}
    p480 = models.handle_for_files({"diffusion_model": published["2.1"], **slots})
    p720 = transformer_file(tmp_path / "wan2.1_i2v_720p_14B_fp16.safetensors",
                            PUBLISHED[WAN21_HUB]["transformer"], "fp16")
    h720 = models.handle_for_files({"diffusion_model": p720, **slots})
    shifts = [handle.files.configs["scheduler"]["flow_shift"] for handle in (p480, h720)]
    assert shifts == [3.0, 5.0]
