"""ComfyUI's LTX-Video single files: the published checkpoints and T5 files recognised from header-only
stand-ins (release, size, format), key names that agree with diffusers' converter, files that do not fit
refused naming the input, the planner sized from headers; and the tiny models written in ComfyUI's
layout (one checkpoint with the transformer and the VAE, a T5 file) giving the tiny diffusers folders'
frames through LoadI2VModelFiles and the engine."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from i2v_nodes.errors import InputError
from i2v_nodes.families.ltx_video import files as ltx_video_files
from i2v_nodes.families.ltx_video import write as ltx_video_write
from i2v_nodes.families.ltx_video.configs import PUBLISHED, TINY
from i2v_nodes.families.registry import LTX_VIDEO
from i2v_nodes.families.toolkit.meta import config_json
from i2v_nodes.families.toolkit.safetensors_header import read_header
from i2v_nodes.families.wan import stand_ins as wan
from i2v_nodes.families.wan.stand_ins import write_header
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.nodes import load_model_files as node_module
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import planner

CPU = torch.device("cpu")
NODE = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"]
HUB_OF = {  # stand-in checkpoint -> the published model it is
    "ltx-video-2b-v0.9.1.safetensors": "Lightricks/LTX-Video",
    "ltx-video-2b-v0.9.5.safetensors": "Lightricks/LTX-Video-0.9.5",
    "ltxv-13b-0.9.7-dev.safetensors": "Lightricks/LTX-Video-0.9.7-dev",
    "ltxv-13b-0.9.7-distilled.safetensors": "Lightricks/LTX-Video-0.9.7-distilled",
}
T5, T5_FP8 = "t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors"
V091, V095 = "ltx-video-2b-v0.9.1.safetensors", "ltx-video-2b-v0.9.5.safetensors"
DEV13 = "ltxv-13b-0.9.7-dev.safetensors"
HUB095 = "Lightricks/LTX-Video-0.9.5"


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def meta(role: str, config: dict) -> torch.nn.Module:
    return LTX_VIDEO.traces.meta_component(role, config_json(config), torch.float32)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """Header-only stand-ins of ComfyUI's LTX-Video files (file name -> path), plus a Wan VAE, a UMT5
    file and LTX VAE-only and transformer-only files."""
    root = tmp_path_factory.mktemp("ltx-comfy")
    files = ltx_video_write.write_published_files(root)
    wan_files = wan.write_template_files(root / "wan", "wan2.2-ti2v-5b")
    files.update(wan_vae=wan_files["vae"], umt5=wan_files["text_encoder"],
                 wan_5b=wan_files["diffusion_model"])
    files["vae091"] = part_file(files[V091], "vae.", root / "vae" / "ltxv-vae-0.9.1.safetensors")
    files["vae095"] = part_file(files[DEV13], "vae.", root / "vae" / "ltxv-vae-0.9.5.safetensors")
    files["13b_alone"] = part_file(files[DEV13], "model.diffusion_model.",
                                   root / "diffusion_models" / "ltxv-13b-transformer.safetensors")
    return files


def part_file(checkpoint: Path, prefix: str, path: Path) -> Path:
    """One component of a checkpoint as a file of its own (no prefix), header only."""
    tensors = read_header(checkpoint).tensors
    return write_header(path, {n.removeprefix(prefix): (t.dtype, t.shape) for n, t in tensors.items()
                               if n.startswith(prefix)})


def test_each_published_file_is_recognised_from_its_header(published):
    for name, hub in HUB_OF.items():
        part = LTX_VIDEO.files.identify(read_header(published[name]))
        counts = dict(models.describe_published(hub).params)
        assert (part.kind, part.variant, part.format) == ("denoiser", LTX_VIDEO.hub_variant(hub), "bf16")
        (vae,) = part.bundled  # the checkpoint's own VAE, sized apart
        assert (part.params, vae.params) == (counts["transformer"], counts["vae"])
        expected = dict(meta("transformer", PUBLISHED[hub]["transformer"]).config)
        assert {k: part.config[k] for k in PUBLISHED[hub]["transformer"]} == {
            k: expected[k] for k in PUBLISHED[hub]["transformer"]}
        assert vae.config == {**PUBLISHED[hub]["vae"]}
    for name, fmt in ((T5, "fp16"), (T5_FP8, "fp8_scaled")):
        part = LTX_VIDEO.files.identify(read_header(published[name]))
        assert (part.kind, part.variant, part.format, part.tokenizer) == ("text_encoder", "t5-v1_1", fmt,
                                                                           False)
        assert part.params == dict(models.describe_published(HUB095).params)["text_encoder"]
        published_t5 = PUBLISHED[HUB095]["text_encoder"]
        assert {k: part.config[k] for k in published_t5} == published_t5
    assert LTX_VIDEO.files.identify(read_header(published["umt5"])) is None  # Wan's UMT5 is not a T5


@pytest.mark.parametrize("name", list(HUB_OF))
def test_a_checkpoint_and_t5_make_their_release_and_the_planner_sizes_it(published, name):
    handle = models.handle_for_files({"diffusion_model": published[name], "text_encoder": published[T5_FP8]})
    assert (handle.family.name, handle.variant) == ("ltx-video", LTX_VIDEO.hub_variant(HUB_OF[name]))
    assert handle.files.parts["vae"].path == published[name]  # the checkpoint's own VAE
    assert handle.fp8_roles == {"text_encoder"} and handle.weights == "default"
    answer = planner.answer(handle, memory.RunShape(768, 512, 121), planner.Machine(24, 64), search=False)
    assert answer.asked.device_peak > 0


@pytest.mark.parametrize(
    "slots, slot, message",
    [
        ({"diffusion_model": T5, "text_encoder": T5}, "diffusion_model",
         "t5xxl_fp16.safetensors is a text encoder .*, not an LTX-Video checkpoint"),
        ({"diffusion_model": V095, "text_encoder": V095}, "text_encoder",
         "is an LTX-Video checkpoint .*, not a text encoder"),
        ({"diffusion_model": V095, "text_encoder": T5, "vae": "wan_vae"}, "vae",
         f"wan2.2_vae.safetensors is a wan file, but the diffusion model {V095} is ltx-video, which reads "
         "ComfyUI's LTX-Video 0.9.x files"),
        ({"diffusion_model": V095, "text_encoder": "umt5"}, "text_encoder",
         "is a wan file, but the diffusion model"),
        ({"diffusion_model": V095, "text_encoder": T5, "vae": "vae091"}, "vae",
         f"ltxv-vae-0.9.1.safetensors is the LTX-Video 0.9.1 VAE, but {V095} carries the 0.9.5 and later VAE "
         ".*: set vae to none"),
        ({"diffusion_model": "13b_alone", "text_encoder": T5}, "vae",
         "holds the transformer alone: give its"),
        ({"diffusion_model": "13b_alone", "text_encoder": T5, "vae": "vae091"}, "vae",
         r"0\.9\.1 VAE; ltxv-13b-transformer.safetensors \(13B, 0\.9\.7 and later\) needs the 0\.9\.5\+ VAE"),
        ({"diffusion_model": V095}, "text_encoder", "needs the T5 v1.1 XXL"),
        ({"diffusion_model": V095, "text_encoder": T5, "diffusion_model_2": V095}, "diffusion_model_2",
         "set diffusion_model_2 to none"),
        ({"diffusion_model": "wan_5b", "text_encoder": "umt5"}, "vae", "a Wan model needs a file here"),
    ],
)
def test_files_that_do_not_fit_are_refused_naming_the_input(published, slots, slot, message):
    with pytest.raises(InputError, match=f"input '{slot}': .*{message}"):
        models.handle_for_files({s: published[k] for s, k in slots.items()})


def test_a_transformer_file_takes_its_vae_from_the_vae_input(published):
    handle = models.handle_for_files({"diffusion_model": published["13b_alone"],
                                      "text_encoder": published[T5], "vae": published["vae095"]})
    assert handle.variant == "ltx-video" and handle.files.parts["vae"].path == published["vae095"]
    same = models.handle_for_files({"diffusion_model": published[DEV13], "text_encoder": published[T5],
                                    "vae": published["vae095"]})
    assert same.files.parts["vae"].path == published["vae095"]  # the vae input wins, as VAELoader's does


# --- key names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", list(ltx_video_files.PUBLISHED_VAES))
def test_vae_names_agree_with_diffusers_converter_for_the_published_layouts(release):
    from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers

    names = shapes(meta("vae", ltx_video_files.PUBLISHED_VAES[release]))
    original = ltx_video_files.vae_names_to_original(names)
    checkpoint = {"vae." + original[name]: torch.empty(shape, device="meta") for name, shape in names.items()}
    checkpoint["vae.per_channel_statistics.channel"] = torch.empty(128, device="meta")  # dropped by both
    converted = convert_ltx_vae_checkpoint_to_diffusers(checkpoint)
    assert {name: tuple(t.shape) for name, t in converted.items()} == names


@pytest.mark.parametrize("name", list(TINY))
def test_key_names_survive_the_original_layout(name):
    vae = shapes(meta("vae", TINY[name]["vae"]))
    original = {old: vae[new] for new, old in ltx_video_files.vae_names_to_original(vae).items()}
    assert ltx_video_files.vae_to_diffusers(original, vae) == vae
    with pytest.raises(KeyError, match="tensors the VAE does not have"):
        ltx_video_files.vae_to_diffusers({**original, "decoder.extra.weight": (1,)}, vae)
    for config in (TINY[name]["transformer"], PUBLISHED[HUB095]["transformer"]):
        names = shapes(meta("transformer", config))
        renamed = {"model.diffusion_model." + ltx_video_files.transformer_to_original(k): v
                   for k, v in names.items()}
        assert ltx_video_files.transformer_to_diffusers(renamed) == names


def test_the_planner_command_sizes_a_run_from_the_files_headers(published, capsys):
    from i2v_nodes import cli

    rc = cli.main(["plan", "--diffusion-model", str(published["ltxv-13b-0.9.7-distilled.safetensors"]),
                   "--text-encoder", str(published[T5]), "--width", "768", "--height", "512",
                   "--frames", "121", "--vram", "24", "--ram", "64", "--json", "--no-search"])
    data = json.loads(capsys.readouterr().out)
    assert data["variant"] == "ltx-video-distilled" and data["fits"] is (rc == 0)


# --- the node and the tiny models as ComfyUI's files ----------------------------------------------------


@pytest.fixture(scope="module")
def files_root(session_dirs) -> Path:
    return session_dirs["models"]


@pytest.fixture(scope="module")
def tiny_files(files_root) -> dict[str, dict[str, str]]:
    """tiny model -> loader slot -> file name, as ComfyUI's combos show it (fp32)."""
    return {name: {slot: path.name for slot, path in models.tiny_single_files(name, files_root).items()}
            for name in TINY}


