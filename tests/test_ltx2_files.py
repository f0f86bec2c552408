"""ComfyUI's LTX-2 single files: the published checkpoint (dev, distilled, fp8 in ComfyUI's new scaled
layout) and Gemma 3 12B recognised from header-only stand-ins, sized for the planner; key names that
agree with diffusers' converters; files that do not fit refused naming the input; the tokenizer found
or refused before anything loads; and tiny-ltx2 written in ComfyUI's layout (one checkpoint, one
Gemma file with its tokenizer embedded) giving the tiny diffusers folder's frames and sound."""

from __future__ import annotations

import json

import pytest
import torch

from i2v_nodes import cli
from i2v_nodes.errors import InputError
from i2v_nodes.families.ltx2 import files as ltx2_files
from i2v_nodes.families.ltx2 import keys as ltx2_keys
from i2v_nodes.families.ltx2 import load as ltx2_load
from i2v_nodes.families.ltx2.configs import PUBLISHED
from i2v_nodes.families.registry import LTX2
from i2v_nodes.families.toolkit.meta import config_json
from i2v_nodes.families.toolkit.safetensors_header import read_header
from i2v_nodes.families.wan.stand_ins import write_header
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading import models

CPU = torch.device("cpu")
HUB = "Lightricks/LTX-2"
DEV, DISTILLED = "ltx-2-19b-dev-fp8.safetensors", "ltx-2-19b-distilled.safetensors"
GEMMA, GEMMA_TEXT_ONLY = "gemma_3_12B_it.safetensors", "gemma_3_12B_it_text_only.safetensors"
BLOCK = "model.diffusion_model.transformer_blocks.0."
ROLES = {"text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder"}


# --- header-only stand-ins of the published files -------------------------------------------------


def _shapes(role: str) -> dict[str, tuple[int, ...]]:
    module = LTX2.traces.meta_component(role, config_json(PUBLISHED[HUB][role]), torch.float32)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def _checkpoint_names() -> dict[str, tuple[int, ...]]:
    """The published model's tensors under the names a ComfyUI (Lightricks) checkpoint gives them."""
    names = {"model.diffusion_model." + ltx2_keys.transformer_name(n, reverse=True): s
             for n, s in _shapes("transformer").items()}
    for name, shape in _shapes("connectors").items():
        original = ltx2_keys.connector_name(name, reverse=True)
        names[original if original == ltx2_files.PROJECTION else "model.diffusion_model." + original] = shape
    names.update({"vae." + ltx2_keys.vae_name(n, 4, reverse=True): s for n, s in _shapes("vae").items()})
    names.update({"audio_vae." + ltx2_keys.audio_vae_name(n, reverse=True): s
                  for n, s in _shapes("audio_vae").items()})
    names.update({"vocoder." + ltx2_keys.vocoder_name(n, reverse=True): s
                  for n, s in _shapes("vocoder").items()})
    return names


