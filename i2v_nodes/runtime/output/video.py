"""Encode IMAGE batches to mp4/webm/gif/webp files through the ffmpeg that imageio-ffmpeg bundles.

Frames are streamed to ffmpeg's stdin one at a time (see ``ffmpeg_pipe``), so the clip is never held
in memory as uint8. Input and output rates are the same rational and ``-fps_mode passthrough`` is set,
so ffmpeg neither drops nor duplicates frames.

Public API: ``FORMATS``, ``default_crf``, ``EncodeOptions``, ``SavedVideo``, ``VideoInfo``,
``EncoderError``, ``save_clip``, ``split_clips``, ``probe_video``, ``read_video_metadata``,
``build_ffmpeg_command`` (shared with the benchmark so both run the same encoder arguments).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import imageio_ffmpeg
import torch

from i2v_nodes.runtime.output import output_paths
from i2v_nodes.runtime.output.audio import ClipAudio
from i2v_nodes.errors import InputError
from i2v_nodes.runtime.output.ffmpeg_pipe import EncoderError, stream_to_ffmpeg
from i2v_nodes.runtime.output.video_formats import FORMATS, FormatSpec, default_crf, get_format
from i2v_nodes.runtime.output.video_metadata import (
    add_gif_comments,
    add_webp_exif,
    check_metadata,
    ffmetadata_text,
    gif_loop_count,
    read_video_metadata,
    webp_loop_count,
)

__all__ = [
    "FORMATS", "AudioInput", "EncodeOptions", "EncoderError", "SavedVideo", "VideoInfo",
    "build_ffmpeg_command", "clip_seconds", "default_crf", "probe_video", "read_video_metadata", "save_clip",
    "split_clips",
]

logger = logging.getLogger(__name__)

MAX_FPS = 1000.0
MAX_LOOP_COUNT = 65535


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode one clip. Checked on construction (InputError naming the field).

    ``crf`` None means the format's default; ``loop_count`` is how many times a gif/webp plays
    (0 = forever) and is ignored by mp4/webm; ``pingpong`` appends the frames in reverse without
    repeating the first and last; ``metadata`` maps keys such as "prompt"/"workflow" to JSON text.
    """

    fps: float = 8.0
    format: str = "mp4-h264"
    crf: int | None = None
    loop_count: int = 0
    pingpong: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = get_format(self.format)
        if not _is_number(self.fps) or not math.isfinite(self.fps) or not 0 < self.fps <= MAX_FPS:
            raise InputError("fps", f"expected a number > 0 and <= {MAX_FPS:g}, got {self.fps!r}")
        if _fps_fraction(self.fps) <= 0:
            raise InputError("fps", f"{self.fps!r} is too small to express as a frame rate")
        if self.crf is not None:
            if not _is_int(self.crf):
                raise InputError("crf", f"expected an integer, got {self.crf!r}")
            if spec.crf_range is not None and not spec.crf_range[0] <= self.crf <= spec.crf_range[1]:
                low, high = spec.crf_range
                raise InputError("crf", f"{spec.key} expects crf in {low}..{high} ({spec.crf_meaning}), "
                                        f"got {self.crf}")
        if not _is_int(self.loop_count) or not 0 <= self.loop_count <= MAX_LOOP_COUNT:
            raise InputError("loop_count", f"expected 0 (forever) to {MAX_LOOP_COUNT} plays, "
                                           f"got {self.loop_count!r}")
        if not isinstance(self.pingpong, bool):
            raise InputError("pingpong", f"expected True or False, got {self.pingpong!r}")
        object.__setattr__(self, "metadata", MappingProxyType(check_metadata(self.metadata)))

    @property
    def spec(self) -> FormatSpec:
        return FORMATS[self.format]

    @property
    def effective_crf(self) -> int | None:
        """The crf actually used: the given one, else the format's default (None: no quality knob)."""
        if self.spec.crf_range is None:
            return None
        return self.crf if self.crf is not None else self.spec.default_crf


