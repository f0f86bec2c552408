"""Writing and reading the prompt/workflow metadata that lets ComfyUI load a workflow back from a video.

Per format (matching what ComfyUI's own savers write and its frontend reads):

* mp4 / webm: container tags, handed to ffmpeg as an ffmetadata file (a workflow can be longer than a
  command-line argument). The mp4 muxer stores them as ``mdta`` keys (with ``-movflags use_metadata_tags``),
  Matroska/WebM as SimpleTags whose names ffmpeg upper-cases (``PROMPT``, ``WORKFLOW``), which is what the
  frontend looks for.
* webp: an ``EXIF`` chunk whose first IFD holds ASCII entries ``"key:json"``: ``prompt`` in tag 0x0110
  and the other keys from 0x010F downwards, as ComfyUI's SaveAnimatedWEBP writes them.
* gif: one comment extension per key holding ``"key:json"`` (nothing in ComfyUI reads these; best effort).

Reading back (``read_video_metadata``) uses the bundled ffmpeg for mp4/webm and small parsers here for
the WebP RIFF chunks and GIF blocks. Keys come back lower-cased, since Matroska stores them upper-cased.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path

import imageio_ffmpeg

from i2v_nodes.errors import InputError

# A key becomes an ffmetadata key, a Matroska tag name (upper-cased) and the part before ':' in EXIF
# and GIF comments, so keep it to characters all of those carry unchanged.
_KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_FFMETADATA_SPECIAL = re.compile(r"([=;#\\\n])")
# ComfyUI puts 'prompt' in EXIF tag 0x0110 (Model) and the other keys from 0x010F (Make) downwards.
_EXIF_PROMPT_TAG = 0x0110
_EXIF_FIRST_EXTRA_TAG = 0x010F
MAX_METADATA_KEYS = 16


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Validate and copy the metadata mapping (InputError on 'metadata')."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError("metadata", f"expected a dict of str -> str, got {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InputError("metadata", f"at most {MAX_METADATA_KEYS} keys fit the WebP EXIF layout")
    checked: dict[str, str] = {}
    lowered: set[str] = set()
    for key, value in metadata.items():
        if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
            raise InputError("metadata", f"keys must be identifiers like 'prompt' or 'workflow', got {key!r}")
        if key.lower() in lowered:
            raise InputError("metadata", f"key {key!r} differs from another only in case")
        if not isinstance(value, str):
            raise InputError("metadata", f"value of {key!r} must be a str (e.g. JSON text), "
                                         f"got {type(value).__name__}")
        if "\0" in value:
            raise InputError("metadata", f"value of {key!r} must not contain NUL characters")
        lowered.add(key.lower())
        checked[key] = value
    return checked


# ---------------------------------------------------------------------------------------------- ffmetadata


def ffmetadata_escape(text: str) -> str:
    """Escape '=', ';', '#', '\\' and newlines with a backslash, as the ffmetadata format requires."""
    return _FFMETADATA_SPECIAL.sub(r"\\\1", text)


def ffmetadata_text(metadata: Mapping[str, str]) -> str:
    lines = [";FFMETADATA1"]
    lines += [f"{ffmetadata_escape(key)}={ffmetadata_escape(value)}" for key, value in metadata.items()]
    return "\n".join(lines) + "\n"


def parse_ffmetadata(text: str) -> dict[str, str]:
    """Global section of an ffmetadata file -> dict (keys lower-cased); stops at the first [SECTION]."""
    result: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        # One logical entry: runs to an unescaped newline; backslash escapes the next character.
        chars: list[str] = []
        key: str | None = None
        at_line_start = True
        while i < n and text[i] != "\n":
            char = text[i]
            if at_line_start and char in ";#":
                i = text.find("\n", i)  # comment line
                i = n if i < 0 else i
                break
            if at_line_start and char == "[":
                return result  # stream/chapter sections follow; only global tags are ours
            at_line_start = False
            if char == "\\" and i + 1 < n:
                chars.append(text[i + 1])
                i += 2
                continue
            if char == "=" and key is None:
                key = "".join(chars)
                chars = []
            else:
                chars.append(char)
            i += 1
        i += 1
        if key is not None:
            result[key.lower()] = "".join(chars)
    return result


def read_container_tags(path: Path) -> dict[str, str]:
    """Global container tags of an mp4/webm file, through the bundled ffmpeg."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
               "-i", str(path), "-f", "ffmetadata", "-"]
    completed = subprocess.run(command, capture_output=True, check=False)
    if completed.returncode != 0:
        tail = completed.stderr.decode("utf-8", "replace")[-2000:]
        raise RuntimeError(f"ffmpeg could not read the tags of {path}: {tail}")
    return parse_ffmetadata(completed.stdout.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------- WebP EXIF


def _exif_entries(metadata: Mapping[str, str]) -> list[tuple[int, bytes]]:
    """(tag, "key:value" bytes) pairs in ComfyUI's tag order, sorted by tag as TIFF requires."""
    entries: list[tuple[int, bytes]] = []
    next_tag = _EXIF_FIRST_EXTRA_TAG
    for key, value in metadata.items():
        if key == "prompt":
            tag = _EXIF_PROMPT_TAG
        else:
            tag, next_tag = next_tag, next_tag - 1
        # ComfyUI's frontend decodes these ASCII entries as UTF-8, so non-ASCII text survives.
        entries.append((tag, f"{key}:{value}".encode()))
    return sorted(entries)


def build_exif(metadata: Mapping[str, str]) -> bytes:
    """A little-endian TIFF block with one IFD of ASCII entries (the WebP EXIF chunk payload)."""
    entries = _exif_entries(metadata)
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    directory = bytearray(struct.pack("<H", len(entries)))
    values = bytearray()
    for tag, text in entries:
        value = text + b"\0"
        if len(value) <= 4:
            directory += struct.pack("<HHI", tag, 2, len(value)) + value.ljust(4, b"\0")
            continue
        directory += struct.pack("<HHII", tag, 2, len(value), data_offset + len(values))
        values += value
        if len(values) % 2:
            values += b"\0"  # TIFF values start on word boundaries
    directory += struct.pack("<I", 0)  # no next IFD
    return b"II*\0" + struct.pack("<I", ifd_offset) + bytes(directory) + bytes(values)


def parse_exif(payload: bytes) -> dict[str, str]:
    """ASCII entries of the first IFD that look like "key:value" -> dict (keys lower-cased)."""
    if payload.startswith(b"Exif\0\0"):
        payload = payload[6:]
    if payload[:2] == b"II":
        order = "<"
    elif payload[:2] == b"MM":
        order = ">"
    else:
        return {}
    (ifd_offset,) = struct.unpack_from(order + "I", payload, 4)
    (count,) = struct.unpack_from(order + "H", payload, ifd_offset)
    result: dict[str, str] = {}
    for index in range(count):
        tag, kind, length, offset = struct.unpack_from(order + "HHII", payload, ifd_offset + 2 + 12 * index)
        if kind != 2:
            continue
        start = ifd_offset + 2 + 12 * index + 8 if length <= 4 else offset
        text = payload[start:start + length].rstrip(b"\0").decode("utf-8", "replace")
        key, sep, value = text.partition(":")
        if sep:
            result[key.lower()] = value
    return result


def _riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(fourcc, payload start, payload size) for each top-level chunk of a WebP file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP file")
    chunks = []
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos:pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        chunks.append((fourcc, pos + 8, size))
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return chunks


def add_webp_exif(src: Path, dst: Path, metadata: Mapping[str, str], width: int, height: int) -> None:
    """Copy WebP ``src`` to ``dst`` with an EXIF chunk appended and flagged in the VP8X header.

    A one-frame clip comes out of ffmpeg in the simple format (a lone VP8 chunk), which cannot carry
    EXIF; it gets a VP8X header with the canvas size first.
    """
    payload = build_exif(metadata)
    exif_chunk = b"EXIF" + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
    with open(src, "rb") as source, open(dst, "wb") as target:
        header = source.read(30)
        if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
            raise ValueError(f"{src} is not a WebP file")
        if header[12:16] == b"VP8X":
            vp8x = header[12:30]
            body_start = 30
        else:
            size_bytes = struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]
            vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + size_bytes
            body_start = 12
        vp8x = vp8x[:8] + bytes([vp8x[8] | 0x08]) + vp8x[9:]  # VP8X flag bit: an EXIF chunk is present
        body_size = os.fstat(source.fileno()).st_size - body_start
        padding = b"\0" * (body_size % 2)  # chunks start at even offsets
        riff_size = 4 + len(vp8x) + body_size + len(padding) + len(exif_chunk)
        target.write(b"RIFF" + struct.pack("<I", riff_size) + b"WEBP" + vp8x)
        source.seek(body_start)
        shutil.copyfileobj(source, target, 1024 * 1024)
        target.write(padding)
        target.write(exif_chunk)


