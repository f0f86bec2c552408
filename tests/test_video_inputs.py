"""Bad inputs name the input; output naming never overwrites and never leaves the output root."""

from __future__ import annotations

import errno
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from i2v_nodes.errors import InputError
from i2v_nodes.runtime.output import output_paths
from i2v_nodes.runtime.output.video import (
    FORMATS,
    EncodeOptions,
    default_crf,
    probe_video,
    save_clip,
    split_clips,
)
from i2v_nodes.runtime.output.video_metadata import ffmetadata_escape, ffmetadata_text, parse_ffmetadata


def clip(frames: int = 3, height: int = 16, width: int = 16) -> torch.Tensor:
    return torch.rand(frames, height, width, 3)


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ---------------------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("fps", [0, -1.0, float("nan"), float("inf"), 1e-9, "8", True, None])
def test_bad_fps(fps):
    with pytest.raises(InputError) as caught:
        EncodeOptions(fps=fps)
    assert caught.value.input_name == "fps"


@pytest.mark.parametrize("format_key", ["mp4", "h264", "MP4-H264", "", None])
def test_bad_format(format_key):
    with pytest.raises(InputError) as caught:
        EncodeOptions(format=format_key)
    assert caught.value.input_name == "format"
    assert "mp4-h264" in caught.value.detail  # says what was expected


@pytest.mark.parametrize(("format_key", "crf"), [("mp4-h264", 52), ("mp4-h264", -1), ("webm-vp9", 64),
                                                 ("webp", 101), ("webp", -1), ("mp4-h264", 20.5),
                                                 ("mp4-h264", True)])
def test_crf_out_of_range(format_key, crf):
    with pytest.raises(InputError) as caught:
        EncodeOptions(format=format_key, crf=crf)
    assert caught.value.input_name == "crf"


def test_crf_limits_and_defaults_per_format():
    for format_key, spec in FORMATS.items():
        assert default_crf(format_key) == spec.default_crf
        if spec.crf_range is None:
            assert EncodeOptions(format=format_key, crf=99).effective_crf is None  # no quality knob
            continue
        low, high = spec.crf_range
        assert low <= spec.default_crf <= high
        assert EncodeOptions(format=format_key, crf=low).effective_crf == low
        assert EncodeOptions(format=format_key, crf=high).effective_crf == high
        assert EncodeOptions(format=format_key).effective_crf == spec.default_crf


@pytest.mark.parametrize(("field", "value"), [("loop_count", -1), ("loop_count", 70000), ("loop_count", 1.5),
                                              ("pingpong", "yes"), ("metadata", {"prompt": 3}),
                                              ("metadata", {"bad key": "x"}), ("metadata", {"a:b": "x"}),
                                              ("metadata", {"prompt": "nul\0"}), ("metadata", ["prompt"]),
                                              ("metadata", {"Prompt": "a", "prompt": "b"})])
def test_bad_options_name_their_field(field, value):
    with pytest.raises(InputError) as caught:
        EncodeOptions(**{field: value})
    assert caught.value.input_name == field


@pytest.mark.parametrize("frames", [
    torch.zeros(0, 16, 16, 3),  # empty batch
    torch.zeros(16, 16, 3),  # no batch dimension
    torch.zeros(2, 16, 16, 4),  # RGBA
    torch.zeros(2, 3, 16, 16),  # channels first
    torch.zeros(2, 0, 16, 3),  # no pixels
    torch.zeros(2, 16, 16, 3, dtype=torch.uint8),  # not float 0..1
    [[0.0]],  # not a tensor
])
def test_bad_frames(tmp_path, frames):
    with pytest.raises(InputError) as caught:
        save_clip(frames, tmp_path, "clip", EncodeOptions())
    assert caught.value.input_name == "frames"
    assert files_under(tmp_path) == []


def test_frames_larger_than_the_format_allows(tmp_path):
    wide = torch.zeros(1, 1, 16384, 3).expand(1, 2, 16384, 3)  # a view: no big allocation
    with pytest.raises(InputError) as caught:
        save_clip(wide, tmp_path, "clip", EncodeOptions(format="webp"))
    assert caught.value.input_name == "frames" and "16383" in caught.value.detail


def test_split_clips():
    batch = torch.arange(12, dtype=torch.float32).view(12, 1, 1, 1).expand(12, 2, 2, 3)
    clips = split_clips(batch, 4)
    assert [c.shape[0] for c in clips] == [4, 4, 4]
    assert [c[:, 0, 0, 0].tolist() for c in clips] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert len(split_clips(batch, 0)) == 1 and split_clips(batch, None)[0].shape[0] == 12
    assert len(split_clips(batch, 12)) == 1


@pytest.mark.parametrize("frames_per_clip", [5, 7, -4, 2.0, True])
def test_split_clips_bad_frames_per_clip(frames_per_clip):
    with pytest.raises(InputError) as caught:
        split_clips(clip(frames=12), frames_per_clip)
    assert caught.value.input_name == "frames_per_clip"


def test_split_clips_bad_frames():
    with pytest.raises(InputError) as caught:
        split_clips(torch.zeros(0, 4, 4, 3), 2)
    assert caught.value.input_name == "frames"


# ---------------------------------------------------------------------------------------------- prefixes


@pytest.mark.parametrize("prefix", ["..", "../escape", "a/../../escape", "a/../..", "/tmp/i2v_abs", "\\abs",
                                    "C:/windows", "C:clip", "..\\escape", "\\\\server\\share\\clip", "", "  ",
                                    "a/.hidden", "nul\0byte", "./", "a/CON"])
