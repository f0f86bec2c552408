"""ComfyUI's AnimateDiff (PIA) single files: an SD 1.5 checkpoint and PIA's motion module recognised from
header-only stand-ins (and SD 2.x / SDXL checkpoints and plain AnimateDiff motion modules refused naming the
input), key names that diffusers' converters take back, the planner sized from headers; and the tiny model
written in ComfyUI's layout giving the tiny diffusers folder's frames through LoadI2VModelFiles."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from i2v_nodes.errors import InputError
from i2v_nodes.families.animatediff import load as animatediff_load
from i2v_nodes.families.animatediff import write as animatediff_write
from i2v_nodes.families.animatediff.configs import HUB_ID, PIA_ADAPTER, PUBLISHED, TINY
from i2v_nodes.families.ltx_video import load as ltx_video_load
from i2v_nodes.families.registry import ANIMATEDIFF as AD
from i2v_nodes.families.toolkit.meta import config_json, meta_module
from i2v_nodes.families.toolkit.safetensors_header import read_header
from i2v_nodes.families.wan import stand_ins as wan
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading import models

CPU = torch.device("cpu")
NODE = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"]
NAME = "tiny-animatediff-i2v"
SD15, PIA, V2, V3 = (animatediff_write.SD15_FILE, animatediff_write.PIA_FILE, "mm_sd_v15_v2.safetensors",
                     "v3_sd15_mm.safetensors")
UNET = "model.diffusion_model."


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """Header-only stand-ins: SD 1.5's checkpoint, PIA's and plain motion modules, SDXL and SD 2.x markers,
    a Wan VAE and an SD VAE file."""
    root = tmp_path_factory.mktemp("ad-comfy")
    files = animatediff_write.write_published_files(root)
    files["wan_vae"] = wan.write_template_files(root / "wan", "wan2.2-ti2v-5b")["vae"]
    tensors = read_header(files[SD15]).tensors
    files["sd_vae"] = wan.write_header(root / "vae" / "vae-ft-mse.safetensors", {
        n.removeprefix("first_stage_model."): (t.dtype, t.shape) for n, t in tensors.items()
        if n.startswith("first_stage_model.")})
    marks = {UNET + "input_blocks.0.0.weight": ("F16", (320, 4, 3, 3)),
             UNET + "out.2.weight": ("F16", (4, 320, 3, 3))}
    files["sdxl"] = wan.write_header(root / "checkpoints" / "sd_xl_base_1.0.safetensors", {
        **marks, UNET + "label_emb.0.0.weight": ("F16", (1280, 2816))})
    files["pia_fp8"] = wan.write_header(root / "animatediff_models" / "pia_fp8.safetensors", {
        n: ("F8_E4M3" if len(t.shape) == 2 else t.dtype, t.shape)
        for n, t in read_header(files[PIA]).tensors.items()})
    files["sd2"] = wan.write_header(root / "checkpoints" / "v2-1_768-ema-pruned.safetensors", {
        **marks, "cond_stage_model.model.ln_final.weight": ("F16", (1024,))})
    return files


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def test_published_files_are_recognised_from_their_headers(published):
    checkpoint = AD.files.identify(read_header(published[SD15]))
    assert (checkpoint.kind, checkpoint.variant, checkpoint.format) == ("denoiser", "sd1.5", "fp32")
    vae, text = checkpoint.bundled
    assert (vae.kind, text.kind, text.tokenizer) == ("vae", "text_encoder", False)
    for part, role in ((checkpoint, "unet"), (vae, "vae"), (text, "text_encoder")):
        assert {k: part.config[k] for k in PUBLISHED[HUB_ID][role]} == PUBLISHED[HUB_ID][role], role
    module = AD.files.identify(read_header(published[PIA]))
    assert (module.kind, module.variant, module.format) == ("motion_module", "pia", "fp16")
    assert {k: module.config[k] for k in PIA_ADAPTER} == PIA_ADAPTER
    assert AD.files.identify(read_header(published["sd_vae"])).config == vae.config
    for name, kind in ((V2, "AnimateDiff v2"), (V3, "AnimateDiff v3")):
        assert AD.files.identify(read_header(published[name])).variant == kind
    handle = models.handle_for_files({"diffusion_model": published[SD15],
                                      "diffusion_model_2": published[PIA]})
    assert (handle.family.name, handle.variant) == ("animatediff", "pia")
    expected = dict(models.describe_published(HUB_ID).params)
    assert {role: n for role, n in handle.params if n} == expected  # the adapter counted in the merged UNet


def test_the_planner_command_sizes_a_run_from_the_files_headers(published, capsys):
    from i2v_nodes import cli

    rc = cli.main(["plan", "--diffusion-model", str(published[SD15]), "--diffusion-model-2",
                   str(published[PIA]), "--width", "64", "--height", "64", "--frames", "8", "--vram", "24",
                   "--ram", "64", "--json", "--no-search"])
    data = json.loads(capsys.readouterr().out)
    assert data["variant"] == "pia" and data["fits"] is True and rc == 0


@pytest.mark.parametrize(
    "slots, slot, message",
    [
        ({"diffusion_model": SD15, "diffusion_model_2": V2}, "diffusion_model_2",
         "is an AnimateDiff v2 motion module .* no image input.*PIA's motion module"),
        ({"diffusion_model": SD15, "diffusion_model_2": V3}, "diffusion_model_2",
         "AnimateDiff v3 .* no image input"),
        ({"diffusion_model": SD15}, "diffusion_model_2", "needs PIA's motion module here"),
        ({"diffusion_model": "sdxl", "diffusion_model_2": PIA}, "diffusion_model", "is an SDXL checkpoint"),
        ({"diffusion_model": "sd2", "diffusion_model_2": PIA}, "diffusion_model", r"Stable Diffusion 2\.x"),
        ({"diffusion_model": PIA, "diffusion_model_2": PIA}, "diffusion_model",
         "is an AnimateDiff motion module .*, not a Stable Diffusion 1.5 checkpoint .*: put it in "
         "diffusion_model_2"),
        ({"diffusion_model": SD15, "diffusion_model_2": SD15}, "diffusion_model_2",
         "is a Stable Diffusion 1.5 checkpoint .*, not an AnimateDiff motion module"),
        ({"diffusion_model": SD15, "diffusion_model_2": PIA, "text_encoder": SD15}, "text_encoder",
         "set text_encoder to none"),
        ({"diffusion_model": SD15, "diffusion_model_2": PIA, "vae": "wan_vae"}, "vae",
         "is a wan file, but the diffusion model v1-5-pruned-emaonly.safetensors is animatediff"),
        ({"diffusion_model": SD15, "diffusion_model_2": "pia_fp8"}, "diffusion_model_2",
         "stores its motion module as fp8_e4m3fn; this pack reads motion modules in fp32, fp16, bf16"),
        ({"diffusion_model": SD15, "diffusion_model_2": "pia.ckpt"}, "diffusion_model_2",
         r"pia\.ckpt is a pickle \(\.ckpt\).*safetensors and GGUF files only"),
    ],
)
def test_files_that_do_not_fit_are_refused_naming_the_input(published, slots, slot, message):
    paths = {s: published.get(k, Path(k)) for s, k in slots.items()}
    with pytest.raises(InputError, match=f"input '{slot}': .*{message}"):
        models.handle_for_files(paths)


def test_an_sd_vae_file_replaces_the_checkpoints_own(published):
    handle = models.handle_for_files({"diffusion_model": published[SD15], "diffusion_model_2": published[PIA],
                                      "vae": published["sd_vae"]})
    assert handle.files.parts["vae"].path == published["sd_vae"]


# --- key names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("configs", [PUBLISHED[HUB_ID], TINY[NAME]], ids=["published", "tiny"])
def test_key_names_are_what_diffusers_converters_take_back(configs):
    from diffusers.loaders import single_file_utils as convert

    def meta(role, config):
        return AD.traces.meta_component(role, config_json(config), torch.float32)

    unet = shapes(meta("unet", configs["unet"]))
    original = animatediff_write.unet_names_to_original(unet, configs["unet"]["layers_per_block"])
    checkpoint = {UNET + original[n]: torch.empty(s, device="meta") for n, s in unet.items()}
    assert shapes_of(convert.convert_ldm_unet_checkpoint(checkpoint, configs["unet"])) == unet
    vae_module = meta("vae", configs["vae"])
    levels = len(configs["vae"]["block_out_channels"])
    state = animatediff_write.checkpoint_state({}, vae_module.state_dict(), {}, 1, levels)
    assert shapes_of(convert.convert_ldm_vae_checkpoint(state, dict(vae_module.config))) == shapes(vae_module)
    from diffusers import MotionAdapter

    adapter = meta_module(MotionAdapter, {**PIA_ADAPTER, **configs["motion_adapter"]}).state_dict()
    back = convert.convert_animatediff_checkpoint_to_diffusers(animatediff_write.motion_to_original(adapter))
    computed = "pos_embed.pe"  # sinusoidal tables: the converter drops them, the model makes its own
    assert shapes_of(back) == {n: tuple(t.shape) for n, t in adapter.items() if not n.endswith(computed)}


def shapes_of(state: dict) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in state.items()}


# --- the node and the tiny model as ComfyUI's files ----------------------------------------------------


@pytest.fixture(scope="module")
def files_root(session_dirs) -> Path:
    return session_dirs["models"]


@pytest.fixture(scope="module")
def tiny_files(files_root) -> dict[str, str]:
    """loader slot -> file name, as ComfyUI's combos show it (fp32)."""
    return {slot: path.name for slot, path in models.tiny_single_files(NAME, files_root).items()}