def settings(**changes) -> sampling.SampleSettings:
    base = sampling.SampleSettings(prompt="a boat on a lake", negative_prompt="blurry", width=64, height=64,
                                   num_frames=9, steps=2, guidance_scale=3.0, seed=5, batch_size=1,
                                   target_fps=24)
    return dataclasses.replace(base, **changes)


def load_node(files: dict[str, str], unique_id: str = "7", **options):
    widgets = {"diffusion_model_2": "none", "vae": "none", "clip_vision": "none", "precision": "auto",
               "vae_precision": "auto", "device": "cpu", "offload": "none", "allow_download": False,
               **files, **options}
    (handle,) = NODE().load(unique_id=unique_id, **widgets)
    return handle


def run(handle, image, cache):
    return sampling.sample(handle, image, settings(), services.standalone(), cache=cache)


def realigned(pipe) -> None:
    """Every weight of a pipeline at the allocator's alignment, as the single-file loader leaves them
    (see ltx_video_load.aligned: from_pretrained leaves them where the file's layout puts them, and a
    one-row matrix product sums in another order there)."""
    for module in (pipe.transformer, pipe.vae, pipe.text_encoder):
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()


@pytest.mark.parametrize("name", list(TINY))
def test_single_files_give_the_frames_of_the_diffusers_folder(name, tiny_files, model_dirs, still_image,
                                                             fresh_cache):
    handle = load_node(tiny_files[name])
    assert handle.variant == name.removeprefix("tiny-") and set(handle.files.parts) == {
        "transformer", "vae", "text_encoder"}
    ours = run(handle, still_image, fresh_cache)
    folder = models.open_model(name, models.LoadOptions(device="cpu"), model_dirs, CPU)
    run(folder, still_image, fresh_cache)
    realigned(fresh_cache.peek(folder.cache_key).pipeline)
    theirs = run(folder, still_image, fresh_cache)
    assert torch.equal(ours.frames, theirs.frames) and fresh_cache.loads == 2
    assert "tokenizer: the tokenizer embedded in the text encoder file" in ours.report


