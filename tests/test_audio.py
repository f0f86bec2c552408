"""Sound: ComfyUI AUDIO checked and fitted to each clip, muxed by the bundled ffmpeg (AAC in mp4, Opus in
webm), left out of gif/webp with a note, and I2VSample's silent track for families without sound."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from i2v_nodes.errors import InputError
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime.output import audio, video, video_formats
from i2v_nodes.runtime.output.ffmpeg_pipe import EncoderError

ENCODE = NODE_CLASS_MAPPINGS["EncodeVideo"]


def tone(seconds: float, rate: int = 44100, channels: int = 2, batch: int = 1) -> dict:
    t = torch.arange(round(seconds * rate)) / rate
    wave = torch.stack([torch.sin(2 * math.pi * (220 + 110 * c) * t) * 0.3 for c in range(channels)])
    return {"waveform": wave.unsqueeze(0).repeat(batch, 1, 1), "sample_rate": rate}


def frames(count: int = 8, height: int = 32, width: int = 48) -> torch.Tensor:
    return torch.linspace(0, 1, count).view(count, 1, 1, 1).expand(count, height, width, 3).contiguous()


def probe_audio(path: Path) -> tuple[str, int, int, int] | None:
    """(codec, sample rate, channels, decoded samples) of the first audio stream, or None."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    info = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    match = re.search(r"Audio: (\w+).*?, (\d+) Hz, ([\w.() ]+?)[,\n]", info)
    if match is None:
        return None
    layout = match.group(3).strip()
    channels = {"mono": 1, "stereo": 2}.get(layout) or int(re.match(r"(\d+)", layout).group(1))
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    samples = len(np.frombuffer(raw, dtype="<f4")) // channels
    return match.group(1), int(match.group(2)), channels, samples


def encode(clip_frames, fmt="mp4-h264", sound=None, prefix="audio/clip", extra_pnginfo=None, **widgets):
    values = {
        "fps": 16.0,
        "format": fmt,
        "crf": 19,
        "filename_prefix": prefix,
        "loop_count": 0,
        "pingpong": False,
        "save_metadata": False,
        **widgets,
    }
    return ENCODE().encode(clip_frames, audio=sound, unique_id="7", extra_pnginfo=extra_pnginfo, **values)


# --- checking and fitting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        ("not audio", "expected ComfyUI's AUDIO"),
        ({"waveform": torch.zeros(1, 2, 0), "sample_rate": 44100}, "the audio is empty"),
        (
            {"waveform": torch.full((1, 1, 10), float("nan")), "sample_rate": 44100},
            "the audio holds NaN or infinite",
        ),
        ({"waveform": torch.zeros(1, 1, 10), "sample_rate": 0}, "sample rate must be a positive number"),
        ({"waveform": torch.zeros(1, 1, 10), "sample_rate": -8000}, "sample rate must be a positive number"),
        (
            {"waveform": torch.zeros(10), "sample_rate": 44100},
            r"expected a waveform \[batch, channels, samples\]",
        ),
    ],
)
def test_bad_audio_is_refused_naming_the_input(bad, message):
    with pytest.raises(InputError, match=rf"input 'audio': .*{message}"):
        audio.for_clips(bad, 1, 1.0)


def test_audio_is_cut_or_padded_to_the_clip_and_says_so():
    long, short, exact = (audio.for_clips(tone(s, rate=1000), 1, 0.5)[0] for s in (0.8, 0.2, 0.5))
    assert [a.waveform.shape[-1] for a in (long, short, exact)] == [500, 500, 500]
    assert (long.note, short.note, exact.note) == (
        "cut 0.30 s of audio",
        "padded the audio with 0.30 s of silence",
        "",
    )
    assert torch.equal(short.waveform[:, 200:], torch.zeros(2, 300))


def test_one_entry_for_all_clips_or_one_per_clip():
    batch = tone(0.5, rate=1000, batch=3)
    batch["waveform"][1] *= 0
    per_clip = audio.for_clips(batch, 3, 0.5)
    assert per_clip[1].waveform.abs().max() == 0 and per_clip[0].waveform.abs().max() > 0
    assert len(audio.for_clips(tone(0.5, rate=1000), 3, 0.5)) == 3
    with pytest.raises(InputError, match="the audio batch has 3 entries for 2 clips"):
        audio.for_clips(batch, 2, 0.5)


