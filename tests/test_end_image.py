"""I2VSample's end_image (first and last frame): in the stub host on every tiny model, pairing with the
start images, the inputs it refuses, what the guard counts, and Wan 2.1 FLF2V's files.

The frames' equality with the stock pipeline given the same end image is a contract test
(``tests/test_family_contract.py``), run on every tiny model."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import torch

from host_stub import Host
from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard
from tests.test_family_contract import settings_for

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TINY = list(registry.tiny_builders())
BIG = guard.Budget(free=2**40, total=2**40, headroom=0.1, ram_free=2**40, ram_total=2**40)


def takes_end_image(handle) -> bool:
    return handle.variant in handle.family.spec.keyframes


def needs_end_image(handle) -> bool:
    takes = handle.family.spec.keyframes.get(handle.variant)
    return takes is not None and takes.required


@pytest.fixture(scope="module")
def opened(model_dirs):
    handles = {}

    def open_tiny(name):
        if name not in handles:
            handles[name] = models.open_model(name, models.LoadOptions(), model_dirs, CPU)
        return handles[name]

    return open_tiny


@pytest.mark.parametrize("name", TINY)
def test_in_the_stub_host_an_end_image_changes_the_frames_and_a_seed_reproduces_them(name, opened,
                                                                                    session_dirs):
    """One graph per tiny model: I2VSample with the beach's end image twice (same seed) and with the
    start image as end image; and, where the model runs without one, I2VSample without it. A model
    that cannot take an end image fails the graph naming the input and the models that can."""
    handle = opened(name)
    s = settings_for(handle)
    for picture in ("i2v-example.png", "i2v-example-end.png"):
        shutil.copy(REPO / "examples" / picture, session_dirs["input"])
    widgets = {key: getattr(s, key) for key in ("prompt", "negative_prompt", "width", "height", "num_frames",
                                                "steps", "guidance_scale", "seed", "batch_size", "target_fps",
                                                "decode_chunk_size")}
    prompt = {
        "start": {"class_type": "LoadImage", "inputs": {"image": "i2v-example.png"}},
        "end": {"class_type": "LoadImage", "inputs": {"image": "i2v-example-end.png"}},
        "model": {"class_type": "LoadI2VModel", "inputs": {
            "model": name, "precision": "fp32", "vae_precision": "auto", "device": "cpu", "offload": "none",
            "allow_download": False, "weights": "default"}},
    }
    runs = {"ends": "end", "again": "end", "loops": "start"}
    if not needs_end_image(handle):
        runs["alone"] = None
    for run, end in runs.items():
        inputs = {**widgets, "model": ["model", 0], "image": ["start", 0]}
        if end is not None:
            inputs["end_image"] = [end, 0]
        prompt[f"sample-{run}"] = {"class_type": "I2VSample", "inputs": inputs}
        prompt[f"preview-{run}"] = {"class_type": "PreviewImage", "inputs": {"images": [f"sample-{run}", 0]}}
    folders = {f"{kind}_dir": str(session_dirs[kind]) for kind in ("input", "output", "models")}
    result = Host(packs=[str(REPO)], **folders).run(prompt)
    if not takes_end_image(handle):
        assert result.status != "success"
        assert re.search(r"input 'end_image': .*cannot condition on a last frame.*"
                         + re.escape(sampling.capable_models()), str(result.error)), result.error
        return
    assert result.status == "success", result.error
    frames = {run: result.output(f"sample-{run}") for run in runs}
    assert frames["ends"].shape == (s.num_frames, s.height, s.width, 3)
    assert torch.equal(frames["ends"], frames["again"])  # the same seed and images: the same frames
    assert not torch.equal(frames["ends"], frames["loops"])  # the end image changes them
    if "alone" in frames:
        assert not torch.equal(frames["ends"], frames["alone"])


@pytest.fixture(scope="module")
def a14b(opened):
    return opened("tiny-wan2.2-i2v-a14b")


def test_end_images_pair_with_the_start_images_and_one_serves_them_all(a14b, still_image):
    """Two start images with two end images: clip j is start j to end j. One end image: every start
    image ends on it."""
    s = settings_for(a14b)
    starts = torch.cat([still_image, still_image.flip(1)])
    ends = torch.cat([still_image.flip(2), still_image.flip(1).flip(2)])
    svc = services.standalone()
    both = sampling.sample(a14b, starts, s, svc, end_images=ends).frames
    frames = s.num_frames
    for j in range(2):
        single = sampling.sample(a14b, starts[j:j + 1], s, svc, end_images=ends[j:j + 1]).frames
        assert torch.equal(both[j * frames:(j + 1) * frames], single), j
    shared = sampling.sample(a14b, starts, s, svc, end_images=ends[:1]).frames
    assert torch.equal(shared[:frames], both[:frames]) and not torch.equal(shared[frames:], both[frames:])


def test_what_the_end_image_input_refuses(a14b, opened, still_image, fresh_cache):
    s, svc = settings_for(a14b), services.standalone()
    starts = torch.cat([still_image] * 3)
    with pytest.raises(InputError, match=r"input 'end_image': 2 end images for 3 start images \(image\)"):
        sampling.sample(a14b, starts, s, svc, cache=fresh_cache, end_images=torch.cat([still_image] * 2))
    with pytest.raises(InputError, match="input 'end_image': the batch is empty"):
        sampling.sample(a14b, still_image, s, svc, cache=fresh_cache, end_images=still_image[:0])
    with pytest.raises(InputError, match="input 'end_image': expected float values"):
        sampling.sample(a14b, still_image, s, svc, cache=fresh_cache, end_images=(still_image * 255).byte())
    flf = opened("tiny-wan2.1-flf2v")
    with pytest.raises(InputError, match=r"input 'end_image': tiny-wan2.1-flf2v \(Wan 2.1 FLF2V\) is a "
                                         "first-last-frame model: it needs an end image"):
        sampling.sample(flf, still_image, settings_for(flf), svc, cache=fresh_cache)
    wan21 = opened("tiny-wan2.1-i2v")  # no positions for a second image's CLIP states
    with pytest.raises(InputError, match=r"input 'end_image': .*\(Wan 2\.1\) cannot condition on a last "
                                         r"frame.*Wan 2\.2 A14B.*Wan 2\.1 FLF2V"):
        sampling.sample(wan21, still_image, settings_for(wan21), svc, cache=fresh_cache,
                        end_images=still_image)
    assert fresh_cache.loads == 0  # every refusal came before anything loaded


def test_the_guard_counts_the_end_image(opened):
    """The end image's pixels wait beside the encode; LTX's condition tokens (one latent frame each)
    grow the denoiser's work, Wan's (in place) do not."""
    for name, grows in (("tiny-wan2.2-i2v-a14b", False), ("tiny-ltx-video", True), ("tiny-ltx2", True)):
        handle = opened(name)
        alone = sampling.run_shape(handle, settings_for(handle))
        ended = dataclasses.replace(alone, keyframes=2)
        options = memory.default_options(handle, alone)
        before, after = memory.estimate_phases(handle, alone, options), memory.estimate_phases(handle, ended,
                                                                                               options)
        assert after["encode"] == before["encode"] + 3 * alone.width * alone.height * 4, name
        assert (after["denoise"] > before["denoise"]) == grows, name
        assert after["decode"] == before["decode"], name
        plan = guard.plan_run(handle, ended, "error", BIG)
        assert "with an end image" in plan.report


def test_a_plan_from_vramguard_without_the_end_image_is_made_again_with_it(opened, still_image, caplog):
    """VRAMGuard sees no images: I2VSample plans again, with its policy, when an end image comes."""
    handle = opened("tiny-ltx-video")
    s = settings_for(handle)
    attached = handle.with_plan(guard.plan_run(handle, sampling.run_shape(handle, s), "off", BIG))
    plan = sampling.plan_for_run(attached, s, services.standalone(), sampling.default_cache(), keyframes=2)
    assert plan.shape.keyframes == 2 and plan.policy == "off" and "with an end image" in plan.report
    assert "differ from what VRAMGuard planned" not in caplog.text


def test_the_node_takes_end_image_last_and_names_the_models_that_can():
    from i2v_nodes.nodes.sample import I2VSample

    optional = I2VSample.INPUT_TYPES()["optional"]
    assert list(optional) == ["options", "end_image"]  # appended: saved workflows keep their links
    kind, spec = optional["end_image"]
    assert kind == "IMAGE" and sampling.capable_models() in spec["tooltip"]
    for title in ("Wan 2.2 A14B", "Wan 2.1 FLF2V", "LTX-Video 0.9.5+", "LTX-2"):
        assert title in sampling.capable_models()
    for title in ("SVD", "I2VGen-XL", "AnimateDiff", "TI2V-5B", "0.9.1"):
        assert title not in sampling.capable_models()


def test_comfyuis_flf2v_files_are_the_flf2v_variant_and_run_as_its_folder(model_dirs, tmp_path, still_image,
                                                                        opened):
    """ComfyUI's wan2.1_flf2v_720p_14B files (header-only stand-ins of the published shapes) are Wan 2.1
    FLF2V; the tiny FLF2V's single files load and give the frames its folder gives."""
    from i2v_nodes.families.wan import stand_ins

    paths = stand_ins.write_template_files(tmp_path, "wan2.1-flf2v")
    assert paths["diffusion_model"].name == "wan2.1_flf2v_720p_14B_fp16.safetensors"
    published = models.handle_for_files(paths, device="cuda")
    assert published.variant == "wan2.1-flf2v"
    assert dict(published.configs)["transformer"]["pos_embed_seq_len"] == 514
    fp8 = paths["diffusion_model"].with_name("wan2.1_flf2v_720p_14B_fp8_e4m3fn.safetensors")
    stand_ins.transformer_file(fp8, stand_ins.PUBLISHED[stand_ins.FLF2V_HUB]["transformer"], "fp8_e4m3fn")
    assert models.handle_for_files({**paths, "diffusion_model": fp8}, device="cuda").variant == "wan2.1-flf2v"

    files = models.tiny_single_files("tiny-wan2.1-flf2v", tmp_path / "tiny", "fp32")
    from_files = models.open_files(files, models.LoadOptions(device="cpu"), CPU)
    folder = opened("tiny-wan2.1-flf2v")
    s, end = settings_for(folder), still_image.flip(2)
    ours = sampling.sample(from_files, still_image, s, services.standalone(), end_images=end).frames
    theirs = sampling.sample(folder, still_image, s, services.standalone(), end_images=end).frames
    assert torch.equal(ours, theirs)