def settings(**changes) -> sampling.SampleSettings:
    base = sampling.SampleSettings(prompt="a cat walking on the beach", negative_prompt="blurry", width=64,
                                   height=48, num_frames=8, steps=2, guidance_scale=5.0, seed=7, batch_size=1,
                                   target_fps=8, decode_chunk_size=8)
    return dataclasses.replace(base, **changes)


def load_node(files: dict[str, str], **options):
    widgets = {"diffusion_model_2": "none", "text_encoder": "none", "vae": "none", "clip_vision": "none",
               "precision": "auto", "vae_precision": "auto", "device": "cpu", "offload": "none",
               "allow_download": False, **files, **options}
    (handle,) = NODE().load(unique_id="3", **widgets)
    return handle


def run(handle, image, cache):
    return sampling.sample(handle, image, settings(), services.standalone(), cache=cache)


def realigned(pipe) -> None:
    """The folder pipeline's weights at the allocator's alignment, as the single-file loader leaves them
    (ltx_video_load.aligned says why a one-row matrix product needs it)."""
    for role in AD.roles("pia").weighted:
        module = getattr(pipe, role)
        tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        for name, data in ltx_video_load.aligned({n: t.data for n, t in tensors.items()}).items():
            tensors[name].data = data


def test_single_files_give_the_frames_of_the_diffusers_folder(tiny_files, model_dirs, still_image,
                                                             fresh_cache):
    handle = load_node(tiny_files)
    assert handle.variant == "pia"
    assert set(handle.files.parts) == {"unet", "motion_adapter", "vae", "text_encoder"}
    ours = run(handle, still_image, fresh_cache)
    folder = models.open_model(NAME, models.LoadOptions(device="cpu"), model_dirs, CPU)
    run(folder, still_image, fresh_cache)
    realigned(fresh_cache.peek(folder.cache_key).pipeline)
    theirs = run(folder, still_image, fresh_cache)
    assert torch.equal(ours.frames, theirs.frames) and fresh_cache.loads == 2
    assert "tokenizer: the tokenizer embedded in the checkpoint" in ours.report