# --- muxing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, codec, rate, frame", [("mp4-h264", "aac", 44100, 1024), ("webm-vp9", "opus", 48000, 960)]
)
def test_the_video_gets_the_sound_for_exactly_its_duration(session_dirs, fmt, codec, rate, frame):
    out = encode(frames(8), fmt, tone(1.7), prefix=f"audio/{codec}")
    (path,) = [Path(p) for p in out["result"][0].splitlines()]
    found = probe_audio(path)
    assert found is not None and found[:3] == (codec, rate, 2)
    expected = 8 / 16 * rate  # 0.5 s of video
    assert abs(found[3] - expected) <= frame  # within one audio frame
    assert video.probe_video(path).frame_count == 8
    assert any("cut 1.20 s of audio" in text for text in out["ui"]["text"])


def test_sound_and_the_embedded_workflow_go_together(session_dirs):
    workflow = {"nodes": [{"id": 1, "type": "LoadAudio"}], "links": [], "version": 0.4}
    out = encode(frames(8), "mp4-h264", tone(0.5), prefix="audio/tagged", save_metadata=True,
                 extra_pnginfo={"workflow": workflow})
    (path,) = [Path(p) for p in out["result"][0].splitlines()]
    assert probe_audio(path)[0] == "aac"
    assert json.loads(video.read_video_metadata(path)["workflow"]) == workflow


def test_pingpong_lengthens_the_sound_with_the_video(session_dirs):
    out = encode(frames(8), "mp4-h264", tone(0.1, channels=1), prefix="audio/pingpong", pingpong=True)
    (path,) = [Path(p) for p in out["result"][0].splitlines()]
    assert abs(probe_audio(path)[3] - 14 / 16 * 44100) <= 1024  # 8 frames forward, 6 back
    assert "1 channel(s)" in out["ui"]["text"][0] and "padded" in out["ui"]["text"][0]


def test_more_than_two_channels_are_down_mixed_to_stereo(session_dirs):
    out = encode(frames(8), "mp4-h264", tone(0.5, channels=6), prefix="audio/surround")
    (path,) = [Path(p) for p in out["result"][0].splitlines()]
    assert probe_audio(path)[2] == 2
    assert "stereo (down-mixed)" in out["ui"]["text"][0]


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_formats_without_sound_leave_it_out_and_say_so(session_dirs, fmt):
    out = encode(frames(4), fmt, tone(0.5), prefix=f"audio/silent-{fmt}")
    (path,) = [Path(p) for p in out["result"][0].splitlines()]
    assert probe_audio(path) is None
    assert out["ui"]["text"] == [f"audio left out: {fmt} files have no sound"]


def test_one_file_per_clip_gets_that_clips_sound(session_dirs):
    sound = tone(0.5, batch=2)
    sound["waveform"][1] *= 0  # clip 2 is silent
    out = encode(frames(16), "mp4-h264", sound, prefix="audio/per-clip", frames_per_clip=8)
    paths = [Path(p) for p in out["result"][0].splitlines()]
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    loudness = []
    for path in paths:
        raw = subprocess.run(
            [ffmpeg, "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le", "-"],
            capture_output=True,
            check=True,
        ).stdout
        loudness.append(float(np.abs(np.frombuffer(raw, dtype="<f4")).max()))
    assert loudness[0] > 0.1 and loudness[1] < 1e-3


def test_a_failed_mux_leaves_no_file_and_names_the_audio_stream(session_dirs, monkeypatch):
    broken = dataclasses.replace(video_formats.FORMATS["mp4-h264"], audio_args=("-c:a", "no_such_codec"))
    monkeypatch.setitem(video_formats.FORMATS, "mp4-h264", broken)
    folder = session_dirs["output"] / "audio" / "broken"
    with pytest.raises(
        EncoderError, match=r"with its audio stream \(no_such_codec, 44100 Hz, 2 channel\(s\)\)"
    ):
        encode(frames(4), "mp4-h264", tone(0.5), prefix="audio/broken/clip")
    assert not folder.exists() or list(folder.iterdir()) == []


# --- I2VSample's sound ------------------------------------------------------------------------------


def test_a_family_without_sound_gives_silence_of_each_clips_length(
    tiny_handle, still_image, small_settings, session_dirs
):
    from i2v_nodes.runtime import sampling, services

    settings = dataclasses.replace(small_settings, batch_size=2)
    result = sampling.sample(tiny_handle, still_image, settings, services.standalone())
    samples = round(settings.num_frames / settings.target_fps * audio.SILENCE_RATE)
    assert result.audio["sample_rate"] == audio.SILENCE_RATE
    assert result.audio["waveform"].shape == (2, 1, samples) and result.audio["waveform"].abs().max() == 0
    out = encode(
        result.frames,
        "mp4-h264",
        result.audio,
        prefix="audio/silent-track",
        fps=float(result.fps),
        frames_per_clip=result.frames_per_clip,
    )
    for path in out["result"][0].splitlines():
        codec, rate, channels, decoded = probe_audio(Path(path))
        assert (codec, channels) == ("aac", 1) and abs(decoded - samples) <= 1024