def test_prefix_escaping_or_invalid_is_refused(tmp_path, prefix):
    root = tmp_path / "output"
    with pytest.raises(InputError) as caught:
        save_clip(clip(), root, prefix, EncodeOptions(format="gif"))
    assert caught.value.input_name == "filename_prefix"
    assert files_under(tmp_path) == ([] if not root.exists() else ["output"])


def test_prefix_through_a_symlink_out_of_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "output", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    for prefix in ("link/clip", "link/deeper/clip"):
        with pytest.raises(InputError) as caught:
            save_clip(clip(), root, prefix, EncodeOptions(format="gif"))
        assert caught.value.input_name == "filename_prefix"
    assert list(outside.iterdir()) == []  # not even a folder was made there


def test_symlink_staying_inside_the_root_is_allowed(tmp_path):
    root = tmp_path / "output"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    saved = save_clip(clip(), root, "alias/clip", EncodeOptions(format="gif"))
    assert saved.path == (root / "real" / "clip_00001_.gif").resolve()


def test_root_may_itself_be_a_symlink(tmp_path):
    (tmp_path / "real_root").mkdir()
    (tmp_path / "root_link").symlink_to(tmp_path / "real_root", target_is_directory=True)
    saved = save_clip(clip(), tmp_path / "root_link", "a/b/clip", EncodeOptions(format="gif"))
    assert saved.subfolder == "a/b"
    assert saved.path == (tmp_path / "real_root" / "a" / "b" / "clip_00001_.gif").resolve()


# ---------------------------------------------------------------------------------------------- naming


def test_counters_follow_comfyui_and_never_overwrite(tmp_path):
    first = save_clip(clip(), tmp_path, "i2v/clip", EncodeOptions(format="gif"))
    second = save_clip(clip(), tmp_path, "i2v/clip", EncodeOptions(format="webp"))
    assert (first.filename, second.filename) == ("clip_00001_.gif", "clip_00002_.webp")
    # A higher counter already used by any file of that name is respected; other names are not counted.
    (tmp_path / "i2v" / "clip_00041_.png").write_bytes(b"keep me")
    (tmp_path / "i2v" / "clipper_00090_.gif").write_bytes(b"other name")
    third = save_clip(clip(), tmp_path, "i2v/clip", EncodeOptions(format="gif"))
    assert third.filename == "clip_00042_.gif"
    assert (tmp_path / "i2v" / "clip_00041_.png").read_bytes() == b"keep me"
    assert probe_video(first.path).frame_count == 3  # the first file is intact


def test_a_name_taken_during_encoding_is_skipped_not_overwritten(tmp_path, monkeypatch):
    # Another writer publishes clip_00001_ after we computed our counter: we must bump, not clobber.
    (tmp_path / "clip_00001_.gif").write_bytes(b"someone else's")
    monkeypatch.setattr(output_paths, "next_counter", lambda target: 1)
    saved = save_clip(clip(), tmp_path, "clip", EncodeOptions(format="gif"))
    assert saved.filename == "clip_00002_.gif"
    assert (tmp_path / "clip_00001_.gif").read_bytes() == b"someone else's"
    assert files_under(tmp_path) == ["clip_00001_.gif", "clip_00002_.gif"]  # no temporaries left


def test_publish_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "hard links not supported here")

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(output_paths, "next_counter", lambda target: 1)
    (tmp_path / "clip_00001_.gif").write_bytes(b"first")
    saved = save_clip(clip(), tmp_path, "clip", EncodeOptions(format="gif"))
    assert saved.filename == "clip_00002_.gif"
    assert (tmp_path / "clip_00001_.gif").read_bytes() == b"first"
    assert files_under(tmp_path) == ["clip_00001_.gif", "clip_00002_.gif"]


# ---------------------------------------------------------------------------------------------- ffmetadata


def test_ffmetadata_escaping_round_trips():
    values = {"prompt": "a=b;c#d\\e\nf", "workflow": "\\\\==;;##\n\n", "plain": "", "uni": "漢字 ü 🎞"}
    text = ffmetadata_text(values)
    assert text.startswith(";FFMETADATA1\n")
    assert ffmetadata_escape("a=b;#\\\n") == "a\\=b\\;\\#\\\\\\\n"
    assert parse_ffmetadata(text) == values
    # Comments and section headers are not taken for tags.
    assert parse_ffmetadata(";FFMETADATA1\n#c=1\n;d=2\ntitle=x\n[STREAM]\nother=y\n") == {"title": "x"}


def test_no_file_is_written_outside_the_root_for_any_refused_prefix(tmp_path):
    root = tmp_path / "output"
    root.mkdir()
    (root / "out").symlink_to(tmp_path, target_is_directory=True)
    for prefix in ("out/x", "../x", str(tmp_path / "x")):
        with pytest.raises(InputError):
            save_clip(clip(), root, prefix, EncodeOptions(format="gif"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output"]


def test_concurrent_saves_with_one_prefix_get_distinct_files(tmp_path):
    clips = [torch.full((2, 8, 8, 3), i / 5) for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        saved = list(pool.map(lambda c: save_clip(c, tmp_path, "race/clip", EncodeOptions(format="gif")),
                              clips))
    names = sorted(s.filename for s in saved)
    assert names == [f"clip_{n:05}_.gif" for n in range(1, 7)]
    assert files_under(tmp_path / "race") == names  # six files, no temporaries


def test_prefix_placeholders_are_expanded_like_comfyui(tmp_path):
    import time

    from i2v_nodes.runtime.output import output_paths

    moment = time.strptime("2026-03-04 05:06:07", "%Y-%m-%d %H:%M:%S")
    prefix = "i2v/%year%-%month%-%day%/c_%width%x%height%_%hour%%minute%%second%"
    assert output_paths.expand_placeholders(prefix, 64, 48, moment) == "i2v/2026-03-04/c_64x48_050607"