def test_bf16_files_load_and_run(files_root, tiny_files, still_image, fresh_cache):
    paths = models.tiny_single_files(NAME, files_root, "bf16")
    handle = load_node({slot: path.name for slot, path in paths.items()})
    assert {part.format for part in handle.files.parts.values()} == {"bf16"}
    ours = run(handle, still_image, fresh_cache)
    fp32 = run(load_node(tiny_files), still_image, fresh_cache)
    assert torch.isfinite(ours.frames).all() and 0 < (ours.frames - fp32.frames).abs().max() < 0.1
    with pytest.raises(InputError, match="input 'format': AnimateDiff files are written in fp32, bf16, fp16"):
        models.tiny_single_files(NAME, files_root, "fp8_scaled")


def test_the_node_lists_motion_modules_and_a_text_encoder_of_none(tiny_files):
    required = NODE.INPUT_TYPES()["required"]
    assert tiny_files["diffusion_model_2"] in required["diffusion_model_2"][0]
    assert tiny_files["diffusion_model"] in required["diffusion_model"][0]
    assert required["text_encoder"][0][-1] == "none" and required["vae"][0][-1] == "none"  # appended


def bare_checkpoint(source: Path) -> Path:
    """The checkpoint without its embedded tokenizer, as real SD 1.5 checkpoints are."""
    bare = source.with_name("bare_" + source.name)
    with safe_open(str(source), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        configs = json.loads(handle.metadata()["diffusers_config"])
    configs.pop("tokenizer")
    save_file(tensors, str(bare), metadata={"diffusers_config": json.dumps(configs)})
    return bare


def test_a_checkpoint_without_a_tokenizer_says_where_to_put_one(tiny_files, files_root, still_image,
                                                                fresh_cache):
    bare = bare_checkpoint(files_root / "checkpoints" / tiny_files["diffusion_model"])
    files = {**tiny_files, "diffusion_model": bare.name}
    folder = files_root / "text_encoders" / "clip-vit-large-patch14"
    with pytest.raises(InputError, match=rf"input 'text_encoder': SD 1.5 checkpoints carry no tokenizer: "
                                         rf"put the tokenizer files of openai/clip-vit-large-patch14 .* in "
                                         rf"{folder}, or turn allow_download on"):
        load_node(files)
    assert fresh_cache.loads == 0
    tiny = models.tiny_model_folder(NAME, files_root / "i2v")
    from transformers import CLIPTokenizer

    CLIPTokenizer.from_pretrained(str(tiny / "tokenizer")).save_pretrained(folder)
    try:
        result = run(load_node(files), still_image, fresh_cache)
        embedded = run(load_node(tiny_files), still_image, fresh_cache)
    finally:
        for path in folder.iterdir():  # other tests' SD checkpoints must not find a tiny tokenizer
            path.unlink()
        folder.rmdir()
    assert f"tokenizer: the tokenizer in {folder}" in result.report
    assert torch.equal(result.frames, embedded.frames)


def test_inside_comfyui_its_own_sd1_tokenizer_folder_is_found(monkeypatch, tmp_path):
    from i2v_nodes import host

    comfy = tmp_path / "comfy"
    (comfy / "sd1_tokenizer").mkdir(parents=True)
    for name in ("vocab.json", "merges.txt"):
        (comfy / "sd1_tokenizer" / name).write_text("{}")
    folder_paths = types.SimpleNamespace(get_folder_paths=lambda name: [str(tmp_path / "models" / name)])
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "comfy", types.SimpleNamespace(__path__=[str(comfy)]))
    roots = host.tokenizer_roots()
    assert roots[0] == tmp_path / "models" / "text_encoders" and comfy in roots
    assert animatediff_load.tokenizer_folder(roots) == comfy / "sd1_tokenizer"


def test_fp8_weight_storage_applies_to_the_merged_unet(tiny_files, still_image, fresh_cache):
    # (a folder with the base and the adapter apart refuses fp8: the pipeline's merge would undo it)
    handle = load_node(tiny_files, weights="fp8")
    result = run(handle, still_image, fresh_cache)
    unet = fresh_cache.peek(handle.cache_key).pipeline.unet
    assert unet.down_blocks[0].motion_modules[0].proj_in.weight.dtype == torch.float8_e4m3fn
    assert torch.isfinite(result.frames).all()