@pytest.mark.parametrize("fmt, tolerance", [("bf16", 0.05), ("fp8_e4m3fn", 0.1), ("fp8_scaled", 0.1)])
def test_bf16_and_fp8_files_load_and_run(fmt, tolerance, files_root, tiny_files, still_image, fresh_cache):
    paths = models.tiny_single_files("tiny-ltx-video", files_root, fmt)
    handle = load_node({slot: path.name for slot, path in paths.items()})
    # (the tiny T5's embedding table outweighs its float8 matrices: its plain fp8 file reads as bf16)
    assert handle.files.parts["transformer"].format == fmt
    assert handle.weights == ("fp8" if fmt.startswith("fp8") else "default")
    ours = run(handle, still_image, fresh_cache)
    pipe = fresh_cache.peek(handle.cache_key).pipeline
    expected = torch.float8_e4m3fn if fmt.startswith("fp8") else torch.float32
    assert pipe.transformer.transformer_blocks[0].ff.net[2].weight.dtype == expected
    fp32 = run(load_node(tiny_files["tiny-ltx-video"]), still_image, fresh_cache)
    assert torch.isfinite(ours.frames).all() and 0 < (ours.frames - fp32.frames).abs().max() < tolerance


def test_the_node_lists_checkpoints_and_a_vae_of_none(tiny_files, files_root):
    required = NODE.INPUT_TYPES()["required"]
    assert tiny_files["tiny-ltx-video"]["diffusion_model"] in required["diffusion_model"][0]
    assert required["vae"][0][-1] == "none"  # appended: saved Wan workflows keep their default
    assert required["diffusion_model_2"][0][0] == "none"
    for folder in ("diffusion_models", "checkpoints"):
        (files_root / folder / "ltx_dup.safetensors").parent.mkdir(exist_ok=True)
        (files_root / folder / "ltx_dup.safetensors").write_bytes(b"x")
    try:
        found = node_module.resolve("diffusion_model", "ltx_dup.safetensors")
        assert found.parent.name == "diffusion_models"
        listed = NODE.INPUT_TYPES()["required"]["diffusion_model"][0]
        assert listed.count("ltx_dup.safetensors") == 1
    finally:
        for folder in ("diffusion_models", "checkpoints"):
            (files_root / folder / "ltx_dup.safetensors").unlink()
    outside = "../text_encoders/" + tiny_files["tiny-ltx-video"]["text_encoder"]
    with pytest.raises(InputError, match="'diffusion_model': no file .* diffusion_models .*checkpoints"):
        node_module.resolve("diffusion_model", outside)