@dataclass(frozen=True)
class SavedVideo:
    """One saved clip. ``subfolder`` is relative to the output root ('' for none), '/'-separated."""

    path: Path
    filename: str
    subfolder: str
    type: str
    format: str
    frame_count: int
    width: int  # as stored, i.e. after padding
    height: int
    fps: float
    padded: bool  # True when an odd width/height was padded by one pixel to suit the codec
    audio: str = ""  # the sound: its stream ("aac, 48000 Hz, 1 channel"), why it was left out, or ""

    def ui_entry(self) -> dict[str, str]:
        """The {"filename", "subfolder", "type"} entry ComfyUI's UI expects for an output file."""
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` reads back. ``loop_count`` uses EncodeOptions' meaning; None for mp4/webm."""

    frame_count: int
    width: int
    height: int
    fps: float
    loop_count: int | None


# ---------------------------------------------------------------------------------------------- inputs


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fps_fraction(fps: float) -> Fraction:
    # A rational keeps 7.5 -> 15/2 and 29.97 -> 2997/100 exact for ffmpeg's time bases.
    return Fraction(fps).limit_denominator(100_000)


def check_frames(frames: object, input_name: str = "frames") -> torch.Tensor:
    """A non-empty float tensor [F, H, W, 3] (ComfyUI's IMAGE), else an InputError on ``input_name``."""
    if not isinstance(frames, torch.Tensor):
        raise InputError(input_name, f"expected an IMAGE tensor [frames, height, width, 3], "
                                     f"got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(input_name, f"expected shape [frames, height, width, 3], got {list(frames.shape)}")
    if not frames.is_floating_point():
        raise InputError(input_name, f"expected float values 0..1, got dtype {frames.dtype}")
    if frames.shape[0] == 0:
        raise InputError(input_name, "the batch is empty (0 frames)")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise InputError(input_name, f"frames have no pixels: {list(frames.shape)}")
    return frames


def split_clips(frames: torch.Tensor, frames_per_clip: int | None) -> list[torch.Tensor]:
    """Split a [clips*F, H, W, 3] batch into clips of ``frames_per_clip`` (0/None: one clip); views."""
    frames = check_frames(frames)
    if frames_per_clip is None or frames_per_clip == 0:
        return [frames]
    if not _is_int(frames_per_clip) or frames_per_clip < 0:
        raise InputError("frames_per_clip", f"expected 0 (whole batch) or a positive integer, "
                                            f"got {frames_per_clip!r}")
    total = frames.shape[0]
    if total % frames_per_clip:
        raise InputError("frames_per_clip", f"the batch has {total} frames, which is not a multiple of "
                                            f"{frames_per_clip}")
    return list(frames.split(frames_per_clip))


def frame_order(frame_count: int, pingpong: bool) -> list[int]:
    """Indices to encode: forward, then (pingpong) backward without repeating either end frame."""
    forward = list(range(frame_count))
    return forward + forward[-2:0:-1] if pingpong else forward


def _padded_size(spec: FormatSpec, width: int, height: int) -> tuple[int, int]:
    if spec.even_size:
        return width + width % 2, height + height % 2
    return width, height


# ---------------------------------------------------------------------------------------------- command


@dataclass(frozen=True)
class AudioInput:
    """Raw f32le PCM for ffmpeg's second stream."""

    path: Path
    sample_rate: int
    channels: int


def build_ffmpeg_command(spec: FormatSpec, options: EncodeOptions, width: int, height: int, output: Path,
                         input_url: str = "pipe:0", metadata_file: Path | None = None,
                         audio: AudioInput | None = None) -> list[str]:
    """The full ffmpeg command: raw rgb24 frames from ``input_url`` (and raw PCM from ``audio``) ->
    ``output`` in ``spec``'s format."""
    rate = str(_fps_fraction(options.fps))
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{width}x{height}",
               "-framerate", rate, "-i", input_url]
    if audio is not None:
        command += ["-f", "f32le", "-ar", str(audio.sample_rate), "-ac", str(audio.channels),
                    "-i", str(audio.path)]
    if metadata_file is not None:
        command += ["-f", "ffmetadata", "-i", str(metadata_file)]
    # output options only after every input: ffmpeg binds an option to the next file named
    metadata_index = 2 if audio is not None else 1
    if metadata_file is not None:
        command += ["-map_metadata", str(metadata_index)]
    command += ["-map", "0:v", *(["-map", "1:a"] if audio is not None else []), "-fps_mode", "passthrough"]
    filters = list(spec.filters)
    out_width, out_height = _padded_size(spec, width, height)
    if (out_width, out_height) != (width, height):
        # Pad on the right/bottom and repeat the edge pixels there rather than show a black line.
        fill = f"right={out_width - width}:bottom={out_height - height}:mode=smear"
        filters = [f"pad={out_width}:{out_height}:0:0", *filters, f"format={spec.pix_fmt}",
                   f"fillborders={fill}"]
    if filters:
        command += ["-vf", ",".join(filters)]
    command += [*spec.codec_args, "-pix_fmt", spec.pix_fmt, *spec.quality_arguments(options.effective_crf)]
    if audio is not None:
        command += [*(spec.audio_args or ()), *(["-ac", "2"] if audio.channels > 2 else [])]  # down-mix
    if spec.loops:
        command += ["-loop", str(_file_loop_value(spec, options.loop_count))]
    command += [*spec.extra_output_args, "-f", spec.muxer, "-n", str(output)]
    return command


def _file_loop_value(spec: FormatSpec, plays: int) -> int:
    """Our loop_count (plays, 0 = forever) as the muxer's -loop value.

    A WebP ANIM loop count is the number of plays. A GIF NETSCAPE value N means N extra plays, and
    ffmpeg's gif muxer writes no NETSCAPE block (play once) for -1.
    """
    if spec.muxer == "gif" and plays > 0:
        return plays - 1 if plays > 1 else -1
    return plays


# ---------------------------------------------------------------------------------------------- saving


def save_clip(frames: torch.Tensor, output_root: Path, filename_prefix: str,
              options: EncodeOptions, audio: ClipAudio | None = None) -> SavedVideo:
    """Encode ``frames`` [F, H, W, 3] float 0..1 and publish ``{name}_{counter:05}_.{ext}`` under the root.

    ``audio`` (already fitted to the clip's duration) becomes the file's sound where the format has
    sound. Never overwrites a file and never writes outside ``output_root``; on any failure no file
    is left.
    """
    frames = check_frames(frames)
    spec = options.spec
    _, height, width, _ = frames.shape
    if max(width, height) > spec.max_side:
        raise InputError("frames", f"{spec.key} allows at most {spec.max_side} pixels per side, "
                                   f"got {width}x{height}")
    out_width, out_height = _padded_size(spec, width, height)
    order = frame_order(frames.shape[0], options.pingpong)
    prefix = output_paths.expand_placeholders(filename_prefix, width, height)
    target = output_paths.resolve_target(Path(output_root), prefix)
    metadata = dict(options.metadata)
    sound = audio if audio is not None and spec.audio_args is not None else None
    with output_paths.temporary_file(target, f".{spec.extension}") as encoded, \
            output_paths.temporary_file(target, ".ffmetadata") as metadata_file, \
            output_paths.temporary_file(target, ".f32le") as pcm_file, \
            output_paths.temporary_file(target, f".tagged.{spec.extension}") as tagged:
        use_metadata_file = spec.metadata_carrier == "container-tags" and bool(metadata)
        if use_metadata_file:
            metadata_file.write_text(ffmetadata_text(metadata), encoding="utf-8")
        pcm = None
        if sound is not None:
            sound.write_pcm(pcm_file)
            pcm = AudioInput(pcm_file, sound.sample_rate, sound.channels)
        command = build_ffmpeg_command(spec, options, width, height, encoded,
                                       metadata_file=metadata_file if use_metadata_file else None, audio=pcm)
        logger.debug("encoding %d frames: %s", len(order), command)
        try:
            stream_to_ffmpeg(command, frames, order)
        except EncoderError as exc:
            if sound is None:
                raise
            stream = _describe(spec, sound)
            raise EncoderError(f"writing the {spec.key} file with its audio stream ({stream}) failed: "
                               f"{exc}") from exc
        finished = encoded
        if metadata and spec.metadata_carrier == "webp-exif":
            add_webp_exif(encoded, tagged, metadata, out_width, out_height)
            finished = tagged
        elif metadata and spec.metadata_carrier == "gif-comment":
            add_gif_comments(encoded, tagged, metadata)
            finished = tagged
        filename, path = output_paths.publish(finished, target, spec.extension)
    said = _audio_note(spec, audio, sound)
    logger.info("saved %s (%d frames, %dx%d%s)", path, len(order), out_width, out_height,
                f"; {said}" if said else "")
    return SavedVideo(path=path, filename=filename, subfolder=target.subfolder, type="output",
                      format=spec.key, frame_count=len(order), width=out_width, height=out_height,
                      fps=float(options.fps), padded=(out_width, out_height) != (width, height), audio=said)


def _audio_note(spec: FormatSpec, audio: ClipAudio | None, sound: ClipAudio | None) -> str:
    """What the file says of its sound: the stream written, or that the format left it out."""
    if sound is not None:
        return ", ".join(filter(None, [_describe(spec, sound), sound.note]))
    if audio is not None:
        return f"audio left out: {spec.key} files have no sound"
    return ""


def clip_seconds(frame_count: int, options: EncodeOptions) -> float:
    """How long a clip of ``frame_count`` frames plays (pingpong included): its sound's length."""
    return len(frame_order(frame_count, options.pingpong)) / float(_fps_fraction(options.fps))


def _describe(spec: FormatSpec, sound: ClipAudio) -> str:
    args = spec.audio_args or ()
    codec = args[args.index("-c:a") + 1] if "-c:a" in args else "audio"
    channels = "stereo (down-mixed)" if sound.channels > 2 else f"{sound.channels} channel(s)"
    return f"{codec}, {sound.sample_rate} Hz, {channels}"


# ---------------------------------------------------------------------------------------------- probing


def probe_video(path: Path | str) -> VideoInfo:
    """Frame count (by decoding), size, frame rate and loop count of a saved file."""
    path = Path(path)
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        header = next(reader)
    finally:
        reader.close()
    frame_count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    width, height = header["size"]
    suffix = path.suffix.lower()
    loop_count: int | None = None
    if suffix == ".webp":
        loop_count = webp_loop_count(path)
    elif suffix == ".gif":
        netscape = gif_loop_count(path)
        loop_count = 1 if netscape is None else (0 if netscape == 0 else netscape + 1)
    return VideoInfo(frame_count=frame_count, width=width, height=height, fps=float(header["fps"]),
                     loop_count=loop_count)
