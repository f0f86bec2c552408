"""The four nodes as ComfyUI sees them: the V1 contract, the whole graph, and error messages."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import i2v_nodes
from i2v_nodes.errors import InputError, MemoryGuardError, ModelError
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import memory, sampling
from i2v_nodes.runtime.memory import devices
from i2v_nodes.runtime.output import video

REPO = Path(__file__).resolve().parents[1]
EXPECTED_ORDER = {
    "LoadI2VModel": ["model", "precision", "vae_precision", "device", "offload", "allow_download"],
    "VRAMGuard": ["model", "width", "height", "num_frames", "batch_size", "policy", "headroom"],
    "I2VSample": ["model", "image", "prompt", "negative_prompt", "width", "height", "num_frames", "steps",
                  "guidance_scale", "seed", "batch_size", "target_fps", "decode_chunk_size"],
    "EncodeVideo": ["frames", "fps", "format", "crf", "filename_prefix", "loop_count", "pingpong",
                    "save_metadata"],
    "LoadI2VModelFiles": ["diffusion_model", "diffusion_model_2", "text_encoder", "vae", "clip_vision",
                          "precision", "vae_precision", "device", "offload", "allow_download"],
}
# optional inputs appended since the first release; saved workflows keep working without them
EXPECTED_OPTIONAL = {"LoadI2VModel": ["weights"], "VRAMGuard": [], "I2VSample": ["options", "end_image"],
                     "EncodeVideo": ["frames_per_clip", "audio"],
                     "LoadI2VModelFiles": ["weights"]}


def node(name):
    return NODE_CLASS_MAPPINGS[name]()


def load_tiny(unique_id=None):
    (model,) = node("LoadI2VModel").load("tiny-i2vgen-xl", "auto", "auto", "auto", "none", False,
                                         unique_id=unique_id)
    return model


# --- the V1 contract ---------------------------------------------------------------------------


def test_mappings_and_input_order_are_the_public_api(session_dirs):
    assert list(NODE_CLASS_MAPPINGS)[:5] == list(EXPECTED_ORDER)
    for name, order in EXPECTED_ORDER.items():
        assert list(NODE_CLASS_MAPPINGS[name].INPUT_TYPES()["required"]) == order, name
        optional = list(NODE_CLASS_MAPPINGS[name].INPUT_TYPES().get("optional", {}))
        assert optional == EXPECTED_OPTIONAL[name], name
    assert NODE_CLASS_MAPPINGS["I2VSample"].RETURN_NAMES == ("frames", "fps", "frames_per_clip", "audio")
    assert NODE_CLASS_MAPPINGS["VRAMGuard"].RETURN_TYPES[0] == "I2V_MODEL"


def test_every_node_documents_itself(session_dirs):
    for name, cls in NODE_CLASS_MAPPINGS.items():
        assert cls.CATEGORY == "i2v" and len(cls.DESCRIPTION) > 80, name
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS), name
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, (kind, options) in spec.get(section, {}).items():
                assert len(options.get("tooltip", "")) > 20, f"{name}.{input_name} needs a real tooltip"
                builtin = ("INT", "FLOAT", "STRING", "BOOLEAN", "IMAGE", "AUDIO")  # ComfyUI's own types
                if isinstance(kind, str) and kind.isupper() and kind not in builtin:
                    assert kind.startswith("I2V_"), f"custom type {kind} must be namespaced"
    assert NODE_CLASS_MAPPINGS["I2VSample"].INPUT_TYPES()["required"]["seed"][1]["control_after_generate"]
    assert NODE_CLASS_MAPPINGS["EncodeVideo"].OUTPUT_NODE is True


def test_repo_root_package_shares_one_copy_of_the_pack():
    """ComfyUI imports the clone under its folder name; it must reuse the same i2v_nodes module."""
    spec = importlib.util.spec_from_file_location("custom_nodes.i2v_repo", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    assert module.NODE_CLASS_MAPPINGS is i2v_nodes.NODE_CLASS_MAPPINGS


# --- the whole graph ---------------------------------------------------------------------------


def run_graph(still_image, *, batch=1, seed=5, fmt="mp4-h264", prefix="graph/clip", width=64, height=48):
    model = load_tiny(unique_id="1")
    guarded, w, h, frames, batch_size, report = node("VRAMGuard").guard(
        model, width, height, 8, batch, "error", 0.10, unique_id="2")
    images, fps, per_clip, _audio = node("I2VSample").sample(
        guarded, still_image, "a dog running", "blurry", w, h, frames, 2, 9.0, seed, batch_size, 8, 0,
        unique_id="3")
    workflow = {"nodes": [{"id": 1, "type": "LoadI2VModel"}], "links": [], "version": 0.4}
    prompt = {"4": {"class_type": "EncodeVideo", "inputs": {"fps": 8.0}}}
    out = node("EncodeVideo").encode(images, fps, fmt, 19, prefix, 0, False, True, frames_per_clip=per_clip,
                                     prompt=prompt, extra_pnginfo={"workflow": workflow}, unique_id="4")
    return images, out, report, prompt, workflow


def test_graph_writes_a_playable_mp4(session_dirs, still_image):
    images, out, report, prompt, workflow = run_graph(still_image)
    assert images.shape == (8, 48, 64, 3)
    assert "fits" in report
    paths = out["result"][0].splitlines()
    assert len(paths) == 1 and paths[0].endswith("_.mp4")
    path = Path(paths[0])
    assert path.is_file() and path.resolve().is_relative_to(session_dirs["output"].resolve())
    info = video.probe_video(path)
    assert (info.frame_count, info.width, info.height) == (8, 64, 48)
    assert info.fps == pytest.approx(8.0)
    meta = video.read_video_metadata(path)
    assert json.loads(meta["prompt"]) == prompt and json.loads(meta["workflow"]) == workflow
    entry = out["ui"]["images"][0]
    assert entry == {"filename": path.name, "subfolder": "graph", "type": "output"}
    assert list(out["ui"]["animated"]) == [True]


def test_graph_batch_writes_one_file_per_clip_and_never_overwrites(session_dirs, still_image):
    _, first, *_ = run_graph(still_image, batch=2, prefix="batch/clip")
    _, second, *_ = run_graph(still_image, batch=1, prefix="batch/clip", fmt="webm-vp9")
    names = [Path(p).name for p in first["result"][0].splitlines() + second["result"][0].splitlines()]
    assert names == ["clip_00001_.mp4", "clip_00002_.mp4", "clip_00003_.webm"]
    for path in first["result"][0].splitlines():
        assert video.probe_video(path).frame_count == 8


def test_graph_loads_the_model_once(session_dirs, still_image):
    run_graph(still_image, seed=1)
    loads = sampling.default_cache().loads
    for seed in (2, 3):
        run_graph(still_image, seed=seed)
    assert sampling.default_cache().loads == loads


# --- errors name the node, the class and the input ---------------------------------------------


def test_sample_refuses_a_size_that_is_not_a_multiple_of_8(session_dirs, still_image):
    model = load_tiny()
    with pytest.raises(InputError, match=r"^I2VSample \(node 7\): input 'width': must be a multiple of 8 for "
                                         r"this model \(i2vgen-xl\), got 60; nearest valid: 56 or 64$"):
        node("I2VSample").sample(model, still_image, "", "", 60, 64, 8, 2, 9.0, 0, 1, 8, 0, unique_id="7")


def test_loader_names_an_unknown_model(session_dirs):
    with pytest.raises(InputError, match=r"^LoadI2VModel \(node 1\): input 'model': unknown model 'nope'"):
        node("LoadI2VModel").load("nope", "auto", "auto", "auto", "none", False, unique_id="1")


def test_guard_error_fails_fast_with_advice_and_loads_nothing(session_dirs, monkeypatch):
    model = load_tiny()
    loads = sampling.default_cache().loads
    asked_options = memory.default_options(model, memory.RunShape(512, 512, 16))
    enough_for_four = memory.estimate(model, memory.RunShape(512, 512, 4), asked_options).peak
    monkeypatch.setattr(devices, "free_bytes", lambda device: enough_for_four)
    monkeypatch.setattr(devices, "process_resident_bytes", lambda: 0)  # no runtime credit: exact budget
    with pytest.raises(MemoryGuardError) as caught:
        node("VRAMGuard").guard(model, 512, 512, 16, 1, "error", 0.0, unique_id="2")
    message = str(caught.value)
    assert message.startswith("VRAMGuard (node 2): VRAMGuard [error]") and "DOES NOT FIT" in message
    fitting = int(message.split("What would fit:\n- ")[1].split(" frames fit at 512x512")[0])
    assert 4 <= fitting < 16
    assert "fits with 16 frames" in message
    assert sampling.default_cache().loads == loads


def test_sample_rechecks_memory_when_the_guard_output_is_stale(session_dirs, still_image, monkeypatch):
    model = load_tiny()
    guarded, *_ = node("VRAMGuard").guard(model, 64, 64, 8, 1, "error", 0.0)
    monkeypatch.setattr(devices, "free_bytes", lambda device: 1024)  # memory was taken meanwhile
    with pytest.raises(MemoryGuardError, match="free memory dropped since VRAMGuard planned"):
        node("I2VSample").sample(guarded, still_image, "", "", 64, 64, 8, 2, 9.0, 0, 1, 8, 0)


@pytest.mark.parametrize("change, message", [
    ({"fps": 0.0}, r"EncodeVideo \(node 9\): input 'fps'"),
    ({"fps": -8.0}, r"EncodeVideo \(node 9\): input 'fps'"),
    ({"frames": torch.zeros(0, 8, 8, 3)}, r"EncodeVideo \(node 9\): input 'frames'"),
    ({"filename_prefix": "../escape/clip"}, r"EncodeVideo \(node 9\): input 'filename_prefix'"),
    ({"filename_prefix": "/tmp/abs/clip"}, r"EncodeVideo \(node 9\): input 'filename_prefix'"),
    ({"crf": 60}, r"EncodeVideo \(node 9\): input 'crf'"),
    ({"frames_per_clip": 3}, r"EncodeVideo \(node 9\): input 'frames_per_clip'"),
])
def test_encoder_bad_input_writes_nothing(session_dirs, change, message):
    before = sorted(session_dirs["output"].rglob("*"))
    args = {"frames": torch.rand(8, 16, 16, 3), "fps": 8.0, "format": "mp4-h264", "crf": 19,
            "filename_prefix": "bad/clip", "loop_count": 0, "pingpong": False, "save_metadata": True,
            "frames_per_clip": 0, **change}
    with pytest.raises(InputError, match=message):
        node("EncodeVideo").encode(**args, unique_id="9")
    assert sorted(session_dirs["output"].rglob("*")) == before
    assert not (session_dirs["output"].parent / "escape").exists()


def test_model_errors_reach_the_user_as_errors_of_the_model_input(session_dirs, tmp_path, monkeypatch):
    """A model that cannot be used is a bad value of the 'model' input (named, with the node), and the
    underlying ModelError stays attached as the cause."""
    from i2v_nodes import host

    (tmp_path / "i2v" / "empty").mkdir(parents=True)
    monkeypatch.setattr(host, "model_dirs", lambda: [tmp_path / "i2v"])
    expected = r"LoadI2VModel \(node 4\): input 'model': .*no model_index.json"
    with pytest.raises(InputError, match=expected) as caught:
        node("LoadI2VModel").load("empty", "auto", "auto", "auto", "none", False, unique_id="4")
    assert isinstance(caught.value.__cause__, ModelError)
    assert caught.value.input_name == "model"


def test_node_reference_documents_every_node_and_input(session_dirs):
    reference = (REPO / "docs" / "nodes.md").read_text(encoding="utf-8")
    for name, cls in NODE_CLASS_MAPPINGS.items():
        section = reference[reference.index(f"\n## {name}"):]
        section = section[:section.find("\n## ", 4) if "\n## " in section[4:] else len(section)]
        spec = cls.INPUT_TYPES()
        for input_name in [*spec["required"], *spec.get("optional", {})]:
            assert f"`{input_name}`" in section, f"docs/nodes.md: {name} does not mention {input_name}"


def test_guidance_off_reuses_the_guards_plan_without_a_false_warning(session_dirs, still_image, caplog):
    """VRAMGuard plans with CFG on; a run with guidance 1 needs less, so the plan still holds."""
    model = load_tiny()
    guarded, *_ = node("VRAMGuard").guard(model, 64, 64, 8, 1, "error", 0.10)
    with caplog.at_level("WARNING"):
        frames, *_ = node("I2VSample").sample(guarded, still_image, "x", "", 64, 64, 8, 2, 1.0, 0, 1, 8, 0)
    assert frames.shape == (8, 64, 64, 3)
    assert "differ from what VRAMGuard planned" not in caplog.text
    with caplog.at_level("WARNING"):
        node("I2VSample").sample(guarded, still_image, "x", "", 64, 64, 16, 2, 9.0, 0, 1, 8, 0)
    assert "differ from what VRAMGuard planned" in caplog.text  # a real difference is still reported