def test_a_t5_file_without_a_tokenizer_says_where_to_put_one(tiny_files, files_root, still_image,
                                                            fresh_cache):
    files = tiny_files["tiny-ltx-video"]
    source = files_root / "text_encoders" / files["text_encoder"]
    bare = source.with_name("bare_t5xxl.safetensors")  # as ComfyUI's t5xxl files are: no tokenizer
    with safe_open(str(source), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys() if key != "spiece_model"}  # noqa: SIM118
        metadata = handle.metadata()
    save_file(tensors, str(bare), metadata=metadata)
    folder = files_root / "text_encoders" / "t5-v1_1-xxl"
    with pytest.raises(InputError, match=rf"input 'text_encoder': T5 text encoder files carry no tokenizer: "
                                         rf"put the tokenizer files of google/t5-v1_1-xxl .* in {folder}, or "
                                         rf"turn allow_download on"):
        load_node({**files, "text_encoder": bare.name})
    assert fresh_cache.loads == 0

    from transformers import AutoTokenizer

    tiny = models.tiny_model_folder("tiny-ltx-video", files_root / "i2v")
    AutoTokenizer.from_pretrained(str(tiny / "tokenizer")).save_pretrained(folder)
    result = run(load_node({**files, "text_encoder": bare.name}), still_image, fresh_cache)
    embedded = run(load_node(files), still_image, fresh_cache)
    assert f"tokenizer: the tokenizer in {folder}" in result.report
    assert torch.equal(result.frames, embedded.frames)


