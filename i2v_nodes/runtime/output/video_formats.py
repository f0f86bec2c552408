"""The output formats, as a small declarative table (in the spirit of VideoHelperSuite's format files).

Each entry says everything the encoder needs to know about one format: the ffmpeg muxer and codec
arguments, the pixel format handed to the encoder, what ``crf`` means and which values are allowed,
whether the file carries a loop count, and the size limits. ``video.py`` turns an entry plus the user's
options into one ffmpeg command line; nothing format-specific lives anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from i2v_nodes.errors import InputError

# Where the prompt/workflow JSON goes: container tags (mp4, webm), an EXIF chunk (webp, as ComfyUI's
# SaveAnimatedWEBP does) or a GIF comment extension (no ComfyUI reader; best effort).
MetadataCarrier = Literal["container-tags", "webp-exif", "gif-comment"]

# swscale's default RGB->YUV matrix is BT.601 and the stream is left untagged, which browsers show
# with shifted colours; convert with BT.709 and tag the stream so players decode it the same way.
_BT709_FILTER = "scale=out_color_matrix=bt709:out_range=tv"
_BT709_TAGS = ("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
               "-color_range", "tv")

# GIF: a 256-colour palette per frame (palettegen stats_mode=single + paletteuse new=1) follows content
# that changes over the clip far better than one palette for all frames, and ordered (Bayer) dithering
# keeps the dither pattern still from frame to frame (error diffusion makes it crawl) and is ~4x faster.
# The input is first rounded to 6 bits per channel: this ffmpeg's palettegen/paletteuse slow down
# sharply with the number of distinct colours (a 512x512x64 gradient clip took 28 s instead of 1.5 s),
# and 6 bits is still far finer than any 256-colour palette.
_SIX_BITS = "bitand(val,252)+2"
_GIF_FILTER = (f"lutrgb=r='{_SIX_BITS}':g='{_SIX_BITS}':b='{_SIX_BITS}',split[clip][for_palette];"
               "[for_palette]palettegen=stats_mode=single[palette];"
               "[clip][palette]paletteuse=new=1:dither=bayer:bayer_scale=2")


@dataclass(frozen=True)
class FormatSpec:
    """One output format. ``quality_args`` are formatted with ``crf`` and ``quality`` (= 100 - crf)."""

    key: str
    extension: str
    muxer: str
    codec_args: tuple[str, ...]
    pix_fmt: str
    quality_args: tuple[str, ...]
    # Inclusive (low, high) range for crf, or None where the format has no quality setting.
    crf_range: tuple[int, int] | None
    default_crf: int | None
    crf_meaning: str
    loops: bool
    even_size: bool  # odd widths/heights are padded by one pixel on the right/bottom
    max_side: int
    metadata_carrier: MetadataCarrier
    filters: tuple[str, ...] = ()
    extra_output_args: tuple[str, ...] = ()
    # GIF stores frame delays in whole centiseconds, WebP in whole milliseconds.
    fps_exact: bool = True
    # How sound is encoded, or None where the format has none (the audio is then ignored, and said so).
    audio_args: tuple[str, ...] | None = None

    def quality_arguments(self, crf: int | None) -> list[str]:
        if crf is None:
            return []
        return [arg.format(crf=crf, quality=100 - crf) for arg in self.quality_args]


FORMATS: dict[str, FormatSpec] = {
    "mp4-h264": FormatSpec(
        key="mp4-h264",
        extension="mp4",
        muxer="mp4",
        codec_args=("-c:v", "libx264", "-preset", "medium", *_BT709_TAGS),
        pix_fmt="yuv420p",
        quality_args=("-crf", "{crf}"),
        crf_range=(0, 51),
        default_crf=19,
        crf_meaning="x264 constant rate factor: 0 is lossless, 51 the worst; about 17-23 looks good",
        loops=False,
        even_size=True,
        max_side=16384,
        metadata_carrier="container-tags",
        filters=(_BT709_FILTER,),
        # use_metadata_tags keeps custom keys (prompt, workflow) as mdta tags, which ComfyUI's
        # frontend reads; faststart puts the moov box (and so the tags) at the start of the file.
        extra_output_args=("-movflags", "use_metadata_tags+faststart"),
        audio_args=("-c:a", "aac", "-b:a", "192k"),
    ),
    "webm-vp9": FormatSpec(
        key="webm-vp9",
        extension="webm",
        muxer="webm",
        codec_args=("-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "2", "-row-mt", "1",
                    *_BT709_TAGS),
        pix_fmt="yuv420p",
        # -b:v 0 makes crf a pure constant-quality target instead of a cap under a default bitrate.
        quality_args=("-crf", "{crf}", "-b:v", "0"),
        crf_range=(0, 63),
        default_crf=32,
        crf_meaning="libvpx-vp9 constant quality: 0 is the best, 63 the worst; about 24-36 looks good",
        loops=False,
        even_size=False,
        max_side=16384,
        metadata_carrier="container-tags",
        filters=(_BT709_FILTER,),
        # Opus runs at 48 kHz (and a few lower rates): resample anything else
        audio_args=("-c:a", "libopus", "-b:a", "128k", "-ar", "48000"),
    ),
    "gif": FormatSpec(
        key="gif",
        extension="gif",
        muxer="gif",
        codec_args=("-c:v", "gif"),
        pix_fmt="pal8",
        quality_args=(),
        crf_range=None,
        default_crf=None,
        crf_meaning="GIF has no quality setting (a 256-colour palette per frame); crf is ignored",
        loops=True,
        even_size=False,
        max_side=65535,
        metadata_carrier="gif-comment",
        filters=(_GIF_FILTER,),
        fps_exact=False,
    ),
    "webp": FormatSpec(
        key="webp",
        extension="webp",
        muxer="webp",
        # libwebp, not libwebp_anim: the animation encoder merges identical consecutive frames into one
        # longer frame, which breaks the exact frame count. ffmpeg's webp muxer assembles the animation.
        codec_args=("-c:v", "libwebp"),
        pix_fmt="yuv420p",
        quality_args=("-quality", "{quality}"),
        crf_range=(0, 100),
        default_crf=20,
        crf_meaning="lossy WebP with quality = 100 - crf: 0 is the best, 100 the worst",
        loops=True,
        even_size=False,
        max_side=16383,
        metadata_carrier="webp-exif",
        fps_exact=False,
    ),
}


def get_format(format_key: str) -> FormatSpec:
    """The table entry for ``format_key``; an unknown key is an InputError on 'format'."""
    try:
        return FORMATS[format_key]
    except (KeyError, TypeError):
        raise InputError("format", f"expected one of {', '.join(FORMATS)}, got {format_key!r}") from None


def default_crf(format_key: str) -> int | None:
    """The crf used when none is given (None for formats without a quality setting)."""
    return get_format(format_key).default_crf
