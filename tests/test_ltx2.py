"""LTX-2 specifics beyond the family contract: its sound, its options, folder recognition, the offline
Gemma prompt path, and the published model's plan."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pytest
import torch

from host_stub import Host
from i2v_nodes import cli
from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.families.ltx2 import family as ltx2
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.output import audio, video
from tests.test_audio import probe_audio

CPU = torch.device("cpu")
FAMILY = registry.get("ltx2")


@pytest.fixture(scope="module")
def tiny_ltx2(model_dirs):
    return models.open_model("tiny-ltx2", models.LoadOptions(), model_dirs, CPU)


@pytest.fixture(scope="module")
def stock(tiny_ltx2):
    pipe = FAMILY.pipeline_class().from_pretrained(tiny_ltx2.source, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def settings(**changes) -> sampling.SampleSettings:
    base = sampling.SampleSettings(prompt="a cat walking on the beach", negative_prompt="blurry", width=64,
                                   height=64, num_frames=17, steps=2, guidance_scale=3.0, seed=5,
                                   batch_size=1, target_fps=8)
    return sampling.SampleSettings(**{**base.__dict__, **changes})


def run(handle, image, s):
    return sampling.sample(handle, image, s, services.standalone())


def ltx2_options(**values):
    widgets = {name: spec["default"] for name, (_kind, spec) in FAMILY.spec.option_inputs.items()}
    (options,) = NODE_CLASS_MAPPINGS["LTX2Options"]().build(**{**widgets, **values})
    return options


def test_i2vsample_gives_the_models_sound_fitted_to_each_clip(tiny_ltx2, stock, still_image):
    s = settings()
    frames, fps, per_clip, sound = NODE_CLASS_MAPPINGS["I2VSample"]().sample(
        tiny_ltx2, still_image, s.prompt, s.negative_prompt, s.width, s.height, s.num_frames, s.steps,
        s.guidance_scale, s.seed, 2, s.target_fps, 0)
    seconds = s.num_frames / s.target_fps
    rate = stock.vocoder.config.output_sampling_rate
    assert (fps, per_clip, sound["sample_rate"]) == (8.0, 17, rate)
    assert sound["waveform"].shape == (2, 2, round(seconds * rate))  # two clips, stereo
    assert sound["waveform"].abs().amax(dim=(1, 2)).min() > 1e-3  # not silence
    for clip, seed in enumerate((s.seed, s.seed + 1)):
        reference = sampling.stock_reference(tiny_ltx2, stock, still_image, settings(seed=seed))
        expected = audio.for_clips(reference.audio, 1, seconds)[0]
        assert expected.sample_rate == rate
        assert torch.equal(sound["waveform"][clip], expected.waveform), f"clip {clip}"
        assert torch.equal(frames[clip * 17:(clip + 1) * 17], reference.frames), f"clip {clip}"


def test_options_reach_the_pipeline_exactly_as_in_a_stock_call(tiny_ltx2, stock, still_image):
    options = ltx2_options(audio_guidance_scale=2.0, guidance_rescale=-1.0, stg_scale=1.0, stg_block=1,
                           modality_scale=3.0, decode_timestep=0.05, decode_noise_scale=0.025, image_crf=-1)
    s = settings(options=options)
    ours = run(tiny_ltx2, still_image, s)
    calls = []
    hook = stock.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        reference = sampling.stock_reference(tiny_ltx2, stock, still_image, s)
    finally:
        hook.remove()
    assert len(calls) == 3 * s.steps  # CFG (both halves in one call), STG and modality isolation
    assert torch.equal(ours.frames, reference.frames)  # decode noise from the same generator
    expected = audio.for_clips(reference.audio, 1, s.num_frames / s.target_fps)[0]
    assert torch.equal(ours.audio["waveform"][0], expected.waveform)
    plain = run(tiny_ltx2, still_image, settings())
    assert not torch.equal(plain.frames, ours.frames)
    assert not torch.equal(plain.audio["waveform"], ours.audio["waveform"])


def test_bad_options_are_refused_naming_them(tiny_ltx2, still_image, fresh_cache):
    with pytest.raises(InputError, match=r"input 'stg_block': expected a whole number from 0 to 47, got 2.5"):
        ltx2_options(stg_block=2.5)
    with pytest.raises(InputError, match=r"input 'decode_timestep': expected a number from 0.0 to 1.0"):
        ltx2_options(decode_timestep=1.5)
    with pytest.raises(InputError, match=r"input 'options': stg_block 5 does not exist: .* blocks 0 to 1"):
        sampling.sample(tiny_ltx2, still_image, settings(options=ltx2_options(stg_scale=1.0, stg_block=5)),
                        services.standalone(), cache=fresh_cache)
    (wan,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0,
                                                       flow_shift=3.0)
    with pytest.raises(InputError, match="input 'options': WanOptions holds settings for wan models"):
        run(tiny_ltx2, still_image, settings(options=wan))
    no_timestep_vae = types.SimpleNamespace(
        vae=types.SimpleNamespace(config=types.SimpleNamespace(timestep_conditioning=False)),
        transformer=types.SimpleNamespace(config=types.SimpleNamespace(num_layers=48)))
    with pytest.raises(InputError, match="input 'options': decode_timestep and decode_noise_scale need"):
        ltx2._check_for_model(no_timestep_vae, ltx2.LTX2Settings(decode_timestep=0.05))
    if not ltx2._have_pyav():
        with pytest.raises(InputError, match="input 'options': image_crf 20 .* PyAV"):
            FAMILY.check_options("ltx2", ltx2.LTX2Settings(image_crf=20))
    assert fresh_cache.loads == 1  # refused before any step


def test_folders_are_recognised_by_their_pipeline_class(tiny_ltx2, tmp_path):
    source = Path(tiny_ltx2.source)
    index = json.loads((source / "model_index.json").read_text())
    assert index["_class_name"] == "LTX2ImageToVideoPipeline"
    configs = models.describe_folder(source).configs
    for name in ("LTX2ImageToVideoPipeline", "LTX2Pipeline"):  # the hub repo is saved as LTX2Pipeline
        assert registry.identify({**index, "_class_name": name}, configs) == (FAMILY, "ltx2")
    later = {  # LTX-2.3 / 2.5 layouts: other recipes, not taken for LTX-2
        "gated attention": {**configs, "transformer": {**configs["transformer"], "gated_attn": True}},
        "bandwidth-extending vocoder": {**configs, "vocoder": {"_class_name": "LTX2VocoderWithBWE"}},
        "Gemma 4": {**configs, "text_encoder": {"model_type": "gemma4_unified"}},
    }
    for what, changed in later.items():
        assert FAMILY.variant_of(index, changed) is None, what
    assert FAMILY.variant_of({**index, "duration_head": ["diffusers", "LTX2DurationHead"]}, configs) is None
    # a folder saved as LTX2Pipeline loads with the image-to-video class
    folder = tmp_path / "ltx2-t2v-layout"
    folder.mkdir()
    for component in index:
        if not component.startswith("_"):
            (folder / component).symlink_to(source / component)
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "LTX2Pipeline"}))
    found = models.describe_folder(folder)
    assert (found.family.name, found.variant) == ("ltx2", "ltx2")
    assert {name for name, count in found.params if count > 0} == set(FAMILY.roles("ltx2").weighted)
    pipe = FAMILY.pipeline_class().from_pretrained(folder, local_files_only=True)
    assert type(pipe).__name__ == "LTX2ImageToVideoPipeline"


def test_the_gemma_prompt_path_runs_offline_with_left_padding(stock):
    encoding = FAMILY.encode_prompt(stock, "a cat walking", CPU)
    text = stock.text_encoder.config.text_config
    assert encoding.embeds.shape == (1, ltx2.TEXT_TOKENS, text.hidden_size * (text.num_hidden_layers + 1))
    embeds, same_mask = encoding.embeds, encoding.mask
    assert same_mask.sum() == 4 and same_mask[0, -4:].all()  # <bos> a ▁cat ▁walking, padded on the left
    reference, reference_mask, _, _ = stock.encode_prompt("a cat walking", do_classifier_free_guidance=False,
                                                          max_sequence_length=ltx2.TEXT_TOKENS, device=CPU)
    assert torch.equal(embeds, reference) and torch.equal(same_mask, reference_mask)


def test_the_published_model_is_planned_from_its_configs(capsys):
    handle = models.describe_published("Lightricks/LTX-2")
    params = dict(handle.params)
    assert 18.5e9 < params["transformer"] < 19.5e9  # 19B: the video and the audio stream
    assert 11.5e9 < params["text_encoder"] < 12.5e9  # Gemma 3 12B (with its vision tower)
    assert params["connectors"] > 1e9 and params["audio_vae"] > 0 and params["vocoder"] > 0
    shape = memory.RunShape(768, 512, 121)
    options = memory.MemoryOptions(offload="model")
    phases = memory.estimate_phases(handle, shape, options)
    weights, resident = memory.weight_bytes(handle), memory.resident_weights(handle, "model")
    assert all(peak > 0 for peak in phases.values())
    assert resident["encode"] == weights["text_encoder"] < phases["encode"]  # Gemma is the encode phase
    assert resident["decode"] == max(weights["vae"], weights["audio_vae"], weights["vocoder"])
    assert cli.main(["plan", "Lightricks/LTX-2", "--width", "768", "--height", "512", "--frames", "121",
                     "--offload", "model", "--vram", "48", "--ram", "128", "--no-search"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "Lightricks/LTX-2 (ltx2), bf16" in out and "device per phase: encode" in out
    assert "verdict: fits as asked" in out


def test_the_whole_graph_runs_in_the_stub_with_sound_of_the_videos_length(session_dirs):
    """The LTX tier graph on tiny-ltx2 with I2VSample's audio linked into EncodeVideo: an mp4 of the
    asked frames and size whose AAC track lasts the video's duration within one audio frame."""
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "examples" / "i2v-example.png", session_dirs["input"])
    folders = {f"{name}_dir": str(session_dirs[name]) for name in ("input", "output", "models")}
    host = Host(packs=[str(repo)], **folders)
    prompt = host.convert(json.loads((repo / "workflows" / "ltx-video-24gb.json").read_text()))
    options = next(k for k, v in prompt.items() if v["class_type"] == "LTXVideoOptions")
    del prompt[options]
    sample = next(k for k, v in prompt.items() if v["class_type"] == "I2VSample")
    encode = next(k for k, v in prompt.items() if v["class_type"] == "EncodeVideo")
    prompt[sample]["inputs"].pop("options")
    prompt[encode]["inputs"]["audio"] = [sample, 3]
    overrides = ["LoadI2VModel.model=tiny-ltx2", "LoadI2VModel.offload=none", "LoadI2VModel.weights=default",
                 "VRAMGuard.width=64", "VRAMGuard.height=64", "VRAMGuard.num_frames=17", "I2VSample.steps=2",
                 "EncodeVideo.filename_prefix=ltx2/stub"]
    result = host.run(prompt, overrides=overrides)
    assert result.status == "success", result.error
    (path,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
    info = video.probe_video(path)
    assert (info.frame_count, info.width, info.height) == (17, 64, 64)
    codec, rate, channels, samples = probe_audio(path)
    assert codec == "aac" and channels == 2
    assert abs(samples / rate - 17 / info.fps) <= 1024 / rate  # within one AAC frame