def read_webp_metadata(path: Path) -> dict[str, str]:
    data = Path(path).read_bytes()
    for fourcc, start, size in _riff_chunks(data):
        if fourcc == b"EXIF":
            return parse_exif(data[start:start + size])
    return {}


def webp_loop_count(path: Path) -> int | None:
    """The ANIM chunk's loop count (0 = forever), or None for a still image."""
    data = Path(path).read_bytes()
    for fourcc, start, size in _riff_chunks(data):
        if fourcc == b"ANIM" and size >= 6:
            return struct.unpack_from("<H", data, start + 4)[0]
    return None


# ---------------------------------------------------------------------------------------------- GIF


def _gif_header_size(data: bytes) -> int:
    """Bytes of the GIF header, logical screen descriptor and global colour table."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("not a GIF file")
    flags = data[10]
    table = 3 * (2 ** ((flags & 0x07) + 1)) if flags & 0x80 else 0
    return 13 + table


def _sub_blocks(payload: bytes) -> bytes:
    blocks = bytearray()
    for start in range(0, len(payload), 255):
        piece = payload[start:start + 255]
        blocks += bytes([len(piece)]) + piece
    return bytes(blocks + b"\0")


def add_gif_comments(src: Path, dst: Path, metadata: Mapping[str, str]) -> None:
    """Copy ``src`` to ``dst`` with one comment extension per key inserted before the first frame."""
    with open(src, "rb") as source, open(dst, "wb") as target:
        head = source.read(13)
        head += source.read(_gif_header_size(head) - len(head))
        target.write(head)
        for key, value in metadata.items():
            target.write(b"\x21\xfe" + _sub_blocks(f"{key}:{value}".encode()))
        shutil.copyfileobj(source, target, 1024 * 1024)


def _walk_gif(data: bytes) -> tuple[list[bytes], int | None]:
    """(comment payloads, NETSCAPE loop value or None) from the GIF block structure."""
    pos = _gif_header_size(data)
    comments: list[bytes] = []
    loop: int | None = None

    def read_sub_blocks(start: int) -> tuple[bytes, int]:
        payload = bytearray()
        while start < len(data) and data[start]:
            payload += data[start + 1:start + 1 + data[start]]
            start += 1 + data[start]
        return bytes(payload), start + 1

    while pos < len(data):
        introducer = data[pos]
        if introducer == 0x3B:  # trailer
            break
        if introducer == 0x21:
            label = data[pos + 1]
            payload, pos = read_sub_blocks(pos + 2)
            if label == 0xFE:
                comments.append(payload)
            elif label == 0xFF and payload[:11] in (b"NETSCAPE2.0", b"ANIMEXTS1.0") and len(payload) >= 14:
                loop = struct.unpack_from("<H", payload, 12)[0]
        elif introducer == 0x2C:  # image descriptor, optional local table, LZW data
            flags = data[pos + 9]
            pos += 10 + (3 * (2 ** ((flags & 0x07) + 1)) if flags & 0x80 else 0)
            _, pos = read_sub_blocks(pos + 1)  # skip the LZW minimum code size byte first
        else:
            raise ValueError(f"unexpected GIF block 0x{introducer:02x} at byte {pos}")
    return comments, loop


def read_gif_metadata(path: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for comment in _walk_gif(Path(path).read_bytes())[0]:
        key, sep, value = comment.decode("utf-8", "replace").partition(":")
        if sep and _KEY_PATTERN.fullmatch(key):
            result[key.lower()] = value
    return result


def gif_loop_count(path: Path) -> int | None:
    """The NETSCAPE loop value (0 = forever, N = N extra plays), or None when absent (plays once)."""
    return _walk_gif(Path(path).read_bytes())[1]


# ---------------------------------------------------------------------------------------------- any format


def read_video_metadata(path: Path | str) -> dict[str, str]:
    """The metadata written by ``save_clip`` (keys lower-cased), for .mp4, .webm, .gif and .webp files."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".mp4", ".webm", ".mkv", ".mov"):
        return read_container_tags(path)
    if suffix == ".webp":
        return read_webp_metadata(path)
    if suffix == ".gif":
        return read_gif_metadata(path)
    raise ValueError(f"cannot read metadata from {path.name}: expected .mp4, .webm, .gif or .webp")
