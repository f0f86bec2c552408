"""Encoding round trips through the bundled ffmpeg: frame counts, sizes, rates, colours, loops, metadata."""

from __future__ import annotations

import dataclasses
import json

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from i2v_nodes.runtime.output import ffmpeg_pipe, video
from i2v_nodes.runtime.output.video import (
    FORMATS,
    EncodeOptions,
    EncoderError,
    probe_video,
    read_video_metadata,
    save_clip,
)

ALL_FORMATS = list(FORMATS)


def solid(color: tuple[float, float, float], frames: int = 8, height: int = 48,
          width: int = 64) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.float32).expand(frames, height, width, 3).clone()


def left_red_right_blue(frames: int = 8, height: int = 48, width: int = 64) -> torch.Tensor:
    clip = torch.zeros(frames, height, width, 3)
    clip[:, :, : width // 2, 0] = 1.0
    clip[:, :, width // 2:, 2] = 1.0
    return clip


def decoded_frames(path) -> tuple[list[np.ndarray], tuple[int, int]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    header = next(reader)
    width, height = header["size"]
    frames = [np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3) for raw in reader]
    return frames, (width, height)


def tricky_metadata() -> dict[str, str]:
    """A > 200 KB workflow and a prompt full of ffmetadata specials, newlines and non-ASCII text."""
    nodes = [{"id": i, "widgets_values": [f"a=b;c#d\\e\nline {i} ünïcødé 漢字 🎞"]} for i in range(2500)]
    workflow = json.dumps({"nodes": nodes, "note": "x = 1; # not a comment \\ end"}, ensure_ascii=False)
    prompt = json.dumps({"3": {"inputs": {"text": "key=value;#hash\\back\nnew line ü"}}}, ensure_ascii=False,
                        indent=1)
    assert len(workflow.encode()) > 200_000 and "\n" in prompt
    return {"prompt": prompt, "workflow": workflow}


@pytest.mark.parametrize("format_key", ALL_FORMATS)
def test_every_format_round_trips_count_size_rate_and_colour(tmp_path, format_key):
    options = EncodeOptions(fps=12.0, format=format_key)
    saved = save_clip(left_red_right_blue(frames=8), tmp_path, "i2v/clip", options)

    assert saved.path.is_file() and saved.path.is_absolute()
    assert saved.path.suffix == "." + FORMATS[format_key].extension
    assert saved.path.parent == (tmp_path / "i2v").resolve()
    assert (saved.filename, saved.subfolder, saved.type) == (saved.path.name, "i2v", "output")
    assert saved.ui_entry() == {"filename": saved.filename, "subfolder": "i2v", "type": "output"}
    info = probe_video(saved.path)
    assert (info.frame_count, info.width, info.height) == (8, 64, 48) == (saved.frame_count, saved.width,
                                                                          saved.height)
    # GIF delays are whole centiseconds (1/12 s -> 0.08 s = 12.5 fps), WebP's whole milliseconds.
    assert info.fps == pytest.approx(12.0, rel=1e-6 if FORMATS[format_key].fps_exact else 0.05)
    frames, size = decoded_frames(saved.path)
    assert len(frames) == 8 and size == (64, 48)
    for frame in frames:
        left, right = frame[:, 8:24].reshape(-1, 3).mean(0), frame[:, 40:56].reshape(-1, 3).mean(0)
        assert left[0] > 200 and left[1] < 50 and left[2] < 50, left  # red stays red (channel order)
        assert right[2] > 200 and right[0] < 50 and right[1] < 50, right


@pytest.mark.parametrize("format_key", ["mp4-h264", "webm-vp9"])
def test_solid_colour_decodes_to_the_same_colour(tmp_path, format_key):
    color = (0.9, 0.35, 0.1)
    saved = save_clip(solid(color), tmp_path, "clip", EncodeOptions(fps=8, format=format_key, crf=10))
    frames, _ = decoded_frames(saved.path)
    mean = np.stack(frames).reshape(-1, 3).mean(0)
    assert np.abs(mean - np.array(color) * 255).max() < 6, mean


def test_odd_sizes_are_padded_for_h264_only(tmp_path):
    clip = solid((0.2, 0.6, 0.3), frames=5, height=49, width=65)
    mp4 = save_clip(clip, tmp_path, "odd", EncodeOptions(format="mp4-h264"))
    assert (mp4.width, mp4.height, mp4.padded) == (66, 50, True)
    info = probe_video(mp4.path)
    assert (info.width, info.height, info.frame_count) == (66, 50, 5)
    frames, _ = decoded_frames(mp4.path)
    # The padding repeats the edge pixels rather than adding a black border.
    assert frames[0][:, -1].mean() > 40 and frames[0][-1, :].mean() > 40
    for format_key in ("webm-vp9", "gif", "webp"):
        saved = save_clip(clip, tmp_path, "odd", EncodeOptions(format=format_key))
        assert (saved.width, saved.height, saved.padded) == (65, 49, False)
        assert (probe_video(saved.path).width, probe_video(saved.path).height) == (65, 49)


@pytest.mark.parametrize(("fps", "format_key"), [(7.5, "mp4-h264"), (29.97, "mp4-h264"), (7.5, "webm-vp9"),
                                                 (12.5, "webp")])
def test_float_fps_keeps_the_exact_frame_count(tmp_path, fps, format_key):
    options = EncodeOptions(fps=fps, format=format_key)
    saved = save_clip(solid((0.5, 0.5, 0.5), frames=11), tmp_path, "rate", options)
    info = probe_video(saved.path)
    assert info.frame_count == 11
    assert info.fps == pytest.approx(fps, rel=1e-3)


def test_pingpong_appends_the_reversed_frames_without_repeating_the_ends(tmp_path):
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    clip = torch.stack([torch.full((32, 32, 3), level) for level in levels])
    saved = save_clip(clip, tmp_path, "pp", EncodeOptions(format="mp4-h264", crf=5, pingpong=True))
    assert saved.frame_count == 8
    frames, _ = decoded_frames(saved.path)
    decoded_levels = [frame.mean() / 255 for frame in frames]
    expected = [0.0, 0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25]
    assert np.abs(np.array(decoded_levels) - np.array(expected)).max() < 0.05, decoded_levels
    assert video.frame_order(1, pingpong=True) == [0]
    assert video.frame_order(2, pingpong=True) == [0, 1]


@pytest.mark.parametrize("format_key", ["gif", "webp"])
@pytest.mark.parametrize("plays", [0, 1, 3])
def test_loop_count_is_written(tmp_path, format_key, plays):
    saved = save_clip(left_red_right_blue(frames=4), tmp_path, "loop",
                      EncodeOptions(format=format_key, loop_count=plays))
    assert probe_video(saved.path).loop_count == plays
    # Cross-check with Pillow's reader: GIF stores extra plays (none: no NETSCAPE block), WebP plays.
    with Image.open(saved.path) as image:
        if format_key == "webp":
            assert image.info["loop"] == plays
        elif plays == 1:
            assert "loop" not in image.info
        else:
            assert image.info["loop"] == (0 if plays == 0 else plays - 1)


@pytest.mark.parametrize("format_key", ALL_FORMATS)
def test_metadata_round_trips_long_and_special_json(tmp_path, format_key):
    metadata = tricky_metadata()
    saved = save_clip(left_red_right_blue(frames=3), tmp_path, "meta",
                      EncodeOptions(format=format_key, metadata=metadata))
    read = read_video_metadata(saved.path)
    assert read["prompt"] == metadata["prompt"]
    assert read["workflow"] == metadata["workflow"]
    assert json.loads(read["workflow"])["nodes"][7]["widgets_values"][0].startswith("a=b;c#d\\e\nline 7 ü")
    assert probe_video(saved.path).frame_count == 3  # the metadata did not break the file


def test_one_frame_webp_still_carries_metadata(tmp_path):
    saved = save_clip(solid((1, 0, 0), frames=1), tmp_path, "still",
                      EncodeOptions(format="webp", metadata={"prompt": "{}", "workflow": '{"a": 1}'}))
    assert read_video_metadata(saved.path) == {"prompt": "{}", "workflow": '{"a": 1}'}
    with Image.open(saved.path) as image:
        assert image.getexif()[0x010F] == 'workflow:{"a": 1}'


def test_no_metadata_writes_none(tmp_path):
    for format_key in ALL_FORMATS:
        saved = save_clip(solid((0, 0, 1), frames=2), tmp_path, "plain", EncodeOptions(format=format_key))
        read = read_video_metadata(saved.path)
        assert "prompt" not in read and "workflow" not in read


def test_half_precision_and_out_of_range_values_are_clamped(tmp_path):
    clip = solid((0.0, 0.0, 0.0), frames=3).to(torch.float16)
    clip[..., 0] = 3.0  # far above 1 -> 255
    clip[..., 1] = -2.0  # below 0 -> 0
    clip[..., 2] = float("nan")  # -> 0
    saved = save_clip(clip, tmp_path, "clamp", EncodeOptions(format="webm-vp9", crf=4))
    mean = np.stack(decoded_frames(saved.path)[0]).reshape(-1, 3).mean(0)
    assert mean[0] > 245 and mean[1] < 10 and mean[2] < 10, mean


def test_frame_conversion_rounds_and_clamps():
    convert = ffmpeg_pipe._FrameConverter(1, 4)
    frame = torch.tensor([[[float("nan"), -1.0, 2.0], [0.5, 0.498, 0.502], [1.0, 0.0, float("inf")],
                           [float("-inf"), 1 / 255, 254.4 / 255]]])
    assert list(bytes(convert(frame))) == [0, 0, 255, 128, 127, 128, 255, 0, 255, 0, 1, 254]


def test_ffmpeg_failure_raises_with_stderr_and_leaves_no_file(tmp_path, monkeypatch):
    broken = dataclasses.replace(video.FORMATS["mp4-h264"], codec_args=("-c:v", "no_such_encoder_i2v"))
    monkeypatch.setitem(video.FORMATS, "mp4-h264", broken)
    with pytest.raises(EncoderError, match="no_such_encoder_i2v"):
        save_clip(solid((1, 0, 0)), tmp_path, "sub/fail",
                  EncodeOptions(format="mp4-h264", metadata={"prompt": "{}"}))
    assert list((tmp_path / "sub").iterdir()) == []  # no output, no temporary, no ffmetadata file


def test_interrupt_mid_stream_leaves_no_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = ffmpeg_pipe._FrameConverter.__call__

    def interrupting(self, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # stands in for a host's cancel exception
        return original(self, frame)

    monkeypatch.setattr(ffmpeg_pipe._FrameConverter, "__call__", interrupting)
    for format_key in ("mp4-h264", "webp"):
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            save_clip(solid((0, 1, 0), frames=6), tmp_path, "cut", EncodeOptions(format=format_key))
    assert list(tmp_path.iterdir()) == []