def _fp8_scaled(names: dict[str, tuple[int, ...]]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """ComfyUI's newer scaled-fp8 layout: the transformer's matrices float8 with a ``weight_scale``
    and a ``comfy_quant`` marker each, everything else bf16."""
    out = {}
    for name, shape in names.items():
        matrix = name.startswith("model.diffusion_model.transformer_blocks.") and len(shape) == 2 \
            and name.endswith(".weight")
        out[name] = ("F8_E4M3" if matrix else "BF16", shape)
        if matrix:
            layer = name.removesuffix(".weight")
            out[layer + ".weight_scale"] = ("F32", ())
            out[layer + ".comfy_quant"] = ("U8", (31,))
    return out


def _gemma_names(vision: bool) -> dict[str, tuple[str, tuple[int, ...]]]:
    config = config_json(PUBLISHED[HUB]["text_encoder"])
    model = LTX2.traces.meta_component("text_encoder", config, torch.float32)
    tower = next(n for n in model.state_dict() if n.endswith("embeddings.patch_embedding.weight"))
    tower = tower.removesuffix("embeddings.patch_embedding.weight")
    names = {ltx2_keys.gemma_name(n, tower, reverse=True): ("BF16", tuple(t.shape))
             for n, t in model.state_dict().items() if n != "lm_head.weight"}
    if not vision:
        names = {n: v for n, v in names.items()
                 if not n.startswith(("vision_model.", "multi_modal_projector."))}
    return {**names, "spiece_model": ("U8", (4_689_074,))}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("ltx2_published")
    names = _checkpoint_names()
    bf16 = {n: ("BF16", s) for n, s in names.items()}
    return {
        DEV: write_header(root / "checkpoints" / DEV, _fp8_scaled(names)),
        DISTILLED: write_header(root / "checkpoints" / DISTILLED, bf16),
        GEMMA: write_header(root / "text_encoders" / GEMMA, _gemma_names(vision=True)),
        GEMMA_TEXT_ONLY: write_header(root / "text_encoders" / GEMMA_TEXT_ONLY, _gemma_names(vision=False)),
        "nvfp4": write_header(root / "checkpoints" / "ltx-2-19b-dev-fp4.safetensors",
                              {**bf16, f"{BLOCK}ff.net.2.weight": ("U8", (4096, 8192))}),
        "ltx2.3": write_header(root / "checkpoints" / "ltx-2.3-22b-dev.safetensors",
                               {**bf16, f"{BLOCK}attn1.to_gate_logits.weight": ("BF16", (32, 4096))}),
    }


def test_published_files_are_recognised_and_sized_from_their_headers(published):
    expected = dict(LTX2.published_description(HUB)[1])
    for checkpoint, gemma in ((DEV, GEMMA), (DISTILLED, GEMMA_TEXT_ONLY)):
        description, files = models.describe_files({"diffusion_model": published[checkpoint],
                                                    "text_encoder": published[gemma]})
        assert (description.family.name, description.variant) == ("ltx2", "ltx2")
        assert dict(description.params) == expected  # a left-out vision tower still counts (built as zeros)
        for role in ("transformer", "connectors", "vae", "audio_vae", "vocoder"):
            assert files.configs[role] == PUBLISHED[HUB][role], role
        text = files.configs["text_encoder"]["text_config"]
        assert {k: text[k] for k in PUBLISHED[HUB]["text_encoder"]["text_config"]} == \
            PUBLISHED[HUB]["text_encoder"]["text_config"]
        assert files.parts["text_encoder"].tokenizer
    dev, _ = models.describe_files({"diffusion_model": published[DEV], "text_encoder": published[GEMMA]})
    handle = models.handle_for_files({"diffusion_model": published[DEV], "text_encoder": published[GEMMA]})
    assert handle.files.parts["transformer"].format == "fp8_scaled" and handle.weights == "fp8"
    assert handle.files.parts["vae"].format == "bf16" and handle.name == f"{DEV} + {GEMMA}"
    assert handle.files.configs["scheduler"]["use_dynamic_shifting"]
    distilled = models.handle_for_files({"diffusion_model": published[DISTILLED],
                                         "text_encoder": published[GEMMA]})
    assert distilled.files.configs["scheduler"] == ltx2_files.DISTILLED_SCHEDULER  # its own sigmas, no shift


def test_the_planner_command_sizes_a_run_from_the_files_headers(published, capsys):
    files = ["--diffusion-model", str(published[DEV]), "--text-encoder", str(published[GEMMA])]
    assert cli.main(["plan", *files, "--width", "768", "--height", "512", "--frames", "121",
                     "--offload", "model", "--vram", "48", "--ram", "128", "--no-search"]) == 0
    out = capsys.readouterr().out
    assert f"{DEV} + {GEMMA} (ltx2)" in out and "device per phase: encode" in out


def test_files_people_should_not_load_are_refused_naming_file_and_format(published):
    with pytest.raises(Exception, match=r"ltx-2-19b-dev-fp4.safetensors stores weights as U8, a format"):
        LTX2.files.identify(read_header(published["nvfp4"]))
    with pytest.raises(Exception, match=r"ltx-2.3-22b-dev.safetensors is an LTX-2.3 \(or later\) checkpoint"):
        LTX2.files.identify(read_header(published["ltx2.3"]))


@pytest.mark.parametrize("slots, slot, message", [
    ({"diffusion_model": GEMMA, "text_encoder": GEMMA}, "diffusion_model",
     f"{GEMMA} is a text encoder .*, not an LTX-2 checkpoint"),
    ({"diffusion_model": DEV, "text_encoder": DISTILLED}, "text_encoder",
     f"{DISTILLED} is an LTX-2 checkpoint .*, not a text encoder"),
    ({"diffusion_model": DEV}, "text_encoder", "an LTX-2 model needs the Gemma 3 12B text encoder here"),
    ({"diffusion_model": DEV, "text_encoder": GEMMA, "clip_vision": GEMMA}, "clip_vision",
     "LTX-2 uses no clip vision: set clip_vision to none"),
])
def test_files_that_do_not_fit_are_refused_naming_the_input(published, slots, slot, message):
    with pytest.raises(InputError, match=f"input '{slot}': {message}"):
        models.describe_files({name: published[file] for name, file in slots.items()})


def test_key_names_agree_with_diffusers_converters():
    from diffusers.loaders import single_file_utils as sf

    for role, convert, rename in (
        ("transformer", sf.convert_ltx2_transformer_to_diffusers,
         lambda n: "model.diffusion_model." + ltx2_keys.transformer_name(n, reverse=True)),
        ("vae", sf.convert_ltx2_vae_to_diffusers, lambda n: "vae." + ltx2_keys.vae_name(n, 4, reverse=True)),
        ("audio_vae", sf.convert_ltx2_audio_vae_to_diffusers,
         lambda n: "audio_vae." + ltx2_keys.audio_vae_name(n, reverse=True)),
    ):
        names = list(_shapes(role))
        originals = {rename(n): n for n in names}
        converted = convert({original: original for original in originals})
        assert {new: originals[old] for new, old in converted.items()} == {n: n for n in names}, role
        assert all(ltx2_keys.vae_name(ltx2_keys.vae_name(n, 4, reverse=True), 4) == n
                   for n in _shapes("vae")) if role == "vae" else True
    for role, rename in (("connectors", ltx2_keys.connector_name), ("vocoder", ltx2_keys.vocoder_name)):
        assert all(rename(rename(n, reverse=True)) == n for n in _shapes(role)), role


# --- the tiny model as ComfyUI's files -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_files(session_dirs):
    root = session_dirs["models"]
    return {fmt: models.tiny_single_files("tiny-ltx2", root, fmt) for fmt in ("fp32", "bf16")}


def settings() -> sampling.SampleSettings:
    return sampling.SampleSettings(prompt="a cat walking on the beach", negative_prompt="blurry", width=64,
                                   height=64, num_frames=17, steps=2, guidance_scale=3.0, seed=5,
                                   batch_size=1, target_fps=8)


def realigned(pipe) -> None:
    """Every weight at the allocator's alignment, as the single-file loader leaves them: from_pretrained
    leaves them where the file's layout puts them, and a one-row matrix product (the VAE's timestep
    embedding) sums in another order there."""
    for role in ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder"):
        for tensor in (*getattr(pipe, role).parameters(), *getattr(pipe, role).buffers()):
            if tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()


def test_single_files_give_the_frames_and_sound_of_the_diffusers_folder(tiny_files, model_dirs, still_image,
                                                                        fresh_cache):
    paths = tiny_files["fp32"]
    assert paths["diffusion_model"].parent.name == "checkpoints"
    header = read_header(paths["diffusion_model"]).tensors
    assert "model.diffusion_model.video_embeddings_connector.learnable_registers" in header
    assert {"text_embedding_projection.aggregate_embed.weight", "vocoder.conv_pre.weight",
            "vae.per_channel_statistics.mean-of-means"} <= set(header)
    assert "spiece_model" in read_header(paths["text_encoder"]).tensors
    handle = models.open_files(paths, models.LoadOptions(device="cpu"), CPU, tokenizer_roots=[])
    assert set(handle.files.parts) == ROLES
    ours = sampling.sample(handle, still_image, settings(), services.standalone(), cache=fresh_cache)
    folder = models.open_model("tiny-ltx2", models.LoadOptions(device="cpu"), model_dirs, CPU)
    assert dict(handle.params)["transformer"] == dict(folder.params)["transformer"]
    sampling.sample(folder, still_image, settings(), services.standalone(), cache=fresh_cache)
    realigned(fresh_cache.peek(folder.cache_key).pipeline)
    theirs = sampling.sample(folder, still_image, settings(), services.standalone(), cache=fresh_cache)
    assert torch.equal(ours.frames, theirs.frames)
    sound = ours.audio["waveform"]
    assert torch.equal(sound, theirs.audio["waveform"]) and sound.abs().max() > 0
    assert "tokenizer: the tokenizer embedded in the text encoder file" in ours.report


def test_bf16_files_load_and_run_and_fp8_stays_float8_with_its_scales(tiny_files, session_dirs, model_dirs,
                                                                      still_image, fresh_cache):
    handle = models.open_files(tiny_files["bf16"], models.LoadOptions(device="cpu"), CPU)
    assert {part.format for part in handle.files.parts.values()} == {"bf16"}
    ours = sampling.sample(handle, still_image, settings(), services.standalone(), cache=fresh_cache)
    folder = models.open_model("tiny-ltx2", models.LoadOptions(device="cpu"), model_dirs, CPU)
    theirs = sampling.sample(folder, still_image, settings(), services.standalone(), cache=fresh_cache)
    assert 0 < (ours.frames - theirs.frames).abs().max() < 0.1  # bf16 rounding of random tiny weights
    # fp8_scaled: the transformer's matrices stay float8; each times its scale is its weight, rounded
    paths = models.tiny_single_files("tiny-ltx2", session_dirs["models"], "fp8_scaled")
    part = models.handle_for_files(paths, device="cpu").files.parts["transformer"]
    transformer = ltx2_load.load_transformer(part, torch.float32)
    reference = fresh_cache.peek(folder.cache_key).pipeline.transformer.state_dict()
    layer = transformer.transformer_blocks[0].attn1.to_q
    assert layer.weight.dtype == torch.float8_e4m3fn
    weight = reference["transformer_blocks.0.attn1.to_q.weight"]
    assert (layer.weight.float() * layer.fp8_scale - weight).abs().max() <= weight.abs().max() / 16
    bias = reference["proj_in.bias"].to(torch.bfloat16).float()  # the rest is stored bf16, computes in fp32
    assert torch.equal(transformer.proj_in.bias, bias) and transformer.proj_in.bias.dtype == torch.float32


def test_the_tokenizer_is_found_beside_the_files_or_refused_saying_where(tiny_files, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny_files["fp32"]["text_encoder"]), framework="pt") as handle:
        state = {n: handle.get_tensor(n) for n in handle.keys() if n != "spiece_model"}  # noqa: SIM118
        metadata = handle.metadata()
    bare = tmp_path / "text_encoders" / "gemma_bare.safetensors"
    bare.parent.mkdir()
    save_file(state, str(bare), metadata=metadata)
    paths = {"diffusion_model": tiny_files["fp32"]["diffusion_model"], "text_encoder": bare}
    root = tmp_path / "text_encoders"
    with pytest.raises(InputError, match=r"input 'text_encoder': the Gemma 3 file carries no tokenizer .* "
                                         rf"in {root / 'gemma-3-12b-it'}, or turn allow_download on"):
        models.open_files(paths, models.LoadOptions(device="cpu"), CPU, tokenizer_roots=[root])
    # with downloads allowed it is accepted (the download would come with the load)
    models.open_files(paths, models.LoadOptions(device="cpu", allow_download=True), CPU, [root])
    embedded = ltx2_load.tokenizer_from_spiece(
        bytes(safe_open(str(tiny_files["fp32"]["text_encoder"]), framework="pt").get_tensor("spiece_model")
              .numpy().tobytes()))
    embedded.save_pretrained(str(root / "gemma-3-12b-it"))
    models.open_files(paths, models.LoadOptions(device="cpu"), CPU, tokenizer_roots=[root])
    found, note = ltx2_load.find_tokenizer(None, [root], allow_download=False)
    assert note == f"the tokenizer in {root / 'gemma-3-12b-it'}"
    text = "a cat walking on the beach, blurry"
    assert found(text).input_ids == embedded(text).input_ids


def test_the_embedded_tokenizer_tokenizes_as_the_folders_does(tiny_files, model_dirs):
    from safetensors import safe_open
    from transformers import AutoTokenizer

    folder = models.tiny_model_folder("tiny-ltx2", model_dirs[0])
    theirs = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
    with safe_open(str(tiny_files["fp32"]["text_encoder"]), framework="pt") as handle:
        ours = ltx2_load.tokenizer_from_spiece(bytes(handle.get_tensor("spiece_model").numpy().tobytes()))
    texts = ["a cat walking on the beach", "blurry", "Ünïcode and 12 numbers!", json.dumps({"x": "  y"})]
    for text in texts:
        assert ours(text, padding="max_length", max_length=24).input_ids == \
            theirs(text, padding="max_length", max_length=24).input_ids, text