def test_inside_comfyui_its_own_t5_tokenizer_folder_is_found(monkeypatch, tmp_path):
    from i2v_nodes import host
    from i2v_nodes.families.ltx_video import load as ltx_video_load

    shipped = tmp_path / "comfy" / "text_encoders"
    (shipped / "t5_tokenizer").mkdir(parents=True)
    (shipped / "t5_tokenizer" / "tokenizer.json").write_text("{}")
    folder_paths = types.SimpleNamespace(get_folder_paths=lambda name: [str(tmp_path / "models" / name)])
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "comfy.text_encoders", types.SimpleNamespace(__path__=[str(shipped)]))
    roots = host.tokenizer_roots()
    assert roots == [tmp_path / "models" / "text_encoders", shipped]
    assert ltx_video_load.tokenizer_folder(roots) == shipped / "t5_tokenizer"


def test_a_file_changed_on_disk_under_a_cached_model_is_read_again(tiny_files, still_image,
                                                                  fresh_cache):
    """A new download under the same name: ComfyUI runs the loader again (IS_CHANGED), and a handle
    made before the change loads the new weights, never the cached old ones."""
    names = tiny_files["tiny-ltx-video"]
    handle = load_node(names)
    before = run(handle, still_image, fresh_cache)
    mark = NODE.IS_CHANGED(**names)
    path = node_module.resolve("diffusion_model", names["diffusion_model"])
    original, stat = path.read_bytes(), path.stat()
    with safe_open(str(path), "pt") as opened:
        metadata = opened.metadata()
        changed = {name: opened.get_tensor(name) * 1.5 for name in opened.keys()}  # noqa: SIM118
    staged = path.with_name("staged.safetensors")
    try:
        save_file(changed, str(staged), metadata=metadata)
        staged.replace(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert NODE.IS_CHANGED(**names) != mark
        after = run(handle, still_image, fresh_cache)
        assert fresh_cache.loads == 2 and not torch.equal(after.frames, before.frames)
        assert torch.equal(run(load_node(names), still_image, fresh_cache).frames, after.frames)
        assert fresh_cache.loads == 2 and fresh_cache.stats().entries == 1  # the old weights are gone
    finally:
        staged.write_bytes(original)
        staged.replace(path)
